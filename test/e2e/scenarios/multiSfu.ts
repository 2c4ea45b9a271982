/**
 * The ConnectionManager (issue 11, multi-SFU) in Chromium: one user's connections to several SFUs at once, each
 * through its own auth service, matched with the call's memberships; a transport removed, one whose auth service
 * fails (retried), and the manager stopped. Each SFU's LiveKit is asked who is in the room.
 */
import type { ManagerRecording, MembershipParams, StateRecord } from "../page/api";
import { DedicatedSfu } from "../support/dedicatedSfu";
import { pollUntil, type ManagerHandle } from "../support/fixtures";
import { LoopbackProxy, type ProxyRecord } from "../support/proxy";
import { HAPPY, e2e, scenario, timings } from "../support/scenario";

/** The measure under which the p scenarios' wall times are printed. */
const WALL_TIME = "p scenarios, wall time (ms, Node clock)";
/** The measure of p2's gaps between token attempts (their `POST /get_token`s), as the proxy saw them. */
const RETRY_GAPS = "p2, gaps between token attempts at the proxy (ms; policy 300, 600, then 1200)";
/** The measure of p2's waits: from a failed attempt's last answer (its `/sfu/get`) to the next attempt's POST. */
const RETRY_WAITS = "p2, failed attempt's last 503 → next attempt's POST at the proxy (ms; policy 300, 600, 1200)";
/** The slot's retry delays under p2's policy `{initialDelayMs: 300, maxDelayMs: 1200}`: doubling, at most 1200. */
const RETRY_DELAYS = [300, 600, 1200];
/**
 * How much longer than the policy's delay a wait may be: the next attempt's OpenID request to Synapse comes first
 * (≈ 25–45 ms here), and a loaded machine adds to that.
 */
const WAIT_SLACK_MS = 300;
/** The measure of how soon LiveKit no longer lists C (Node clock, polled every 100 ms). */
const SFU_DROPS_C = "p1/p3, SFU no longer lists C, from setTransports / stop() (ms, Node clock, 100 ms polls)";
/** How long LiveKit may take to drop C once its connection is stopped (an explicit leave: at once, in practice). */
const SFU_LEAVE_TIMEOUT_MS = 5_000;

/** `state$` values as a flat list, as `stateNames` has them for a Connection's recording. */
const names = (states: StateRecord[]): string[] =>
  states.map((s) => ("state" in s ? s.state : `Error:${s.error}/${s.code}`));

/** A slot's statuses over time, each change once (a slot record is also made when only its connection changed). */
const statusesOf = (rec: ManagerRecording, url: string): string[] =>
  rec.slots
    .filter((s) => s.url === url)
    .map((s) => s.status)
    .filter((s, i, all) => i === 0 || all[i - 1] !== s);

