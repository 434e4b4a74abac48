/**
 * The run's 429 gate (run-time, unlike the plan's pull budget in pull_budget.ts): a source host
 * that answers 429 asking to wait longer than the retries would is stopped for the rest of the
 * run, and its remaining tasks are deferred (run_plan.ts) instead of each failing with its own 429.
 * Pure: run_plan.ts asks {@link shouldStopHost} and keeps the {@link HostPullGate}.
 *
 * @module
 */

/** Options for {@link shouldStopHost}: the host's retry settings. */
export interface ShouldStopHostOptions {
  /** operation.retryDelay in ms. */
  retryDelayMs: number;
  /** operation.maxRetries. */
  maxRetries: number;
}

/**
 * Should a 429 stop further pulls from its host for the rest of the run? Yes when the registry
 * asks to wait longer than the retries would (`Retry-After > retryDelay * maxRetries`); a 429
 * without Retry-After (undefined) is left to the normal retries.
 *
 * @param retryAfterMs The Retry-After in ms (see `parseRetryAfter` in lib/http_error.ts), or undefined.
 * @param options The retry settings.
 * @returns True when the host is to be stopped.
 *
 * @example
 * ```ts
 * import { shouldStopHost } from "./pull_gate.ts";
 * import assert from "node:assert/strict";
 * assert.equal(shouldStopHost(3_600_000, { retryDelayMs: 5000, maxRetries: 3 }), true);
 * assert.equal(shouldStopHost(15_000, { retryDelayMs: 5000, maxRetries: 3 }), false);
 * ```
 */
export function shouldStopHost(
  retryAfterMs: number | undefined,
  options: ShouldStopHostOptions,
): boolean {
  if (retryAfterMs === undefined || !Number.isFinite(retryAfterMs)) return false;
  return retryAfterMs > options.retryDelayMs * options.maxRetries;
}

/**
 * The hosts that stopped us for this run. Once stopped, a host stays stopped until the run ends
 * (the rest of its tasks are deferred), whatever the time: `untilMs` only says, for the message,
 * when the registry said it would take pulls again. Stopping twice keeps the later time.
 *
 * @example
 * ```ts
 * import { HostPullGate } from "./pull_gate.ts";
 * import assert from "node:assert/strict";
 * const gate = new HostPullGate();
 * gate.stop("docker.io", 5000);
 * assert.equal(gate.isStopped("docker.io"), true);
 * assert.equal(gate.isStopped("quay.io"), false);
 * assert.equal(gate.stoppedUntil("docker.io"), 5000);
 * ```
 */
export class HostPullGate {
  #until = new Map<string, number>();

  /**
   * Stop pulls from `host` for the rest of the run.
   *
   * @param host The source host.
   * @param untilMs When the registry said it would take pulls again (epoch ms).
   */
  stop(host: string, untilMs: number): void {
    this.#until.set(host, Math.max(untilMs, this.#until.get(host) ?? -Infinity));
  }

  /**
   * Is `host` stopped for this run?
   *
   * @param host The source host.
   * @returns True once {@link HostPullGate.stop} was called for it.
   */
  isStopped(host: string): boolean {
    return this.#until.has(host);
  }

  /**
   * When a stopped host said it would take pulls again.
   *
   * @param host The source host.
   * @returns Epoch ms, or null when the host is not stopped.
   */
  stoppedUntil(host: string): number | null {
    return this.#until.get(host) ?? null;
  }

  /**
   * The stopped hosts, sorted by name.
   *
   * @returns Host names.
   */
  stoppedHosts(): string[] {
    return [...this.#until.keys()].sort();
  }
}
