import { assign, fromCallback, fromPromise, setup, stateIn, type EventObject, type StateValue } from "xstate";

/**
 * A value the chart carries but can neither read nor print: the JWT, the OpenID token, the connection's
 * dependencies. `Secret` in `src/secret.ts` is the implementation; the type parameter is what `reveal` returns.
 */
export interface Sealed<T> {
  toJSON(): string;
  /** Never set: it only ties the sealed value's type to the box. */
  readonly sealedType?: () => T;
}

/** The names of the errors (`CallError` subclasses in `src/errors.ts`) that have a `Failed` state of their own. */
export type CallErrorName =
  | "FailToGetOpenIdToken"
  | "NoMatrix2AuthorizationService"
  | "InsufficientCapacityError"
  | "SFURoomCreationRestrictedError"
  | "PeerConnectionTimeoutError"
  | "LivekitConnectionError"
  | "ConnectionLostError"
  | "UnknownCallError";

/** The OpenID token a homeserver hands out (`IOpenIDToken` in matrix-js-sdk). */
export interface OpenIDToken {
  access_token: string;
  token_type: string;
  matrix_server_name: string;
  expires_in: number;
}

/**
 * A delayed leave event the app scheduled on the homeserver (MSC4140), for the auth service to take over
 * ("delegation"): it restarts the delay while the participant is on the SFU, and sends the leave when the SFU
 * reports the participant gone, so that a crashed client leaves the call too.
 */
export interface DelayedLeave {
  /** The delayed event's id (matrix-js-sdk's membership manager has it). It is a capability: kept secret. */
  delayId: string;
  /** The delay the event was scheduled with, in ms. */
  delayTimeoutMs: number;
  /** The homeserver's client-server API base URL (deprecated in lk-jwt-service, which finds it itself). */
  csApiUrl?: string;
}

/** Where and how to join the LiveKit room. The JWT stays inside a `Secret` so snapshots never show it. */
export interface SFUCredentials {
  url: string;
  jwt: Sealed<string>;
  livekitAlias: string;
  livekitIdentity: string;
  /** When the JWT expires (its `exp`, in ms since the epoch); undefined for a JWT without `exp`. */
  expiresAt: number | undefined;
}

/** When and how often a lost connection is made again. */
export interface ReconnectPolicy {
  /** Reconnect attempts (each one a whole pipeline run) before giving up with ConnectionLostError. */
  maxAttempts: number;
  /** The wait before the first attempt; it doubles for each next one. */
  initialDelayMs: number;
  /** The longest wait between two attempts. */
  maxDelayMs: number;
}

export const DEFAULT_RECONNECT_POLICY: Readonly<ReconnectPolicy> = Object.freeze({
  maxAttempts: 10,
  initialDelayMs: 1000,
  maxDelayMs: 30_000,
});
/** A known SFU config is used again only while its JWT stays valid for at least this long. */
export const DEFAULT_JWT_MARGIN_MS = 60_000;

/**
 * The reasons (livekit-client `DisconnectReason` names) for which a lost connection is not made again: the
 * server or the app ended it on purpose, or another session took its place.
 */
const FINAL_DISCONNECT_REASONS: ReadonlySet<string> = new Set([
  "CLIENT_INITIATED",
  "DUPLICATE_IDENTITY",
  "PARTICIPANT_REMOVED",
  "ROOM_DELETED",
  "ROOM_CLOSED",
  "JOIN_FAILURE",
  "USER_UNAVAILABLE",
  "USER_REJECTED",
  "SIP_TRUNK_FAILURE",
]);

