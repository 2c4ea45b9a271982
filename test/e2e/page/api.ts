/**
 * The API the e2e test page puts on `window.e2e`, shared by the page (test/e2e/page/main.ts, bundled for the
 * browser) and the Jest tests (which only import these types and drive the page with `page.evaluate`).
 * Everything that crosses `page.evaluate` is plain JSON.
 */
import type { RetryOptions, SFUConfig, TimeoutOptions } from "../../../src/types";

export interface ConnectionParams {
  /** Homeserver client-server API base URL (stack.json `homeserver.base_url`). */
  baseUrl: string;
  accessToken: string;
  userId: string;
  deviceId: string;
  /** The transport's `livekit_service_url` (stack.json `jwt_services.<variant>.url`). */
  serviceUrl: string;
  /** The Matrix room id of the call (fake, unique per test). */
  roomId: string;
  /** The call membership's id; default `${userId}/${deviceId}`. */
  memberId?: string;
  retry?: RetryOptions;
  timeouts?: TimeoutOptions;
  /** Skip the jwt service: connect with this config (Element Call's local transport path). */
  existingSFUConfig?: SFUConfig;
  /** Hand the auth service a forged OpenID access token (the homeserver's userinfo lookup then fails). */
  forgeOpenIdToken?: boolean;
  /**
   * Call `stop()` from inside the page at a precise moment: when `state$` emits `connecting`, or when
   * livekit-client's `Room` emits `signalConnected` (the SFU has accepted the join; ICE is still under way).
   */
  stopOn?: "connecting" | "signalConnected";
  /**
   * livekit-client's reconnect policy for the `Room`: the delay before each reconnect attempt, after the last of
   * which it gives up (the room goes `disconnected`). Default: livekit-client's `DefaultReconnectPolicy`
   * (≈ 10 attempts over ≈ 40 s).
   */
  reconnectDelaysMs?: number[];
  /**
   * The package's own reconnect policy after LiveKit gave up (`false`: never); default: the package's (on, 10
   * attempts, 1 s doubling up to 30 s). Spelled out here rather than imported so the page states what it passes.
   */
  reconnect?: false | { maxAttempts?: number; initialDelayMs?: number; maxDelayMs?: number };
  /** How long the JWT must stay valid for a start to reuse the SFU config (default: the package's, 60 s). */
  jwtMarginMs?: number;
  /** Use only one of the auth service's endpoints (passed on only when given). */
  forceJwtEndpoint?: "legacy" | "matrix_2_0";
  /** A delayed leave for the auth service to take over (passed on only when given). */
  delayedLeave?: DelayedLeaveParams;
  /**
   * Keep the OpenID access tokens the client hands out, in the page only, so that `viewReport` can look for them
   * in the live view (the v scenarios). They never leave the page.
   */
  keepOpenIdTokens?: boolean;
}

/** The package's `DelayedLeaveOptions`, spelled out (the delay id is a secret: never print it). */
export interface DelayedLeaveParams {
  delayId: string;
  delayTimeoutMs: number;
  csApiUrl?: string;
}

/** A Matrix client of the page's own (matrix-js-sdk), for the Matrix side of a scenario. */
export interface MatrixParams {
  baseUrl: string;
  accessToken: string;
  userId: string;
  deviceId: string;
}

/** A `state$` value: a ConnectionState, or a CallError. `t` is ms since the connection was created. */
export type StateRecord =
  { t: number; state: string } | { t: number; error: string; code: string; message: string; cause?: string };

export interface ParticipantsRecord {
  t: number;
  identities: string[];
}

