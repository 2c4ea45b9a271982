import { ConnectionError, RoomEvent } from "livekit-client";
import { createClient } from "matrix-js-sdk";
import { getEventListeners } from "node:events";
import { inspect } from "node:util";
import { fromCallback, fromPromise } from "xstate";
import {
  Connection,
  ConnectionState,
  connectionActors,
  connectionDepsOf,
  connectionMachine,
  getSFUConfigWithOpenID,
  mapConnectError,
  reveal,
  type ConnectRoomInput,
  FailToGetOpenIdToken,
  InsufficientCapacityError,
  SFURoomCreationRestrictedError,
  UnknownCallError,
  type ConnectionOpts,
  type CallError,
} from "../../src";
import { FakeRoom, flush } from "../support/fakeRoom";
import {
  ACCESS_TOKEN,
  GET_TOKEN_PATH,
  JWT,
  MATRIX_ACCESS_TOKEN,
  OPENID_PATH,
  ROOM_ID,
  SERVICE_PATH,
  SFU_GET_PATH,
  SFU_URL,
  answer,
  makeConnection,
  matrixClient,
  USER_ID,
} from "../support/harness";
import { strings } from "../support/strings";
import { LoopbackServer, hang, sendJson, type Handler } from "../support/loopbackServer";
import { makeLivekitJwt, openIdToken } from "../support/tokens";
import { waitUntil } from "../support/waitUntil";

const server = LoopbackServer.forThisFile();
beforeEach(() => {
  server.always(OPENID_PATH, answer.openId).always(GET_TOKEN_PATH, answer.sfuConfig);
});

const { Initialized, FetchingConfig, Stopped } = ConnectionState;
const { LivekitDisconnected, LivekitConnecting, LivekitConnected, LivekitReconnecting } = ConnectionState;
const { LivekitSignalReconnecting } = ConnectionState;

describe("Connection happy path", () => {
  test("state$ goes Initialized → FetchingConfig → disconnected → connecting → connected, and start() resolves", async () => {
    const h = makeConnection(server);
    h.room.autoConnect = "succeed";
    expect(h.connection.state$.value).toBe(Initialized);
    const started = h.connection.start();
    expect(h.connection.state$.value).toBe(FetchingConfig); // synchronously
    await started;
    expect(h.states).toEqual([Initialized, FetchingConfig, LivekitDisconnected, LivekitConnecting, LivekitConnected]);
    expect(h.room.connectCalls).toEqual([{ url: SFU_URL, token: JWT }]);
    expect(h.connection.livekitAlias).toBe("alias-of-the-call");
    await h.connection.stop();
    expect(h.states.at(-1)).toBe(Stopped);
  });

  test("a late subscriber gets the current value at once", async () => {
    const h = makeConnection(server);
    h.room.autoConnect = "succeed";
    await h.connection.start();
    const seen: unknown[] = [];
    h.connection.state$.subscribe((s) => seen.push(s)).unsubscribe();
    expect(seen).toEqual([LivekitConnected]);
    await h.connection.stop();
  });

  test("with existingSFUConfig nothing is fetched and the connect uses that config", async () => {
    const jwt = makeLivekitJwt({ sub: "me", room: "existing-alias" });
    const h = makeConnection(server, {
      existingSFUConfig: { url: "wss://sfu.example.org", jwt, livekitAlias: "existing-alias", livekitIdentity: "me" },
    });
    h.room.autoConnect = "succeed";
    await h.connection.start();
    expect(server.requests).toHaveLength(0);
    expect(h.states).toEqual([Initialized, LivekitDisconnected, LivekitConnecting, LivekitConnected]);
    expect(h.room.connectCalls).toEqual([{ url: "wss://sfu.example.org", token: jwt }]);
    expect(h.connection.livekitAlias).toBe("existing-alias");
    await h.connection.stop();
  });

  test("LiveKit's reconnect states are mirrored; with reconnect: false a final loss stays disconnected, not an error", async () => {
    const h = makeConnection(server, { reconnect: false });
    h.room.autoConnect = "succeed";
    await h.connection.start();
    h.room.signalReconnecting();
    h.room.reconnected();
    h.room.reconnecting();
    h.room.reconnected();
    h.room.signalReconnecting();
    h.room.reconnecting();
    h.room.lose();
    await flush();
    expect(h.states.slice(4)).toEqual([
      LivekitConnected,
      LivekitSignalReconnecting,
      LivekitConnected,
      LivekitReconnecting,
      LivekitConnected,
      LivekitSignalReconnecting,
      LivekitReconnecting,
      LivekitDisconnected,
    ]);
    await flush();
    expect(h.connection.actor.getSnapshot().value).toEqual({ Livekit: { room: "lost", delayedLeave: "NotRequested" } });
    expect(h.room.connectCalls).toHaveLength(1);
    await h.connection.stop();
  });

  test("with reconnect: false, start() after a lost connection connects again with the still-valid JWT", async () => {
    const h = makeConnection(server, { reconnect: false });
    h.room.autoConnect = "succeed";
    await h.connection.start();
    h.room.lose();
    await flush();
    expect(h.connection.state$.value).toBe(LivekitDisconnected);
    await h.connection.start();
    expect(h.connection.state$.value).toBe(LivekitConnected);
    expect(server.to(GET_TOKEN_PATH)).toHaveLength(1);
    expect(h.room.connectCalls).toEqual([
      { url: SFU_URL, token: JWT },
      { url: SFU_URL, token: JWT },
    ]);
    await h.connection.stop();
  });

  test("restart from Stopped reuses the SFU config while its JWT is valid: no OpenID or auth-service request", async () => {
    const h = makeConnection(server);
    h.room.autoConnect = "succeed";
    await h.connection.start();
    await h.connection.stop();
    await h.connection.start();
    expect(h.states).toEqual([
      Initialized,
      FetchingConfig,
      LivekitDisconnected,
      LivekitConnecting,
      LivekitConnected,
      Stopped,
      LivekitDisconnected,
      LivekitConnecting,
      LivekitConnected,
    ]);
    expect(server.to(OPENID_PATH)).toHaveLength(1);
    expect(server.to(GET_TOKEN_PATH)).toHaveLength(1);
    expect(h.room.connectCalls.map((c) => c.token)).toEqual([JWT, JWT]);
    await h.connection.stop();
  });
});

