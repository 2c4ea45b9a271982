/**
 * Model-based tests of the ConnectionManager: every path that `xstate/graph` generates from the abstract model
 * (`connectionManagerModel.ts`; a path per model transition) is executed against the real `ConnectionManager`:
 * its real charts and actors, a real matrix-js-sdk client, auth services on a loopback HTTP server (one per path
 * prefix, their requests held until the model answers them), a FakeRoom per connection, and xstate's
 * SimulatedClock for the retry and reconnect waits. After each step the manager's snapshot, its data and the
 * rooms are compared with what the model says; the rooms are watched throughout. The inspection stream of every
 * run records which states and transitions of `connectionManager` and `connectionSlot` were taken; the last
 * tests demand all of them.
 */
import { ConnectionError, DisconnectReason, RoomEvent } from "livekit-client";
import type { ServerResponse } from "node:http";
import { BehaviorSubject } from "rxjs";
import { SimulatedClock, type StateValue } from "xstate";
import { createTestModel } from "xstate/graph";
import {
  ConnectionManager,
  connectionManagerMachine,
  connectionSlotMachine,
  type ConnectionManagerData,
  type LivekitTransportConfig,
  type LocalTransportWithSFUConfig,
} from "../../src";
import { crashingOnceDisconnected } from "../support/crashingMachine";
import { FakeRoom, flush } from "../support/fakeRoom";
import {
  answer,
  DEVICE_ID,
  matrixClient,
  MEMBER_ID,
  OPENID_PATH,
  recordingLogger,
  ROOM_ID,
  SFU_URL,
  USER_ID,
} from "../support/harness";
import { LoopbackServer, sendJson, type HeldRequests } from "../support/loopbackServer";
import { makeLivekitJwt } from "../support/tokens";
import { poll, waitUntil } from "../support/waitUntil";
import { ChartCoverage, ONE_PATH_PER_TRANSITION } from "./chartCoverage";
import {
  connectionManagerModel,
  managerModelEvents,
  type ManagerModelEvent,
  type ManagerModelState,
} from "./connectionManagerModel";

const STEP_TIMEOUT_MS = 3000;

/** Switches on the fault of `crashingOnceDisconnected` (test/support/crashingMachine.ts). */
let crashWhenDisconnected = false;
const crashableMachine = crashingOnceDisconnected(() => crashWhenDisconnected);
/** Two attempts, so that both "attempts left" and "attempts spent" are reached; the clock is simulated. */
const RECONNECT = { maxAttempts: 2, initialDelayMs: 1000, maxDelayMs: 2000 };

// ---------------------------------------------------------------------------------------------------------------
// The world: three auth services on one loopback server, by path.

type Name = "L" | "R" | "B";
const server = LoopbackServer.forThisFile();
const serviceUrl = (name: Name): string => `${server.url}/svc-${name.toLowerCase()}/livekit/jwt`;
const transport = (name: Name): LivekitTransportConfig => ({ type: "livekit", livekit_service_url: serviceUrl(name) });
const nameOf = (url: string): Name => (["L", "R", "B"] as const).find((n) => serviceUrl(n) === url)!;

/** An SFU config the app fetched already, valid for an hour: its connection makes no request. */
const localTransport = (name: Name, label = "first"): LocalTransportWithSFUConfig => ({
  transport: transport(name),
  sfuConfig: {
    url: SFU_URL,
    jwt: makeLivekitJwt({ sub: `me-${label}`, expiresInS: 3600 }),
    livekitAlias: "AliasOfTheRoom",
    livekitIdentity: `me-${label}`,
  },
});

/** R's auth service: a JWT within the reuse margin (60 s), so that every run of R fetches again. */
const shortLivedSFUConfig = (_: unknown, res: ServerResponse): void =>
  sendJson(res, 200, { url: SFU_URL, jwt: makeLivekitJwt({ expiresInS: 30 }) });

class RoomFactoryError extends Error {
  override readonly name = "RoomFactoryError";
}
class ClockFailure extends Error {
  override readonly name = "ClockFailure";
}