export interface Recording {
  states: StateRecord[];
  participants: ParticipantsRecord[];
  /** ms since creation at which each `start()` was called, and at which it settled. */
  starts: { calledAt: number; settledAt?: number; outcome?: "resolved" | "rejected"; error?: string }[];
  stops: { calledAt: number; resolvedAt?: number; stateAtCall: string }[];
  livekitAlias?: string;
  localIdentity?: string;
  /**
   * livekit-client's own `Room` events, as `reconnecting`, `signalReconnecting`, `reconnected` and
   * `disconnected(<DisconnectReason name>)` (e.g. `disconnected(DUPLICATE_IDENTITY)`).
   */
  roomEvents: { t: number; event: string }[];
  /**
   * The statechart's own state (`connection.actor`), as a dotted path (`Livekit.room.connected`,
   * `WaitingToReconnect`, `Failed.ConnectionLost`, …), each change in order; `state$` shows several of these as the
   * same value. In the parallel `Livekit` state only its `room` region counts here (see `delegation`).
   */
  machineStates: { t: number; state: string }[];
  /**
   * The delegation region of the chart (`Livekit.delayedLeave`: `NotRequested`, `WaitingForConnection`,
   * `Delegating`, `Delegated`, `Failed`; `Checking` is left in the same step), each change, recorded while the
   * chart is in `Livekit`. `machineStates` leaves this region out.
   */
  delegation: { t: number; state: string }[];
  /** The statechart's `context.delegationError`, described as a cause chain, when the recording is taken. */
  delegationError?: string;
  /** The statechart's `context.reconnectAttempts` when the recording is taken. */
  reconnectAttempts: number;
  /**
   * The page's wall clock (ms since the epoch, `performance.timeOrigin + …`) at `t = 0`, so a `t` can be compared
   * with a time taken in Node (`Date.now()`; both run on this machine, on the same system clock).
   */
  epochAtT0: number;
  /** The room's `ConnectionState` as livekit-client reports it, read when the recording is taken. */
  roomState: string;
  /** Per remote identity, its track publications as `kind/source/subscribed|unsubscribed`, read likewise. */
  remoteTracks: Record<string, string[]>;
  /**
   * Every WebSocket the page created since this connection was created (any connection's: the h scenarios have
   * one per page), URL without the query: each connect attempt of livekit-client opens one, each of its signal
   * resumes too.
   */
  webSockets: { t: number; url: string }[];
}

/** A `ConnectionManager` (issue 11, multi-SFU) for one user: its transports are auth-service URLs. */
export interface ManagerParams {
  baseUrl: string;
  accessToken: string;
  userId: string;
  deviceId: string;
  /** The Matrix room id of the call (fake, unique per test). */
  roomId: string;
  /** The call membership's id (the same for every connection of the manager). */
  memberId: string;
  /** The local transport's `livekit_service_url` (`localTransport$`, without an SFU config), or null. */
  local: string | null;
  /** The members' transports' `livekit_service_url`s (`remoteTransports$`), in order. */
  remote: string[];
  /** The package's reconnect policy, which is also the slots' retry policy (passed on only when given). */
  reconnect?: false | { maxAttempts?: number; initialDelayMs?: number; maxDelayMs?: number };
  retry?: RetryOptions;
  timeouts?: TimeoutOptions;
  /** As `ConnectionParams.keepOpenIdTokens`. */
  keepOpenIdTokens?: boolean;
}

/** A CallError (or another error) as the manager recording shows it. */
export interface ErrorRecord {
  error: string;
  code?: string;
  message: string;
  cause?: string;
}

/** One connection of a `ConnectionManagerData` value: its transport, its `state$` value then, its participants. */
export interface DataConnectionRecord {
  url: string;
  state: string;
  /** `getParticipantsForTransport(transport)`, as sorted identities. */
  participants: string[];
}

/** One slot of the manager's snapshot (`actor.getSnapshot().context.slots[i]`), when it changed. */
export interface SlotRecord {
  t: number;
  id: string;
  url: string;
  status: string;
  wanted: boolean;
  isLocal: boolean;
  retries: number;
  connectionState?: string;
  error?: ErrorRecord;
}

