/** What the homeserver, the auth service and the SFU refuse, and how it shows. */
import { AccessToken } from "livekit-server-sdk";
import { pollUntil, stateNames } from "../support/fixtures";
import { LoopbackProxy } from "../support/proxy";
import { WEBSOCKET_ERROR, e2e, refusedAtConnect, scenario } from "../support/scenario";
import { freeTcpPort } from "../support/stackAndBrowser";

export function refusalScenarios(): void {
  scenario("c. restricted homeserver: the real 404 from LiveKit → SFURoomCreationRestrictedError", async () => {
    const u = await e2e.newUser();
    const c = await u.connection({ roomId: e2e.roomId(), variant: "restricted" });
    expect(await c.start()).toEqual({ outcome: "rejected", error: "SFURoomCreationRestrictedError" });
    const rec = await c.recording();
    expect(stateNames(rec)).toEqual(refusedAtConnect("Error:SFURoomCreationRestrictedError/SFU_ERROR"));
    const err = rec.states.at(-1)!;
    expect(err).toMatchObject({ message: "Failed to create call" });
    // livekit-client's own error as the page saw it; how it differs from the references: README.md, "Where the
    // real servers differ" 1.
    expect("cause" in err && err.cause).toBe(
      "ConnectionError(reason=0 (NotAllowed), reasonName=ServerUnreachable, status=404): " +
        "could not establish signal connection: requested room does not exist",
    );
    // The jwt service issued a token but created no room, and LiveKit has none.
    expect(rec.livekitAlias).toBeTruthy();
    expect(await e2e.roomService("restricted").listRooms([rec.livekitAlias!])).toEqual([]);
  });

  describe("e. FailToGetOpenIdToken", () => {
    const OPENID_FAILED = ["Initialized", "FetchingConfig", "Error:FailToGetOpenIdToken/OPEN_ID_ERROR"];

    scenario("e1. the jwt service rejects the OpenID token (forged; the homeserver's userinfo says 401)", async () => {
      const u = await e2e.newUser();
      const c = await u.connection({
        roomId: e2e.roomId(),
        forgeOpenIdToken: true,
        retry: { maxAttempts: 2, initialDelayMs: 50 },
      });
      expect(await c.start()).toEqual({ outcome: "rejected", error: "FailToGetOpenIdToken" });
      const rec = await c.recording();
      expect(stateNames(rec)).toEqual(OPENID_FAILED);
      expect(rec.states.at(-1)).toMatchObject({ message: "Something went wrong" });
      // /get_token answers 401 M_UNAUTHORIZED, and its failure decides: no retry (/sfu/get's answer: README.md 7).
      const cause = (rec.states.at(-1) as { cause?: string }).cause;
      expect(cause).toMatch(
        /^SFUConfigError\(httpStatus=401\): POST http:\/\/127\.0\.0\.1:\d+\/get_token answered 401 M_UNAUTHORIZED/,
      );
      expect(rec.starts[0]!.settledAt! - rec.starts[0]!.calledAt).toBeLessThan(5_000);
      expect(rec.livekitAlias).toBeUndefined();
    });

    scenario("e2. the jwt service is down (nothing listens on its port)", async () => {
      const u = await e2e.newUser();
      const port = await freeTcpPort();
      const c = await u.connection({
        roomId: e2e.roomId(),
        serviceUrl: `http://127.0.0.1:${port}`,
        retry: { maxAttempts: 2, initialDelayMs: 100 },
      });
      expect(await c.start()).toEqual({ outcome: "rejected", error: "FailToGetOpenIdToken" });
      const rec = await c.recording();
      expect(stateNames(rec)).toEqual(OPENID_FAILED);
      // Chromium's fetch to a closed port: "TypeError: Failed to fetch", retried once, then given up.
      expect((rec.states.at(-1) as { cause?: string }).cause).toMatch(
        /^SFUConfigError: POST http:\/\/127\.0\.0\.1:\d+\/get_token failed: TypeError: Failed to fetch/,
      );
    });

    scenario("e3. the homeserver rejects the Matrix access token (401 M_UNKNOWN_TOKEN)", async () => {
      const u = await e2e.newUser();
      const c = await u.connection({
        roomId: e2e.roomId(),
        accessToken: "syt_not_a_valid_token",
        retry: { maxAttempts: 2, initialDelayMs: 100 },
      });
      expect(await c.start()).toEqual({ outcome: "rejected", error: "FailToGetOpenIdToken" });
      const rec = await c.recording();
      expect(stateNames(rec)).toEqual(OPENID_FAILED);
      // matrix-js-sdk's MatrixError from Synapse, not retried (a 401 is final).
      expect((rec.states.at(-1) as { cause?: string }).cause).toMatch(
        /^M_UNKNOWN_TOKEN\(httpStatus=401\): MatrixError: \[401\] .*\/openid\/request_token\)$/,
      );
      expect(rec.starts[0]!.settledAt! - rec.starts[0]!.calledAt).toBeLessThan(5_000);
    });
  });

  describe("f. capacity: what the browser can tell (NOTES.md left it unconfirmed)", () => {
    scenario(
      "f1. room full (max_participants 1): the 2nd user gets LivekitConnectionError(WebSocket), not InsufficientCapacity (validate says 200)",
      async () => {
        const roomId = e2e.roomId();
        const alice = await e2e.newUser();
        const bob = await e2e.newUser();
        const a = await alice.connection({ roomId, variant: "full" });
        expect(await a.start()).toEqual({ outcome: "resolved" });
        // Bob goes through a forwarding proxy in front of LiveKit (full), so that the package's own validate probe
        // can be seen: a proxy in front of the jwt service points the `url` of its answer at it.
        const sfu = await LoopbackProxy.start({ name: "sfu-full", target: e2e.env.stack.livekit.full!.http_url });
        const jwt = await LoopbackProxy.start({
          name: "jwt-rewrite",
          target: e2e.env.stack.jwt_services.full!.url,
          rewriteJson: (_r, body) => ({ ...(body as object), url: sfu.wsUrl }),
        });
        e2e.addReport("SFU proxy (full)", () => sfu.describe().join("\n"));
        try {
          const b = await bob.connection({ roomId, variant: "full", serviceUrl: jwt.url });
          expect(await b.start()).toEqual({ outcome: "rejected", error: "LivekitConnectionError" });
          const rec = await b.recording();
          // Not a LeaveRequest(JOIN_FAILURE) as the references expect: README.md, "Where the real servers differ" 2.
          expect(stateNames(rec)).toEqual(refusedAtConnect("Error:LivekitConnectionError/SFU_ERROR"));
          expect((rec.states.at(-1) as { cause?: string }).cause).toBe(WEBSOCKET_ERROR);
          // The upgrade fails (LiveKit's 500), livekit-client's validate and the package's both get 200: a full
          // room is not told apart from any other WebSocket failure.
          expect(sfu.describe()).toEqual([
            "GET /rtc/v1 (upgrade) → upgrade forwarded",
            "GET /rtc/v1/validate → forwarded 200",
            "OPTIONS /rtc/validate → forwarded 204",
            "GET /rtc/validate → forwarded 200",
          ]);
          const alias = (await a.recording()).livekitAlias!;
          expect(await e2e.sfuParticipants(alias, "full")).toEqual([(await a.recording()).localIdentity]);
          await a.stop();
        } finally {
          await jwt.close();
          await sfu.close();
        }
      },
    );

    scenario(
      "f2. node track limit reached (limit.num_tracks 1): via the jwt service → FailToGetOpenIdToken; with an SFU config of our own → InsufficientCapacityError (validate's 503)",
      async () => {
        const roomId = e2e.roomId();
        const alice = await e2e.newUser();
        const bob = await e2e.newUser();
        // (a quick retry absorbs stale node stats left by an earlier run)
        const a = await alice.connection({
          roomId,
          variant: "limited",
          retry: { initialDelayMs: 500, maxAttempts: 8 },
        });
        expect(await a.start()).toEqual({ outcome: "resolved" });
        const ra = await a.recording();
        const alias = ra.livekitAlias!;
        await a.publishFakeMedia({ microphone: true });
        await pollUntil(
          async () => (await e2e.roomService("limited").listParticipants(alias))[0]?.tracks.length ?? 0,
          (n) => n === 1,
          { timeoutMs: 15_000 },
        );
        await new Promise((r) => setTimeout(r, 3000)); // LiveKit refreshes its node stats every 2 s

        // Through the jwt service: its CreateRoom fails at the node limit, so no token (README.md 3).
        const b1 = await bob.connection({ roomId, variant: "limited", retry: { maxAttempts: 2, initialDelayMs: 50 } });
        expect(await b1.start()).toEqual({ outcome: "rejected", error: "FailToGetOpenIdToken" });
        const rb1 = await b1.recording();
        expect(stateNames(rb1)).toEqual(["Initialized", "FetchingConfig", "Error:FailToGetOpenIdToken/OPEN_ID_ERROR"]);
        expect((rb1.states.at(-1) as { cause?: string }).cause).toMatch(
          /answered 500 M_UNKNOWN: Unable to create room on SFU/,
        );

        // With a token of our own (Element Call's existingSFUConfig path; no CreateRoom): LiveKit answers 503 on
        // the upgrade and on validate; livekit-client drops the status (README.md 3), the package's own validate
        // probe sees it.
        const identity = `e2e-direct-${Date.now()}`;
        const { livekit_api_key: key, livekit_api_secret: secret, livekit } = e2e.env.stack;
        const token = new AccessToken(key, secret, { identity, ttl: "10m" });
        token.addGrant({ roomJoin: true, room: alias, canPublish: true, canSubscribe: true });
        const existingSFUConfig = {
          url: livekit.limited!.ws_url,
          jwt: await token.toJwt(),
          livekitAlias: alias,
          livekitIdentity: identity,
        };
        const b2 = await bob.connection({ roomId, variant: "limited", existingSFUConfig });
        expect(await b2.start()).toEqual({ outcome: "rejected", error: "InsufficientCapacityError" });
        const rb2 = await b2.recording();
        expect(stateNames(rb2)).toEqual([
          "Initialized",
          "disconnected",
          "connecting",
          "Error:InsufficientCapacityError/INSUFFICIENT_CAPACITY_ERROR",
        ]);
        expect(rb2.states.at(-1)).toMatchObject({ message: "Insufficient capacity" });
        // The cause is livekit-client's error as it was (the 503 is not in it); what LiveKit's validate says to
        // this JWT, asked from here as the package asks it:
        expect((rb2.states.at(-1) as { cause?: string }).cause).toBe(WEBSOCKET_ERROR);
        const validate = await fetch(`${livekit.limited!.http_url}/rtc/validate`, {
          headers: { authorization: `Bearer ${existingSFUConfig.jwt}` },
        });
        expect([validate.status, (await validate.text()).trim()]).toEqual([
          503,
          "node has exceeded its configured limit",
        ]);
        expect(await e2e.sfuParticipants(alias, "limited")).toEqual([ra.localIdentity]);
        await a.stop();
      },
    );

    scenario(
      "f3. 429 injected by a proxy in front of the SFU → InsufficientCapacityError (the package's validate probe)",
      async () => {
        // A proxy in front of LiveKit main answers 429 to the /rtc… upgrade and to /rtc…/validate (LiveKit itself
        // never answers 429: backend.md §1.5), but lets the CORS preflight through (LiveKit answers it: the page
        // is another origin, and the package's GET carries an Authorization header); a proxy in front of the jwt
        // service points the `url` of its answer at the SFU proxy, so the whole pipeline runs (and the jwt service
        // really creates the room).
        const sfu = await LoopbackProxy.start({
          name: "sfu-429",
          target: e2e.env.stack.livekit.main!.http_url,
          inject: (r) =>
            r.pathname.startsWith("/rtc") && r.method !== "OPTIONS"
              ? {
                  status: 429,
                  body: "too many requests (injected by the e2e proxy)",
                  // as LiveKit's own answers carry it: the page (another origin) may read the validate answer
                  headers: { "access-control-allow-origin": "*" },
                }
              : undefined,
        });
        const jwt = await LoopbackProxy.start({
          name: "jwt-rewrite",
          target: e2e.env.stack.jwt_services.main!.url,
          rewriteJson: (_r, body) => ({ ...(body as object), url: sfu.wsUrl }),
        });
        e2e.addReport("SFU proxy (429)", () => sfu.describe().join("\n"));
        e2e.addReport("jwt proxy (url rewrite)", () => jwt.describe().join("\n"));
        try {
          const u = await e2e.newUser();
          const c = await u.connection({ roomId: e2e.roomId(), serviceUrl: jwt.url });
          // livekit-client drops the 429 (README.md 9); the package's own validate probe reads it. No retry: one
          // upgrade, livekit-client's validate, and the package's (with its preflight).
          expect(await c.start()).toEqual({ outcome: "rejected", error: "InsufficientCapacityError" });
          const rec = await c.recording();
          expect(stateNames(rec)).toEqual(
            refusedAtConnect("Error:InsufficientCapacityError/INSUFFICIENT_CAPACITY_ERROR"),
          );
          // (the cause is livekit-client's error as it was: the 429 is not in it)
          expect((rec.states.at(-1) as { cause?: string }).cause).toBe(WEBSOCKET_ERROR);
          expect(rec.roomEvents).toEqual([expect.objectContaining({ event: "disconnected(UNKNOWN_REASON)" })]);
          expect(u.websockets).toEqual([`${sfu.wsUrl}/rtc/v1`]);
          expect(sfu.describe()).toEqual([
            "GET /rtc/v1 (upgrade) → injected 429",
            "GET /rtc/v1/validate → injected 429",
            "OPTIONS /rtc/validate → forwarded 204",
            "GET /rtc/validate → injected 429",
          ]);
          expect(jwt.describe()).toEqual(["OPTIONS /get_token → forwarded 200", "POST /get_token → forwarded 200"]);
          // LiveKit has the room (the jwt service created it) and nobody in it.
          const alias = rec.livekitAlias!;
          expect((await e2e.roomService().listRooms([alias])).map((r) => r.name)).toEqual([alias]);
          expect(await e2e.sfuParticipants(alias)).toEqual([]);
        } finally {
          await jwt.close();
          await sfu.close();
        }
      },
    );
  });
}
