/**
 * The ConnectionManager facade: real HTTP on 127.0.0.1 (one loopback server holds every auth service, told apart
 * by path), a real matrix-js-sdk client, a FakeRoom per connection. Element Call's ConnectionManager and
 * MatrixLivekitMembers cases are restated here, with what this package adds (local first, retries, failures in the
 * snapshot, a stop that completes, disposal).
 */
import type { RemoteParticipant } from "livekit-client";
import { BehaviorSubject, Subject } from "rxjs";
import { fromPromise, type InspectionEvent } from "xstate";
import {
  ConnectionManager,
  ConnectionState,
  connectionActors,
  connectionDepsOf,
  connectionMachine,
  reveal,
  type ConnectRoomInput,
  toCallError,
  matchMembershipsToParticipants,
  type ConnectionManagerData,
  type ConnectionManagerOpts,
  type LivekitTransportConfig,
  type LocalTransportWithSFUConfig,
  type SFUConfig,
} from "../../src";
import { crashingOnceDisconnected } from "../support/crashingMachine";
import { FakeRoom, flush } from "../support/fakeRoom";
import {
  ACCESS_TOKEN,
  answer,
  DEVICE_ID,
  JWT,
  MATRIX_ACCESS_TOKEN,
  matrixClient,
  MEMBER_ID,
  OPENID_PATH,
  recordingLogger,
  ROOM_ID,
  SFU_URL,
  USER_ID,
} from "../support/harness";
import { LoopbackServer } from "../support/loopbackServer";
import { strings } from "../support/strings";
import { makeLivekitJwt } from "../support/tokens";
import { waitUntil } from "../support/waitUntil";

const server = LoopbackServer.forThisFile();

const transport = (name: string): LivekitTransportConfig => ({
  type: "livekit",
  livekit_service_url: `${server.url}/${name}/livekit/jwt`,
});
const tokenPath = (name: string): string => `/${name}/livekit/jwt/get_token`;
const url = (name: string): string => transport(name).livekit_service_url;

const LOCAL_JWT = makeLivekitJwt({ sub: "alice-identity", room: "alias-of-the-call" });
const localConfig = (jwt = LOCAL_JWT): SFUConfig => ({
  url: SFU_URL,
  jwt,
  livekitAlias: "alias-of-the-call",
  livekitIdentity: "alice-identity",
});

type Opts = Partial<ConnectionManagerOpts<FakeRoom>>;

/** A manager on the loopback server; each room it makes connects by itself unless told otherwise. */
function makeManager(opts: Opts = {}, connectOutcome: (name: string) => "succeed" | Error = () => "succeed") {
  const rooms = new Map<string, FakeRoom[]>();
  const local$ = new BehaviorSubject<LocalTransportWithSFUConfig | null>(null);
  const remote$ = new BehaviorSubject<readonly LivekitTransportConfig[]>([]);
  const logger = recordingLogger();
  const manager = new ConnectionManager<FakeRoom>(
    {
      localTransport$: local$,
      remoteTransports$: remote$,
      client: matrixClient(server),
      roomId: ROOM_ID,
      ownMembershipIdentity: { userId: USER_ID, deviceId: DEVICE_ID, memberId: MEMBER_ID },
      livekitRoomFactory: (t) => {
        const room = new FakeRoom();
        const name = new URL(t.livekit_service_url).pathname.split("/")[1]!;
        room.autoConnect = connectOutcome(name);
        rooms.set(name, [...(rooms.get(name) ?? []), room]);
        return room;
      },
      retry: { maxAttempts: 1 },
      timeouts: { openIdTokenMs: 2000, sfuConfigMs: 2000, disconnectMs: 2000 },
      ...opts,
    },
    logger,
  );
  const data: ConnectionManagerData<FakeRoom>[] = [];
  manager.connectionManagerData$.subscribe((d) => data.push(d));
  const last = (): ConnectionManagerData<FakeRoom> => manager.connectionManagerData$.value;
  const states = (): unknown[] =>
    last()
      .getConnections()
      .map((c) => c.state$.value);
  const urls = (): string[] =>
    last()
      .getConnections()
      .map((c) => c.transport.livekit_service_url);
  const slots = () => manager.actor.getSnapshot().context.slots;
  const room = (name: string, i = 0): FakeRoom => rooms.get(name)![i]!;
  return { manager, rooms, room, local$, remote$, logger, data, last, states, urls, slots };
}

