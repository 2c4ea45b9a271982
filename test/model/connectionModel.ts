/**
 * The abstract test model: what the outside world can do to a Connection (its events) and what a user can see
 * (its states). It has no invokes and no timers, so `xstate/graph` can walk it; the executors in
 * `connection.model.test.ts` make each event happen for real (loopback HTTP server, FakeRoom) and check each
 * state on the real Connection.
 *
 * A connection is created without an SFU config, with an `existingSFUConfig` whose JWT has expired (both fetch
 * one; the auth service's JWTs expire within the reuse margin, so every run fetches again), or with one valid for
 * an hour (`X_`: every run reuses it). Connections reconnect under a policy of two attempts: `R_` states are the
 * first reconnect attempt's run, `R2_` the second's (the last). `M_` states are those of a connection that
 * requires the auth service's MatrixRTC 2.0 endpoint; `D_` those of one with a delayed leave to delegate (named
 * `<room state>_<delegation state>` once in LiveKit).
 */
import { createMachine } from "xstate";

const connectFailures = {
  CONNECT_FAIL_CAPACITY: "Failed_InsufficientCapacity",
  CONNECT_FAIL_RESTRICTED: "Failed_RoomCreationRestricted",
  CONNECT_FAIL_TIMEOUT: "Failed_PeerConnectionTimeout",
  CONNECT_FAIL_LIVEKIT: "Failed_LivekitError",
  CONNECT_FAIL_UNKNOWN: "Failed_Unknown",
} as const;

const startAgain = { START: "RequestingOpenIdToken", STOP: "Stopping" } as const;
const xStartAgain = { START: "X_LkDisconnected", STOP: "X_Stopping" } as const;

