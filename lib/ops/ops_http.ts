/**
 * One delivery to a watcher (the Pushgateway PUT, the webhook POST) over the shared transport
 * (registry/http_transport.ts: its timeout on silence, TLS verified with the system roots and an
 * optional CA file, redirects by its rules) with the run's retry policy (`operation.maxRetries`,
 * `retryDelay`, `maxRetryWait`) and the one HTTP verdict (lib/http_error.ts): a network failure
 * that may pass, a 408, a 429 or a 5xx is tried again (Retry-After honoured), any other answer
 * outside 2xx is final. Messages name what was sent to by a label the
 * caller picks (a Slack webhook's path is its secret: never in a message).
 *
 * @module
 */
import { errorMessage } from "../errors.ts";
import { HttpError, parseRetryAfter, retryVerdict } from "../http_error.ts";
import type { Code } from "../log/codes.ts";
import { HttpTransport } from "../registry/http_transport.ts";
import { retry, retryPolicy } from "../retry.ts";

/** Timeout, TLS and retry settings of a delivery. */
export interface DeliveryOptions {
  /** Time without progress, per request (operation.apiTimeout). */
  timeoutMs: number;
  /**
   * The whole delivery, every attempt and wait included (`notify.deadline`, `metrics.deadline`):
   * past it the request under way is aborted and no other is tried. @default 30000
   */
  deadlineMs?: number;
  /** The setting {@link deadlineMs} comes from, for the message. @default "deadline" */
  deadlineSetting?: string;
  /** PEM CA bundle trusted besides the system roots. */
  caFile?: string;
  /** Retries after the first attempt (operation.maxRetries; 0 when the run was interrupted). */
  maxRetries: number;
  /** First backoff delay (operation.retryDelay). */
  retryDelayMs: number;
  /** Longest single wait (operation.maxRetryWait). */
  maxRetryWaitMs: number;
  /** Told before each retry. */
  onRetry?: (message: string, attempt: number, delayMs: number) => void;
}

/** One request to deliver. */
export interface Delivery {
  method: "PUT" | "POST";
  url: URL;
  /** How messages name the receiver (e.g. `webhook https://hooks.slack.com/...`). */
  label: string;
  /** The catalogue code of a failed delivery (MIRROR_METRICS_FAILED, MIRROR_NOTIFY_FAILED). */
  code: Code;
  headers: Record<string, string>;
  body: string;
  /**
   * False for the notification: it changes nothing another run relies on, so a run that lost its
   * lock still says so (lib/write_guard.ts). The Pushgateway PUT is guarded. @default true
   */
  guarded?: boolean;
}

/** A delivery that did not succeed: an {@link HttpError} whose message names only the label. */
export class DeliveryError extends HttpError {
  /** An error for `label`. */
  constructor(
    code: Code,
    message: string,
    options: { status: number; retryable?: boolean; retryAfterMs?: number },
  ) {
    super(code, message, options);
    this.name = "DeliveryError";
  }
}

/**
 * Send `delivery` until a 2xx answer or the retries run out.
 *
 * @returns the status of the accepting answer and the attempts it took
 * @throws {DeliveryError} naming the label, the last status and the attempts made
 */
export async function deliver(
  delivery: Delivery,
  options: DeliveryOptions,
): Promise<{ status: number; attempts: number }> {
  let transport: HttpTransport;
  const deadlineMs = options.deadlineMs ?? 30_000;
  try {
    transport = new HttpTransport({
      caFile: options.caFile,
      timeoutMs: options.timeoutMs,
      deadlineMs,
    });
  } catch (error) {
    throw new DeliveryError(delivery.code, `${delivery.label}: ${errorMessage(error)}`, {
      status: 0,
      retryable: false,
    });
  }
  let attempts = 0;
  // One bound for the whole delivery: the request under way and the waits between attempts.
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(), deadlineMs);
  const late = () =>
    new DeliveryError(
      delivery.code,
      `${delivery.label}: no answer within ${deadlineMs / 1000} s (${
        options.deadlineSetting ?? "deadline"
      })`,
      { status: 0, retryable: false },
    );
  try {
    return await retry(
      async () => {
        attempts++;
        if (deadline.signal.aborted) throw late();
        const status = await attempt(transport, delivery, deadline.signal).catch((error) => {
          throw deadline.signal.aborted ? late() : error;
        });
        return { status, attempts };
      },
      retryPolicy({
        maxRetries: options.maxRetries,
        retryDelayMs: options.retryDelayMs,
        maxRetryWaitMs: options.maxRetryWaitMs,
        onRetry: (error, n, delayMs) => options.onRetry?.(errorMessage(error), n, delayMs),
        signal: deadline.signal,
      }),
    );
  } catch (error) {
    const why = errorMessage(deadline.signal.aborted ? late() : error);
    throw new DeliveryError(
      delivery.code,
      `${why}${attempts > 1 ? ` (after ${attempts} attempts)` : ""}`,
      {
        status: error instanceof DeliveryError ? error.status : 0,
        retryable: false,
      },
    );
  } finally {
    clearTimeout(timer);
    transport.close();
  }
}

async function attempt(
  transport: HttpTransport,
  delivery: Delivery,
  signal: AbortSignal,
): Promise<number> {
  let res: Response;
  try {
    res = await transport.send({
      method: delivery.method,
      url: delivery.url,
      headers: delivery.headers,
      body: () => delivery.body,
      signal,
      redirects: "same-origin",
      guarded: delivery.guarded ?? true,
    });
  } catch (error) {
    // The transport's own message names the url; ours names only the label.
    throw new DeliveryError(
      delivery.code,
      `${delivery.label}: ${networkReason(error, delivery.url)}`,
      { status: 0, retryable: retryVerdict(error).retry },
    );
  }
  await res.body?.cancel().catch(() => {});
  if (res.status >= 200 && res.status < 300) return res.status;
  throw new DeliveryError(
    delivery.code,
    `${delivery.label}: ${delivery.method} answered ${res.status}${
      res.statusText ? ` ${res.statusText}` : ""
    }`,
    {
      status: res.status,
      retryAfterMs: parseRetryAfter(res.headers.get("retry-after")),
    },
  );
}

/**
 * What went wrong on the wire, without the url: the transport puts it first and fetch quotes it
 * again ("error sending request for url (...)"); its path may be a key (Slack).
 */
function networkReason(error: unknown, url: URL): string {
  // "PUT http://host/path: connection refused" -> "connection refused"
  let message = errorMessage(error).replace(/^[A-Z]+ \S+: /, "");
  for (const form of [url.href, decodeURIComponent(url.href)]) {
    message = message.split(form).join(`${url.origin}/…`);
  }
  if (url.pathname.length > 1) message = message.split(url.pathname).join("/…");
  return message;
}