export interface ManagerRecording {
  /** The manager chart's state (`Running`, `Stopping`, `Stopped`, …), each change; `t` is ms since creation. */
  manager: { t: number; state: string }[];
  /** Each slot entry, recorded whenever its status, retries, wanted, connection state or error changes. */
  slots: SlotRecord[];
  /** The slot entries of the manager's snapshot now (`actor.getSnapshot().context.slots`; a slot that is done is gone). */
  currentSlots: SlotRecord[];
  /** Every `connectionManagerData$` value, in order. */
  data: { t: number; version: number; connections: DataConnectionRecord[] }[];
  /** `connectionManagerData$.value` now, its connections' states read now. */
  current: DataConnectionRecord[];
  /** Whether `connectionManagerData$` has completed. */
  dataCompleted: boolean;
  /**
   * Every connection the data has held, in the order first seen: its `state$` values (from the one it had when
   * first seen), when its `state$` completed, and its room's alias and identity read now.
   */
  connections: {
    url: string;
    states: StateRecord[];
    completedAt?: number;
    livekitAlias?: string;
    localIdentity?: string;
    roomState: string;
  }[];
  stops: { calledAt: number; resolvedAt?: number }[];
  epochAtT0: number;
}

/**
 * What the live statechart view (`src/view.ts`, mounted by `mountView`) did, recorded in the page by a
 * MutationObserver on its container from before the mount, so no change is missed between two reads: a panel's
 * `data-value` (its active leaf states, space-separated) or `data-status` changing, a state box gaining
 * `mrtc-sv-active` or `mrtc-sv-entered`, a transition gaining `mrtc-sv-taken`, a panel added or removed. `t` is
 * ms since the connection (or manager) was created, the clock of its `Recording`.
 */
export interface ViewChange {
  t: number;
  /** The panel's `data-actor`. */
  actor: string;
  kind: "value" | "status" | "active" | "entered" | "taken" | "added" | "removed";
  /** The new `data-value` / `data-status`, the state's `data-state`, the transition's text, or the machine's id. */
  value: string;
}

/** One panel of the view as it is now. */
export interface ViewPanel {
  actor: string;
  machine: string;
  status: string;
  value: string;
  /** `data-state` of the state boxes with `mrtc-sv-active`, in document order. */
  active: string[];
  /** `data-state` of those with `mrtc-sv-entered`. */
  entered: string[];
  /** The transitions with `mrtc-sv-taken`: the `data-state` of the state box they are drawn in, and their text. */
  taken: { source: string; text: string }[];
  /** The `div.mrtc-sv-last` line. */
  last: string;
  /** The `pre.mrtc-sv-context` text. */
  context: string;
}

export interface ViewReport {
  changes: ViewChange[];
  panels: ViewPanel[];
  /** The `ol.mrtc-sv-events` items, newest first. */
  events: string[];
  /** Whether the view shows a credential, checked at the same moment (see `ViewCredentials`). */
  credentials: ViewCredentials;
}

/**
 * Whether the live view shows a credential, checked in the page (the values never leave it): the view's whole
 * HTML (text and attributes) searched for each.
 */
export interface ViewCredentials {
  /** How many JWTs the page knows (each connection's `context.sfuConfig.jwt`, revealed in the page). */
  jwtsKnown: number;
  /** How many OpenID access tokens the client handed out (`keepOpenIdTokens`). */
  openIdTokensKnown: number;
  viewHasJwt: boolean;
  viewHasOpenIdToken: boolean;
  /** The client's Matrix access token. */
  viewHasAccessToken: boolean;
  /**
   * `sfuConfig.jwt` of the JSON in each connection panel's context (`[redacted]` when it is right; `(the JWT)` if
   * it were the JWT itself, which is not sent out of the page).
   */
  contextJwts: string[];
}

/** A call member, as its `org.matrix.msc4143.rtc.member` (m.rtc.member) event describes it. */
export interface MembershipParams {
  userId: string;
  deviceId: string;
  memberId: string;
  /** The `livekit_service_url` of the transport it publishes on (`transports.published[0]`). */
  serviceUrl: string;
}

/** `matchMembershipsToParticipants`'s answer for one membership, as plain data. */
export interface MatchedMemberRecord {
  userId: string;
  deviceId: string;
  /** matrix-js-sdk's `CallMembership.rtcBackendIdentity`. */
  rtcBackendIdentity: string;
  transportUrl?: string;
  /** The matched connection's transport URL, or null. */
  connectionUrl: string | null;
  /** The matched LiveKit participant's identity, or null. */
  participantIdentity: string | null;
}

