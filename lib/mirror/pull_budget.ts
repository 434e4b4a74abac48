/**
 * The Docker Hub pull budget, the plan's last step: read the rate-limit headers a registry sends,
 * count the pulls each task would spend, and decide which tasks fit in what is left of the window
 * ({@link applyPullBudget} turns the others into `deferred` ones before the plan is returned, so
 * the plan is never patched afterwards). No I/O: the plan feeds in the headers of the manifest
 * HEADs it already makes (a HEAD costs no pull). What the run does with a 429 is pull_gate.ts.
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
 * - A task that needs more than `limit - reserve` can never fit in a full window (a limit of 0
 *   fits nothing): the reason is `window`, not `budget`, and {@link applyPullBudget} fails it
 *   (IMAGE_RATE_LIMIT_TOO_SMALL) instead of deferring it: no later run copies it, so it must not
 *   pass as a deferral (exit 0, the last success advancing) while nothing is mirrored.
 *
 * ## Counting pulls without a GET
 * A HEAD tells whether the source is an index, not how many children it has. The docker engine
 * pulls one platform, so an index costs 2 pulls and a single image 1, exactly. The registry
 * engine copies every child; the plan counts an upper bound from the index's size: every child
 * descriptor needs at least {@link MIN_DESCRIPTOR_BYTES} bytes of JSON (mediaType, a sha256
 * digest and a size), so an index of `size` bytes has at most `floor(size / 150)` children. That
 * overcounts (real descriptors carry platforms and annotations, 2-5 times larger), so a tight
 * budget defers an index a little early, never overspends.
 *
 * With `platforms` the registry engine reads one child per wanted platform and its attestation
 * manifest (lib/registry/platforms.ts), so the bound is `2 x platforms` when that is lower.
 *
 * The plan's own GETs (the docker engine compares config digests when manifest digests differ)
 * are taken off what the HEADs said was left, so `remaining` in the budget is "left for copies".
 *
 * @module
 */
import type { Code } from "../log/codes.ts";
import { MEDIA_TYPES } from "../registry/manifest.ts";

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
 * @param next The rate limit an answer carried ({@link parseRateLimit}); null changes nothing.
 */
export function observeRateLimit(
  seen: Map<string, RateLimit>,
  host: string,
  next: RateLimit | null | undefined,
): void {
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
  if (task.reason === "window") {
    return `needs ${task.needed} pulls from ${task.host}, more than a whole window allows ` +
      `(ratelimit-limit ${host.limit} minus the reserve of ${host.reserve}): no run copies it ` +
      `under this limit; log in for a higher one, or make it need fewer (platforms)`;
  }
  const head = `deferred: needs ${task.needed} pulls from ${task.host}`;
  const refill = host.refillsAtMs === null
    ? "the registry did not say when its window refills"
    : `the window (${host.windowSeconds} s) has refilled by ${
      new Date(host.refillsAtMs).toISOString()
    }`;
  return `${head}, ${task.available} left after the reserve of ${host.reserve}; ${refill}, ` +
    `the next run picks it up`;
}

/** Bytes every child descriptor of an index takes at least (see the module doc). */
const MIN_DESCRIPTOR_BYTES = 150;

/** What a source HEAD told the plan, as this step needs it. */
export interface SourceHead {
  mediaType: string;
  size: number;
}

/** A plan task as {@link applyPullBudget} reads and changes it (plan.ts's PlanTask is one). */
export interface BudgetedTask {
  /** The task's index in the plan's task list. */
  id: number;
  source: { registry: string };
  action: string;
  pulls?: number;
  code?: Code;
  message?: string;
  /** `platforms`: the registry engine reads only these platforms' children. */
  platforms?: { wanted: readonly string[] };
}

