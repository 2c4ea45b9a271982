import { assign, enqueueActions, fromPromise, sendTo, setup, type StateValue } from "xstate";
import {
  connectionMachine,
  DEFAULT_JWT_MARGIN_MS,
  DEFAULT_RECONNECT_POLICY,
  type DelayedLeave,
  type ReconnectPolicy,
  type Sealed,
  type SFUCredentials,
  stateValueName,
} from "./connection.machine";

/**
 * A MatrixRTC LiveKit transport (MSC4143): `LivekitTransportConfig` in `src/types.ts`, restated here because
 * machines/ takes nothing from src/.
 */
export interface LivekitTransport {
  type: "livekit";
  livekit_service_url: string;
}

export interface ConnectionSlotInput {
  /** The transport's key in the manager: its `livekit_service_url`, as it is (no normalisation). */
  key: string;
  transport: LivekitTransport;
  /** The manager's dependencies (client, room factory, logger, …), sealed; only `prepareConnection` reads them. */
  deps?: unknown;
  /** The local transport's SFU config, fetched already (the local slot only). */
  sfuConfig?: SFUCredentials;
  /** The connection's reconnect policy, which is also the slot's retry policy; `false`: neither. */
  reconnect?: ReconnectPolicy | false;
  jwtMarginMs?: number;
  /** The delayed leave to delegate: the local slot only (the service that takes it over sends the leave). */
  delayedLeave?: Sealed<DelayedLeave>;
}

export interface ConnectionSlotContext {
  key: string;
  transport: LivekitTransport;
  deps: unknown;
  sfuConfig: SFUCredentials | undefined;
  reconnect: ReconnectPolicy | false;
  jwtMarginMs: number;
  delayedLeave: Sealed<DelayedLeave> | undefined;
  /** What `prepareConnection` made (the room, the transport, a logger), sealed: the connection's `deps`. */
  connectionDeps: unknown;
  /** The connection's state as a dotted name (`Livekit.{room.connected, delayedLeave.NotRequested}`), once known. */
  connectionState: string | undefined;
  /** Why the connection failed (its `context.error`), or why `prepareConnection` or the connection actor threw. */
  error: unknown;
  /** Retries of a failed connection made since it last connected. */
  retries: number;
}

/** The events the slot raises for itself from the connection's snapshots, when the connection enters such a state. */
export type ConnectionOutcomeEvent =
  | { type: "CONNECTION_CONNECTED" }
  | { type: "CONNECTION_FAILED" }
  | { type: "CONNECTION_STOPPED" }
  | { type: "CONNECTION_RESTARTED" };

export type ConnectionSlotEvent =
  | { type: "RETIRE" }
  | { type: "REVIVE" }
  | { type: "DISPOSE" }
  | { type: "DELAYED_LEAVE_CHANGED"; delayedLeave: Sealed<DelayedLeave> | undefined }
  | { type: "xstate.error.actor.connection"; error: unknown }
  | ConnectionOutcomeEvent;

/** The input of `prepareConnection`. */
export interface PrepareConnectionInput {
  deps: unknown;
  transport: LivekitTransport;
}

/**
 * What a connection state means to the slot, coming from `previous`: CONNECTION_RESTARTED when a stop was turned
 * into a new run (a START during `Stopping`: the app's own `start()`).
 */
export function connectionOutcome(
  state: string | undefined,
  previous?: string,
): ConnectionOutcomeEvent["type"] | undefined {
  if (state === undefined) return undefined;
  if (previous?.startsWith("Stopping") && !state.startsWith("Stopping") && state !== "Stopped") {
    return "CONNECTION_RESTARTED";
  }
  if (state.startsWith("Failed.")) return "CONNECTION_FAILED";
  if (state === "Stopped") return "CONNECTION_STOPPED";
  if (state.startsWith("Livekit.") && state.includes("room.connected")) return "CONNECTION_CONNECTED";
  return undefined;
}

/**
 * One transport's connection, owned by the connection manager: the room is made (`prepareConnection`), the
 * connection (`connectionMachine`) is started, a failed connection is retried under the reconnect policy, and a
 * retired connection is stopped, the room disconnected, before the slot is done. The I/O is provided by `src/`:
 * `prepareConnection` (the room, from `livekitRoomFactory(transport)`) and `connection` (the connection machine
 * with its real actors); the bare ones here only say what is missing.
 *
 * Settled here: a failure is retried with the connection's own reconnect policy (`reconnect: false`: never); a
 * `Failed.ConnectionLost` is not retried again (the policy has already run inside the connection); a slot that gave
 * up stays so until the manager retires it; a `Stopped` from the app's own `stop()` is left alone; RETIRE ends
 * the slot only once the connection reports `Stopped` (STOP, not `stopChild`, so that the room is disconnected).
 */
