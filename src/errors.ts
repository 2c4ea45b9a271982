import { ConnectionErrorReason, DisconnectReason } from "livekit-client";
import type { CallErrorName } from "../machines/connection.machine";
import { scrubSecrets } from "./secret";

/** Machine-readable error codes, the same strings Element Call uses. */
export enum ErrorCode {
  OPEN_ID_ERROR = "OPEN_ID_ERROR",
  NO_MATRIX_2_AUTHORIZATION_SERVICE = "NO_MATRIX_2_0_AUTHORIZATION_SERVICE",
  INSUFFICIENT_CAPACITY_ERROR = "INSUFFICIENT_CAPACITY_ERROR",
  CONNECTION_LOST_ERROR = "CONNECTION_LOST_ERROR",
  SFU_ERROR = "SFU_ERROR",
  UNKNOWN_ERROR = "UNKNOWN_ERROR",
}

/** What kind of problem an error is, for choosing an icon or who to blame. */
export enum ErrorCategory {
  CONFIGURATION_ISSUE = "CONFIGURATION_ISSUE",
  NETWORK_CONNECTIVITY = "NETWORK_CONNECTIVITY",
  UNKNOWN = "UNKNOWN",
}

/**
 * Base class of every error the connection reports. `message` is the short title to show a person;
 * `localisedMessage` explains it; `cause` keeps the underlying error for diagnostics.
 */
export abstract class CallError extends Error {
  abstract override readonly name: CallErrorName;

  protected constructor(
    public readonly localisedTitle: string,
    public readonly code: ErrorCode,
    public readonly category: ErrorCategory,
    public readonly localisedMessage?: string,
    cause?: unknown,
  ) {
    super(localisedTitle, cause === undefined ? undefined : { cause });
  }
}

/** The OpenID token or the SFU config (the LiveKit URL and JWT) could not be obtained. */
export class FailToGetOpenIdToken extends CallError {
  override readonly name = "FailToGetOpenIdToken";
  constructor(cause: unknown) {
    super(
      "Something went wrong",
      ErrorCode.OPEN_ID_ERROR,
      ErrorCategory.CONFIGURATION_ISSUE,
      "Could not get permission to join the call from the homeserver and the call's authorisation service.",
      cause,
    );
  }
}

/**
 * The auth service has no MatrixRTC 2.0 endpoint (`/get_token`) although it was required (`forceJwtEndpoint:
 * "matrix_2_0"`): it is out of date. `cause` is the failure of `/get_token`.
 */
export class NoMatrix2AuthorizationService extends CallError {
  override readonly name = "NoMatrix2AuthorizationService";
  constructor(cause: unknown) {
    super(
      "Something went wrong",
      ErrorCode.NO_MATRIX_2_AUTHORIZATION_SERVICE,
      ErrorCategory.CONFIGURATION_ISSUE,
      "The authorization service for your media server (SFU) is out of date.",
      cause,
    );
  }
}

/** The media server is full: too many participants, tracks or connections. */
export class InsufficientCapacityError extends CallError {
  override readonly name = "InsufficientCapacityError";
  /** The HTTP status that said so (503 or 429), when there was one. */
  readonly status?: number;
  constructor(cause?: unknown, status?: number) {
    super(
      "Insufficient capacity",
      ErrorCode.INSUFFICIENT_CAPACITY_ERROR,
      ErrorCategory.UNKNOWN,
      "The media server has no room for another participant right now. Try again later; if it keeps happening, ask the server's administrator.",
      cause,
    );
    if (status !== undefined) this.status = status;
  }
}

/** A live connection was lost and could not be made again; `cause` is the last reconnect attempt's failure. */
export class ConnectionLostError extends CallError {
  override readonly name = "ConnectionLostError";
  constructor(cause?: unknown) {
    super(
      "Connection lost",
      ErrorCode.CONNECTION_LOST_ERROR,
      ErrorCategory.NETWORK_CONNECTIVITY,
      "You were disconnected from the call.",
      cause,
    );
  }
}

/** The call's LiveKit room does not exist and this user may not create it. */
export class SFURoomCreationRestrictedError extends CallError {
  override readonly name = "SFURoomCreationRestrictedError";
  constructor(cause?: unknown) {
    super(
      "Failed to create call",
      ErrorCode.SFU_ERROR,
      ErrorCategory.CONFIGURATION_ISSUE,
      "Only some users may start a call on this media server, and the call has not been started yet. Try again once someone allowed to has joined.",
      cause,
    );
  }
}

/** The media connection to the SFU could not be set up in time (often a firewall or VPN). */
export class PeerConnectionTimeoutError extends CallError {
  override readonly name = "PeerConnectionTimeoutError";
  constructor(cause?: unknown) {
    super(
      "Connection timeout",
      ErrorCode.SFU_ERROR,
      ErrorCategory.NETWORK_CONNECTIVITY,
      "Reaching the media server took too long. A different network, or turning a VPN off, may help.",
      cause,
    );
  }
}