/** The model's states and their events, typed as written so that the executors can be checked against them. */
const states = {
  Fresh: {
    on: {
      CREATE: "Initialized",
      CREATE_WITH_EXPIRED_SFU_CONFIG: "Initialized",
      CREATE_WITH_SFU_CONFIG: "X_Initialized",
      CREATE_FORCING_MATRIX_2_0: "M_Initialized",
      CREATE_WITH_DELAYED_LEAVE: "D_Initialized",
    },
  },

  // ---- a connection that fetches its SFU config ----
  Initialized: {
    on: {
      START: "RequestingOpenIdToken",
      STOP: "Stopped",
      DISPOSE: "Disposed",
      DELAYED_LEAVE_CHANGED: "D_Initialized",
    },
  },
  RequestingOpenIdToken: {
    on: {
      OPENID_OK: "RequestingSFUConfig",
      OPENID_FAIL: "Failed_OpenIdError",
      OPENID_TIMEOUT: "Failed_OpenIdError",
      START: "RequestingOpenIdToken",
      STOP: "Stopped",
      DISPOSE: "Disposed",
    },
  },
  RequestingSFUConfig: {
    on: {
      SFU_CONFIG_OK: "LkDisconnected",
      SFU_CONFIG_FAIL: "Failed_OpenIdError",
      SFU_CONFIG_TIMEOUT: "Failed_OpenIdError",
      START: "RequestingSFUConfig",
      STOP: "Stopped",
    },
  },
  LkDisconnected: {
    on: {
      ROOM_CONNECTING: "LkConnecting",
      ROOM_ALREADY_CONNECTED: "LkConnected",
      CONNECT_FAIL_UNKNOWN: "Failed_Unknown",
      START: "LkDisconnected",
      STOP: "Stopping",
    },
  },
  LkConnecting: {
    on: { CONNECT_OK: "LkConnected", ...connectFailures, START: "LkConnecting", STOP: "Stopping" },
  },
  LkConnected: {
    on: {
      LK_SIGNAL_RECONNECTING: "LkSignalReconnecting",
      LK_RECONNECTING: "LkReconnecting",
      LK_DISCONNECTED: "WaitingToReconnect",
      LK_REPLACED: "LkLost",
      PARTICIPANT_JOIN: "LkConnectedWithGuest",
      DELAYED_LEAVE_CHANGED: "D_LkConnected_Delegating",
      START: "LkConnected",
      STOP: "Stopping",
      DISPOSE: "StoppingThenDispose",
    },
  },
  LkConnectedWithGuest: {
    on: {
      PARTICIPANT_LEAVE: "LkConnected",
      LK_RECONNECTING: "LkReconnecting",
      STOP: "Stopping",
    },
  },
  LkSignalReconnecting: {
    on: {
      LK_RECONNECTED: "LkConnected",
      LK_RECONNECTING: "LkReconnecting",
      LK_DISCONNECTED: "WaitingToReconnect",
      STOP: "Stopping",
    },
  },
  LkReconnecting: {
    on: {
      LK_RECONNECTED: "LkConnected",
      LK_SIGNAL_RECONNECTING: "LkSignalReconnecting",
      LK_DISCONNECTED: "WaitingToReconnect",
      STOP: "Stopping",
    },
  },
  LkLost: {
    on: { START: "RequestingOpenIdToken", STOP: "Stopping" },
  },
  WaitingToReconnect: {
    on: {
      RECONNECT_DELAY_PASSES: "R_RequestingOpenIdToken",
      START: "RequestingOpenIdToken",
      STOP: "Stopping",
      DISPOSE: "StoppingThenDispose",
    },
  },
  R_RequestingOpenIdToken: {
    on: { OPENID_OK: "R_RequestingSFUConfig", OPENID_FAIL: "R_WaitingToReconnect", STOP: "Stopped" },
  },
  R_RequestingSFUConfig: {
    on: { SFU_CONFIG_OK: "R_LkDisconnected", SFU_CONFIG_FAIL: "R_WaitingToReconnect" },
  },
  R_LkDisconnected: {
    on: { ROOM_CONNECTING: "R_LkConnecting" },
  },
  R_LkConnecting: {
    on: { CONNECT_OK: "LkConnected", CONNECT_FAIL_LIVEKIT: "R_WaitingToReconnect" },
  },
  R_WaitingToReconnect: {
    on: { RECONNECT_DELAY_PASSES: "R2_RequestingOpenIdToken", START: "RequestingOpenIdToken" },
  },
  R2_RequestingOpenIdToken: {
    on: { OPENID_FAIL: "Failed_ConnectionLost" },
  },
  Stopping: {
    on: {
      DISCONNECT_DONE: "Stopped",
      DISCONNECT_FAIL: "Stopped",
      STOP: "Stopping",
      START: "StoppingThenStart",
      DISPOSE: "StoppingThenDispose",
    },
  },
  StoppingThenStart: {
    on: {
      DISCONNECT_DONE: "RequestingOpenIdToken",
      DISCONNECT_FAIL: "RequestingOpenIdToken",
      START: "StoppingThenStart",
      STOP: "Stopping",
      DISPOSE: "StoppingThenDispose",
    },
  },
  StoppingThenDispose: {
    on: {
      DISCONNECT_DONE: "Disposed",
      DISCONNECT_FAIL: "Disposed",
      START: "StoppingThenDispose",
      STOP: "StoppingThenDispose",
    },
  },
  Stopped: {
    on: { START: "RequestingOpenIdToken", STOP: "Stopped", DISPOSE: "Disposed" },
  },
  Failed_OpenIdError: { on: { ...startAgain, DISPOSE: "StoppingThenDispose" } },
  Failed_InsufficientCapacity: { on: startAgain },
  Failed_RoomCreationRestricted: { on: startAgain },
  Failed_PeerConnectionTimeout: { on: startAgain },
  Failed_LivekitError: { on: startAgain },
  Failed_Unknown: { on: startAgain },
  Failed_ConnectionLost: { on: startAgain },
  Disposed: {
    on: { START: "Disposed", STOP: "Disposed" },
  },

  // ---- a connection given an existing SFU config: START connects at once ----
  X_Initialized: {
    on: { START: "X_LkDisconnected" },
  },
  X_LkDisconnected: {
    on: { ROOM_CONNECTING: "X_LkConnecting" },
  },
  X_LkConnecting: {
    on: {
      CONNECT_OK: "X_LkConnected",
      CONNECT_FAIL_LIVEKIT: "X_Failed_LivekitError",
      // the room is gone (emptied, or a restarted SFU): a fresh config once, which then counts as fresh
      CONNECT_FAIL_RESTRICTED: "RequestingOpenIdToken",
    },
  },
  X_LkConnected: {
    on: { LK_DISCONNECTED: "X_WaitingToReconnect", LK_REPLACED: "X_LkLost", STOP: "X_Stopping" },
  },
  X_LkLost: {
    on: { START: "X_LkDisconnected" },
  },
  X_WaitingToReconnect: {
    on: { RECONNECT_DELAY_PASSES: "X_R_LkDisconnected" },
  },
  X_R_LkDisconnected: {
    on: { ROOM_CONNECTING: "X_R_LkConnecting" },
  },
  X_R_LkConnecting: {
    on: { CONNECT_OK: "X_LkConnected", CONNECT_FAIL_RESTRICTED: "R_RequestingOpenIdToken" },
  },
  X_Stopping: {
    on: { DISCONNECT_DONE: "X_Stopped", START: "X_StoppingThenStart" },
  },
  X_StoppingThenStart: {
    on: { DISCONNECT_DONE: "X_LkDisconnected" },
  },
  X_Stopped: {
    on: { START: "X_LkDisconnected" },
  },
  X_Failed_LivekitError: {
    on: xStartAgain,
  },

  // ---- a connection with a delayed leave for the auth service to take over ----
  D_Initialized: {
    on: { START: "D_RequestingOpenIdToken" },
  },
  D_RequestingOpenIdToken: {
    on: { OPENID_OK: "D_RequestingSFUConfig" },
  },
  D_RequestingSFUConfig: {
    on: {
      // the token request carried the delay fields; delegated with /delegate_delayed_leave once connected either way
      SFU_CONFIG_OK: "D_LkDisconnected_Waiting",
      // an older service refused the delay fields, and answered without them
      SFU_CONFIG_OK_DELAY_REFUSED: "D_LkDisconnected_Waiting",
    },
  },
  D_LkDisconnected_Waiting: {
    on: { ROOM_CONNECTING: "D_LkConnecting_Waiting", DELAYED_LEAVE_CHANGED: "D_LkDisconnected_Waiting" },
  },
  D_LkConnecting_Waiting: {
    on: { CONNECT_OK: "D_LkConnected_Delegating" },
  },
  D_LkConnected_Delegating: {
    on: {
      DELEGATION_OK: "D_LkConnected_Delegated",
      DELEGATION_FAIL: "D_LkConnected_DelegationFailed",
      DELAYED_LEAVE_CHANGED: "D_LkConnected_Delegating",
    },
  },
  D_LkConnected_Delegated: {
    on: { DELAYED_LEAVE_CLEARED: "D_LkConnected_NotRequested" },
  },
  D_LkConnected_DelegationFailed: {
    on: { DELAYED_LEAVE_CHANGED: "D_LkConnected_Delegating", STOP: "Stopping" },
  },
  D_LkConnected_NotRequested: {
    on: { DELAYED_LEAVE_CHANGED: "D_LkConnected_Delegating" },
  },

  // ---- a connection that requires the auth service's /get_token (forceJwtEndpoint: "matrix_2_0") ----
  M_Initialized: {
    on: { START: "M_RequestingOpenIdToken" },
  },
  M_RequestingOpenIdToken: {
    on: { OPENID_OK: "M_RequestingSFUConfig" },
  },
  M_RequestingSFUConfig: {
    on: { SFU_CONFIG_FAIL: "Failed_NoMatrix2AuthorizationService", SFU_CONFIG_OK: "LkDisconnected" },
  },
  Failed_NoMatrix2AuthorizationService: { on: { START: "M_RequestingOpenIdToken" } },
} as const;

export const connectionModel = createMachine({ id: "model", initial: "Fresh", states });

type States = typeof states;
/** A state of the model. */
export type ModelState = keyof States;
/** An event of the model: something the outside world does. */
export type ModelEvent = { [S in ModelState]: keyof States[S]["on"] }[ModelState];