/** The SimulatedClock, which can be told to fail the next timer it is asked to set (a slot or connection crashes). */
class FailingClock extends SimulatedClock {
  failNext = false;
  override setTimeout(fn: (...args: unknown[]) => void, timeout: number): number {
    if (this.failNext) {
      this.failNext = false;
      throw new ClockFailure("the clock could not set a timer");
    }
    return super.setTimeout(fn, timeout);
  }
}

interface World {
  manager: ConnectionManager<FakeRoom>;
  local$: BehaviorSubject<LocalTransportWithSFUConfig | null>;
  remote$: BehaviorSubject<LivekitTransportConfig[]>;
  abort: AbortController;
  clock: FailingClock;
  /** Every room the factory made, per transport, oldest first. */
  rooms: Record<Name, FakeRoom[]>;
  data: ConnectionManagerData<FakeRoom>[];
  dataCompleted: boolean;
  /** Whether L's SFU accepts a connect at once (after the model's first L_CONNECT_OK). */
  lSfuUp: boolean;
  /** What the manager logged. */
  logger: ReturnType<typeof recordingLogger>;
  /** Broken promises of the rooms: two rooms of one transport connected at once, a retired one left connected. */
  violations: string[];
}

let w: World | undefined;
/** R's token requests (POST /get_token), held until the model answers them. */
let heldR: HeldRequests;
const coverage = new ChartCoverage([connectionManagerMachine, connectionSlotMachine]);

function world(): World {
  if (!w) throw new Error("no manager was created");
  return w;
}

function create(local: Name): void {
  const rooms: World["rooms"] = { L: [], R: [], B: [] };
  const violations: string[] = [];
  const self: World = {
    local$: new BehaviorSubject<LocalTransportWithSFUConfig | null>(localTransport(local)),
    remote$: new BehaviorSubject<LivekitTransportConfig[]>([]),
    abort: new AbortController(),
    clock: new FailingClock(),
    rooms,
    data: [],
    dataCompleted: false,
    lSfuUp: false,
    violations,
    logger: recordingLogger(),
    manager: undefined as never,
  };
  const livekitRoomFactory = (t: LivekitTransportConfig): FakeRoom => {
    const name = nameOf(t.livekit_service_url);
    if (name === "B") throw new RoomFactoryError("no room can be made for B");
    const room = new FakeRoom();
    room.holdDisconnect = true;
    if (name === "L" && self.lSfuUp) room.autoConnect = "succeed";
    room.on(RoomEvent.ConnectionStateChanged, (state: string) => {
      const others = rooms[name].filter((r) => r !== room && r.state !== "disconnected");
      if (state !== "disconnected" && others.length > 0) {
        violations.push(`a room of ${name} went ${state} while another was ${others[0]!.state}`);
      }
    });
    rooms[name].push(room);
    return room;
  };
  self.manager = new ConnectionManager<FakeRoom>(
    {
      localTransport$: self.local$,
      remoteTransports$: self.remote$,
      client: matrixClient(server),
      roomId: ROOM_ID,
      ownMembershipIdentity: { userId: USER_ID, deviceId: DEVICE_ID, memberId: MEMBER_ID },
      livekitRoomFactory,
      retry: { maxAttempts: 1 },
      reconnect: RECONNECT,
      timeouts: { openIdTokenMs: 10_000, sfuConfigMs: 10_000, disconnectMs: 10_000 },
      clock: self.clock,
      machine: crashableMachine,
      inspect: coverage.record,
      signal: self.abort.signal,
    },
    self.logger,
  );
  self.manager.connectionManagerData$.subscribe({
    next: (d) => self.data.push(d),
    complete: () => (self.dataCompleted = true),
  });
  // One slot per key at any time; a slot's entry leaves only once every room of its key is disconnected.
  let keys: string[] = self.manager.actor.getSnapshot().context.slots.map((s) => s.key);
  self.manager.actor.subscribe((snapshot) => {
    const now = snapshot.context.slots.map((s) => s.key);
    if (new Set(now).size !== now.length) violations.push(`two slots for one key: ${now.map(nameOf).join(", ")}`);
    for (const key of keys.filter((k) => !now.includes(k))) {
      const name = nameOf(key);
      const connected = rooms[name].filter((r) => r.state !== "disconnected");
      if (connected.length > 0) violations.push(`the entry of ${name} left while its room was ${connected[0]!.state}`);
    }
    keys = now;
  });
  w = self;
}