describe("Connection failures", () => {
  test("a connect refused with 404 ends in SFURoomCreationRestrictedError and start() rejects with it", async () => {
    const h = makeConnection(server);
    h.room.autoConnect = ConnectionError.notAllowed("requested room does not exist", 404);
    const error = await h.connection.start().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SFURoomCreationRestrictedError);
    expect(h.states).toEqual([Initialized, FetchingConfig, LivekitDisconnected, LivekitConnecting, error]);
    expect((error as CallError).message).toBe("Failed to create call");
  });

  test("the room's 'disconnected' report during a failing connect is not shown before the error", async () => {
    const h = makeConnection(server);
    h.room.autoConnect = ConnectionError.serverUnreachable("node full", 503);
    await expect(h.connection.start()).rejects.toBeInstanceOf(InsufficientCapacityError);
    expect(h.states.slice(3)).toEqual([LivekitConnecting, expect.any(InsufficientCapacityError)]);
  });

  test("an auth service failure on both endpoints ends in FailToGetOpenIdToken with the HTTP details", async () => {
    server.reset();
    server
      .always(OPENID_PATH, answer.openId)
      .always(GET_TOKEN_PATH, answer.status(401, "M_UNAUTHORIZED"))
      .always(SFU_GET_PATH, answer.status(401, "M_UNAUTHORIZED"));
    const h = makeConnection(server);
    const error = (await h.connection.start().catch((e: unknown) => e)) as FailToGetOpenIdToken;
    expect(error).toBeInstanceOf(FailToGetOpenIdToken);
    expect(error.code).toBe("OPEN_ID_ERROR");
    expect(error.cause).toMatchObject({ httpStatus: 401, errcode: "M_UNAUTHORIZED" });
    expect(h.room.connectCalls).toHaveLength(0);
    // 401 is final: one request per endpoint.
    expect(server.to(GET_TOKEN_PATH)).toHaveLength(1);
    expect(server.to(SFU_GET_PATH)).toHaveLength(1);
  });

  test("START from a failed state tries again", async () => {
    const h = makeConnection(server);
    h.room.autoConnect = ConnectionError.timeout("room connection has timed out (signal)");
    await expect(h.connection.start()).rejects.toThrow("Connection timeout");
    h.room.autoConnect = "succeed";
    await h.connection.start();
    expect(h.connection.state$.value).toBe(LivekitConnected);
    await h.connection.stop();
  });
});