export interface ConnectionMachineInput {
  /**
   * What the actors need for this connection (room, client, transport, …). The chart only hands it to every
   * invoked actor as `input.deps`; `createConnectionActor` passes its own, inside a `Secret` so that snapshots
   * and inspection events never show the client or the room.
   */
  deps?: unknown;
  /** Skip the fetch and connect with this config while its JWT is valid (Element Call's `existingSFUConfig`). */
  existingSFUConfig?: SFUCredentials;
  /** Reconnect a lost connection under this policy (default `DEFAULT_RECONNECT_POLICY`); `false`: never. */
  reconnect?: ReconnectPolicy | false;
  /** Default `DEFAULT_JWT_MARGIN_MS`. */
  jwtMarginMs?: number;
  /** A delayed leave for the auth service to take over. */
  delayedLeave?: Sealed<DelayedLeave>;
}

export interface ConnectionMachineContext {
  deps: unknown;
  reconnect: ReconnectPolicy | false;
  jwtMarginMs: number;
  /** The delayed leave for the auth service to take over, if the app has one. */
  delayedLeave: Sealed<DelayedLeave> | undefined;
  openIdToken: Sealed<OpenIDToken> | undefined;
  /** The SFU config of the last run (or the one given), kept for the next while its JWT is valid. */
  sfuConfig: SFUCredentials | undefined;
  /** Whether this run connects with a config from before it (given, or kept from an earlier run). */
  sfuConfigReused: boolean;
  /** Why the last delegation of the delayed leave failed (the call is not affected). */
  delegationError: unknown;
  /** Reconnect attempts made since the connection was lost; 0 when not reconnecting. */
  reconnectAttempts: number;
  /** Why LiveKit ended the last live connection (a `DisconnectReason` name), if it said. */
  lostReason: string | undefined;
  /**
   * The error that put the machine in `Failed` (a CallError when the actors of `src/` are used); in
   * `Failed.ConnectionLost`, the last reconnect attempt's.
   */
  error: unknown;
}

export type RoomConnectionState = "disconnected" | "connecting" | "connected" | "reconnecting" | "signalReconnecting";

/**
 * Events the room watcher sends: one per LiveKit `ConnectionState`; `room.disconnected` carries livekit-client's
 * `DisconnectReason` name when it gave one.
 */
export type RoomEvent =
  { type: `room.${Exclude<RoomConnectionState, "disconnected">}` } | { type: "room.disconnected"; reason?: string };

/** The app hands over a new delayed leave (or none): it is delegated again, without reconnecting. */
export type DelayedLeaveChangedEvent = {
  type: "DELAYED_LEAVE_CHANGED";
  delayedLeave: Sealed<DelayedLeave> | undefined;
};

export type ConnectionMachineEvent =
  { type: "START" } | { type: "STOP" } | { type: "DISPOSE" } | DelayedLeaveChangedEvent | RoomEvent;

/** The input of every invoked actor: the connection's dependencies. */
export interface ActorInput {
  deps: unknown;
}

export interface RequestSFUConfigInput extends ActorInput {
  openIdToken: Sealed<OpenIDToken>;
  /** Its fields go with the token request. */
  delayedLeave: Sealed<DelayedLeave> | undefined;
}

/** The input of `delegateDelayedLeave`. */
export interface DelegateDelayedLeaveInput extends ActorInput {
  delayedLeave: Sealed<DelayedLeave>;
}

/** The input of `connectRoom`: read the JWT with `reveal(input.jwt)`. */
export interface ConnectRoomInput extends ActorInput {
  url: string;
  jwt: Sealed<string>;
}

/** `settled`: a `start()` waiting in this state is over; `disposed`: no run will ever begin again. */
export type ConnectionMachineTag = "settled" | "disposed";

/** `Livekit.{room.connected, delayedLeave.Delegated}` for a parallel state, `Failed.OpenIdError` and so on. */
export function stateValueName(value: StateValue): string {
  if (typeof value === "string") return value;
  const parts = Object.entries(value).map(([key, sub]) => (sub === undefined ? key : `${key}.${stateValueName(sub)}`));
  return parts.length === 1 ? parts[0]! : `{${parts.join(", ")}}`;
}

