/**
 * Model-based tests: every path that `xstate/graph` generates from the abstract model is executed against the
 * real `Connection` (real statechart and actors, a real matrix-js-sdk client and auth-service requests to a
 * loopback HTTP server, a FakeRoom). The inspection stream of every run records which states and transitions of
 * `connectionMachine` were taken; the last test demands all of them.
 */
import { ConnectionError, DisconnectReason } from "livekit-client";
import type { ServerResponse } from "node:http";
import { SimulatedClock, waitFor, type StateValue } from "xstate";
import { createTestModel } from "xstate/graph";
import {
  ConnectionLostError,
  ConnectionState,
  NoMatrix2AuthorizationService,
  FailToGetOpenIdToken,
  InsufficientCapacityError,
  LivekitConnectionError,
  PeerConnectionTimeoutError,
  SFURoomCreationRestrictedError,
  UnknownCallError,
  connectionMachine,
} from "../../src";
import { flush } from "../support/fakeRoom";
import {
  GET_TOKEN_PATH,
  OPENID_PATH,
  SFU_GET_PATH,
  SFU_URL,
  answer,
  makeConnection,
  type Harness,
  DELEGATE_PATH,
} from "../support/harness";
import { LoopbackServer, sendJson, type HeldRequests } from "../support/loopbackServer";
import { waitUntil } from "../support/waitUntil";
import { makeLivekitJwt } from "../support/tokens";
import { ChartCoverage, ONE_PATH_PER_TRANSITION } from "./chartCoverage";
import { connectionModel, type ModelEvent, type ModelState } from "./connectionModel";

const PHASE_TIMEOUT_MS = 300;
const STEP_TIMEOUT_MS = 5000;
const DELAY_ID_PREFIX = "syd_delay_";
let delayIds = 0;
const delayedLeave = () => ({ delayId: `${DELAY_ID_PREFIX}${++delayIds}`, delayTimeoutMs: 10_000 });

/** Two attempts, so that both "attempts left" and "attempts spent" are reached; the clock is simulated. */
const RECONNECT = { maxAttempts: 2, initialDelayMs: 1000, maxDelayMs: 2000 };

// ---------------------------------------------------------------------------------------------------------------
// The system under test, one per path.

const server = LoopbackServer.forThisFile();
/** Requests the executors answer when the model says so, per path. */
let held: { openId: HeldRequests; getToken: HeldRequests; sfuGet: HeldRequests; delegate: HeldRequests };
let h: Harness | undefined;
let disposeConnection: AbortController | undefined;
/** The clock of the chart's delays: a reconnect wait ends when the model says so. */
let clock: SimulatedClock;
/** The created connection's forceJwtEndpoint. */
let forcing: "matrix_2_0" | undefined;

/** The auth service's answer in the model: a JWT within the reuse margin (60 s), so that each run fetches again. */
const shortLivedSFUConfig = (_: unknown, res: ServerResponse): void =>
  sendJson(res, 200, { url: SFU_URL, jwt: makeLivekitJwt({ expiresInS: 30 }) });

function create(existing?: "valid" | "expired", forceJwtEndpoint?: "matrix_2_0", withDelayedLeave = false): void {
  disposeConnection = new AbortController();
  clock = new SimulatedClock();
  forcing = forceJwtEndpoint;
  h = makeConnection(server, {
    signal: disposeConnection.signal,
    retry: { maxAttempts: 1, initialDelayMs: 1 },
    timeouts: { openIdTokenMs: PHASE_TIMEOUT_MS, sfuConfigMs: PHASE_TIMEOUT_MS, disconnectMs: STEP_TIMEOUT_MS },
    reconnect: RECONNECT,
    clock,
    forceJwtEndpoint,
    delayedLeave: withDelayedLeave ? delayedLeave() : undefined,
    inspect: coverage.record,
    existingSFUConfig: existing && {
      url: "wss://sfu.example.org",
      jwt: makeLivekitJwt({ expiresInS: existing === "valid" ? 3600 : -10 }),
      livekitAlias: "AliasOfTheRoom",
      livekitIdentity: "me",
    },
  });
  h.room.holdConnecting = true;
  h.room.holdDisconnect = true;
}

function sut(): Harness {
  if (!h) throw new Error("no connection was created");
  return h;
}

// ---------------------------------------------------------------------------------------------------------------
// Coverage of the real machine, recorded from its inspection events (test/model/chartCoverage.ts).

