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

/** Replaces every occurrence of the given secret strings in `text`. */
export function redact(text: string, secrets: readonly (string | undefined)[]): string {
  let out = text;
  for (const s of secrets) {
    if (s && s.length >= 4) out = out.split(s).join(REDACTED);
  }
  return out;
}

/**
 * Removes the given secrets from an error and its `cause` chain, in place: `message`, `stack` and string
 * fields. Servers echo credentials (LiveKit's 401 body quotes the rejected token), and the error goes on to
 * logs, `state$` and inspection events.
 */
export function scrubSecrets<T>(error: T, secrets: readonly string[], seen = new Set<unknown>()): T {
  if (typeof error !== "object" || error === null || seen.has(error)) return error;
  seen.add(error);
  const record = error as Record<string, unknown>;
  for (const key of [...Object.keys(record), "message", "stack"]) {
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
    }
  }
  if (error instanceof Error) scrubSecrets(error.cause, secrets, seen);
  return error;
}