const allConnected = (h: ReturnType<typeof makeManager>, n: number) => () =>
  h.states().length === n && h.states().every((s) => s === ConnectionState.LivekitConnected);

function serveTokens(...names: string[]): void {
  server.always(OPENID_PATH, answer.openId);
  for (const name of names) server.always(tokenPath(name), answer.sfuConfig);
}

describe("one connection per transport (Element Call's ConnectionManager cases)", () => {
  test("each distinct transport gets a connection, started at once; the local one first, with its SFU config", async () => {
    serveTokens("a", "b", "c");
    const h = makeManager();
    h.local$.next({ transport: transport("l"), sfuConfig: localConfig() });
    h.remote$.next([transport("b"), transport("l"), transport("c"), transport("b")]);
    await waitUntil(allConnected(h, 3), "three connections connected");
    expect(h.urls()).toEqual([url("l"), url("b"), url("c")]);
    expect([...h.rooms.keys()].sort()).toEqual(["b", "c", "l"]);
    // The local one connected with the SFU config it was given: no request on its behalf.
    expect(h.room("l").connectCalls).toEqual([{ url: SFU_URL, token: LOCAL_JWT }]);
    expect(server.to(tokenPath("l"))).toHaveLength(0);
    expect(server.to(tokenPath("b"))).toHaveLength(1);
    expect(server.to(tokenPath("c"))).toHaveLength(1);
    expect(h.last().getConnectionForTransport(transport("c"))?.livekitRoom).toBe(h.room("c"));
    expect(h.last().getConnectionForTransport(transport("x"))).toBeNull();
  });

  test("the same lists again change nothing: one room and one connect per transport; a new one adds one", async () => {
    serveTokens("a", "b");
    const h = makeManager();
    for (let i = 0; i < 5; i++) h.remote$.next([transport("a")]);
    await waitUntil(allConnected(h, 1), "a connected");
    const versions = h.data.length;
    for (let i = 0; i < 5; i++) h.remote$.next([transport("a")]);
    await flush();
    expect(h.data).toHaveLength(versions);
    h.remote$.next([transport("a"), transport("b")]);
    await waitUntil(allConnected(h, 2), "a and b connected");
    expect(h.rooms.get("a")).toHaveLength(1);
    expect(h.room("a").connectCalls).toHaveLength(1);
    expect(h.rooms.get("b")).toHaveLength(1);
  });

  test("a removed transport's connection is stopped, its room disconnected, and it leaves the data; the others are left alone", async () => {
    serveTokens("a", "b");
    const h = makeManager();
    h.remote$.next([transport("a"), transport("b")]);
    await waitUntil(allConnected(h, 2), "both connected");
    const b = h.last().getConnectionForTransport(transport("b"))!;
    const bStates: unknown[] = [];
    let bCompleted = false;
    b.state$.subscribe({ next: (s) => bStates.push(s), complete: () => (bCompleted = true) });
    h.room("b").holdDisconnect = true;
    h.remote$.next([transport("a")]);
    await flush();
    // Gone from the data at once (as in Element Call), while its room is still being disconnected.
    expect(h.urls()).toEqual([url("a")]);
    expect(h.slots().map((s) => [s.key, s.status])).toEqual([
      [url("a"), "Live.Running"],
      [url("b"), "Live.Retiring"],
    ]);
    h.room("b").releaseDisconnect();
    await waitUntil(() => h.slots().length === 1, "b's slot done");
    expect(h.room("b").disconnectCalls).toBe(1);
    expect(bStates.at(-1)).toBe(ConnectionState.Stopped);
    expect(bCompleted).toBe(true);
    expect(h.room("a").disconnectCalls).toBe(0);
    expect(h.states()).toEqual([ConnectionState.LivekitConnected]);
  });

  test("participants per transport over time: a new data value per change, earlier values unchanged", async () => {
    serveTokens("a", "b");
    const h = makeManager();
    h.remote$.next([transport("a"), transport("b")]);
    await waitUntil(allConnected(h, 2), "both connected");
    const before = h.last();
    const ids = (d: ConnectionManagerData<FakeRoom>, name: string) =>
      d.getParticipantsForTransport(transport(name)).map((p) => p.identity);
    h.room("a").addParticipant("bob");
    const withBob = h.last();
    h.room("b").addParticipant("carl");
    h.room("a").addParticipant("dave");
    h.room("a").removeParticipant("bob");
    expect(ids(before, "a")).toEqual([]);
    expect(ids(withBob, "a")).toEqual(["bob"]);
    expect(ids(h.last(), "a")).toEqual(["dave"]);
    expect(ids(h.last(), "b")).toEqual(["carl"]);
    expect(h.last().version).toBe(before.version + 4);
    expect(ids(h.last(), "x")).toEqual([]);
  });

  test("the arrays handed out are copies: changing one changes no data value", async () => {
    serveTokens("a");
    const h = makeManager();
    h.remote$.next([transport("a")]);
    await waitUntil(allConnected(h, 1), "a connected");
    h.room("a").addParticipant("bob");
    const d = h.last();
    d.getConnections().pop();
    d.getParticipantsForTransport(transport("a")).pop();
    expect(d.getConnections()).toHaveLength(1);
    expect(d.getParticipantsForTransport(transport("a"))).toHaveLength(1);
    expect(Object.isFrozen(d)).toBe(true);
  });
});

