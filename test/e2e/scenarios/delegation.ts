/**
 * Issue 10: the delayed leave (MSC4140) delegated to the auth service, and the forced endpoint. Real Matrix rooms
 * and real delayed events on Synapse, scheduled by the page's matrix-js-sdk client; the stand-in's delegation
 * job (its log says what it did); LiveKit's real webhooks.
 */
import type { Recording } from "../page/api";
import type { UserPage } from "../support/fixtures";
import { pollUntil, stateNames } from "../support/fixtures";
import { pendingDelayedEvent, roomStateContent, sendDelayedEventNow } from "../support/matrix";
import { LoopbackProxy } from "../support/proxy";
import { HAPPY, e2e, expectSFUParticipants, scenario, timings, waitForRecording } from "../support/scenario";

const CALL_MEMBER = "org.matrix.msc3401.call.member";
/** What the membership event holds while the member is in the call (its content is irrelevant here). */
const JOINED = { application: "m.call", call_id: "", scope: "m.room", e2e: "joined" };
/** The leave: empty content, as MatrixRTC's membership manager schedules it. */
const LEFT = {};
/** The delegation region when it works: waits for the room, then POSTs /delegate_delayed_leave. */
const DELEGATED = ["WaitingForConnection", "Delegating", "Delegated"];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)));

/** Runs `body` with a recording proxy in front of a stack jwt service; the POSTs it saw go into the report. */
async function withServiceProxy<T>(variant: "legacy" | "old", body: (p: LoopbackProxy) => Promise<T>): Promise<T> {
  const proxy = await LoopbackProxy.start({ name: `jwt-${variant}`, target: e2e.env.stack.jwt_services[variant]!.url });
  e2e.addReport(`jwt proxy (${variant})`, () => proxy.describe().join("\n"));
  try {
    return await body(proxy);
  } finally {
    await proxy.close();
  }
}

/** The requests a proxy forwarded with this method, as `<path> <status>`. */
const seen = (p: LoopbackProxy, method = "POST"): string[] =>
  p.requests.filter((r) => r.method === method).map((r) => `${r.pathname} ${String(r.status)}`);

/** A real Matrix room, the member's "joined" state event, and its delayed leave; the delay id stays secret. */
async function callWithDelayedLeave(u: UserPage, delayMs: number) {
  const roomId = await u.createMatrixRoom();
  const stateKey = `_${u.user.user_id}_${u.user.device_id}_m.call`;
  await u.sendState(roomId, CALL_MEMBER, JOINED, stateKey);
  const scheduledAt = Date.now();
  const delayId = await u.scheduleDelayedState(roomId, CALL_MEMBER, LEFT, stateKey, delayMs);
  expect(/^syd_/.test(delayId)).toBe(true); // (not toMatch: a failure would print the id)
  const hs = e2e.env.stack.homeserver.base_url;
  return {
    roomId,
    delayId,
    scheduledAt,
    memberState: () => roomStateContent(hs, u.user, roomId, CALL_MEMBER, stateKey),
    pending: () => pendingDelayedEvent(hs, u.user, delayId),
  };
}

/** The stand-in's log lines (since the test began) about this delay id: `restart:200`, `send:200`, … */
function delayedEventActions(delayId: string): string[] {
  return e2e
    .jwtLog()
    .filter((l) => l.msg === "ExecuteDelayedEventAction" && l.delayId === delayId)
    .map((l) => `${String(l.action)}:${String(l.status ?? l.err)}`);
}

/** The stand-in's webhook lines (since the test began) for this LiveKit identity. */
function webhooks(identity: string): { event: string; signal: string; at: number }[] {
  return e2e
    .jwtLog()
    .filter((l) => l.msg === "Handler: SFU webhook" && l.lkId === identity)
    .map((l) => ({ event: String(l.event), signal: String(l.signal), at: Date.parse(String(l.time)) }));
}

/** The times (ms since the epoch) of the stand-in's successful restarts of this delay id, since the test began. */
function restartTimes(delayId: string): number[] {
  return e2e
    .jwtLog()
    .filter((l) => l.msg === "ExecuteDelayedEventAction" && l.delayId === delayId)
    .filter((l) => l.action === "restart" && l.status === 200)
    .map((l) => Date.parse(String(l.time)));
}

/**
 * How long after a crash the leave may take: LiveKit notices a vanished browser participant only when its peer
 * connection times out (≈ 21 s measured, `PEER_CONNECTION_DISCONNECTED`), and the service keeps restarting the
 * delay until then.
 */
const CRASH_TO_LEAVE_BOUND_MS = 40_000;

