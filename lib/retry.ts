/**
 * A small, explicit retry policy (after std `async/retry.ts`): exponential backoff with jitter,
 * `Retry-After` honoured up to a ceiling, an AbortSignal that stops both the waits and the attempts.
 * No single wait is longer than `maxWaitMs`: a server that asks for more (`Retry-After: 86400`)
 * fails the call at once instead of parking it for a day (and past 2^31 ms a timer would even fire
 * at once).
 *
 * @module
 */
import { RETRY_AFTER_CAP_MS, retryVerdict } from "./http_error.ts";

/** Options for {@link retry}. */
export interface RetryOptions {
  /** Attempts in all, the first included. @default 3 */
  maxAttempts?: number;
  /** First delay in ms. @default 1000 */
  minDelayMs?: number;
  /** Longest delay in ms. @default 60000 */
  maxDelayMs?: number;
  /** Growth per attempt. @default 2 */
  multiplier?: number;
  /** Fraction of the delay drawn at random (0..1). @default 0.2 */
  jitter?: number;
  /** Whether an error may pass if tried again. @default () => true */
  isRetriable?: (error: unknown) => boolean;
  /** A delay the error itself asks for (e.g. Retry-After), in ms, or undefined. */
  delayFor?: (error: unknown) => number | undefined;
  /**
   * Longest single wait in ms. A wait the error asks for (`delayFor`) beyond it is not waited:
   * the call fails at once with `onWaitTooLong(error, wantedMs)`, or the error itself.
   * Backoff delays are cut to it. @default 2147483647 (the longest timer)
   */
  maxWaitMs?: number;
  /** The error to throw when the wanted wait passes `maxWaitMs`. @default the error itself */
  onWaitTooLong?: (error: unknown, wantedMs: number) => unknown;
  /** Called before each wait. */
  onRetry?: (error: unknown, attempt: number, delayMs: number) => void;
  /** Stops waits and attempts. */
  signal?: AbortSignal;
}

/** Run `fn` until it succeeds, the error is not retriable, or attempts run out. */
export async function retry<T>(
  fn: (attempt: number) => Promise<T>,
  options: RetryOptions = {},
): Promise<T> {
  const {
    maxAttempts = 3,
    minDelayMs = 1000,
    maxDelayMs = 60_000,
    multiplier = 2,
    jitter = 0.2,
    isRetriable = () => true,
    delayFor,
    maxWaitMs = MAX_TIMER_MS,
    onWaitTooLong,
    onRetry,
    signal,
  } = options;
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1) {
    throw new RangeError(`maxAttempts must be a whole number >= 1, got ${maxAttempts}`);
  }
  if (minDelayMs < 0 || maxDelayMs < minDelayMs) {
    throw new RangeError(
      `delays must satisfy 0 <= minDelayMs <= maxDelayMs, got ${minDelayMs}, ${maxDelayMs}`,
    );
  }
  if (jitter < 0 || jitter > 1) throw new RangeError(`jitter must be in 0..1, got ${jitter}`);
  if (!(maxWaitMs >= 0 && maxWaitMs <= MAX_TIMER_MS)) {
    throw new RangeError(`maxWaitMs must be in 0..${MAX_TIMER_MS}, got ${maxWaitMs}`);
  }
  for (let attempt = 1;; attempt++) {
    signal?.throwIfAborted();
    try {
      return await fn(attempt);
    } catch (error) {
      if (signal?.aborted || attempt >= maxAttempts || !isRetriable(error)) throw error;
      const base = Math.min(maxDelayMs, minDelayMs * multiplier ** (attempt - 1));
      const wanted = delayFor?.(error);
      if (wanted !== undefined && wanted > maxWaitMs) {
        throw onWaitTooLong ? onWaitTooLong(error, wanted) : error;
      }
      const delay = wanted !== undefined
        ? Math.max(wanted, 0)
        : Math.min(maxWaitMs, base * (1 - jitter + Math.random() * jitter * 2));
      onRetry?.(error, attempt, Math.round(delay));
      await sleep(delay, signal);
    }
  }
}