describe("this package's rules", () => {
  test("a new SFU config for the same local URL neither reconnects nor makes a room", async () => {
    const h = makeManager();
    h.local$.next({ transport: transport("l"), sfuConfig: localConfig() });
    await waitUntil(allConnected(h, 1), "local connected");
    const version = h.last().version;
    h.local$.next({ transport: transport("l"), sfuConfig: localConfig(makeLivekitJwt({ sub: "alice-identity" })) });
    await flush();
    expect(h.rooms.get("l")).toHaveLength(1);
    expect(h.room("l").connectCalls).toHaveLength(1);
    expect(h.room("l").disconnectCalls).toBe(0);
    expect(h.last().version).toBe(version);
  });

  test("a failed connection is retried under the reconnect policy, visible in the snapshot, while the other stays connected", async () => {
    serveTokens("a");
    server.always(tokenPath("down"), answer.status(503));
    const h = makeManager({ reconnect: { maxAttempts: 2, initialDelayMs: 30, maxDelayMs: 60 } });
    h.remote$.next([transport("a"), transport("down")]);
    await waitUntil(() => h.slots()[1]?.status === "Live.WaitingToRetry", "down waiting to retry");
    // Element Call's code for a refused token request, in the snapshot and in the connection's state$.
    expect(toCallError(h.slots()[1]!.error)).toMatchObject({ code: "OPEN_ID_ERROR" });
    expect(h.last().getConnectionForTransport(transport("down"))?.state$.value).toMatchObject({
      code: "OPEN_ID_ERROR",
    });
    await waitUntil(() => h.slots()[1]?.status === "Live.GaveUp", "down gave up", 3000);
    // The first attempt and two retries, 30 then 60 ms apart.
    expect(server.to(tokenPath("down")).length).toBeGreaterThanOrEqual(3);
    expect(h.slots()[1]!.retries).toBe(2);
    expect(h.last().getConnectionForTransport(transport("a"))?.state$.value).toBe(ConnectionState.LivekitConnected);
    expect(h.room("a").connectCalls).toHaveLength(1);
    expect(h.logger.lines.some((l) => l.startsWith("warn") && l.includes("Live.GaveUp"))).toBe(true);
  });

  test("a connection that fails and then works is connected by a retry", async () => {
    server.always(OPENID_PATH, answer.openId);
    server.once(tokenPath("flaky"), answer.status(503));
    server.always(tokenPath("flaky"), answer.sfuConfig);
    const h = makeManager({ reconnect: { maxAttempts: 3, initialDelayMs: 20, maxDelayMs: 40 } });
    h.remote$.next([transport("flaky")]);
    await waitUntil(allConnected(h, 1), "flaky connected after a retry");
    expect(server.to(tokenPath("flaky"))).toHaveLength(2);
    expect(h.slots()[0]).toMatchObject({ status: "Live.Running", retries: 0 });
  });

  test("stop() resolves once every room is disconnected; start() connects again to the transports as they are now", async () => {
    serveTokens("a", "b");
    const h = makeManager();
    h.remote$.next([transport("a"), transport("b")]);
    await waitUntil(allConnected(h, 2), "both connected");
    h.room("a").holdDisconnect = true;
    let stopped = false;
    const stopping = h.manager.stop().then(() => (stopped = true));
    await waitUntil(() => h.room("a").disconnectHeld && h.room("b").disconnectCalls === 1, "both disconnecting");
    await flush();
    expect(stopped).toBe(false);
    expect(h.manager.actor.getSnapshot().value).toBe("Stopping");
    h.room("a").releaseDisconnect();
    await stopping;
    expect(h.manager.actor.getSnapshot().value).toBe("Stopped");
    expect(h.last().getConnections()).toEqual([]);
    // Followed while stopped, connected on start().
    h.remote$.next([transport("b")]);
    h.manager.start();
    await waitUntil(allConnected(h, 1), "b connected again");
    expect(h.urls()).toEqual([url("b")]);
    expect(h.rooms.get("b")).toHaveLength(2);
  });

  test("the delayed leave follows the local role: to a remote slot that becomes local, away from one that stops being so", async () => {
    serveTokens("a", "b");
    const h = makeManager({ delayedLeave: { delayId: "syd_DELAY_SECRET", delayTimeoutMs: 10_000 } });
    const leaveOf = (name: string) =>
      h.last().getConnectionForTransport(transport(name))!.actor.getSnapshot().context.delayedLeave;
    // Element Call's order: the members' transports first, ours once its SFU config is fetched.
    h.remote$.next([transport("a"), transport("b")]);
    await waitUntil(allConnected(h, 2), "both connected");
    expect([leaveOf("a"), leaveOf("b")]).toEqual([undefined, undefined]);
    h.local$.next({ transport: transport("a") });
    expect(leaveOf("a")).toBeDefined();
    expect(leaveOf("b")).toBeUndefined();
    h.local$.next({ transport: transport("b") });
    expect(leaveOf("a")).toBeUndefined();
    expect(leaveOf("b")).toBeDefined();
    expect(h.rooms.get("a")).toHaveLength(1); // the same connections, no reconnect
    expect(h.room("a").connectCalls).toHaveLength(1);
  });

  test("a connection that crashes while being stopped does not keep stop() waiting", async () => {
    serveTokens("a");
    let crash = false;
    const machine = crashingOnceDisconnected(() => crash);
    const h = makeManager({ machine });
    h.remote$.next([transport("a")]);
    await waitUntil(allConnected(h, 1), "a connected");
    crash = true;
    await h.manager.stop();
    expect(h.manager.actor.getSnapshot().value).toBe("Stopped");
    expect(h.slots()).toEqual([]);
    expect(h.room("a").disconnectCalls).toBe(1);
  });

  test("the app's start() of a connection being retired is overruled: its room ends disconnected and stop() resolves", async () => {
    serveTokens("a");
    const h = makeManager();
    h.remote$.next([transport("a")]);
    await waitUntil(allConnected(h, 1), "a connected");
    const kept = h.last().getConnectionForTransport(transport("a"))!;
    h.room("a").holdDisconnect = true;
    h.remote$.next([]);
    await waitUntil(() => h.room("a").disconnectHeld, "a's room disconnecting");
    void kept.start().catch(() => {}); // the app's own start(), while the manager retires it
    h.room("a").holdDisconnect = false;
    h.room("a").releaseDisconnect();
    await waitUntil(() => h.slots().length === 0, "a's slot done");
    expect(h.room("a").state).toBe("disconnected");
    expect(kept.state$.value).toBe(ConnectionState.Stopped);
    await h.manager.stop();
    expect(h.manager.actor.getSnapshot().value).toBe("Stopped");
  });

  test("aborting the signal completes the data at once and disconnects every room", async () => {
    serveTokens("a");
    const controller = new AbortController();
    const h = makeManager({ signal: controller.signal });
    h.remote$.next([transport("a")]);
    await waitUntil(allConnected(h, 1), "a connected");
    let completed = false;
    h.manager.connectionManagerData$.subscribe({ complete: () => (completed = true) });
    controller.abort();
    expect(completed).toBe(true);
    await waitUntil(() => h.manager.actor.getSnapshot().status === "done", "disposed");
    expect(h.room("a").disconnectCalls).toBe(1);
    expect(() => h.manager.start()).toThrow(/disposed/);
    h.remote$.next([transport("a"), transport("b")]);
    expect(h.rooms.get("b")).toBeUndefined();
  });

  test("the delayed leave goes to the local connection only, and updateDelayedLeave reaches it there", async () => {
    serveTokens("a");
    const delayedLeave = { delayId: "syd_DELAY_SECRET", delayTimeoutMs: 10_000 };
    const h = makeManager({ delayedLeave });
    h.local$.next({ transport: transport("l"), sfuConfig: localConfig() });
    h.remote$.next([transport("a")]);
    await waitUntil(allConnected(h, 2), "both connected");
    const leaveOf = (name: string) =>
      h.last().getConnectionForTransport(transport(name))!.actor.getSnapshot().context.delayedLeave;
    expect(leaveOf("l")).toBeDefined();
    expect(leaveOf("a")).toBeUndefined();
    h.manager.updateDelayedLeave(undefined);
    expect(leaveOf("l")).toBeUndefined();
    expect(() => h.manager.updateDelayedLeave({ delayId: "", delayTimeoutMs: 1 })).toThrow(/delayId/);
  });
  test("the machine option runs a connection machine of one's own for every transport", async () => {
    serveTokens("a", "b");
    const connected: string[] = [];
    const machine = connectionMachine.provide({
      actors: {
        ...connectionActors,
        connectRoom: fromPromise<void, ConnectRoomInput>(async ({ input }) => {
          const room = connectionDepsOf(input).room as FakeRoom;
          connected.push(connectionDepsOf(input).transport.livekit_service_url);
          await room.connect(input.url, reveal(input.jwt));
        }),
      },
    });
    const h = makeManager({ machine });
    h.remote$.next([transport("a"), transport("b")]);
    await waitUntil(allConnected(h, 2), "both connected");
    expect(connected.sort()).toEqual([url("a"), url("b")]);
  });
});