async function connectDelegating(
  u: UserPage,
  roomId: string,
  delayedLeave: { delayId: string; delayTimeoutMs: number },
) {
  const c = await u.connection({ roomId, delayedLeave });
  expect(await c.start()).toEqual({ outcome: "resolved" });
  const rec = await waitForRecording(
    c,
    (r) => ["Delegated", "Failed"].includes(r.delegation.at(-1)?.state ?? ""),
    "the delegation to settle",
    { timeoutMs: 15_000 },
  );
  expect(stateNames(rec)).toEqual(HAPPY);
  expect(rec.delegation.map((d) => d.state)).toEqual(DELEGATED);
  expect(rec.delegationError).toBeUndefined();
  expect(rec.machineStates.at(-1)?.state).toBe("Livekit.room.connected");
  return { c, rec };
}

export function delegationScenarios(): void {
  describe("n. delayed leave delegated to the auth service (MSC4140 on Synapse, LiveKit webhooks)", () => {
    scenario(
      "n1. crash (renderer killed, no stop()): the auth service sends the leave; the delay was restarted meanwhile",
      async () => {
        const D = 10_000;
        const u = await e2e.newUser();
        const call = await callWithDelayedLeave(u, D);
        const { rec } = await connectDelegating(u, call.roomId, { delayId: call.delayId, delayTimeoutMs: D });
        const identity = rec.localIdentity!;
        await expectSFUParticipants(rec.livekitAlias!, [identity]);

        // Connected for longer than the delay: only the service's restarts (at once, then every 0.8·D) keep it pending.
        await sleep(call.scheduledAt + D + 2_500 - Date.now());
        const pending = await call.pending();
        expect(pending).toBeDefined();
        expect(pending!.running_since).toBeGreaterThan(call.scheduledAt + 0.5 * D);
        expect(await call.memberState()).toEqual(JOINED);
        // (the job the token request started, replaced by /delegate_delayed_leave's, may log an aborted restart)
        const actions = delayedEventActions(call.delayId);
        expect(actions.filter((a) => a === "restart:200").length).toBeGreaterThanOrEqual(2);
        expect(actions.filter((a) => !a.startsWith("restart:"))).toEqual([]);

        // The crash: no pagehide / beforeunload (on which livekit-client would send a leave), no stop().
        const crashedAt = Date.now();
        await u.crash();
        const sfuGone = expectSFUParticipants(rec.livekitAlias!, []).then(() => Date.now());
        const left = await pollUntil(call.memberState, (s) => s !== undefined && Object.keys(s).length === 0, {
          timeoutMs: CRASH_TO_LEAVE_BOUND_MS,
          intervalMs: 100,
        });
        const leftAt = Date.now();
        expect(left.value).toEqual(LEFT);
        const sfuGoneAt = await sfuGone;
        const hook = webhooks(identity).find((w) => w.event !== "participant_joined");
        const measure = "crash → (ms, Node clock)";
        timings.push(
          { test: "n1 crash → LiveKit's webhook (participant gone)", ms: (hook?.at ?? NaN) - crashedAt, measure },
          { test: "n1 crash → leave event visible on Synapse", ms: leftAt - crashedAt, measure },
          { test: "n1 crash → ListParticipants empty", ms: sfuGoneAt - crashedAt, measure },
        );
        // LiveKit reports the vanished participant as left, not by the client's request (the stand-in maps its
        // disconnect reason to ParticipantConnectionAborted)…
        expect(hook).toMatchObject({ event: "participant_left", signal: "ParticipantConnectionAborted" });
        // …the service sends the leave at once (a 200: had Synapse's own timer sent it, the send would get 404; the
        // stand-in logs the send once Synapse has answered it, which may be just after the leave shows)…
        const sent = await pollUntil(
          async () => delayedEventActions(call.delayId).at(-1),
          (a) => a?.startsWith("send:") ?? false,
          { timeoutMs: 5_000, intervalMs: 50 },
        );
        expect(sent.value).toBe("send:200");
        expect(leftAt - hook!.at).toBeLessThan(1_000);
        // …and until then kept restarting the delay: the leave came later than D after the crash only because of
        // that (the ghost member lasts as long as LiveKit takes to notice).
        const lastRestart = Math.max(...restartTimes(call.delayId));
        expect(leftAt).toBeLessThan(lastRestart + D);
        if (hook!.at - crashedAt > D) expect(lastRestart).toBeGreaterThan(crashedAt);
        expect(await call.pending()).toBeUndefined();
      },
    );

    scenario(
      "n2. clean stop(): LiveKit reports participant_left and the auth service sends the leave at once",
      async () => {
        const D = 30_000;
        const u = await e2e.newUser();
        const call = await callWithDelayedLeave(u, D);
        const { c, rec } = await connectDelegating(u, call.roomId, { delayId: call.delayId, delayTimeoutMs: D });
        const stoppedAt = Date.now();
        await c.stop();
        expect(stateNames(await c.recording())).toEqual([...HAPPY, "Stopped"]);
        // The package neither sends nor cancels the delayed leave; here the app does nothing either.
        const left = await pollUntil(call.memberState, (s) => s !== undefined && Object.keys(s).length === 0, {
          timeoutMs: 10_000,
          intervalMs: 100,
        });
        expect(left.value).toEqual(LEFT);
        timings.push({
          test: "n2 stop() → leave event visible",
          ms: Date.now() - stoppedAt,
          measure: "stop() → (ms, Node clock)",
        });
        expect(webhooks(rec.localIdentity!).map((w) => w.event)).toContain("participant_left");
        // The stand-in logs its send once Synapse has answered it, which may be just after the leave shows.
        const sent = await pollUntil(
          async () => delayedEventActions(call.delayId).at(-1),
          (a) => a?.startsWith("send:") ?? false,
          { timeoutMs: 5_000, intervalMs: 50 },
        );
        expect(sent.value).toBe("send:200");
        expect(await call.pending()).toBeUndefined();
      },
    );

    scenario(
      "n2b. the app sends its own leave before stop() (membership manager): the service's send finds it gone (404)",
      async () => {
        const D = 30_000;
        const u = await e2e.newUser();
        const call = await callWithDelayedLeave(u, D);
        const { c, rec } = await connectDelegating(u, call.roomId, { delayId: call.delayId, delayTimeoutMs: D });
        expect(await sendDelayedEventNow(e2e.env.stack.homeserver.base_url, call.delayId)).toBe(200);
        expect(await call.memberState()).toEqual(LEFT);
        await c.stop();
        await pollUntil(
          async () => delayedEventActions(call.delayId).at(-1),
          (a) => a?.startsWith("send:") ?? false,
          { timeoutMs: 10_000, intervalMs: 100 },
        );
        // lk-jwt-service counts a 404 on send as done (already sent or cancelled).
        expect(delayedEventActions(call.delayId).at(-1)).toBe("send:404");
        expect(webhooks(rec.localIdentity!).map((w) => w.event)).toContain("participant_left");
      },
    );

    scenario("n3. updateDelayedLeave while connected: re-delegated without reconnecting", async () => {
      const D = 60_000;
      const u = await e2e.newUser();
      const call = await callWithDelayedLeave(u, D);
      const { c, rec } = await connectDelegating(u, call.roomId, { delayId: call.delayId, delayTimeoutMs: D });
      const stateKey = `_${u.user.user_id}_${u.user.device_id}_m.call`;
      const delayId2 = await u.scheduleDelayedState(call.roomId, CALL_MEMBER, LEFT, stateKey, D);
      const updatedAt = (await c.recording()).webSockets.length;
      await c.updateDelayedLeave({ delayId: delayId2, delayTimeoutMs: D });
      const after = await waitForRecording(
        c,
        (r) => r.delegation.length === DELEGATED.length + 2 && r.delegation.at(-1)?.state === "Delegated",
        "the re-delegation",
        { timeoutMs: 15_000 },
      );
      expect(after.delegation.map((d) => d.state)).toEqual([...DELEGATED, "Delegating", "Delegated"]);
      // The room was not touched: no new state, statechart room state, WebSocket or Room event.
      expect(stateNames(after)).toEqual(HAPPY);
      expect(after.machineStates).toEqual(rec.machineStates);
      expect(after.webSockets.length).toBe(updatedAt);
      expect(after.roomEvents).toEqual(rec.roomEvents);
      const delegations = e2e.jwtLog().filter((l) => String(l.msg).includes("(delegate_delayed_leave)"));
      expect(delegations.map((l) => l.delayId === delayId2)).toEqual([false, true]);
      expect(e2e.jwtLog().some((l) => l.msg === "Handler: replacing existing job")).toBe(true);
      // The new delay id is the one the service keeps alive and, after stop(), sends.
      await c.stop();
      await pollUntil(
        async () => delayedEventActions(delayId2).at(-1),
        (a) => a?.startsWith("send:") ?? false,
        { timeoutMs: 10_000, intervalMs: 100 },
      );
      expect(delayedEventActions(delayId2).at(-1)).toBe("send:200");
      expect(delayedEventActions(call.delayId).filter((a) => a.startsWith("send"))).toEqual([]);
      expect(await call.memberState()).toEqual(LEFT);
    });

    scenario(
      "n4. an older auth service (v0.4.3): connected without the delay fields, delegation Failed (no such route)",
      () =>
        withServiceProxy("old", async (proxy) => {
          const u = await e2e.newUser();
          const c = await u.connection({
            roomId: e2e.roomId(),
            variant: "old",
            serviceUrl: proxy.url,
            // (this service never uses it: a fake one will do)
            delayedLeave: { delayId: "syd_e2eNotScheduled", delayTimeoutMs: 10_000 },
            retry: { maxAttempts: 2, initialDelayMs: 50 },
          });
          expect(await c.start()).toEqual({ outcome: "resolved" });
          const rec: Recording = await waitForRecording(
            c,
            (r) => ["Delegated", "Failed"].includes(r.delegation.at(-1)?.state ?? ""),
            "the delegation to settle",
            { timeoutMs: 15_000 },
          );
          expect(stateNames(rec)).toEqual(HAPPY);
          expect(rec.delegation.map((d) => d.state)).toEqual(["WaitingForConnection", "Delegating", "Failed"]);
          // Go's mux answers the unknown route's CORS preflight 404 without CORS headers: in a browser the 404 is
          // never seen, only a network error (as for a service that is down).
          expect(rec.delegationError).toMatch(/\/delegate_delayed_leave failed: TypeError: Failed to fetch/);
          expect(rec.delegationError).not.toMatch(/syd_|syt_/);
          expect(rec.machineStates.at(-1)?.state).toBe("Livekit.room.connected");
          // /get_token refused the delay fields (400 M_NOT_JSON) and took the request without them.
          expect(seen(proxy)).toEqual(["/get_token 400", "/get_token 200"]);
          expect(seen(proxy, "OPTIONS").filter((r) => r.startsWith("/delegate"))).toEqual([
            "/delegate_delayed_leave 404",
            "/delegate_delayed_leave 404",
          ]);
          const refusals = e2e
            .jwtLog("old")
            .filter((l) => l.msg === "request failed")
            .map((l) => `${String(l.path)} ${String(l.status)} ${String(l.errcode)}`);
          expect(refusals).toEqual(["/get_token 400 M_NOT_JSON"]);
          await expectSFUParticipants(rec.livekitAlias!, [rec.localIdentity!], "old");
          // The call is unaffected.
          await sleep(500);
          const later = await c.recording();
          expect(stateNames(later)).toEqual(HAPPY);
          expect(later.machineStates).toEqual(rec.machineStates);
          await c.stop();
          expect(stateNames(await c.recording())).toEqual([...HAPPY, "Stopped"]);
        }),
    );
  });

  describe("o. forced auth-service endpoint", () => {
    scenario(
      "o1. forced matrix_2_0 against an auth service without /get_token (v0.3.0) → NoMatrix2AuthorizationService",
      () =>
        withServiceProxy("legacy", async (proxy) => {
          const u = await e2e.newUser();
          const c = await u.connection({
            roomId: e2e.roomId(),
            serviceUrl: proxy.url,
            forceJwtEndpoint: "matrix_2_0",
            retry: { maxAttempts: 2, initialDelayMs: 50 },
          });
          expect(await c.start()).toEqual({ outcome: "rejected", error: "NoMatrix2AuthorizationService" });
          const rec = await c.recording();
          expect(stateNames(rec)).toEqual([
            "Initialized",
            "FetchingConfig",
            "Error:NoMatrix2AuthorizationService/NO_MATRIX_2_0_AUTHORIZATION_SERVICE",
          ]);
          // The route's CORS preflight gets Go's plain 404 (no CORS headers): the page sees a network error, twice
          // (retried), and never POSTs.
          expect((rec.states.at(-1) as { cause?: string }).cause).toMatch(
            /^SFUConfigError: POST http:\/\/127\.0\.0\.1:\d+\/get_token failed: TypeError: Failed to fetch/,
          );
          expect(rec.machineStates.at(-1)?.state).toBe("Failed.NoMatrix2AuthorizationService");
          expect(seen(proxy, "OPTIONS")).toEqual(["/get_token 404", "/get_token 404"]);
          expect(seen(proxy)).toEqual([]); // (and no /sfu/get)
          expect(rec.webSockets).toEqual([]);
        }),
    );

    scenario("o2. forced legacy against the same service: /sfu/get only, connected", () =>
      withServiceProxy("legacy", async (proxy) => {
        const u = await e2e.newUser();
        const c = await u.connection({ roomId: e2e.roomId(), serviceUrl: proxy.url, forceJwtEndpoint: "legacy" });
        expect(await c.start()).toEqual({ outcome: "resolved" });
        const rec = await c.recording();
        expect(stateNames(rec)).toEqual(HAPPY);
        expect(seen(proxy)).toEqual(["/sfu/get 200"]);
        // v0.3.0: the LiveKit room is the Matrix room id, the identity `user:device`.
        expect(rec.localIdentity).toBe(`${u.user.user_id}:${u.user.device_id}`);
        await expectSFUParticipants(rec.livekitAlias!, [rec.localIdentity!], "legacy");
        await c.stop();
      }),
    );
  });
}
