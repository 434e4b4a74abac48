/**
 * Execute a plan: up to `concurrency` tasks at once; for each push task ensure the Quay
 * repository, then let the engine copy (the engine re-checks the tag right before writing).
 * Then, in every repository that holds a mirrored tag, reconcile `latest` by the rule in
 * latest.ts (also where nothing was pushed: a crash may have left it behind).
 *
 * `continueOnError: false` stops scheduling new tasks after the first failure (running ones
 * finish); an abort stops scheduling and aborts running copies. Tasks never started are
 * `skipped`. Reports through `onEvent`; never prints.
 *
 * Every task whose image is at its destination afterwards (pushed now, or `exists` by the plan or
 * the engine) then runs the supply-chain step when one is given (`supplyChain`: signatures,
 * attestations, SBOMs and referrers carried, see supply_chain.ts); its failure fails the task.
 *
 * Tasks the plan deferred (pull budget) are `deferred`, as are the rest of a source host's tasks
 * once it answered 429 with a Retry-After longer than the retries would wait
 * (`retryDelay * maxRetries`, see {@link RunPlanOptions.pullGate}): the run stops pulling from that
 * host instead of failing every image on it. Deferred is not a failure.
 *
 * @module
 */
import type { Credential } from "../registry/credential.ts";
import type { Engine, EngineEvent, PlatformOutcome, SupplyChainCounts } from "../engine/engine.ts";
import { errorMessage, MirrorError } from "../errors.ts";
import type { Code } from "../log/codes.ts";
import type { MirrorPlan, PlanTask } from "./plan.ts";
import { type HostPullGate, shouldStopHost } from "./pull_gate.ts";
import { apiHost, isPinnedDigestTag } from "../registry/reference.ts";
import { RegistryError } from "../registry/registry_error.ts";
import { forEachLimited } from "../worker_pool.ts";

/** Final status of a task. */
export type TaskStatus =
  | "pushed"
  | "exists"
  | "drift"
  | "failed"
  | "deferred"
  | "planned"
  | "skipped";

/** The outcome of one task. */
export interface TaskResult {
  task: PlanTask;
  status: TaskStatus;
  /** Destination manifest digest (pushed / exists / drift). */
  digest?: string;
  code: Code;
  error?: string;
  /** What happened to the Quay repository, if this task ensured it. */
  repo?: "created" | "exists";
  bytesUploaded?: number;
  durationMs: number;
  /** What the destination holds of the image's signatures and referrers (when carried). */
  carried?: SupplyChainCounts;
  /** The platforms an index was mirrored for (`platforms`), kept and left out. */
  platforms?: PlatformOutcome;
}

/** A repository the run mirrors into, with the tags that now hold mirrored images. */
export interface LatestGroup {
  target: string;
  registry: string;
  repository: string;
  /** Tags (config order) whose destination holds the mirrored image, with its digest. */
  candidates: { tag: string; digest: string }[];
  /**
   * What `latest` held (its digest; null: absent) when the plan read it, if it did
   * (_plan_prefetch.ts): enough to keep it; a move is decided on a fresh HEAD.
   */
  seen?: string | null;
}

/** What happened to `latest` in one repository. */
export interface LatestOutcome {
  group: LatestGroup;
  code: Code;
  message: string;
  /** The tag latest now points at, when moved. */
  tag?: string;
}

/** Events of a run, for the logger and the terminal. */
export type MirrorEvent =
  | { kind: "task-start"; task: PlanTask }
  | { kind: "repo"; task: PlanTask; outcome: "created" | "exists" }
  | { kind: "engine"; task: PlanTask; event: EngineEvent }
  | { kind: "task-done"; result: TaskResult }
  | { kind: "latest"; outcome: LatestOutcome };