// ---------------------------------------------------------------------------------------------------------------
// What a user can see, and what each model state says it is.

interface SlotView {
  key: Name;
  local: boolean;
  wanted: boolean;
  status: string;
  /** The error's name (a CallError subclass, or the crash's own). */
  error: string | undefined;
  retries: number;
}

interface View {
  manager: StateValue;
  slots: SlotView[];
  /** The data's connections in order, each as `<transport>:<state$>`; "completed" once disposed of. */
  data: string[] | "completed";
  /** R's token requests held unanswered. */
  heldR: number;
  violations: string[];
}

const errorName = (e: unknown): string | undefined => (e === undefined ? undefined : (e as Error).name);

function view(): View {
  const { manager, data, dataCompleted, violations } = world();
  const snapshot = manager.actor.getSnapshot();
  const last = data.at(-1)!;
  return {
    manager: snapshot.value,
    slots: snapshot.context.slots.map((s) => ({
      key: nameOf(s.key),
      local: s.isLocal,
      wanted: s.wanted,
      status: s.status,
      error: errorName(s.error),
      retries: s.retries,
    })),
    data: dataCompleted
      ? "completed"
      : last.getConnections().map((c) => {
          const shown = c.state$.value;
          return `${nameOf(c.transport.livekit_service_url)}:${typeof shown === "string" ? shown : shown.name}`;
        }),
    heldR: heldR.count,
    violations: [...violations],
  };
}

const slot = (key: Name, status: string, more: Partial<SlotView> = {}): SlotView => ({
  key,
  local: key === "L",
  wanted: true,
  status,
  error: undefined,
  retries: 0,
  ...more,
});
const running = (manager: StateValue, slots: SlotView[], data: View["data"], heldRequests = 0): View => ({
  manager,
  slots,
  data,
  heldR: heldRequests,
  violations: [],
});
const L = slot("L", "Live.Running");
const retiring = (key: Name, more: Partial<SlotView> = {}): SlotView =>
  slot(key, "Live.Retiring", { local: false, wanted: false, ...more });
const disposing = (key: Name, more: Partial<SlotView> = {}): SlotView =>
  slot(key, "Live.Disposing", { wanted: false, ...more });
const openIdError = { error: "FailToGetOpenIdToken" };

