/**
 * The delayed leave's delegation region (issue 10), through the Connection, against a real loopback homeserver
 * and auth service: once connected, POST /delegate_delayed_leave with a fresh OpenID token; a failure never
 * touches the call; a new delay id is delegated again without reconnecting; the delay id never shows.
 */
import { inspect } from "node:util";
import type { InspectionEvent } from "xstate";
import { ConnectionState, InsecureTransportError, type DelayedLeave } from "../../src";
import { flush } from "../support/fakeRoom";
import {
  DEVICE_ID,
  GET_TOKEN_PATH,
  MEMBER_ID,
  OPENID_PATH,
  ROOM_ID,
  USER_ID,
  answer,
  makeConnection,
  type Harness,
  DELEGATE_PATH,
} from "../support/harness";
import { LoopbackServer, sendJson, type Handler } from "../support/loopbackServer";
import { ACCESS_TOKEN, makeLivekitJwt, openIdToken } from "../support/tokens";
import { waitUntil } from "../support/waitUntil";

const server = LoopbackServer.forThisFile();
const delegated: Handler = (_, res) => sendJson(res, 200, {});

beforeEach(() => {
  server.always(OPENID_PATH, answer.openId).always(GET_TOKEN_PATH, answer.sfuConfig);
});

const leave = (n: number): DelayedLeave => ({ delayId: `syd_leave_SECRET_${n}`, delayTimeoutMs: 20_000 });
const region = (h: Harness): unknown =>
  (h.connection.actor.getSnapshot().value as { Livekit?: { delayedLeave?: string } }).Livekit?.delayedLeave;
const settledRegion = (h: Harness, state: string): Promise<void> =>
  waitUntil(() => region(h) === state, `the delegation region to be ${state}`);

/** The delegation requests' bodies. */
const delegations = (): unknown[] => server.to(DELEGATE_PATH).map((r) => r.json);