describe("bad input gets a clear error and a defined state", () => {
  test("malformed options are TypeErrors naming the option", () => {
    const good = {
      localTransport$: new Subject(),
      remoteTransports$: new Subject(),
      client: matrixClient(server),
      roomId: ROOM_ID,
      ownMembershipIdentity: { userId: USER_ID, deviceId: DEVICE_ID, memberId: MEMBER_ID },
      livekitRoomFactory: () => new FakeRoom(),
    };
    const make = (o: object) => () => new ConnectionManager(o as never);
    expect(make({ ...good, livekitRoomFactory: undefined })).toThrow(/livekitRoomFactory/);
    expect(make({ ...good, localTransport$: [] })).toThrow(/localTransport\$ must be an observable/);
    expect(make({ ...good, remoteTransports$: undefined })).toThrow(/remoteTransports\$/);
    expect(make({ ...good, roomId: "" })).toThrow(/roomId/);
    expect(make({ ...good, reconnect: { maxAttempts: 0 } })).toThrow(/reconnect.maxAttempts/);
  });

  test("a signal aborted already: nothing is followed and no room is made; dispose() does what the signal does", async () => {
    const aborted = makeManager({ signal: AbortSignal.abort() });
    aborted.local$.next({ transport: transport("l"), sfuConfig: localConfig() });
    aborted.remote$.next([transport("a")]);
    await flush();
    expect(aborted.rooms.size).toBe(0);
    expect(aborted.manager.actor.getSnapshot().status).toBe("done");

    serveTokens("a");
    const h = makeManager();
    h.remote$.next([transport("a")]);
    await waitUntil(allConnected(h, 1), "a connected");
    let completed = false;
    h.manager.connectionManagerData$.subscribe({ complete: () => (completed = true) });
    h.manager.dispose();
    h.manager.dispose();
    expect(completed).toBe(true);
    await waitUntil(() => h.manager.actor.getSnapshot().status === "done", "disposed");
    expect(h.room("a").disconnectCalls).toBe(1);
  });

  test("an observable that throws on subscribe: the constructor throws, and nothing is left running", async () => {
    serveTokens("l");
    const rooms: FakeRoom[] = [];
    const make = () =>
      new ConnectionManager<FakeRoom>({
        localTransport$: new BehaviorSubject<LocalTransportWithSFUConfig | null>({ transport: transport("l") }),
        remoteTransports$: {
          subscribe: () => {
            throw new Error("not today");
          },
        } as never,
        client: matrixClient(server),
        roomId: ROOM_ID,
        ownMembershipIdentity: { userId: USER_ID, deviceId: DEVICE_ID, memberId: MEMBER_ID },
        livekitRoomFactory: () => {
          const room = new FakeRoom();
          rooms.push(room);
          return room;
        },
      });
    expect(make).toThrow("not today");
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(rooms.every((r) => r.state === "disconnected")).toBe(true);
    expect(server.to(tokenPath("l"))).toHaveLength(0); // the local connection did not go on fetching
  });

  test("a member's malformed transport breaks its own slot only; a throwing room factory too", async () => {
    serveTokens("a");
    const h = makeManager({}, (name) => {
      if (name === "boom") throw new Error("no room for you");
      return "succeed";
    });
    h.remote$.next([
      transport("a"),
      { type: "livekit", livekit_service_url: "ftp://example.org/jwt" },
      transport("boom"),
      { type: "other", url: "x" } as never,
      null as never,
    ]);
    await waitUntil(allConnected(h, 1), "a connected");
    await waitUntil(() => h.slots().filter((s) => s.status === "Broken").length === 2, "two broken slots");
    const broken = h.slots().filter((s) => s.status === "Broken");
    expect(broken.map((s) => [s.key, (s.error as Error).message])).toEqual([
      ["ftp://example.org/jwt", expect.stringMatching(/livekit_service_url/)],
      [url("boom"), "no room for you"],
    ]);
    expect(h.urls()).toEqual([url("a")]);
    expect(h.logger.lines.filter((l) => l.startsWith("warn"))).toEqual(
      expect.arrayContaining([expect.stringContaining("2 transport(s) skipped")]),
    );
    // Removing them ends their slots.
    h.remote$.next([transport("a")]);
    await waitUntil(() => h.slots().length === 1, "broken slots gone");
  });

  test("malformed values of the observables are logged and ignored; an observable's error keeps the last transports", async () => {
    serveTokens("a");
    const h = makeManager();
    h.remote$.next([transport("a")]);
    await waitUntil(allConnected(h, 1), "a connected");
    h.remote$.next("not a list" as never);
    h.local$.next({ transport: { type: "livekit" } } as never);
    h.local$.next({ transport: transport("a"), sfuConfig: { url: "nope" } as never });
    await flush();
    expect(h.urls()).toEqual([url("a")]);
    expect(h.rooms.get("a")).toHaveLength(1);
    h.remote$.error(new Error("the room state went away"));
    await flush();
    expect(h.urls()).toEqual([url("a")]);
    const errors = h.logger.lines.filter((l) => l.startsWith("error") || l.startsWith("warn"));
    expect(errors).toEqual(
      expect.arrayContaining([
        expect.stringContaining("remoteTransports$ gave no array"),
        expect.stringContaining("localTransport$ gave no"),
        expect.stringContaining("the local connection fetches its own"),
        expect.stringContaining("remoteTransports$ failed"),
      ]),
    );
  });

  test("no JWT, access token or delay id in snapshots, inspection events or logs", async () => {
    serveTokens("a");
    const events: InspectionEvent[] = [];
    const h = makeManager({
      inspect: (e) => events.push(e),
      delayedLeave: { delayId: "syd_DELAY_SECRET", delayTimeoutMs: 10_000 },
    });
    h.local$.next({ transport: transport("l"), sfuConfig: localConfig() });
    h.remote$.next([transport("a")]);
    await waitUntil(allConnected(h, 2), "both connected");
    await h.manager.stop();
    const seen = [...strings(events), ...strings(h.manager.actor.getSnapshot()), ...h.logger.lines];
    expect(seen.length).toBeGreaterThan(1000);
    expect(seen.some((t) => t.includes(url("a")))).toBe(true);
    for (const secret of [LOCAL_JWT, JWT, ACCESS_TOKEN, MATRIX_ACCESS_TOKEN, "syd_DELAY_SECRET"]) {
      expect(seen.filter((t) => t.includes(secret))).toEqual([]);
    }
  });
});

