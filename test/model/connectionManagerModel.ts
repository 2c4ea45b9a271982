/**
 * The abstract test model of the ConnectionManager: what the outside world does to it (transport lists, the
 * auth services' and SFUs' answers, the retry clock, the app's calls) and what a user can see after each step.
 * It has no invokes and no timers, so `xstate/graph` can walk it; `connectionManager.model.test.ts` makes each
 * event happen for real and checks each state on the real manager (its snapshot, its data, the rooms).
 *
 * The world: a local transport L whose SFU config the app hands over (valid for an hour: L never fetches), a
 * remote transport R whose connection fetches its config (a short-lived JWT: every run of R fetches again), and
 * a transport B whose room the room factory cannot make. State names say who is there: `L_` the local
 * connection alone, `R_` L connected plus R in the named phase, `RLocal` R having become the local transport.
 * L's SFU accepts its first connect when the model says so (L_CONNECT_OK), every later one at once. Retries and
 * reconnects run under a policy of two attempts: `R_Waiting1` is the wait before the second retry. A transport
 * listed again while its connection retires (SET_R in `R_Retiring`, LOCAL_L in `L_Retiring`, START in
 * `Stopping_L`) revives that connection.
 *
 * Two events inject a fault, as no user input makes a slot or a connection actor crash: the clock the app gave
 * (option `clock`) fails to set the next timer, which is the slot's retry wait (R_SLOT_CRASHES: the slot crashes,
 * the manager drops it) or the connection's reconnect wait (R_CONNECTION_CRASHES: the connection crashes, the slot
 * is Broken).
 */
import { createMachine } from "xstate";

