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

/** Longer credentials are looked for only as they are: a pattern of every encoding would grow with them. */
const MAX_ENCODED_SECRET = 2048;

const escapeRegExp = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** `2f` → `2[fF]`: hex digits in either case. */
const anyCaseHex = (hex: string): string => hex.replace(/[a-f]/gi, (d) => `[${d.toLowerCase()}${d.toUpperCase()}]`);

const HTML_NAMED: Record<string, string> = { "&": "amp", "<": "lt", ">": "gt", '"': "quot", "'": "apos" };

/**
 * The ways a server may have written one character of a credential it echoes, longest first: JSON-escaped
 * (`\u002F`, a surrogate pair beyond the BMP, `\/`, `\"`, `\\`), an HTML character reference, percent-encoded
 * (either case), `+` for a space, or as it is.
 */
function characterForms(c: string): string[] {
  const cp = c.codePointAt(0)!;
  const units = [...c].length === c.length ? [cp] : [c.charCodeAt(0), c.charCodeAt(1)];
  const forms = [
    units.map((u) => `\\\\[uU]${anyCaseHex(u.toString(16).padStart(4, "0"))}`).join(""),
    `&#0*${cp};`,
    `&#[xX]0*${anyCaseHex(cp.toString(16))};`,
    [...utf8.encode(c)].map((b) => `%${anyCaseHex(b.toString(16).padStart(2, "0"))}`).join(""),
  ];
  if (HTML_NAMED[c]) forms.push(`&${HTML_NAMED[c]};`);
  if (c === "/" || c === '"' || c === "\\") forms.push(`\\\\${escapeRegExp(c)}`);
  if (c === " ") forms.push("\\+");
  forms.push(escapeRegExp(c));
  return forms;
}

/**
 * The secret's bytes in base64 and base64url at each of the three alignments it can have inside a longer
 * encoded text: only the characters that depend on the secret's bytes alone.
 */
function base64Forms(secret: string): string[] {
  const bytes = utf8.encode(secret);
  const forms: string[] = [];
  for (let k = 0; k < 3; k++) {
    let binary = "\0".repeat(k);
    for (const b of bytes) binary += String.fromCharCode(b);
    const b64 = btoa(binary);
    const part = b64.slice(Math.ceil((8 * k) / 6), Math.floor((8 * (k + bytes.length)) / 6));
    forms.push(part, part.replace(/\+/g, "-").replace(/\//g, "_"));
  }
  return forms;
}

/**
 * A pattern that finds `secret` however a server echoed it: any mix of the character forms, or base64. Each
 * character's forms are tried as an atomic group (`(?=(…))\N`), so a near-miss cannot make the search backtrack
 * through every way of reading the text.
 */
function patternOf(secret: string): RegExp {
  const perCharacter = [...secret].map((c, i) => `(?=(${characterForms(c).join("|")}))\\${i + 1}`).join("");
  const base64 = base64Forms(secret).map(escapeRegExp);
  return new RegExp([`(?:${perCharacter})`, ...base64.map((form) => `${form}=*`)].join("|"), "g");
}

/**
 * Replaces every occurrence of the given secret strings in `text`, in every encoding a server plausibly uses
 * when it echoes one: raw, JSON-escaped, percent-encoded, HTML character references, base64 and base64url.
 */
export function redact(text: string, secrets: readonly (string | null | undefined)[]): string {
  let out = text;
  for (const s of secrets) {
    if (!s || s.length < 4) continue;
    if (s.length > MAX_ENCODED_SECRET) {
      out = out.split(s).join(REDACTED);
    } else if (/[%\\&+]/.test(out)) {
      out = out.replace(patternOf(s), REDACTED);
    } else {
      // Without an escape in the text only the raw and base64 forms can be there: plain searches will do.
      for (const form of [s, ...base64Forms(s)]) out = out.split(form).join(REDACTED);
    }
  }
  return out;
}

/**
 * Removes the given secrets from an error, its `cause` chain and the objects it carries (a MatrixError's `data`,
 * say), in place: `message`, `stack` and every string field, enumerable or not. (Objects reachable from the error
 * are changed too.) A string thrown instead of an error comes back redacted. Servers echo credentials (LiveKit's
 * 401 body quotes the rejected token), and the error goes on to logs, `state$` and inspection events.
 */
export function scrubSecrets<T>(error: T, secrets: readonly (string | null | undefined)[]): T {
  const present = secrets.filter((s): s is string => !!s && s.length >= 4);
  if (present.length === 0) return error;
  if (typeof error === "string") return redact(error, present) as T;
  scrubObject(error, present, new Set(), 0);
  return error;
}

function scrubObject(value: unknown, secrets: readonly string[], seen: Set<unknown>, depth: number): void {
  if (typeof value !== "object" || value === null || seen.has(value) || depth > 8) return;
  seen.add(value);
  const record = value as Record<string, unknown>;
  let keys: string[];
  try {
    keys = [...new Set([...Object.getOwnPropertyNames(record), "message", "stack", "cause"])];
  } catch {
    return; // a Proxy that refuses: nothing to walk
  }
  for (const key of keys) {
    try {
      const field = record[key];
      if (typeof field === "string") {
        const clean = redact(field, secrets);
        if (clean !== field) record[key] = clean;
      } else if (field instanceof Map) {
        for (const entry of field) scrubObject(entry, secrets, seen, depth + 1);
      } else {
        scrubObject(field, secrets, seen, depth + 1);
      }
    } catch {
      // a getter that throws or a read-only field: leave it
    }
  }
}
