/**
 * The options of a connection, checked once, by type, before anything is made: a mistake is a TypeError that
 * names the option, never a failure later or a "Cannot read properties of undefined".
 */
import type { InspectionEvent } from "xstate";
import {
  DEFAULT_JWT_MARGIN_MS,
  DEFAULT_RECONNECT_POLICY,
  type DelayedLeave,
  type ReconnectPolicy,
  type SFUCredentials,
} from "../machines/connection.machine";
import type { ConnectionDeps } from "./actors";
import { DEFAULT_RETRY, MAX_TIMER_MS } from "./retry";
import { Secret } from "./secret";
import { checkSFUConfig } from "./sfuConfig";
import { checkTransportUrl } from "./transportUrl";
import type {
  ConnectionActorOptions,
  JwtEndpointVersion,
  LivekitRoomLike,
  LivekitTransportConfig,
  Logger,
  TimeoutOptions,
} from "./types";

export const DEFAULT_TIMEOUTS: Required<TimeoutOptions> = {
  openIdTokenMs: 60_000,
  sfuConfigMs: 60_000,
  disconnectMs: 10_000,
};

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null;

function requireString(value: unknown, what: string): void {
  if (typeof value !== "string" || value === "") throw new TypeError(`${what} must be a non-empty string`);
}

function optionalBoolean(value: unknown, what: string): boolean | undefined {
  if (value !== undefined && typeof value !== "boolean") {
    throw new TypeError(
      `${what} must be a boolean, not ${typeof value === "string" ? JSON.stringify(value) : typeof value}`,
    );
  }
  return value;
}

/** A number of milliseconds a timer can wait, or undefined for the default. */
function optionalDelay(value: unknown, what: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0 || value > MAX_TIMER_MS) {
    throw new TypeError(`${what} must be a number of milliseconds from 0 to ${MAX_TIMER_MS}, not ${String(value)}`);
  }
  return value;
}

function optionalObject(value: unknown, what: string): Record<string, unknown> | undefined {
  if (value !== undefined && !isObject(value)) throw new TypeError(`${what} must be an object`);
  return value;
}

function checkRetry(value: unknown): ConnectionDeps["retry"] {
  const retry = optionalObject(value, "retry");
  if (!retry) return undefined;
  const maxAttempts = retry.maxAttempts;
  if (maxAttempts !== undefined && !(Number.isInteger(maxAttempts) && (maxAttempts as number) >= 1)) {
    throw new TypeError(`retry.maxAttempts must be a whole number of at least 1, not ${String(maxAttempts)}`);
  }
  return {
    maxAttempts: (maxAttempts as number | undefined) ?? DEFAULT_RETRY.maxAttempts,
    initialDelayMs: optionalDelay(retry.initialDelayMs, "retry.initialDelayMs") ?? DEFAULT_RETRY.initialDelayMs,
  };
}

export function checkJwtEndpoint(value: unknown): JwtEndpointVersion | undefined {
  if (value !== undefined && value !== "legacy" && value !== "matrix_2_0") {
    throw new TypeError(`forceJwtEndpoint must be "legacy" or "matrix_2_0", not ${JSON.stringify(value)}`);
  }
  return value;
}

/** The delayed leave, checked (null: none). Keep it in a Secret: its id is a capability. */
export function checkDelayedLeave(value: unknown): DelayedLeave | undefined {
  if (value == null) return undefined;
  const d = optionalObject(value, "delayedLeave")!;
  requireString(d.delayId, "delayedLeave.delayId");
  const delayTimeoutMs = d.delayTimeoutMs;
  // lk-jwt-service reads it as a whole number above 0 (a fraction is unreadable JSON to it, 0 a bad request).
  if (
    !Number.isInteger(delayTimeoutMs) ||
    (delayTimeoutMs as number) < 1 ||
    (delayTimeoutMs as number) > MAX_TIMER_MS
  ) {
    throw new TypeError(
      `delayedLeave.delayTimeoutMs must be a whole number of milliseconds from 1 to ${MAX_TIMER_MS}, not ${String(delayTimeoutMs)}`,
    );
  }
  if (d.csApiUrl !== undefined) requireString(d.csApiUrl, "delayedLeave.csApiUrl");
  return {
    delayId: d.delayId as string,
    delayTimeoutMs: delayTimeoutMs as number,
    ...(d.csApiUrl !== undefined && { csApiUrl: d.csApiUrl as string }),
  };
}

/** The delayed leave as the chart keeps it: checked, inside a Secret. */
export function sealedDelayedLeave(value: unknown): Secret<DelayedLeave> | undefined {
  const checked = checkDelayedLeave(value);
  return checked && new Secret(checked);
}