/** Polls the manager's recording until `done` holds (bounded); fails naming `what` if it does not come. */
async function waitForManager(
  m: ManagerHandle,
  done: (rec: ManagerRecording) => boolean,
  what: string,
  { timeoutMs = 15_000, intervalMs = 50 }: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<ManagerRecording> {
  const r = await pollUntil(() => m.recording(), done, { timeoutMs, intervalMs });
  if (!r.ok) {
    const last = r.value;
    throw new Error(
      `gave up after ${timeoutMs} ms waiting for ${what}; manager: ${last.manager.map((s) => s.state).join(" → ")}; ` +
        `data now: ${JSON.stringify(last.current)}; slots now: ${JSON.stringify(last.currentSlots)}`,
    );
  }
  return r.value;
}

/** Polls a LiveKit (bounded) until it lists exactly `identities`; returns what it listed last. */
async function sfuLists(read: () => Promise<string[]>, identities: string[], timeoutMs: number): Promise<string[]> {
  const want = [...identities].sort();
  return (await pollUntil(read, (ps) => ps.join() === want.join(), { timeoutMs, intervalMs: 100 })).value;
}

/** The token requests of one attempt each: the `POST /get_token` (the `/sfu/get` fallback follows it). */
const tokenAttempts = (requests: ProxyRecord[]): ProxyRecord[] =>
  requests.filter((r) => r.method === "POST" && r.pathname === "/get_token");

/**
 * Between consecutive token attempts: the gap from one `POST /get_token` to the next, and the wait from the first
 * one's last request (its `/sfu/get` fallback, the failure) to the next `POST /get_token`.
 */
function retryTimes(requests: ProxyRecord[]): { gaps: number[]; waits: number[] } {
  const posts = requests.filter((r) => r.method === "POST");
  const attempts = tokenAttempts(requests);
  const gaps = attempts.slice(1).map((r, i) => r.receivedAt - attempts[i]!.receivedAt);
  const waits = attempts.slice(1).map((r) => r.receivedAt - posts[posts.indexOf(r) - 1]!.receivedAt);
  return { gaps, waits };
}

/**
 * A manager's connection's `state$` on the happy path, from the value it shows when the data first holds it: the
 * slot has sent START by then (`Initialized` is never seen).
 */
const ADOPTED_HAPPY = HAPPY.slice(1);
/** The `state$` of a connection whose auth service answered 503, and of one retried after that. */
const OPENID_FAILED = ["FetchingConfig", "Error:FailToGetOpenIdToken/OPEN_ID_ERROR"];

const memberId = (who: string): string => `m-${who}-${Date.now().toString(36)}`;

export function multiSfuScenarios(): void {
  describe("p. ConnectionManager: one connection per SFU (issue 11)", () => {
    scenario(
      "p1. two SFUs: a connection to each, in order, with each SFU's participant matched to its membership; a transport removed → its connection Stopped and its SFU drops C",
      async () => {
        const started = Date.now();
        const sfu2 = await DedicatedSfu.start(e2e.env.stack, "multi-sfu");
        e2e.addLog("SFU 2 livekit", sfu2.livekitLog);
        e2e.addLog("SFU 2 lk-jwt", sfu2.jwtLog);
        try {
          const roomId = e2e.roomId();
          const sfu1Url = e2e.env.stack.jwt_services.main!.url;
          const sfu2Url = sfu2.jwtUrl;
          const [alice, bob, carol] = await Promise.all([e2e.newUser(), e2e.newUser(), e2e.newUser()]);
          const [aMember, bMember, cMember] = [memberId("a"), memberId("b"), memberId("c")];
          // A on SFU 1 (the stack's main LiveKit), B on SFU 2 (a LiveKit and auth service of the test's own).
          const a = await alice.connection({ roomId, memberId: aMember });
          const b = await bob.connection({ roomId, memberId: bMember, serviceUrl: sfu2Url });
          expect(await Promise.all([a.start(), b.start()])).toEqual([{ outcome: "resolved" }, { outcome: "resolved" }]);
          const [ra, rb] = await Promise.all([a.recording(), b.recording()]);
          const [idA, idB] = [ra.localIdentity!, rb.localIdentity!];
          const alias = ra.livekitAlias!;
          expect(rb.livekitAlias).toBe(alias); // the same Matrix room: the same LiveKit room name on both SFUs

          // C's manager: local SFU 1, and the members' transports SFU 1 (A's, and C's own) and SFU 2 (B's).
          const m = await carol.manager({ roomId, memberId: cMember, local: sfu1Url, remote: [sfu1Url, sfu2Url] });
          const both = await waitForManager(
            m,
            (r) => r.current.length === 2 && r.current.every((c) => c.state === "connected"),
            "both connections connected",
          );
          // The data, now: one connection per auth service, the local one first, each with its SFU's participant.
          expect(both.current).toEqual([
            { url: sfu1Url, state: "connected", participants: [idA] },
            { url: sfu2Url, state: "connected", participants: [idB] },
          ]);
          expect(both.manager.map((s) => s.state)).toEqual(["Running"]);
          expect(both.currentSlots.map((s) => [s.url, s.status, s.isLocal, s.wanted])).toEqual([
            [sfu1Url, "Live.Running", true, true],
            [sfu2Url, "Live.Running", false, true],
          ]);
          // Each connection's state$ (from the value it had when the data first held it): the pipeline, no error.
          expect(both.connections.map((c) => c.url)).toEqual([sfu1Url, sfu2Url]);
          for (const c of both.connections) {
            expect(names(c.states)).toEqual(ADOPTED_HAPPY);
            expect(c.livekitAlias).toBe(alias);
          }
          const idC = both.connections[0]!.localIdentity!;
          expect(both.connections[1]!.localIdentity).toBe(idC); // the same membership: the same identity on both
          const sfu1Before = names(both.connections[0]!.states);

          // matrix-js-sdk's CallMemberships (m.rtc.member) of A, B and C, matched against the data: A and B to their
          // LiveKit participants on their own transport's connection; C's own device skipped.
          const membership = (who: typeof alice, id: string, serviceUrl: string): MembershipParams => ({
            userId: who.user.user_id,
            deviceId: who.user.device_id,
            memberId: id,
            serviceUrl,
          });
          const matched = await m.matchMembers([
            membership(alice, aMember, sfu1Url),
            membership(bob, bMember, sfu2Url),
            membership(carol, cMember, sfu1Url),
          ]);
          expect(matched).toEqual([
            {
              userId: alice.user.user_id,
              deviceId: alice.user.device_id,
              rtcBackendIdentity: idA,
              transportUrl: sfu1Url,
              connectionUrl: sfu1Url,
              participantIdentity: idA,
            },
            {
              userId: bob.user.user_id,
              deviceId: bob.user.device_id,
              rtcBackendIdentity: idB,
              transportUrl: sfu2Url,
              connectionUrl: sfu2Url,
              participantIdentity: idB,
            },
          ]);

          // Each LiveKit has C beside its own member.
          expect(await e2e.sfuParticipants(alias)).toEqual([idA, idC].sort());
          expect(await sfu2.participants(alias)).toEqual([idB, idC].sort());

          // B leaves the call: SFU 2 is no longer among the transports.
          const removedAt = Date.now();
          await m.setTransports(sfu1Url, [sfu1Url]);
          const retired = await waitForManager(
            m,
            (r) => r.connections[1]?.completedAt !== undefined,
            "the SFU 2 connection's state$ to complete",
          );
          const c2 = retired.connections[1]!;
          expect(names(c2.states)).toEqual([...ADOPTED_HAPPY, "Stopped"]);
          expect(c2.roomState).toBe("disconnected");
          expect(statusesOf(retired, sfu2Url)).toEqual(["Preparing", "Live.Running", "Live.Retiring"]);
          expect(retired.currentSlots.map((s) => s.url)).toEqual([sfu1Url]); // the retired slot is done
          expect(retired.data.at(-1)!.connections.map((c) => c.url)).toEqual([sfu1Url]);
          // SFU 2 drops C; SFU 1 keeps both.
          expect(await sfuLists(() => sfu2.participants(alias), [idB], SFU_LEAVE_TIMEOUT_MS)).toEqual([idB]);
          timings.push({ test: "p1 SFU 2", ms: Date.now() - removedAt, measure: SFU_DROPS_C });
          expect(await e2e.sfuParticipants(alias)).toEqual([idA, idC].sort());
          // C's SFU 1 connection went on as it was: nothing after `connected`.
          const end = await m.recording();
          expect(names(end.connections[0]!.states)).toEqual(sfu1Before);
          expect(end.connections[0]!.completedAt).toBeUndefined();
          expect(end.current).toEqual([{ url: sfu1Url, state: "connected", participants: [idA] }]);
          expect(statusesOf(end, sfu1Url)).toEqual(["Preparing", "Live.Running"]);
          timings.push({ test: "p1", ms: Date.now() - started, measure: WALL_TIME });
        } finally {
          await sfu2.stop();
        }
      },
    );

    scenario(
      "p2. an auth service answering 503: that connection fails and is retried (300, 600 ms, …) while SFU 1 stays connected; once it answers, the next retry connects",
      async () => {
        const started = Date.now();
        let injecting = true;
        // In front of the `limited` variant's auth service (a LiveKit of its own: C's identity there is no
        // duplicate of C's on main's LiveKit). Its token endpoints answer 503 until `injecting` is turned off.
        const proxy = await LoopbackProxy.start({
          name: "jwt-limited-503",
          target: e2e.env.stack.jwt_services.limited!.url,
          inject: (r) =>
            injecting && r.method === "POST" && (r.pathname === "/get_token" || r.pathname === "/sfu/get")
              ? {
                  status: 503,
                  body: JSON.stringify({ errcode: "M_UNKNOWN", error: "unavailable (injected by the e2e proxy)" }),
                  // as the auth service's own answers: the page (another origin) may read the status
                  headers: { "content-type": "application/json", "access-control-allow-origin": "*" },
                }
              : undefined,
        });
        e2e.addReport("jwt proxy (limited, 503)", () => proxy.describe().join("\n"));
        try {
          const sfu1Url = e2e.env.stack.jwt_services.main!.url;
          const carol = await e2e.newUser();
          const m = await carol.manager({
            roomId: e2e.roomId(),
            local: sfu1Url,
            remote: [proxy.url],
            reconnect: { maxAttempts: 5, initialDelayMs: 300, maxDelayMs: 1200 },
            retry: { maxAttempts: 1 },
          });
          // Three attempts have failed (the slot counts a retry as it starts it): waiting 1200 ms for the 4th.
          const failing = await waitForManager(
            m,
            (r) =>
              r.currentSlots.some((s) => s.url === proxy.url && s.status === "Live.WaitingToRetry" && s.retries === 2),
            "the third failure of the proxied connection",
          );
          const slot = failing.currentSlots.find((s) => s.url === proxy.url)!;
          // The failure, in the manager's snapshot (context.slots[i].error): the auth service's 503.
          expect(slot.error).toMatchObject({ error: "FailToGetOpenIdToken", code: "OPEN_ID_ERROR" });
          expect(slot.error!.cause).toMatch(
            /^SFUConfigError\(httpStatus=503\): POST http:\/\/127\.0\.0\.1:\d+\/get_token answered 503/,
          );
          expect(statusesOf(failing, proxy.url)).toEqual([
            "Preparing",
            ...Array(3).fill(["Live.Running", "Live.WaitingToRetry"]).flat(),
          ]);
          const proxied = failing.connections.find((c) => c.url === proxy.url)!;
          expect(names(proxied.states)).toEqual(Array(3).fill(OPENID_FAILED).flat());
          // The proxy: each attempt POSTed /get_token, then /sfu/get, both answered 503; from each failure to the
          // next attempt, the policy's delay (300, then 600 ms) and the next attempt's OpenID request.
          const attempts = tokenAttempts(proxy.requests);
          expect(attempts.map((r) => `${r.outcome} ${r.status}`)).toEqual(Array(3).fill("injected 503"));
          expect(proxy.describe().filter((l) => l.startsWith("POST"))).toEqual(
            Array(3).fill(["POST /get_token → injected 503", "POST /sfu/get → injected 503"]).flat(),
          );
          const first = retryTimes(proxy.requests);
          expect(first.waits).toHaveLength(2);
          for (const [i, wait] of first.waits.entries()) {
            expect(wait).toBeGreaterThanOrEqual(RETRY_DELAYS[i]!);
            expect(wait).toBeLessThan(RETRY_DELAYS[i]! + WAIT_SLACK_MS);
          }
          // SFU 1 stayed connected throughout.
          const sfu1 = failing.connections.find((c) => c.url === sfu1Url)!;
          const sfu1States = names(sfu1.states);
          expect(sfu1States).toEqual(ADOPTED_HAPPY);
          expect(statusesOf(failing, sfu1Url)).toEqual(["Preparing", "Live.Running"]);
          const alias = sfu1.livekitAlias!;
          const idC = sfu1.localIdentity!;
          expect(await e2e.sfuParticipants(alias)).toEqual([idC]);

          // The auth service is back: the next retry (1200 ms after the third failure) connects.
          injecting = false;
          const back = await waitForManager(
            m,
            (r) => r.current.length === 2 && r.current.every((c) => c.state === "connected"),
            "the proxied connection connected",
          );
          expect(back.current).toEqual([
            { url: sfu1Url, state: "connected", participants: [] },
            { url: proxy.url, state: "connected", participants: [] },
          ]);
          const recovered = back.currentSlots.find((s) => s.url === proxy.url)!;
          expect(recovered).toMatchObject({ status: "Live.Running", retries: 0 });
          expect(recovered.error).toBeUndefined();
          expect(statusesOf(back, proxy.url)).toEqual([
            "Preparing",
            ...Array(3).fill(["Live.Running", "Live.WaitingToRetry"]).flat(),
            "Live.Running",
          ]);
          expect(names(back.connections.find((c) => c.url === proxy.url)!.states)).toEqual([
            ...Array(3).fill(OPENID_FAILED).flat(),
            ...ADOPTED_HAPPY,
          ]);
          const all = tokenAttempts(proxy.requests);
          expect(all.map((r) => `${r.outcome} ${r.status}`)).toEqual([
            ...Array(3).fill("injected 503"),
            "forwarded 200",
          ]);
          const { gaps, waits } = retryTimes(proxy.requests);
          expect(waits).toHaveLength(3);
          expect(waits[2]).toBeGreaterThanOrEqual(RETRY_DELAYS[2]!);
          expect(waits[2]).toBeLessThan(RETRY_DELAYS[2]! + WAIT_SLACK_MS);
          // That LiveKit lists C; SFU 1 went on as it was (nothing after `connected`) and lists C.
          expect(await e2e.sfuParticipants(alias, "limited")).toEqual([idC]);
          expect(names(back.connections.find((c) => c.url === sfu1Url)!.states)).toEqual(sfu1States);
          expect(await e2e.sfuParticipants(alias)).toEqual([idC]);
          expect(back.manager.map((s) => s.state)).toEqual(["Running"]);
          gaps.forEach((ms, i) => timings.push({ test: `p2 gap ${i + 1}`, ms, measure: RETRY_GAPS }));
          waits.forEach((ms, i) => timings.push({ test: `p2 wait ${i + 1}`, ms, measure: RETRY_WAITS }));
          timings.push({ test: "p2", ms: Date.now() - started, measure: WALL_TIME });
        } finally {
          await proxy.close();
        }
      },
    );

    scenario(
      "p3. stop(): resolves once every room is disconnected; no LiveKit lists C; the manager is Stopped",
      async () => {
        const started = Date.now();
        const sfu1Url = e2e.env.stack.jwt_services.main!.url;
        const sfu2Url = e2e.env.stack.jwt_services.limited!.url;
        const carol = await e2e.newUser();
        const m = await carol.manager({ roomId: e2e.roomId(), local: sfu1Url, remote: [sfu2Url] });
        const connected = await waitForManager(
          m,
          (r) => r.current.length === 2 && r.current.every((c) => c.state === "connected"),
          "both connections connected",
        );
        const alias = connected.connections[0]!.livekitAlias!;
        const idC = connected.connections[0]!.localIdentity!;
        expect(await e2e.sfuParticipants(alias)).toEqual([idC]);
        expect(await e2e.sfuParticipants(alias, "limited")).toEqual([idC]);

        const stoppedAt = Date.now();
        await m.stop();
        const rec = await m.recording();
        expect(rec.stops).toHaveLength(1);
        expect(rec.stops[0]!.resolvedAt).toBeDefined();
        expect(rec.manager.map((s) => s.state)).toEqual(["Running", "Stopping", "Stopped"]);
        expect(rec.currentSlots).toEqual([]);
        expect(rec.current).toEqual([]);
        // Each connection: Stopped, its room disconnected by the time stop() resolved, its state$ completed.
        expect(rec.connections.map((c) => [c.url, names(c.states), c.roomState, c.completedAt !== undefined])).toEqual([
          [sfu1Url, [...ADOPTED_HAPPY, "Stopped"], "disconnected", true],
          [sfu2Url, [...ADOPTED_HAPPY, "Stopped"], "disconnected", true],
        ]);
        for (const c of rec.connections) expect(c.completedAt!).toBeLessThanOrEqual(rec.stops[0]!.resolvedAt!);
        expect(await sfuLists(() => e2e.sfuParticipants(alias), [], SFU_LEAVE_TIMEOUT_MS)).toEqual([]);
        expect(await sfuLists(() => e2e.sfuParticipants(alias, "limited"), [], SFU_LEAVE_TIMEOUT_MS)).toEqual([]);
        timings.push({ test: "p3 both SFUs", ms: Date.now() - stoppedAt, measure: SFU_DROPS_C });
        timings.push({ test: "p3", ms: Date.now() - started, measure: WALL_TIME });
      },
    );
  });
}
