import type { ConnectionState, DisconnectReason, RemoteParticipant, RoomEvent } from "livekit-client";
import type { ActorOptions, AnyActorLogic, InspectionEvent, Observer } from "xstate";
import type { ConnectionMachine, DelayedLeave, OpenIDToken } from "../machines/connection.machine";

export type { OpenIDToken };

/** The part of a matrix-js-sdk `MatrixClient` this package calls. */
export interface OpenIDClientParts {
  getOpenIdToken(): Promise<OpenIDToken>;
  getDeviceId?(): string | null;
  /** When there, its token is scrubbed from the errors of the OpenID request. */
  getAccessToken?(): string | null;
}

/** A MatrixRTC LiveKit transport (MSC4143), as found in call memberships. */
export interface LivekitTransportConfig {
  type: "livekit";
  livekit_service_url: string;
}

/** Who is joining: the Matrix user, their device, and the call membership's id. */
export interface CallMembershipIdentityParts {
  userId: string;
  deviceId: string;
  memberId: string;
}

/** What the auth service grants: where the SFU is, the JWT, and what the JWT says. */
export interface SFUConfig {
  url: string;
  jwt: string;
  /** The LiveKit room name (`video.room` in the JWT). */
  livekitAlias: string;
  /** The LiveKit participant identity (`sub` in the JWT). */
  livekitIdentity: string;
  /**
   * Whether the auth service accepted the delayed leave's fields in this token request (only when some were
   * sent: `false` when an older service refused them). Accepted is not delegated: lk-jwt-service v0.5.0 accepts
   * and ignores them, which is why the connection delegates with `/delegate_delayed_leave` once connected.
   */
  delayFieldsAccepted?: boolean;
  /**
   * When the JWT expires, in ms since the epoch (`exp` in the JWT), if it says. Read from the JWT: a value given
   * here is not used.
   */
  expiresAt?: number;
}

/**
 * Reconnecting a lost connection by itself (Element Call does not): after LiveKit gives up its own reconnect
 * attempts, the whole pipeline runs again, reusing the JWT while it is valid.
 */
export interface ReconnectOptions {
  /** Attempts before the connection fails with ConnectionLostError. Default 10. */
  maxAttempts?: number;
  /** The wait before the first attempt; it doubles for each next one. Default 1000 ms. */
  initialDelayMs?: number;
  /** The longest wait between two attempts. Default 30 000 ms. */
  maxDelayMs?: number;
}

/**
 * Which of the auth service's endpoints to use (Element Call's `JwtEndpointVersion`): unset, `/get_token`
 * falling back to the legacy `/sfu/get`; `"matrix_2_0"`, `/get_token` only (its failure is a
 * NoMatrix2AuthorizationService); `"legacy"`, `/sfu/get` only.
 */
export type JwtEndpointVersion = "legacy" | "matrix_2_0";

/** Retries of the OpenID and SFU-config requests, like matrix-js-sdk's `calculateRetryBackoff`. */
export interface RetryOptions {
  /** Attempts in all, the first included. Default 5. */
  maxAttempts?: number;
  /** Delay before the second attempt; it doubles each time. Default 2000 ms (2, 4, 8, 16 s). */
  initialDelayMs?: number;
}

/** Time limits of the phases, retries included. */
export interface TimeoutOptions {
  /** Default 60 000 ms. */
  openIdTokenMs?: number;
  /** Default 60 000 ms. */
  sfuConfigMs?: number;
  /** How long `room.disconnect()` may take before the machine counts the room as stopped. Default 10 000 ms. */
  disconnectMs?: number;
}

/** The logger shape of matrix-js-sdk (`Logger`); `console`-like loggers with `getChild` fit. */
export interface Logger {
  debug(...msg: unknown[]): void;
  info(...msg: unknown[]): void;
  warn(...msg: unknown[]): void;
  error(...msg: unknown[]): void;
  getChild(namespace: string): Logger;
}

/** xstate's clock (`setTimeout`/`clearTimeout`), as `createActor` takes it. */
export type Clock = NonNullable<ActorOptions<AnyActorLogic>["clock"]>;