export const connectionSlotMachine = /* @__PURE__ */ setup({
  types: {
    context: {} as ConnectionSlotContext,
    events: {} as ConnectionSlotEvent,
    input: {} as ConnectionSlotInput,
    children: {} as { prepareConnection: "prepareConnection"; connection: "connection" },
  },
  actors: {
    prepareConnection: fromPromise<unknown, PrepareConnectionInput>(async () => {
      throw new Error(
        "The 'prepareConnection' actor has no implementation: use the ConnectionManager, or provide it (it makes the room for the transport)",
      );
    }),
    connection: connectionMachine,
  },
  actions: {
    storeConnectionDeps: assign({ connectionDeps: (_, params: { deps: unknown }) => params.deps }),
    storeError: assign({ error: (_, params: { error: unknown }) => params.error }),
    /** The connection's state and error, from the snapshot it relays. */
    followConnection: assign(({ event }) => {
      const { snapshot } = event as unknown as { snapshot: { value: StateValue; context: { error: unknown } } };
      return { connectionState: stateValueName(snapshot.value), error: snapshot.context.error };
    }),
    /** Raises the connection's outcome when its relayed snapshot enters a state that means one (before following). */
    classifyConnection: enqueueActions(({ context, event, enqueue }) => {
      const { snapshot } = event as unknown as { snapshot: { value: StateValue } };
      const outcome = connectionOutcome(stateValueName(snapshot.value), context.connectionState);
      if (outcome !== undefined && outcome !== connectionOutcome(context.connectionState)) {
        enqueue.raise({ type: outcome });
      }
    }),
    startConnection: sendTo("connection", { type: "START" }),
    stopConnection: sendTo("connection", { type: "STOP" }),
    disposeConnection: sendTo("connection", { type: "DISPOSE" }),
    storeDelayedLeave: assign({
      delayedLeave: (_, params: { delayedLeave: Sealed<DelayedLeave> | undefined }) => params.delayedLeave,
    }),
    forwardDelayedLeave: sendTo("connection", ({ context }) => ({
      type: "DELAYED_LEAVE_CHANGED" as const,
      delayedLeave: context.delayedLeave,
    })),
    countRetry: assign({ retries: ({ context }) => context.retries + 1 }),
    resetRetries: assign({ retries: 0 }),
  },
  guards: {
    /** No retry is left: no policy, or `maxAttempts` retries made since the connection last connected. */
    retriesSpent: ({ context }) => context.reconnect === false || context.retries >= context.reconnect.maxAttempts,
    /** The connection failed after its own reconnect attempts: it is not retried again. */
    connectionLost: ({ context }) => context.connectionState === "Failed.ConnectionLost",
    /** The connection is `Stopped`: its room is disconnected (or was never used). */
    connectionStopped: ({ context }) => context.connectionState === "Stopped",
  },
  delays: {
    /** The reconnect policy's wait: `initialDelayMs`, doubled for each retry made, at most `maxDelayMs`. */
    retryDelay: ({ context }) => {
      // (never without a policy: retriesSpent sends the slot to GaveUp then)
      const policy = context.reconnect || DEFAULT_RECONNECT_POLICY;
      return Math.min(policy.initialDelayMs * 2 ** context.retries, policy.maxDelayMs);
    },
  },
}).createMachine({
  id: "connectionSlot",
  description:
    "One transport's connection in the connection manager: the room is made, the connection started and followed, a failed one retried under the reconnect policy, and a retired one stopped (its room disconnected) before the slot is done.",
  initial: "Preparing",
  context: ({ input }) => ({
    key: input.key,
    transport: input.transport,
    deps: input.deps,
    sfuConfig: input.sfuConfig,
    reconnect: input.reconnect ?? DEFAULT_RECONNECT_POLICY,
    jwtMarginMs: input.jwtMarginMs ?? DEFAULT_JWT_MARGIN_MS,
    delayedLeave: input.delayedLeave,
    connectionDeps: undefined,
    connectionState: undefined,
    error: undefined,
    retries: 0,
  }),
  on: {
    // Kept for the connection about to be made; once it runs, Live hands it over too.
    DELAYED_LEAVE_CHANGED: {
      actions: { type: "storeDelayedLeave", params: ({ event }) => ({ delayedLeave: event.delayedLeave }) },
    },
  },
  states: {
    Preparing: {
      description:
        "Making the room for the transport (livekitRoomFactory(transport)) and the connection's dependencies. RETIRE or DISPOSE ends the slot at once: nothing is connected yet.",
      invoke: {
        id: "prepareConnection",
        src: "prepareConnection",
        input: ({ context }) => ({ deps: context.deps, transport: context.transport }),
        onDone: {
          target: "Live",
          actions: { type: "storeConnectionDeps", params: ({ event }) => ({ deps: event.output }) },
        },
        onError: {
          target: "Broken",
          actions: { type: "storeError", params: ({ event }) => ({ error: event.error }) },
        },
      },
      on: {
        RETIRE: { target: "Done" },
        DISPOSE: { target: "Done" },
      },
    },
    Broken: {
      description:
        "The room could not be made, or the connection actor crashed (`context.error`): there is nothing to retry with. It stays so until the manager retires or disposes of the slot.",
      on: {
        RETIRE: { target: "Done" },
        DISPOSE: { target: "Done" },
      },
    },
    Live: {
      description:
        "The connection runs as the child `connection`; each snapshot it relays updates `connectionState` and `error`, and its entries into connected, Failed and Stopped are raised as CONNECTION_* events. It ends when the connection is disposed of.",
      initial: "Running",
      invoke: {
        id: "connection",
        src: "connection",
        input: ({ context }) => ({
          deps: context.connectionDeps,
          existingSFUConfig: context.sfuConfig,
          reconnect: context.reconnect,
          jwtMarginMs: context.jwtMarginMs,
          delayedLeave: context.delayedLeave,
        }),
        onSnapshot: { actions: ["classifyConnection", "followConnection"] },
        onDone: { target: "Done" },
        onError: {
          target: "Broken",
          actions: { type: "storeError", params: ({ event }) => ({ error: event.error }) },
        },
      },
      on: {
        DELAYED_LEAVE_CHANGED: {
          actions: [
            { type: "storeDelayedLeave", params: ({ event }) => ({ delayedLeave: event.delayedLeave }) },
            "forwardDelayedLeave",
          ],
        },
      },
      states: {
        Running: {
          description:
            "The connection has been started (START on entry) and is making or holding its room connection. A Failed state is retried after the policy's wait, unless the retries are spent or the connection was lost for good (then GaveUp). A Stopped from the app's own stop() is left alone.",
          entry: "startConnection",
          on: {
            CONNECTION_CONNECTED: { actions: "resetRetries" },
            CONNECTION_FAILED: [
              { guard: "retriesSpent", target: "GaveUp" },
              { guard: "connectionLost", target: "GaveUp" },
              { target: "WaitingToRetry" },
            ],
            RETIRE: { target: "Retiring" },
            DISPOSE: { target: "Disposing" },
          },
        },
        WaitingToRetry: {
          description:
            "The connection failed (`error`): waiting (the reconnect policy's initialDelayMs, doubling per retry, at most maxDelayMs) before starting it again. A connection the app started itself meanwhile that connects ends the wait.",
          after: {
            retryDelay: { target: "Running", actions: "countRetry" },
          },
          on: {
            CONNECTION_CONNECTED: { target: "Running", actions: "resetRetries" },
            // The app's own stop(): left alone, not started again when the wait is over.
            CONNECTION_STOPPED: { target: "GaveUp" },
            RETIRE: { target: "Retiring" },
            DISPOSE: { target: "Disposing" },
          },
        },
        GaveUp: {
          description:
            "The slot starts the connection no more: its retries are spent, it was lost after its own reconnect attempts (`error`), or the app stopped it while it waited to retry. It stays so until the transport is removed (and added again), unless the app starts the connection itself and it connects.",
          on: {
            CONNECTION_CONNECTED: { target: "Running", actions: "resetRetries" },
            RETIRE: { target: "Retiring" },
            DISPOSE: { target: "Disposing" },
          },
        },
        Retiring: {
          description:
            "The transport is gone: the connection was sent STOP and the slot is done once it reports Stopped, its room disconnected. A START that turned the stop into a new run (the app's own start()) is overruled: STOP again. REVIVE (the transport is back) starts it again; DISPOSE disposes of it instead.",
          entry: "stopConnection",
          always: { guard: "connectionStopped", target: "#connectionSlot.Done" },
          on: {
            CONNECTION_RESTARTED: { target: "Retiring", reenter: true },
            // A crash stops the connection too: nothing is left to wait for (Broken would wait for a RETIRE sent already).
            "xstate.error.actor.connection": { target: "#connectionSlot.Done" },
            REVIVE: { target: "Running" },
            DISPOSE: { target: "Disposing" },
          },
        },
        Disposing: {
          description:
            "The connection was sent DISPOSE: it disconnects its room and ends, which ends the slot (Live's onDone), as a crash of it does.",
          entry: "disposeConnection",
          on: {
            "xstate.error.actor.connection": { target: "#connectionSlot.Done" },
          },
        },
      },
    },
    Done: {
      description: "The slot is over: its connection is stopped or disposed of, or was never made.",
      type: "final",
    },
  },
});

export type ConnectionSlotMachine = typeof connectionSlotMachine;
