import { assign, fromCallback, fromPromise, setup, type EventObject } from "xstate";
import type { Secret } from "../src/secret";
import type { CallErrorName } from "../src/errors";

/** The OpenID token a homeserver hands out (`IOpenIDToken` in matrix-js-sdk). */
export interface OpenIDToken {
  access_token: string;
  token_type: string;
  matrix_server_name: string;
  expires_in: number;
}

/** Where and how to join the LiveKit room. The JWT stays inside a `Secret` so snapshots never show it. */
export interface SfuCredentials {
  url: string;
  jwt: Secret<string>;
  livekitAlias: string;
  livekitIdentity: string;
}

export interface ConnectionMachineInput {
  /** Skip the fetch and connect with this config (Element Call's `existingSFUConfig`). */
  existingSfuConfig?: SfuCredentials;
}

export interface ConnectionMachineContext {
  existingSfuConfig: SfuCredentials | undefined;
  openIdToken: Secret<OpenIDToken> | undefined;
  sfuConfig: SfuCredentials | undefined;
  /** The error that put the machine in `Failed` (a CallError when the actors of `src/` are used). */
  error: unknown;
  /** Identities of the remote participants in the LiveKit room while in `Livekit`. */
  remoteParticipants: string[];
  /** True once a live connection dropped to `disconnected`; a START may then run the pipeline again. */
  connectionLost: boolean;
}

export type RoomConnectionState = "disconnected" | "connecting" | "connected" | "reconnecting" | "signalReconnecting";

/** Events the room watcher sends: one per LiveKit `ConnectionState`, plus participant changes. */
export type RoomEvent =
  { type: `room.${RoomConnectionState}` } | { type: "room.participantsChanged"; identities: string[] };

export type ConnectionMachineEvent = { type: "START" } | { type: "STOP" } | RoomEvent;

export interface ConnectRoomInput {
  url: string;
  jwt: Secret<string>;
}

function notProvided(name: string): never {
  throw new Error(`The '${name}' actor has no implementation: create the actor with createConnectionActor()`);
}

const errorName = (error: unknown): string | undefined => (error instanceof Error ? error.name : undefined);

/**
 * The lifecycle of one MatrixRTC connection to a LiveKit SFU. Implementations of the actors (the I/O) are
 * provided by `createConnectionActor` in `src/`; the ones here only say what is missing.
 */
