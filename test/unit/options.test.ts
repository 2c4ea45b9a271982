/** Options are checked by type, once, before anything is made: a TypeError that names the option. */
import { inspect } from "node:util";
import {
  Connection,
  DEFAULT_RECONNECT_POLICY,
  Secret,
  createConnectionActor,
  reveal,
  type ConnectionOpts,
} from "../../src";
import { FakeRoom } from "../support/fakeRoom";
import {
  DEVICE_ID,
  GET_TOKEN_PATH,
  MEMBER_ID,
  OPENID_PATH,
  ROOM_ID,
  SERVICE_PATH,
  USER_ID,
  answer,
  makeConnection,
  matrixClient,
} from "../support/harness";
import { LoopbackServer } from "../support/loopbackServer";

const server = LoopbackServer.forThisFile();
beforeEach(() => server.always(OPENID_PATH, answer.openId).always(GET_TOKEN_PATH, answer.sfuConfig));

const valid = (): ConnectionOpts<FakeRoom> => ({
  transport: { type: "livekit", livekit_service_url: server.url + SERVICE_PATH },
  client: matrixClient(server),
  roomId: ROOM_ID,
  ownMembershipIdentity: { userId: USER_ID, deviceId: DEVICE_ID, memberId: MEMBER_ID },
  livekitRoomFactory: () => new FakeRoom(),
});

const noop = (): void => {};