/** The model's states and their events, typed as written so that the executors can be checked against them. */
const states = {
  Fresh: {
    on: { CREATE: "L_Connecting", CREATE_WITH_BROKEN_LOCAL: "B_Broken" },
  },

  // ---- the local transport alone ----
  L_Connecting: {
    on: { L_CONNECT_OK: "L_Connected" },
  },
  L_Connected: {
    on: {
      SET_R: "R_Fetching0",
      // the same transport twice: one connection
      SET_R_DUP: "R_Fetching0",
      // a member on the local transport: no second connection to it
      SET_R_EQUALS_L: "L_Connected",
      // a new JWT for the same local transport: no reconnect, no new room
      NEW_LOCAL_SFU_CONFIG: "L_Connected",
      // R listed and gone again at once: its room is made (in Preparing) and never connected
      R_FLICKERS: "L_Connected",
      DELAYED_LEAVE: "L_Connected",
      SET_R_AND_DISPOSE_AT_ONCE: "Disposing_L",
      LOCAL_NULL: "L_Retiring",
      STOP: "Stopping_L",
      DISPOSE: "Disposing_L",
    },
  },
  L_Retiring: {
    on: { DISCONNECT_DONE: "Empty", LOCAL_L: "L_Reviving" },
  },
  L_Reviving: {
    on: { DISCONNECT_DONE: "L_Connected" },
  },
  Empty: {
    on: {},
  },

  // ---- R beside the connected L ----
  R_Fetching0: {
    on: {
      R_SFU_OK: "R_Connecting",
      R_SFU_FAIL: "R_Waiting0",
      // R gone while its config is fetched: nothing to disconnect, the slot is done at once
      SET_NONE: "L_Connected",
      // the clock cannot set the slot's retry timer when the fetch fails: the slot crashes and is dropped
      R_SLOT_CRASHES: "L_Connected",
    },
  },
  R_Connecting: {
    on: { R_CONNECT_OK: "R_Connected", R_CONNECT_FAIL: "R_Waiting0_ConnectFailed" },
  },
  R_Connected: {
    on: {
      SET_NONE: "R_Retiring",
      // another session with the same identity took its place: LiveKit ended it on purpose, not retried
      R_LOST_FOR_GOOD: "R_LostForGood",
      // the room is lost and both reconnect attempts fail (the connection's own policy): the slot gives up
      R_SFU_GOES_AWAY: "R_GaveUpLost",
      // the clock cannot set the connection's reconnect timer when the room is lost: the connection crashes
      R_CONNECTION_CRASHES: "R_Broken",
      LOCAL_BECOMES_R: "RLocal_LRetiring",
      // to the local connection only
      DELAYED_LEAVE: "R_Connected",
      DISPOSE: "Disposing_LR",
    },
  },
  R_Retiring: {
    on: {
      DISCONNECT_DONE: "L_Connected",
      SET_R: "R_Reviving",
      DISPOSE: "Disposing_LR",
      APP_STARTS_RETIRING_R: "R_RetiringRestarted",
      // a fault: R's connection crashes once its room is disconnected; its slot is done all the same
      R_CRASHES_WHEN_STOPPED: "L_Connected",
    },
  },
  // the app started the connection it kept while the manager retires it: once disconnected it runs again, and
  // the slot stops it again
  R_RetiringRestarted: {
    on: { DISCONNECT_DONE: "L_Connected" },
  },
  R_Reviving: {
    on: { DISCONNECT_DONE: "R_Fetching0" },
  },
  R_Waiting0: {
    on: {
      RETRY_DELAY_PASSES: "R_Fetching1",
      SET_NONE: "R_RetiringWaiting",
      DISPOSE: "Disposing_LRWaiting",
      // the app stops the connection itself while the slot waits to retry
      APP_STOPS_R: "R_StoppedByApp",
    },
  },
  // the slot leaves a connection the app stopped alone: no retry when the wait would have been over
  R_StoppedByApp: {
    on: { RETRY_DELAY_PASSES: "R_StoppedByApp", SET_NONE: "L_Connected" },
  },
  R_Waiting0_ConnectFailed: {
    on: {
      RETRY_DELAY_PASSES: "R_Fetching1",
      // the app starts the connection itself (Connection.start()) before the slot's retry
      APP_STARTS_R: "R_Waiting0_AppFetching",
    },
  },
  R_Waiting0_AppFetching: {
    on: { R_SFU_OK: "R_Waiting0_AppConnecting" },
  },
  R_Waiting0_AppConnecting: {
    on: { R_CONNECT_OK: "R_Connected" },
  },
  R_Fetching1: {
    on: { R_SFU_FAIL: "R_Waiting1" },
  },
  R_Waiting1: {
    on: { RETRY_DELAY_PASSES: "R_Fetching2" },
  },
  R_Fetching2: {
    on: { R_SFU_FAIL: "R_GaveUp" },
  },
  R_GaveUp: {
    on: {
      APP_STARTS_R: "R_GaveUp_AppFetching",
      SET_NONE: "R_RetiringGaveUp",
      DISPOSE: "Disposing_LRGaveUp",
    },
  },
  R_GaveUp_AppFetching: {
    on: { R_SFU_OK: "R_GaveUp_AppConnecting" },
  },
  R_GaveUp_AppConnecting: {
    on: { R_CONNECT_OK: "R_Connected" },
  },
  R_RetiringWaiting: {
    on: { DISCONNECT_DONE: "L_Connected" },
  },
  R_RetiringGaveUp: {
    on: { DISCONNECT_DONE: "L_Connected" },
  },
  R_LostForGood: {
    on: {},
  },
  R_GaveUpLost: {
    on: {},
  },
  R_Broken: {
    on: { SET_NONE: "L_Connected" },
  },

  // ---- R becomes the local transport ----
  RLocal_LRetiring: {
    on: { DISCONNECT_DONE: "RLocal" },
  },
  RLocal: {
    on: {},
  },

  // ---- a local transport whose room cannot be made ----
  B_Broken: {
    on: {
      DELAYED_LEAVE: "B_Broken",
      LOCAL_NULL: "Empty",
      DISPOSE: "Disposed",
      SET_R_AND_DISPOSE_AT_ONCE: "Disposed",
    },
  },

  // ---- stop, start, dispose ----
  Stopping_L: {
    on: { DISCONNECT_DONE: "Stopped", START: "L_Reviving", DISPOSE: "Disposing_L" },
  },
  Stopped: {
    // the transports are still followed while stopped
    on: { START: "L_Connected", SET_R: "Stopped_R", DISPOSE: "Disposed" },
  },
  Stopped_R: {
    on: { START: "R_Fetching0" },
  },
  Disposing_L: {
    on: { DISCONNECT_DONE: "Disposed" },
  },
  Disposing_LR: {
    // CRASH_WHEN_DISPOSED: a fault, the connections crash once their rooms are disconnected
    on: { DISCONNECT_DONE: "Disposed", CRASH_WHEN_DISPOSED: "Disposed" },
  },
  Disposing_LRWaiting: {
    on: { DISCONNECT_DONE: "Disposed" },
  },
  Disposing_LRGaveUp: {
    on: { DISCONNECT_DONE: "Disposed" },
  },
  Disposed: {
    on: {},
  },
} as const;

export const connectionManagerModel = createMachine({ id: "managerModel", initial: "Fresh", states });

type States = typeof states;
/** A state of the model. */
export type ManagerModelState = keyof States;
/** An event of the model: something the outside world does. */
export type ManagerModelEvent = { [S in ManagerModelState]: keyof States[S]["on"] }[ManagerModelState];
/** Every event of the model, from the model itself. */
export const managerModelEvents = [
  ...new Set(Object.values(states).flatMap((s) => Object.keys(s.on))),
] as ManagerModelEvent[];