const coverage = new ChartCoverage([connectionMachine]);

// ---------------------------------------------------------------------------------------------------------------
// What each model state means on the real Connection.

type ErrorClass = new (...args: never[]) => Error;
interface Expectation {
  value: StateValue;
  /** What `state$` shows; "unchanged": what it showed before the STOP (Stopping emits nothing). */
  state$: ConnectionState | ErrorClass | "unchanged";
  /** Holds once the real system has finished reacting (a request parked, a connect begun, ...). */
  ready?: (h: Harness) => boolean;
  /** What else holds in this state. */
  check?: (h: Harness) => void;
}

const waitingFor = (which: keyof typeof held) => () => held[which].count > 0;
const connectCalled = (h: Harness) => h.room.connectCalls.length > 0 && !h.room.connectPending;

const lk = (
  room: string,
  state$: ConnectionState,
  ready?: Expectation["ready"],
  delayedLeave = "NotRequested",
): Expectation => ({
  value: { Livekit: { room, delayedLeave } },
  state$,
  ready,
});
/** Connected, with the delegation in `delayedLeave`. */
const connectedDelegation = (delayedLeave: string, ready?: Expectation["ready"]): Expectation => ({
  ...lk("connected", ConnectionState.LivekitConnected, ready, delayedLeave),
  check: ({ connection }) => {
    const { delayedLeave: sealed, delegationError } = connection.actor.getSnapshot().context;
    expect(sealed === undefined).toBe(delayedLeave === "NotRequested");
    expect(delegationError !== undefined).toBe(delayedLeave === "Failed");
    // the delay id is a capability: never in the snapshot as text
    expect(JSON.stringify(connection.actor.getSnapshot().context)).not.toContain(DELAY_ID_PREFIX);
  },
});
const failed = (sub: string, state$: ErrorClass): Expectation => ({ value: { Failed: sub }, state$ });
/** A run of reconnect attempt `n`: the same chart state as a normal run's, and the attempt counted. */
const attempt = (n: number, e: Expectation): Expectation => ({
  ...e,
  check: ({ connection }) => expect(connection.actor.getSnapshot().context.reconnectAttempts).toBe(n),
});
const waitingToReconnect = (attemptsMade: number): Expectation => ({
  value: "WaitingToReconnect",
  state$: ConnectionState.LivekitDisconnected,
  check: ({ connection, room }) => {
    expect(connection.actor.getSnapshot().context.reconnectAttempts).toBe(attemptsMade);
    expect(room.state).toBe("disconnected");
  },
});
const requestingOpenIdToken: Expectation = {
  value: { FetchingConfig: "RequestingOpenIdToken" },
  state$: ConnectionState.FetchingConfig,
  ready: waitingFor("openId"),
};
const requestingSFUConfig: Expectation = {
  value: { FetchingConfig: "RequestingSFUConfig" },
  state$: ConnectionState.FetchingConfig,
  ready: waitingFor("getToken"),
};
const stopping = (then: string): Expectation => ({
  value: { Stopping: then },
  state$: "unchanged",
  ready: (h) => h.room.disconnectHeld,
});
const disposed: Expectation = {
  value: "Disposed",
  state$: "unchanged",
  check: ({ connection }) => {
    expect(connection.actor.getSnapshot().status).toBe("done");
    let completed = false;
    connection.state$.subscribe({ complete: () => (completed = true) });
    expect(completed).toBe(true);
  },
};
const participants =
  (...identities: string[]) =>
  ({ connection }: Harness): void =>
    expect(connection.remoteParticipants$.value.map((p) => p.identity)).toEqual(identities);
/** What state$ showed when STOP or DISPOSE was sent (Stopping emits nothing; disposal completes state$). */
let shownBeforeStop: unknown;

