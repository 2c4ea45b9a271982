/**
 * A corpus of malformed auth-service answers (bodies, statuses, headers, cut and slow transfers), each given by
 * both endpoints: every one ends in FailToGetOpenIdToken within the phase's time limit, with no connect, no
 * credential in what is shown, and no request going on afterwards.
 */
import type { ServerResponse } from "node:http";
import { inspect } from "node:util";
import { FailToGetOpenIdToken } from "../../src";
import { flush } from "../support/fakeRoom";
import { GET_TOKEN_PATH, OPENID_PATH, SFU_GET_PATH, answer, makeConnection } from "../support/harness";
import { LoopbackServer, sendJson, type Handler } from "../support/loopbackServer";
import { ACCESS_TOKEN, makeLivekitJwt } from "../support/tokens";

const server = LoopbackServer.forThisFile();
const LIMIT_MS = 150;

const b64 = (s: string): string => Buffer.from(s).toString("base64url");
const jwtWithPayload = (payload: string): string => `${b64('{"alg":"HS256"}')}.${payload}.c2lnbmF0dXJl`;
const body =
  (text: string, status = 200, headers: Record<string, string> = { "Content-Type": "application/json" }): Handler =>
  (_, res) => {
    res.writeHead(status, headers);
    res.end(text);
  };
const json = (value: unknown, status = 200): Handler => body(JSON.stringify(value), status);
const withConfig = (config: Record<string, unknown>): Handler => json(config);
const okUrl = "ws://127.0.0.1:7880";

const corpus: [string, Handler][] = [
  // bodies of a 200
  ["an empty body", body("")],
  ["whitespace", body("  \n ")],
  ["HTML", body("<html><body>502 Bad Gateway</body></html>", 200, { "Content-Type": "text/html" })],
  ["truncated JSON", body('{"url": "ws://127.0.0.1:7880", "jwt": ')],
  ["JSON null", json(null)],
  ["a JSON number", json(42)],
  ["a JSON string", json("ws://127.0.0.1:7880")],
  ["a JSON array", json([okUrl, makeLivekitJwt()])],
  ["an empty object", json({})],
  ["no url", withConfig({ jwt: makeLivekitJwt() })],
  ["a url that is a number", withConfig({ url: 7880, jwt: makeLivekitJwt() })],
  ["a url that is an object", withConfig({ url: { href: okUrl }, jwt: makeLivekitJwt() })],
  ["a url that is not a URL", withConfig({ url: "not a url", jwt: makeLivekitJwt() })],
  ["a url of another scheme", withConfig({ url: "ftp://127.0.0.1/sfu", jwt: makeLivekitJwt() })],
  ["a javascript: url", withConfig({ url: "javascript:alert(1)", jwt: makeLivekitJwt() })],
  ["a ws: url off this machine", withConfig({ url: "ws://sfu.example.org:7880", jwt: makeLivekitJwt() })],
  ["no jwt", withConfig({ url: okUrl })],
  ["a jwt that is a number", withConfig({ url: okUrl, jwt: 12345 })],
  ["an empty jwt", withConfig({ url: okUrl, jwt: "" })],
  ["a jwt of two parts", withConfig({ url: okUrl, jwt: "aaaa.bbbb" })],
  ["a jwt of four parts", withConfig({ url: okUrl, jwt: "a.b.c.d" })],
  ["a jwt with an empty payload", withConfig({ url: okUrl, jwt: "aaaa..cccc" })],
  ["a jwt payload that is not base64url", withConfig({ url: okUrl, jwt: jwtWithPayload("***") })],
  ["a jwt payload that is not JSON", withConfig({ url: okUrl, jwt: jwtWithPayload(b64("not json")) })],
  [
    "a jwt payload that is not UTF-8",
    withConfig({ url: okUrl, jwt: jwtWithPayload(Buffer.from([0xff, 0xfe, 0xfd]).toString("base64url")) }),
  ],
  ["a jwt payload that is an array", withConfig({ url: okUrl, jwt: jwtWithPayload(b64("[1,2]")) })],
  ["a jwt without video.room", withConfig({ url: okUrl, jwt: jwtWithPayload(b64('{"sub":"me"}')) })],
  [
    "a jwt with an empty room",
    withConfig({ url: okUrl, jwt: jwtWithPayload(b64('{"sub":"me","video":{"room":""}}')) }),
  ],
  [
    "a jwt with a room that is a number",
    withConfig({ url: okUrl, jwt: jwtWithPayload(b64('{"sub":"me","video":{"room":7}}')) }),
  ],
  ["a jwt without sub", withConfig({ url: okUrl, jwt: jwtWithPayload(b64('{"video":{"room":"r"}}')) })],
  ["a megabyte of JSON", withConfig({ url: okUrl, jwt: "x".repeat(1 << 20) })],
  ["JSON nested 10,000 deep", body("[".repeat(10_000) + "]".repeat(10_000))],
  // statuses
  ["204 No Content", body("", 204)],
  ["400 with a Matrix error", json({ errcode: "M_BAD_JSON", error: `bad ${ACCESS_TOKEN}` }, 400)],
  ["401 that is not JSON", body("Unauthorized", 401, { "Content-Type": "text/plain" })],
  ["403 with an errcode that is not a string", json({ errcode: 403, error: ["no"] }, 403)],
  ["405 (no such endpoint)", body("", 405)],
  ["418", json({ errcode: "M_TEAPOT" }, 418)],
  [
    "429 with a Retry-After that is not a date",
    (_, res) => sendJson(res, 429, { errcode: "M_LIMIT_EXCEEDED" }, { "Retry-After": "soon" }),
  ],
  ["429 with retry_after_ms that is a string", json({ errcode: "M_LIMIT_EXCEEDED", retry_after_ms: "10" }, 429)],
  [
    "429 asking for an hour",
    (_, res) => sendJson(res, 429, { errcode: "M_LIMIT_EXCEEDED" }, { "Retry-After": "3600" }),
  ],
  ["500 with an empty body", body("", 500)],
  ["502 from a proxy, in HTML", body("<h1>Bad Gateway</h1>", 502, { "Content-Type": "text/html" })],
  ["503 with a negative retry_after_ms", json({ errcode: "M_UNKNOWN", retry_after_ms: -1 }, 503)],
  ["a redirect to the same service", (_, res) => res.writeHead(302, { Location: "/livekit/jwt/get_token" }).end()],
  ["a redirect elsewhere", (_, res) => res.writeHead(307, { Location: "http://127.0.0.1:9/steal" }).end()],
  // headers and transfers
  ["a Content-Length longer than the body (cut)", (_, res) => cut(res, 0)],
  ["a body cut after a while", (_, res) => cut(res, 30)],
  ["a reset before the status line", (req, res) => void (req && res.socket?.destroy())],
  [
    "headers, then a body that never comes",
    (_, res) => void res.writeHead(200, { "Content-Type": "application/json" }),
  ],
  ["a body sent a byte at a time, slower than the limit", (_, res) => dribble(res)],
  ["no answer at all", () => {}],
];

