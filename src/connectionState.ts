import type { SnapshotFrom } from "xstate";
import type { ConnectionMachine } from "../machines/connection.machine";
import { toCallError, toConnectionLostError, type CallError } from "./errors";

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

/** What each state of the chart shows; `Livekit` and `Failed` are resolved by substate or error. */
const shown: Record<string, ConnectionState | undefined> = {
  Initialized: ConnectionState.Initialized,
  FetchingConfig: ConnectionState.FetchingConfig,
  Stopping: undefined,
  Stopped: ConnectionState.Stopped,
  WaitingToReconnect: ConnectionState.LivekitDisconnected,
  Disposed: ConnectionState.Stopped,
  disconnected: ConnectionState.LivekitDisconnected,
  connecting: ConnectionState.LivekitConnecting,
  connected: ConnectionState.LivekitConnected,
  reconnecting: ConnectionState.LivekitReconnecting,
  signalReconnecting: ConnectionState.LivekitSignalReconnecting,
  lost: ConnectionState.LivekitDisconnected,
};

/**
 * What a machine snapshot means as Element Call's `state$` value: a ConnectionState, the CallError of a
 * `Failed` state, or `undefined` while `Stopping` (the previous value still holds until `Stopped`). A lost
 * connection, and the wait to reconnect it, show as `disconnected`; `Disposed` as `Stopped`; the failure of
 * `Failed.ConnectionLost` is a ConnectionLostError whose cause is the last attempt's.
 */
export function connectionStateOf(snapshot: SnapshotFrom<ConnectionMachine>): ConnectionState | CallError | undefined {
  const value = snapshot.value;
  if (typeof value === "string") return shown[value];
  if ("Failed" in value) {
    const error = snapshot.context.error;
    return value.Failed === "ConnectionLost" ? toConnectionLostError(error) : toCallError(error);
  }
  return "Livekit" in value ? shown[value.Livekit.room!] : shown[Object.keys(value)[0]!];
}