/** What each model state means on the real manager; a state missing here (or one too many) does not compile. */
const expected: Record<Exclude<ManagerModelState, "Fresh">, View> = {
  L_Connecting: running("Running", [L], ["L:connecting"]),
  L_Connected: running("Running", [L], ["L:connected"]),
  L_Retiring: running("Running", [retiring("L")], []),
  // (state$ keeps its last value while the connection is stopping)
  L_Reviving: running("Running", [L], ["L:connected"]),
  Empty: running("Running", [], []),
  R_Fetching0: running("Running", [L, slot("R", "Live.Running")], ["L:connected", "R:FetchingConfig"], 1),
  R_Connecting: running("Running", [L, slot("R", "Live.Running")], ["L:connected", "R:connecting"]),
  R_Connected: running("Running", [L, slot("R", "Live.Running")], ["L:connected", "R:connected"]),
  R_Retiring: running("Running", [L, retiring("R")], ["L:connected"]),
  R_RetiringRestarted: running("Running", [L, retiring("R")], ["L:connected"]),
  R_Reviving: running("Running", [L, slot("R", "Live.Running")], ["L:connected", "R:connected"]),
  R_Waiting0: running(
    "Running",
    [L, slot("R", "Live.WaitingToRetry", openIdError)],
    ["L:connected", "R:FailToGetOpenIdToken"],
  ),
  R_Waiting0_ConnectFailed: running(
    "Running",
    [L, slot("R", "Live.WaitingToRetry", { error: "LivekitConnectionError" })],
    ["L:connected", "R:LivekitConnectionError"],
  ),
  R_Waiting0_AppFetching: running(
    "Running",
    [L, slot("R", "Live.WaitingToRetry")],
    ["L:connected", "R:FetchingConfig"],
    1,
  ),
  R_Waiting0_AppConnecting: running("Running", [L, slot("R", "Live.WaitingToRetry")], ["L:connected", "R:connecting"]),
  R_Fetching1: running(
    "Running",
    [L, slot("R", "Live.Running", { retries: 1 })],
    ["L:connected", "R:FetchingConfig"],
    1,
  ),
  R_Waiting1: running(
    "Running",
    [L, slot("R", "Live.WaitingToRetry", { ...openIdError, retries: 1 })],
    ["L:connected", "R:FailToGetOpenIdToken"],
  ),
  R_Fetching2: running(
    "Running",
    [L, slot("R", "Live.Running", { retries: 2 })],
    ["L:connected", "R:FetchingConfig"],
    1,
  ),
  R_StoppedByApp: running("Running", [L, slot("R", "Live.GaveUp", openIdError)], ["L:connected", "R:Stopped"]),
  R_GaveUp: running(
    "Running",
    [L, slot("R", "Live.GaveUp", { ...openIdError, retries: 2 })],
    ["L:connected", "R:FailToGetOpenIdToken"],
  ),
  R_GaveUp_AppFetching: running(
    "Running",
    [L, slot("R", "Live.GaveUp", { retries: 2 })],
    ["L:connected", "R:FetchingConfig"],
    1,
  ),
  R_GaveUp_AppConnecting: running(
    "Running",
    [L, slot("R", "Live.GaveUp", { retries: 2 })],
    ["L:connected", "R:connecting"],
  ),
  R_RetiringWaiting: running("Running", [L, retiring("R", openIdError)], ["L:connected"]),
  R_RetiringGaveUp: running("Running", [L, retiring("R", { ...openIdError, retries: 2 })], ["L:connected"]),
  R_LostForGood: running("Running", [L, slot("R", "Live.Running")], ["L:connected", "R:disconnected"]),
  R_GaveUpLost: running(
    "Running",
    // (the slot's error is the last attempt's; state$ wraps it in a ConnectionLostError)
    [L, slot("R", "Live.GaveUp", openIdError)],
    ["L:connected", "R:ConnectionLostError"],
  ),
  R_Broken: running("Running", [L, slot("R", "Broken", { error: "ClockFailure" })], ["L:connected"]),
  RLocal_LRetiring: running("Running", [slot("R", "Live.Running", { local: true }), retiring("L")], ["R:connected"]),
  RLocal: running("Running", [slot("R", "Live.Running", { local: true })], ["R:connected"]),
  B_Broken: running("Running", [slot("B", "Broken", { local: true, error: "RoomFactoryError" })], []),
  Stopping_L: running("Stopping", [slot("L", "Live.Retiring", { wanted: false })], []),
  Stopped: running("Stopped", [], []),
  Stopped_R: running("Stopped", [], []),
  Disposing_L: running("Disposing", [disposing("L")], "completed"),
  Disposing_LR: running("Disposing", [disposing("L"), disposing("R")], "completed"),
  Disposing_LRWaiting: running("Disposing", [disposing("L"), disposing("R", openIdError)], "completed"),
  Disposing_LRGaveUp: running(
    "Disposing",
    [disposing("L"), disposing("R", { ...openIdError, retries: 2 })],
    "completed",
  ),
  Disposed: running("Disposed", [], "completed"),
};

/** What else holds in a state. */
const extraChecks: Partial<Record<ManagerModelState, () => void>> = {
  // Every room is disconnected once disposed of, and the actor is done.
  Disposed: () => {
    const { manager, rooms } = world();
    expect(manager.actor.getSnapshot().status).toBe("done");
    for (const room of Object.values(rooms).flat()) expect(room.state).toBe("disconnected");
  },
  // Given up because the connection was lost for good, not because the slot's retries are spent.
  R_GaveUpLost: () => {
    const r = world().manager.actor.getSnapshot().context.slots[1]!;
    expect(r.connectionState).toBe("Failed.ConnectionLost");
  },
  // The connection's failure is the one the clock gave.
  R_Broken: () => {
    const r = world().manager.actor.getSnapshot().context.slots[1]!;
    expect(r.error).toBeInstanceOf(ClockFailure);
  },
  // The room factory's failure, as it was thrown.
  B_Broken: () => {
    const b = world().manager.actor.getSnapshot().context.slots[0]!;
    expect(b.error).toBeInstanceOf(RoomFactoryError);
    expect(server.to("/svc-b/livekit/jwt/get_token")).toEqual([]);
  },
};

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

