/** The actor without the Connection facade: `createConnectionActor`, and the shared machine's actors on their own. */
import { createActor, waitFor } from "xstate";
import {
  Connection,
  FailToGetOpenIdToken,
  connectionActors,
  connectionMachine,
  createConnectionActor,
} from "../../src";
import { FakeRoom } from "../support/fakeRoom";
import {
  DEVICE_ID,
  GET_TOKEN_PATH,
  JWT,
  MEMBER_ID,
  OPENID_PATH,
  ROOM_ID,
  SERVICE_PATH,
  SFU_URL,
  USER_ID,
  answer,
  matrixClient,
  recordingLogger,
} from "../support/harness";
import { LoopbackServer } from "../support/loopbackServer";

const server = LoopbackServer.forThisFile();
beforeEach(() => {
  server.always(OPENID_PATH, answer.openId).always(GET_TOKEN_PATH, answer.sfuConfig);
});

const options = () => ({
  client: matrixClient(server),
  transport: { type: "livekit" as const, livekit_service_url: server.url + SERVICE_PATH },
  roomId: ROOM_ID,
  ownMembershipIdentity: { userId: USER_ID, deviceId: DEVICE_ID, memberId: MEMBER_ID },
});

describe("createConnectionActor", () => {
  test("runs the whole lifecycle on events alone, and logs each state", async () => {
    const room = new FakeRoom();
    room.autoConnect = "succeed";
    const logger = recordingLogger();
    const actor = createConnectionActor({ ...options(), room, logger }).start();
    actor.send({ type: "START" });
    await waitFor(actor, (s) => s.matches({ Livekit: { room: "connected" } }), { timeout: 2000 });
    expect(room.connectCalls).toEqual([{ url: SFU_URL, token: JWT }]);
    actor.send({ type: "STOP" });
    await waitFor(actor, (s) => s.matches("Stopped"), { timeout: 2000 });
    actor.send({ type: "DISPOSE" });
    expect(actor.getSnapshot().status).toBe("done");
    expect(logger.lines.filter((l) => l.startsWith("info state "))).toEqual([
      "info state Initialized",
      "info state FetchingConfig.RequestingOpenIdToken",
      "info state FetchingConfig.RequestingSFUConfig",
      "info state Livekit.{room.disconnected, delayedLeave.NotRequested}",
      "info state Livekit.{room.connecting, delayedLeave.NotRequested}",
      "info state Livekit.{room.connected, delayedLeave.NotRequested}",
      "info state Stopping.ThenStop",
      "info state Stopped",
      "info state Disposed",
    ]);
  });

  test("a room without the methods the package calls is a TypeError naming the method", () => {
    const room = { connect: async () => {}, on: () => {}, off: () => {} };
    expect(() => createConnectionActor({ ...options(), room: room as never })).toThrow(
      new TypeError("the room has no disconnect() method"),
    );
  });
});

describe("the package's actors without their dependencies", () => {
  test("fail with an explanation instead of crashing the machine", async () => {
    const actor = createActor(connectionMachine.provide({ actors: connectionActors }), { input: {} }).start();
    actor.send({ type: "START" });
    const failed = await waitFor(actor, (s) => s.matches("Failed"), { timeout: 1000 });
    expect(failed.value).toEqual({ Failed: "OpenIdError" });
    const error = failed.context.error as FailToGetOpenIdToken;
    expect(error).toBeInstanceOf(FailToGetOpenIdToken);
    expect(String(error.cause)).toMatch(/dependencies are missing: create the actor with createConnectionActor\(\)/);
    actor.stop();
  });
});

describe("a signal aborted before the Connection is made", () => {
  test("disposes of it at once: nothing is started, the observables are complete, start() rejects", async () => {
    const room = new FakeRoom();
    const connection = new Connection({
      ...options(),
      livekitRoomFactory: () => room,
      signal: AbortSignal.abort(),
    });
    let completed = false;
    connection.state$.subscribe({ complete: () => (completed = true) });
    expect(completed).toBe(true);
    expect(connection.actor.getSnapshot().value).toBe("Disposed");
    await expect(connection.start()).rejects.toThrow(/disposed/);
    await expect(connection.stop()).resolves.toBeUndefined();
    expect(room.disconnectCalls).toBe(0);
    expect(server.requests).toHaveLength(0);
  });
});