/** Options for {@link runPlan}. */
export interface RunPlanOptions {
  engine: Engine;
  /** Copies at once. */
  concurrency: number;
  /**
   * Tasks that copy nothing (the plan found them `exists`, drift, failed or deferred: their
   * supply-chain step reads, mostly) and the `latest` reconciliations run this many at once,
   * beside the copies (with `continueOnError` off, tasks keep one pool and config order).
   * @default concurrency * 4 (the plan's reads)
   */
  readConcurrency?: number;
  continueOnError: boolean;
  platform?: string;
  /** Verified credentials per host (the login step's), given to the engine with each copy. */
  credentials?: ReadonlyMap<string, Credential>;
  signal?: AbortSignal;
  /**
   * Check the source digest's signature before anything is written (tasks with `verifyKeys`);
   * a throw fails the task with the error's code. Omitted: no verification.
   */
  verify?: (task: PlanTask, signal?: AbortSignal) => Promise<string | null>;
  /** Make sure the Quay repository of a task exists (only called for tasks with `repo`). */
  ensureRepository?: (task: PlanTask, signal?: AbortSignal) => Promise<"created" | "exists">;
  /** Move latest in one repository; omitted when updateLatest is off. */
  updateLatest?: (group: LatestGroup, signal?: AbortSignal) => Promise<LatestOutcome>;
  onEvent?: (event: MirrorEvent) => void;
  /**
   * Carry the signatures and referrers of an image now at its destination (pushed now, or found
   * there by the plan or the engine); a throw fails the task with the error's code (the image
   * itself stays mirrored). Omitted: nothing carried (`signatures: skip`, docker engine).
   */
  supplyChain?: (
    task: PlanTask,
    digest: string,
    signal?: AbortSignal,
    platforms?: PlatformOutcome,
  ) => Promise<SupplyChainCounts>;
  /**
   * The 429 storm rule: a copy that fails IMAGE_RATE_LIMITED on its source host with a
   * Retry-After longer than `retryDelayMs * maxRetries` stops pulls from that host for the run
   * (`gate`); that task and the host's later ones are deferred. Omitted: no gate.
   */
  pullGate?: { gate: HostPullGate; retryDelayMs: number; maxRetries: number };
}

/** The results of a run. */
export interface RunOutcome {
  results: TaskResult[];
  latest: LatestOutcome[];
  interrupted: boolean;
}

/** A task's destination namespace, `host/namespace` (the first path component). */
export function namespaceOf(task: PlanTask): string {
  const namespace = task.repo?.namespace ?? task.destination.repository.split("/")[0];
  return `${task.destination.registry}/${namespace}`;
}

/** Execute the plan. Never throws for a task's failure; those become results. */
export async function runPlan(plan: MirrorPlan, options: RunPlanOptions): Promise<RunOutcome> {
  return await new PlanRun(plan, options).run();
}

/** One execution of a plan: its tasks, their supply chain, then `latest`. */
class PlanRun {
  #plan: MirrorPlan;
  #options: RunPlanOptions;
  #emit: (event: MirrorEvent) => void;
  #results: TaskResult[];
  #stop = false;
  #ensured = new Map<string, Promise<"created" | "exists">>();
  /** Destination namespaces whose quota refused a write: no more pushes there this run. */
  #fullNamespaces = new Set<string>();

  constructor(plan: MirrorPlan, options: RunPlanOptions) {
    this.#plan = plan;
    this.#options = options;
    this.#emit = options.onEvent ?? (() => {});
    this.#results = new Array(plan.tasks.length);
  }

