/**
 * The MatrixRTC auth service (lk-jwt-service) client: `POST /get_token`, falling back to the legacy `/sfu/get`,
 * with matrix-js-sdk's retry policy; the whole fetch, OpenID token first; and `POST /delegate_delayed_leave`.
 */
import type { DelayedLeave } from "../machines/connection.machine";
import { FailToGetOpenIdToken, NoMatrix2AuthorizationService } from "./errors";
import { silentLogger } from "./logger";
import { requestOpenIdToken } from "./openId";
import { abortable, describe, withOwnSignal, withRetry } from "./retry";
import { redact, scrubSecrets } from "./secret";
import { checkSFUConfig } from "./sfuConfig";
import { checkDelayedLeave, checkJwtEndpoint } from "./options";
import { checkTransportUrl } from "./transportUrl";
import type {
  CallMembershipIdentityParts,
  JwtEndpointVersion,
  Logger,
  OpenIDClientParts,
  OpenIDToken,
  RetryOptions,
  SFUConfig,
} from "./types";

/** The slot every MatrixRTC call uses today (MSC4143). */
export const CALL_SLOT_ID = "m.call#ROOM";

const MAX_BODY_IN_ERROR = 300;

/** The auth service's URL, if the OpenID token may be sent there (see checkTransportUrl). */
export function checkServiceUrl(serviceUrl: string, allowInsecureTransport = false): URL {
  return checkTransportUrl(serviceUrl, "The auth service URL", "http", allowInsecureTransport);
}

/** A failure talking to the auth service: HTTP status, Matrix `errcode` and the start of the body. */
export class SFUConfigError extends Error {
  override readonly name = "SFUConfigError";
  readonly endpoint: string;
  readonly httpStatus?: number;
  readonly errcode?: string;
  readonly body?: string;
  readonly retryAfterMs?: number;

  constructor(
    message: string,
    details: { endpoint: string; httpStatus?: number; errcode?: string; body?: string; retryAfterMs?: number },
    cause?: unknown,
  ) {
    super(message, cause === undefined ? undefined : { cause });
    this.endpoint = details.endpoint;
    this.httpStatus = details.httpStatus;
    this.errcode = details.errcode;
    this.body = details.body;
    this.retryAfterMs = details.retryAfterMs;
  }
}

export interface SFUConfigRequestOptions {
  fetch?: typeof globalThis.fetch;
  retry?: RetryOptions;
  signal?: AbortSignal;
  logger?: Logger;
  allowInsecureTransport?: boolean;
  /** When the request must be over (ms since the epoch): a retry that would come later is not made. */
  deadline?: number;
  forceJwtEndpoint?: JwtEndpointVersion;
  /** Its fields go with the token request (`delay_id`, `delay_timeout`, `delay_cs_api_url`). */
  delayedLeave?: DelayedLeave;
}

/** The fields of a delayed leave in lk-jwt-service's requests. */
function delayFields(d: DelayedLeave): Record<string, unknown> {
  return {
    delay_id: d.delayId,
    delay_timeout: d.delayTimeoutMs,
    ...(d.csApiUrl !== undefined && { delay_cs_api_url: d.csApiUrl }),
  };
}

/**
 * An older auth service refuses fields it does not know: 400 M_BAD_JSON from `/sfu/get` (what Element Call
 * looks for), 400 M_NOT_JSON from the `/get_token` of lk-jwt-service v0.4 (our body is JSON: only the fields
 * can be what it could not read).
 */
const refusesUnknownFields = (e: unknown): boolean =>
  e instanceof SFUConfigError && e.httpStatus === 400 && (e.errcode === "M_BAD_JSON" || e.errcode === "M_NOT_JSON");

/** The body of the MatrixRTC 2.0 requests (`/get_token`, `/delegate_delayed_leave`): the call and its member. */
const matrix2Body = (openIdToken: OpenIDToken, m: CallMembershipIdentityParts, roomId: string) => ({
  room_id: roomId,
  slot_id: CALL_SLOT_ID,
  openid_token: openIdToken,
  member: { id: m.memberId, claimed_user_id: m.userId, claimed_device_id: m.deviceId },
});

