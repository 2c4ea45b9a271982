/**
 * Beyond Element Call (issue 9): a lost connection is made again by itself under a reconnect policy, and a known
 * SFU config is used again while its JWT is valid. The reconnect waits run on xstate's SimulatedClock, so each
 * wait is checked to the millisecond without a timed assertion.
 */
import { ConnectionError, DisconnectReason } from "livekit-client";
import { SimulatedClock, waitFor } from "xstate";
import {
  ConnectionLostError,
  ConnectionState,
  DEFAULT_JWT_MARGIN_MS,
  FailToGetOpenIdToken,
  LivekitConnectionError,
  PeerConnectionTimeoutError,
  SFURoomCreationRestrictedError,
  createConnectionActor,
  type CallError,
  type ConnectionOpts,
} from "../../src";
import { FakeRoom, flush } from "../support/fakeRoom";
import {
  DEVICE_ID,
  GET_TOKEN_PATH,
  JWT,
  MEMBER_ID,
  OPENID_PATH,
  ROOM_ID,
  SERVICE_PATH,
  SFU_GET_PATH,
  SFU_URL,
  USER_ID,
  answer,
  makeConnection,
  matrixClient,
  type Harness,
} from "../support/harness";
import { LoopbackServer, sendJson, type Handler } from "../support/loopbackServer";
import { makeLivekitJwt } from "../support/tokens";
import { waitUntil } from "../support/waitUntil";

const server = LoopbackServer.forThisFile();
beforeEach(() => {
  server.always(OPENID_PATH, answer.openId).always(GET_TOKEN_PATH, answer.sfuConfig);
});

const { Initialized, FetchingConfig, Stopped } = ConnectionState;
const {
  LivekitDisconnected: disconnected,
  LivekitConnecting: connecting,
  LivekitConnected: connected,
} = ConnectionState;

const nowS = (): number => Math.floor(Date.now() / 1000);

/** A JWT of the call's room that expires `inS` seconds from now; `label` tells two of them apart. */
function jwtExpiringIn(inS: number, label = "jwt"): string {
  return makeLivekitJwt({ sub: "alice-identity", room: "alias-of-the-call", expiresInS: inS, extra: { jti: label } });
}

/** An auth service that issues a new JWT (valid `inS` seconds) for every request, and keeps them in order. */
function issuing(inS = 3600): { issued: string[]; handler: Handler } {
  const issued: string[] = [];
  const handler: Handler = (_, res) => {
    const jwt = jwtExpiringIn(inS, `issued-${issued.length + 1}`);
    issued.push(jwt);
    sendJson(res, 200, { url: SFU_URL, jwt });
  };
  return { issued, handler };
}

type ClockedHarness = Harness & { clock: SimulatedClock };

/** A connection whose reconnect waits run on a SimulatedClock, connected once. */
async function connectedWithClock(opts: Partial<ConnectionOpts<FakeRoom>> = {}): Promise<ClockedHarness> {
  const clock = new SimulatedClock();
  const h = makeConnection(server, { clock, ...opts });
  h.room.autoConnect = "succeed";
  await h.connection.start();
  expect(h.connection.state$.value).toBe(connected);
  return { ...h, clock };
}

const value = (h: Harness): unknown => h.connection.actor.getSnapshot().value;
const isWaiting = (h: Harness): boolean => h.connection.actor.getSnapshot().matches("WaitingToReconnect");

/** Waits until the connection waits to reconnect again, after `connects` calls of room.connect in all. */
async function waitingAfter(h: Harness, connects: number): Promise<void> {
  await waitUntil(
    () => isWaiting(h) && h.room.connectCalls.length === connects,
    `the wait to reconnect after ${connects} connects`,
  );
}

/** Advances the clock to one ms short of `delayMs` (no attempt yet), then to it: the attempt begins at once. */
async function expectAttemptAfter(h: ClockedHarness, delayMs: number): Promise<void> {
  const before = h.room.connectCalls.length;
  h.clock.increment(delayMs - 1);
  await flush();
  expect(h.room.connectCalls).toHaveLength(before);
  expect(isWaiting(h)).toBe(true);
  h.clock.increment(1);
  await flush();
  expect(h.room.connectCalls).toHaveLength(before + 1);
}

