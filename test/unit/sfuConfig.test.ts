import {
  FailToGetOpenIdToken,
  InsecureTransportError,
  SFUConfigError,
  decodeLivekitJwt,
  getSFUConfigWithOpenID,
  requestOpenIdToken,
  requestSFUConfig,
} from "../../src";
import {
  DEVICE_ID,
  GET_TOKEN_PATH,
  JWT,
  MATRIX_ACCESS_TOKEN,
  MEMBER_ID,
  OPENID_PATH,
  ROOM_ID,
  SERVICE_PATH,
  SFU_GET_PATH,
  SFU_URL,
  USER_ID,
  answer,
  matrixClient,
  recordingLogger,
} from "../support/harness";
import { LoopbackServer, hang, sendJson, type Handler } from "../support/loopbackServer";
import { ACCESS_TOKEN, makeLivekitJwt, openIdToken } from "../support/tokens";
import { waitUntil } from "../support/waitUntil";

const server = LoopbackServer.forThisFile();
let serviceUrl: string;
beforeAll(() => {
  serviceUrl = server.url + SERVICE_PATH;
});

const membership = { userId: USER_ID, deviceId: DEVICE_ID, memberId: MEMBER_ID };
const fastRetry = { maxAttempts: 5, initialDelayMs: 20 };

function gaps(times: number[]): number[] {
  return times.slice(1).map((t, i) => t - times[i]!);
}

