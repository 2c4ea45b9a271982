/** What the SFU does to a live connection: killed (restarted in time, or never, or the app stops), a duplicate identity. */
import type { Recording } from "../page/api";
import { DedicatedSfu } from "../support/dedicatedSfu";
import { pollUntil, stateNames, timeOf, type ConnectionHandle } from "../support/fixtures";
import {
  HAPPY,
  e2e,
  expectSFUParticipants,
  recordTiming,
  scenario,
  timings,
  waitForRecording,
} from "../support/scenario";

/**
 * livekit-client's reconnect policy for the `Room` in the h scenarios: its DefaultReconnectPolicy would try for
 * ≈ 40 s; 3 quick attempts give up in ≈ 1 s (README.md, "Where the real servers differ" 10).
 */
const ROOM_GIVES_UP_FAST = [100, 300, 600];
/** `state$` up to the loss of the SFU: LiveKit resumes the signal only, gives up, and the package waits. */
const LOST = [...HAPPY, "signalReconnecting", "disconnected"];
/** A reconnect attempt of the package while the SFU is down: the connect fails, and it waits again. */
const FAILED_ATTEMPT = ["connecting", "disconnected"];

/** How many times the statechart entered `state` (a dotted path, e.g. `Livekit.room.connecting`) at or after `fromT`. */
const entered = (rec: Recording, state: string, fromT = 0): number =>
  rec.machineStates.filter((m) => m.state === state && m.t >= fromT).length;

/** `state$` as the h scenarios expect it: LOST, then `failed` attempts that failed, then `tail`. */
const lostThen = (failed: number, tail: string[]): string[] => [
  ...LOST,
  ...Array.from({ length: failed }, () => FAILED_ATTEMPT).flat(),
  ...tail,
];

/**
 * A LiveKit (and jwt stand-in) of the test's own (the stack's LiveKits are shared and must stay up), a user and a
 * connection to it under the package's reconnect policy `reconnect`, connected; then `body`, then the SFU stopped.
 */
async function connectedToDedicatedSfu(
  name: string,
  reconnect: { maxAttempts?: number; initialDelayMs?: number; maxDelayMs?: number },
  body: (x: { sfu: DedicatedSfu; c: ConnectionHandle; before: Recording }) => Promise<void>,
): Promise<void> {
  const sfu = await DedicatedSfu.start(e2e.env.stack, name);
  e2e.addLog("dedicated livekit", sfu.livekitLog);
  e2e.addLog("dedicated lk-jwt", sfu.jwtLog);
  try {
    const u = await e2e.newUser();
    e2e.addReport("WebSockets the page opened", () => u.websockets.join("\n"));
    const c = await u.connection({
      roomId: e2e.roomId(),
      serviceUrl: sfu.jwtUrl,
      reconnectDelaysMs: ROOM_GIVES_UP_FAST,
      reconnect,
    });
    expect(await c.start()).toEqual({ outcome: "resolved" });
    const before = await c.recording();
    expect(stateNames(before)).toEqual(HAPPY);
    expect(await sfu.participants(before.livekitAlias!)).toEqual([before.localIdentity]);
    expect(u.websockets).toEqual([`${sfu.wsUrl}/rtc/v1`]);
    await body({ sfu, c, before });
  } finally {
    await sfu.stop();
  }
}

