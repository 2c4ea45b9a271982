/**
 * Issue 10, step 1, against a real loopback auth service: `forceJwtEndpoint` (only /sfu/get, or only /get_token
 * whose failure is NoMatrix2AuthorizationService), the delayed leave's fields in the token requests (and the one
 * retry without them after 400 M_BAD_JSON), and `delegateDelayedLeave()` (POST /delegate_delayed_leave). The
 * bodies are checked whole: lk-jwt-service decodes them with DisallowUnknownFields.
 */
import { inspect } from "node:util";
import {
  ConnectionState,
  ErrorCategory,
  FailToGetOpenIdToken,
  InsecureTransportError,
  NoMatrix2AuthorizationService,
  SFUConfigError,
  delegateDelayedLeave,
  getSFUConfigWithOpenID,
  requestSFUConfig,
  type DelayedLeave,
} from "../../src";
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
  recordingLogger,
  DELEGATE_PATH,
} from "../support/harness";
import { LoopbackServer, sendJson, type Handler } from "../support/loopbackServer";
import { ACCESS_TOKEN, openIdToken } from "../support/tokens";

const server = LoopbackServer.forThisFile();
let serviceUrl: string;
beforeAll(() => {
  serviceUrl = server.url + SERVICE_PATH;
});

const membership = { userId: USER_ID, deviceId: DEVICE_ID, memberId: MEMBER_ID };
const fewRetries = { maxAttempts: 3, initialDelayMs: 1 };

const DELAY_ID = "syd_delayed-leave-SECRET-4f2a9c";
const CS_API_URL = "https://synapse.m.localhost";
const delayedLeave: DelayedLeave = { delayId: DELAY_ID, delayTimeoutMs: 18_000 };
const delayedLeaveWithCsApi: DelayedLeave = { ...delayedLeave, csApiUrl: CS_API_URL };

/** The bodies lk-jwt-service takes, exactly. */
const getTokenBody = {
  room_id: ROOM_ID,
  slot_id: "m.call#ROOM",
  openid_token: openIdToken(),
  member: { id: MEMBER_ID, claimed_user_id: USER_ID, claimed_device_id: DEVICE_ID },
};
const legacyBody = { room: ROOM_ID, openid_token: openIdToken(), device_id: DEVICE_ID };
const delayFields = { delay_id: DELAY_ID, delay_timeout: 18_000 };
const delayFieldsWithCsApi = { ...delayFields, delay_cs_api_url: CS_API_URL };

const badJson = answer.status(400, "M_BAD_JSON");
const bodiesOf = (path: string): unknown[] => server.to(path).map((r) => r.json);

