/**
 * The connection manager's charts (issue 11, step 1), through `.provide()`: a fake `prepareConnection` (it seals
 * a stand-in room, as src/ will) and the real `connectionMachine` with fake actors keyed by the transport's URL.
 * The retry waits run on xstate's SimulatedClock (the root's clock drives the slots' and connections' timers).
 */
import { createActor, fromCallback, fromPromise, SimulatedClock, type EventObject, type InspectionEvent } from "xstate";
import { connectionMachine, type Sealed, type SFUCredentials } from "../../machines/connection.machine";
import {
  connectionManagerMachine,
  desiredTransports,
  type ConnectionManagerInput,
  type LocalTransport,
} from "../../machines/connectionManager.machine";
import { connectionSlotMachine, type LivekitTransport } from "../../machines/connectionSlot.machine";
import { reveal, Secret } from "../../src/secret";
import { flush } from "../support/fakeRoom";

const transport = (url: string): LivekitTransport => ({ type: "livekit", livekit_service_url: url });
const L = transport("https://auth.local.example/livekit/jwt");
const R = transport("https://auth.remote.example/livekit/jwt");
const S = transport("https://auth.third.example/livekit/jwt");

const JWT_SECRET = "SECRET-JWT-eyJhbGciOi";
const ROOM_SECRET = "SECRET-ROOM-handle";
const CLIENT_SECRET = "SECRET-CLIENT-access-token";

const sfuConfig = (label = "first"): SFUCredentials => ({
  url: "wss://sfu.local.example",
  jwt: new Secret(`${JWT_SECRET}-${label}`),
  livekitAlias: "alias",
  livekitIdentity: "identity",
  expiresAt: undefined, // no `exp`: always reusable, so the local connection makes no request
});

interface FakeDeps {
  url: string;
  room: { secret: string };
}

/** A deferred promise, to hold a disconnect. */
function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/** The fake world: what each transport's actors do, and what they were asked. */
class World {
  readonly prepared: string[] = [];
  readonly openIdRequests: string[] = [];
  readonly connects: string[] = [];
  readonly disconnects: string[] = [];
  readonly disconnected: string[] = [];
  readonly failOpenId = new Set<string>();
  readonly failPrepare = new Set<string>();
  readonly failConnect = new Set<string>();
  readonly holdDisconnect = new Map<string, ReturnType<typeof deferred>>();
  readonly watchers = new Map<string, (event: EventObject) => void>();

  static urlOf(input: { deps: unknown }): string {
    return reveal(input.deps as Sealed<FakeDeps>).url;
  }

  hold(url: string): () => void {
    const d = deferred();
    this.holdDisconnect.set(url, d);
    return d.resolve;
  }

  machine() {
    const connection = connectionMachine.provide({
      actors: {
        requestOpenIdToken: fromPromise(async ({ input }) => {
          const url = World.urlOf(input);
          this.openIdRequests.push(url);
          if (this.failOpenId.has(url)) throw new Error(`the homeserver refused (${url})`);
          return new Secret({ access_token: "t", token_type: "Bearer", matrix_server_name: "hs", expires_in: 3600 });
        }),
        requestSFUConfig: fromPromise(async () => sfuConfig("fetched")),
        watchRoom: fromCallback<EventObject, { deps: unknown }>(({ sendBack, input }) => {
          const url = World.urlOf(input);
          this.watchers.set(url, sendBack);
          return () => this.watchers.delete(url);
        }),
        connectRoom: fromPromise(async ({ input }) => {
          const url = World.urlOf(input);
          this.connects.push(url);
          if (this.failConnect.has(url)) throw new Error(`the SFU refused (${url})`);
          this.watchers.get(url)?.({ type: "room.connected" });
        }),
        disconnectRoom: fromPromise(async ({ input }) => {
          const url = World.urlOf(input);
          this.disconnects.push(url);
          await this.holdDisconnect.get(url)?.promise;
          this.disconnected.push(url);
        }),
        delegateDelayedLeave: fromPromise(async () => {}),
      },
    });
    const slot = connectionSlotMachine.provide({
      actors: {
        prepareConnection: fromPromise(async ({ input }) => {
          const url = input.transport.livekit_service_url;
          this.prepared.push(url);
          if (this.failPrepare.has(url)) throw new Error(`the room factory threw (${url})`);
          return new Secret<FakeDeps>({ url, room: { secret: ROOM_SECRET } });
        }),
        connection,
      },
    });
    return connectionManagerMachine.provide({ actors: { slot } });
  }
}

