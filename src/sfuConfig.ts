import { decodeLivekitJwt, type LivekitJwtClaims } from "./livekitJwt";
import { checkTransportUrl } from "./transportUrl";
import type { SFUConfig } from "./types";

/**
 * The one check of an SFU config, the auth service's answer or a caller's `existingSFUConfig` alike: an object
 * with a `url` that may carry the JWT (`wss:`, or `ws:` to this machine) and a JWT whose payload names the
 * LiveKit room and identity. The alias, identity and expiry are read from the JWT, which is what the SFU goes by;
 * the config's own `livekitAlias`, `livekitIdentity` and `expiresAt`, if any, are not used. Throws a TypeError naming `what`
 * (`existingSFUConfig`, or where the answer came from).
 */
export function checkSFUConfig(
  config: unknown,
  what: string,
  allowInsecureTransport: boolean,
): SFUConfig & LivekitJwtClaims {
  if (typeof config !== "object" || config === null) throw new TypeError(`${what} is not a JSON object`);
  const { url, jwt } = config as { url?: unknown; jwt?: unknown };
  if (typeof url !== "string") throw new TypeError(`${what} has no url`);
  checkTransportUrl(url, `${what}.url`, "http-or-ws", allowInsecureTransport);
  return { url, jwt: jwt as string, ...decodeLivekitJwt(jwt) };
}