/** Waits until the real manager shows what the model calls `model`, and has finished reacting. */
async function settle(model: ManagerModelState): Promise<void> {
  if (model === "Fresh") return;
  await poll(view, (v) => same(v, expected[model]), { timeoutMs: STEP_TIMEOUT_MS });
  // (a state passed through on the way elsewhere would not hold still)
  for (let i = 0; i < 3; i++) await flush();
}

function expectState(model: ManagerModelState): void {
  if (model === "Fresh") {
    expect(w).toBeUndefined();
    return;
  }
  expect(view()).toEqual(expected[model]);
  // L's connection never asks its auth service for a token: the app handed its SFU config over.
  expect(
    server.requests.filter((r) => r.path.startsWith("/svc-l/") && !r.path.endsWith("/delegate_delayed_leave")),
  ).toEqual([]);
  extraChecks[model]?.();
}

// ---------------------------------------------------------------------------------------------------------------
// The executors: each makes one outside event happen for real; some check what that event must not do.

const lastData = (): ConnectionManagerData<FakeRoom> => world().data.at(-1)!;
const roomOf = (name: Name): FakeRoom => world().rooms[name].at(-1)!;
const roomCounts = (): number[] => Object.values(world().rooms).map((r) => r.length);
const connectCalls = (): number =>
  Object.values(world().rooms)
    .flat()
    .reduce((n, r) => n + r.connectCalls.length, 0);

/** The R slot's connection state, from the manager's snapshot. */
const rConnectionState = (): string | undefined =>
  world()
    .manager.actor.getSnapshot()
    .context.slots.find((s) => nameOf(s.key) === "R")?.connectionState;

/** R's auth service refuses: /get_token (held) and then the legacy /sfu/get (answered by its route) say 401. */
const refuseR = (): Promise<void> => heldR.answerNext(answer.status(401, "M_UNAUTHORIZED"));

/** Runs `event` and returns what to check once the model's next state is reached. */
type Check = () => void | Promise<void>;
type Executor = (target: ManagerModelState) => void | Check | Promise<void | Check>;

let delayIds = 0;