function start(world: World, input: ConnectionManagerInput, inspected: InspectionEvent[] = []) {
  const clock = new SimulatedClock();
  const actor = createActor(world.machine(), {
    input: { deps: new Secret({ client: CLIENT_SECRET }), ...input },
    clock,
    inspect: (e) => void inspected.push(e),
  });
  actor.start();
  return { actor, clock };
}

/** Lets the fake promises settle (several rounds: prepare, then connect). */
async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await flush();
}

const local = (t: LivekitTransport, label?: string): LocalTransport => ({ transport: t, sfuConfig: sfuConfig(label) });

type ManagerActor = ReturnType<typeof start>["actor"];
const view = (actor: ManagerActor) =>
  actor.getSnapshot().context.slots.map((s) => ({
    url: s.key,
    id: s.id,
    local: s.isLocal,
    wanted: s.wanted,
    status: s.status,
    connection: s.connectionState,
  }));
const CONNECTED = "Livekit.{room.connected, delayedLeave.NotRequested}";
const childIds = (actor: ManagerActor) => Object.keys(actor.getSnapshot().children).sort();

describe("desiredTransports", () => {
  const keys = (d: ReturnType<typeof desiredTransports>) => d.map((t) => [t.key, t.isLocal]);

  test("one per distinct livekit_service_url, in order, duplicates dropped (Element Call's de-duplication)", () => {
    expect(keys(desiredTransports(null, [R, S, R, transport(R.livekit_service_url)]))).toEqual([
      [R.livekit_service_url, false],
      [S.livekit_service_url, false],
    ]);
    expect(desiredTransports(null, [])).toEqual([]);
    expect(desiredTransports(undefined, [])).toEqual([]);
  });

  test("the local one first, with its SFU config; a remote equal to it is dropped", () => {
    const loc = local(L);
    const desired = desiredTransports(loc, [R, L, S]);
    expect(keys(desired)).toEqual([
      [L.livekit_service_url, true],
      [R.livekit_service_url, false],
      [S.livekit_service_url, false],
    ]);
    expect(desired[0]!.sfuConfig).toBe(loc.sfuConfig);
    expect(desired[1]).not.toHaveProperty("sfuConfig");
    expect(keys(desiredTransports({ transport: L }, [L]))).toEqual([[L.livekit_service_url, true]]);
    expect(desiredTransports({ transport: L }, [])[0]).not.toHaveProperty("sfuConfig");
  });

  test("a new local SFU config for the same URL keeps the key; the URL is compared as it is", () => {
    expect(keys(desiredTransports(local(L, "a"), [R]))).toEqual(keys(desiredTransports(local(L, "b"), [R])));
    expect(keys(desiredTransports(null, [R, transport(`${R.livekit_service_url}/`)]))).toHaveLength(2);
  });
});

