/**
 * The one HTTP error and its retry verdict (after ggcr's `transport.Error` and `CheckError`):
 * {@link HttpError} carries the status (0: no answer), the wait the server asked for and whether
 * another try may pass; {@link retryVerdict} is the one place that decides whether a failed call
 * is tried again and after how long; {@link parseRetryAfter} the one reader of `Retry-After`.
 * The registry client (RegistryError), the Quay API client (QuayError) and a watcher's delivery
 * (DeliveryError) are subclasses that only add data.
 *
 * The method does not change the verdict: every request bananna-bot sends may be repeated
 * (manifests and blobs are put by digest, an upload session that failed is started anew, Quay's
 * repository creation answers "already exists", a notification is delivered at least once).
 *
 * @module
 */
import { MirrorError } from "./errors.ts";
import type { Code } from "./log/codes.ts";

/**
 * A failed HTTP exchange. The message is the caller's and must be safe to log: it names the
 * request by a redacted URL or by a label (a webhook's path is its secret), never a credential.
 * The error itself holds no method, URL or header.
 */
export class HttpError extends MirrorError {
  /** HTTP status, 0 when no answer came (network, TLS, timeout). */
  readonly status: number;
  /** Worth another try? By the status ({@link retryableStatus}) unless the site knows better. */
  readonly retryable: boolean;
  /** The wait the server asked for (Retry-After), in ms. */
  readonly retryAfterMs?: number;

  /** Create the error. */
  constructor(
    code: Code,
    message: string,
    options: {
      status: number;
      retryAfterMs?: number;
      /** Override the status's verdict (a TLS failure is no answer that will not pass). */
      retryable?: boolean;
      cause?: unknown;
    },
  ) {
    super(code, message, { cause: options.cause });
    this.name = "HttpError";
    this.status = options.status;
    this.retryable = options.retryable ?? retryableStatus(options.status);
    this.retryAfterMs = options.retryAfterMs;
  }
}

/**
 * No answer (0), 408, 429 and 5xx are worth another try; every other status is final.
 *
 * @example
 * ```ts
 * import { retryableStatus } from "./http_error.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual([0, 404, 408, 429, 503].map(retryableStatus), [true, false, true, true, true]);
 * ```
 */
export function retryableStatus(status: number): boolean {
  return status === 0 || status === 408 || status === 429 || status >= 500;
}

/** Whether to try a failed call again, and the wait the server asked for (else backoff). */
export interface RetryVerdict {
  retry: boolean;
  /** Retry-After in ms; undefined: the policy's backoff. */
  afterMs?: number;
}

/**
 * The one retry verdict of the registry client, the token flow, the Quay API client and the
 * watchers' deliveries: an {@link HttpError} by its own verdict (and its Retry-After), any other
 * catalogue error never, a network failure that escaped as a raw error (fetch's TypeError, a
 * connection error, a timeout) always.
 *
 * @example
 * ```ts
 * import { HttpError, retryVerdict } from "./http_error.ts";
 * import assert from "node:assert/strict";
 * const busy = new HttpError("IMAGE_PULL_FAILED", "GET x answered 503", {
 *   status: 503,
 *   retryAfterMs: 2000,
 * });
 * assert.deepEqual(retryVerdict(busy), { retry: true, afterMs: 2000 });
 * assert.deepEqual(
 *   retryVerdict(new HttpError("IMAGE_NOT_FOUND", "GET x answered 404", { status: 404 })),
 *   { retry: false },
 * );
 * ```
 */
export function retryVerdict(error: unknown): RetryVerdict {
  if (error instanceof HttpError) {
    return error.retryable ? { retry: true, afterMs: error.retryAfterMs } : { retry: false };
  }
  if (error instanceof MirrorError) return { retry: false };
  return { retry: isNetworkFailure(error) };
}

/** fetch's TypeError, Deno's connection errors, a timeout's DOMException. */
function isNetworkFailure(error: unknown): boolean {
  return error instanceof TypeError || error instanceof Deno.errors.ConnectionReset ||
    error instanceof Deno.errors.ConnectionRefused ||
    error instanceof Deno.errors.ConnectionAborted ||
    error instanceof Deno.errors.TimedOut || error instanceof Deno.errors.UnexpectedEof ||
    (error instanceof DOMException && error.name === "TimeoutError");
}

/**
 * The longest Retry-After taken as it is (a year): a longer one (`Retry-After: 10^20`) is read as
 * a year, so a wait, a deadline or a date made from it stays a finite, valid time.
 */
export const RETRY_AFTER_CAP_MS = 365 * 86_400_000;

/** An HTTP date (IMF-fixdate, RFC 850 or asctime): a day name, a month name, hh:mm:ss. */
const HTTP_DATE =
  /^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*,? .*\b(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)\b.* \d{2}:\d{2}:\d{2}\b/;

/**
 * Parse a Retry-After header: delta seconds or an HTTP date, in ms (a date in the past is 0),
 * at most {@link RETRY_AFTER_CAP_MS}. Anything else (`soon`, `1.5`, `-5`) is undefined: the
 * policy's backoff applies, never "retry at once".
 *
 * @example
 * ```ts
 * import { parseRetryAfter } from "./http_error.ts";
 * import assert from "node:assert/strict";
 * assert.equal(parseRetryAfter("2"), 2000);
 * assert.equal(parseRetryAfter("1.5"), undefined);
 * ```
 */
export function parseRetryAfter(
  value: string | null,
  now: number = Date.now(),
): number | undefined {
  if (!value) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Math.min(Number(trimmed) * 1000, RETRY_AFTER_CAP_MS);
  if (!HTTP_DATE.test(trimmed)) return undefined;
  const date = Date.parse(trimmed);
  return Number.isNaN(date) ? undefined : Math.min(Math.max(0, date - now), RETRY_AFTER_CAP_MS);
}