  async run(): Promise<RunOutcome> {
    const options = this.#options;
    const tasks = this.#plan.tasks;
    const one = async (task: PlanTask) => {
      this.#emit({ kind: "task-start", task });
      const result = await this.#carry(await this.#runTask(task));
      this.#results[task.id] = result;
      this.#emit({ kind: "task-done", result });
      // A full namespace is fenced off (#runTask), not a reason to stop the other namespaces.
      const quota = result.code === "IMAGE_QUOTA_EXCEEDED";
      if (result.status === "failed" && !options.continueOnError && !quota) this.#stop = true;
    };
    const shouldStop = () => this.#stop || Boolean(options.signal?.aborted);
    const reads = options.readConcurrency ?? options.concurrency * 4;
    // A no-op task must not wait for a copy slot (a nightly no-op is 300 of them and no copy).
    const split = options.continueOnError && reads > options.concurrency;
    const copies = split ? tasks.filter((t) => t.action === "push") : tasks;
    await Promise.all([
      forEachLimited(copies, one, { limit: options.concurrency, shouldStop }),
      split
        ? forEachLimited(tasks.filter((t) => t.action !== "push"), one, {
          limit: reads,
          shouldStop,
        })
        : undefined,
    ]);
    const interrupted = options.signal?.aborted ?? false;
    this.#markNotStarted(interrupted);
    const latest = options.updateLatest && !interrupted ? await this.#latest(reads) : [];
    return { results: this.#results, latest, interrupted };
  }

  async #runTask(task: PlanTask): Promise<TaskResult> {
    const started = performance.now();
    const done = (result: Omit<TaskResult, "task" | "durationMs">): TaskResult => ({
      task,
      durationMs: Math.round(performance.now() - started),
      ...result,
    });
    const decided = planned(task);
    if (decided) return done(decided);
    const gated = this.#stoppedMessage(task);
    if (gated) return done({ status: "deferred", code: "IMAGE_DEFERRED_RATE_LIMIT", error: gated });
    const namespace = namespaceOf(task);
    if (this.#fullNamespaces.has(namespace)) {
      return done({
        status: "failed",
        code: "IMAGE_QUOTA_EXCEEDED",
        error: `namespace ${namespace} is over its quota (refused earlier this run); not tried`,
      });
    }
    const at: { repo?: "created" | "exists" } = {};
    try {
      return done(await this.#copy(task, at));
    } catch (error) {
      return done(this.#copyFailed(task, error, namespace, at.repo));
    }
  }

  /** Verify, make sure the repository exists, copy; `at.repo` says what the repository step did. */
  async #copy(
    task: PlanTask,
    at: { repo?: "created" | "exists" },
  ): Promise<Omit<TaskResult, "task" | "durationMs">> {
    const options = this.#options;
    // A verified task copies the digest that was verified, not what the tag holds by now.
    const verified = await options.verify?.(task, options.signal);
    const source = verified ? { ...task.source, digest: task.sourceDigest } : task.source;
    if (task.repo && options.ensureRepository) {
      const key = `${task.target}/${task.repo.namespace}/${task.repo.name}`;
      let pending = this.#ensured.get(key);
      const first = !pending;
      if (!pending) {
        this.#ensured.set(key, pending = options.ensureRepository(task, options.signal));
      }
      const outcome = await pending;
      if (first) {
        at.repo = outcome;
        this.#emit({ kind: "repo", task, outcome });
      }
    }
    const copied = await options.engine.copy({
      source,
      destination: task.destination,
      platform: options.platform,
      platforms: task.platforms,
      replaceDigest: task.replaceDigest,
      // A push with no destination digest: the plan found the tag absent (PlanTask doc).
      destinationAbsent: task.destinationDigest === undefined,
      credentials: {
        source: options.credentials?.get(task.source.registry),
        destination: options.credentials?.get(task.destination.registry),
      },
      signal: options.signal,
      onEvent: (event) => this.#emit({ kind: "engine", task, event }),
    });
    const pushedCode = copied.platforms?.added
      ? "IMAGE_PLATFORMS_ADDED"
      : task.replaceDigest
      ? "IMAGE_TAG_UPDATED"
      : "IMAGE_PUSHED";
    return {
      status: copied.status === "pushed" ? "pushed" : "exists",
      digest: copied.digest,
      code: copied.status === "pushed" ? pushedCode : "IMAGE_ALREADY_EXISTS",
      repo: at.repo,
      bytesUploaded: copied.bytesUploaded,
      ...(copied.platforms ? { platforms: copied.platforms } : {}),
    };
  }

  /** A copy that threw: interrupted, drift, a host that stops us (deferred), quota, or failed. */
  #copyFailed(
    task: PlanTask,
    error: unknown,
    namespace: string,
    repo: "created" | "exists" | undefined,
  ): Omit<TaskResult, "task" | "durationMs"> {
    if (this.#options.signal?.aborted) {
      return { status: "failed", code: "MIRROR_INTERRUPTED", error: "interrupted", repo };
    }
    if (error instanceof MirrorError && error.code === "IMAGE_TAG_DRIFT") {
      return { status: "drift", code: "IMAGE_TAG_DRIFT", error: error.message, repo };
    }
    if (this.#stopsSourceHost(task, error)) {
      const message = `${this.#stoppedMessage(task)}; ${errorMessage(error)}`;
      return { status: "deferred", code: "IMAGE_DEFERRED_RATE_LIMIT", error: message, repo };
    }
    const code = error instanceof MirrorError ? error.code : "MIRROR_INTERNAL_ERROR";
    if (code === "IMAGE_QUOTA_EXCEEDED") {
      this.#fullNamespaces.add(namespace);
      const message = `namespace ${namespace} is over its quota: no more pushes into it this run (${
        errorMessage(error)
      })`;
      return { status: "failed", code, error: message, repo };
    }
    return { status: "failed", code, error: errorMessage(error), repo };
  }