export function sfuEventScenarios(): void {
  describe("h. SFU killed (kill -9) while connected: the package reconnects by itself", () => {
    scenario(
      "h1. restarted within the reconnect policy's window → connected again with no start() from the app, and the SFU lists the participant",
      async () => {
        await connectedToDedicatedSfu(
          "killed-restarted",
          { initialDelayMs: 500, maxDelayMs: 2000, maxAttempts: 20 },
          async ({ sfu, c, before }) => {
            recordTiming("h1 (1st start)", before, 0);
            const alias = before.livekitAlias!;
            await sfu.killLivekit();
            // LiveKit gives up (≈ 1 s), the package waits 500 ms and tries; wait until one attempt has failed
            // against the dead SFU (the statechart is back in WaitingToReconnect after a connect).
            const down = await waitForRecording(
              c,
              (r) => entered(r, "WaitingToReconnect") >= 2,
              "a reconnect attempt that failed while the SFU was down",
            );
            // LiveKit's own give-up has no reason, so the package reconnects.
            expect(down.roomEvents.map((e) => e.event).slice(0, 2)).toEqual([
              "signalReconnecting",
              "disconnected(no reason)",
            ]);
            const lostAt = timeOf(down, "disconnected", 1)!;
            expect(down.reconnectAttempts).toBeGreaterThanOrEqual(1);

            // Same ports; the restarted LiveKit has forgotten the room (in-memory state, auto_create false).
            await sfu.restartLivekit();
            const backAt = sfu.livekitReadyAt!;
            expect(await sfu.roomService().listRooms([alias])).toEqual([]);
            const rec = await waitForRecording(
              c,
              (r) => timeOf(r, "connected", 1) !== undefined,
              "connected again after the SFU restart",
              { timeoutMs: 30_000, intervalMs: 20 },
            );
            // No start() from the app: only the first.
            expect(rec.starts).toHaveLength(1);
            // The reused JWT's attempt meets the room that no longer exists (404): the config is fetched again
            // once (the jwt service creates the room), and that connect succeeds. Before it, the attempts made
            // while the SFU was down failed (their number depends on how long the restart took).
            const names = stateNames(rec);
            const failed = (names.length - lostThen(0, []).length - 5) / 2;
            expect(failed).toBeGreaterThanOrEqual(1);
            expect(names).toEqual(
              lostThen(failed, ["connecting", "FetchingConfig", "disconnected", "connecting", "connected"]),
            );
            expect(rec.states.filter((s) => "error" in s)).toEqual([]);
            expect(rec.machineStates.map((m) => m.state).filter((s) => s.startsWith("Failed"))).toEqual([]);
            expect(rec.roomState).toBe("connected");
            expect(rec.reconnectAttempts).toBe(0); // connected again: a later loss gets the whole policy again
            expect(rec.livekitAlias).toBe(alias);
            expect(rec.localIdentity).toBe(before.localIdentity);
            // The server's truth: LiveKit has the room again, with the participant.
            expect(await sfu.participants(alias)).toEqual([before.localIdentity]);
            // Each connect attempt opened one WebSocket (/rtc/v1): the failed ones, the one refused with 404, the
            // last. (LiveKit's own signal resumes came before the loss.)
            const attempts = rec.webSockets.filter((w) => w.t >= lostAt);
            expect(attempts.map((w) => w.url)).toEqual(Array(failed + 2).fill(`${sfu.wsUrl}/rtc/v1`));
            // The Room's own events: a failed connect ends in `disconnected(JOIN_FAILURE)`, the one refused with
            // 404 in `disconnected(USER_REJECTED)` (both final reasons, but they come while connecting, where the
            // chart lets the connect's own result decide).
            expect(rec.roomEvents.map((e) => e.event)).toEqual([
              "signalReconnecting",
              "disconnected(no reason)",
              ...Array(failed).fill("disconnected(JOIN_FAILURE)"),
              "disconnected(USER_REJECTED)",
            ]);

            // Time from LiveKit being back (Node's wall clock at its first 200) to `connected` in the page (the
            // page's wall clock at t=0 plus t: same machine, same clock).
            const connectedAt = rec.epochAtT0 + timeOf(rec, "connected", 1)!;
            const backToConnected = connectedAt - backAt;
            const nextAttempt = rec.states.find(
              (s) => "state" in s && s.state === "connecting" && rec.epochAtT0 + s.t >= backAt,
            );
            const backToAttempt = nextAttempt ? rec.epochAtT0 + nextAttempt.t - backAt : NaN;
            expect(backToConnected).toBeGreaterThan(0);
            expect(backToConnected).toBeLessThan(15_000); // a sanity bound: the longest wait is 2 s
            timings.push({
              test: "h1",
              ms: backToConnected,
              measure: "SFU back (its first HTTP 200, Node clock) → connected again (page clock)",
            });
            console.log(
              `h1: ${failed} reconnect attempt(s) failed while the SFU was down; LiveKit back → next attempt ` +
                `${backToAttempt.toFixed(0)} ms → connected ${backToConnected.toFixed(0)} ms; room events: ` +
                rec.roomEvents.map((e) => `${e.event}@${e.t.toFixed(0)}`).join(", "),
            );

            await c.stop();
            expect(stateNames(await c.recording()).at(-1)).toBe("Stopped");
            const gone = await pollUntil(
              () => sfu.participants(alias),
              (ps) => ps.length === 0,
              { timeoutMs: 10_000 },
            );
            expect(gone.value).toEqual([]);
          },
        );
      },
    );

    scenario("h2. never restarted → ConnectionLostError once the attempts are spent", async () => {
      await connectedToDedicatedSfu("killed-for-good", { maxAttempts: 3, initialDelayMs: 200 }, async ({ sfu, c }) => {
        await sfu.killLivekit();
        const rec = await waitForRecording(c, (r) => r.states.some((s) => "error" in s), "ConnectionLostError");
        // Three attempts (200, 400, 800 ms apart), each `connecting` and failing; after the third, the
        // connection has failed.
        expect(stateNames(rec)).toEqual(lostThen(2, ["connecting", "Error:ConnectionLostError/CONNECTION_LOST_ERROR"]));
        expect(rec.states.at(-1)).toMatchObject({ message: "Connection lost" });
        const lostAt = timeOf(rec, "disconnected", 1)!;
        expect(entered(rec, "Livekit.room.connecting", lostAt)).toBe(3);
        expect(rec.machineStates.at(-1)?.state).toBe("Failed.ConnectionLost");
        expect(rec.starts).toEqual([expect.objectContaining({ outcome: "resolved" })]);
        expect(rec.roomState).toBe("disconnected");
        // Each attempt opened one WebSocket to the SFU (LiveKit's own signal resumes came before the loss).
        const attempts = rec.webSockets.filter((w) => w.t >= lostAt);
        expect(attempts.map((w) => w.url)).toEqual(Array(3).fill(`${sfu.wsUrl}/rtc/v1`));
        // Nothing follows: no attempt, no state.
        await new Promise((r) => setTimeout(r, 2000));
        const after = await c.recording();
        expect(stateNames(after)).toEqual(stateNames(rec));
        expect(after.webSockets).toEqual(rec.webSockets);
        console.log(
          `h2: ConnectionLostError ${(rec.states.at(-1)!.t - lostAt).toFixed(0)} ms after the loss; cause: ` +
            `${(rec.states.at(-1) as { cause?: string }).cause}; attempts' WebSockets at ` +
            `${attempts.map((w) => (w.t - lostAt).toFixed(0)).join(", ")} ms after the loss; room events: ` +
            rec.roomEvents.map((e) => e.event).join(", "),
        );
      });
    });

    scenario("h3. stop() while waiting to reconnect → Stopped, and no further attempt", async () => {
      // A long first wait (3 s), so that stop() surely lands in it.
      await connectedToDedicatedSfu(
        "killed-then-stopped",
        { initialDelayMs: 3000, maxAttempts: 5 },
        async ({ sfu, c }) => {
          await sfu.killLivekit();
          const waiting = await waitForRecording(
            c,
            (r) => r.machineStates.at(-1)?.state === "WaitingToReconnect",
            "the statechart waiting to reconnect",
          );
          expect(stateNames(waiting)).toEqual(LOST);
          await c.stop();
          const stopped = await c.recording();
          expect(stateNames(stopped)).toEqual([...LOST, "Stopped"]);
          expect(stopped.stops[0]?.stateAtCall).toBe("disconnected");
          // Longer than the wait that stop() cut short: no attempt comes (it would open a WebSocket, and show
          // `connecting`), and nothing else happens.
          await new Promise((r) => setTimeout(r, 4000));
          const later = await c.recording();
          expect(stateNames(later)).toEqual([...LOST, "Stopped"]);
          // (STOP from WaitingToReconnect goes through Stopping: the room is disconnected, whatever state it is in)
          expect(later.machineStates.map((m) => m.state).slice(-3)).toEqual([
            "WaitingToReconnect",
            "Stopping.ThenStop",
            "Stopped",
          ]);
          const lostAt = timeOf(later, "disconnected", 1)!;
          expect(entered(later, "Livekit.room.connecting", lostAt)).toBe(0);
          expect(later.webSockets.filter((w) => w.t >= lostAt)).toEqual([]);
          expect(later.starts).toHaveLength(1);
          console.log(
            `h3: stop() ${(stopped.stops[0]!.calledAt - lostAt).toFixed(0)} ms into the 3 s wait; Stopped after ` +
              `${(stopped.stops[0]!.resolvedAt! - stopped.stops[0]!.calledAt).toFixed(0)} ms; nothing in the 4 s after`,
          );
        },
      );
    });
  });

  scenario(
    "i. a second Connection with the same user, device and membership replaces the first on the SFU (and the first does not reconnect)",
    async () => {
      const roomId = e2e.roomId();
      const tab1 = await e2e.newUser();
      const tab2 = await e2e.sameUserAs(tab1); // another browser context, same Matrix user and device
      const memberId = `m-dup-${Date.now().toString(36)}`;
      const first = await tab1.connection({ roomId, memberId });
      expect(await first.start()).toEqual({ outcome: "resolved" });
      const r1 = await first.recording();
      const alias = r1.livekitAlias!;
      const second = await tab2.connection({ roomId, memberId });
      expect(await second.start()).toEqual({ outcome: "resolved" });
      const r2 = await second.recording();
      expect(stateNames(r2)).toEqual(HAPPY);
      expect(r2.localIdentity).toBe(r1.localIdentity); // same (user, device, memberId) → same LiveKit identity
      expect(r2.livekitAlias).toBe(alias);

      // The second join removes the first participant (LeaveRequest(DUPLICATE_IDENTITY)): a lost connection, not
      // an error (README.md 11). DUPLICATE_IDENTITY is a final reason: the package does not reconnect (it would
      // take the identity back, and the two would replace each other for ever).
      const kicked = await pollUntil(
        async () => stateNames(await first.recording()),
        (ss) => ss.length > HAPPY.length,
        { timeoutMs: 15_000, intervalMs: 50 },
      );
      expect(kicked.value).toEqual([...HAPPY, "disconnected"]);
      const ps = await e2e.roomService().listParticipants(alias);
      expect(ps.map((p) => p.identity)).toEqual([r1.localIdentity]);
      // It stays so, longer than the default policy's first wait (1 s) and second (2 s): no attempt, no WebSocket.
      await new Promise((r) => setTimeout(r, 3500));
      const rf = await first.recording();
      expect(stateNames(rf)).toEqual([...HAPPY, "disconnected"]);
      expect(rf.machineStates.at(-1)?.state).toBe("Livekit.room.lost");
      expect(rf.machineStates.map((m) => m.state)).not.toContain("WaitingToReconnect");
      expect(tab1.websockets).toHaveLength(1);
      expect(rf.roomEvents.map((e) => e.event)).toEqual(["disconnected(DUPLICATE_IDENTITY)"]);
      expect(rf.roomState).toBe("disconnected");
      expect(stateNames(await second.recording())).toEqual(HAPPY);
      expect(await e2e.sfuParticipants(alias)).toEqual([r1.localIdentity]);

      // Stopping the replaced one sends nothing to the SFU: the remaining participant is the second's.
      await first.stop();
      expect(stateNames(await first.recording())).toEqual([...HAPPY, "disconnected", "Stopped"]);
      expect(await e2e.sfuParticipants(alias)).toEqual([r1.localIdentity]);
      expect((await second.recording()).roomState).toBe("connected");
      await second.stop();
      expect(stateNames(await second.recording())).toEqual([...HAPPY, "Stopped"]);
      await expectSFUParticipants(alias, []);
      console.log(`i: the first connection showed disconnected ${kicked.elapsedMs} ms after the second connected`);
    },
  );
}
