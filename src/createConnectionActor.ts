import { createActor, type Actor, type SnapshotFrom, type StateValue } from "xstate";
import { connectionMachine, type ConnectionMachine, type SFUCredentials } from "../machines/connection.machine";
import { DEFAULT_TIMEOUTS, connectionActors, type ConnectionDeps } from "./actors";
import { connectionStateOf } from "./connectionState";
import { isCallError } from "./errors";
import { silentLogger } from "./logger";
import { Secret } from "./secret";
import { checkSFUConfig } from "./sfuConfig";
import type { ConnectionActorOptions, LivekitRoomLike, Logger, SFUConfig } from "./types";

export type { ConnectionActorOptions };

/** `connectionMachine` with the real actors: made once, shared by every connection. */
const liveMachine = /* @__PURE__ */ connectionMachine.provide({ actors: connectionActors });

function requireString(value: unknown, what: string): void {
  if (typeof value !== "string" || value === "") throw new TypeError(`${what} must be a non-empty string`);
}

function checkRoom(room: Partial<LivekitRoomLike> | undefined): void {
  for (const m of ["connect", "disconnect", "on", "off"] as const) {
    if (typeof room?.[m] !== "function") throw new TypeError(`the room has no ${m}() method`);
  }
}

/** A caller's SFU config, checked, with the JWT put away in a Secret. */
function toSFUCredentials(config: SFUConfig, allowInsecureTransport: boolean): SFUCredentials {
  const checked = checkSFUConfig(config, "existingSFUConfig", allowInsecureTransport);
  return { ...checked, jwt: new Secret(checked.jwt) };
}

/** Options checked once, before the room is made, and turned into what the machine takes. */
export interface CheckedOptions {
  existingSFUConfig: SFUCredentials | undefined;
  deps: Omit<ConnectionDeps, "room" | "logger">;
}

/**
 * Checks everything but the room; mistakes are TypeErrors at once rather than failures later. (An insecure
 * `existingSFUConfig.url` is an InsecureTransportError, which is a TypeError too.)
 */
export function checkConnectionOptions(o: Omit<ConnectionActorOptions, "room">): CheckedOptions {
  if (typeof o !== "object" || o === null) throw new TypeError("options are required");
  if (typeof o.client?.getOpenIdToken !== "function") throw new TypeError("client.getOpenIdToken must be a function");
  if (o.transport?.type !== "livekit") throw new TypeError('transport.type must be "livekit"');
  requireString(o.transport.livekit_service_url, "transport.livekit_service_url");
  requireString(o.roomId, "roomId");
  requireString(o.ownMembershipIdentity?.userId, "ownMembershipIdentity.userId");
  requireString(o.ownMembershipIdentity?.deviceId, "ownMembershipIdentity.deviceId");
  requireString(o.ownMembershipIdentity?.memberId, "ownMembershipIdentity.memberId");
  const allowInsecureTransport = o.allowInsecureTransport ?? false;
  return {
    existingSFUConfig: o.existingSFUConfig && toSFUCredentials(o.existingSFUConfig, allowInsecureTransport),
    deps: {
      client: o.client,
      transport: o.transport,
      roomId: o.roomId,
      ownMembershipIdentity: o.ownMembershipIdentity,
      fetch: o.fetch,
      retry: o.retry,
      // `??`, not a spread: an option given as undefined means "the default".
      timeouts: {
        openIdTokenMs: o.timeouts?.openIdTokenMs ?? DEFAULT_TIMEOUTS.openIdTokenMs,
        sfuConfigMs: o.timeouts?.sfuConfigMs ?? DEFAULT_TIMEOUTS.sfuConfigMs,
        disconnectMs: o.timeouts?.disconnectMs ?? DEFAULT_TIMEOUTS.disconnectMs,
      },
      allowInsecureTransport,
    },
  };
}

/** The actor of checked options and a room; not started, and nothing subscribed to it. */
export function newConnectionActor(
  checked: CheckedOptions,
  room: LivekitRoomLike,
  logger: Logger,
  options: Pick<ConnectionActorOptions, "inspect" | "machine">,
): Actor<ConnectionMachine> {
  checkRoom(room);
  const deps: ConnectionDeps = { ...checked.deps, room, logger };
  return createActor(options.machine ?? liveMachine, {
    input: { deps: new Secret(deps), existingSFUConfig: checked.existingSFUConfig },
    inspect: options.inspect,
  });
}

type Snapshot = SnapshotFrom<ConnectionMachine>;

function stateName(value: StateValue): string {
  if (typeof value === "string") return value;
  const [key, sub] = Object.entries(value)[0]!;
  return sub === undefined ? key : `${key}.${stateName(sub)}`;
}

/**
 * A snapshot handler that logs each change of state, and each failure with its cause; undefined for the silent
 * logger, so that nothing is formatted for nobody.
 */
export function stateLogger(logger: Logger): ((snapshot: Snapshot) => void) | undefined {
  if (logger === silentLogger) return undefined;
  let last = "";
  return (snapshot) => {
    const name = stateName(snapshot.value);
    if (name === last) return;
    last = name;
    const state = connectionStateOf(snapshot);
    if (isCallError(state)) {
      const cause = state.cause instanceof Error ? ` (${state.cause.name}: ${state.cause.message})` : "";
      logger.warn(`connection failed: ${state.code} ${state.name}: ${state.message}${cause}`);
    } else {
      logger.info(`state ${name}`);
    }
  };
}

/**
 * The connection machine with its real actors, as an actor that is not started yet: call `start()` on it,
 * then send `{type: "START"}` / `{type: "STOP"}` / `{type: "DISPOSE"}`. Throws a TypeError for malformed
 * options.
 */
export function createConnectionActor(options: ConnectionActorOptions): Actor<ConnectionMachine> {
  const logger = options?.logger ?? silentLogger;
  const actor = newConnectionActor(checkConnectionOptions(options), options?.room, logger, options);
  const log = stateLogger(logger);
  actor.subscribe({ next: log, error: (e) => logger.error("the connection machine crashed", e) });
  return actor;
}
