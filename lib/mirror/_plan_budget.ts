/**
 * The plan's last step (plan.ts only): the Docker Hub pull budget over the tasks that would pull.
 * The rate limits are what the plan's own manifest HEADs carried (a HEAD costs no pull), so this
 * step reads nothing; it turns tasks over budget into `deferred` ones before the plan is returned,
 * so the plan is never patched afterwards. The rule itself is pure, in pull_budget.ts.
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
 * The plan's own GETs (the docker engine compares config digests when manifest digests differ)
 * are taken off what the HEADs said was left, so `remaining` in the budget is "left for copies".
 *
 * @module
 */
import { MEDIA_TYPES } from "../registry/manifest.ts";
import {
  describeDeferral,
  type HostBudget,
  planPullBudget,
  pullsForImage,
  type RateLimit,
  reserveFor,
} from "./pull_budget.ts";
import type { PlanTask } from "./plan.ts";

/** Bytes every child descriptor of an index takes at least (see the module doc). */
export const MIN_DESCRIPTOR_BYTES = 150;

/** What a source HEAD told the plan, as this step needs it. */
export interface SourceHead {
  mediaType: string;
  size: number;
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
export function pullsForHead(head: SourceHead, engine: "registry" | "docker"): number {
  const isIndex = head.mediaType === MEDIA_TYPES.ociIndex ||
    head.mediaType === MEDIA_TYPES.dockerList;
  const children = isIndex ? Math.max(1, Math.floor(head.size / MIN_DESCRIPTOR_BYTES)) : 0;
  return pullsForImage({ engine, children });
}

/**
 * Give every task that would push its pulls, and defer (action `deferred`, code
 * IMAGE_DEFERRED_RATE_LIMIT, the refill time in the message) those the budget has no room for.
 *
 * @param tasks The plan's tasks in config order (changed in place).
 * @param options Engine, limits, the source HEADs, reserve and time.
 * @returns What each rate-limited source host spends (empty when no host sent a rate limit).
 */
export function applyPullBudget(tasks: PlanTask[], options: ApplyPullBudgetOptions): HostBudget[] {
  const pulling = tasks.filter((task) => task.action === "push" && options.heads.has(task.id));
  for (const task of pulling) {
    task.pulls = pullsForHead(options.heads.get(task.id) as SourceHead, options.engine);
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
    task.action = "deferred";
    task.code = "IMAGE_DEFERRED_RATE_LIMIT";
    task.message = describeDeferral(deferred, host);
  }
  return budget.hosts;
}