function cut(res: ServerResponse, afterMs: number): void {
  res.writeHead(200, { "Content-Type": "application/json", "Content-Length": "500" });
  res.write(`{"url": "${okUrl}", "jwt": "`);
  setTimeout(() => res.socket?.destroy(), afterMs);
}

function dribble(res: ServerResponse): void {
  res.writeHead(200, { "Content-Type": "application/json" });
  const text = JSON.stringify({ url: okUrl, jwt: makeLivekitJwt() });
  let i = 0;
  const timer = setInterval(() => {
    if (res.destroyed || i >= text.length) return void (clearInterval(timer), res.end());
    res.write(text[i++]!);
  }, 50);
  res.on("close", () => clearInterval(timer));
}

test(`the corpus has at least 40 malformed answers (${corpus.length})`, () => {
  expect(corpus.length).toBeGreaterThanOrEqual(40);
});

describe.each(["/get_token", "/sfu/get (after /get_token answered 404)"])("the auth service's %s", (endpoint) => {
  test.each(corpus)(
    "%s: FailToGetOpenIdToken within the time limit, no connect, nothing shown of the token",
    async (name, handler) => {
      server.always(OPENID_PATH, answer.openId);
      if (endpoint === "/get_token") {
        server.always(GET_TOKEN_PATH, handler).always(SFU_GET_PATH, answer.status(404, "M_NOT_FOUND"));
      } else {
        server.always(GET_TOKEN_PATH, answer.status(404, "M_NOT_FOUND")).always(SFU_GET_PATH, handler);
      }
      const h = makeConnection(server, {
        retry: { maxAttempts: 2, initialDelayMs: 10 },
        timeouts: { sfuConfigMs: LIMIT_MS },
      });
      h.room.autoConnect = "succeed";
      const t0 = Date.now();
      const error = await h.connection.start().catch((e: unknown) => e);
      const took = Date.now() - t0;
      expect(error).toBeInstanceOf(FailToGetOpenIdToken);
      expect(took).toBeLessThan(LIMIT_MS + 250); // the SFU config phase's limit, and the OpenID request before it
      if (name.startsWith("429 asking for an hour")) {
        expect((error as Error).cause).toMatchObject({ name: "RetryTooLateError" });
      }
      expect(h.room.connectCalls).toHaveLength(0);
      const shown = [inspect(error, { depth: Infinity }), ...h.logger.lines].join("\n");
      expect(shown).not.toContain(ACCESS_TOKEN);
      // Nothing goes on after the failure: no retry in the background.
      const requests = server.requests.length;
      await new Promise((r) => setTimeout(r, 25));
      await flush();
      expect(server.requests.length).toBe(requests);
      await h.connection.stop();
    },
  );
});