describe("Connection options and disposal", () => {
  test("malformed options are a TypeError at construction", () => {
    const base = {
      transport: { type: "livekit" as const, livekit_service_url: server.url },
      client: matrixClient(server),
      roomId: ROOM_ID,
      ownMembershipIdentity: { userId: "@a:b", deviceId: "D", memberId: "m" },
      livekitRoomFactory: () => new FakeRoom(),
    };
    expect(() => new Connection({ ...base, roomId: "" })).toThrow(new TypeError("roomId must be a non-empty string"));
    expect(() => new Connection({ ...base, client: {} as never })).toThrow(/getOpenIdToken/);
    expect(() => new Connection({ ...base, livekitRoomFactory: undefined as never })).toThrow(/livekitRoomFactory/);
    expect(
      () =>
        new Connection({
          ...base,
          existingSFUConfig: { url: SFU_URL, jwt: "not-a-jwt", livekitAlias: "", livekitIdentity: "" },
        }),
    ).toThrow(/three non-empty parts/);
  });

  test("bad options are refused before the room factory is called", () => {
    const factory = jest.fn(() => new FakeRoom());
    expect(
      () =>
        new Connection({
          transport: { type: "livekit", livekit_service_url: server.url },
          client: matrixClient(server),
          roomId: "",
          ownMembershipIdentity: { userId: "@a:b", deviceId: "D", memberId: "m" },
          livekitRoomFactory: factory,
        }),
    ).toThrow(TypeError);
    expect(factory).not.toHaveBeenCalled();
  });

  test("state$ and remoteParticipants$ are read-only views", () => {
    const h = makeConnection(server);
    expect((h.connection.state$ as unknown as { next?: unknown }).next).toBeUndefined();
    expect((h.connection.remoteParticipants$ as unknown as { next?: unknown }).next).toBeUndefined();
    expect(h.connection.remoteParticipants$.value).toEqual([]);
  });

  test("a plain-http auth service on another host fails with FailToGetOpenIdToken before any request", async () => {
    const h = makeConnection(server, {
      transport: { type: "livekit", livekit_service_url: "http://auth.example.org" + SERVICE_PATH },
    });
    const error = (await h.connection.start().catch((e: unknown) => e)) as FailToGetOpenIdToken;
    expect(error).toBeInstanceOf(FailToGetOpenIdToken);
    expect(error.cause).toMatchObject({ name: "InsecureTransportError" });
    expect(server.requests).toHaveLength(0); // not even the homeserver is asked for an OpenID token
  });

  test("remoteParticipants$ follows the room from construction on, through stop and restart", async () => {
    const h = makeConnection(server);
    const lists: string[][] = [];
    h.connection.remoteParticipants$.subscribe((ps) => lists.push(ps.map((p) => p.identity)));
    h.room.autoConnect = "succeed";
    await h.connection.start();
    h.room.addParticipant("bob");
    h.room.addParticipant("carol");
    h.room.removeParticipant("bob");
    await h.connection.stop();
    await h.connection.start();
    h.room.addParticipant("dave");
    expect(lists).toEqual([[], ["bob"], ["bob", "carol"], ["carol"], [], ["dave"]]);
    await h.connection.stop();
  });

  test("aborting the signal stops the room and completes both observables; nothing is emitted after", async () => {
    const controller = new AbortController();
    const h = makeConnection(server, { signal: controller.signal });
    h.room.autoConnect = "succeed";
    await h.connection.start();
    let completed = 0;
    h.connection.state$.subscribe({ complete: () => completed++ });
    h.connection.remoteParticipants$.subscribe({ complete: () => completed++ });
    const before = h.states.length;
    controller.abort();
    expect(completed).toBe(2);
    await flush();
    await flush();
    expect(h.room.disconnectCalls).toBe(1);
    expect(h.room.state).toBe("disconnected");
    h.room.addParticipant("late");
    expect(h.states).toHaveLength(before);
    expect(h.connection.actor.getSnapshot().status).toBe("done");
    expect(h.connection.actor.getSnapshot().value).toBe("Disposed");
    await expect(h.connection.start()).rejects.toThrow(/disposed/);
  });
});

