/** What the SFU does to a live connection: killed and restarted, a duplicate identity. */
import { DedicatedSfu } from "../support/dedicatedSfu";
import { pollUntil, stateNames, timeOf } from "../support/fixtures";
import { HAPPY, e2e, expectSFUParticipants, recordTiming, scenario } from "../support/scenario";

export function sfuEventScenarios(): void {
  scenario(
    "h. SFU killed (kill -9) while connected → disconnected; restarted → start() again → connected",
    async () => {
      // A LiveKit (and jwt stand-in) of this test's own: the stack's LiveKits are shared and must stay up.
      const sfu = await DedicatedSfu.start(e2e.env.stack, "killed");
      e2e.addLog("dedicated livekit", sfu.livekitLog);
      e2e.addLog("dedicated lk-jwt", sfu.jwtLog);
      try {
        const u = await e2e.newUser();
        // livekit-client's DefaultReconnectPolicy would try for ≈ 40 s: 3 quick attempts give up in ≈ 1 s.
        const c = await u.connection({
          roomId: e2e.roomId(),
          serviceUrl: sfu.jwtUrl,
          reconnectDelaysMs: [100, 300, 600],
        });
        expect(await c.start()).toEqual({ outcome: "resolved" });
        const before = await c.recording();
        expect(stateNames(before)).toEqual(HAPPY);
        recordTiming("h (1st start)", before, 0);
        const alias = before.livekitAlias!;
        expect(await sfu.participants(alias)).toEqual([before.localIdentity]);

        await sfu.killLivekit();
        const lost = await pollUntil(
          async () => stateNames(await c.recording()),
          (ss) => ss.length > HAPPY.length && ss.at(-1) === "disconnected",
          { timeoutMs: 30_000, intervalMs: 100 },
        );
        // Only `signalReconnecting`, then `disconnected` without a reason: README.md, "Where the real servers
        // differ" 10.
        expect(lost.value).toEqual([...HAPPY, "signalReconnecting", "disconnected"]);
        const recLost = await c.recording();
        expect(recLost.roomEvents.map((e) => e.event)).toEqual(["signalReconnecting", "disconnected(no reason)"]);
        expect(recLost.roomState).toBe("disconnected");
        const lostMs = timeOf(recLost, "disconnected", 1)! - timeOf(recLost, "signalReconnecting")!;

        // The restarted LiveKit (same ports) has forgotten the room; start() runs the whole pipeline again, so the
        // jwt service creates it again.
        await sfu.restartLivekit();
        expect(await sfu.roomService().listRooms([alias])).toEqual([]);
        expect(await c.start()).toEqual({ outcome: "resolved" });
        const rec = await c.recording();
        expect(stateNames(rec)).toEqual([...HAPPY, "signalReconnecting", "disconnected", ...HAPPY.slice(1)]);
        expect(rec.roomState).toBe("connected");
        expect(rec.livekitAlias).toBe(alias);
        recordTiming("h (after the SFU restart)", rec, 1);
        expect(await sfu.participants(alias)).toEqual([rec.localIdentity]);
        await c.stop();
        expect(stateNames(await c.recording()).at(-1)).toBe("Stopped");
        const gone = await pollUntil(
          () => sfu.participants(alias),
          (ps) => ps.length === 0,
          { timeoutMs: 10_000 },
        );
        expect(gone.value).toEqual([]);
        console.log(`h: signalReconnecting → disconnected in ${lostMs.toFixed(0)} ms (page clock)`);
      } finally {
        await sfu.stop();
      }
    },
  );

  scenario(
    "i. a second Connection with the same user, device and membership replaces the first on the SFU",
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
      // an error, and no reconnect (README.md 11).
      const kicked = await pollUntil(
        async () => stateNames(await first.recording()),
        (ss) => ss.length > HAPPY.length,
        { timeoutMs: 15_000, intervalMs: 50 },
      );
      expect(kicked.value).toEqual([...HAPPY, "disconnected"]);
      const ps = await e2e.roomService().listParticipants(alias);
      expect(ps.map((p) => p.identity)).toEqual([r1.localIdentity]);
      const rf = await first.recording();
      expect(stateNames(rf)).toEqual([...HAPPY, "disconnected"]);
      expect(rf.roomEvents.map((e) => e.event)).toEqual(["disconnected(DUPLICATE_IDENTITY)"]);
      expect(rf.roomState).toBe("disconnected");
      expect(stateNames(await second.recording())).toEqual(HAPPY);

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