/** What every request to the auth service starts from: its checked URL, the fetch, the signal, the logger. */
function serviceClient(serviceUrl: string, options: SFUConfigRequestOptions) {
  const base = checkServiceUrl(serviceUrl, options.allowInsecureTransport).href.replace(/\/+$/, "");
  return {
    endpoint: (path: string): string => base + path,
    fetchFn: options.fetch ?? globalThis.fetch.bind(globalThis),
    signal: options.signal ?? new AbortController().signal,
    logger: options.logger ?? silentLogger,
  };
}

const utf8 = /* @__PURE__ */ new TextDecoder();

/** The most of an answer that is read: an SFU config is a few hundred bytes. */
const MAX_BODY_BYTES = 256 * 1024;

/** The body as text, refused past MAX_BODY_BYTES instead of read to the end. */
async function readText(res: Response): Promise<string> {
  const reader = res.body?.getReader();
  if (!reader) return "";
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_BODY_BYTES) {
      void reader.cancel().catch(() => {});
      throw new RangeError(`the answer is longer than ${MAX_BODY_BYTES} bytes`);
    }
    chunks.push(value);
  }
  const all = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) all.set(c, (at += c.byteLength) - c.byteLength);
  return utf8.decode(all);
}

/** Retry-After as matrix-js-sdk reads it: whole seconds or an HTTP date. */
function retryAfterHeaderMs(value: string | null): number | undefined {
  if (value === null) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/**
 * POSTs `body` as JSON and returns the answer's JSON (undefined for an empty 2xx answer when `emptyAnswerOk`).
 * `secrets` are redacted from every error.
 */
async function postJson(
  fetchFn: typeof globalThis.fetch,
  endpoint: string,
  body: unknown,
  outer: AbortSignal,
  secrets: string[],
  emptyAnswerOk = false,
): Promise<unknown> {
  return withOwnSignal(outer, (signal) => postJsonWith(fetchFn, endpoint, body, signal, secrets, emptyAnswerOk));
}

async function postJsonWith(
  fetchFn: typeof globalThis.fetch,
  endpoint: string,
  body: unknown,
  signal: AbortSignal,
  secrets: string[],
  emptyAnswerOk: boolean,
): Promise<unknown> {
  // `abortable` around both awaits: an abort (a stop, the phase's time limit) ends the wait even when a fetch
  // ignores its signal or a body never ends.
  let res: Response;
  let text: string;
  try {
    res = await abortable(
      fetchFn(endpoint, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify(body),
        signal,
        // A redirect would re-send the OpenID token to a place checkTransportUrl never saw.
        redirect: "error",
      }),
      signal,
    );
  } catch (e) {
    if (signal.aborted) throw signal.reason;
    scrubSecrets(e, secrets);
    throw new SFUConfigError(`POST ${endpoint} failed: ${describe(e)}`, { endpoint }, e);
  }
  try {
    text = redact(await abortable(readText(res), signal), secrets);
  } catch (e) {
    if (signal.aborted) throw signal.reason;
    scrubSecrets(e, secrets);
    // Cut mid-body (a reset after the headers), or too long: with the answer's status, so a cut 5xx or 200 is
    // retried like a reset before the status line, and a cut 4xx is as final as a whole one.
    throw new SFUConfigError(
      `POST ${endpoint} answered ${res.status}, then the body failed: ${describe(e)}`,
      {
        endpoint,
        httpStatus: res.ok ? undefined : res.status,
        retryAfterMs: retryAfterHeaderMs(res.headers.get("Retry-After")),
      },
      e,
    );
  }
  let json: unknown = undefined;
  try {
    json = JSON.parse(text);
  } catch {
    // handled below
  }
  if (!res.ok) {
    const { errcode, error, retry_after_ms } = (typeof json === "object" && json !== null ? json : {}) as {
      errcode?: unknown;
      error?: unknown;
      retry_after_ms?: unknown;
    };
    const detail = typeof error === "string" ? error : text.slice(0, MAX_BODY_IN_ERROR);
    throw new SFUConfigError(
      `POST ${endpoint} answered ${res.status}${typeof errcode === "string" ? ` ${errcode}` : ""}: ${detail}`,
      {
        endpoint,
        httpStatus: res.status,
        errcode: typeof errcode === "string" ? errcode : undefined,
        body: text.slice(0, MAX_BODY_IN_ERROR),
        // The header wins; the body's retry_after_ms is the deprecated fallback (as in matrix-js-sdk).
        retryAfterMs:
          retryAfterHeaderMs(res.headers.get("Retry-After")) ??
          (typeof retry_after_ms === "number" ? retry_after_ms : undefined),
      },
    );
  }
  if (json === undefined && !(emptyAnswerOk && text.trim() === "")) {
    throw new SFUConfigError(`POST ${endpoint} answered ${res.status} with a body that is not JSON`, {
      endpoint,
      httpStatus: res.status,
    });
  }
  return json;
}