/** The longest delay setTimeout keeps (2^31 - 1 ms, about 24.8 days); longer ones fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Wait `ms`, or reject at once when `signal` aborts. */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    function onAbort() {
      clearTimeout(timer);
      reject(signal?.reason);
    }
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * The message for a wait longer than allowed: what failed, the wait it asked for (seconds, and
 * hours or days when long) and the ceiling (operation.maxRetryWait).
 *
 * @example
 * ```ts
 * import { waitTooLongMessage } from "./retry.ts";
 * import assert from "node:assert/strict";
 * assert.equal(
 *   waitTooLongMessage(new Error("GET x answered 429"), 86_400_000, 300_000),
 *   "GET x answered 429; the server asks to wait 86400 s (1.0 days) before a retry, longer than " +
 *     "operation.maxRetryWait (300 s): not waiting",
 * );
 * ```
 */
export function waitTooLongMessage(error: unknown, wantedMs: number, maxWaitMs: number): string {
  const what = error instanceof Error ? error.message : String(error);
  const seconds = Math.ceil(wantedMs / 1000);
  const long = wantedMs >= RETRY_AFTER_CAP_MS
    ? " (a year or more)"
    : seconds >= 86_400
    ? ` (${(seconds / 86_400).toFixed(1)} days)`
    : seconds >= 3_600
    ? ` (${(seconds / 3_600).toFixed(1)} h)`
    : "";
  return `${what}; the server asks to wait ${seconds} s${long} before a retry, longer than ` +
    `operation.maxRetryWait (${Math.round(maxWaitMs / 1000)} s): not waiting`;
}

/** The retry settings of one client (from `operation`: maxRetries, retryDelay, maxRetryWait). */
export interface RetryPolicyOptions {
  /** Retries after the first attempt. */
  maxRetries: number;
  /** First backoff delay in ms. */
  retryDelayMs: number;
  /**
   * Longest single wait in ms (operation.maxRetryWait): backoff is cut to it, and a longer wait
   * the error asks for fails at once through `onWaitTooLong`. @default 2147483647 (no ceiling)
   */
  maxRetryWaitMs?: number;
  /**
   * Whether an error may pass if tried again. @default the HTTP verdict (`retryVerdict` in
   * http_error.ts), which every HTTP client uses; only the docker engine brings its own
   */
  isRetriable?: (error: unknown) => boolean;
  /** A delay the error asks for (Retry-After), in ms. @default the HTTP verdict's wait */
  delayFor?: (error: unknown) => number | undefined;
  /** The error to throw when a wanted wait passes `maxRetryWaitMs`. */
  onWaitTooLong?: (error: unknown, wantedMs: number) => unknown;
  /** Told before each wait. */
  onRetry?: (error: unknown, attempt: number, delayMs: number) => void;
  /** Stops waits and attempts. */
  signal?: AbortSignal;
}

/**
 * The one retry policy of the registry client, the Quay client, the watchers' deliveries and the
 * docker engine, as {@link retry} options: the HTTP verdict (`retryVerdict`) unless the caller
 * brings its own, `maxRetries + 1` attempts, backoff from `retryDelayMs` doubling up to a
 * minute, and no single wait longer than `maxRetryWaitMs`.
 *
 * @example
 * ```ts
 * import { retryPolicy } from "./retry.ts";
 * import assert from "node:assert/strict";
 * const policy = retryPolicy({ maxRetries: 3, retryDelayMs: 1000, isRetriable: () => true });
 * assert.equal(policy.maxAttempts, 4);
 * assert.equal(policy.maxDelayMs, 60_000);
 * ```
 *
 * @param options the client's settings and its verdicts
 * @returns options for {@link retry}
 */
export function retryPolicy(options: RetryPolicyOptions): RetryOptions {
  const maxWaitMs = options.maxRetryWaitMs ?? MAX_TIMER_MS;
  const minDelayMs = Math.min(options.retryDelayMs, maxWaitMs);
  return {
    maxAttempts: options.maxRetries + 1,
    minDelayMs,
    maxDelayMs: Math.max(minDelayMs, Math.min(60_000, maxWaitMs)),
    maxWaitMs,
    isRetriable: options.isRetriable ?? ((error) => retryVerdict(error).retry),
    delayFor: options.delayFor ?? ((error) => retryVerdict(error).afterMs),
    onWaitTooLong: options.onWaitTooLong,
    onRetry: options.onRetry,
    signal: options.signal,
  };
}