describe("the machine is made once", () => {
  test("every Connection runs the same machine object: nothing is rebuilt per connection", () => {
    const a = makeConnection(server).connection.actor.src;
    const b = makeConnection(server).connection.actor.src;
    expect(a).toBe(b);
  });

  test("an actor of one's own, provided once, gets the connection's room and can read the JWT", async () => {
    const seen: { url: string; jwt: string }[] = [];
    const machine = connectionMachine.provide({
      actors: {
        ...connectionActors,
        connectRoom: fromPromise<void, ConnectRoomInput>(async ({ input }) => {
          seen.push({ url: input.url, jwt: reveal(input.jwt) });
          await connectionDepsOf(input)
            .room.connect(input.url, reveal(input.jwt))
            .catch((e: unknown) => {
              throw mapConnectError(e, reveal(input.jwt));
            });
        }),
      },
    });
    const first = makeConnection(server, { machine });
    first.room.autoConnect = "succeed";
    await first.connection.start();
    expect(first.connection.state$.value).toBe(LivekitConnected);
    expect(seen).toEqual([{ url: SFU_URL, jwt: JWT }]);
    expect(first.room.connectCalls).toEqual([{ url: SFU_URL, token: JWT }]);

    const second = makeConnection(server, { machine });
    second.room.autoConnect = ConnectionError.notAllowed("requested room does not exist", 404);
    await expect(second.connection.start()).rejects.toBeInstanceOf(SFURoomCreationRestrictedError);
    expect(second.room.connectCalls).toHaveLength(1); // its own room, not the first one's
    await first.connection.stop();
  });
});

