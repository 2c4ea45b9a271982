import { createActor, type Actor, type SnapshotFrom } from "xstate";
import { connectionMachine, stateValueName, type ConnectionMachine } from "../machines/connection.machine";
import { connectionActors, type ConnectionDeps } from "./actors";
import { connectionStateOf } from "./connectionState";
import { isCallError } from "./errors";
import { silentLogger } from "./logger";
import { checkConnectionOptions, guardInspect, checkLogger, checkRoom, type CheckedOptions } from "./options";
import { Secret } from "./secret";
import type { ConnectionActorOptions, Logger } from "./types";

export type { ConnectionActorOptions };

/** `connectionMachine` with the real actors: made once, shared by every connection. */
export const liveMachine = /* @__PURE__ */ connectionMachine.provide({ actors: connectionActors });

/** The actor of checked options and a room; not started, and nothing subscribed to it. */
export function newConnectionActor(
  checked: CheckedOptions,
  room: unknown,
  logger: Logger,
  options: Pick<ConnectionActorOptions, "inspect" | "machine" | "clock">,
): Actor<ConnectionMachine> {
  checkRoom(room);
  const deps: ConnectionDeps = { ...checked.deps, room, logger };
  return createActor(options.machine ?? liveMachine, {
    input: {
      deps: new Secret(deps),
      existingSFUConfig: checked.existingSFUConfig,
      reconnect: checked.reconnect,
      jwtMarginMs: checked.jwtMarginMs,
      delayedLeave: checked.delayedLeave,
    },
    inspect: guardInspect(options.inspect, logger),
    // Only when given: xstate takes `clock: undefined` for a clock, not for its default.
    ...(options.clock && { clock: options.clock }),
  });
}

type Snapshot = SnapshotFrom<ConnectionMachine>;

/**
 * A snapshot handler that logs each change of state, and each failure with its cause; undefined for the silent
 * logger, so that nothing is formatted for nobody.
 */
export function stateLogger(logger: Logger): ((snapshot: Snapshot) => void) | undefined {
  if (logger === silentLogger) return undefined;
  let last = "";
  return (snapshot) => {
    const name = stateValueName(snapshot.value);
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
  const checked = checkConnectionOptions(options);
  const logger = options.logger ?? silentLogger;
  checkLogger(logger);
  const actor = newConnectionActor(checked, options.room, logger, options);
  const log = stateLogger(logger);
  actor.subscribe({ next: log, error: (e) => logger.error("the connection machine crashed", e) });
  return actor;
}
