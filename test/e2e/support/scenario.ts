/**
 * What the e2e scenario files share: the one `E2e` session (browser, stack, users) of the run, `scenario()`
 * (a test whose failure carries the browser consoles and the stack's log lines), the expected state sequences,
 * and the helpers that connect a user and ask LiveKit who is in a room.
 */
import type { Recording } from "../page/api";
import { LoopbackProxy, type ProxyRecord } from "./proxy";
import { E2e, pollUntil, stateNames, timeOf, type ConnectionHandle, type UserPage, type Variant } from "./fixtures";

export const e2e = new E2e();
/**
 * Durations measured by the scenarios, printed after the run: start() → connected of the scenarios that connect
 * normally (page clock), and the other measures (what each one is says `measure`).
 */
export const timings: { test: string; ms: number; measure?: string }[] = [];
/** The measure of a timing without `measure`. */
export const START_TO_CONNECTED = "start() → connected (ms, page clock)";

/** A test whose failure message carries the browser consoles and the stack's log lines of the test. */
export function scenario(name: string, body: () => Promise<void>): void {
  test(name, async () => {
    e2e.beginTest();
    try {
      await body();
    } catch (e) {
      if (e instanceof Error) e.message += `\n\n${e2e.report()}`;
      throw e;
    } finally {
      await e2e.endTest();
    }
  });
}

export const HAPPY = ["Initialized", "FetchingConfig", "disconnected", "connecting", "connected"];
/** The sequence of a connect that the SFU (or livekit-client) refuses: HAPPY up to `connecting`, then `error`. */
export const refusedAtConnect = (error: string): string[] => [...HAPPY.slice(0, 4), error];
/** livekit-client 2.23.0's error when the /rtc upgrade fails and /rtc/validate says nothing it recognises. */
export const WEBSOCKET_ERROR =
  "ConnectionError(reason=6 (WebSocket), reasonName=ServerUnreachable): " +
  "could not establish signal connection: Encountered websocket error during connection establishment";
/** How long LiveKit may take to drop a participant that left (bounded poll). */
const SFU_LEAVE_TIMEOUT_MS = 30_000;

export function recordTiming(test: string, rec: Recording, nth = 0): void {
  const connectedAt = timeOf(rec, "connected", nth);
  const startedAt = rec.starts[nth]?.calledAt;
  if (connectedAt !== undefined && startedAt !== undefined) {
    timings.push({ test, ms: connectedAt - startedAt });
  }
}

/** Connects `u` to the call `roomId` on the main variant and checks the happy-path sequence. */
export async function connect(
  u: UserPage,
  roomId: string,
  test: string,
): Promise<{ c: ConnectionHandle; rec: Recording }> {
  const c = await u.connection({ roomId });
  expect(await c.start()).toEqual({ outcome: "resolved" });
  const rec = await c.recording();
  expect(stateNames(rec)).toEqual(HAPPY);
  expect(rec.roomState).toBe("connected");
  recordTiming(test, rec);
  return { c, rec };
}

/** Polls LiveKit until it lists exactly `identities` in `alias`; returns how long that took. */
export async function expectSFUParticipants(
  alias: string,
  identities: string[],
  variant: Variant = "main",
): Promise<number> {
  const want = [...identities].sort();
  const r = await pollUntil(
    () => e2e.sfuParticipants(alias, variant),
    (ps) => ps.join() === want.join(),
    { timeoutMs: SFU_LEAVE_TIMEOUT_MS },
  );
  expect(r.value).toEqual(want);
  return r.elapsedMs;
}

/** Polls the page's recording of `c` until `done` holds (bounded); fails naming `what` if it does not come. */
export async function waitForRecording(
  c: ConnectionHandle,
  done: (rec: Recording) => boolean,
  what: string,
  { timeoutMs = 30_000, intervalMs = 50 }: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<Recording> {
  const r = await pollUntil(() => c.recording(), done, { timeoutMs, intervalMs });
  if (!r.ok) {
    throw new Error(
      `gave up after ${timeoutMs} ms waiting for ${what}; state$: ${stateNames(r.value).join(" → ")}; ` +
        `statechart: ${r.value.machineStates.map((m) => m.state).join(" → ")}`,
    );
  }
  return r.value;
}

/** The median of some numbers (the mean of the middle two for an even count). */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** A proxy in front of the main jwt service that holds every POST (the CORS preflight goes through), reported. */
export async function jwtPostsHeld(): Promise<LoopbackProxy> {
  const jwt = await LoopbackProxy.start({
    name: "jwt-hold",
    target: e2e.env.stack.jwt_services.main!.url,
    hold: (r) => r.method === "POST",
  });
  e2e.addReport("jwt proxy (hold)", () => jwt.describe().join("\n"));
  return jwt;
}

/** Waits (at most 10 s) until the proxy of `jwtPostsHeld` holds a POST, and returns its record (fails if none comes). */
export async function expectPostHeld(jwt: LoopbackProxy): Promise<ProxyRecord> {
  const held = await pollUntil(
    async () => jwt.requests.find((r) => r.method === "POST" && r.outcome === "held"),
    (r) => r !== undefined,
    { timeoutMs: 10_000, intervalMs: 20 },
  );
  expect(held.value).toBeDefined();
  return held.value!;
}
