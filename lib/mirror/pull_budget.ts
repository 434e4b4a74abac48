/**
 * The Docker Hub pull budget, as pure logic: read the rate-limit headers a registry sends, decide
 * which tasks of a plan fit in what is left of the window, and remember, for one run, the hosts
 * that asked us to stop. No I/O: the plan feeds in the headers of the manifest HEADs it already
 * makes (a HEAD costs no pull) and the pulls each task would spend; the run asks the gate.
 *
 * ## What a pull is
 * Docker Hub counts a manifest GET as a pull (HEAD is free). A task spends one GET for its image and
 * one per platform child it copies: the registry engine copies every child of an index
 * (1 + children), the docker engine one platform (2 for an index, 1 for a single image); a task
 * the plan already knows is a no-op spends 0. See {@link pullsForImage}. This is an upper bound
 * of what Docker Hub documents; a GET that is retried spends another pull, which is what the
 * reserve is for.
 *
 * ## Why a planner and not a counter
 * A run that finds the budget empty half-way fails every remaining image with 429s, and the
 * window only refills hours later. Deciding before the first pull lets the run copy what fits,
 * mark the rest `deferred` (not a failure: the next run picks them up) and say when the window
 * refills.
 *
 * ## The rule ({@link planPullBudget})
 * - Per host, the budget is `remaining - reserve` (never below 0). A host that sent no rate-limit
 *   headers is unlimited. The reserve is capped at 10% of the host's limit (rounded down): with
 *   Docker Hub's 10-pulls-an-hour anonymous limit, a reserve of 10 would defer everything; it
 *   keeps 1 instead. See {@link reserveFor}.
 * - Tasks are taken in config order. A task runs when, on every host it pulls from, it fits in
 *   what earlier tasks left; it then spends its pulls. A task that does not fit is deferred and
 *   spends nothing, so a later, smaller task may still fit (first fit): the budget is used, and
 *   config order still decides who comes first on the next run, when the window has refilled.
 * - A task that needs more than `limit - reserve` can never fit in a full window: it is deferred
 *   with the reason `window`, not `budget`, so the message says so instead of promising a refill.
 *
 * @module
 */

/** Docker Hub's rate-limit state for one host, read from `ratelimit-limit` / `-remaining`. */
export interface RateLimit {
  /** Pulls allowed per window (`ratelimit-limit`). */
  limit: number;
  /** Pulls left in the current window (`ratelimit-remaining`). */
  remaining: number;
  /** The window in seconds (`w=`), or 0 when the registry did not say. */
  windowSeconds: number;
}

const MAX_HEADER = 256;

/**
 * Read one rate-limit header value: the number of its first item and the first `w=` of any item.
 * `100;w=21600`, `100`, `100, 100;w=21600` (the IETF draft's list form). Null for anything else.
 */