/** One per model event; an event missing here (or one too many) does not compile. */
const executors: Record<ManagerModelEvent, Executor> = {
  CREATE: () => create("L"),
  CREATE_WITH_BROKEN_LOCAL: () => create("B"),
  L_CONNECT_OK: () => {
    world().lSfuUp = true;
    roomOf("L").autoConnect = "succeed";
    roomOf("L").succeedConnect();
  },
  SET_R: () => world().remote$.next([transport("R")]),
  SET_NONE: () => world().remote$.next([]),
  SET_R_DUP: () => {
    world().remote$.next([transport("R"), transport("R")]);
    return () => expect(world().rooms.R).toHaveLength(1);
  },
  SET_R_EQUALS_L: () => {
    const before = roomCounts();
    world().remote$.next([transport("L")]);
    return () => expect(roomCounts()).toEqual(before);
  },
  NEW_LOCAL_SFU_CONFIG: () => {
    const before = { rooms: roomCounts(), connects: connectCalls(), disconnects: roomOf("L").disconnectCalls };
    world().local$.next(localTransport("L", "second"));
    return () =>
      expect({ rooms: roomCounts(), connects: connectCalls(), disconnects: roomOf("L").disconnectCalls }).toEqual(
        before,
      );
  },
  // Listed and gone before its room could be used (the slot is still Preparing).
  R_FLICKERS: () => {
    world().remote$.next([transport("R")]);
    world().remote$.next([]);
    return () => {
      expect(world().rooms.R).toHaveLength(1);
      expect(roomOf("R").connectCalls).toEqual([]);
    };
  },
  SET_R_AND_DISPOSE_AT_ONCE: () => {
    world().remote$.next([transport("R")]);
    world().abort.abort();
    return () => {
      expect(world().rooms.R).toHaveLength(1);
      expect(roomOf("R").connectCalls).toEqual([]);
    };
  },
  DELAYED_LEAVE: (target) => {
    world().manager.updateDelayedLeave({ delayId: `syd_delay_${++delayIds}`, delayTimeoutMs: 10_000 });
    return async () => {
      const slots = world().manager.actor.getSnapshot();
      const local = slots.context.slots.find((s) => s.isLocal)!;
      const child = slots.children[local.id]!.getSnapshot() as { context: { delayedLeave: unknown } };
      expect(child.context.delayedLeave).toBeDefined();
      // Only the local connection delegates it, to its own auth service.
      const connected = target !== "B_Broken";
      if (connected) {
        await waitUntil(
          () => server.to("/svc-l/livekit/jwt/delegate_delayed_leave").length === 1,
          "the delegation",
          STEP_TIMEOUT_MS,
        );
      }
      // (a delegation by another connection would come as soon: give it the time)
      const others = () => server.requests.filter((r) => r.path.includes("/delegate") && !r.path.startsWith("/svc-l/"));
      await poll(others, (o) => o.length > 0, { timeoutMs: 100 });
      const delegations = server.requests.filter((r) => r.path.endsWith("/delegate_delayed_leave"));
      expect(delegations.map((r) => r.path)).toEqual(connected ? ["/svc-l/livekit/jwt/delegate_delayed_leave"] : []);
    };
  },
  LOCAL_NULL: () => world().local$.next(null),
  LOCAL_L: () => world().local$.next(localTransport("L")),
  // R's own SFU config is handed over: its running connection is kept, not made again.
  LOCAL_BECOMES_R: () => {
    const before = { rooms: roomCounts(), connects: roomOf("R").connectCalls.length };
    const connection = lastData().getConnectionForTransport(transport("R"));
    world().local$.next(localTransport("R"));
    return () => {
      expect({ rooms: roomCounts(), connects: roomOf("R").connectCalls.length }).toEqual(before);
      expect(lastData().getConnectionForTransport(transport("R"))).toBe(connection);
    };
  },
  STOP: () => void world().manager.stop(),
  START: () => world().manager.start(),
  DISPOSE: () => world().abort.abort(),
  DISCONNECT_DONE: () => {
    for (const room of Object.values(world().rooms).flat()) room.releaseDisconnect();
  },
  R_SFU_OK: () => heldR.answerNext(shortLivedSFUConfig),
  R_SFU_FAIL: refuseR,
  R_CONNECT_OK: () => roomOf("R").succeedConnect(),
  R_CONNECT_FAIL: () =>
    roomOf("R").failConnect(ConnectionError.leaveRequest("leave", DisconnectReason.DUPLICATE_IDENTITY)),
  R_LOST_FOR_GOOD: () => roomOf("R").lose(DisconnectReason.DUPLICATE_IDENTITY),
  // The connection's own reconnect attempts (each fetches, as R's JWT is short-lived) both fail.
  R_SFU_GOES_AWAY: async () => {
    roomOf("R").lose();
    for (const wait of [RECONNECT.initialDelayMs, RECONNECT.maxDelayMs]) {
      await waitUntil(() => rConnectionState() === "WaitingToReconnect", "R to wait to reconnect", STEP_TIMEOUT_MS);
      world().clock.increment(wait);
      await refuseR();
    }
  },
  // R's connection crashes once its room is disconnected: the slot is done all the same (not Broken, waiting for ever).
  R_CRASHES_WHEN_STOPPED: () => {
    crashWhenDisconnected = true;
    roomOf("R").releaseDisconnect();
    return () => void (crashWhenDisconnected = false);
  },
  CRASH_WHEN_DISPOSED: () => {
    crashWhenDisconnected = true;
    for (const room of Object.values(world().rooms).flat()) room.releaseDisconnect();
    return () => void (crashWhenDisconnected = false);
  },
  R_CONNECTION_CRASHES: () => {
    world().clock.failNext = true;
    roomOf("R").lose();
  },
  R_SLOT_CRASHES: async () => {
    const rooms = roomCounts();
    const orphan = lastData().getConnectionForTransport(transport("R"))!;
    world().clock.failNext = true;
    await refuseR();
    // Dropped, and not made again while the transports stay as they are; its connection disposed of, not left
    // running without a slot.
    return async () => {
      expect(roomCounts()).toEqual(rooms);
      await waitUntil(() => orphan.livekitRoom.disconnectHeld, "the orphaned connection's room disconnected");
      orphan.livekitRoom.releaseDisconnect();
      await waitUntil(() => orphan.actor.getSnapshot().status === "done", "the orphaned connection disposed of");
      expect(orphan.actor.getSnapshot().value).toBe("Disposed");
      expect(world().logger.lines.filter((l) => l.startsWith("error"))).toEqual([
        expect.stringMatching(/svc-r\/livekit\/jwt \(slot-\d+\): the slot ended while its transport was still wanted$/),
      ]);
    };
  },
  RETRY_DELAY_PASSES: () => world().clock.increment(RECONNECT.maxDelayMs),
  APP_STARTS_R: () =>
    void lastData()
      .getConnectionForTransport(transport("R"))!
      .start()
      .catch(() => {}),
  // (a failed connection's stop disconnects its room: let that through)
  APP_STOPS_R: async () => {
    void lastData()
      .getConnectionForTransport(transport("R"))!
      .stop()
      .catch(() => {});
    await waitUntil(() => roomOf("R").disconnectHeld, "R's room to be disconnected", STEP_TIMEOUT_MS);
    roomOf("R").releaseDisconnect();
  },
  // R's connection is no longer in the data: the app uses the one it kept from an earlier value.
  APP_STARTS_RETIRING_R: () => {
    const kept = world()
      .data.map((d) => d.getConnectionForTransport(transport("R")))
      .findLast((c) => c !== null)!;
    void kept.start().catch(() => {});
  },
};