/** What each model state means on the real Connection; a state missing here (or one too many) does not compile. */
const expectations: Record<Exclude<ModelState, "Fresh">, Expectation> = {
  Initialized: { value: "Initialized", state$: ConnectionState.Initialized },
  RequestingOpenIdToken: requestingOpenIdToken,
  RequestingSFUConfig: requestingSFUConfig,
  LkDisconnected: lk("disconnected", ConnectionState.LivekitDisconnected, connectCalled),
  LkConnecting: lk("connecting", ConnectionState.LivekitConnecting, (h) => h.room.connectPending),
  LkConnected: { ...lk("connected", ConnectionState.LivekitConnected), check: participants() },
  LkConnectedWithGuest: { ...lk("connected", ConnectionState.LivekitConnected), check: participants("guest") },
  LkSignalReconnecting: lk("signalReconnecting", ConnectionState.LivekitSignalReconnecting),
  LkReconnecting: lk("reconnecting", ConnectionState.LivekitReconnecting),
  LkLost: lk("lost", ConnectionState.LivekitDisconnected),
  WaitingToReconnect: waitingToReconnect(0),
  R_RequestingOpenIdToken: attempt(1, requestingOpenIdToken),
  R_RequestingSFUConfig: attempt(1, requestingSFUConfig),
  R_LkDisconnected: attempt(1, lk("disconnected", ConnectionState.LivekitDisconnected, connectCalled)),
  R_LkConnecting: attempt(
    1,
    lk("connecting", ConnectionState.LivekitConnecting, (h) => h.room.connectPending),
  ),
  R_WaitingToReconnect: waitingToReconnect(1),
  R2_RequestingOpenIdToken: attempt(2, requestingOpenIdToken),
  Stopping: stopping("ThenStop"),
  StoppingThenStart: stopping("ThenStart"),
  StoppingThenDispose: stopping("ThenDispose"),
  Stopped: { value: "Stopped", state$: ConnectionState.Stopped },
  Disposed: disposed,
  Failed_OpenIdError: failed("OpenIdError", FailToGetOpenIdToken),
  Failed_InsufficientCapacity: failed("InsufficientCapacity", InsufficientCapacityError),
  Failed_RoomCreationRestricted: failed("RoomCreationRestricted", SFURoomCreationRestrictedError),
  Failed_PeerConnectionTimeout: failed("PeerConnectionTimeout", PeerConnectionTimeoutError),
  Failed_LivekitError: failed("LivekitError", LivekitConnectionError),
  Failed_Unknown: failed("Unknown", UnknownCallError),
  Failed_ConnectionLost: {
    ...failed("ConnectionLost", ConnectionLostError),
    // the last attempt's failure is the cause
    check: ({ connection }) => expect((connection.state$.value as Error).cause).toBeInstanceOf(FailToGetOpenIdToken),
  },
  X_Initialized: { value: "Initialized", state$: ConnectionState.Initialized },
  X_LkDisconnected: lk("disconnected", ConnectionState.LivekitDisconnected, connectCalled),
  X_LkConnecting: lk("connecting", ConnectionState.LivekitConnecting, (h) => h.room.connectPending),
  X_LkConnected: lk("connected", ConnectionState.LivekitConnected),
  X_LkLost: lk("lost", ConnectionState.LivekitDisconnected),
  X_WaitingToReconnect: waitingToReconnect(0),
  X_R_LkDisconnected: attempt(1, lk("disconnected", ConnectionState.LivekitDisconnected, connectCalled)),
  X_R_LkConnecting: attempt(
    1,
    lk("connecting", ConnectionState.LivekitConnecting, (h) => h.room.connectPending),
  ),
  X_Stopping: stopping("ThenStop"),
  X_StoppingThenStart: stopping("ThenStart"),
  X_Stopped: { value: "Stopped", state$: ConnectionState.Stopped },
  X_Failed_LivekitError: failed("LivekitError", LivekitConnectionError),
  D_Initialized: {
    value: "Initialized",
    state$: ConnectionState.Initialized,
    check: ({ connection }) => expect(connection.actor.getSnapshot().context.delayedLeave).toBeDefined(),
  },
  D_RequestingOpenIdToken: requestingOpenIdToken,
  D_RequestingSFUConfig: {
    ...requestingSFUConfig,
    // the token request carries the delayed leave
    check: () => expect(server.to(GET_TOKEN_PATH).at(-1)!.json).toMatchObject({ delay_timeout: 10_000 }),
  },
  D_LkDisconnected_Waiting: lk(
    "disconnected",
    ConnectionState.LivekitDisconnected,
    connectCalled,
    "WaitingForConnection",
  ),
  D_LkConnecting_Waiting: lk(
    "connecting",
    ConnectionState.LivekitConnecting,
    (h) => h.room.connectPending,
    "WaitingForConnection",
  ),
  D_LkConnected_Delegating: connectedDelegation("Delegating", waitingFor("openId")),
  D_LkConnected_Delegated: connectedDelegation("Delegated"),
  D_LkConnected_DelegationFailed: connectedDelegation("Failed"),
  D_LkConnected_NotRequested: connectedDelegation("NotRequested"),
  M_Initialized: { value: "Initialized", state$: ConnectionState.Initialized },
  M_RequestingOpenIdToken: requestingOpenIdToken,
  M_RequestingSFUConfig: requestingSFUConfig,
  Failed_NoMatrix2AuthorizationService: {
    ...failed("NoMatrix2AuthorizationService", NoMatrix2AuthorizationService),
    // /get_token's failure is the cause, and the legacy endpoint was never asked
    check: ({ connection, server }) => {
      expect((connection.state$.value as Error).cause).toMatchObject({ name: "SFUConfigError", httpStatus: 401 });
      expect(server.to(SFU_GET_PATH)).toEqual([]);
    },
  },
};

