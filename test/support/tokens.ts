import { createHmac } from "node:crypto";

const b64url = (s: string | Buffer): string => Buffer.from(s).toString("base64url");

/**
 * A signed HS256 JWT shaped like lk-jwt-service's: `sub` is the identity, `video.room` the alias, valid for an hour
 * (or `expiresInS` seconds; negative: expired).
 */
export function makeLivekitJwt(
  claims: { sub?: string; room?: string; expiresInS?: number; extra?: Record<string, unknown> } = {},
  secret = "test-secret-test-secret-test-secret",
): string {
  const header = b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const now = Math.floor(Date.now() / 1000);
  const payload = b64url(
    JSON.stringify({
      iss: "devkey",
      sub: claims.sub ?? "@alice:localhost:DEVICE",
      nbf: now,
      exp: now + (claims.expiresInS ?? 3600),
      video: { room: claims.room ?? "AliasOfTheRoom", roomJoin: true, canPublish: true, canSubscribe: true },
      ...claims.extra,
    }),
  );
  const sig = createHmac("sha256", secret).update(`${header}.${payload}`).digest("base64url");
  return `${header}.${payload}.${sig}`;
}

export const ACCESS_TOKEN = "openid-access-token-SECRET-0123456789";

export function openIdToken(accessToken = ACCESS_TOKEN) {
  return { access_token: accessToken, token_type: "Bearer", matrix_server_name: "localhost:8448", expires_in: 3600 };
}
