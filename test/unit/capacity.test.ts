/**
 * Capacity as a real SFU reports it (issue 9): livekit-client turns LiveKit's 503 (node over its limits) and a
 * proxy's 429 into a WebSocket ConnectionError without status, so after such a failure the package asks the SFU's
 * validate endpoint itself. The SFU here is a second real loopback server answering `/rtc/validate`.
 */
import { ConnectionError, DisconnectReason } from "livekit-client";
import { inspect } from "node:util";
import {
  ConnectionState,
  InsecureTransportError,
  InsufficientCapacityError,
  LivekitConnectionError,
  PeerConnectionTimeoutError,
  SFURoomCreationRestrictedError,
  type CallError,
  type ConnectionOpts,
} from "../../src";
import { VALIDATE_TIMEOUT_MS, validateUrlOf } from "../../src/sfuValidate";
import { flush, type FakeRoom } from "../support/fakeRoom";
import { GET_TOKEN_PATH, JWT, OPENID_PATH, answer, makeConnection, type Harness } from "../support/harness";
import { LoopbackServer, sendJson, type Handler } from "../support/loopbackServer";
import { waitUntil } from "../support/waitUntil";

const server = LoopbackServer.forThisFile();
const sfu = LoopbackServer.forThisFile();
const VALIDATE = "/rtc/validate";

/** The SFU's URL as the auth service hands it out: `ws://127.0.0.1:<port>` and `path`. */
const sfuWsUrl = (path = ""): string => sfu.url.replace(/^http:/, "ws:") + path;

/** An auth service whose config sends the connect to `url`. */
const configAt =
  (url: string): Handler =>
  (_, res) =>
    sendJson(res, 200, { url, jwt: JWT });

/** LiveKit's validate answers in plain text. */
const validateAnswers =
  (status: number): Handler =>
  (_, res) => {
    res.writeHead(status, { "Content-Type": "text/plain" });
    res.end(status === 200 ? "success" : "refused");
  };

beforeEach(() => {
  server.always(OPENID_PATH, answer.openId).always(GET_TOKEN_PATH, configAt(sfuWsUrl()));
});

/** What livekit-client 2.23 throws when the signal WebSocket fails and its own validate kept no status. */
const websocketFailure = (): ConnectionError =>
  ConnectionError.websocket("Encountered websocket error during connection establishment");

/** A connection whose connect fails with `error`; start() has settled (it rejects). */
async function failedWith(
  error: Error,
  opts: Partial<ConnectionOpts<FakeRoom>> = {},
): Promise<Harness & { error: unknown }> {
  const h = makeConnection(server, opts);
  h.room.autoConnect = error;
  const outcome = await h.connection.start().catch((e: unknown) => e);
  expect(outcome).toBe(h.connection.state$.value);
  return { ...h, error: outcome };
}

