/** Which URLs may carry credentials: TLS everywhere, plain text only to this machine (or when allowed). */

/** A URL that would carry credentials in clear text to a host that is not this machine. */
export class InsecureTransportError extends TypeError {
  override readonly name = "InsecureTransportError";
}

const LOOPBACK = /^(localhost|127(\.\d{1,3}){3}|\[::1\])$/i;

/**
 * Parses `raw` and checks its scheme: `https:`/`wss:` always pass, `http:`/`ws:` only to a loopback host or
 * when `allowInsecureTransport` is set. Throws a TypeError for anything unparsable or of another scheme.
 */
export function checkTransportUrl(
  raw: string,
  what: string,
  schemes: "http" | "http-or-ws",
  allowInsecureTransport = false,
): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new TypeError(`${what} is not a valid URL: ${JSON.stringify(String(raw).slice(0, 200))}`);
  }
  const secure = schemes === "http" ? ["https:"] : ["https:", "wss:"];
  const insecure = schemes === "http" ? ["http:"] : ["http:", "ws:"];
  if (secure.includes(url.protocol)) return url;
  if (!insecure.includes(url.protocol)) {
    throw new TypeError(`${what} must use ${[...secure, ...insecure].join(" or ")}, not ${url.protocol}`);
  }
  if (!allowInsecureTransport && !LOOPBACK.test(url.hostname)) {
    throw new InsecureTransportError(
      `${what} (${url.origin}) is not encrypted; use ${secure.join("/")} or set allowInsecureTransport`,
    );
  }
  return url;
}