describe("a malformed option is a TypeError naming it, before the room is made or anything is asked", () => {
  test.each<[string, Record<string, unknown>, RegExp]>([
    [
      "allowInsecureTransport as a string",
      { allowInsecureTransport: "false" },
      /allowInsecureTransport must be a boolean, not "false"/,
    ],
    [
      "a service URL that is not a URL",
      { transport: { type: "livekit", livekit_service_url: "not a url" } },
      /livekit_service_url is not a valid URL/,
    ],
    [
      "a service URL of another scheme",
      { transport: { type: "livekit", livekit_service_url: "ftp://auth.example.org" } },
      /livekit_service_url must use https: or http:, not ftp:/,
    ],
    [
      "NaN as a time limit",
      { timeouts: { sfuConfigMs: NaN } },
      /timeouts.sfuConfigMs must be a number of milliseconds from 0 to 2147483647, not NaN/,
    ],
    [
      "a time limit beyond setTimeout's range",
      { timeouts: { openIdTokenMs: 2 ** 31 } },
      /timeouts.openIdTokenMs must be .* not 2147483648/,
    ],
    [
      "Infinity as a time limit",
      { timeouts: { disconnectMs: Infinity } },
      /timeouts.disconnectMs must be .* not Infinity/,
    ],
    ["a negative time limit", { timeouts: { sfuConfigMs: -1 } }, /timeouts.sfuConfigMs must be .* not -1/],
    ["a time limit as a string", { timeouts: { sfuConfigMs: "100" } }, /timeouts.sfuConfigMs must be .* not 100/],
    ["timeouts that are not an object", { timeouts: 5 }, /timeouts must be an object/],
    ["zero attempts", { retry: { maxAttempts: 0 } }, /retry.maxAttempts must be a whole number of at least 1, not 0/],
    ["a fractional number of attempts", { retry: { maxAttempts: 2.5 } }, /retry.maxAttempts must be a whole number/],
    ["a negative first delay", { retry: { initialDelayMs: -5 } }, /retry.initialDelayMs must be .* not -5/],
    ["fetch that is not a function", { fetch: "fetch" }, /fetch must be a function/],
    [
      "inspect that is neither function nor observer",
      { inspect: 42 },
      /inspect must be a function or an observer with next\(\)/,
    ],
    ["an observer without next()", { inspect: {} }, /inspect must be a function or an observer/],
    ["a signal that is not an AbortSignal", { signal: { aborted: false } }, /signal must be an AbortSignal/],
    ["ownMembershipIdentity missing", { ownMembershipIdentity: undefined }, /ownMembershipIdentity must be an object/],
    ["reconnect as a string", { reconnect: "yes" }, /reconnect \(false or an object\) must be an object/],
    [
      "zero reconnect attempts",
      { reconnect: { maxAttempts: 0 } },
      /reconnect.maxAttempts must be a whole number of at least 1 \(false turns reconnecting off\), not 0/,
    ],
    [
      "a fractional number of reconnect attempts",
      { reconnect: { maxAttempts: 1.5 } },
      /reconnect.maxAttempts must be a whole number .* not 1.5/,
    ],
    [
      "a negative first reconnect delay",
      { reconnect: { initialDelayMs: -1 } },
      /reconnect.initialDelayMs must be a number of milliseconds .* not -1/,
    ],
    [
      "a longest reconnect delay shorter than the first",
      { reconnect: { maxDelayMs: 10, initialDelayMs: 100 } },
      /reconnect.maxDelayMs \(10\) must not be less than reconnect.initialDelayMs \(100\)/,
    ],
    ["a negative JWT margin", { jwtMarginMs: -5 }, /jwtMarginMs must be a number of milliseconds .* not -5/],
    ["NaN as the JWT margin", { jwtMarginMs: NaN }, /jwtMarginMs must be .* not NaN/],
    ["a clock without timers", { clock: {} }, /clock must have setTimeout\(\) and clearTimeout\(\)/],
    [
      "forceJwtEndpoint that is neither legacy nor matrix_2_0",
      { forceJwtEndpoint: "v2" },
      /forceJwtEndpoint must be "legacy" or "matrix_2_0", not "v2"/,
    ],
    ["delayedLeave as a string", { delayedLeave: "syd_abc" }, /delayedLeave must be an object/],
    ["an empty delayedLeave", { delayedLeave: {} }, /delayedLeave.delayId must be a non-empty string/],
    [
      "a delayedLeave without delayId",
      { delayedLeave: { delayTimeoutMs: 10_000 } },
      /delayedLeave.delayId must be a non-empty string/,
    ],
    [
      "a delayedLeave with an empty delayId",
      { delayedLeave: { delayId: "", delayTimeoutMs: 10_000 } },
      /delayedLeave.delayId must be a non-empty string/,
    ],
    [
      "a delayedLeave without delayTimeoutMs",
      { delayedLeave: { delayId: "syd_abc" } },
      /delayedLeave.delayTimeoutMs must be a whole number of milliseconds from 1 to \d+, not undefined/,
    ],
    [
      "a negative delayedLeave.delayTimeoutMs",
      { delayedLeave: { delayId: "syd_abc", delayTimeoutMs: -1 } },
      /delayedLeave.delayTimeoutMs must be a whole number of milliseconds .* not -1/,
    ],
    [
      "delayedLeave.delayTimeoutMs as a string",
      { delayedLeave: { delayId: "syd_abc", delayTimeoutMs: "10000" } },
      /delayedLeave.delayTimeoutMs must be .* not 10000/,
    ],
    [
      "delayedLeave.csApiUrl that is not a string",
      { delayedLeave: { delayId: "syd_abc", delayTimeoutMs: 10_000, csApiUrl: 42 } },
      /delayedLeave.csApiUrl must be a non-empty string/,
    ],
    [
      "a room without remoteParticipants",
      { livekitRoomFactory: () => Object.assign(new FakeRoom(), { remoteParticipants: undefined }) },
      /the room has no remoteParticipants map/,
    ],
    [
      "a room without a state",
      { livekitRoomFactory: () => Object.assign(new FakeRoom(), { state: undefined }) },
      /the room has no state/,
    ],
  ])("%s", (_name, change, message) => {
    const factory = jest.fn(() => new FakeRoom());
    const opts = { ...valid(), livekitRoomFactory: factory, ...change } as ConnectionOpts<FakeRoom>;
    expect(() => new Connection(opts)).toThrow(TypeError);
    expect(() => new Connection(opts)).toThrow(message);
    // The room's own shape can only be checked once the factory made it; everything else is checked before.
    if (!("livekitRoomFactory" in change)) expect(factory).not.toHaveBeenCalled();
    expect(server.requests).toHaveLength(0);
  });

  test.each([
    ["signal: null", { signal: null }],
    ["existingSFUConfig: null", { existingSFUConfig: null }],
    ["delayedLeave: null", { delayedLeave: null }],
  ])("%s means none, as it did", (_name, change) => {
    expect(() => new Connection({ ...valid(), ...change } as unknown as ConnectionOpts<FakeRoom>)).not.toThrow();
  });

  test.each<[string, unknown, RegExp]>([
    [
      "a logger without getChild",
      { debug: noop, info: noop, warn: noop, error: noop },
      /logger.getChild must be a function/,
    ],
    [
      "a logger whose getChild returns nothing",
      { debug: noop, info: noop, warn: noop, error: noop, getChild: noop },
      /logger.getChild\(\) must be a logger/,
    ],
    ["a logger that is a string", "console", /logger must be a logger/],
  ])("%s", (_name, logger, message) => {
    expect(() => new Connection(valid(), logger as never)).toThrow(message);
  });

  test("createConnectionActor checks its logger and room the same way", () => {
    const { livekitRoomFactory, ...rest } = valid();
    expect(() => createConnectionActor({ ...rest, room: livekitRoomFactory(), logger: {} as never })).toThrow(
      /logger must be|logger.debug must be a function/,
    );
    expect(() => createConnectionActor({ ...rest, room: "room" as never })).toThrow(/the room must be an object/);
  });

  test("an option given as undefined means its default", async () => {
    const h = makeConnection(server, {
      retry: { maxAttempts: undefined, initialDelayMs: undefined },
      timeouts: { openIdTokenMs: undefined, sfuConfigMs: undefined, disconnectMs: undefined },
      allowInsecureTransport: undefined,
    });
    h.room.autoConnect = "succeed";
    await h.connection.start();
    await h.connection.stop();
  });
});