/**
 * Trades an OpenID token for the SFU config at a MatrixRTC auth service (lk-jwt-service): `POST /get_token`,
 * and, if that fails in any way, the legacy `POST /sfu/get` (`forceJwtEndpoint` keeps to one of them). Once
 * `/get_token` answered 404 or 405 later attempts go straight to `/sfu/get`. With `delayedLeave` its fields go
 * in the request, and are left out of a second one if the service refuses them with 400 M_BAD_JSON or M_NOT_JSON (the
 * answer's `delayFieldsAccepted` says which). Redirects are refused. Throws SFUConfigError,
 * InsecureTransportError or TypeError.
 */
export async function requestSFUConfig(
  openIdToken: OpenIDToken,
  membership: CallMembershipIdentityParts,
  serviceUrl: string,
  roomId: string,
  options: SFUConfigRequestOptions = {},
): Promise<SFUConfig> {
  const forced = checkJwtEndpoint(options.forceJwtEndpoint);
  const delayed = checkDelayedLeave(options.delayedLeave);
  const { endpoint, fetchFn, signal, logger } = serviceClient(serviceUrl, options);
  // The delay id is a capability too: whoever has it can send or postpone the leave.
  const secrets = delayed ? [openIdToken.access_token, delayed.delayId] : [openIdToken.access_token];
  /** Once refused with M_BAD_JSON, the delay fields are left out of every later request. */
  let delayFieldsRefused = false;

  /** POSTs `body` (with the delay fields while they are not refused) and checks the answer. */
  const ask = async (path: string, body: Record<string, unknown>): Promise<SFUConfig> => {
    logger.debug(`POST ${endpoint(path)}`);
    const post = (withDelay: boolean): Promise<unknown> =>
      postJson(fetchFn, endpoint(path), withDelay ? { ...body, ...delayFields(delayed!) } : body, signal, secrets);
    let answer: unknown;
    if (delayed && !delayFieldsRefused) {
      try {
        answer = await post(true);
      } catch (e) {
        if (!refusesUnknownFields(e)) throw e;
        delayFieldsRefused = true;
        logger.info(`${path} refused the delayed leave's fields (${describe(e)}); asking again without them`);
        answer = await post(false);
      }
    } else {
      answer = await post(false);
    }
    const config = checkSFUConfig(answer, `the answer of ${path}`, options.allowInsecureTransport ?? false);
    return delayed ? { ...config, delayFieldsAccepted: !delayFieldsRefused } : config;
  };
  const viaGetToken = (): Promise<SFUConfig> => ask("/get_token", matrix2Body(openIdToken, membership, roomId));
  const viaLegacy = (): Promise<SFUConfig> =>
    ask("/sfu/get", { room: roomId, openid_token: openIdToken, device_id: membership.deviceId });

  // One attempt: /get_token, then /sfu/get if that failed. While /get_token exists (it did not answer 404 or
  // 405), its failure is the one that decides about retrying and is reported; the legacy one is logged.
  let newEndpointMissing = forced === "legacy";
  const attempt = async (): Promise<SFUConfig> => {
    if (newEndpointMissing) return viaLegacy();
    if (forced === "matrix_2_0") return viaGetToken();
    try {
      return await viaGetToken();
    } catch (primary) {
      if (signal.aborted) throw signal.reason;
      const status = (primary as { httpStatus?: number }).httpStatus;
      newEndpointMissing = status === 404 || status === 405;
      logger.debug(`/get_token failed (${describe(primary)}); trying the legacy /sfu/get`);
      try {
        return await viaLegacy();
      } catch (legacy) {
        if (newEndpointMissing || signal.aborted) throw legacy;
        logger.debug(`/sfu/get failed too (${describe(legacy)})`);
        throw primary;
      }
    }
  };

  return withRetry("SFU config request", attempt, {
    retry: options.retry,
    signal,
    logger,
    deadline: options.deadline,
  });
}

