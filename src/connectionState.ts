import type { SnapshotFrom } from "xstate";
import type { ConnectionMachine } from "../machines/connection.machine";
import { toCallError, type CallError } from "./errors";

/** Element Call's connection states; the LiveKit ones equal livekit-client's `ConnectionState` values. */
export enum ConnectionState {
  Initialized = "Initialized",
  FetchingConfig = "FetchingConfig",
  Stopped = "Stopped",
  LivekitDisconnected = "disconnected",
  LivekitConnecting = "connecting",
  LivekitConnected = "connected",
  LivekitReconnecting = "reconnecting",
  LivekitSignalReconnecting = "signalReconnecting",
}

const livekitStates: Record<string, ConnectionState> = {
  disconnected: ConnectionState.LivekitDisconnected,
  connecting: ConnectionState.LivekitConnecting,
  connected: ConnectionState.LivekitConnected,
  reconnecting: ConnectionState.LivekitReconnecting,
  signalReconnecting: ConnectionState.LivekitSignalReconnecting,
};

/**
 * What a machine snapshot means as Element Call's `state$` value: a ConnectionState, the CallError of a
 * `Failed` state, or `undefined` while `Stopping` (the previous value still holds until `Stopped`).
 */
export function connectionStateOf(snapshot: SnapshotFrom<ConnectionMachine>): ConnectionState | CallError | undefined {
  if (snapshot.matches("Initialized")) return ConnectionState.Initialized;
  if (snapshot.matches("FetchingConfig")) return ConnectionState.FetchingConfig;
  if (snapshot.matches("Stopping")) return undefined;
  if (snapshot.matches("Stopped")) return ConnectionState.Stopped;
  if (snapshot.matches("Failed")) return toCallError(snapshot.context.error);
  return livekitStates[(snapshot.value as { Livekit: string }).Livekit];
}
