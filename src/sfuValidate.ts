/**
 * Asking the SFU why a connect failed, where livekit-client does not say: after a WebSocket failure it asks
 * LiveKit's validate endpoint itself but keeps only 401, 403 and 404, so the 503 of a node over its limits (or
 * a proxy's 429) reaches the app as a bare WebSocket error.
 */
import { ConnectionErrorReason } from "livekit-client";
import { isConnectionError, statusOf } from "./errors";
import { checkTransportUrl } from "./transportUrl";

/** livekit-client waits as long for its own validate request. */
export const VALIDATE_TIMEOUT_MS = 3000;

/** A failed connect whose cause livekit-client dropped: the WebSocket failed and no status was kept. */
export function isUnexplainedWebSocketFailure(e: unknown): boolean {
  return (
    isConnectionError(e) &&
    (e.reason === ConnectionErrorReason.WebSocket || e.reason === ConnectionErrorReason.ServerUnreachable) &&
    statusOf(e) === undefined
  );
}

/**
 * LiveKit's validate URL for an SFU URL: `ws` → `http`, `wss` → `https`, `/rtc/validate` after the path (the v0
 * route: v1's wants a whole join request). The same transport rule as for the SFU URL itself.
 */
export function validateUrlOf(sfuUrl: string, allowInsecureTransport: boolean): URL {
  const url = checkTransportUrl(sfuUrl, "the SFU URL", "http-or-ws", allowInsecureTransport);
  if (url.protocol === "ws:") url.protocol = "http:";
  else if (url.protocol === "wss:") url.protocol = "https:";
  url.pathname = `${url.pathname.replace(/\/$/, "")}/rtc/validate`;
  url.search = "";
  url.hash = "";
  return url;
}

/**
 * The status of `GET /rtc/validate` with the JWT as a Bearer token (never in the URL, which could be logged),
 * without reading the body. Rejects if the request fails or `signal` aborts.
 */
export async function validateStatus(
  sfuUrl: string,
  jwt: string,
  options: { fetch: typeof globalThis.fetch; signal: AbortSignal; allowInsecureTransport: boolean },
): Promise<number> {
  const fetch = options.fetch; // called as a method of `options`, the browser's fetch throws "Illegal invocation"
  const response = await fetch(validateUrlOf(sfuUrl, options.allowInsecureTransport), {
    headers: { authorization: `Bearer ${jwt}` },
    signal: options.signal,
  });
  await response.body?.cancel().catch(() => {});
  return response.status;
}
