/** Reading a LiveKit JWT: its payload only; the signature is the SFU's to check. */

/** A LiveKit JWT is a few hundred characters; anything far longer is not one. */
const MAX_JWT_LENGTH = 16 * 1024;

const utf8 = /* @__PURE__ */ new TextDecoder("utf-8", { fatal: true });

function base64UrlDecode(segment: string): string {
  if (!/^[A-Za-z0-9_-]*$/.test(segment)) throw new TypeError("not base64url");
  const b64 = segment.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (segment.length % 4)) % 4);
  const binary = atob(b64);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return utf8.decode(bytes);
}

/** What a LiveKit JWT says about itself. */
export interface LivekitJwtClaims {
  livekitAlias: string;
  livekitIdentity: string;
  /** `exp` in ms since the epoch; undefined when the JWT has no `exp`. */
  expiresAt: number | undefined;
}

/**
 * Reads the LiveKit room alias (`video.room`), identity (`sub`) and expiry (`exp`) from a JWT's payload. The
 * signature is not checked: the SFU does that. Errors never quote the token.
 */
export function decodeLivekitJwt(jwt: unknown): LivekitJwtClaims {
  if (typeof jwt !== "string") throw new TypeError("the JWT is not a string");
  if (jwt.length > MAX_JWT_LENGTH) throw new TypeError(`the JWT is longer than ${MAX_JWT_LENGTH} characters`);
  const parts = jwt.split(".");
  if (parts.length !== 3 || parts.some((p) => p.length === 0)) {
    throw new TypeError(`the JWT does not have three non-empty parts (it has ${parts.length})`);
  }
  if (!parts.every((p) => /^[A-Za-z0-9_-]+$/.test(p))) {
    throw new TypeError("the JWT has a part that is not base64url");
  }
  let payload: { sub?: unknown; exp?: unknown; video?: { room?: unknown } };
  try {
    payload = JSON.parse(base64UrlDecode(parts[1]!)) as typeof payload;
  } catch {
    throw new TypeError("the JWT payload is not base64url-encoded JSON");
  }
  if (typeof payload !== "object" || payload === null) throw new TypeError("the JWT payload is not an object");
  const room = payload.video?.room;
  if (typeof room !== "string" || room === "") throw new TypeError("the JWT grants no LiveKit room (video.room)");
  if (typeof payload.sub !== "string" || payload.sub === "") throw new TypeError("the JWT has no subject (sub)");
  const exp = payload.exp;
  if (exp !== undefined && !(typeof exp === "number" && Number.isFinite(exp))) {
    throw new TypeError("the JWT's expiry (exp) is not a number of seconds");
  }
  return { livekitAlias: room, livekitIdentity: payload.sub, expiresAt: exp === undefined ? undefined : exp * 1000 };
}
