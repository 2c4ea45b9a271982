import { or, stateIn } from "xstate";
import { connectionActors, connectionMachine, type ConnectionMachine } from "../../src";

/**
 * The connection machine with a fault to switch on, as no input of a user's makes it crash: while `when()` holds,
 * the guard read once a stop's disconnect is done (`restartRequested`) throws, so the connection crashes after its
 * room has been disconnected, while its slot retires or disposes of it. Otherwise the chart's own guard decides.
 */
export function crashingOnceDisconnected(when: () => boolean): ConnectionMachine {
  return connectionMachine.provide({
    actors: connectionActors,
    guards: {
      restartRequested: or([
        () => {
          if (when()) throw new Error("a guard of one's own threw");
          return false;
        },
        stateIn("#connection.Stopping.ThenStart"), // the chart's own restartRequested
      ]),
    },
  });
}
