/**
 * Measured on the real stack (issue 9, item 5): start() → connected for a cold connection (the whole pipeline:
 * OpenID token, /get_token, Room.connect) against a restart from Stopped that reuses the JWT (Room.connect only),
 * side by side in one run. Benchmarks report; the test asserts only the sequences and generous sanity bounds.
 */
import type { Recording } from "../page/api";
import { stateNames, timeOf } from "../support/fixtures";
import { HAPPY, e2e, expectSFUParticipants, median, scenario, timings } from "../support/scenario";

const RUNS = 10;

/** start() → connected of the `nth` start in the recording, page clock. */
function startToConnected(rec: Recording, nth: number): number {
  const connectedAt = timeOf(rec, "connected", nth);
  const calledAt = rec.starts[nth]?.calledAt;
  if (connectedAt === undefined || calledAt === undefined) throw new Error(`start #${nth} did not connect`);
  return connectedAt - calledAt;
}

export function measuredScenarios(): void {
  scenario(
    `m. measured: start() → connected, cold (whole pipeline) vs restart from Stopped with the JWT reused, ${RUNS} of each, interleaved`,
    async () => {
      const u = await e2e.newUser();
      const roomId = e2e.roomId();
      // The connection that restarts: its first (cold) start is not counted.
      const r = await u.connection({ roomId });
      expect(await r.start()).toEqual({ outcome: "resolved" });
      await r.stop();
      const cold: number[] = [];
      const warm: number[] = [];
      for (let i = 0; i < RUNS; i++) {
        // Cold: a fresh Connection (and Room) in the same page, same user and call, a new membership.
        const c = await u.connection({ roomId });
        expect(await c.start()).toEqual({ outcome: "resolved" });
        const rc = await c.recording();
        expect(stateNames(rc)).toEqual(HAPPY);
        cold.push(startToConnected(rc, 0));
        await c.stop();
        // Restart: the same Connection again, no FetchingConfig (the JWT is reused).
        expect(await r.start()).toEqual({ outcome: "resolved" });
        const rr = await r.recording();
        expect(stateNames(rr).slice(-4)).toEqual(["Stopped", "disconnected", "connecting", "connected"]);
        warm.push(startToConnected(rr, i + 1));
        await r.stop();
      }
      const rr = await r.recording();
      expect(stateNames(rr)).toEqual([
        ...HAPPY,
        ...Array.from({ length: RUNS }, () => ["Stopped", "disconnected", "connecting", "connected"]).flat(),
        "Stopped",
      ]);
      await expectSFUParticipants(rr.livekitAlias!, []);
      for (const ms of [...cold, ...warm]) {
        expect(ms).toBeGreaterThan(0);
        expect(ms).toBeLessThan(10_000); // a sanity bound only
      }
      const [coldMedian, warmMedian] = [median(cold), median(warm)];
      timings.push(
        { test: `m cold (median of ${RUNS})`, ms: coldMedian },
        { test: `m restart, JWT reused (median of ${RUNS})`, ms: warmMedian },
      );
      const list = (xs: number[]): string => xs.map((x) => x.toFixed(0)).join(", ");
      console.log(
        `m: start() → connected (ms, page clock), ${RUNS} each, interleaved:\n` +
          `  cold (whole pipeline): median ${coldMedian.toFixed(1)} [${list(cold)}]\n` +
          `  restart, JWT reused:   median ${warmMedian.toFixed(1)} [${list(warm)}]`,
      );
    },
  );
}