describe("reconnecting a lost connection", () => {
  test.each<[string, DisconnectReason | null]>([
    ["SIGNAL_CLOSE", DisconnectReason.SIGNAL_CLOSE],
    ["no reason", null],
  ])(
    "lost with %s: waits 1 s (the default) shown as disconnected, then connects again with the kept JWT, no request and no start()",
    async (_name, reason) => {
      const h = await connectedWithClock();
      const requests = server.requests.length;
      h.room.lose(reason);
      await flush();
      expect(value(h)).toBe("WaitingToReconnect");
      expect(h.connection.state$.value).toBe(disconnected);
      await expectAttemptAfter(h, 1000);
      await waitUntil(() => h.connection.state$.value === connected, "connected again");
      expect(h.states).toEqual([
        Initialized,
        FetchingConfig,
        disconnected,
        connecting,
        connected,
        disconnected,
        connecting,
        connected,
      ]);
      expect(server.requests).toHaveLength(requests); // neither the homeserver nor the auth service was asked
      expect(h.room.connectCalls).toEqual([
        { url: SFU_URL, token: JWT },
        { url: SFU_URL, token: JWT },
      ]);
      await h.connection.stop();
    },
  );

  test.each(["DUPLICATE_IDENTITY", "PARTICIPANT_REMOVED", "ROOM_DELETED", "CLIENT_INITIATED"] as const)(
    "a connection ended on purpose (%s) is not made again: it stays disconnected",
    async (reason) => {
      const h = await connectedWithClock();
      h.room.lose(DisconnectReason[reason]);
      await flush();
      h.clock.increment(10 * 60_000);
      await flush();
      expect(value(h)).toEqual({ Livekit: { room: "lost", delayedLeave: "NotRequested" } });
      expect(h.connection.state$.value).toBe(disconnected);
      expect(h.room.connectCalls).toHaveLength(1);
      await h.connection.stop();
    },
  );

  test("reconnect: false: a lost connection stays disconnected, as in Element Call", async () => {
    const h = await connectedWithClock({ reconnect: false });
    h.room.lose();
    await flush();
    h.clock.increment(10 * 60_000);
    await flush();
    expect(value(h)).toEqual({ Livekit: { room: "lost", delayedLeave: "NotRequested" } });
    expect(h.states.at(-1)).toBe(disconnected);
    expect(h.room.connectCalls).toHaveLength(1);
    await h.connection.stop();
  });

  test("without a clock option the real timers run the wait: a lost connection is connected again", async () => {
    const h = makeConnection(server, { reconnect: { initialDelayMs: 1 } });
    h.room.autoConnect = "succeed";
    await h.connection.start();
    h.room.lose();
    await waitUntil(() => h.room.connectCalls.length === 2 && h.connection.state$.value === connected, "reconnected");
    await h.connection.stop();
  });

  test("every attempt failing: exactly maxAttempts connects, waits doubling up to maxDelayMs, then ConnectionLostError with the last failure as cause", async () => {
    const h = await connectedWithClock({ reconnect: { maxAttempts: 3, initialDelayMs: 100, maxDelayMs: 250 } });
    h.room.nextConnects.push(
      ConnectionError.internal("attempt 1 failed"),
      ConnectionError.internal("attempt 2 failed"),
      ConnectionError.internal("attempt 3 failed"),
    );
    h.room.lose();
    await flush();
    await expectAttemptAfter(h, 100);
    await waitingAfter(h, 2);
    await expectAttemptAfter(h, 200);
    await waitingAfter(h, 3);
    await expectAttemptAfter(h, 250); // 400, capped
    await waitUntil(() => h.connection.actor.getSnapshot().matches("Failed"), "the connection to fail");
    expect(value(h)).toEqual({ Failed: "ConnectionLost" });

    const error = h.connection.state$.value as ConnectionLostError;
    expect(error).toBeInstanceOf(ConnectionLostError);
    expect(error.code).toBe("CONNECTION_LOST_ERROR");
    expect(error.message).toBe("Connection lost");
    expect(error.cause).toBeInstanceOf(LivekitConnectionError);
    expect(((error.cause as CallError).cause as Error).message).toBe("attempt 3 failed");
    // Each failed attempt shows as connecting, then disconnected while waiting: no error until the last.
    expect(h.states.slice(4)).toEqual([
      connected,
      disconnected,
      connecting,
      disconnected,
      connecting,
      disconnected,
      connecting,
      error,
    ]);
    h.clock.increment(10 * 60_000);
    await flush();
    expect(h.room.connectCalls).toHaveLength(4); // the first connect and three attempts
  });

  test("after ConnectionLostError, start() connects again", async () => {
    const h = await connectedWithClock({ reconnect: { maxAttempts: 1, initialDelayMs: 10 } });
    h.room.nextConnects.push(ConnectionError.internal("the SFU is gone"));
    h.room.lose();
    await flush();
    await expectAttemptAfter(h, 10);
    await waitUntil(() => h.connection.state$.value instanceof ConnectionLostError, "ConnectionLostError");
    h.room.autoConnect = "succeed";
    await h.connection.start();
    expect(h.connection.state$.value).toBe(connected);
    await h.connection.stop();
  });

  test("stop() while waiting goes through Stopping to Stopped, and no attempt follows", async () => {
    const h = await connectedWithClock();
    h.room.lose();
    await flush();
    expect(isWaiting(h)).toBe(true);
    await h.connection.stop();
    expect(value(h)).toBe("Stopped");
    expect(h.states.slice(4)).toEqual([connected, disconnected, Stopped]);
    expect(h.logger.lines.filter((l) => / state (Stopping|Stopped)/.test(l))).toEqual([
      expect.stringMatching(/ state Stopping\.ThenStop$/),
      expect.stringMatching(/ state Stopped$/),
    ]);
    h.clock.increment(10 * 60_000);
    await flush();
    expect(h.room.connectCalls).toHaveLength(1);
  });

  test("disposing of the connection while waiting ends it: no attempt follows", async () => {
    const controller = new AbortController();
    const h = await connectedWithClock({ signal: controller.signal });
    h.room.lose();
    await flush();
    controller.abort();
    await waitUntil(() => value(h) === "Disposed", "Disposed");
    h.clock.increment(10 * 60_000);
    await flush();
    expect(h.room.connectCalls).toHaveLength(1);
  });

  test("start() while waiting connects at once, without waiting for the delay", async () => {
    const h = await connectedWithClock();
    h.room.lose();
    await flush();
    await h.connection.start(); // the clock is never advanced
    expect(h.connection.state$.value).toBe(connected);
    expect(h.room.connectCalls).toHaveLength(2);
    h.clock.increment(10 * 60_000);
    await flush();
    expect(h.room.connectCalls).toHaveLength(2); // the wait's timer is gone
    await h.connection.stop();
  });

  test("start() while waiting resets the attempts: if its run fails, start() rejects with that failure and reconnecting ends", async () => {
    const h = await connectedWithClock({ reconnect: { maxAttempts: 3, initialDelayMs: 100 } });
    h.room.nextConnects.push(ConnectionError.internal("attempt 1 failed"));
    h.room.lose();
    await flush();
    await expectAttemptAfter(h, 100);
    await waitingAfter(h, 2);
    h.room.autoConnect = ConnectionError.timeout("room connection has timed out (signal)");
    await expect(h.connection.start()).rejects.toBeInstanceOf(PeerConnectionTimeoutError);
    expect(value(h)).toEqual({ Failed: "PeerConnectionTimeout" });
    h.clock.increment(10 * 60_000);
    await flush();
    expect(h.room.connectCalls).toHaveLength(3);
  });

  test("start() during a reconnect attempt joins it and resolves once connected", async () => {
    const h = await connectedWithClock();
    h.room.autoConnect = undefined; // the test completes the attempt's connect
    h.room.lose();
    await flush();
    await expectAttemptAfter(h, 1000);
    await waitUntil(() => h.room.connectPending, "the attempt's connect");
    let resolved = false;
    const started = h.connection.start().then(() => (resolved = true));
    await flush();
    expect(resolved).toBe(false);
    h.room.succeedConnect();
    await started;
    expect(h.connection.state$.value).toBe(connected);
    expect(h.room.connectCalls).toHaveLength(2); // joined, not a connect of its own
    await h.connection.stop();
  });

  test("start() during the last reconnect attempt rejects with the ConnectionLostError state$ shows when it fails", async () => {
    const h = await connectedWithClock({ reconnect: { maxAttempts: 1, initialDelayMs: 10 } });
    h.room.autoConnect = undefined;
    h.room.lose();
    await flush();
    await expectAttemptAfter(h, 10);
    await waitUntil(() => h.room.connectPending, "the attempt's connect");
    const started = h.connection.start().catch((e: unknown) => e);
    h.room.failConnect(ConnectionError.internal("the SFU is gone"));
    const error = await started;
    expect(error).toBeInstanceOf(ConnectionLostError);
    expect(error).toBe(h.connection.state$.value);
  });

  test("an attempt that fails to fetch a config (the JWT expires within the margin) counts, shown as FetchingConfig then disconnected", async () => {
    server.always(GET_TOKEN_PATH, issuing(30).handler); // 30 s left: not reusable under the 60 s margin
    const h = await connectedWithClock({ reconnect: { maxAttempts: 2, initialDelayMs: 100 } });
    server
      .always(GET_TOKEN_PATH, answer.status(401, "M_UNAUTHORIZED"))
      .always(SFU_GET_PATH, answer.status(401, "M_UNAUTHORIZED"));
    h.room.lose();
    await flush();
    h.clock.increment(100);
    await waitUntil(() => isWaiting(h) && server.to(GET_TOKEN_PATH).length === 2, "the first attempt to fail");
    h.clock.increment(200);
    await waitUntil(() => h.connection.actor.getSnapshot().matches("Failed"), "the connection to fail");
    const error = h.connection.state$.value as ConnectionLostError;
    expect(error).toBeInstanceOf(ConnectionLostError);
    expect(error.cause).toBeInstanceOf(FailToGetOpenIdToken);
    expect(h.states.slice(4)).toEqual([connected, disconnected, FetchingConfig, disconnected, FetchingConfig, error]);
    expect(server.to(OPENID_PATH)).toHaveLength(3); // the first run and two attempts
    expect(h.room.connectCalls).toHaveLength(1);
  });

  test("a reconnect that succeeds resets the count: the next loss gets every attempt again, from initialDelayMs", async () => {
    const h = await connectedWithClock({ reconnect: { maxAttempts: 2, initialDelayMs: 100, maxDelayMs: 1000 } });
    h.room.nextConnects.push(ConnectionError.internal("attempt 1 failed"), "succeed");
    h.room.lose();
    await flush();
    await expectAttemptAfter(h, 100);
    await waitingAfter(h, 2);
    await expectAttemptAfter(h, 200);
    await waitUntil(() => h.connection.state$.value === connected, "connected again");

    h.room.nextConnects.push(ConnectionError.internal("again 1"), ConnectionError.internal("again 2"));
    h.room.lose();
    await flush();
    expect(isWaiting(h)).toBe(true);
    await expectAttemptAfter(h, 100);
    await waitingAfter(h, 4);
    await expectAttemptAfter(h, 200);
    await waitUntil(() => h.connection.state$.value instanceof ConnectionLostError, "ConnectionLostError");
    expect(h.room.connectCalls).toHaveLength(5);
  });

  test("an SFU that forgot the room (404 on the kept JWT) during a reconnect: a fresh config is fetched and the attempt connects", async () => {
    const { issued, handler } = issuing();
    server.always(GET_TOKEN_PATH, handler);
    const h = await connectedWithClock();
    h.room.nextConnects.push(ConnectionError.notAllowed("requested room does not exist", 404), "succeed");
    h.room.lose();
    await flush();
    await expectAttemptAfter(h, 1000);
    await waitUntil(() => h.connection.state$.value === connected, "connected again");
    expect(h.states.slice(4)).toEqual([
      connected,
      disconnected,
      connecting,
      FetchingConfig,
      disconnected,
      connecting,
      connected,
    ]);
    expect(h.room.connectCalls.map((c) => c.token)).toEqual([issued[0], issued[0], issued[1]]);
    await h.connection.stop();
  });
});