describe("the SFU config request", () => {
  test("POSTs the MatrixRTC /get_token body and returns the config with alias and identity from the JWT", async () => {
    server.always(GET_TOKEN_PATH, answer.sfuConfig);
    const config = await requestSFUConfig(openIdToken(), membership, serviceUrl, ROOM_ID);
    expect(config).toEqual({
      url: SFU_URL,
      jwt: JWT,
      livekitAlias: "alias-of-the-call",
      livekitIdentity: "alice-identity",
      expiresAt: expect.any(Number),
    });
    // makeLivekitJwt's exp: an hour from now, in seconds; expiresAt is in ms.
    expect(Math.abs(config.expiresAt! - (Date.now() + 3600_000))).toBeLessThan(5000);
    const [req] = server.to(GET_TOKEN_PATH);
    expect(req!.method).toBe("POST");
    expect(req!.headers["content-type"]).toBe("application/json");
    expect(req!.json).toEqual({
      room_id: ROOM_ID,
      slot_id: "m.call#ROOM",
      openid_token: openIdToken(),
      member: { id: MEMBER_ID, claimed_user_id: USER_ID, claimed_device_id: DEVICE_ID },
    });
  });

  test("falls back to the legacy /sfu/get with its own body when /get_token fails", async () => {
    server.always(GET_TOKEN_PATH, answer.status(500)).always(SFU_GET_PATH, answer.sfuConfig);
    const config = await requestSFUConfig(openIdToken(), membership, serviceUrl + "/", ROOM_ID);
    expect(config.url).toBe(SFU_URL);
    expect(server.to(SFU_GET_PATH)[0]!.json).toEqual({
      room: ROOM_ID,
      openid_token: openIdToken(),
      device_id: DEVICE_ID,
    });
  });

  test("a /get_token 404 sends later attempts straight to /sfu/get", async () => {
    server.always(GET_TOKEN_PATH, answer.status(404, "M_UNRECOGNIZED")).always(SFU_GET_PATH, answer.status(502));
    await expect(
      requestSFUConfig(openIdToken(), membership, serviceUrl, ROOM_ID, {
        retry: { maxAttempts: 3, initialDelayMs: 1 },
      }),
    ).rejects.toMatchObject({ httpStatus: 502 });
    expect(server.to(GET_TOKEN_PATH)).toHaveLength(1);
    expect(server.to(SFU_GET_PATH)).toHaveLength(3);
  });

  test("retries server errors with doubling delays, up to maxAttempts", async () => {
    server.always(GET_TOKEN_PATH, answer.status(503)).always(SFU_GET_PATH, answer.status(503));
    const error = await requestSFUConfig(openIdToken(), membership, serviceUrl, ROOM_ID, { retry: fastRetry }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(SFUConfigError);
    // /get_token exists (it did not answer 404), so its failure is the one reported.
    expect(error).toMatchObject({ httpStatus: 503, errcode: "M_UNKNOWN", endpoint: serviceUrl + "/get_token" });
    expect(server.to(SFU_GET_PATH)).toHaveLength(5);
    const attempts = server.to(GET_TOKEN_PATH).map((r) => r.at);
    expect(attempts).toHaveLength(5);
    const g = gaps(attempts);
    // 20, 40, 80, 160 ms: each gap at least the backoff, and growing.
    [20, 40, 80, 160].forEach((min, i) => expect(g[i]).toBeGreaterThanOrEqual(min - 2));
    expect(g[3]!).toBeGreaterThan(g[0]!);
  });

  test("a 429's Retry-After header (whole seconds) wins over the body's retry_after_ms", async () => {
    server
      .once(GET_TOKEN_PATH, answer.status(429, "M_LIMIT_EXCEEDED", { retry_after_ms: 10 }, { "Retry-After": "1" }))
      .once(SFU_GET_PATH, answer.status(502))
      .always(GET_TOKEN_PATH, answer.sfuConfig);
    await requestSFUConfig(openIdToken(), membership, serviceUrl, ROOM_ID, { retry: fastRetry });
    const [first, second] = server.to(GET_TOKEN_PATH);
    expect(second!.at - first!.at).toBeGreaterThanOrEqual(995);
  });

  test("without a Retry-After header a 429 waits for the body's retry_after_ms", async () => {
    server
      .once(GET_TOKEN_PATH, answer.status(429, "M_LIMIT_EXCEEDED", { retry_after_ms: 150 }))
      .once(SFU_GET_PATH, answer.status(502))
      .always(GET_TOKEN_PATH, answer.sfuConfig);
    await requestSFUConfig(openIdToken(), membership, serviceUrl, ROOM_ID, { retry: fastRetry });
    const [first, second] = server.to(GET_TOKEN_PATH);
    expect(second!.at - first!.at).toBeGreaterThanOrEqual(145);
  });

  test("a 4xx other than 429 is not retried", async () => {
    server
      .always(GET_TOKEN_PATH, answer.status(401, "M_UNAUTHORIZED"))
      .always(SFU_GET_PATH, answer.status(400, "M_BAD_JSON"));
    await expect(
      requestSFUConfig(openIdToken(), membership, serviceUrl, ROOM_ID, { retry: fastRetry }),
    ).rejects.toMatchObject({
      httpStatus: 401,
      errcode: "M_UNAUTHORIZED",
      message: expect.stringContaining("/get_token answered 401 M_UNAUTHORIZED: failure 401"),
    });
    expect(server.requests).toHaveLength(2);
  });

  test("a Retry-After decades ahead is not a retry at once: the request fails with the reason", async () => {
    const decadesAhead = new Date(Date.now() + 30 * 365 * 24 * 3600 * 1000).toUTCString();
    server.always(GET_TOKEN_PATH, answer.status(429, "M_LIMIT_EXCEEDED", {}, { "Retry-After": decadesAhead }));
    server.always(SFU_GET_PATH, answer.status(429, "M_LIMIT_EXCEEDED", {}, { "Retry-After": decadesAhead }));
    const error = await requestSFUConfig(openIdToken(), membership, serviceUrl, ROOM_ID, { retry: fastRetry }).catch(
      (e: unknown) => e,
    );
    expect(error).toMatchObject({ name: "RetryTooLateError" });
    expect(server.to(GET_TOKEN_PATH)).toHaveLength(1);
  });

  test("an answer cut mid-body is retried, like a connection reset before the status line", async () => {
    server.always(GET_TOKEN_PATH, (_, res) => {
      res.writeHead(200, { "Content-Type": "application/json", "Content-Length": "200" });
      res.write('{"url": "ws://127.0.0.1:7880", "jwt": "');
      setTimeout(() => res.socket?.destroy(), 5);
    });
    server.always(SFU_GET_PATH, answer.status(404, "M_NOT_FOUND"));
    const error = await requestSFUConfig(openIdToken(), membership, serviceUrl, ROOM_ID, {
      retry: { maxAttempts: 3, initialDelayMs: 5 },
    }).catch((e: unknown) => e);
    expect(error).toMatchObject({ name: "SFUConfigError", httpStatus: undefined });
    expect((error as Error).message).toMatch(/answered 200, then the body failed: TypeError: terminated/);
    expect(server.to(GET_TOKEN_PATH)).toHaveLength(3);
  });

  test("aborting stops the request: the server sees the connection close", async () => {
    server.always(GET_TOKEN_PATH, hang);
    const controller = new AbortController();
    const pending = requestSFUConfig(openIdToken(), membership, serviceUrl, ROOM_ID, { signal: controller.signal });
    await waitUntil(() => server.requests.length > 0, "the POST /get_token");
    const closed = server.nextAbort();
    controller.abort(new DOMException("stopped", "AbortError"));
    await expect(pending).rejects.toMatchObject({ name: "AbortError" });
    await closed;
    expect(server.requests[0]!.aborted).toBe(true);
  });

  test("an unreachable service is retried and then reported with the network error as cause", async () => {
    const down = await LoopbackServer.start();
    const url = down.url + SERVICE_PATH;
    await down.close(); // nothing listens there any more
    const error = await requestSFUConfig(openIdToken(), membership, url, ROOM_ID, {
      retry: { maxAttempts: 2, initialDelayMs: 1 },
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SFUConfigError);
    expect((error as Error).message).toMatch(/^POST http:\/\/127\.0\.0\.1:\d+\/livekit\/jwt\/get_token failed/);
    expect((error as Error).cause).toBeDefined();
  });

  test("a 200 whose body is not JSON is an error, not a crash", async () => {
    const html = (_: unknown, res: { end(body: string): void }) => res.end("<html>");
    server.always(GET_TOKEN_PATH, html).always(SFU_GET_PATH, html);
    await expect(
      requestSFUConfig(openIdToken(), membership, serviceUrl, ROOM_ID, { retry: { maxAttempts: 1 } }),
    ).rejects.toThrow(/not JSON/);
  });

  test.each([
    ["no url", { jwt: JWT }, /no url/],
    ["an ftp url", { url: "ftp://127.0.0.1/", jwt: JWT }, /must use/],
    ["a two-part jwt", { url: SFU_URL, jwt: "a.b" }, /three non-empty parts/],
    ["a jwt whose payload is not JSON", { url: SFU_URL, jwt: "a.bm90IGpzb24.c" }, /not base64url-encoded JSON/],
    ["a jwt without a room grant", { url: SFU_URL, jwt: makeLivekitJwt({ extra: { video: {} } }) }, /video\.room/],
  ])("an answer with %s is refused at once with a clear message", async (_name, body, message) => {
    server
      .always(GET_TOKEN_PATH, (_, res) => sendJson(res, 200, body))
      .always(SFU_GET_PATH, (_, res) => sendJson(res, 200, body));
    await expect(
      requestSFUConfig(openIdToken(), membership, serviceUrl, ROOM_ID, { retry: fastRetry }),
    ).rejects.toThrow(message);
    expect(server.to(SFU_GET_PATH)).toHaveLength(1); // malformed answers are not retried
  });

  test("a ws: SFU on another host is refused unless allowInsecureTransport is set; loopback is fine", async () => {
    server.always(GET_TOKEN_PATH, (_, res) => sendJson(res, 200, { url: "ws://sfu.example.org:7880", jwt: JWT }));
    server.always(SFU_GET_PATH, (_, res) => sendJson(res, 200, { url: "ws://sfu.example.org:7880", jwt: JWT }));
    await expect(requestSFUConfig(openIdToken(), membership, serviceUrl, ROOM_ID)).rejects.toBeInstanceOf(
      InsecureTransportError,
    );
    const allowed = await requestSFUConfig(openIdToken(), membership, serviceUrl, ROOM_ID, {
      allowInsecureTransport: true,
    });
    expect(allowed.url).toBe("ws://sfu.example.org:7880");
  });

  test("a redirect is refused: the OpenID token never reaches the redirect's target", async () => {
    const elsewhere = await LoopbackServer.start();
    const redirect: Handler = (_, res) => {
      res.writeHead(307, { Location: elsewhere.url + "/steal" });
      res.end();
    };
    server.always(GET_TOKEN_PATH, redirect).always(SFU_GET_PATH, redirect);
    const error = await requestSFUConfig(openIdToken(), membership, serviceUrl, ROOM_ID, {
      retry: { maxAttempts: 1 },
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SFUConfigError);
    expect(elsewhere.requests).toHaveLength(0);
    await elsewhere.close();
  });

  test("an error body that echoes the access token is redacted in the error", async () => {
    const echo: Handler = (_, res) => sendJson(res, 500, { errcode: "M_UNKNOWN", error: `bad token ${ACCESS_TOKEN}` });
    server.always(GET_TOKEN_PATH, echo).always(SFU_GET_PATH, echo);
    const error = (await requestSFUConfig(openIdToken(), membership, serviceUrl, ROOM_ID, {
      retry: { maxAttempts: 1 },
    }).catch((e: unknown) => e)) as SFUConfigError;
    expect(error.message).toContain("bad token [redacted]");
    expect(JSON.stringify({ ...error, message: error.message })).not.toContain(ACCESS_TOKEN);
  });
});

describe("decodeLivekitJwt", () => {
  test("decodes base64url payloads (with - and _) and UTF-8", () => {
    // This room name encodes to base64url containing '-' and '_' characters.
    const room = "ÿþ>?é~ call ☎";
    const jwt = makeLivekitJwt({ room, sub: "bob" });
    expect(jwt.split(".")[1]).toMatch(/[-_]/);
    expect(decodeLivekitJwt(jwt)).toEqual({
      livekitAlias: room,
      livekitIdentity: "bob",
      expiresAt: expect.any(Number),
    });
  });

  test("reads exp (seconds) as expiresAt in ms; a JWT without exp has none; an exp that is not a number is refused", () => {
    expect(decodeLivekitJwt(makeLivekitJwt({ extra: { exp: 2_000_000_000 } })).expiresAt).toBe(2_000_000_000_000);
    expect(decodeLivekitJwt(makeLivekitJwt({ extra: { exp: undefined } })).expiresAt).toBeUndefined();
    expect(() => decodeLivekitJwt(makeLivekitJwt({ extra: { exp: "tomorrow" } }))).toThrow(
      new TypeError("the JWT's expiry (exp) is not a number of seconds"),
    );
  });
});

describe("the OpenID token request (real matrix-js-sdk client)", () => {
  test("returns the homeserver's token", async () => {
    server.always(OPENID_PATH, answer.openId);
    await expect(requestOpenIdToken(matrixClient(server))).resolves.toEqual(openIdToken());
    expect(server.to(OPENID_PATH)[0]!.headers.authorization).toBe(`Bearer ${MATRIX_ACCESS_TOKEN}`);
  });

  test("a 429 is retried after the homeserver's retry_after_ms", async () => {
    server
      .once(OPENID_PATH, answer.status(429, "M_LIMIT_EXCEEDED", { retry_after_ms: 120 }))
      .always(OPENID_PATH, answer.openId);
    const logger = recordingLogger();
    await requestOpenIdToken(matrixClient(server), { retry: fastRetry, logger });
    const [first, second] = server.to(OPENID_PATH);
    expect(second!.at - first!.at).toBeGreaterThanOrEqual(115);
    expect(logger.lines.join("\n")).toMatch(/attempt 1 of 5.*retrying in 120 ms/);
  });

  test("a 418 is final: one request, FailToGetOpenIdToken from getSFUConfigWithOpenID", async () => {
    server.always(OPENID_PATH, answer.status(418, "M_TEAPOT"));
    const error = await getSFUConfigWithOpenID(matrixClient(server), membership, serviceUrl, ROOM_ID, {
      retry: fastRetry,
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FailToGetOpenIdToken);
    expect((error as Error).message).toBe("Something went wrong");
    expect((error as Error).cause).toMatchObject({ httpStatus: 418, errcode: "M_TEAPOT" });
    expect(server.to(OPENID_PATH)).toHaveLength(1);
    expect(server.to(GET_TOKEN_PATH)).toHaveLength(0);
  });

  test("server errors are retried up to maxAttempts", async () => {
    server.always(OPENID_PATH, answer.status(500));
    await expect(
      requestOpenIdToken(matrixClient(server), { retry: { maxAttempts: 3, initialDelayMs: 1 } }),
    ).rejects.toMatchObject({
      httpStatus: 500,
    });
    expect(server.to(OPENID_PATH)).toHaveLength(3);
  });

  test("a token without access_token is refused with a clear error", async () => {
    server.always(OPENID_PATH, (_, res) => sendJson(res, 200, { token_type: "Bearer" }));
    await expect(requestOpenIdToken(matrixClient(server), { retry: fastRetry })).rejects.toThrow(/lacks access_token/);
    expect(server.to(OPENID_PATH)).toHaveLength(1);
  });

  test("getSFUConfigWithOpenID chains both requests", async () => {
    server.always(OPENID_PATH, answer.openId).always(GET_TOKEN_PATH, answer.sfuConfig);
    await expect(getSFUConfigWithOpenID(matrixClient(server), membership, serviceUrl, ROOM_ID)).resolves.toMatchObject({
      url: SFU_URL,
      livekitAlias: "alias-of-the-call",
    });
  });
});