export const connectionMachine = setup({
  types: {
    context: {} as ConnectionMachineContext,
    events: {} as ConnectionMachineEvent,
    input: {} as ConnectionMachineInput,
    children: {} as {
      requestOpenIdToken: "requestOpenIdToken";
      requestSfuConfig: "requestSfuConfig";
      watchRoom: "watchRoom";
      connectRoom: "connectRoom";
      disconnectRoom: "disconnectRoom";
    },
  },
  actors: {
    requestOpenIdToken: fromPromise<Secret<OpenIDToken>>(async () => notProvided("requestOpenIdToken")),
    requestSfuConfig: fromPromise<SfuCredentials, { openIdToken: Secret<OpenIDToken> }>(async () =>
      notProvided("requestSfuConfig"),
    ),
    // A no-op rather than a throw: a callback actor that throws would crash the whole machine.
    watchRoom: fromCallback<EventObject>(() => {}),
    connectRoom: fromPromise<void, ConnectRoomInput>(async () => notProvided("connectRoom")),
    disconnectRoom: fromPromise<void>(async () => notProvided("disconnectRoom")),
  },
  actions: {
    useExistingSfuConfig: assign({ sfuConfig: ({ context }) => context.existingSfuConfig }),
    storeOpenIdToken: assign({ openIdToken: (_, params: { token: Secret<OpenIDToken> }) => params.token }),
    storeSfuConfig: assign({ sfuConfig: (_, params: { config: SfuCredentials }) => params.config }),
    forgetOpenIdToken: assign({ openIdToken: undefined }),
    storeError: assign({ error: (_, params: { error: unknown }) => params.error }),
    clearError: assign({ error: undefined }),
    resetRoomTracking: assign({ remoteParticipants: [], connectionLost: false }),
    storeRemoteParticipants: assign({
      remoteParticipants: (_, params: { identities: string[] }) => params.identities,
    }),
    markConnectionLost: assign({ connectionLost: true }),
  },
  guards: {
    hasExistingSfuConfig: ({ context }) => context.existingSfuConfig !== undefined,
    connectionWasLost: ({ context }) => context.connectionLost,
    connectionWasLostWithExistingSfuConfig: ({ context }) =>
      context.connectionLost && context.existingSfuConfig !== undefined,
    /** Whether the failure in an `xstate.error.actor.*` event is the CallError subclass named in params. */
    errorIs: ({ event }, params: { name: CallErrorName }) =>
      errorName((event as { error?: unknown }).error) === params.name,
  },
}).createMachine({
  id: "connection",
  description:
    "One MatrixRTC connection: OpenID token from the homeserver, SFU config from the MatrixRTC auth service, then a LiveKit room connection.",
  initial: "Initialized",
  context: ({ input }) => ({
    existingSfuConfig: input.existingSfuConfig,
    openIdToken: undefined,
    sfuConfig: undefined,
    error: undefined,
    remoteParticipants: [],
    connectionLost: false,
  }),
  states: {
    Initialized: {
      description: "Created; nothing has been requested and the room is untouched.",
      on: {
        START: [
          { guard: "hasExistingSfuConfig", target: "Livekit", actions: "useExistingSfuConfig" },
          { target: "FetchingConfig" },
        ],
        STOP: { target: "Stopped" },
      },
    },
    FetchingConfig: {
      description:
        "Getting the credentials to join the SFU. Leaving this state (STOP) aborts the request in flight; a result that arrives later is dropped.",
      initial: "RequestingOpenIdToken",
      entry: "clearError",
      exit: "forgetOpenIdToken",
      on: {
        STOP: { target: "Stopped" },
      },
      states: {
        RequestingOpenIdToken: {
          description:
            "Asking the homeserver for an OpenID token, retrying transient failures with backoff, within a time limit.",
          invoke: {
            id: "requestOpenIdToken",
            src: "requestOpenIdToken",
            onDone: {
              target: "RequestingSfuConfig",
              actions: { type: "storeOpenIdToken", params: ({ event }) => ({ token: event.output }) },
            },
            onError: {
              target: "#connection.Failed.OpenIdError",
              actions: { type: "storeError", params: ({ event }) => ({ error: event.error }) },
            },
          },
        },
        RequestingSfuConfig: {
          description:
            "Trading the OpenID token at the auth service (POST /get_token, falling back to the legacy /sfu/get) for the SFU URL and JWT, with retries and a time limit.",
          invoke: {
            id: "requestSfuConfig",
            src: "requestSfuConfig",
            input: ({ context }) => ({ openIdToken: context.openIdToken! }),
            onDone: {
              target: "#connection.Livekit",
              actions: { type: "storeSfuConfig", params: ({ event }) => ({ config: event.output }) },
            },
            onError: {
              target: "#connection.Failed.OpenIdError",
              actions: { type: "storeError", params: ({ event }) => ({ error: event.error }) },
            },
          },
        },
      },
    },
    Livekit: {
      description:
        "Connecting to and connected with the LiveKit room. The substates mirror the room's ConnectionState; the connect's failure decides the error state.",
      initial: "disconnected",
      entry: ["clearError", "resetRoomTracking"],
      exit: "resetRoomTracking",
      invoke: [
        { id: "watchRoom", src: "watchRoom" },
        {
          id: "connectRoom",
          src: "connectRoom",
          input: ({ context }) => ({ url: context.sfuConfig!.url, jwt: context.sfuConfig!.jwt }),
          // No onDone: the room's own 'connected' report (sent before connect() resolves) moves the state; a
          // late done event must not pull a room that has moved on back to 'connected'.
          onError: [
            {
              guard: { type: "errorIs", params: { name: "InsufficientCapacityError" } },
              target: "#connection.Failed.InsufficientCapacity",
              actions: { type: "storeError", params: ({ event }) => ({ error: event.error }) },
            },
            {
              guard: { type: "errorIs", params: { name: "SFURoomCreationRestrictedError" } },
              target: "#connection.Failed.RoomCreationRestricted",
              actions: { type: "storeError", params: ({ event }) => ({ error: event.error }) },
            },
            {
              guard: { type: "errorIs", params: { name: "PeerConnectionTimeoutError" } },
              target: "#connection.Failed.PeerConnectionTimeout",
              actions: { type: "storeError", params: ({ event }) => ({ error: event.error }) },
            },
            {
              guard: { type: "errorIs", params: { name: "LivekitConnectionError" } },
              target: "#connection.Failed.LivekitError",
              actions: { type: "storeError", params: ({ event }) => ({ error: event.error }) },
            },
            {
              target: "#connection.Failed.Unknown",
              actions: { type: "storeError", params: ({ event }) => ({ error: event.error }) },
            },
          ],
        },
      ],
      on: {
        STOP: { target: "Stopping" },
        "room.participantsChanged": {
          actions: { type: "storeRemoteParticipants", params: ({ event }) => ({ identities: event.identities }) },
        },
      },
      states: {
        disconnected: {
          description:
            "The room is not connected: either the connect has not begun yet, or a live connection was lost (then START connects again).",
          on: {
            "room.connecting": { target: "connecting" },
            "room.connected": { target: "connected" },
            START: [
              {
                guard: "connectionWasLostWithExistingSfuConfig",
                target: "#connection.Livekit",
                reenter: true,
              },
              { guard: "connectionWasLost", target: "#connection.FetchingConfig" },
            ],
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
          on: {
            "room.reconnecting": { target: "reconnecting" },
            "room.signalReconnecting": { target: "signalReconnecting" },
            "room.disconnected": { target: "disconnected", actions: "markConnectionLost" },
          },
        },
        reconnecting: {
          description: "LiveKit is re-establishing the whole connection (signal and media).",
          on: {
            "room.connected": { target: "connected" },
            // Seen against a killed SFU: a full reconnect whose attempts fail goes back to resuming the signal.
            "room.signalReconnecting": { target: "signalReconnecting" },
            "room.disconnected": { target: "disconnected", actions: "markConnectionLost" },
          },
        },
        signalReconnecting: {
          description: "LiveKit is resuming the signalling connection; media may still flow.",
          on: {
            "room.connected": { target: "connected" },
            "room.reconnecting": { target: "reconnecting" },
            "room.disconnected": { target: "disconnected", actions: "markConnectionLost" },
          },
        },
      },
    },
    Stopping: {
      description: "Disconnecting the room (a pending connect is cancelled, without an error). START and STOP wait.",
      invoke: {
        id: "disconnectRoom",
        src: "disconnectRoom",
        onDone: { target: "Stopped" },
        onError: { target: "Stopped" },
      },
    },
    Stopped: {
      description: "Stopped on request. START runs the whole pipeline again.",
      on: {
        START: [
          { guard: "hasExistingSfuConfig", target: "Livekit", actions: "useExistingSfuConfig" },
          { target: "FetchingConfig" },
        ],
      },
    },
    Failed: {
      description: "The connection could not be made; `context.error` says why. START tries again.",
      initial: "Unknown",
      on: {
        START: [
          { guard: "hasExistingSfuConfig", target: "Livekit", actions: "useExistingSfuConfig" },
          { target: "FetchingConfig" },
        ],
        STOP: { target: "Stopped" },
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
  },
});

export type ConnectionMachine = typeof connectionMachine;