describe("the JWT's lifetime", () => {
  test("start() after a failure reuses the config while its JWT is valid: no request, the same JWT", async () => {
    const h = makeConnection(server);
    h.room.autoConnect = ConnectionError.timeout("room connection has timed out (signal)");
    await expect(h.connection.start()).rejects.toBeInstanceOf(PeerConnectionTimeoutError);
    h.room.autoConnect = "succeed";
    await h.connection.start();
    expect(h.states.slice(5)).toEqual([disconnected, connecting, connected]);
    expect(server.to(OPENID_PATH)).toHaveLength(1);
    expect(server.to(GET_TOKEN_PATH)).toHaveLength(1);
    expect(h.room.connectCalls.map((c) => c.token)).toEqual([JWT, JWT]);
    await h.connection.stop();
  });

  test.each<[string, number | undefined, number, "reused" | "fetched"]>([
    ["a JWT with 30 s left under the default 60 s margin is fetched anew", undefined, 30, "fetched"],
    ["jwtMarginMs: 0 reuses a JWT with 30 s left", 0, 30, "reused"],
    ["jwtMarginMs of 2 h fetches a one-hour JWT anew", 2 * 3600_000, 3600, "fetched"],
  ])("restart from Stopped: %s", async (_name, jwtMarginMs, validForS, outcome) => {
    const { issued, handler } = issuing(validForS);
    server.always(GET_TOKEN_PATH, handler);
    const h = makeConnection(server, { jwtMarginMs });
    h.room.autoConnect = "succeed";
    await h.connection.start();
    await h.connection.stop();
    await h.connection.start();
    const fetches = outcome === "fetched" ? 2 : 1;
    expect(server.to(OPENID_PATH)).toHaveLength(fetches);
    expect(server.to(GET_TOKEN_PATH)).toHaveLength(fetches);
    expect(h.room.connectCalls.map((c) => c.token)).toEqual([issued[0], issued[fetches - 1]]);
    expect(h.states.slice(5)).toEqual([
      Stopped,
      ...(outcome === "fetched" ? [FetchingConfig] : []),
      disconnected,
      connecting,
      connected,
    ]);
    await h.connection.stop();
  });

  test("an existingSFUConfig whose JWT has expired is never handed to room.connect: a fresh config is fetched", async () => {
    const expired = jwtExpiringIn(-10, "expired");
    const h = makeConnection(server, {
      existingSFUConfig: { url: SFU_URL, jwt: expired, livekitAlias: "alias-of-the-call", livekitIdentity: "alice" },
    });
    h.room.autoConnect = "succeed";
    await h.connection.start();
    expect(h.states).toEqual([Initialized, FetchingConfig, disconnected, connecting, connected]);
    expect(h.room.connectCalls).toEqual([{ url: SFU_URL, token: JWT }]);
    await h.connection.stop();
  });

  const given = (): ConnectionOpts<FakeRoom>["existingSFUConfig"] => ({
    url: SFU_URL,
    jwt: jwtExpiringIn(3600, "given"),
    livekitAlias: "alias-of-the-call",
    livekitIdentity: "alice-identity",
  });

  test("a 404 (room does not exist) on a given, still-valid JWT fetches a fresh config once and connects", async () => {
    const existingSFUConfig = given()!;
    const h = makeConnection(server, { existingSFUConfig });
    h.room.nextConnects.push(ConnectionError.notAllowed("requested room does not exist", 404), "succeed");
    await h.connection.start();
    expect(h.states).toEqual([
      Initialized,
      disconnected,
      connecting,
      FetchingConfig,
      disconnected,
      connecting,
      connected,
    ]);
    expect(h.room.connectCalls.map((c) => c.token)).toEqual([existingSFUConfig.jwt, JWT]);
    expect(server.to(GET_TOKEN_PATH)).toHaveLength(1);
    await h.connection.stop();
  });

  test("the same 404 on the fresh JWT is SFURoomCreationRestrictedError: one refetch, no loop", async () => {
    const h = makeConnection(server, { existingSFUConfig: given() });
    h.room.nextConnects.push(
      ConnectionError.notAllowed("requested room does not exist", 404),
      ConnectionError.notAllowed("requested room does not exist", 404),
    );
    const error = await h.connection.start().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SFURoomCreationRestrictedError);
    expect(h.states).toEqual([Initialized, disconnected, connecting, FetchingConfig, disconnected, connecting, error]);
    expect(server.to(GET_TOKEN_PATH)).toHaveLength(1);
    expect(h.room.connectCalls).toHaveLength(2);
  });

  test("a 401 on a JWT kept from before a stop fetches a fresh config once and connects", async () => {
    const { issued, handler } = issuing();
    server.always(GET_TOKEN_PATH, handler);
    const h = makeConnection(server);
    h.room.autoConnect = "succeed";
    await h.connection.start();
    await h.connection.stop();
    h.room.nextConnects.push(ConnectionError.notAllowed("invalid token", 401), "succeed");
    await h.connection.start();
    expect(h.states.slice(5)).toEqual([
      Stopped,
      disconnected,
      connecting,
      FetchingConfig,
      disconnected,
      connecting,
      connected,
    ]);
    expect(h.room.connectCalls.map((c) => c.token)).toEqual([issued[0], issued[0], issued[1]]);
    await h.connection.stop();
  });

  describe("createConnectionActor", () => {
    const options = () => ({
      client: matrixClient(server),
      transport: { type: "livekit" as const, livekit_service_url: server.url + SERVICE_PATH },
      roomId: ROOM_ID,
      ownMembershipIdentity: { userId: USER_ID, deviceId: DEVICE_ID, memberId: MEMBER_ID },
    });

    /** Connects, stops and connects again; the snapshot's context after each connect. */
    async function twoRuns(jwt: string) {
      server.always(GET_TOKEN_PATH, (_, res) => sendJson(res, 200, { url: SFU_URL, jwt }));
      const room = new FakeRoom();
      room.autoConnect = "succeed";
      const actor = createConnectionActor({ ...options(), room }).start();
      const connectedOnce = async () => {
        actor.send({ type: "START" });
        return (await waitFor(actor, (s) => s.matches({ Livekit: { room: "connected" } }), { timeout: 2000 })).context;
      };
      const first = await connectedOnce();
      actor.send({ type: "STOP" });
      await waitFor(actor, (s) => s.matches("Stopped"), { timeout: 2000 });
      const second = await connectedOnce();
      actor.send({ type: "DISPOSE" });
      return { first, second, room };
    }

    test("the context shows the JWT's expiry, the margin, and whether a run reused the config", async () => {
      const exp = nowS() + 3600;
      const jwt = makeLivekitJwt({ sub: "alice-identity", room: "alias-of-the-call", extra: { exp } });
      const { first, second, room } = await twoRuns(jwt);
      expect(first.sfuConfig!.expiresAt).toBe(exp * 1000);
      expect(first.jwtMarginMs).toBe(DEFAULT_JWT_MARGIN_MS);
      expect(first.sfuConfigReused).toBe(false);
      expect(second.sfuConfigReused).toBe(true);
      expect(second.sfuConfig!.expiresAt).toBe(exp * 1000);
      expect(room.connectCalls.map((c) => c.token)).toEqual([jwt, jwt]);
      expect(server.to(GET_TOKEN_PATH)).toHaveLength(1);
    });

    test("a JWT without exp has no expiry and is always reused", async () => {
      const jwt = makeLivekitJwt({ sub: "alice-identity", room: "alias-of-the-call", extra: { exp: undefined } });
      const { first, second } = await twoRuns(jwt);
      expect(first.sfuConfig!.expiresAt).toBeUndefined();
      expect(second.sfuConfigReused).toBe(true);
      expect(server.to(GET_TOKEN_PATH)).toHaveLength(1);
    });
  });
});
