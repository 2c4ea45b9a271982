/**
 * The one way the tests wait for something. Both are bounded, so a test never hangs on them.
 *
 * `poll` reads a value (synchronously or not) until `done(value)` holds or `timeoutMs` has passed, pausing
 * `intervalMs` between reads, and reports what it saw; `waitUntil` waits for a condition and fails with an error
 * naming `what` when it does not come.
 */
export async function poll<T>(
  read: () => T | Promise<T>,
  done: (value: T) => boolean,
  { timeoutMs = 5000, intervalMs = 1 }: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<{ value: T; ok: boolean; elapsedMs: number }> {
  const t0 = Date.now();
  for (;;) {
    const value = await read();
    if (done(value)) return { value, ok: true, elapsedMs: Date.now() - t0 };
    if (Date.now() - t0 >= timeoutMs) return { value, ok: false, elapsedMs: Date.now() - t0 };
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

export async function waitUntil(condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const { ok } = await poll(condition, (holds) => holds, { timeoutMs });
  if (!ok) throw new Error(`gave up after ${timeoutMs} ms waiting for ${what}`);
}