describe("after a WebSocket failure without status, the SFU's validate endpoint is asked", () => {
  test.each<[string, number, () => ConnectionError]>([
    ["a WebSocket failure, validate 503 (node over its limits)", 503, websocketFailure],
    ["a WebSocket failure, validate 429 (a proxy's rate limit)", 429, websocketFailure],
    ["an unreachable server, validate 503", 503, () => ConnectionError.serverUnreachable("could not reach the SFU")],
  ])("%s: InsufficientCapacityError with that status", async (_name, status, failure) => {
    sfu.always(VALIDATE, validateAnswers(status));
    const thrown = failure();
    const { error, states } = await failedWith(thrown);
    expect(error).toBeInstanceOf(InsufficientCapacityError);
    expect((error as InsufficientCapacityError).status).toBe(status);
    expect((error as CallError).cause).toBe(thrown);
    expect(states.at(-2)).toBe(ConnectionState.LivekitConnecting);
    expect(sfu.requests).toEqual([expect.objectContaining({ method: "GET", path: VALIDATE, query: "" })]);
    expect(sfu.requests[0]!.headers.authorization).toBe(`Bearer ${JWT}`);
  });

  test.each([200, 401, 500])(
    "validate answering %i is not capacity: LivekitConnectionError (WebSocket), as without the probe",
    async (status) => {
      sfu.always(VALIDATE, validateAnswers(status));
      const { error } = await failedWith(websocketFailure());
      expect(error).toBeInstanceOf(LivekitConnectionError);
      expect((error as LivekitConnectionError).reasonName).toBe("WebSocket");
      expect(sfu.to(VALIDATE)).toHaveLength(1);
    },
  );

  test("the JWT goes only in the Authorization header: never in the validate URL, the logs or the error", async () => {
    sfu.always(VALIDATE, validateAnswers(503));
    // livekit-client's message may quote the URL it tried, with the token in its query.
    const thrown = ConnectionError.websocket(`websocket error for ${sfuWsUrl()}/rtc?access_token=${JWT}`);
    const { error, logger } = await failedWith(thrown);
    expect(error).toBeInstanceOf(InsufficientCapacityError);
    const [request] = sfu.to(VALIDATE);
    expect(request!.headers.authorization).toBe(`Bearer ${JWT}`);
    expect(request!.query).toBe("");
    const signature = JWT.split(".")[2]!;
    for (const text of [request!.path, inspect(error, { depth: Infinity }), ...logger.lines]) {
      expect(text).not.toContain(signature);
    }
    expect(logger.lines.join("\n")).toContain("validate endpoint answered 503");
  });

  test("the SFU URL's path prefix is kept: /livekit/sfu/rtc/validate", async () => {
    server.always(GET_TOKEN_PATH, configAt(sfuWsUrl("/livekit/sfu")));
    sfu.always("/livekit/sfu/rtc/validate", validateAnswers(503));
    const { error } = await failedWith(websocketFailure());
    expect(error).toBeInstanceOf(InsufficientCapacityError);
    expect(sfu.requests.map((r) => r.path)).toEqual(["/livekit/sfu/rtc/validate"]);
  });

  test("the validate request goes through the fetch option", async () => {
    sfu.always(VALIDATE, validateAnswers(429));
    const fetched: string[] = [];
    const { error } = await failedWith(websocketFailure(), {
      fetch: (url, init) => {
        fetched.push(String(url));
        return fetch(url, init);
      },
    });
    expect(error).toBeInstanceOf(InsufficientCapacityError);
    expect(fetched).toContain(`${sfu.url}${VALIDATE}`);
  });

  test("fetch is called as a plain function, as a browser's fetch must be (else 'Illegal invocation')", async () => {
    sfu.always(VALIDATE, validateAnswers(503));
    // Like window.fetch: called as a method of another object, it throws.
    const browserLikeFetch = function (this: unknown, url: RequestInfo | URL, init?: RequestInit) {
      if (this !== undefined && this !== globalThis)
        throw new TypeError("Failed to execute 'fetch': Illegal invocation");
      return fetch(url, init);
    } as typeof fetch;
    const { error } = await failedWith(websocketFailure(), { fetch: browserLikeFetch });
    expect(error).toBeInstanceOf(InsufficientCapacityError);
  });

  test.each<[string, () => Error, new (...args: never[]) => CallError]>([
    [
      "404 (room does not exist)",
      () => ConnectionError.notAllowed("requested room does not exist", 404),
      SFURoomCreationRestrictedError,
    ],
    [
      "a WebSocket failure that kept its status (401)",
      () => ConnectionError.websocket("ws failed", 401),
      LivekitConnectionError,
    ],
    [
      "an unreachable server with 503 kept",
      () => ConnectionError.serverUnreachable("full", 503),
      InsufficientCapacityError,
    ],
    [
      "a signal time-out",
      () => ConnectionError.timeout("room connection has timed out (signal)"),
      PeerConnectionTimeoutError,
    ],
    [
      "a DUPLICATE_IDENTITY leave request",
      () => ConnectionError.leaveRequest("leave", DisconnectReason.DUPLICATE_IDENTITY),
      LivekitConnectionError,
    ],
  ])("no validate request after %s", async (_name, failure, expected) => {
    sfu.always(VALIDATE, validateAnswers(503));
    const { error } = await failedWith(failure());
    expect(error).toBeInstanceOf(expected);
    expect(sfu.requests).toHaveLength(0);
  });

  test("nothing listening at the SFU's address: the usual mapping, without waiting", async () => {
    const gone = await LoopbackServer.start();
    const url = gone.url.replace(/^http:/, "ws:");
    await gone.close();
    server.always(GET_TOKEN_PATH, configAt(url));
    const { error, logger } = await failedWith(websocketFailure());
    expect(error).toBeInstanceOf(LivekitConnectionError);
    expect((error as LivekitConnectionError).reasonName).toBe("WebSocket");
    expect(logger.lines.join("\n")).toMatch(/validate endpoint gave no answer/);
    expect(logger.lines.join("\n")).not.toMatch(/took longer than/);
  });

  test(
    `a validate request that hangs is given up after VALIDATE_TIMEOUT_MS (${VALIDATE_TIMEOUT_MS} ms): the usual mapping`,
    async () => {
      sfu.hold(VALIDATE);
      const aborted = sfu.nextAbort();
      const { error, logger } = await failedWith(websocketFailure());
      expect(error).toBeInstanceOf(LivekitConnectionError);
      await aborted; // the request was cancelled, not left open
      expect(sfu.to(VALIDATE)[0]!.aborted).toBe(true);
      expect(logger.lines.join("\n")).toContain(`took longer than ${VALIDATE_TIMEOUT_MS} ms`);
    },
    VALIDATE_TIMEOUT_MS + 5000,
  );

  test("a WebSocket failure that arrives after stop() asks nothing: a stopped connection sends no request", async () => {
    sfu.always(VALIDATE, validateAnswers(503));
    const fetched: string[] = [];
    const h = makeConnection(server, {
      fetch: (url, init) => {
        fetched.push(String(url));
        return fetch(url, init);
      },
    });
    h.room.cancelOnDisconnect = false; // the connect fails only after the stop
    const started = h.connection.start();
    await waitUntil(() => h.room.connectPending, "a pending connect");
    await h.connection.stop();
    h.room.failConnect(websocketFailure());
    await started;
    await flush();
    expect(fetched.filter((url) => url.includes(VALIDATE))).toEqual([]);
    expect(h.states.at(-1)).toBe(ConnectionState.Stopped);
  });

  test("stop() during a hanging validate request ends Stopped and cancels the request (not its time limit)", async () => {
    const held = sfu.hold(VALIDATE);
    const h = makeConnection(server);
    h.room.autoConnect = websocketFailure();
    const started = h.connection.start();
    await held.arrival();
    const aborted = sfu.nextAbort();
    await h.connection.stop();
    expect(h.connection.state$.value).toBe(ConnectionState.Stopped);
    await expect(started).resolves.toBeUndefined();
    await aborted;
    await waitUntil(() => h.logger.lines.some((l) => l.includes("gave no answer")), "the probe to give up");
    expect(h.logger.lines.find((l) => l.includes("gave no answer"))).toMatch(/AbortError/);
    expect(h.states.some((s) => s instanceof Error)).toBe(false);
  });
});

describe("validateUrlOf", () => {
  test.each([
    ["ws://127.0.0.1:7880", "http://127.0.0.1:7880/rtc/validate"],
    ["wss://sfu.example.org", "https://sfu.example.org/rtc/validate"],
    ["https://sfu.example.org/livekit/sfu/", "https://sfu.example.org/livekit/sfu/rtc/validate"],
    ["http://localhost:7880/base", "http://localhost:7880/base/rtc/validate"],
    ["wss://sfu.example.org/x?access_token=secret#frag", "https://sfu.example.org/x/rtc/validate"],
  ])("%s → %s", (sfuUrl, expected) => {
    expect(validateUrlOf(sfuUrl, false).href).toBe(expected);
  });

  test("ws: to a host that is not this machine is refused unless allowInsecureTransport", () => {
    expect(() => validateUrlOf("ws://sfu.example.org", false)).toThrow(InsecureTransportError);
    expect(validateUrlOf("ws://sfu.example.org", true).href).toBe("http://sfu.example.org/rtc/validate");
    expect(() => validateUrlOf("ftp://sfu.example.org", true)).toThrow(TypeError);
  });
});