// ---------------------------------------------------------------------------------------------------------------

const model = createTestModel(connectionManagerModel, ONE_PATH_PER_TRANSITION);
const paths = model.getShortestPaths();
const startedAt = Date.now();

beforeEach(() => {
  crashWhenDisconnected = false;
  server.always(OPENID_PATH, answer.openId);
  server.always("/svc-r/livekit/jwt/sfu/get", answer.status(401, "M_UNAUTHORIZED"));
  server.always("/svc-l/livekit/jwt/delegate_delayed_leave", (_, res) => sendJson(res, 200, {}));
  heldR = server.hold("/svc-r/livekit/jwt/get_token");
  w = undefined;
  coverage.recording = true;
});

afterEach(async () => {
  coverage.recording = false;
  if (!w) return;
  for (const room of Object.values(w.rooms).flat()) {
    room.holdDisconnect = false;
    room.releaseDisconnect();
  }
  w.abort.abort();
  await flush();
  heldR.dropAll();
});

describe("generated paths through the connection manager model", () => {
  for (const path of paths) {
    test(path.description, async () => {
      await path.test({
        events: Object.fromEntries(
          Object.entries(executors).map(([type, run]) => [
            type,
            async (step: { state: { value: StateValue } }) => {
              const target = step.state.value as ManagerModelState;
              const check = await run(target);
              await settle(target);
              if (check) await check();
            },
          ]),
        ),
        states: { "*": (snapshot) => expectState(snapshot.value as ManagerModelState) },
      });
    });
  }
});

describe("the model", () => {
  test("every event of the model has an executor, and every executor an event", () => {
    expect(Object.keys(executors).sort()).toEqual([...managerModelEvents].sort());
  });
});

describe("coverage of connectionManager and connectionSlot", () => {
  const figures = () =>
    [connectionManagerMachine, connectionSlotMachine].map((m) => [m.id, coverage.figures(m)] as const);

  afterAll(() => {
    const lines = figures().map(
      ([id, f]) =>
        `${id}: states ${f.states.covered}/${f.states.total}, transitions ${f.transitions.covered}/${f.transitions.total}`,
    );
    console.info(
      `model-based coverage: ${lines.join("; ")}; ${paths.length} paths in ${((Date.now() - startedAt) / 1000).toFixed(1)} s`,
    );
  });

  test("the generated paths took every transition of both charts", () => {
    expect(Object.fromEntries(figures().map(([id, f]) => [id, f.transitions.missing]))).toEqual({
      connectionManager: [],
      connectionSlot: [],
    });
  });

  test("the generated paths visited every state of both charts", () => {
    expect(Object.fromEntries(figures().map(([id, f]) => [id, f.states.missing]))).toEqual({
      connectionManager: [],
      connectionSlot: [],
    });
  });
});