describe("the delayed leave's delegation", () => {
  test("once connected: POST /delegate_delayed_leave with a fresh OpenID token, the member and the delayed event", async () => {
    const h = makeConnection(server, { delayedLeave: leave(1) });
    let roomAtDelegation: string | undefined;
    server.always(DELEGATE_PATH, (req, res) => {
      roomAtDelegation = h.room.state;
      delegated(req, res);
    });
    h.room.autoConnect = "succeed";
    await h.connection.start();
    await settledRegion(h, "Delegated");
    expect(delegations()).toStrictEqual([
      {
        room_id: ROOM_ID,
        slot_id: "m.call#ROOM",
        openid_token: openIdToken(),
        member: { id: MEMBER_ID, claimed_user_id: USER_ID, claimed_device_id: DEVICE_ID },
        delay_id: "syd_leave_SECRET_1",
        delay_timeout: 20_000,
      },
    ]);
    // one OpenID token for the SFU config, a fresh one for the delegation (it must not have been used before)
    expect(server.to(OPENID_PATH)).toHaveLength(2);
    expect(roomAtDelegation).toBe("connected");
    expect(h.logger.lines.join("\n")).toMatch(/the auth service has taken the delayed leave over/);
    await h.connection.stop();
  });

  test("a failed delegation is logged and shown in the snapshot; the call goes on, connected", async () => {
    server.always(DELEGATE_PATH, answer.status(404, "M_UNRECOGNIZED"));
    const h = makeConnection(server, { delayedLeave: leave(1), retry: { maxAttempts: 1 } });
    h.room.autoConnect = "succeed";
    await h.connection.start();
    await settledRegion(h, "Failed");
    expect(h.connection.state$.value).toBe(ConnectionState.LivekitConnected);
    expect(h.connection.actor.getSnapshot().context.delegationError).toMatchObject({
      name: "SFUConfigError",
      httpStatus: 404,
    });
    expect(h.logger.lines.join("\n")).toMatch(/warn .*the delayed leave's delegation failed; the call goes on/);
    await h.connection.stop();
  });

  test("a new delay id while connected is delegated at once, without reconnecting; undefined ends it", async () => {
    server.always(DELEGATE_PATH, delegated);
    const h = makeConnection(server, { delayedLeave: leave(1) });
    h.room.autoConnect = "succeed";
    await h.connection.start();
    await settledRegion(h, "Delegated");
    h.connection.updateDelayedLeave(leave(2));
    await settledRegion(h, "Delegated");
    await waitUntil(() => delegations().length === 2, "the second delegation");
    expect((delegations()[1] as { delay_id: string }).delay_id).toBe("syd_leave_SECRET_2");
    expect(h.room.connectCalls).toHaveLength(1);
    expect(h.room.disconnectCalls).toBe(0);
    h.connection.updateDelayedLeave(undefined);
    await settledRegion(h, "NotRequested");
    expect(h.connection.state$.value).toBe(ConnectionState.LivekitConnected);
    await h.connection.stop();
  });

  test("a delay id handed over while stopped is the next run's; none at creation means no delegation", async () => {
    server.always(DELEGATE_PATH, delegated);
    const h = makeConnection(server);
    h.room.autoConnect = "succeed";
    await h.connection.start();
    expect(region(h)).toBe("NotRequested");
    await h.connection.stop();
    expect(delegations()).toEqual([]);
    h.connection.updateDelayedLeave(leave(3));
    await h.connection.start();
    await settledRegion(h, "Delegated");
    expect((delegations()[0] as { delay_id: string }).delay_id).toBe("syd_leave_SECRET_3");
    await h.connection.stop();
  });

  test("a stop during the delegation aborts it: Stopped, and its late answer changes nothing", async () => {
    const held = server.hold(DELEGATE_PATH);
    const h = makeConnection(server, { delayedLeave: leave(1) });
    h.room.autoConnect = "succeed";
    await h.connection.start();
    await held.arrival();
    expect(region(h)).toBe("Delegating");
    await h.connection.stop();
    held.answerAll(delegated);
    await flush();
    expect(h.connection.state$.value).toBe(ConnectionState.Stopped);
    expect(h.connection.actor.getSnapshot().value).toBe("Stopped");
  });

  test("the delay id and the OpenID token never show in logs, inspection events or errors", async () => {
    const echo: Handler = (req, res) =>
      sendJson(res, 400, { errcode: "M_BAD_JSON", error: `bad ${JSON.stringify(req.json)}` });
    server.always(DELEGATE_PATH, echo);
    const events: InspectionEvent[] = [];
    const h = makeConnection(server, {
      delayedLeave: leave(1),
      retry: { maxAttempts: 1 },
      inspect: (e) => events.push(e),
    });
    h.room.autoConnect = "succeed";
    await h.connection.start();
    h.connection.updateDelayedLeave(leave(2));
    await settledRegion(h, "Failed");
    const texts = [
      ...h.logger.lines,
      // what the events carry that could hold a credential: the event itself and the snapshot's context
      ...events.map((e) =>
        inspect(
          {
            event: (e as { event?: unknown }).event,
            context: (e as { snapshot?: { context?: unknown } }).snapshot?.context,
          },
          { depth: 6 },
        ),
      ),
      inspect(h.connection.actor.getSnapshot().context.delegationError, { depth: Infinity }),
    ].join("\n");
    expect(texts).toMatch(/bad \{.*\[redacted\]/); // the echo arrived, redacted
    for (const secret of ["syd_leave_SECRET_1", "syd_leave_SECRET_2", ACCESS_TOKEN])
      expect(texts).not.toContain(secret);
    await h.connection.stop();
  });
});

describe("the delegation's edges", () => {
  test("a failure's error is gone once a later delegation succeeds", async () => {
    server.once(DELEGATE_PATH, answer.status(500, "M_UNKNOWN")).always(DELEGATE_PATH, delegated);
    const h = makeConnection(server, { delayedLeave: leave(1), retry: { maxAttempts: 1 } });
    h.room.autoConnect = "succeed";
    await h.connection.start();
    await settledRegion(h, "Failed");
    expect(h.connection.actor.getSnapshot().context.delegationError).toBeDefined();
    await h.connection.stop();
    await h.connection.start();
    await settledRegion(h, "Delegated");
    expect(h.connection.actor.getSnapshot().context.delegationError).toBeUndefined();
    await h.connection.stop();
  });

  test("no OpenID token is asked for a service the token may not go to (plain http to another host)", async () => {
    const h = makeConnection(server, {
      transport: { type: "livekit", livekit_service_url: "http://auth.example.org/livekit/jwt" },
      existingSFUConfig: {
        url: "wss://sfu.example.org",
        jwt: makeLivekitJwt(),
        livekitAlias: "a",
        livekitIdentity: "i",
      },
      delayedLeave: leave(1),
    });
    h.room.autoConnect = "succeed";
    await h.connection.start();
    await settledRegion(h, "Failed");
    expect(h.connection.actor.getSnapshot().context.delegationError).toBeInstanceOf(InsecureTransportError);
    expect(server.requests).toEqual([]);
    await h.connection.stop();
  });

  test("updateDelayedLeave checks its argument, and throws after disposal as start() does", async () => {
    const controller = new AbortController();
    const h = makeConnection(server, { signal: controller.signal });
    expect(() => h.connection.updateDelayedLeave({ delayId: "", delayTimeoutMs: 1000 })).toThrow(
      new TypeError("delayedLeave.delayId must be a non-empty string"),
    );
    controller.abort();
    await flush();
    expect(() => h.connection.updateDelayedLeave(leave(1))).toThrow("This Connection has been disposed of");
  });
});
