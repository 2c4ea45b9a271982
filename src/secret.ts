/**
 * A value that must never be printed: the LiveKit JWT and the OpenID access token travel through the
 * statechart (context, events, actor input) inside a `Secret`, so snapshots and inspection events that an app
 * logs or sends to a visualiser carry no credential. The value is kept in a module-private WeakMap, not on the
 * object, so it is not reachable by walking or serialising the object.
 */
import type { Sealed } from "../machines/connection.machine";

const values = new WeakMap<Sealed<unknown>, unknown>();

const REDACTED = "[redacted]";

export class Secret<T> implements Sealed<T> {
  declare readonly sealedType?: () => T;

  constructor(value: T) {
    values.set(this, value);
    Object.freeze(this);
  }

  toJSON(): string {
    return REDACTED;
  }

  toString(): string {
    return REDACTED;
  }

  [Symbol.for("nodejs.util.inspect.custom")](): string {
    return `Secret(${REDACTED})`;
  }
}

/** Reads a secret's value: for the actors that need the credential (and actors of your own). */
export function reveal<T>(secret: Sealed<T>): T {
  if (!values.has(secret)) throw new TypeError("not a Secret");
  return values.get(secret) as T;
}

const utf8 = /* @__PURE__ */ new TextEncoder();

const escapeRegExp = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** `2f` → `2[fF]`: hex digits in either case. */
const anyCaseHex = (hex: string): string => hex.replace(/[a-f]/gi, (d) => `[${d.toLowerCase()}${d.toUpperCase()}]`);

/**
 * The ways a server may have written one character of a credential it echoes: as it is, JSON-escaped (`\u002F`,
 * `\/`, `\"`), percent-encoded (either case), as an HTML character reference, `+` for a space.
 */
function characterForms(c: string): string[] {
  const cp = c.codePointAt(0)!;
  const hex = cp.toString(16);
  const forms = [
    escapeRegExp(c),
    `\\\\[uU]${anyCaseHex(hex.padStart(4, "0"))}`,
    `&#0*${cp};`,
    `&#[xX]0*${anyCaseHex(hex)};`,
  ];
  // Percent-encoding: the character's UTF-8 bytes, each as %XX.
  forms.push([...utf8.encode(c)].map((b) => `%${anyCaseHex(b.toString(16).padStart(2, "0"))}`).join(""));
  if (c === "/" || c === '"' || c === "\\") forms.push(`\\\\${escapeRegExp(c)}`);
  if (c === " ") forms.push("\\+");
  return forms;
}

function base64Forms(secret: string): string[] {
  const bytes = utf8.encode(secret);
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  const b64 = btoa(binary).replace(/=+$/, "");
  return [b64, b64.replace(/\+/g, "-").replace(/\//g, "_")];
}

const patterns = new Map<string, RegExp>();

/** A pattern that finds `secret` however a server echoed it: any mix of the character forms, or base64. */
function patternOf(secret: string): RegExp {
  let pattern = patterns.get(secret);
  if (!pattern) {
    const perCharacter = [...secret].map((c) => `(?:${characterForms(c).join("|")})`).join("");
    pattern = new RegExp(
      [perCharacter, ...base64Forms(secret).map((form) => `${escapeRegExp(form)}=*`)].join("|"),
      "g",
    );
    if (patterns.size > 64) patterns.clear();
    patterns.set(secret, pattern);
  }
  pattern.lastIndex = 0;
  return pattern;
}

/**
 * Replaces every occurrence of the given secret strings in `text`, in every encoding a server plausibly uses
 * when it echoes one: raw, JSON-escaped, percent-encoded, HTML character references, base64 and base64url.
 */
export function redact(text: string, secrets: readonly (string | null | undefined)[]): string {
  let out = text;
  for (const s of secrets) {
    if (s && s.length >= 4) out = out.replace(patternOf(s), REDACTED);
  }
  return out;
}

/**
 * Removes the given secrets from an error, its `cause` chain and the objects it carries (a MatrixError's `data`,
 * say), in place: `message`, `stack` and every string field. Servers echo credentials (LiveKit's 401 body quotes
 * the rejected token), and the error goes on to logs, `state$` and inspection events.
 */
export function scrubSecrets<T>(
  error: T,
  secrets: readonly (string | null | undefined)[],
  seen = new Set<unknown>(),
  depth = 0,
): T {
  if (typeof error !== "object" || error === null || seen.has(error) || depth > 8) return error;
  seen.add(error);
  const record = error as Record<string, unknown>;
  const keys = new Set([...Object.keys(record), "message", "stack"]);
  if (error instanceof Error) keys.add("cause");
  for (const key of keys) {
    const value = record[key];
    if (typeof value === "string") {
      const clean = redact(value, secrets);
      if (clean !== value) {
        try {
          record[key] = clean;
        } catch {
          // a read-only field; nothing better to do
        }
      }
    } else if (typeof value === "object" && value !== null) {
      scrubSecrets(value, secrets, seen, depth + 1);
    }
  }
  return error;
}