describe("forceJwtEndpoint", () => {
  test('"legacy": only /sfu/get is asked, with the legacy body, although /get_token would answer', async () => {
    server.always(GET_TOKEN_PATH, answer.sfuConfig).always(SFU_GET_PATH, answer.sfuConfig);
    const config = await requestSFUConfig(openIdToken(), membership, serviceUrl, ROOM_ID, {
      forceJwtEndpoint: "legacy",
    });
    expect(config).toMatchObject({ url: SFU_URL, jwt: JWT, livekitAlias: "alias-of-the-call" });
    expect(server.to(GET_TOKEN_PATH)).toHaveLength(0);
    expect(bodiesOf(SFU_GET_PATH)).toStrictEqual([legacyBody]);
  });

  test('"legacy": a failing /sfu/get is retried there, never at /get_token, and stays FailToGetOpenIdToken', async () => {
    server
      .always(OPENID_PATH, answer.openId)
      .always(GET_TOKEN_PATH, answer.sfuConfig)
      .always(SFU_GET_PATH, answer.status(502));
    const error = await getSFUConfigWithOpenID(matrixClient(server), membership, serviceUrl, ROOM_ID, {
      forceJwtEndpoint: "legacy",
      retry: fewRetries,
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FailToGetOpenIdToken);
    expect((error as Error).cause).toMatchObject({ httpStatus: 502, endpoint: serviceUrl + "/sfu/get" });
    expect(server.to(SFU_GET_PATH)).toHaveLength(3);
    expect(server.to(GET_TOKEN_PATH)).toHaveLength(0);
  });

  test('"matrix_2_0": only /get_token is asked, with its body', async () => {
    server.always(GET_TOKEN_PATH, answer.sfuConfig).always(SFU_GET_PATH, answer.sfuConfig);
    const config = await requestSFUConfig(openIdToken(), membership, serviceUrl, ROOM_ID, {
      forceJwtEndpoint: "matrix_2_0",
    });
    expect(config.url).toBe(SFU_URL);
    expect(bodiesOf(GET_TOKEN_PATH)).toStrictEqual([getTokenBody]);
    expect(server.to(SFU_GET_PATH)).toHaveLength(0);
  });

  test.each([
    ["404 (a service without /get_token)", 404, "M_UNRECOGNIZED", 1],
    ["500 (retried first)", 500, "M_UNKNOWN", 3],
  ])(
    '"matrix_2_0", /get_token answers %s: never /sfu/get, NoMatrix2AuthorizationService whose cause is its failure',
    async (_name, status, errcode, requests) => {
      server
        .always(OPENID_PATH, answer.openId)
        .always(GET_TOKEN_PATH, answer.status(status, errcode))
        .always(SFU_GET_PATH, answer.sfuConfig); // the fallback would have worked
      const error = await getSFUConfigWithOpenID(matrixClient(server), membership, serviceUrl, ROOM_ID, {
        forceJwtEndpoint: "matrix_2_0",
        retry: fewRetries,
      }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(NoMatrix2AuthorizationService);
      expect(error).toMatchObject({
        name: "NoMatrix2AuthorizationService",
        code: "NO_MATRIX_2_0_AUTHORIZATION_SERVICE",
        category: ErrorCategory.CONFIGURATION_ISSUE,
        message: "Something went wrong",
        localisedMessage: "The authorization service for your media server (SFU) is out of date.",
      });
      const cause = (error as Error).cause;
      expect(cause).toBeInstanceOf(SFUConfigError);
      expect(cause).toMatchObject({ httpStatus: status, errcode, endpoint: serviceUrl + "/get_token" });
      expect(server.to(GET_TOKEN_PATH)).toHaveLength(requests);
      expect(server.to(SFU_GET_PATH)).toHaveLength(0);
    },
  );

  test('"matrix_2_0": a 5xx of /get_token is retried, and a later success is the answer', async () => {
    server
      .once(GET_TOKEN_PATH, answer.status(503))
      .always(GET_TOKEN_PATH, answer.sfuConfig)
      .always(SFU_GET_PATH, answer.sfuConfig);
    const config = await requestSFUConfig(openIdToken(), membership, serviceUrl, ROOM_ID, {
      forceJwtEndpoint: "matrix_2_0",
      retry: fewRetries,
    });
    expect(config.url).toBe(SFU_URL);
    expect(server.to(GET_TOKEN_PATH)).toHaveLength(2);
    expect(server.to(SFU_GET_PATH)).toHaveLength(0);
  });

  test('"matrix_2_0": a failing homeserver is still FailToGetOpenIdToken, and the auth service is not asked', async () => {
    server.always(OPENID_PATH, answer.status(418, "M_TEAPOT")).always(GET_TOKEN_PATH, answer.status(404));
    const error = await getSFUConfigWithOpenID(matrixClient(server), membership, serviceUrl, ROOM_ID, {
      forceJwtEndpoint: "matrix_2_0",
      retry: fewRetries,
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FailToGetOpenIdToken);
    expect(error).not.toBeInstanceOf(NoMatrix2AuthorizationService);
    expect((error as Error).cause).toMatchObject({ httpStatus: 418 });
    expect(server.to(GET_TOKEN_PATH)).toHaveLength(0);
  });
});

describe("forceJwtEndpoint through the Connection", () => {
  beforeEach(() => {
    server.always(OPENID_PATH, answer.openId).always(SFU_GET_PATH, answer.sfuConfig);
  });

  test('"matrix_2_0" and a service without /get_token: state$ shows NoMatrix2AuthorizationService, start() rejects with it', async () => {
    server.always(GET_TOKEN_PATH, answer.status(404, "M_UNRECOGNIZED"));
    const h = makeConnection(server, { forceJwtEndpoint: "matrix_2_0" });
    h.room.autoConnect = "succeed";
    const error = await h.connection.start().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NoMatrix2AuthorizationService);
    expect((error as Error).cause).toMatchObject({ httpStatus: 404, endpoint: serviceUrl + "/get_token" });
    expect(h.states).toEqual([ConnectionState.Initialized, ConnectionState.FetchingConfig, error]);
    expect(h.states[2]).toBe(error);
    expect(h.connection.actor.getSnapshot().value).toEqual({ Failed: "NoMatrix2AuthorizationService" });
    expect(server.to(SFU_GET_PATH)).toHaveLength(0);
    expect(h.room.connectCalls).toHaveLength(0);
  });

  test('"legacy" connects with the config of /sfu/get, never asking /get_token', async () => {
    server.always(GET_TOKEN_PATH, answer.status(500));
    const h = makeConnection(server, { forceJwtEndpoint: "legacy" });
    h.room.autoConnect = "succeed";
    await h.connection.start();
    expect(h.connection.state$.value).toBe(ConnectionState.LivekitConnected);
    expect(h.room.connectCalls).toEqual([{ url: SFU_URL, token: JWT }]);
    expect(server.to(GET_TOKEN_PATH)).toHaveLength(0);
    expect(bodiesOf(SFU_GET_PATH)).toStrictEqual([legacyBody]);
    await h.connection.stop();
  });
});

describe("the delayed leave's fields in the token request", () => {
  test("/get_token's body carries delay_id and delay_timeout (ms), no delay_cs_api_url without csApiUrl; delegated", async () => {
    server.always(GET_TOKEN_PATH, answer.sfuConfig);
    const config = await requestSFUConfig(openIdToken(), membership, serviceUrl, ROOM_ID, { delayedLeave });
    expect(bodiesOf(GET_TOKEN_PATH)).toStrictEqual([{ ...getTokenBody, ...delayFields }]);
    expect(config.delayFieldsAccepted).toBe(true);
  });

  test("with csApiUrl, delay_cs_api_url too", async () => {
    server.always(GET_TOKEN_PATH, answer.sfuConfig);
    const config = await requestSFUConfig(openIdToken(), membership, serviceUrl, ROOM_ID, {
      delayedLeave: delayedLeaveWithCsApi,
    });
    expect(bodiesOf(GET_TOKEN_PATH)).toStrictEqual([{ ...getTokenBody, ...delayFieldsWithCsApi }]);
    expect(config.delayFieldsAccepted).toBe(true);
  });

  test("the legacy /sfu/get body carries them too (after a /get_token 404, and when forced)", async () => {
    server.always(GET_TOKEN_PATH, answer.status(404, "M_UNRECOGNIZED")).always(SFU_GET_PATH, answer.sfuConfig);
    const fallback = await requestSFUConfig(openIdToken(), membership, serviceUrl, ROOM_ID, {
      delayedLeave: delayedLeaveWithCsApi,
    });
    expect(fallback.delayFieldsAccepted).toBe(true);
    const forced = await requestSFUConfig(openIdToken(), membership, serviceUrl, ROOM_ID, {
      delayedLeave,
      forceJwtEndpoint: "legacy",
    });
    expect(forced.delayFieldsAccepted).toBe(true);
    expect(bodiesOf(GET_TOKEN_PATH)).toStrictEqual([{ ...getTokenBody, ...delayFieldsWithCsApi }]);
    expect(bodiesOf(SFU_GET_PATH)).toStrictEqual([
      { ...legacyBody, ...delayFieldsWithCsApi },
      { ...legacyBody, ...delayFields },
    ]);
  });

  test("400 M_BAD_JSON (an older service): exactly one more request, without the fields; not delegated", async () => {
    server.once(GET_TOKEN_PATH, badJson).always(GET_TOKEN_PATH, answer.sfuConfig);
    server.always(SFU_GET_PATH, answer.sfuConfig);
    const logger = recordingLogger();
    const config = await requestSFUConfig(openIdToken(), membership, serviceUrl, ROOM_ID, {
      delayedLeave: delayedLeaveWithCsApi,
      retry: fewRetries,
      logger,
    });
    expect(config).toMatchObject({ url: SFU_URL, jwt: JWT, delayFieldsAccepted: false });
    expect(bodiesOf(GET_TOKEN_PATH)).toStrictEqual([{ ...getTokenBody, ...delayFieldsWithCsApi }, getTokenBody]);
    expect(server.to(SFU_GET_PATH)).toHaveLength(0);
    expect(logger.lines.join("\n")).toMatch(/refused the delayed leave's fields/);
  });

  test("400 M_NOT_JSON from /get_token (lk-jwt-service v0.4, even with /get_token required): asked again without the fields", async () => {
    server.once(GET_TOKEN_PATH, answer.status(400, "M_NOT_JSON")).always(GET_TOKEN_PATH, answer.sfuConfig);
    const config = await requestSFUConfig(openIdToken(), membership, serviceUrl, ROOM_ID, {
      delayedLeave: delayedLeaveWithCsApi,
      retry: fewRetries,
      forceJwtEndpoint: "matrix_2_0",
    });
    expect(config).toMatchObject({ url: SFU_URL, jwt: JWT, delayFieldsAccepted: false });
    expect(bodiesOf(GET_TOKEN_PATH)).toStrictEqual([{ ...getTokenBody, ...delayFieldsWithCsApi }, getTokenBody]);
    expect(server.to(SFU_GET_PATH)).toHaveLength(0);
  });

  test("the same on the legacy endpoint (lk-jwt-service before 0.5 refuses them there with M_BAD_JSON)", async () => {
    server.always(GET_TOKEN_PATH, answer.status(404, "M_UNRECOGNIZED"));
    server.once(SFU_GET_PATH, badJson).always(SFU_GET_PATH, answer.sfuConfig);
    const config = await requestSFUConfig(openIdToken(), membership, serviceUrl, ROOM_ID, {
      delayedLeave,
      retry: fewRetries,
    });
    expect(config.delayFieldsAccepted).toBe(false);
    expect(bodiesOf(GET_TOKEN_PATH)).toStrictEqual([{ ...getTokenBody, ...delayFields }]);
    expect(bodiesOf(SFU_GET_PATH)).toStrictEqual([{ ...legacyBody, ...delayFields }, legacyBody]);
  });

  test("once refused, later fallbacks and retries of the same request leave them out", async () => {
    // /get_token refuses the fields, then fails (500) without them; /sfu/get fails too (502); the retry succeeds.
    server
      .once(GET_TOKEN_PATH, badJson)
      .once(GET_TOKEN_PATH, answer.status(500))
      .always(GET_TOKEN_PATH, answer.sfuConfig)
      .once(SFU_GET_PATH, answer.status(502))
      .always(SFU_GET_PATH, answer.sfuConfig);
    const config = await requestSFUConfig(openIdToken(), membership, serviceUrl, ROOM_ID, {
      delayedLeave,
      retry: fewRetries,
    });
    expect(config.delayFieldsAccepted).toBe(false);
    expect(bodiesOf(GET_TOKEN_PATH)).toStrictEqual([{ ...getTokenBody, ...delayFields }, getTokenBody, getTokenBody]);
    expect(bodiesOf(SFU_GET_PATH)).toStrictEqual([legacyBody]);
  });

  test("a second M_BAD_JSON, without the fields, is final: no third request", async () => {
    server.always(GET_TOKEN_PATH, badJson);
    const error = await requestSFUConfig(openIdToken(), membership, serviceUrl, ROOM_ID, {
      delayedLeave,
      forceJwtEndpoint: "matrix_2_0",
      retry: fewRetries,
    }).catch((e: unknown) => e);
    expect(error).toMatchObject({ name: "SFUConfigError", httpStatus: 400, errcode: "M_BAD_JSON" });
    expect(bodiesOf(GET_TOKEN_PATH)).toStrictEqual([{ ...getTokenBody, ...delayFields }, getTokenBody]);
  });

  test("a 400 with another errcode is not asked again without the fields: it fails as without a delayed leave", async () => {
    server
      .always(GET_TOKEN_PATH, answer.status(400, "M_UNKNOWN"))
      .always(SFU_GET_PATH, answer.status(400, "M_UNKNOWN"));
    const error = await requestSFUConfig(openIdToken(), membership, serviceUrl, ROOM_ID, {
      delayedLeave,
      retry: fewRetries,
    }).catch((e: unknown) => e);
    expect(error).toMatchObject({
      name: "SFUConfigError",
      httpStatus: 400,
      errcode: "M_UNKNOWN",
      endpoint: serviceUrl + "/get_token",
    });
    expect(bodiesOf(GET_TOKEN_PATH)).toStrictEqual([{ ...getTokenBody, ...delayFields }]);
    expect(bodiesOf(SFU_GET_PATH)).toStrictEqual([{ ...legacyBody, ...delayFields }]);
  });

  test("without a delayed leave: no delay fields in either body, and no delayFieldsAccepted in the answer", async () => {
    server.always(GET_TOKEN_PATH, answer.status(500)).always(SFU_GET_PATH, answer.sfuConfig);
    const config = await requestSFUConfig(openIdToken(), membership, serviceUrl, ROOM_ID, { retry: fewRetries });
    expect(config).not.toHaveProperty("delayFieldsAccepted");
    expect(bodiesOf(GET_TOKEN_PATH)).toStrictEqual([getTokenBody]);
    expect(bodiesOf(SFU_GET_PATH)).toStrictEqual([legacyBody]);
  });

  test("an error body that echoes the delay id or the OpenID token is redacted in the error and the log", async () => {
    const echo =
      (status: number, errcode: string): Handler =>
      (req, res) =>
        sendJson(res, status, { errcode, error: `refused ${JSON.stringify(req.json)}` });
    server.once(GET_TOKEN_PATH, echo(400, "M_BAD_JSON")).always(GET_TOKEN_PATH, echo(401, "M_UNAUTHORIZED"));
    const logger = recordingLogger();
    const error = await requestSFUConfig(openIdToken(), membership, serviceUrl, ROOM_ID, {
      delayedLeave,
      forceJwtEndpoint: "matrix_2_0",
      retry: fewRetries,
      logger,
    }).catch((e: unknown) => e);
    expect(error).toMatchObject({ httpStatus: 401 });
    expect(server.to(GET_TOKEN_PATH)[0]!.body).toContain(DELAY_ID); // it was sent, and echoed
    const shown = [inspect(error, { depth: Infinity }), ...logger.lines].join("\n");
    expect(shown).toContain("[redacted]");
    expect(shown).not.toContain(DELAY_ID);
    expect(shown).not.toContain(ACCESS_TOKEN);
  });
});

describe("delegateDelayedLeave (POST /delegate_delayed_leave)", () => {
  const delegate = (
    leave: DelayedLeave = delayedLeave,
    options: Parameters<typeof delegateDelayedLeave>[5] = {},
    url = serviceUrl,
  ): Promise<void> => delegateDelayedLeave(openIdToken(), membership, url, ROOM_ID, leave, options);
  const delegateBody = { ...getTokenBody, ...delayFields };

  test("POSTs exactly room_id, slot_id, openid_token, member, delay_id, delay_timeout; resolves on 200 {}", async () => {
    server.always(DELEGATE_PATH, (_, res) => sendJson(res, 200, {}));
    await expect(delegate()).resolves.toBeUndefined();
    const [req] = server.to(DELEGATE_PATH);
    expect(req!.method).toBe("POST");
    expect(req!.headers["content-type"]).toBe("application/json");
    expect(req!.json).toStrictEqual(delegateBody);
    expect(server.to(DELEGATE_PATH)).toHaveLength(1);
  });

  test("with csApiUrl, delay_cs_api_url too", async () => {
    server.always(DELEGATE_PATH, (_, res) => sendJson(res, 200, {}));
    await delegate(delayedLeaveWithCsApi);
    expect(bodiesOf(DELEGATE_PATH)).toStrictEqual([{ ...getTokenBody, ...delayFieldsWithCsApi }]);
  });

  test("resolves on a 200 with an empty body", async () => {
    server.always(DELEGATE_PATH, (_, res) => {
      res.writeHead(200, { "Content-Type": "application/json" });
      res.end();
    });
    await expect(delegate()).resolves.toBeUndefined();
  });

  test.each([
    ["400 M_BAD_JSON", 400, "M_BAD_JSON"],
    ["403 M_FORBIDDEN (not a full-access user)", 403, "M_FORBIDDEN"],
    ["404 (a service without the endpoint)", 404, "M_UNRECOGNIZED"],
  ])("%s rejects with an SFUConfigError saying so, after one request", async (_name, status, errcode) => {
    server.always(DELEGATE_PATH, answer.status(status, errcode));
    const error = await delegate(delayedLeave, { retry: fewRetries }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SFUConfigError);
    expect(error).toMatchObject({ httpStatus: status, errcode, endpoint: server.url + DELEGATE_PATH });
    expect(server.to(DELEGATE_PATH)).toHaveLength(1);
  });

  test("a 5xx is retried per retry: up to maxAttempts, and a later success resolves", async () => {
    server.always(DELEGATE_PATH, answer.status(502));
    await expect(delegate(delayedLeave, { retry: fewRetries })).rejects.toMatchObject({ httpStatus: 502 });
    expect(server.to(DELEGATE_PATH)).toHaveLength(3);

    server.reset();
    server.once(DELEGATE_PATH, answer.status(503)).always(DELEGATE_PATH, (_, res) => sendJson(res, 200, {}));
    await expect(delegate(delayedLeave, { retry: fewRetries })).resolves.toBeUndefined();
    expect(bodiesOf(DELEGATE_PATH)).toStrictEqual([delegateBody, delegateBody]);
  });

  test("aborting through the signal ends the request: the server sees the connection close", async () => {
    const held = server.hold(DELEGATE_PATH);
    const controller = new AbortController();
    const pending = delegate(delayedLeave, { signal: controller.signal });
    await held.arrival();
    const closed = server.nextAbort();
    controller.abort(new DOMException("stopped", "AbortError"));
    await expect(pending).rejects.toMatchObject({ name: "AbortError" });
    await closed;
    expect(server.to(DELEGATE_PATH)[0]!.aborted).toBe(true);
  });

  test("an already aborted signal: no request at all", async () => {
    server.always(DELEGATE_PATH, (_, res) => sendJson(res, 200, {}));
    const controller = new AbortController();
    controller.abort(new DOMException("stopped", "AbortError"));
    await expect(delegate(delayedLeave, { signal: controller.signal })).rejects.toMatchObject({ name: "AbortError" });
    expect(server.to(DELEGATE_PATH)).toHaveLength(0);
  });

  test("an error body that echoes the OpenID token and the delay id is redacted in the error and the log", async () => {
    const echo: Handler = (req, res) =>
      sendJson(res, 500, { errcode: "M_UNKNOWN", error: `could not delegate ${JSON.stringify(req.json)}` });
    server.always(DELEGATE_PATH, echo);
    const logger = recordingLogger();
    const error = await delegate(delayedLeave, { retry: { maxAttempts: 2, initialDelayMs: 1 }, logger }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(SFUConfigError);
    expect(server.to(DELEGATE_PATH)).toHaveLength(2);
    const shown = [inspect(error, { depth: Infinity }), ...logger.lines].join("\n");
    expect(shown).toContain("could not delegate");
    expect(shown).toContain("[redacted]");
    expect(shown).not.toContain(DELAY_ID);
    expect(shown).not.toContain(ACCESS_TOKEN);
  });

  test("an http: service off this machine is refused before any request; https: is not", async () => {
    const fetch = jest.fn(async () => new Response("{}", { status: 200 }));
    const error = await delegate(delayedLeave, { fetch }, "http://auth.example.org/livekit/jwt").catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(InsecureTransportError);
    expect(fetch).not.toHaveBeenCalled();
    await delegate(delayedLeave, { fetch }, "https://auth.example.org/livekit/jwt");
    expect(fetch).toHaveBeenCalledTimes(1);
    expect(fetch.mock.calls[0]).toEqual([
      "https://auth.example.org/livekit/jwt/delegate_delayed_leave",
      expect.objectContaining({ method: "POST" }),
    ]);
  });
});

// Last in the file: once connected, the chart may delegate by itself with a fresh OpenID token, and the
// homeserver's request (matrix-js-sdk's cannot be aborted) may still arrive after stop().
describe("the delayed leave through the Connection", () => {
  beforeEach(() => {
    server.always(OPENID_PATH, answer.openId).always(DELEGATE_PATH, (_, res) => sendJson(res, 200, {}));
  });

  test("the option's fields go with the token request", async () => {
    server.always(GET_TOKEN_PATH, answer.sfuConfig);
    const h = makeConnection(server, { delayedLeave: delayedLeaveWithCsApi });
    h.room.autoConnect = "succeed";
    await h.connection.start();
    expect(bodiesOf(GET_TOKEN_PATH)).toStrictEqual([{ ...getTokenBody, ...delayFieldsWithCsApi }]);
    await h.connection.stop();
  });

  test("an auth service that refuses them with M_BAD_JSON still connects, asked again without them", async () => {
    server.once(GET_TOKEN_PATH, badJson).always(GET_TOKEN_PATH, answer.sfuConfig);
    const h = makeConnection(server, { delayedLeave });
    h.room.autoConnect = "succeed";
    await h.connection.start();
    expect(h.connection.state$.value).toBe(ConnectionState.LivekitConnected);
    expect(bodiesOf(GET_TOKEN_PATH)).toStrictEqual([{ ...getTokenBody, ...delayFields }, getTokenBody]);
    const shown = [...h.logger.lines, JSON.stringify(h.connection.actor.getSnapshot().context.sfuConfig)].join("\n");
    expect(shown).not.toContain(DELAY_ID);
    await h.connection.stop();
  });
});

describe("the public functions check the new options as the connection does", () => {
  test("a forceJwtEndpoint or delayedLeave that is not one is a TypeError naming it, before any request", async () => {
    server.always(GET_TOKEN_PATH, answer.sfuConfig).always(OPENID_PATH, answer.openId);
    const bad = [
      { forceJwtEndpoint: "matrix2" as never },
      { delayedLeave: { delayId: 42 } as never },
      { delayedLeave: { delayId: DELAY_ID, delayTimeoutMs: 1.5 } },
    ];
    for (const options of bad) {
      await expect(requestSFUConfig(openIdToken(), membership, serviceUrl, ROOM_ID, options)).rejects.toThrow(
        /^(forceJwtEndpoint|delayedLeave\.\w+) must be/,
      );
      const viaOpenId = await getSFUConfigWithOpenID(
        matrixClient(server),
        membership,
        serviceUrl,
        ROOM_ID,
        options,
      ).catch((e: unknown) => e);
      expect(viaOpenId).toBeInstanceOf(FailToGetOpenIdToken);
      expect((viaOpenId as Error).cause).toBeInstanceOf(TypeError);
    }
    await expect(
      delegateDelayedLeave(openIdToken(), membership, serviceUrl, ROOM_ID, { delayId: DELAY_ID, delayTimeoutMs: 0 }),
    ).rejects.toThrow(/^delayedLeave\.delayTimeoutMs must be a whole number/);
    expect(server.requests).toEqual([]);
  });
});