function expectState(model: ModelState): void {
  if (model === "Fresh") {
    expect(h).toBeUndefined();
    return;
  }
  const e = expectations[model];
  const { connection } = sut();
  expect(connection.actor.getSnapshot().value).toEqual(e.value);
  const shown = connection.state$.value;
  if (e.state$ === "unchanged") expect(shown).toBe(shownBeforeStop);
  else if (typeof e.state$ === "string") expect(shown).toBe(e.state$);
  else expect(shown).toBeInstanceOf(e.state$);
  e.check?.(sut());
}

/** Waits until the real connection is in what the model calls `model`, and has finished reacting. */
async function settle(model: ModelState): Promise<void> {
  if (model === "Fresh") return;
  const e = expectations[model];
  const { connection } = sut();
  await waitFor(connection.actor, (s) => s.matches(e.value as never), { timeout: STEP_TIMEOUT_MS });
  if (e.ready) await waitUntil(() => e.ready!(sut()), `${model} to be ready`, STEP_TIMEOUT_MS);
  await flush();
}

// ---------------------------------------------------------------------------------------------------------------
// The executors: each makes one outside event happen for real.

const failConnect = (error: Error) => () => sut().room.failConnect(error);

/** Answers whatever a stopped fetch left behind: such late results must change nothing. */
async function answerLeftovers(): Promise<void> {
  await flush();
  held.openId.answerAll(answer.openId);
  held.getToken.answerAll(shortLivedSFUConfig);
}

