import { fromPromise } from "xstate";
import { connectionManagerMachine, type ConnectionManagerMachine } from "../machines/connectionManager.machine";
import { connectionSlotMachine, type PrepareConnectionInput } from "../machines/connectionSlot.machine";
import type { ConnectionMachine } from "../machines/connection.machine";
import type { ConnectionDeps } from "./actors";
import { liveMachine } from "./createConnectionActor";
import { checkRoom, checkTransport, childLogger, type CheckedSharedOptions } from "./options";
import { Secret, reveal } from "./secret";
import type { LivekitRoomLike, LivekitTransportConfig, Logger } from "./types";

/** What every slot of one manager shares: the checked options, the room factory, the app's logger. */
export interface ManagerDeps {
  shared: CheckedSharedOptions["deps"];
  livekitRoomFactory: (transport: LivekitTransportConfig) => LivekitRoomLike;
  logger: Logger;
}

/**
 * A slot's `prepareConnection`: the transport is checked (a member's transport is someone else's input), the
 * room made with `livekitRoomFactory(transport)` and checked; a mistake in either ends the slot in `Broken`,
 * with the error. The result, sealed, is the connection's `deps`.
 */
export const prepareConnection = fromPromise<unknown, PrepareConnectionInput>(async ({ input }) => {
  if (!(input.deps instanceof Secret)) throw new TypeError("the manager's dependencies are missing");
  const { shared, livekitRoomFactory, logger } = reveal(input.deps as Secret<ManagerDeps>);
  const transport: unknown = input.transport;
  checkTransport(transport);
  const room: unknown = livekitRoomFactory(transport);
  checkRoom(room);
  const connectionLogger = childLogger(logger, `[Connection ${transport.livekit_service_url}]`);
  return new Secret<ConnectionDeps>({ ...shared, transport, room, logger: connectionLogger });
});

/** The manager chart with its slots' real actors, running `connection` as each transport's connection machine. */
export function managerMachineWith(connection: ConnectionMachine): ConnectionManagerMachine {
  return connectionManagerMachine.provide({
    actors: { slot: connectionSlotMachine.provide({ actors: { prepareConnection, connection } }) },
  });
}

/** The manager chart with every real actor: made once, shared by every manager. */
export const liveManagerMachine = /* @__PURE__ */ managerMachineWith(liveMachine);