function notProvided(name: string): never {
  throw new Error(
    `The '${name}' actor has no implementation: create the actor with createConnectionActor(), or provide it (spread connectionActors to keep the others)`,
  );
}

/**
 * The lifecycle of one MatrixRTC connection to a LiveKit SFU. Implementations of the actors (the I/O) are
 * provided once by `src/`; the ones here only say what is missing.
 */
export const connectionMachine = setup({
  types: {
    context: {} as ConnectionMachineContext,
    events: {} as ConnectionMachineEvent,
    input: {} as ConnectionMachineInput,
    tags: {} as ConnectionMachineTag,
    children: {} as {
      requestOpenIdToken: "requestOpenIdToken";
      requestSFUConfig: "requestSFUConfig";
      watchRoom: "watchRoom";
      connectRoom: "connectRoom";
      disconnectRoom: "disconnectRoom";
      delegateDelayedLeave: "delegateDelayedLeave";
    },
  },
  actors: {
    requestOpenIdToken: fromPromise<Sealed<OpenIDToken>, ActorInput>(async () => notProvided("requestOpenIdToken")),
    requestSFUConfig: fromPromise<SFUCredentials, RequestSFUConfigInput>(async () => notProvided("requestSFUConfig")),
    // A no-op rather than a throw: a callback actor that throws would crash the whole machine.
    watchRoom: fromCallback<EventObject, ActorInput>(() => {}),
    connectRoom: fromPromise<void, ConnectRoomInput>(async () => notProvided("connectRoom")),
    disconnectRoom: fromPromise<void, ActorInput>(async () => notProvided("disconnectRoom")),
    delegateDelayedLeave: fromPromise<void, DelegateDelayedLeaveInput>(async () => notProvided("delegateDelayedLeave")),
  },
  actions: {
    reuseSFUConfig: assign({ sfuConfigReused: true }),
    storeOpenIdToken: assign({ openIdToken: (_, params: { token: Sealed<OpenIDToken> }) => params.token }),
    storeSFUConfig: assign({
      sfuConfig: (_, params: { config: SFUCredentials }) => params.config,
      sfuConfigReused: false,
    }),
    forgetSFUConfig: assign({ sfuConfig: undefined, sfuConfigReused: false }),
    storeDelayedLeave: assign({
      delayedLeave: (_, params: { delayedLeave: Sealed<DelayedLeave> | undefined }) => params.delayedLeave,
    }),
    storeDelegationError: assign({ delegationError: ({ event }) => (event as { error?: unknown }).error }),
    clearDelegationError: assign({ delegationError: undefined }),
    forgetOpenIdToken: assign({ openIdToken: undefined }),
    /** The error of the `xstate.error.actor.*` event at hand (an event without one keeps the stored error). */
    storeError: assign({
      error: ({ context, event }) => ("error" in event ? (event as { error: unknown }).error : context.error),
    }),
    clearError: assign({ error: undefined }),
    /** On entry to `Livekit.room.lost`: the reason of the `room.disconnected` event that led there. */
    storeLostReason: assign({
      lostReason: ({ event }) => (event.type === "room.disconnected" ? event.reason : undefined),
    }),
    countReconnectAttempt: assign({ reconnectAttempts: ({ context }) => context.reconnectAttempts + 1 }),
    resetReconnectAttempts: assign({ reconnectAttempts: 0 }),
  },
  guards: {
    /** A known SFU config whose JWT stays valid for at least the margin (a JWT without `exp` always does). */
    sfuConfigReusable: ({ context }) => {
      const config = context.sfuConfig;
      return config !== undefined && (config.expiresAt ?? Infinity) - Date.now() >= context.jwtMarginMs;
    },
    /** The SFU refused a JWT from before this run: the room is gone (404) or the token is (401/403). */
    reusedSFUConfigRefused: ({ context, event }) => {
      if (!context.sfuConfigReused) return false;
      const error = (event as { error?: unknown }).error as { name?: unknown; reasonName?: unknown } | undefined;
      return (
        error?.name === "SFURoomCreationRestrictedError" ||
        (error?.name === "LivekitConnectionError" && error.reasonName === "NotAllowed")
      );
    },
    /** The lost connection is to be made again: a policy is set and LiveKit did not end it on purpose. */
    mayReconnect: ({ context }) =>
      context.reconnect !== false &&
      (context.lostReason === undefined || !FINAL_DISCONNECT_REASONS.has(context.lostReason)),
    /** This run is a reconnect attempt. */
    reconnecting: ({ context }) => context.reconnectAttempts > 0,
    reconnectAttemptsSpent: ({ context }) =>
      context.reconnect === false || context.reconnectAttempts >= context.reconnect.maxAttempts,
    noDelayedLeave: ({ context }) => context.delayedLeave === undefined,
    roomConnected: stateIn("#connection.Livekit.room.connected"),
    restartRequested: stateIn("#connection.Stopping.ThenStart"),
    disposalRequested: stateIn("#connection.Stopping.ThenDispose"),
    /** Whether the failure in an `xstate.error.actor.*` event is the CallError subclass named in params. */
    errorIs: ({ event }, params: { name: CallErrorName }) => {
      const error = (event as { error?: unknown }).error;
      return error instanceof Error && error.name === params.name;
    },
  },
  delays: {
    /** `initialDelayMs`, doubled for each attempt made, at most `maxDelayMs`. */
    reconnectDelay: ({ context }) => {
      // (never without a policy: WaitingToReconnect is left at once then, as its attempts are spent)
      const policy = context.reconnect || DEFAULT_RECONNECT_POLICY;
      return Math.min(policy.initialDelayMs * 2 ** context.reconnectAttempts, policy.maxDelayMs);
    },
  },
}).createMachine({
  id: "connection",
  description:
    "One MatrixRTC connection: OpenID token from the homeserver, SFU config from the MatrixRTC auth service, then a LiveKit room connection.",
  initial: "Initialized",
  on: {
    // Kept for the next run; in Livekit, the delegation region takes it at once.
    DELAYED_LEAVE_CHANGED: {
      actions: { type: "storeDelayedLeave", params: ({ event }) => ({ delayedLeave: event.delayedLeave }) },
    },
  },
  context: ({ input }) => ({
    deps: input.deps,
    reconnect: input.reconnect ?? DEFAULT_RECONNECT_POLICY,
    jwtMarginMs: input.jwtMarginMs ?? DEFAULT_JWT_MARGIN_MS,
    delayedLeave: input.delayedLeave,
    openIdToken: undefined,
    sfuConfig: input.existingSFUConfig,
    sfuConfigReused: false,
    delegationError: undefined,
    reconnectAttempts: 0,
    lostReason: undefined,
    error: undefined,
  }),
  states: {
    Initialized: {
      description: "Created; nothing has been requested and the room is untouched.",
      on: {
        START: { target: "Starting" },
        STOP: { target: "Stopped" },
        DISPOSE: { target: "Disposed" },
      },
    },
    Starting: {
      description:
        "Where every run begins: with a known SFU config whose JWT stays valid long enough (given, or kept from an earlier run) the room is connected at once, with no request; otherwise a fresh config is fetched first.",
      entry: "clearError",
      always: [
        { guard: "sfuConfigReusable", target: "Livekit", actions: "reuseSFUConfig" },
        { target: "FetchingConfig", actions: "forgetSFUConfig" },
      ],
    },
    FetchingConfig: {
      description:
        "Getting the credentials to join the SFU. Leaving this state (STOP) aborts the request in flight; a result that arrives later is dropped.",
      initial: "RequestingOpenIdToken",
      exit: "forgetOpenIdToken",
      on: {
        STOP: { target: "Stopped" },
        DISPOSE: { target: "Disposed" },
      },
      states: {
        RequestingOpenIdToken: {
          description:
            "Asking the homeserver for an OpenID token, retrying transient failures with backoff, within a time limit.",
          invoke: {
            id: "requestOpenIdToken",
            src: "requestOpenIdToken",
            input: ({ context }) => ({ deps: context.deps }),
            onDone: {
              target: "RequestingSFUConfig",
              actions: { type: "storeOpenIdToken", params: ({ event }) => ({ token: event.output }) },
            },
            onError: [
              { guard: "reconnecting", target: "#connection.WaitingToReconnect", actions: "storeError" },
              { target: "#connection.Failed.OpenIdError" },
            ],
          },
        },
        RequestingSFUConfig: {
          description:
            "Trading the OpenID token at the auth service (POST /get_token, falling back to the legacy /sfu/get, or only one of them with forceJwtEndpoint) for the SFU URL and JWT, with retries and a time limit; the delayed leave's fields go with it.",
          invoke: {
            id: "requestSFUConfig",
            src: "requestSFUConfig",
            input: ({ context }) => ({
              deps: context.deps,
              openIdToken: context.openIdToken!,
              delayedLeave: context.delayedLeave,
            }),
            onDone: {
              target: "#connection.Livekit",
              actions: { type: "storeSFUConfig", params: ({ event }) => ({ config: event.output }) },
            },
            onError: [
              { guard: "reconnecting", target: "#connection.WaitingToReconnect", actions: "storeError" },
              {
                guard: { type: "errorIs", params: { name: "NoMatrix2AuthorizationService" } },
                target: "#connection.Failed.NoMatrix2AuthorizationService",
              },
              { target: "#connection.Failed.OpenIdError" },
            ],
          },
        },
      },
    },
    Livekit: {
      description:
        "Connecting to and connected with the LiveKit room: the room's ConnectionState, and beside it the delegation of the delayed leave. The connect's failure decides the error state.",
      type: "parallel",
      invoke: [
        { id: "watchRoom", src: "watchRoom", input: ({ context }) => ({ deps: context.deps }) },
        {
          id: "connectRoom",
          src: "connectRoom",
          input: ({ context }) => ({ deps: context.deps, url: context.sfuConfig!.url, jwt: context.sfuConfig!.jwt }),
          // No onDone: the room's own 'connected' report (sent before connect() resolves) moves the state; a
          // late done event must not pull a room that has moved on back to 'connected'.
          onError: [
            // Once per run: the fresh config's own refusal goes on below.
            { guard: "reusedSFUConfigRefused", target: "#connection.FetchingConfig", actions: "forgetSFUConfig" },
            { guard: "reconnecting", target: "#connection.WaitingToReconnect", actions: "storeError" },
            {
              guard: { type: "errorIs", params: { name: "InsufficientCapacityError" } },
              target: "#connection.Failed.InsufficientCapacity",
            },
            {
              guard: { type: "errorIs", params: { name: "SFURoomCreationRestrictedError" } },
              target: "#connection.Failed.RoomCreationRestricted",
            },
            {
              guard: { type: "errorIs", params: { name: "PeerConnectionTimeoutError" } },
              target: "#connection.Failed.PeerConnectionTimeout",
            },
            {
              guard: { type: "errorIs", params: { name: "LivekitConnectionError" } },
              target: "#connection.Failed.LivekitError",
            },
            { target: "#connection.Failed.Unknown" },
          ],
        },
      ],
      on: {
        STOP: { target: "Stopping" },
        DISPOSE: { target: "#connection.Stopping.ThenDispose" },
      },
      states: {
        room: {
          description: "The room's ConnectionState, as the room reports it.",
          initial: "disconnected",
          states: {
            disconnected: {
              description: "The connect has been asked for and has not begun yet.",
              on: {
                "room.connecting": { target: "connecting" },
                "room.connected": { target: "connected" },
              },
            },
            connecting: {
              description:
                "room.connect() is in flight. A 'disconnected' report here is ignored: the connect's own result decides what follows.",
              on: {
                "room.connected": { target: "connected" },
              },
            },
            connected: {
              description: "Joined the LiveKit room; media can flow.",
              tags: "settled",
              entry: "resetReconnectAttempts",
              on: {
                "room.reconnecting": { target: "reconnecting" },
                "room.signalReconnecting": { target: "signalReconnecting" },
                "room.disconnected": { target: "lost" },
              },
            },
            reconnecting: {
              description: "LiveKit is re-establishing the whole connection (signal and media).",
              on: {
                "room.connected": { target: "connected" },
                // Seen against a killed SFU: a full reconnect whose attempts fail goes back to resuming the signal.
                "room.signalReconnecting": { target: "signalReconnecting" },
                "room.disconnected": { target: "lost" },
              },
            },
            signalReconnecting: {
              description: "LiveKit is resuming the signalling connection; media may still flow.",
              on: {
                "room.connected": { target: "connected" },
                "room.reconnecting": { target: "reconnecting" },
                "room.disconnected": { target: "lost" },
              },
            },
            lost: {
              description:
                "A live connection dropped and LiveKit gave up reconnecting (shown as 'disconnected'). Under a reconnect policy, and unless LiveKit ended it on purpose (the app, the server, or another session with the same identity), the connection waits to reconnect; otherwise it stays here until START.",
              tags: "settled",
              entry: "storeLostReason",
              always: { guard: "mayReconnect", target: "#connection.WaitingToReconnect" },
              on: {
                START: { target: "#connection.Starting" },
              },
            },
          },
        },
        delayedLeave: {
          description:
            "Beside the room: the delegation of the app's delayed leave event to the auth service, which then sends the leave when the SFU reports the participant gone. It never blocks or fails the call.",
          initial: "Checking",
          on: {
            // (not reenter: that would re-enter the whole parallel state, the room region and its connect too)
            DELAYED_LEAVE_CHANGED: {
              target: ".Checking",
              actions: { type: "storeDelayedLeave", params: ({ event }) => ({ delayedLeave: event.delayedLeave }) },
            },
          },
          states: {
            Checking: {
              description:
                "Whether there is a delayed leave to delegate, and whether the room is connected. (The token request carried it too, but an auth service may accept those fields and ignore them: only /delegate_delayed_leave says it was taken.)",
              always: [
                { guard: "noDelayedLeave", target: "NotRequested" },
                { guard: "roomConnected", target: "Delegating" },
                { target: "WaitingForConnection" },
              ],
            },
            NotRequested: {
              description: "The app has handed over no delayed leave.",
            },
            WaitingForConnection: {
              description: "The auth service delegates for a participant on the SFU: waiting for the room to connect.",
              on: {
                "room.connected": { target: "Delegating" },
              },
            },
            Delegating: {
              description: "POST /delegate_delayed_leave, with a fresh OpenID token, within the SFU-config time limit.",
              entry: "clearDelegationError",
              invoke: {
                id: "delegateDelayedLeave",
                src: "delegateDelayedLeave",
                input: ({ context }) => ({ deps: context.deps, delayedLeave: context.delayedLeave! }),
                onDone: { target: "Delegated" },
                onError: { target: "Failed", actions: "storeDelegationError" },
              },
            },
            Delegated: {
              description: "The auth service has taken the delayed leave over.",
            },
            Failed: {
              description:
                "The delegation failed (`context.delegationError`, and the log): the app keeps the delayed leave alive itself.",
            },
          },
        },
      },
    },
    WaitingToReconnect: {
      description:
        "The connection was lost, or a reconnect attempt failed: waiting (initialDelayMs, doubling, at most maxDelayMs) before the next attempt, shown as 'disconnected'. START connects at once; STOP cancels; with the attempts spent, the connection has failed.",
      always: { guard: "reconnectAttemptsSpent", target: "#connection.Failed.ConnectionLost" },
      after: {
        reconnectDelay: { target: "Starting", actions: "countReconnectAttempt" },
      },
      on: {
        START: { target: "Starting", actions: "resetReconnectAttempts" },
        STOP: { target: "Stopping" },
        DISPOSE: { target: "#connection.Stopping.ThenDispose" },
      },
    },
    Stopping: {
      description:
        "Disconnecting the room (a pending connect is cancelled, without an error). The substate says what follows: START and STOP toggle between stopping and starting again; DISPOSE ends the connection for good.",
      initial: "ThenStop",
      entry: "resetReconnectAttempts",
      invoke: {
        id: "disconnectRoom",
        src: "disconnectRoom",
        input: ({ context }) => ({ deps: context.deps }),
        onDone: [
          { guard: "restartRequested", target: "Starting" },
          { guard: "disposalRequested", target: "Disposed" },
          { target: "Stopped" },
        ],
        // A failed disconnect leaves the room as disconnected as it can be: go on as if it had worked.
        onError: [
          { guard: "restartRequested", target: "Starting" },
          { guard: "disposalRequested", target: "Disposed" },
          { target: "Stopped" },
        ],
      },
      on: {
        DISPOSE: { target: ".ThenDispose" },
      },
      states: {
        ThenStop: {
          description: "Then Stopped.",
          tags: "settled",
          on: { START: { target: "ThenStart" } },
        },
        ThenStart: {
          description: "A START arrived while stopping: once disconnected, start again.",
          on: { STOP: { target: "ThenStop" } },
        },
        ThenDispose: {
          description: "Disposed of while stopping: once disconnected, the connection is over.",
          tags: ["settled", "disposed"],
        },
      },
    },
    Stopped: {
      description: "Stopped on request. START runs the pipeline again (reusing the SFU config while its JWT is valid).",
      tags: "settled",
      entry: "resetReconnectAttempts",
      on: {
        START: { target: "Starting" },
        DISPOSE: { target: "Disposed" },
      },
    },
    Failed: {
      description:
        "The connection could not be made; `context.error` says why. START tries again (with the SFU config while its JWT is valid).",
      initial: "Unknown",
      tags: "settled",
      entry: ["storeError", "resetReconnectAttempts"],
      on: {
        START: { target: "Starting" },
        // Through Stopping, as Element Call's stop() always disconnects: an actor of one's own may have left
        // the room connected when it failed.
        STOP: { target: "Stopping" },
        DISPOSE: { target: "#connection.Stopping.ThenDispose" },
      },
      states: {
        OpenIdError: {
          description: "No OpenID token or no SFU config: homeserver or auth service refused, failed or timed out.",
        },
        NoMatrix2AuthorizationService: {
          description:
            "The auth service's MatrixRTC 2.0 endpoint (/get_token), required by forceJwtEndpoint: 'matrix_2_0', failed: the service is out of date.",
        },
        InsufficientCapacity: {
          description:
            "The SFU is over its limits: 503 or 429 from LiveKit's validate endpoint (asked after a WebSocket failure) or in the connect's error, or a JOIN_FAILURE leave request.",
        },
        RoomCreationRestricted: {
          description: "The LiveKit room does not exist and this user may not create it (404).",
        },
        PeerConnectionTimeout: {
          description: "The signalling or media connection to the SFU timed out.",
        },
        LivekitError: {
          description: "LiveKit failed the connection for another reason (see the error's reasonName).",
        },
        ConnectionLost: {
          description:
            "A live connection was lost and every reconnect attempt failed; `context.error` is the last attempt's failure.",
        },
        Unknown: {
          description: "An unexpected failure.",
        },
      },
    },
    Disposed: {
      description: "Disposed of (the room disconnected if it was in use): the actor is done and accepts nothing more.",
      type: "final",
      tags: ["settled", "disposed"],
    },
  },
});

export type ConnectionMachine = typeof connectionMachine;