/** One per model event; an event missing here (or one too many) does not compile. */
const executors: Record<ModelEvent, () => void | Promise<void>> = {
  CREATE: () => create(),
  CREATE_WITH_EXPIRED_SFU_CONFIG: () => create("expired"),
  CREATE_WITH_SFU_CONFIG: () => create("valid"),
  CREATE_FORCING_MATRIX_2_0: () => create(undefined, "matrix_2_0"),
  CREATE_WITH_DELAYED_LEAVE: () => create(undefined, undefined, true),
  START: () =>
    void sut()
      .connection.start()
      .catch(() => {}),
  STOP: async () => {
    shownBeforeStop = sut().connection.state$.value;
    void sut().connection.stop();
    await answerLeftovers();
  },
  DISPOSE: async () => {
    shownBeforeStop = sut().connection.state$.value;
    disposeConnection!.abort();
    await answerLeftovers();
  },
  OPENID_OK: () => held.openId.answerNext(answer.openId),
  OPENID_FAIL: () => held.openId.answerNext(answer.status(403, "M_FORBIDDEN")),
  OPENID_TIMEOUT: () => {}, // the homeserver never answers; the phase's time limit ends it
  SFU_CONFIG_OK: () => held.getToken.answerNext(shortLivedSFUConfig),
  // an older auth service: it refuses the delayed leave's fields, then answers the request without them
  SFU_CONFIG_OK_DELAY_REFUSED: async () => {
    await held.getToken.answerNext(answer.status(400, "M_BAD_JSON"));
    await held.getToken.answerNext(shortLivedSFUConfig);
  },
  DELAYED_LEAVE_CHANGED: async () => {
    // A delegation under way is cancelled; matrix-js-sdk cannot abort its OpenID request, so answer it first:
    // the OpenID request held afterwards is the new delegation's.
    held.openId.answerAll(answer.openId);
    await flush();
    sut().connection.updateDelayedLeave(delayedLeave());
  },
  DELAYED_LEAVE_CLEARED: () => sut().connection.updateDelayedLeave(undefined),
  // the delegation asks the homeserver for an OpenID token, then the auth service
  DELEGATION_OK: async () => {
    await held.openId.answerNext(answer.openId);
    await held.delegate.answerNext((_, res) => sendJson(res, 200, {}));
  },
  DELEGATION_FAIL: async () => {
    await held.openId.answerNext(answer.openId);
    await held.delegate.answerNext(answer.status(404, "M_NOT_FOUND"));
  },
  SFU_CONFIG_FAIL: async () => {
    await held.getToken.answerNext(answer.status(401, "M_UNAUTHORIZED"));
    // (with /get_token required, /sfu/get is never asked)
    if (forcing !== "matrix_2_0") await held.sfuGet.answerNext(answer.status(401, "M_UNAUTHORIZED"));
  },
  SFU_CONFIG_TIMEOUT: () => {},
  ROOM_CONNECTING: () => sut().room.beginConnecting(),
  ROOM_ALREADY_CONNECTED: () => sut().room.succeedConnect(), // before it reported 'connecting'

  CONNECT_OK: () => sut().room.succeedConnect(),
  CONNECT_FAIL_CAPACITY: failConnect(ConnectionError.serverUnreachable("node has exceeded its configured limit", 503)),
  CONNECT_FAIL_RESTRICTED: failConnect(ConnectionError.notAllowed("requested room does not exist", 404)),
  CONNECT_FAIL_TIMEOUT: failConnect(ConnectionError.internal("could not establish pc connection")),
  CONNECT_FAIL_LIVEKIT: failConnect(ConnectionError.leaveRequest("leave", DisconnectReason.DUPLICATE_IDENTITY)),
  CONNECT_FAIL_UNKNOWN: failConnect(new Error("LiveKit doesn't seem to be supported on this browser")),
  LK_SIGNAL_RECONNECTING: () => sut().room.signalReconnecting(),
  LK_RECONNECTING: () => sut().room.reconnecting(),
  LK_RECONNECTED: () => sut().room.reconnected(),
  LK_DISCONNECTED: () => sut().room.lose(),
  // another session with the same identity took this one's place: not reconnected
  LK_REPLACED: () => sut().room.lose(DisconnectReason.DUPLICATE_IDENTITY),
  RECONNECT_DELAY_PASSES: () => clock.increment(RECONNECT.maxDelayMs),
  PARTICIPANT_JOIN: () => void sut().room.addParticipant("guest"),
  PARTICIPANT_LEAVE: () => sut().room.removeParticipant("guest"),
  DISCONNECT_DONE: () => sut().room.releaseDisconnect(),
  DISCONNECT_FAIL: () => {
    sut().room.disconnectError = new Error("engine close failed");
    sut().room.releaseDisconnect();
  },
};

// ---------------------------------------------------------------------------------------------------------------

const model = createTestModel(connectionModel, ONE_PATH_PER_TRANSITION);
const paths = model.getShortestPaths();

beforeEach(() => {
  held = {
    openId: server.hold(OPENID_PATH),
    getToken: server.hold(GET_TOKEN_PATH),
    sfuGet: server.hold(SFU_GET_PATH),
    delegate: server.hold(DELEGATE_PATH),
  };
  h = undefined;
  coverage.recording = true;
});

afterEach(async () => {
  coverage.recording = false;
  if (!h) return;
  h.room.holdDisconnect = false;
  h.room.releaseDisconnect();
  disposeConnection?.abort();
  await flush();
  for (const requests of Object.values(held)) requests.dropAll();
});

describe("generated paths through the connection model", () => {
  for (const path of paths) {
    test(path.description, async () => {
      await path.test({
        events: Object.fromEntries(
          Object.entries(executors).map(([type, run]) => [
            type,
            async (step: { state: { value: StateValue } }) => {
              await run();
              await settle(step.state.value as ModelState);
            },
          ]),
        ),
        states: { "*": (snapshot) => expectState(snapshot.value as ModelState) },
      });
    });
  }
});

describe("coverage of connectionMachine", () => {
  test("the generated paths took every transition of the machine", () => {
    const { states, transitions } = coverage.figures(connectionMachine);
    expect(transitions.missing).toEqual([]);
    console.info(
      `model-based coverage: ${transitions.covered}/${transitions.total} transitions, ` +
        `${states.covered}/${states.total} states, ${paths.length} paths`,
    );
  });

  test("the generated paths visited every state of the machine", () => {
    expect(coverage.figures(connectionMachine).states.missing).toEqual([]);
  });
});
