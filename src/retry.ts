import type { Logger, RetryOptions } from "./types";

export const DEFAULT_RETRY: Required<RetryOptions> = { maxAttempts: 5, initialDelayMs: 2000 };

interface ErrorWithRetryHints {
  name?: string;
  httpStatus?: number;
  retryAfterMs?: number;
  data?: { retry_after_ms?: unknown };
  getRetryAfterMs?: () => number | null;
}

function retryAfterOf(e: ErrorWithRetryHints): number | undefined {
  if (typeof e.retryAfterMs === "number") return e.retryAfterMs;
  if (typeof e.getRetryAfterMs === "function") {
    try {
      const ms = e.getRetryAfterMs();
      if (typeof ms === "number") return ms;
    } catch {
      // matrix-js-sdk throws when the error carries no usable hint
    }
  }
  const fromBody = e.data?.retry_after_ms;
  return typeof fromBody === "number" ? fromBody : undefined;
}

/**
 * Whether asking again may help, by matrix-js-sdk's rules (`calculateRetryBackoff`): not after bad input or a
 * malformed answer (a TypeError, such as InsecureTransportError), an abort, or an HTTP 4xx other than 429.
 * (An abort or time-out of the phase itself ends the retries before this is asked.)
 */
export function shouldRetry(error: unknown): boolean {
  if (error instanceof TypeError) return false;
  const e = (typeof error === "object" && error !== null ? error : {}) as ErrorWithRetryHints;
  if (e.name === "AbortError") return false;
  const status = e.httpStatus;
  return !(typeof status === "number" && status >= 400 && status < 500 && status !== 429);
}

/**
 * How long to wait before attempt `attempt + 1` (0-based `attempt` just failed): a 429's Retry-After /
 * `retry_after_ms`, or else `initialDelayMs` doubled per attempt.
 */
export function retryDelayMs(error: unknown, attempt: number, initialDelayMs: number): number {
  const e = (typeof error === "object" && error !== null ? error : {}) as ErrorWithRetryHints;
  if (e.httpStatus === 429) {
    const hinted = retryAfterOf(e);
    if (hinted !== undefined && hinted >= 0) return hinted;
  }
  return initialDelayMs * 2 ** attempt;
}

/** Resolves after `ms`, or rejects with the signal's reason as soon as it aborts. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Runs `work` with a signal of its own that follows `outer` (and that `work` may abort itself): fetch
 * implementations hang listeners on the signal they are given and do not always take them off, which would pile
 * up on a caller's long-lived signal.
 */
export async function withOwnSignal<T>(
  outer: AbortSignal,
  work: (signal: AbortSignal, abort: (reason: unknown) => void) => Promise<T>,
): Promise<T> {
  const own = new AbortController();
  const follow = (): void => own.abort(outer.reason);
  if (outer.aborted) follow();
  else outer.addEventListener("abort", follow, { once: true });
  try {
    return await work(own.signal, (reason) => own.abort(reason));
  } finally {
    outer.removeEventListener("abort", follow);
  }
}

/** Settles like `promise`, or rejects with the signal's reason if it aborts first. */
export function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    promise.catch(() => {}); // nobody waits for it any more; its failure is no one's to report
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener("abort", onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(e);
      },
    );
  });
}

/** The longest a timer can wait (setTimeout's range): a longer delay would fire at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** A retry the server asked for too late: beyond the phase's time limit, or beyond what a timer can wait. */
export class RetryTooLateError extends Error {
  override readonly name = "RetryTooLateError";
}

/**
 * Runs `operation` until it succeeds, the policy gives up, or `signal` aborts. A wait that would end after
 * `deadline` (ms since the epoch) ends the retries at once with a RetryTooLateError, whose cause is the last
 * failure: a far Retry-After neither hangs the phase nor turns into an immediate retry.
 */
export async function withRetry<T>(
  what: string,
  operation: (attempt: number) => Promise<T>,
  options: { retry?: RetryOptions; signal: AbortSignal; logger: Logger; deadline?: number },
): Promise<T> {
  const maxAttempts = options.retry?.maxAttempts ?? DEFAULT_RETRY.maxAttempts;
  const initialDelayMs = options.retry?.initialDelayMs ?? DEFAULT_RETRY.initialDelayMs;
  for (let attempt = 0; ; attempt++) {
    options.signal.throwIfAborted();
    try {
      return await operation(attempt);
    } catch (e) {
      if (options.signal.aborted) throw options.signal.reason;
      if (!shouldRetry(e) || attempt + 1 >= maxAttempts) throw e;
      const delay = retryDelayMs(e, attempt, initialDelayMs);
      if (delay > MAX_TIMER_MS || (options.deadline !== undefined && Date.now() + delay >= options.deadline)) {
        throw new RetryTooLateError(
          `${what} failed and the next attempt would come after the time limit (in ${delay < 1000 ? `${delay} ms` : `${Math.round(delay / 1000)} s`})`,
          { cause: e },
        );
      }
      options.logger.info(
        `${what} failed (attempt ${attempt + 1} of ${maxAttempts}: ${describe(e)}); retrying in ${delay} ms`,
      );
      await sleep(delay, options.signal);
    }
  }
}

/** A one-line description of an error for logs: its name and message, never its data. */
export function describe(e: unknown): string {
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}
