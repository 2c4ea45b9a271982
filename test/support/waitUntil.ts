/**
 * The one way the tests wait for a condition: checks `condition` now and then after each millisecond timer,
 * and fails after `timeoutMs` with an error naming `what`. Bounded, so a test never hangs on it.
 */
export async function waitUntil(condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`gave up after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}