/** LiveKit refused or failed the connection for another reason; `reasonName` says which. */
export class LivekitConnectionError extends CallError {
  override readonly name = "LivekitConnectionError";
  /** The livekit-client `ConnectionErrorReason` name, e.g. `"NotAllowed"` or `"WebSocket"`. */
  readonly reasonName: string;
  constructor(reasonName: string, cause?: unknown) {
    super(
      "Failed to connect to Livekit server",
      ErrorCode.SFU_ERROR,
      ErrorCategory.NETWORK_CONNECTIVITY,
      `The media server could not be joined (reason: ${reasonName}).`,
      cause,
    );
    this.reasonName = reasonName;
  }
}

/** Anything not foreseen. */
export class UnknownCallError extends CallError {
  override readonly name = "UnknownCallError";
  constructor(cause: unknown) {
    super(
      "Something went wrong",
      ErrorCode.UNKNOWN_ERROR,
      ErrorCategory.UNKNOWN,
      "An unexpected error stopped the call from connecting.",
      cause,
    );
  }
}

export type { CallErrorName };

export function isCallError(value: unknown): value is CallError {
  return value instanceof CallError;
}

/** `wrap(value)`, the same wrapper each time for the same object. */
function wrapperOf<E extends CallError>(cache: WeakMap<object, E>, value: unknown, wrap: (v: unknown) => E): E {
  if (typeof value !== "object" || value === null) return wrap(value);
  let wrapper = cache.get(value);
  if (!wrapper) cache.set(value, (wrapper = wrap(value)));
  return wrapper;
}

const unknownWrappers = new WeakMap<object, UnknownCallError>();
const lostWrappers = new WeakMap<object, ConnectionLostError>();

/**
 * Wraps anything that is not already a CallError as an UnknownCallError: the same wrapper each time for the same
 * object, so that state$ shows one failure once and start() rejects with what state$ shows.
 */
export function toCallError(value: unknown): CallError {
  return isCallError(value) ? value : wrapperOf(unknownWrappers, value, (v) => new UnknownCallError(v));
}

/** The ConnectionLostError of a last reconnect attempt's failure: the same one each time for the same failure. */
export function toConnectionLostError(lastFailure: unknown): ConnectionLostError {
  return wrapperOf(lostWrappers, lastFailure, (v) => new ConnectionLostError(v));
}

/** The fields of livekit-client's `ConnectionError` this package reads. */
interface ConnectionErrorLike {
  name: "ConnectionError";
  reason: number;
  status?: number;
  context?: unknown;
  message: string;
}

export function isConnectionError(e: unknown): e is ConnectionErrorLike {
  // Duck-typed rather than `instanceof`, so errors from a second copy of livekit-client are recognised too.
  return (
    e instanceof Error && e.name === "ConnectionError" && typeof (e as Partial<ConnectionErrorLike>).reason === "number"
  );
}

export function statusOf(e: ConnectionErrorLike): number | undefined {
  if (typeof e.status === "number") return e.status;
  const ctx = e.context as { status?: unknown } | undefined;
  return ctx && typeof ctx === "object" && typeof ctx.status === "number" ? ctx.status : undefined;
}

/**
 * Maps a failure of `room.connect()` to a CallError. Decides on `reason` (numeric), never on `reasonName`,
 * which livekit-client does not update when it re-wraps signal errors. Pass the JWT the connect was given:
 * LiveKit's 401 body quotes it, and livekit-client puts that body in the error's message; it is scrubbed from
 * the error and its causes before they travel on to state$, logs and inspection events.
 */
export function mapConnectError(e: unknown, jwt?: string): CallError {
  if (jwt !== undefined) scrubSecrets(e, [jwt]);
  if (isCallError(e)) return e;
  if (!isConnectionError(e)) return new UnknownCallError(e);
  const status = statusOf(e);
  // 503: node over its configured limits; 429: connection limits of hosted LiveKit or a proxy. (A 200 only says
  // that the token was fine: element-call #3813.)
  if (status === 503 || status === 429) return new InsufficientCapacityError(e, status);
  // A full room is refused after the WebSocket opened, with a leave request carrying JOIN_FAILURE.
  if (e.reason === ConnectionErrorReason.LeaveRequest && e.context === DisconnectReason.JOIN_FAILURE) {
    return new InsufficientCapacityError(e);
  }
  if (status === 404) return new SFURoomCreationRestrictedError(e);
  if (
    e.reason === ConnectionErrorReason.Timeout ||
    (e.reason === ConnectionErrorReason.InternalError && /could not establish pc connection/i.test(e.message))
  ) {
    return new PeerConnectionTimeoutError(e);
  }
  return new LivekitConnectionError(ConnectionErrorReason[e.reason] ?? `Unknown(${e.reason})`, e);
}