function checkReconnect(value: unknown): ReconnectPolicy | false {
  if (value === false) return false;
  const r = optionalObject(value, "reconnect (false or an object)") ?? {};
  const maxAttempts = r.maxAttempts;
  if (maxAttempts !== undefined && !(Number.isInteger(maxAttempts) && (maxAttempts as number) >= 1)) {
    throw new TypeError(
      `reconnect.maxAttempts must be a whole number of at least 1 (false turns reconnecting off), not ${String(maxAttempts)}`,
    );
  }
  const policy = {
    maxAttempts: (maxAttempts as number | undefined) ?? DEFAULT_RECONNECT_POLICY.maxAttempts,
    initialDelayMs:
      optionalDelay(r.initialDelayMs, "reconnect.initialDelayMs") ?? DEFAULT_RECONNECT_POLICY.initialDelayMs,
    maxDelayMs: optionalDelay(r.maxDelayMs, "reconnect.maxDelayMs") ?? DEFAULT_RECONNECT_POLICY.maxDelayMs,
  };
  if (policy.maxDelayMs < policy.initialDelayMs) {
    throw new TypeError(
      `reconnect.maxDelayMs (${policy.maxDelayMs}) must not be less than reconnect.initialDelayMs (${policy.initialDelayMs})`,
    );
  }
  return policy;
}

function checkTimeouts(value: unknown): ConnectionDeps["timeouts"] {
  const t = optionalObject(value, "timeouts") ?? {};
  return {
    openIdTokenMs: optionalDelay(t.openIdTokenMs, "timeouts.openIdTokenMs") ?? DEFAULT_TIMEOUTS.openIdTokenMs,
    sfuConfigMs: optionalDelay(t.sfuConfigMs, "timeouts.sfuConfigMs") ?? DEFAULT_TIMEOUTS.sfuConfigMs,
    disconnectMs: optionalDelay(t.disconnectMs, "timeouts.disconnectMs") ?? DEFAULT_TIMEOUTS.disconnectMs,
  };
}

/** The options every connection of a call shares (all but the transport, its SFU config, the room, the logger). */
export type SharedOptions = Omit<ConnectionActorOptions, "room" | "logger" | "transport" | "existingSFUConfig">;

/** Shared options checked once and turned into what the machine takes. */
export interface CheckedSharedOptions {
  reconnect: ReconnectPolicy | false;
  jwtMarginMs: number;
  delayedLeave: Secret<DelayedLeave> | undefined;
  deps: Omit<ConnectionDeps, "room" | "logger" | "transport">;
}

/** Options checked once, before the room is made, and turned into what the machine takes. */
export interface CheckedOptions extends CheckedSharedOptions {
  existingSFUConfig: SFUCredentials | undefined;
  deps: Omit<ConnectionDeps, "room" | "logger">;
}

/** A MatrixRTC LiveKit transport whose auth-service URL is an http(s) URL (`what` names it in the error). */
export function checkTransport(value: unknown, what = "transport"): asserts value is LivekitTransportConfig {
  if (!isObject(value) || value.type !== "livekit") throw new TypeError(`${what}.type must be "livekit"`);
  requireString(value.livekit_service_url, `${what}.livekit_service_url`);
  // Whether plain http may be used is decided when it is used.
  checkTransportUrl(value.livekit_service_url as string, `${what}.livekit_service_url`, "http", true);
}

/** An SFU config given by the app, checked, its JWT sealed. */
export function checkedSFUCredentials(value: unknown, what: string, allowInsecureTransport: boolean): SFUCredentials {
  const checked = checkSFUConfig(value, what, allowInsecureTransport);
  return { ...checked, jwt: new Secret(checked.jwt) };
}

/**
 * Checks everything but the room and the logger. (An insecure `existingSFUConfig.url` is an
 * InsecureTransportError, which is a TypeError too.)
 */
export function checkConnectionOptions(o: Omit<ConnectionActorOptions, "room">): CheckedOptions {
  const shared = checkSharedOptions(o);
  checkTransport(o.transport);
  return {
    ...shared,
    existingSFUConfig:
      o.existingSFUConfig == null
        ? undefined
        : checkedSFUCredentials(o.existingSFUConfig, "existingSFUConfig", shared.deps.allowInsecureTransport),
    deps: { ...shared.deps, transport: o.transport },
  };
}