describe("connectionManagerMachine", () => {
  test("spawns one slot per transport, local first, each connected; identical lists spawn nothing more", async () => {
    const world = new World();
    const { actor } = start(world, { local: local(L), remote: [R, L] });
    await settle();
    expect(view(actor)).toEqual([
      {
        url: L.livekit_service_url,
        id: "slot-1",
        local: true,
        wanted: true,
        status: "Live.Running",
        connection: CONNECTED,
      },
      {
        url: R.livekit_service_url,
        id: "slot-2",
        local: false,
        wanted: true,
        status: "Live.Running",
        connection: CONNECTED,
      },
    ]);
    // The local connection used its SFU config: no OpenID request for it.
    expect(world.openIdRequests).toEqual([R.livekit_service_url]);
    for (let i = 0; i < 5; i++) actor.send({ type: "TRANSPORTS_CHANGED", local: local(L), remote: [R, L] });
    await settle();
    actor.send({ type: "TRANSPORTS_CHANGED", local: local(L), remote: [R, S] });
    await settle();
    expect(world.prepared).toEqual([L, R, S].map((t) => t.livekit_service_url));
    expect(world.connects).toEqual([L, R, S].map((t) => t.livekit_service_url));
    expect(view(actor).map((s) => [s.id, s.connection])).toEqual([
      ["slot-1", CONNECTED],
      ["slot-2", CONNECTED],
      ["slot-3", CONNECTED],
    ]);
    expect(childIds(actor)).toEqual(["slot-1", "slot-2", "slot-3"]);
    actor.stop();
  });

  test("retires a transport that disappears: STOP to its connection, removed only once it is Stopped", async () => {
    const world = new World();
    const { actor } = start(world, { local: local(L), remote: [R] });
    await settle();
    const release = world.hold(R.livekit_service_url);
    actor.send({ type: "TRANSPORTS_CHANGED", local: local(L), remote: [] });
    await settle();
    expect(world.disconnects).toEqual([R.livekit_service_url]);
    expect(view(actor)[1]).toEqual({
      url: R.livekit_service_url,
      id: "slot-2",
      local: false,
      wanted: false,
      status: "Live.Retiring",
      connection: "Stopping.ThenStop",
    });
    expect(childIds(actor)).toEqual(["slot-1", "slot-2"]);
    release();
    await settle();
    expect(world.disconnected).toEqual([R.livekit_service_url]);
    expect(view(actor).map((s) => s.id)).toEqual(["slot-1"]);
    expect(childIds(actor)).toEqual(["slot-1"]);
    expect(view(actor)[0]!.connection).toBe(CONNECTED);
    // Added again once gone: a new slot with a new id (never the URL, never a reused id).
    actor.send({ type: "TRANSPORTS_CHANGED", local: local(L), remote: [R] });
    await settle();
    expect(view(actor).map((s) => [s.id, s.connection])).toEqual([
      ["slot-1", CONNECTED],
      ["slot-3", CONNECTED],
    ]);
    actor.stop();
  });

  test("a transport back while its slot retires revives that slot: never two slots for one key", async () => {
    const world = new World();
    const { actor } = start(world, { local: null, remote: [R] });
    await settle();
    const release = world.hold(R.livekit_service_url);
    actor.send({ type: "TRANSPORTS_CHANGED", local: null, remote: [] });
    await settle();
    actor.send({ type: "TRANSPORTS_CHANGED", local: null, remote: [R] });
    await settle();
    expect(view(actor)).toEqual([
      {
        url: R.livekit_service_url,
        id: "slot-1",
        local: false,
        wanted: true,
        status: "Live.Running",
        connection: "Stopping.ThenStart",
      },
    ]);
    release();
    await settle();
    expect(view(actor).map((s) => [s.id, s.status, s.connection])).toEqual([["slot-1", "Live.Running", CONNECTED]]);
    expect(world.prepared).toEqual([R.livekit_service_url]);
    expect(world.connects).toEqual([R.livekit_service_url, R.livekit_service_url]);
    actor.stop();
  });

  test("a new local SFU config for the same URL does not reconnect; the local one moving to a remote reorders", async () => {
    const world = new World();
    const { actor } = start(world, { local: local(L, "first"), remote: [R] });
    await settle();
    actor.send({ type: "TRANSPORTS_CHANGED", local: local(L, "second"), remote: [R] });
    await settle();
    expect(world.prepared).toEqual([L, R].map((t) => t.livekit_service_url));
    expect(world.connects).toEqual([L, R].map((t) => t.livekit_service_url));
    expect(world.disconnects).toEqual([]);
    expect(view(actor).map((s) => [s.id, s.local])).toEqual([
      ["slot-1", true],
      ["slot-2", false],
    ]);
    actor.send({ type: "TRANSPORTS_CHANGED", local: local(R), remote: [L] });
    await settle();
    expect(view(actor).map((s) => [s.id, s.local, s.connection])).toEqual([
      ["slot-2", true, CONNECTED],
      ["slot-1", false, CONNECTED],
    ]);
    expect(world.connects).toHaveLength(2);
    actor.stop();
  });

  test("a failed connection is retried after the policy's waits, then given up, with its failure in the snapshot; the other stays connected", async () => {
    const world = new World();
    world.failOpenId.add(R.livekit_service_url);
    const reconnect = { maxAttempts: 2, initialDelayMs: 1000, maxDelayMs: 1500 };
    const { actor, clock } = start(world, { local: local(L), remote: [R], reconnect });
    await settle();
    const remote = () => actor.getSnapshot().context.slots[1]!;
    const requests = () => world.openIdRequests.length;
    expect([remote().status, remote().connectionState, remote().retries]).toEqual([
      "Live.WaitingToRetry",
      "Failed.OpenIdError",
      0,
    ]);
    expect(String(remote().error)).toMatch(/the homeserver refused/);
    expect(requests()).toBe(1);
    // The first wait: initialDelayMs.
    clock.increment(999);
    await settle();
    expect(requests()).toBe(1);
    clock.increment(1);
    await settle();
    expect(requests()).toBe(2);
    expect([remote().status, remote().retries]).toEqual(["Live.WaitingToRetry", 1]);
    // The second: doubled, at most maxDelayMs.
    clock.increment(1499);
    await settle();
    expect(requests()).toBe(2);
    clock.increment(1);
    await settle();
    expect(requests()).toBe(3);
    // maxAttempts retries made: given up, the failure still visible.
    expect([remote().status, remote().connectionState, remote().retries]).toEqual([
      "Live.GaveUp",
      "Failed.OpenIdError",
      2,
    ]);
    expect(String(remote().error)).toMatch(/the homeserver refused/);
    clock.increment(60_000);
    await settle();
    expect(requests()).toBe(3);
    // The local connection was never touched.
    expect(actor.getSnapshot().context.slots[0]!.connectionState).toBe(CONNECTED);
    expect(world.connects).toEqual([L.livekit_service_url]);
    expect(world.disconnects).toEqual([]);
    actor.stop();
  });

  test("a retry that connects resets the count; reconnect: false gives up at once", async () => {
    const world = new World();
    world.failOpenId.add(R.livekit_service_url);
    const { actor, clock } = start(world, {
      remote: [R],
      reconnect: { maxAttempts: 1, initialDelayMs: 500, maxDelayMs: 500 },
    });
    await settle();
    world.failOpenId.delete(R.livekit_service_url);
    clock.increment(500);
    await settle();
    expect(view(actor)[0]).toMatchObject({ status: "Live.Running", connection: CONNECTED });
    expect(actor.getSnapshot().context.slots[0]!.retries).toBe(0);
    actor.stop();

    const other = new World();
    other.failOpenId.add(R.livekit_service_url);
    const { actor: noRetry } = start(other, { remote: [R], reconnect: false });
    await settle();
    expect(view(noRetry)[0]).toMatchObject({ status: "Live.GaveUp", connection: "Failed.OpenIdError" });
    noRetry.stop();
  });

  test("a Stopped from the app's own stop() is left alone; retiring that slot ends it without another disconnect", async () => {
    const world = new World();
    const { actor } = start(world, { remote: [R] });
    await settle();
    const slot = actor.getSnapshot().children["slot-1"]!;
    const connection = (slot.getSnapshot() as { children: Record<string, { send(e: EventObject): void }> }).children
      .connection!;
    connection.send({ type: "STOP" });
    await settle();
    expect(view(actor)[0]).toMatchObject({ status: "Live.Running", connection: "Stopped" });
    expect(world.disconnects).toEqual([R.livekit_service_url]);
    const warn = jest.spyOn(console, "warn");
    actor.send({ type: "TRANSPORTS_CHANGED", local: null, remote: [] });
    await settle();
    expect(view(actor)).toEqual([]);
    expect(childIds(actor)).toEqual([]);
    expect(world.disconnects).toEqual([R.livekit_service_url]);
    expect(warn).not.toHaveBeenCalled();
    warn.mockRestore();
    actor.stop();
  });

  test("a connection lost after its own reconnect attempts is not retried again (GaveUp)", async () => {
    const world = new World();
    const { actor, clock } = start(world, {
      remote: [R],
      reconnect: { maxAttempts: 1, initialDelayMs: 1000, maxDelayMs: 1000 },
    });
    await settle();
    // (the reconnect reuses the SFU config: no OpenID request, straight to the connect)
    world.failConnect.add(R.livekit_service_url);
    world.watchers.get(R.livekit_service_url)!({ type: "room.disconnected" });
    await settle();
    expect(view(actor)[0]).toMatchObject({ status: "Live.Running", connection: "WaitingToReconnect" });
    clock.increment(1000);
    await settle();
    expect(view(actor)[0]).toMatchObject({ status: "Live.GaveUp", connection: "Failed.ConnectionLost" });
    clock.increment(60_000);
    await settle();
    expect(world.connects).toHaveLength(2);
    expect(String(actor.getSnapshot().context.slots[0]!.error)).toMatch(/the SFU refused/);
    actor.stop();
  });

  test("a room factory that throws leaves its slot Broken (error visible) and the others running", async () => {
    const world = new World();
    world.failPrepare.add(R.livekit_service_url);
    const { actor } = start(world, { local: local(L), remote: [R] });
    await settle();
    expect(view(actor).map((s) => [s.status, s.connection])).toEqual([
      ["Live.Running", CONNECTED],
      ["Broken", undefined],
    ]);
    expect(String(actor.getSnapshot().context.slots[1]!.error)).toMatch(/the room factory threw/);
    actor.send({ type: "TRANSPORTS_CHANGED", local: local(L), remote: [] });
    await settle();
    expect(childIds(actor)).toEqual(["slot-1"]);
    actor.stop();
  });

  test("STOP retires every slot and is Stopped once every room is disconnected; START connects again", async () => {
    const world = new World();
    const { actor } = start(world, { local: local(L), remote: [R] });
    await settle();
    const release = world.hold(R.livekit_service_url);
    actor.send({ type: "STOP" });
    await settle();
    expect(actor.getSnapshot().value).toBe("Stopping");
    expect(view(actor).map((s) => [s.id, s.wanted, s.status])).toEqual([["slot-2", false, "Live.Retiring"]]);
    expect(world.disconnected).toEqual([L.livekit_service_url]);
    // The transports are still followed while stopping and stopped.
    actor.send({ type: "TRANSPORTS_CHANGED", local: local(L), remote: [S] });
    release();
    await settle();
    expect(actor.getSnapshot().value).toBe("Stopped");
    expect(actor.getSnapshot().hasTag("settled")).toBe(true);
    expect(childIds(actor)).toEqual([]);
    expect(world.disconnected.sort()).toEqual([L, R].map((t) => t.livekit_service_url).sort());
    actor.send({ type: "START" });
    await settle();
    expect(view(actor).map((s) => [s.url, s.id, s.connection])).toEqual([
      [L.livekit_service_url, "slot-3", CONNECTED],
      [S.livekit_service_url, "slot-4", CONNECTED],
    ]);
    actor.stop();
  });

  test("DISPOSE disposes of every slot and is done once every room is disconnected", async () => {
    const world = new World();
    world.failPrepare.add(S.livekit_service_url);
    const { actor } = start(world, { local: local(L), remote: [R, S] });
    await settle();
    const release = world.hold(L.livekit_service_url);
    actor.send({ type: "DISPOSE" });
    await settle();
    expect(actor.getSnapshot().value).toBe("Disposing");
    expect(view(actor).map((s) => [s.id, s.status])).toEqual([["slot-1", "Live.Disposing"]]);
    release();
    await settle();
    expect(actor.getSnapshot().value).toBe("Disposed");
    expect(actor.getSnapshot().status).toBe("done");
    expect(actor.getSnapshot().hasTag("disposed")).toBe(true);
    expect(world.disconnected.sort()).toEqual([L, R].map((t) => t.livekit_service_url).sort());
  });

  test("snapshots and inspection events carry no client, room or JWT", async () => {
    const world = new World();
    const inspected: InspectionEvent[] = [];
    world.failOpenId.add(S.livekit_service_url);
    const { actor, clock } = start(world, { local: local(L), remote: [R, S] }, inspected);
    await settle();
    actor.send({ type: "TRANSPORTS_CHANGED", local: local(L, "second"), remote: [S] });
    clock.increment(1000);
    await settle();
    actor.send({ type: "DISPOSE" });
    await settle();
    expect(actor.getSnapshot().status).toBe("done");
    const text = [
      JSON.stringify(actor.getSnapshot()),
      ...inspected.map((e) =>
        JSON.stringify({
          type: e.type,
          event: "event" in e ? e.event : undefined,
          snapshot: "snapshot" in e ? e.snapshot : undefined,
        }),
      ),
    ].join("\n");
    expect(inspected.length).toBeGreaterThan(50);
    expect(text).toContain("[redacted]");
    for (const secret of [JWT_SECRET, ROOM_SECRET, CLIENT_SECRET]) expect(text).not.toContain(secret);
  });
});