describe("secrets", () => {
  test.each([
    ["a connection that connects and stops", "succeed"],
    ["a connect refused with a 401 whose body quotes the token", "refused"],
    ["an auth service whose errors quote the OpenID token", "auth-fails"],
  ])(
    "neither the JWT, the OpenID access token nor the client's Matrix access token reaches logs, errors or inspection events: %s",
    async (_name, scenario) => {
      const events: unknown[] = [];
      if (scenario === "auth-fails") {
        const echo: Handler = (_, res) =>
          sendJson(res, 500, { errcode: "M_UNKNOWN", error: `rejected ${ACCESS_TOKEN}` });
        server.reset();
        server.always(OPENID_PATH, answer.openId).always(GET_TOKEN_PATH, echo).always(SFU_GET_PATH, echo);
      }
      const h = makeConnection(server, { inspect: (event) => events.push(event), retry: { maxAttempts: 1 } });
      h.room.autoConnect =
        scenario === "refused" ? ConnectionError.notAllowed(`invalid token: ${JWT}`, 401) : "succeed";
      await h.connection.start().catch(() => {});
      await h.connection.stop();
      const texts = [...strings(events), ...strings(h.states), ...h.logger.lines];
      expect(texts.length).toBeGreaterThan(100);
      expect(h.logger.lines.length).toBeGreaterThan(3);
      for (const secret of [JWT, JWT.split(".")[2]!, ACCESS_TOKEN, MATRIX_ACCESS_TOKEN]) {
        expect(texts.filter((t) => t.includes(secret))).toEqual([]);
      }
      if (scenario !== "succeed") expect(texts.some((t) => t.includes("[redacted]"))).toBe(true);
    },
  );

  /** A token with the characters encodings change, written the ways servers echo text. */
  const ODD_TOKEN = "tok/en+with=odd&chars~0123456789";
  const echoes: [string, string][] = [
    ["raw", ODD_TOKEN],
    ["JSON with \\/", ODD_TOKEN.replace(/\//g, "\\/")],
    [
      "JSON, every character \\uXXXX",
      [...ODD_TOKEN].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`).join(""),
    ],
    ["percent-encoded", encodeURIComponent(ODD_TOKEN)],
    ["percent-encoded, lower-case hex", encodeURIComponent(ODD_TOKEN).replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase())],
    ["base64", Buffer.from(ODD_TOKEN).toString("base64")],
    ["base64url", Buffer.from(ODD_TOKEN).toString("base64url")],
    ["HTML character references", [...ODD_TOKEN].map((c) => `&#${c.charCodeAt(0)};`).join("")],
  ];

  test.each(echoes)(
    "an OpenID access token echoed by the auth service (%s) reaches no log, error, state$ or inspection event",
    async (_encoding, echoed) => {
      const events: unknown[] = [];
      const echo: Handler = (_, res) => {
        res.writeHead(500, { "Content-Type": "text/plain", "X-Echo": encodeURIComponent(ODD_TOKEN) });
        res.end(`rejected ${echoed} (${echoed})`);
      };
      server.reset();
      server.always(GET_TOKEN_PATH, echo).always(SFU_GET_PATH, echo);
      const h = makeConnection(server, {
        client: { getOpenIdToken: async () => openIdToken(ODD_TOKEN) },
        inspect: (event) => events.push(event),
        retry: { maxAttempts: 2, initialDelayMs: 1 },
      });
      const error = await h.connection.start().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(FailToGetOpenIdToken);
      const texts = [...strings(events), ...strings(h.states), ...h.logger.lines, inspect(error, { depth: Infinity })];
      expect(texts.filter((t) => t.includes(echoed) || t.includes(ODD_TOKEN))).toEqual([]);
      // (base64 keeps the one or two characters it shares with the text around the token)
      expect(texts.some((t) => /rejected \S{0,2}\[redacted\]\S{0,3} \(\S{0,2}\[redacted\]/.test(t))).toBe(true);
    },
  );

  test("a Matrix access token sent in the query string is scrubbed from the homeserver's errors", async () => {
    server.reset();
    server.always(OPENID_PATH, (req, res) => sendJson(res, 500, { errcode: "M_UNKNOWN", error: `no: ${req.path}` }));
    const client = createClient({
      baseUrl: server.url,
      accessToken: MATRIX_ACCESS_TOKEN,
      userId: USER_ID,
      deviceId: "D",
      useAuthorizationHeader: false,
      logger: { debug() {}, info() {}, warn() {}, error() {}, trace() {}, getChild: () => undefined } as never,
    });
    const h = makeConnection(server, { client, retry: { maxAttempts: 1 } });
    const error = await h.connection.start().catch((e: unknown) => e);
    expect(server.requests[0]!.query).toContain(`access_token=${MATRIX_ACCESS_TOKEN}`); // in the query string
    const text = [inspect(error, { depth: Infinity }), ...h.logger.lines].join("\n");
    expect(text).toContain("[redacted]");
    expect(text).not.toContain(MATRIX_ACCESS_TOKEN);
  });
});

describe("time limits", () => {
  test.each<[string, Partial<ConnectionOpts<FakeRoom>>]>([
    ["a fetch that ignores its AbortSignal and never settles", { fetch: () => new Promise<Response>(() => {}) }],
    [
      "an answer whose body never ends",
      {
        fetch: async () => new Response(new ReadableStream({ start() {} }), { status: 200 }),
      },
    ],
  ])("the SFU config phase ends at timeouts.sfuConfigMs whatever the network stack does: %s", async (_name, opts) => {
    const h = makeConnection(server, { ...opts, timeouts: { sfuConfigMs: 150 } });
    const t0 = Date.now();
    const error = (await h.connection.start().catch((e: unknown) => e)) as FailToGetOpenIdToken;
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(error).toBeInstanceOf(FailToGetOpenIdToken);
    expect(error.cause).toMatchObject({
      name: "TimeoutError",
      message: "The SFU config request took longer than 150 ms",
    });
    expect(h.room.connectCalls).toHaveLength(0);
  });

  test("a getOpenIdToken() that never settles ends the OpenID phase at timeouts.openIdTokenMs", async () => {
    const h = makeConnection(server, {
      client: { getOpenIdToken: () => new Promise(() => {}) },
      timeouts: { openIdTokenMs: 150 },
    });
    const error = (await h.connection.start().catch((e: unknown) => e)) as FailToGetOpenIdToken;
    expect(error.cause).toMatchObject({ name: "TimeoutError" });
  });

  test("a Retry-After beyond the phase's time limit fails the phase at once, with the reason", async () => {
    server.reset();
    server
      .always(OPENID_PATH, answer.openId)
      .always(GET_TOKEN_PATH, answer.status(429, "M_LIMIT_EXCEEDED", {}, { "Retry-After": "30" }))
      .always(SFU_GET_PATH, answer.status(429, "M_LIMIT_EXCEEDED", {}, { "Retry-After": "30" }));
    const h = makeConnection(server, { timeouts: { sfuConfigMs: 5000 } });
    const t0 = Date.now();
    const error = (await h.connection.start().catch((e: unknown) => e)) as FailToGetOpenIdToken;
    expect(Date.now() - t0).toBeLessThan(1000); // not at the 5 s limit, and no retry at once either
    expect(error.cause).toMatchObject({ name: "RetryTooLateError" });
    expect((error.cause as Error).message).toMatch(/next attempt would come after the time limit \(in 30 s\)/);
    expect((error.cause as Error).cause).toMatchObject({ httpStatus: 429 });
    expect(server.to(GET_TOKEN_PATH)).toHaveLength(1);
  });

  test("a homeserver that never answers fails the OpenID phase after timeouts.openIdTokenMs", async () => {
    server.reset();
    server.always(OPENID_PATH, hang);
    const h = makeConnection(server, { timeouts: { openIdTokenMs: 150 } });
    const t0 = Date.now();
    const error = (await h.connection.start().catch((e: unknown) => e)) as FailToGetOpenIdToken;
    expect(Date.now() - t0).toBeGreaterThanOrEqual(145);
    expect(error).toBeInstanceOf(FailToGetOpenIdToken);
    expect(error.cause).toMatchObject({
      name: "TimeoutError",
      message: "The OpenID token request took longer than 150 ms",
    });
    expect(h.connection.actor.getSnapshot().value).toEqual({ Failed: "OpenIdError" });
  });

  test("an auth service that never answers fails after timeouts.sfuConfigMs and the request is aborted", async () => {
    server.reset();
    server.always(OPENID_PATH, answer.openId).always(GET_TOKEN_PATH, hang);
    const h = makeConnection(server, { timeouts: { sfuConfigMs: 150 } });
    const closed = server.nextAbort();
    const error = (await h.connection.start().catch((e: unknown) => e)) as FailToGetOpenIdToken;
    expect(error.cause).toMatchObject({ name: "TimeoutError" });
    await closed;
    expect(server.to(GET_TOKEN_PATH)[0]!.aborted).toBe(true);
    expect(h.room.connectCalls).toHaveLength(0);
  });

  test("a room.disconnect() that never finishes still reaches Stopped after timeouts.disconnectMs", async () => {
    const h = makeConnection(server, { timeouts: { disconnectMs: 100 } });
    h.room.autoConnect = "succeed";
    await h.connection.start();
    h.room.holdDisconnect = true;
    await h.connection.stop();
    expect(h.connection.state$.value).toBe(Stopped);
    expect(h.logger.lines.join("\n")).toMatch(/did not finish within 100 ms/);
  });

  test("a room.disconnect() that throws still reaches Stopped, with a warning", async () => {
    const h = makeConnection(server);
    h.room.autoConnect = "succeed";
    await h.connection.start();
    h.room.disconnectError = new Error("engine close failed");
    await h.connection.stop();
    expect(h.connection.state$.value).toBe(Stopped);
    expect(h.logger.lines.join("\n")).toMatch(/warn .*room.disconnect\(\) failed: Error: engine close failed/);
  });
});

describe("start() and stop() always settle", () => {
  test("a start() that joined LiveKit's reconnect resolves when LiveKit gives up (reconnect: false)", async () => {
    const h = makeConnection(server, { reconnect: false });
    h.room.autoConnect = "succeed";
    await h.connection.start();
    h.room.reconnecting();
    await flush();
    const joined = h.connection.start(); // ignored by the machine: a run is under way
    h.room.lose();
    await expect(joined).resolves.toBeUndefined();
    expect(h.connection.state$.value).toBe(LivekitDisconnected);
    await h.connection.stop();
  });

  test("start() resolves when the actor is stopped from outside instead of hanging", async () => {
    server.reset();
    server.always(OPENID_PATH, hang);
    const h = makeConnection(server);
    const started = h.connection.start();
    h.connection.actor.stop();
    await expect(started).resolves.toBeUndefined();
    await expect(h.connection.stop()).resolves.toBeUndefined();
  });
});

describe("a long-lived AbortSignal", () => {
  test("gathers no listeners over repeated start/stop, nor over repeated getSFUConfigWithOpenID calls", async () => {
    const controller = new AbortController();
    const h = makeConnection(server, { signal: controller.signal });
    h.room.autoConnect = "succeed";
    for (let i = 0; i < 50; i++) {
      await h.connection.start();
      await h.connection.stop();
    }
    expect(getEventListeners(controller.signal, "abort")).toHaveLength(1); // the Connection's own
    const signal = new AbortController().signal;
    const membership = { userId: USER_ID, deviceId: "D", memberId: "m" };
    for (let i = 0; i < 50; i++) {
      await getSFUConfigWithOpenID(matrixClient(server), membership, server.url + SERVICE_PATH, ROOM_ID, { signal });
    }
    expect(getEventListeners(signal, "abort")).toHaveLength(0);
  });
});

describe("the facade follows the chart, however it is driven", () => {
  test("a start() called by a state$ subscriber that sees a failure settles on the new run, not the old failure", async () => {
    const h = makeConnection(server);
    h.room.autoConnect = ConnectionError.timeout("room connection has timed out (signal)");
    let retried: Promise<void> | undefined;
    h.connection.state$.subscribe((s) => {
      if (s instanceof Error && !retried) {
        h.room.autoConnect = "succeed";
        retried = h.connection.start();
      }
    });
    await expect(h.connection.start()).rejects.toThrow("Connection timeout");
    await expect(retried).resolves.toBeUndefined();
    expect(h.connection.state$.value).toBe(LivekitConnected);
    await h.connection.stop();
  });

  test("a stop() called by a state$ subscriber that sees connected resolves at Stopped", async () => {
    const h = makeConnection(server);
    h.room.autoConnect = "succeed";
    let stopped: Promise<unknown> | undefined;
    h.connection.state$.subscribe((s) => {
      if (s === LivekitConnected && !stopped) {
        stopped = h.connection.stop().then(() => h.connection.actor.getSnapshot().value);
      }
    });
    await h.connection.start();
    await expect(stopped).resolves.toBe("Stopped");
  });

  test("a stop after a failure still disconnects the room, as Element Call's stop() does", async () => {
    const h = makeConnection(server);
    h.room.autoConnect = ConnectionError.notAllowed("requested room does not exist", 404);
    await h.connection.start().catch(() => {});
    await h.connection.stop();
    expect(h.room.disconnectCalls).toBe(1);
    expect(h.connection.state$.value).toBe(Stopped);
  });

  test("DISPOSE sent to the actor directly completes the observables and lets go of the room", async () => {
    const h = makeConnection(server);
    h.room.autoConnect = "succeed";
    await h.connection.start();
    let completed = 0;
    h.connection.state$.subscribe({ complete: () => completed++ });
    h.connection.remoteParticipants$.subscribe({ complete: () => completed++ });
    h.connection.actor.send({ type: "DISPOSE" });
    await waitUntil(() => completed === 2, "both observables to complete");
    expect(h.connection.actor.getSnapshot().value).toBe("Disposed");
    expect(h.states.at(-1)).toBe(Stopped);
    expect(h.room.disconnectCalls).toBe(1);
    expect(h.room.listenerCount(RoomEvent.ParticipantConnected)).toBe(0);
    await expect(h.connection.start()).rejects.toThrow(/disposed/);
  });

  test("an actor of one's own that crashes the machine shows as an error on state$, not as an uncaught exception", async () => {
    const machine = connectionMachine.provide({
      actors: {
        ...connectionActors,
        watchRoom: fromCallback(() => {
          throw new Error("watcher broke");
        }),
      },
    });
    const h = makeConnection(server, { machine });
    let completed = false;
    h.connection.state$.subscribe({ complete: () => (completed = true) });
    const error = await h.connection.start().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UnknownCallError);
    expect((error as Error).cause).toEqual(new Error("watcher broke"));
    expect(h.connection.state$.value).toBe(error);
    expect(completed).toBe(true);
    expect(h.logger.lines.join("\n")).toMatch(/error .*the connection machine crashed/);
    await expect(h.connection.start()).rejects.toBe(error);
  });
});