type ParticipantListener = (participant: RemoteParticipant) => void;

/**
 * The surface of livekit-client's `Room` this package uses; a real `Room` fits, and so does a test double with
 * the same behaviour: `connectionStateChanged` as livekit-client reports it and, on going disconnected, the
 * `disconnected` event with its `DisconnectReason` (the chart takes the loss from that event: its reason decides
 * whether to reconnect).
 */
export interface LivekitRoomLike {
  readonly state: ConnectionState | `${ConnectionState}`;
  readonly remoteParticipants: ReadonlyMap<string, RemoteParticipant>;
  connect(url: string, token: string): Promise<void>;
  disconnect(): Promise<void>;
  on(event: RoomEvent.ConnectionStateChanged, listener: (state: ConnectionState) => void): unknown;
  on(event: RoomEvent.ParticipantConnected | RoomEvent.ParticipantDisconnected, listener: ParticipantListener): unknown;
  on(event: RoomEvent.Disconnected, listener: (reason?: DisconnectReason) => void): unknown;
  off(event: RoomEvent.ConnectionStateChanged, listener: (state: ConnectionState) => void): unknown;
  off(
    event: RoomEvent.ParticipantConnected | RoomEvent.ParticipantDisconnected,
    listener: ParticipantListener,
  ): unknown;
  off(event: RoomEvent.Disconnected, listener: (reason?: DisconnectReason) => void): unknown;
}

/** The options of a connection: `createConnectionActor` takes them, `Connection` all but `room` and `logger`. */
export interface ConnectionActorOptions {
  /** The LiveKit room to connect (a livekit-client `Room`, or anything with the same surface). */
  room: LivekitRoomLike;
  /** The Matrix client, or just its `getOpenIdToken`. */
  client: OpenIDClientParts;
  /** The MatrixRTC transport: where the auth service is. */
  transport: LivekitTransportConfig;
  /** The Matrix room id of the call. */
  roomId: string;
  ownMembershipIdentity: CallMembershipIdentityParts;
  /** An SFU config fetched already: START then connects at once (unless its JWT has expired). */
  existingSFUConfig?: SFUConfig;
  /** Use only one of the auth service's endpoints (see JwtEndpointVersion). */
  forceJwtEndpoint?: JwtEndpointVersion;
  /**
   * A delayed leave event for the auth service to take over (`DelayedLeave`): its fields go with the token request,
   * and once connected `POST /delegate_delayed_leave` delegates it. A failure never fails the call; it shows in the
   * snapshot and the log. `Connection.updateDelayedLeave` hands over a new one.
   */
  delayedLeave?: DelayedLeave;
  /** Reconnect after a lost connection; `false`: never (as Element Call). Default: on, with the defaults above. */
  reconnect?: ReconnectOptions | false;
  /**
   * A known SFU config (given, or from an earlier run) is used again, with no request, only while its JWT stays
   * valid for at least this long; otherwise a fresh one is fetched. Default 60 000 ms.
   */
  jwtMarginMs?: number;
  /** The fetch used for the auth service and the SFU's validate endpoint. Default `globalThis.fetch`. */
  fetch?: typeof globalThis.fetch;
  retry?: RetryOptions;
  timeouts?: TimeoutOptions;
  /** Allow `http:`/`ws:` URLs to hosts other than loopback. Default false. */
  allowInsecureTransport?: boolean;
  logger?: Logger;
  /** Receives XState inspection events (e.g. `@statelyai/inspect`); they carry no JWT or access token. */
  inspect?: Observer<InspectionEvent> | ((event: InspectionEvent) => void);
  /**
   * The machine to run; default: `connectionMachine` with this package's actors. To replace an actor, make one
   * with `connectionMachine.provide({ actors: { ...connectionActors, connectRoom: yours } })` (once, not per
   * connection) and pass it here.
   */
  machine?: ConnectionMachine;
  /**
   * The clock of the chart's delays (the reconnect waits), as xstate's `createActor` takes it; default the real
   * timers. A test can pass xstate's `SimulatedClock`.
   */
  clock?: Clock;
}