/** What Chromium's RTCPeerConnections did (every one the page created), from their events and getStats(). */
export interface PeerConnectionReport {
  connectionState: string;
  /** Local ICE candidates as gathered (`candidate:` lines' address, protocol and type). */
  localCandidates: { address: string; port: number; protocol: string; type: string }[];
  /** The nominated, succeeded candidate pair, if any. */
  selectedPair?: {
    local: { address: string; port: number; protocol: string; type: string };
    remote: { address: string; port: number; protocol: string; type: string };
  };
  /** ICE servers the PC was configured with (from LiveKit's JoinResponse). */
  iceServers: string[];
}

export interface E2eApi {
  /** Creates a real matrix-js-sdk client and a `Connection` with a real livekit-client `Room`; returns its id. */
  create(params: ConnectionParams): string;
  /** `connection.start()`; resolves with its outcome (never rejects). */
  start(id: string): Promise<{ outcome: "resolved" | "rejected"; error?: string }>;
  /** `connection.start()` without waiting. */
  startInBackground(id: string): void;
  /** `connection.stop()`. */
  stop(id: string): Promise<void>;
  /** Resolves once `state$` shows `state` (a ConnectionState value, or a CallError name); rejects after `timeoutMs`. */
  waitForState(id: string, state: string, timeoutMs: number): Promise<void>;
  /** Resolves once the remote identities equal `identities` (order ignored); rejects after `timeoutMs`. */
  waitForParticipants(id: string, identities: string[], timeoutMs: number): Promise<void>;
  recording(id: string): Recording;
  /** Publishes the fake camera and/or microphone (Chromium's --use-fake-device-for-media-stream). */
  publishFakeMedia(id: string, what: { camera?: boolean; microphone?: boolean }): Promise<void>;
  /** Every RTCPeerConnection the page has created so far (all connections), in creation order. */
  peerConnections(): Promise<PeerConnectionReport[]>;
  /** `connection.updateDelayedLeave(delayedLeave)` (`null`: none). */
  updateDelayedLeave(id: string, delayedLeave: DelayedLeaveParams | null): void;
  /**
   * A real matrix-js-sdk client and a `ConnectionManager` (livekit-client `Room`s, one per transport) following the
   * transports given; returns its id.
   */
  createManager(params: ManagerParams): string;
  /** The manager's new transports (each observable emits only if its value changed, the local one first). */
  setTransports(id: string, local: string | null, remote: string[]): void;
  /** `manager.stop()`. */
  stopManager(id: string): Promise<void>;
  managerRecording(id: string): ManagerRecording;
  /**
   * Real matrix-js-sdk `CallMembership`s (parsed from `org.matrix.msc4143.rtc.member` events), matched with
   * `matchMembershipsToParticipants` against the manager's data now, the manager's user and device as the local one.
   */
  matchMembers(id: string, memberships: MembershipParams[]): Promise<MatchedMemberRecord[]>;
  /**
   * Mounts the live statechart view (`mountStatechartView`) of connection or manager `id` in a visible container
   * of its own, and records its changes (see `ViewChange`).
   */
  mountView(id: string): void;
  /** What the view did and shows now, and whether it shows a credential. */
  viewReport(id: string): ViewReport;
  /** The view's `dispose()`. */
  disposeView(id: string): void;
  /** matrix-js-sdk `createRoom` (private, no federation): a real Matrix room; returns its id. */
  matrixCreateRoom(p: MatrixParams): Promise<string>;
  /** matrix-js-sdk `sendStateEvent`. */
  matrixSendState(p: MatrixParams, roomId: string, type: string, content: object, stateKey: string): Promise<void>;
  /**
   * matrix-js-sdk `_unstable_sendDelayedStateEvent` (MSC4140: `PUT …/state/{type}/{key}?org.matrix.msc4140.delay=`),
   * as a MatrixRTC membership manager schedules its leave; returns the delay id.
   */
  matrixScheduleDelayedState(
    p: MatrixParams,
    roomId: string,
    type: string,
    content: object,
    stateKey: string,
    delayMs: number,
  ): Promise<string>;
}

declare global {
  interface Window {
    e2e: E2eApi;
  }
}