describe("the reconnect policy and the JWT margin", () => {
  const contextOf = (change: Partial<ConnectionOpts<FakeRoom>>) =>
    new Connection({ ...valid(), ...change }).actor.getSnapshot().context;

  test("default: 10 attempts from 1 s doubling up to 30 s, and a 60 s JWT margin", () => {
    const context = contextOf({});
    expect(context.reconnect).toEqual({ maxAttempts: 10, initialDelayMs: 1000, maxDelayMs: 30_000 });
    expect(context.reconnect).toEqual(DEFAULT_RECONNECT_POLICY);
    expect(context.jwtMarginMs).toBe(60_000);
  });

  test.each<[string, ConnectionOpts<FakeRoom>["reconnect"], unknown]>([
    ["false turns it off", false, false],
    ["{} means the defaults", {}, { maxAttempts: 10, initialDelayMs: 1000, maxDelayMs: 30_000 }],
    [
      "a field left out keeps its default",
      { maxAttempts: 3 },
      { maxAttempts: 3, initialDelayMs: 1000, maxDelayMs: 30_000 },
    ],
  ])("reconnect: %s", (_name, reconnect, expected) => {
    expect(contextOf({ reconnect }).reconnect).toEqual(expected);
  });
});

describe("the delayed leave", () => {
  const DELAY_ID = "syd_delayed-leave-SECRET-77e1";
  const contextOf = (change: Record<string, unknown>) =>
    new Connection({ ...valid(), ...change } as ConnectionOpts<FakeRoom>).actor.getSnapshot().context;

  test("null or left out means none", () => {
    expect(contextOf({ delayedLeave: null }).delayedLeave).toBeUndefined();
    expect(contextOf({}).delayedLeave).toBeUndefined();
  });

  test("a valid one is in the snapshot's context inside a Secret: serialising the context shows no delay id", () => {
    const context = contextOf({
      delayedLeave: { delayId: DELAY_ID, delayTimeoutMs: 18_000, csApiUrl: "https://synapse.m.localhost" },
    });
    expect(context.delayedLeave).toBeInstanceOf(Secret);
    expect(reveal(context.delayedLeave!)).toStrictEqual({
      delayId: DELAY_ID,
      delayTimeoutMs: 18_000,
      csApiUrl: "https://synapse.m.localhost",
    });
    const { deps: _deps, ...rest } = context; // deps hold the Matrix client, which is not serialisable
    expect(JSON.stringify(rest)).not.toContain(DELAY_ID);
    expect(inspect(context, { depth: Infinity })).not.toContain(DELAY_ID);
    expect(
      reveal(contextOf({ delayedLeave: { delayId: DELAY_ID, delayTimeoutMs: 10_000 } }).delayedLeave!),
    ).not.toHaveProperty("csApiUrl");
  });

  // lk-jwt-service (requests.go) decodes delay_timeout into a Go int and refuses one <= 0: a fraction fails the
  // body's decoding (400 M_NOT_JSON, which is not retried without the fields, so the token request fails), and 0
  // is 400 M_BAD_JSON (the token request then leaves the fields out: silently no delegation) and always refused
  // by /delegate_delayed_leave. Matrix delays (MSC4140) are whole milliseconds too.
  test.each([
    ["0", 0],
    ["a fraction of a millisecond", 1500.5],
  ])("delayedLeave.delayTimeoutMs of %s, which lk-jwt-service refuses, is a TypeError naming it", (_name, ms) => {
    expect(() => contextOf({ delayedLeave: { delayId: DELAY_ID, delayTimeoutMs: ms } })).toThrow(TypeError);
    expect(() => contextOf({ delayedLeave: { delayId: DELAY_ID, delayTimeoutMs: ms } })).toThrow(
      /delayedLeave.delayTimeoutMs/,
    );
    expect(server.requests).toHaveLength(0);
  });
});

describe("an inspect observer that throws", () => {
  test("is logged, and the connection goes on: start() connects, stop() stops, nothing is uncaught", async () => {
    const h = makeConnection(server, {
      inspect: (event) => {
        if (event.type === "@xstate.event" && (event.event as { type: string }).type === "START") {
          throw new ReferenceError("the devtool broke");
        }
      },
    });
    h.room.autoConnect = "succeed";
    await expect(h.connection.start()).resolves.toBeUndefined();
    expect(h.connection.state$.value).toBe("connected");
    await h.connection.stop();
    expect(h.connection.state$.value).toBe("Stopped");
    expect(h.logger.lines.join("\n")).toMatch(
      /error .*the inspect observer threw; the connection goes on.*the devtool broke/s,
    );
  });

  test("as an observer object, too", async () => {
    const observer = {
      calls: 0,
      next(): void {
        this.calls++;
        if (this.calls === 3) throw new Error("observer broke");
      },
    };
    const h = makeConnection(server, { inspect: observer });
    h.room.autoConnect = "succeed";
    await h.connection.start();
    expect(observer.calls).toBeGreaterThan(3); // called as a method, and called again after it threw
    await h.connection.stop();
    expect(h.logger.lines.join("\n")).toMatch(/the inspect observer threw.*observer broke/s);
  });
});