  /** The supply-chain step of a task whose image is at its destination. */
  async #carry(result: TaskResult): Promise<TaskResult> {
    const options = this.#options;
    const { status, digest, task } = result;
    if (!options.supplyChain || !digest || (status !== "pushed" && status !== "exists")) {
      return result;
    }
    const started = performance.now();
    const took = () => result.durationMs + Math.round(performance.now() - started);
    try {
      const carried = await options.supplyChain(task, digest, options.signal, result.platforms);
      return { ...result, carried, durationMs: took() };
    } catch (error) {
      if (options.signal?.aborted) {
        return {
          ...result,
          status: "failed",
          code: "MIRROR_INTERRUPTED",
          error: "interrupted",
          durationMs: took(),
        };
      }
      const code = error instanceof MirrorError ? error.code : "MIRROR_INTERNAL_ERROR";
      const why = errorMessage(error);
      const message =
        `the image is mirrored (${digest}) but its signatures were not carried: ${why}`;
      return { ...result, status: "failed", code, error: message, durationMs: took() };
    }
  }

  /** The deferral sentence when the task's source host is stopped, else null. */
  #stoppedMessage(task: PlanTask): string | null {
    const host = task.source.registry;
    const until = this.#options.pullGate?.gate.stoppedUntil(host);
    if (until === undefined || until === null) return null;
    return `deferred: ${host} answered 429 asking to wait until ${
      new Date(until).toISOString()
    }, longer than the retries wait; no more pulls from it this run, the next run picks it up`;
  }

  /** Is `error` a 429 from the task's source host that stops pulls from it? Stops it if so. */
  #stopsSourceHost(task: PlanTask, error: unknown): boolean {
    const gate = this.#options.pullGate;
    if (!gate || !(error instanceof RegistryError) || error.code !== "IMAGE_RATE_LIMITED") {
      return false;
    }
    const { retryAfterMs, host } = error;
    if (host !== apiHost(task.source.registry) || !shouldStopHost(retryAfterMs, gate)) return false;
    gate.gate.stop(task.source.registry, Date.now() + (retryAfterMs as number));
    return true;
  }

  /** Tasks the run did not get to (interrupted, or stopped after a failure). */
  #markNotStarted(interrupted: boolean): void {
    for (const task of this.#plan.tasks) {
      if (this.#results[task.id]) continue;
      this.#results[task.id] = {
        task,
        status: "skipped",
        code: interrupted ? "MIRROR_INTERRUPTED" : "MIRROR_FAILED",
        error: interrupted
          ? "not started: the run was interrupted"
          : "not started: the run stopped after a failure (continueOnError is off)",
        durationMs: 0,
      };
    }
  }

  /** `latest` in every repository with a mirrored tag, one repository each at once. */
  async #latest(reads: number): Promise<LatestOutcome[]> {
    const update = this.#options.updateLatest as NonNullable<RunPlanOptions["updateLatest"]>;
    // A HEAD of `latest` each; a PUT where it moves.
    const groups = latestGroups(this.#results);
    const outcomes: LatestOutcome[] = new Array(groups.length);
    await forEachLimited([...groups.keys()], async (i) => {
      const group = groups[i];
      try {
        outcomes[i] = await update(group, this.#options.signal);
      } catch (error) {
        const code = error instanceof MirrorError ? error.code : "MIRROR_INTERNAL_ERROR";
        outcomes[i] = { group, code, message: errorMessage(error) };
      }
      this.#emit({ kind: "latest", outcome: outcomes[i] });
    }, { limit: reads });
    return outcomes;
  }
}

/** The result of a task the plan decided already (no copy), or null for a push. */
function planned(task: PlanTask): Omit<TaskResult, "task" | "durationMs"> | null {
  switch (task.action) {
    case "exists":
      return {
        status: "exists",
        digest: task.destinationDigest,
        code: "IMAGE_ALREADY_EXISTS",
        ...(task.platformOutcome ? { platforms: task.platformOutcome } : {}),
      };
    case "drift":
      return {
        status: "drift",
        digest: task.destinationDigest,
        code: "IMAGE_TAG_DRIFT",
        error: task.message,
      };
    case "failed":
      return { status: "failed", code: task.code ?? "IMAGE_PULL_FAILED", error: task.message };
    case "deferred":
      return { status: "deferred", code: "IMAGE_DEFERRED_RATE_LIMIT", error: task.message };
    default:
      return null;
  }
}

/**
 * Every repository the run mirrors into that holds at least one mirrored tag (pushed now or
 * already there), with those tags in config order. `latest` is reconciled in all of them on every
 * run, not only where a tag was pushed: a run killed between a tag PUT and the latest move left
 * latest unset or behind, and the re-run (the tag now `exists`) must still move it.
 */
export function latestGroups(results: TaskResult[]): LatestGroup[] {
  const groups = new Map<string, LatestGroup>();
  for (const result of results) {
    const { task } = result;
    const tag = task.destination.tag;
    if (tag === undefined || tag === "latest" || isPinnedDigestTag(tag)) continue;
    if ((result.status !== "pushed" && result.status !== "exists") || !result.digest) continue;
    const key = `${task.target}\n${task.destination.registry}/${task.destination.repository}`;
    let group = groups.get(key);
    if (!group) {
      group = {
        target: task.target,
        registry: task.destination.registry,
        repository: task.destination.repository,
        candidates: [],
      };
      groups.set(key, group);
    }
    group.candidates.push({ tag, digest: result.digest });
  }
  return [...groups.values()];
}