/** Options for {@link applyPullBudget}. */
export interface ApplyPullBudgetOptions {
  engine: "registry" | "docker";
  /** The lowest rate limit seen per host during planning. */
  limits: ReadonlyMap<string, RateLimit>;
  /** The source HEAD of each task that would push (by task id). */
  heads: ReadonlyMap<number, SourceHead>;
  /**
   * Pulls the plan itself spent per host (the docker engine's config reads GET the manifest): taken
   * off `remaining` first, as the HEADs may have answered before those GETs.
   */
  planPulls?: ReadonlyMap<string, number>;
  /** operation.dockerHubReserve. */
  reserve: number;
  /** When the limits were read (for the refill time). */
  nowMs: number;
  /**
   * A sharded run (shard.ts) splits each host's budget: with `share` shards, each plans with
   * `reserve + floor((remaining - reserve) / share)` (the reserve capped as in pull_budget.ts), so
   * the shards together never plan more than the host said was left. @default 1
   */
  share?: number;
}

/**
 * The pulls a copy of a source spends, by engine (an upper bound for an index with the registry
 * engine; see the module doc).
 *
 * @param head The source's HEAD.
 * @param engine The engine that copies.
 * @returns Manifest GETs on the source host.
 */
export function pullsForHead(
  head: SourceHead,
  engine: "registry" | "docker",
  platforms?: number,
): number {
  const isIndex = head.mediaType === MEDIA_TYPES.ociIndex ||
    head.mediaType === MEDIA_TYPES.dockerList;
  const bound = isIndex ? Math.max(1, Math.floor(head.size / MIN_DESCRIPTOR_BYTES)) : 0;
  // `platforms`: one child per wanted platform and its attestation manifest are read, no more.
  const children = platforms === undefined ? bound : Math.min(bound, 2 * platforms);
  return pullsForImage({ engine, children });
}

/**
 * Give every task that would push its pulls, and defer (action `deferred`, code
 * IMAGE_DEFERRED_RATE_LIMIT, the refill time in the message) those the budget has no room for
 * now; fail (action `failed`, IMAGE_RATE_LIMIT_TOO_SMALL) those no whole window can carry.
 *
 * @param tasks The plan's tasks in config order (changed in place).
 * @param options Engine, limits, the source HEADs, reserve and time.
 * @returns What each rate-limited source host spends (empty when no host sent a rate limit).
 */
export function applyPullBudget(
  tasks: BudgetedTask[],
  options: ApplyPullBudgetOptions,
): HostBudget[] {
  const pulling = tasks.filter((task) => task.action === "push" && options.heads.has(task.id));
  for (const task of pulling) {
    task.pulls = pullsForHead(
      options.heads.get(task.id) as SourceHead,
      options.engine,
      task.platforms?.wanted.length,
    );
  }
  if (options.limits.size === 0) return [];
  const limits = new Map(options.limits);
  for (const [host, spent] of options.planPulls ?? []) {
    const limit = limits.get(host);
    if (limit) limits.set(host, { ...limit, remaining: Math.max(0, limit.remaining - spent) });
  }
  const share = options.share ?? 1;
  if (share > 1) {
    for (const [host, limit] of limits) {
      const kept = Math.min(limit.remaining, reserveFor(options.reserve, limit.limit));
      limits.set(host, {
        ...limit,
        remaining: kept + Math.floor((limit.remaining - kept) / share),
      });
    }
  }
  const budget = planPullBudget(
    pulling.map((task) => ({
      id: String(task.id),
      pulls: { [task.source.registry]: task.pulls ?? 0 },
    })),
    { limits, reserve: options.reserve, nowMs: options.nowMs },
  );
  for (const deferred of budget.deferred) {
    const task = tasks[Number(deferred.id)];
    const host = budget.hosts.find((h) => h.host === deferred.host) as HostBudget;
    const never = deferred.reason === "window";
    task.action = never ? "failed" : "deferred";
    task.code = never ? "IMAGE_RATE_LIMIT_TOO_SMALL" : "IMAGE_DEFERRED_RATE_LIMIT";
    task.message = describeDeferral(deferred, host);
  }
  return budget.hosts;
}