/** Checks the options every connection of a call shares (a ConnectionManager's, a Connection's but its transport). */
export function checkSharedOptions(o: SharedOptions): CheckedSharedOptions {
  if (!isObject(o)) throw new TypeError("options are required");
  if (!isObject(o.client) || typeof o.client.getOpenIdToken !== "function") {
    throw new TypeError("client.getOpenIdToken must be a function");
  }
  requireString(o.roomId, "roomId");
  if (!isObject(o.ownMembershipIdentity)) throw new TypeError("ownMembershipIdentity must be an object");
  requireString(o.ownMembershipIdentity.userId, "ownMembershipIdentity.userId");
  requireString(o.ownMembershipIdentity.deviceId, "ownMembershipIdentity.deviceId");
  requireString(o.ownMembershipIdentity.memberId, "ownMembershipIdentity.memberId");
  if (o.fetch !== undefined && typeof o.fetch !== "function") throw new TypeError("fetch must be a function");
  checkInspectShape(o.inspect);
  const signal: unknown = (o as { signal?: unknown }).signal;
  if (signal != null && !(signal instanceof AbortSignal)) throw new TypeError("signal must be an AbortSignal");
  if (o.machine !== undefined && !isObject(o.machine?.root)) throw new TypeError("machine must be a state machine");
  const clock = optionalObject(o.clock, "clock");
  if (clock && (typeof clock.setTimeout !== "function" || typeof clock.clearTimeout !== "function")) {
    throw new TypeError("clock must have setTimeout() and clearTimeout()");
  }
  return {
    reconnect: checkReconnect(o.reconnect),
    delayedLeave: sealedDelayedLeave(o.delayedLeave),
    jwtMarginMs: optionalDelay(o.jwtMarginMs, "jwtMarginMs") ?? DEFAULT_JWT_MARGIN_MS,
    deps: {
      client: o.client,
      roomId: o.roomId,
      ownMembershipIdentity: o.ownMembershipIdentity,
      fetch: o.fetch,
      retry: checkRetry(o.retry),
      forceJwtEndpoint: checkJwtEndpoint(o.forceJwtEndpoint),
      timeouts: checkTimeouts(o.timeouts),
      allowInsecureTransport: optionalBoolean(o.allowInsecureTransport, "allowInsecureTransport") ?? false,
    },
  };
}

/** The surface of livekit-client's `Room` this package uses. */
export function checkRoom(room: unknown): asserts room is LivekitRoomLike {
  if (!isObject(room)) throw new TypeError("the room must be an object (a livekit-client Room)");
  for (const m of ["connect", "disconnect", "on", "off"] as const) {
    if (typeof room[m] !== "function") throw new TypeError(`the room has no ${m}() method`);
  }
  const participants = room.remoteParticipants as { values?: unknown; keys?: unknown } | undefined;
  if (!isObject(participants) || typeof participants.values !== "function" || typeof participants.keys !== "function") {
    throw new TypeError("the room has no remoteParticipants map");
  }
  if (typeof room.state !== "string") throw new TypeError("the room has no state");
}

const LOG_METHODS = ["debug", "info", "warn", "error"] as const;

/** matrix-js-sdk's logger shape, its `getChild` included (which must give a logger too). */
export function checkLogger(logger: unknown, what = "logger"): asserts logger is Logger {
  if (!isObject(logger)) throw new TypeError(`${what} must be a logger (debug, info, warn, error, getChild)`);
  for (const m of [...LOG_METHODS, "getChild"] as const) {
    if (typeof logger[m] !== "function") throw new TypeError(`${what}.${m} must be a function`);
  }
}

/** A child logger, checked: a `getChild` that returns nothing is a malformed logger. */
export function childLogger(logger: Logger, namespace: string): Logger {
  const child: unknown = logger.getChild(namespace);
  checkLogger(child, "logger.getChild()");
  return child;
}

function checkInspectShape(inspect: unknown): void {
  const next = typeof inspect === "function" ? inspect : isObject(inspect) ? inspect.next : undefined;
  if (inspect !== undefined && typeof next !== "function") {
    throw new TypeError("inspect must be a function or an observer with next()");
  }
}

/**
 * The `inspect` option as xstate takes it, made safe: an observer that throws is logged (once) and the
 * connection goes on (a broken devtool must not break a call).
 */
export function guardInspect(
  inspect: ConnectionActorOptions["inspect"],
  logger: Logger,
): ((event: InspectionEvent) => void) | undefined {
  if (inspect === undefined) return undefined;
  const next = (typeof inspect === "function" ? inspect : inspect.next) as (event: InspectionEvent) => void;
  let logged = false;
  return (event) => {
    try {
      next.call(inspect, event);
    } catch (e) {
      if (!logged) logger.error("the inspect observer threw; the connection goes on", e);
      logged = true;
    }
  };
}