/**
 * The whole fetch: an OpenID token from the homeserver, then the SFU config from the auth service at
 * `serviceUrl` for the Matrix room `roomId`. Every failure is a `FailToGetOpenIdToken` whose `cause` says what
 * went wrong; with `forceJwtEndpoint: "matrix_2_0"` a failure of `/get_token` is a NoMatrix2AuthorizationService
 * instead (not an abort or time limit, nor malformed input, which say nothing about the service's age).
 */
export async function getSFUConfigWithOpenID(
  client: OpenIDClientParts,
  membership: CallMembershipIdentityParts,
  serviceUrl: string,
  roomId: string,
  options: SFUConfigRequestOptions = {},
): Promise<SFUConfig> {
  let token: OpenIDToken;
  try {
    // No OpenID token is asked for on behalf of a service it would not be sent to, nor with malformed options.
    checkServiceUrl(serviceUrl, options.allowInsecureTransport);
    checkJwtEndpoint(options.forceJwtEndpoint);
    checkDelayedLeave(options.delayedLeave);
    token = await requestOpenIdToken(client, options);
  } catch (e) {
    throw new FailToGetOpenIdToken(e);
  }
  try {
    return await requestSFUConfig(token, membership, serviceUrl, roomId, options);
  } catch (e) {
    throw sfuConfigFailure(e, options.forceJwtEndpoint);
  }
}

/**
 * The CallError of a failed SFU config request: with `/get_token` required, its failure says that the service is
 * old — unless it was an abort, a time limit or malformed input.
 */
export function sfuConfigFailure(e: unknown, forceJwtEndpoint: JwtEndpointVersion | undefined): Error {
  const aborted = e instanceof Error && (e.name === "AbortError" || e.name === "TimeoutError");
  return forceJwtEndpoint === "matrix_2_0" && !aborted && !(e instanceof TypeError)
    ? new NoMatrix2AuthorizationService(e)
    : new FailToGetOpenIdToken(e);
}

/**
 * Hands a delayed leave over to the auth service: `POST {service}/delegate_delayed_leave` with the call, the
 * member, a fresh OpenID token and the delayed event (lk-jwt-service after v0.5.0). Retries like the token
 * request. Throws SFUConfigError, InsecureTransportError or TypeError.
 */
export async function delegateDelayedLeave(
  openIdToken: OpenIDToken,
  membership: CallMembershipIdentityParts,
  serviceUrl: string,
  roomId: string,
  delayedLeave: DelayedLeave,
  options: Omit<SFUConfigRequestOptions, "forceJwtEndpoint" | "delayedLeave"> = {},
): Promise<void> {
  const delayed = checkDelayedLeave(delayedLeave);
  if (!delayed) throw new TypeError("delayedLeave is required");
  const { endpoint, fetchFn, signal, logger } = serviceClient(serviceUrl, options);
  const body = { ...matrix2Body(openIdToken, membership, roomId), ...delayFields(delayed) };
  const secrets = [openIdToken.access_token, delayed.delayId];
  const url = endpoint("/delegate_delayed_leave");
  await withRetry("Delayed leave delegation", () => postJson(fetchFn, url, body, signal, secrets, true), {
    retry: options.retry,
    signal,
    logger,
    deadline: options.deadline,
  });
}