describe("matchMembershipsToParticipants (Element Call's MatrixLivekitMembers cases)", () => {
  const membership = (userId: string, deviceId: string) => ({
    userId,
    deviceId,
    rtcBackendIdentity: `${userId}:${deviceId}`,
  });
  const local = { userId: USER_ID, deviceId: DEVICE_ID };

  test("on the member's own transport: its connection and participant; elsewhere or nowhere: null", async () => {
    serveTokens("a", "b");
    const h = makeManager();
    h.remote$.next([transport("a"), transport("b")]);
    await waitUntil(allConnected(h, 2), "both connected");
    const bob = membership("@bob:x", "B1");
    const carl = membership("@carl:x", "C1");
    const dave = membership("@dave:x", "D1");
    const eve = membership("@eve:x", "E1");
    h.room("a").addParticipant(bob.rtcBackendIdentity);
    h.room("b").addParticipant(bob.rtcBackendIdentity); // bob publishes in several connections
    h.room("a").addParticipant(carl.rtcBackendIdentity); // carl publishes in the wrong one
    const matched = matchMembershipsToParticipants(
      [
        { membership: bob, transport: transport("b") },
        { membership: carl, transport: transport("b") },
        { membership: dave, transport: transport("a") }, // not in the room yet
        { membership: eve }, // no transport
        { membership: membership(USER_ID, DEVICE_ID), transport: transport("a") }, // ourselves: skipped
        { membership: membership(USER_ID, "OTHER"), transport: transport("x") }, // our other device, no connection
      ],
      h.last(),
      local,
    );
    const b = h.last().getConnectionForTransport(transport("b"));
    const a = h.last().getConnectionForTransport(transport("a"));
    const summary = matched.map((m) => [
      m.membership.userId,
      m.connection,
      (m.participant as RemoteParticipant | null)?.identity ?? null,
    ]);
    expect(summary).toEqual([
      ["@bob:x", b, bob.rtcBackendIdentity],
      ["@carl:x", b, null],
      ["@dave:x", a, null],
      ["@eve:x", null, null],
      [USER_ID, null, null],
    ]);
    // The participant found is the one in bob's own transport's room.
    expect(matched[0]!.participant).toBe(h.room("b").remoteParticipants.get(bob.rtcBackendIdentity));
  });
});