function parseRateLimitValue(value: string | null): { n: number; w: number | null } | null {
  if (value === null || value.length > MAX_HEADER) return null;
  const items = value.split(",").map((item) => item.split(";").map((part) => part.trim()));
  const first = items[0][0];
  if (!/^\d{1,9}$/.test(first)) return null;
  let w: number | null = null;
  for (const [head, ...params] of items) {
    if (!/^\d{1,9}$/.test(head)) return null;
    for (const param of params) {
      if (/^w\s*=/i.test(param)) {
        const match = /^w\s*=\s*(\d{1,9})$/i.exec(param);
        if (!match) return null;
        w ??= Number(match[1]);
      } else if (!/^[a-z][a-z0-9_-]*\s*=\s*("[^"]*"|[\w.-]+)$/i.test(param)) return null;
    }
  }
  return { n: Number(first), w };
}

/**
 * Docker Hub's rate limit from a response's headers, or null when the registry sent none (no
 * limit applies, e.g. a paid account) or sent something that does not parse. Never throws.
 *
 * Both `ratelimit-limit` and `ratelimit-remaining` must be present and read as non-negative
 * integers, with remaining at most limit. The window is the `w=` of `ratelimit-remaining`, else of
 * `ratelimit-limit`, else 0 (not said). Other parameters (`;policy=x`) are ignored.
 *
 * @param headers The headers of a manifest HEAD or GET.
 * @returns The limit, what is left, and the window; or null.
 *
 * @example
 * ```ts
 * import { parseRateLimit } from "./pull_budget.ts";
 * import assert from "node:assert/strict";
 * const headers = new Headers({
 *   "ratelimit-limit": "100;w=21600",
 *   "ratelimit-remaining": "76;w=21600",
 * });
 * assert.deepEqual(parseRateLimit(headers), { limit: 100, remaining: 76, windowSeconds: 21600 });
 * assert.equal(parseRateLimit(new Headers()), null);
 * ```
 */
export function parseRateLimit(headers: Headers): RateLimit | null {
  const limit = parseRateLimitValue(headers.get("ratelimit-limit"));
  const remaining = parseRateLimitValue(headers.get("ratelimit-remaining"));
  if (!limit || !remaining || remaining.n > limit.n) return null;
  return { limit: limit.n, remaining: remaining.n, windowSeconds: remaining.w ?? limit.w ?? 0 };
}

/**
 * Keep the most pessimistic rate limit seen for a host: the plan makes many HEADs, maybe at once,
 * and their answers may arrive out of order; the lowest `remaining` is the one to trust.
 *
 * @param seen The rate limits seen so far, by host (updated in place).
 * @param host The source host, e.g. `docker.io`.
 * @param headers The response headers (nothing happens when they carry no rate limit).
 */
export function observeRateLimit(
  seen: Map<string, RateLimit>,
  host: string,
  headers: Headers,
): void {
  const next = parseRateLimit(headers);
  if (!next) return;
  const before = seen.get(host);
  if (!before || next.remaining < before.remaining) seen.set(host, next);
}

/** Options for {@link pullsForImage}. */
export interface PullsForImageOptions {
  /** The engine that copies. */
  engine: "registry" | "docker";
  /** Platform children of the source index, or 0 for a single image. */
  children: number;
}

/**
 * The pulls (manifest GETs) one copy spends on the source host: the image's manifest, plus one
 * per child copied (every child with the registry engine, one platform with the docker engine).
 *
 * @param options The engine and the number of children.
 * @returns The number of pulls.
 *
 * @example
 * ```ts
 * import { pullsForImage } from "./pull_budget.ts";
 * import assert from "node:assert/strict";
 * assert.equal(pullsForImage({ engine: "registry", children: 4 }), 5);
 * assert.equal(pullsForImage({ engine: "docker", children: 4 }), 2);
 * assert.equal(pullsForImage({ engine: "docker", children: 0 }), 1);
 * ```
 */
export function pullsForImage(options: PullsForImageOptions): number {
  if (options.children <= 0) return 1;
  return options.engine === "registry" ? 1 + options.children : 2;
}

/** One task of the plan, as the budget sees it. */
export interface BudgetTask {
  /** The task's identity (e.g. `docker.io/library/nginx:1.27 -> prod`), returned as given. */
  id: string;
  /** Pulls it would spend, by source host (a host with 0, or absent, costs nothing). */
  pulls: Readonly<Record<string, number>>;
}

/** Options for {@link planPullBudget}. */
export interface PlanPullBudgetOptions {
  /** The rate limits seen, by host; a host without one is unlimited. */
  limits: ReadonlyMap<string, RateLimit>;
  /** Pulls to keep in hand per host (operation.dockerHubReserve), capped per host. @default 10 */
  reserve?: number;
  /** When the limits were read (for the refill time). @default Date.now() */
  nowMs?: number;
}

/** A task the budget does not let run. */
export interface DeferredTask {
  /** The task's id. */
  id: string;
  /** The first host (in the task's order) it did not fit on. */
  host: string;
  /**
   * `budget`: it does not fit in what is left now and will after the window refills; `window`: it
   * needs more than a full window minus the reserve and will never fit.
   */
  reason: "budget" | "window";
  /** Pulls it needs on that host. */
  needed: number;
  /** Pulls that were left for it on that host, after the reserve and the tasks before it. */
  available: number;
}

/** What the plan spends on one rate-limited host. */
export interface HostBudget {
  /** The host. */
  host: string;
  /** Pulls per window. */
  limit: number;
  /** Pulls left when the plan was made. */
  remaining: number;
  /** Pulls kept in hand. */
  reserve: number;
  /** Pulls the tasks that run will spend. */
  planned: number;
  /** Pulls left after them (`remaining - planned`, the reserve included). */
  remainingAfter: number;
  /** Tasks deferred because of this host. */
  deferred: number;
  /** The window in seconds (0: not said). */
  windowSeconds: number;
  /** When the window has fully refilled at the latest (now + window), or null when not said. */
  refillsAtMs: number | null;
}

/** The result of {@link planPullBudget}. */
export interface PullBudgetPlan {
  /** Ids of the tasks that run, in config order. */
  run: string[];
  /** The tasks deferred, in config order. */
  deferred: DeferredTask[];
  /** Every rate-limited host any task pulls from, sorted by name. */
  hosts: HostBudget[];
}

/**
 * The reserve kept on a host: the configured one, at most 10% of the host's limit (rounded down).
 *
 * @param reserve operation.dockerHubReserve.
 * @param limit The host's pulls per window.
 * @returns Pulls kept in hand on that host.
 * @example
 * ```ts
 * import { reserveFor } from "./pull_budget.ts";
 * import assert from "node:assert/strict";
 * assert.equal(reserveFor(10, 100), 10);
 * assert.equal(reserveFor(10, 10), 1);
 * assert.equal(reserveFor(3, 200), 3);
 * ```
 */
export function reserveFor(reserve: number, limit: number): number {
  return Math.min(reserve, Math.floor(limit / 10));
}

/**
 * Decide which tasks run within the pull budget and which are deferred (the rule is in the module
 * doc: config order, first fit, reserve kept, `window` for a task that can never fit).
 *
 * @param tasks The tasks in config order.
 * @param options The rate limits seen, the reserve, the time they were read.
 * @returns The tasks that run, those deferred, and what each rate-limited host spends.
 * @throws {RangeError} When `reserve` or a task's pulls is not a non-negative integer.
 *
 * @example
 * ```ts
 * import { planPullBudget } from "./pull_budget.ts";
 * import assert from "node:assert/strict";
 * const plan = planPullBudget([
 *   { id: "a", pulls: { "docker.io": 3 } },
 *   { id: "b", pulls: { "docker.io": 5 } },
 *   { id: "c", pulls: { "docker.io": 1 } },
 * ], {
 *   limits: new Map([["docker.io", { limit: 100, remaining: 15, windowSeconds: 21600 }]]),
 *   reserve: 10,
 *   nowMs: 0,
 * });
 * assert.deepEqual(plan.run, ["a", "c"]);
 * assert.deepEqual(plan.deferred, [
 *   { id: "b", host: "docker.io", reason: "budget", needed: 5, available: 2 },
 * ]);
 * assert.equal(plan.hosts[0].remainingAfter, 11);
 * ```
 */
export function planPullBudget(
  tasks: readonly BudgetTask[],
  options: PlanPullBudgetOptions,
): PullBudgetPlan {
  const reserve = options.reserve ?? 10;
  if (!Number.isSafeInteger(reserve) || reserve < 0) {
    throw new RangeError(`reserve must be a non-negative integer, got ${reserve}`);
  }
  const nowMs = options.nowMs ?? Date.now();
  const planned = new Map<string, number>();
  const deferredBy = new Map<string, number>();
  const used = new Set<string>();
  const run: string[] = [];
  const deferred: DeferredTask[] = [];
  for (const task of tasks) {
    let miss: DeferredTask | null = null;
    for (const [host, needed] of Object.entries(task.pulls)) {
      if (!Number.isSafeInteger(needed) || needed < 0) {
        throw new RangeError(`task ${task.id}: pulls on ${host} must be >= 0, got ${needed}`);
      }
      const limit = options.limits.get(host);
      if (!limit || needed === 0) continue;
      used.add(host);
      const kept = reserveFor(reserve, limit.limit);
      const available = Math.max(0, limit.remaining - kept - (planned.get(host) ?? 0));
      if (needed > available && !miss) {
        const reason = needed > limit.limit - kept ? "window" : "budget";
        miss = { id: task.id, host, reason, needed, available };
      }
    }
    if (miss) {
      deferred.push(miss);
      deferredBy.set(miss.host, (deferredBy.get(miss.host) ?? 0) + 1);
      continue;
    }
    run.push(task.id);
    for (const [host, needed] of Object.entries(task.pulls)) {
      if (options.limits.has(host)) planned.set(host, (planned.get(host) ?? 0) + needed);
    }
  }
  const hosts = [...used].sort().map((host): HostBudget => {
    const limit = options.limits.get(host) as RateLimit;
    const spent = planned.get(host) ?? 0;
    return {
      host,
      limit: limit.limit,
      remaining: limit.remaining,
      reserve: reserveFor(reserve, limit.limit),
      planned: spent,
      remainingAfter: limit.remaining - spent,
      deferred: deferredBy.get(host) ?? 0,
      windowSeconds: limit.windowSeconds,
      refillsAtMs: limit.windowSeconds > 0 ? nowMs + limit.windowSeconds * 1000 : null,
    };
  });
  return { run, deferred, hosts };
}

/**
 * The sentence for a deferred task (logged with IMAGE_DEFERRED_RATE_LIMIT).
 *
 * @param task The deferred task.
 * @param host The budget of the host it did not fit on (for the reserve and the refill time).
 * @returns e.g. `deferred: needs 5 pulls from docker.io, 2 left after the reserve of 10; the
 * window (21600 s) has refilled by 2026-11-30T09:32:25.000Z, the next run picks it up`.
 *
 * @example
 * ```ts
 * import { describeDeferral } from "./pull_budget.ts";
 * import assert from "node:assert/strict";
 * assert.equal(
 *   describeDeferral(
 *     { id: "a", host: "docker.io", reason: "budget", needed: 5, available: 2 },
 *     { host: "docker.io", limit: 100, remaining: 12, reserve: 10, planned: 0, remainingAfter: 12,
 *       deferred: 1, windowSeconds: 21600, refillsAtMs: 21_600_000 },
 *   ),
 *   "deferred: needs 5 pulls from docker.io, 2 left after the reserve of 10; the window " +
 *     "(21600 s) has refilled by 1970-01-01T06:00:00.000Z, the next run picks it up",
 * );
 * ```
 */
export function describeDeferral(task: DeferredTask, host: HostBudget): string {
  const head = `deferred: needs ${task.needed} pulls from ${task.host}`;
  if (task.reason === "window") {
    return `${head}, more than a whole window allows (${host.limit} minus the reserve of ` +
      `${host.reserve}); it will not fit until the limit is higher (log in) or it needs fewer`;
  }
  const refill = host.refillsAtMs === null
    ? "the registry did not say when its window refills"
    : `the window (${host.windowSeconds} s) has refilled by ${
      new Date(host.refillsAtMs).toISOString()
    }`;
  return `${head}, ${task.available} left after the reserve of ${host.reserve}; ${refill}, ` +
    `the next run picks it up`;
}

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
 * @param retryAfterMs The Retry-After in ms (see `parseRetryAfter` in lib/retry.ts), or undefined.
 * @param options The retry settings.
 * @returns True when the host is to be stopped.
 *
 * @example
 * ```ts
 * import { shouldStopHost } from "./pull_budget.ts";
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
 * import { HostPullGate } from "./pull_budget.ts";
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
