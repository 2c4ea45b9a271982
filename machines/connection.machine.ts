import { assign, fromCallback, fromPromise, setup, stateIn, type EventObject } from "xstate";

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
  | "InsufficientCapacityError"
  | "SFURoomCreationRestrictedError"
  | "PeerConnectionTimeoutError"
  | "LivekitConnectionError"
  | "UnknownCallError";

/** The OpenID token a homeserver hands out (`IOpenIDToken` in matrix-js-sdk). */
export interface OpenIDToken {
  access_token: string;
  token_type: string;
  matrix_server_name: string;
  expires_in: number;
}

/** Where and how to join the LiveKit room. The JWT stays inside a `Secret` so snapshots never show it. */
export interface SFUCredentials {
  url: string;
  jwt: Sealed<string>;
  livekitAlias: string;
  livekitIdentity: string;
}

export interface ConnectionMachineInput {
  /**
   * What the actors need for this connection (room, client, transport, …). The chart only hands it to every
   * invoked actor as `input.deps`; `createConnectionActor` passes its own, inside a `Secret` so that snapshots
   * and inspection events never show the client or the room.
   */
  deps?: unknown;
  /** Skip the fetch and connect with this config (Element Call's `existingSFUConfig`). */
  existingSFUConfig?: SFUCredentials;
}

export interface ConnectionMachineContext {
  deps: unknown;
  existingSFUConfig: SFUCredentials | undefined;
  openIdToken: Sealed<OpenIDToken> | undefined;
  sfuConfig: SFUCredentials | undefined;
  /** The error that put the machine in `Failed` (a CallError when the actors of `src/` are used). */
  error: unknown;
}

export type RoomConnectionState = "disconnected" | "connecting" | "connected" | "reconnecting" | "signalReconnecting";

/** Events the room watcher sends: one per LiveKit `ConnectionState`. */
export type RoomEvent = { type: `room.${RoomConnectionState}` };

export type ConnectionMachineEvent = { type: "START" } | { type: "STOP" } | { type: "DISPOSE" } | RoomEvent;

/** The input of every invoked actor: the connection's dependencies. */
export interface ActorInput {
  deps: unknown;
}

export interface RequestSFUConfigInput extends ActorInput {
  openIdToken: Sealed<OpenIDToken>;
}

/** The input of `connectRoom`: read the JWT with `reveal(input.jwt)`. */
export interface ConnectRoomInput extends ActorInput {
  url: string;
  jwt: Sealed<string>;
}

/** `settled`: a `start()` waiting in this state is over; `disposed`: no run will ever begin again. */
export type ConnectionMachineTag = "settled" | "disposed";

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
    },
  },
  actors: {
    requestOpenIdToken: fromPromise<Sealed<OpenIDToken>, ActorInput>(async () => notProvided("requestOpenIdToken")),
    requestSFUConfig: fromPromise<SFUCredentials, RequestSFUConfigInput>(async () => notProvided("requestSFUConfig")),
    // A no-op rather than a throw: a callback actor that throws would crash the whole machine.
    watchRoom: fromCallback<EventObject, ActorInput>(() => {}),
    connectRoom: fromPromise<void, ConnectRoomInput>(async () => notProvided("connectRoom")),
    disconnectRoom: fromPromise<void, ActorInput>(async () => notProvided("disconnectRoom")),
  },
  actions: {
    useExistingSFUConfig: assign({ sfuConfig: ({ context }) => context.existingSFUConfig }),
    storeOpenIdToken: assign({ openIdToken: (_, params: { token: Sealed<OpenIDToken> }) => params.token }),
    storeSFUConfig: assign({ sfuConfig: (_, params: { config: SFUCredentials }) => params.config }),
    forgetSFUConfig: assign({ sfuConfig: undefined }),
    forgetOpenIdToken: assign({ openIdToken: undefined }),
    /** On entry to `Failed`: the error of the `xstate.error.actor.*` event that led there. */
    storeError: assign({ error: ({ event }) => (event as { error?: unknown }).error }),
    clearError: assign({ error: undefined }),
  },
  guards: {
    hasExistingSFUConfig: ({ context }) => context.existingSFUConfig !== undefined,
    restartRequested: stateIn("#connection.Stopping.ThenStart"),
    disposalRequested: stateIn("#connection.Stopping.ThenDispose"),
    /** Whether the failure in an `xstate.error.actor.*` event is the CallError subclass named in params. */
    errorIs: ({ event }, params: { name: CallErrorName }) => {
      const error = (event as { error?: unknown }).error;
      return error instanceof Error && error.name === params.name;
    },
  },
}).createMachine({
  id: "connection",
  description:
    "One MatrixRTC connection: OpenID token from the homeserver, SFU config from the MatrixRTC auth service, then a LiveKit room connection.",
  initial: "Initialized",
  context: ({ input }) => ({
    deps: input.deps,
    existingSFUConfig: input.existingSFUConfig,
    openIdToken: undefined,
    sfuConfig: undefined,
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
        "Where every run begins: with a known SFU config the room is connected at once, otherwise the config is fetched first.",
      entry: ["clearError", "forgetSFUConfig"],
      always: [
        { guard: "hasExistingSFUConfig", target: "Livekit", actions: "useExistingSFUConfig" },
        { target: "FetchingConfig" },
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
            onError: { target: "#connection.Failed.OpenIdError" },
          },
        },
        RequestingSFUConfig: {
          description:
            "Trading the OpenID token at the auth service (POST /get_token, falling back to the legacy /sfu/get) for the SFU URL and JWT, with retries and a time limit.",
          invoke: {
            id: "requestSFUConfig",
            src: "requestSFUConfig",
            input: ({ context }) => ({ deps: context.deps, openIdToken: context.openIdToken! }),
            onDone: {
              target: "#connection.Livekit",
              actions: { type: "storeSFUConfig", params: ({ event }) => ({ config: event.output }) },
            },
            onError: { target: "#connection.Failed.OpenIdError" },
          },
        },
      },
    },
    Livekit: {
      description:
        "Connecting to and connected with the LiveKit room. The substates mirror the room's ConnectionState; the connect's failure decides the error state.",
      initial: "disconnected",
      invoke: [
        { id: "watchRoom", src: "watchRoom", input: ({ context }) => ({ deps: context.deps }) },
        {
          id: "connectRoom",
          src: "connectRoom",
          input: ({ context }) => ({ deps: context.deps, url: context.sfuConfig!.url, jwt: context.sfuConfig!.jwt }),
          // No onDone: the room's own 'connected' report (sent before connect() resolves) moves the state; a
          // late done event must not pull a room that has moved on back to 'connected'.
          onError: [
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
            "A live connection dropped and LiveKit gave up reconnecting (shown as 'disconnected'). START connects again, with a new config unless one was given.",
          tags: "settled",
          on: {
            START: { target: "#connection.Starting" },
          },
        },
      },
    },
    Stopping: {
      description:
        "Disconnecting the room (a pending connect is cancelled, without an error). The substate says what follows: START and STOP toggle between stopping and starting again; DISPOSE ends the connection for good.",
      initial: "ThenStop",
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
      description: "Stopped on request. START runs the whole pipeline again.",
      tags: "settled",
      on: {
        START: { target: "Starting" },
        DISPOSE: { target: "Disposed" },
      },
    },
    Failed: {
      description: "The connection could not be made; `context.error` says why. START tries again.",
      initial: "Unknown",
      tags: "settled",
      entry: "storeError",
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
        InsufficientCapacity: {
          description: "The SFU is full (503, 429, 200 or a JOIN_FAILURE leave request).",
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
