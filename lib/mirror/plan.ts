/**
 * The plan: one task per image x target with the action a run would take, found with reads only
 * (manifest HEADs, Quay GETs). `--dry-run` prints it; `runPlan` executes the same tasks, so the
 * dry run and the real run cannot drift apart (skopeo sync's imagesToCopy, regsync's actions).
 *
 * "Same image" depends on the engine: the registry engine keeps digests, so the manifest digest
 * decides; docker recompresses layers on push, so for it the config digest (image ID) of the
 * configured platform decides once the manifest digests differ.
 *
 * `repositories` entries are listed first (once per source repository, repository_selection.ts);
 * each selected tag becomes an image like one under `images`, and an explicit image and a selected
 * tag naming the same destination are one task. A selected tag in `tags.mutable` whose destination
 * holds another image is not drift but a push with `replaceDigest` (the digest seen here), which
 * the engine honours only while the tag still holds it.
 *
 * What the run learned before planning is an input, never a patch afterwards: a host whose login
 * failed (continueOnError) fails every read on it, so its tasks fail with the login's error; a
 * Quay target whose API token was refused is not asked about repositories, and its tasks that
 * would otherwise run fail with the token's error.
 *
 * Before it, the quota of every Quay organization pushed into (plan_quota.ts): a full one fails
 * its pushes at once. The last step is the pull budget (pull_budget.ts): the rate limits the
 * manifest HEADs carried (`ratelimit-limit` / `ratelimit-remaining`, from whichever host sends
 * them) decide which tasks that would push fit; the rest are `deferred` (IMAGE_DEFERRED_RATE_LIMIT).
 *
 * @module
 */
import { failedLogin } from "./logins.ts";
import type {
  ResolvedConfig,
  ResolvedImage,
  ResolvedRegistry,
  ResolvedRepository,
} from "../config/schema.ts";
import type {
  Comparison,
  PlatformOutcome,
  PlatformRequest,
  SupplyChainMemo,
} from "../engine/engine.ts";
import { errorMessage, MirrorError } from "../errors.ts";
import type { Code } from "../log/codes.ts";
import { formatReference, pinnedDigestTag, type Reference } from "../registry/reference.ts";
import type { ManifestBytes } from "../registry/image_store.ts";
import { forEachLimited } from "../worker_pool.ts";
import type { NamespaceQuota } from "../registry/quay_client.ts";
import {
  applyPullBudget,
  type HostBudget,
  observeRateLimit,
  pullsForHead,
  type RateLimit,
  type SourceHead,
} from "./pull_budget.ts";
import { applyQuotas, type PlannedQuota } from "./plan_quota.ts";
import { isIndexType, planPlatforms } from "./_plan_platforms.ts";
import {
  type RepositorySelection,
  selectedImages,
  selectRepositories,
} from "./repository_selection.ts";

/** What a task will do. */
export type TaskAction = "push" | "exists" | "drift" | "failed" | "deferred";

/** Repository state on a Quay target (null for plain registries or when creation is off). */
export type RepoState = "exists" | "missing" | "unknown";

/** One image x target. */
export interface PlanTask {
  /** Position in the plan (stable, config order). */
  id: number;
  /** The image key as written in the config. */
  imageKey: string;
  /** The target registry's name in the config. */
  target: string;
  source: Reference;
  destination: Reference;
  description?: string;
  /** Quay repository to ensure before the copy, or null. */
  repo: { namespace: string; name: string; state: RepoState } | null;
  action: TaskAction;
  comparedBy: Comparison;
  sourceDigest?: string;
  /** The source manifest's media type as its HEAD said (the supply-chain step skips a read). */
  sourceMediaType?: string;
  /**
   * What the plan's HEAD found at the destination tag. None on a push: the tag was absent (or its
   * Quay repository was still to be created), so the copy starts without HEADing it again (the
   * engine's check right before the tag's PUT stays).
   */
  destinationDigest?: string;
  /** Pulls (manifest GETs) a push spends on the source host (an upper bound; pull_budget.ts). */
  pulls?: number;
  /** Plan-time failure (e.g. IMAGE_NOT_FOUND), drift details or why it is deferred. */
  code?: Code;
  message?: string;
  /** The host whose login failed: not attempted (its one line is the login step's). */
  loginFailed?: string;
  /** The destination tag is in its repository's `tags.mutable`: it follows upstream. */
  mutable?: boolean;
  /**
   * A push that replaces a mutable tag upstream moved: the destination digest the plan saw. The
   * engine writes only while the tag still holds it (else drift).
   */
  replaceDigest?: string;
  /** Cosign public keys (absolute paths) the source digest must be signed with before a push. */
  verifyKeys?: string[];
  /** `operation.signatures` as resolved; `require`: the source must carry a signature. */
  signatures?: "copy" | "skip" | "require";
  /** Registry engine: the platforms of an index to mirror, and how (`platforms`). */
  platforms?: PlatformRequest;
  /** What the destination holds of an index mirrored for some platforms (plan said exists). */
  platformOutcome?: PlatformOutcome;
}

/** The whole plan. */
export interface MirrorPlan {
  engine: "docker" | "registry";
  tasks: PlanTask[];
  /** The pull budget of every rate-limited source host the pushes pull from (sorted by host). */
  pullBudget?: HostBudget[];
  /** What the rules of each planned `repositories` entry selected (config order). */
  selections?: RepositorySelection[];
  /** Quay organizations pushed into that are full or past their warning limit (_plan_quota.ts). */
  quotas?: PlannedQuota[];
}

/** A manifest HEAD as the plan reads it. */
export interface ProbedManifest {
  digest: string;
  mediaType: string;
  size: number;
  /** The rate limit the answer carried (Docker Hub's `ratelimit-*` headers), or null. */
  rateLimit: RateLimit | null;
}

/** Reads the plan needs. Implemented in registry_probe.ts on the registry and Quay clients. */
export interface PlanProbe {
  /** A reference's manifest HEAD (digest, type, size, rate limit), or null when absent. */
  manifestHead(ref: Reference, signal?: AbortSignal): Promise<ProbedManifest | null>;
  /** Config digest (image ID) for `platform` (or the default one), or null when absent. */
  configDigest(ref: Reference, platform: string | undefined, signal?: AbortSignal): Promise<
    string | null
  >;
  /** Does the Quay repository exist? ("unknown" when Quay answers 403 to a non-admin token). */
  repository(registry: ResolvedRegistry, name: string, signal?: AbortSignal): Promise<RepoState>;
  /**
   * The destinations the plan is about to read: a registry's token server may then be asked for
   * several repositories at once. Optional: a probe without it reads one repository at a time.
   */
  expect?(refs: Iterable<Reference>): void;
  /** Every tag of a source repository (all pages); [] when it is absent (404). */
  tags(repository: Omit<Reference, "tag" | "digest">, signal?: AbortSignal): Promise<string[]>;
  /** The storage quota of a Quay target's organization, or null (none, or not readable). */
  quota?(registry: ResolvedRegistry, signal?: AbortSignal): Promise<NamespaceQuota | null>;
  /**
   * A manifest's exact bytes (read at the destination only: tasks with `platforms`), or null.
   * Optional: without it the engine decides those tasks.
   */
  manifest?(ref: Reference, signal?: AbortSignal): Promise<ManifestBytes | null>;
}

/** Options for {@link buildPlan}. */
export interface BuildPlanOptions {
  comparison: Comparison;
  /** Images to plan (default: all; `--only` filters). */
  images?: ResolvedImage[];
  /** Repositories whose tags are selected by rules (default: all; `--only` filters). */
  repositories?: ResolvedRepository[];
  signal?: AbortSignal;
  /** Reads at once. @default config.operation.concurrency * 4 */
  concurrency?: number;
  /** Pairs (source digest, destination digest) earlier runs proved to hold the same image. */
  isEquivalent?: (destination: string, sourceDigest: string, destinationDigest: string) => boolean;
  /** Hosts whose login failed: every read on them fails with this error. */
  brokenHosts?: ReadonlyMap<string, MirrorError>;
  /** Target names whose Quay API token was refused: their tasks fail with this error. */
  brokenTargets?: ReadonlyMap<string, MirrorError>;
  /** When the rate limits were read (the refill time of deferred tasks). @default Date.now() */
  nowMs?: number;
  /**
   * What earlier runs learned (registry to registry): tasks with `platforms` skip the destination
   * index GET and the HEADs of children found there less than 24 h ago (_plan_platforms.ts).
   */
  memo?: SupplyChainMemo;
  /** Shards the run is split in: this one plans with its share of each pull budget. @default 1 */
  budgetShare?: number;
  /**
   * Reads the run makes after the plan anyway (_plan_prefetch.ts), made right after each task's
   * own reads (its action known), in the same slot of the read concurrency; must not throw.
   */
  beside?: (task: PlanTask) => Promise<unknown> | undefined;
}

/**
 * The destination reference of an image on a target registry: always a tag, never a digest
 * alone. `name:tag@digest` writes `tag` (the digest decides the content); `name@digest` writes
 * {@link pinnedDigestTag} (a manifest reachable by no tag expires on Quay and is collected by
 * distribution's garbage collection).
 */
function destinationOf(image: ResolvedImage, registry: ResolvedRegistry): Reference {
  const ref: Reference = {
    registry: registry.host,
    repository: `${registry.namespace}/${image.repository}`,
  };
  if (image.source.tag !== undefined) ref.tag = image.source.tag;
  else if (image.source.digest !== undefined) ref.tag = pinnedDigestTag(image.source.digest);
  return ref;
}

/** Build the plan with reads only. */
export async function buildPlan(
  config: ResolvedConfig,
  reads: PlanProbe,
  options: BuildPlanOptions,
): Promise<MirrorPlan> {
  const brokenHosts = options.brokenHosts ?? new Map<string, MirrorError>();
  const brokenTargets = options.brokenTargets ?? new Map<string, MirrorError>();
  const probe = failingOnBrokenHosts(reads, brokenHosts);
  const selections = await selectRepositories(options.repositories ?? config.repositories, {
    list: (repository, signal) => probe.tags(repository, signal),
    signal: options.signal,
  });
  const { tasks, listingFailed } = planTasks(
    config,
    options.images ?? config.images,
    selections,
    options.comparison,
  );
  const reader = new TaskReads(config, probe, options, brokenHosts, brokenTargets);
  // Not a read: a host whose login failed is told too, and reads nothing.
  reads.expect?.(tasks.map((task) => task.destination));
  await forEachLimited(
    tasks.filter((task) => !listingFailed.includes(task)),
    async (task) => {
      await reader.plan(task).then(() => options.beside?.(task));
      // A target's refused token (or robot grant) is its tasks' error, also over the login
      // failure of its host that it may have caused (a robot without a grant reads nothing).
      const broken = brokenTargets.get(task.target);
      const hostDown = brokenHosts.has(task.destination.registry);
      if (broken && (task.action !== "failed" || hostDown)) fail(task, broken.code, broken.message);
    },
    { limit: options.concurrency ?? config.operation.concurrency * 4 },
  );
  const quotas = await applyQuotas(tasks, config, {
    read: probe.quota && ((registry) => probe.quota?.(registry, options.signal) ?? null),
  });
  const pullBudget = applyPullBudget(tasks, {
    engine: config.operation.engine,
    limits: reader.limits,
    heads: reader.pushHeads,
    planPulls: reader.planPulls,
    reserve: config.operation.dockerHubReserve,
    nowMs: options.nowMs ?? Date.now(),
    share: options.budgetShare,
  });
  return { engine: config.operation.engine, tasks, pullBudget, selections, quotas };
}

/**
 * The tasks, before any read: one per image x target (explicit images first, then each
 * `repositories` entry's selected tags; one task per destination, the first wins), and a failed
 * task per target of an entry whose listing failed.
 */
function planTasks(
  config: ResolvedConfig,
  images: ResolvedImage[],
  selections: RepositorySelection[],
  comparison: Comparison,
): { tasks: PlanTask[]; listingFailed: PlanTask[] } {
  const tasks: PlanTask[] = [];
  // An explicit image and a selected tag naming one destination are one task (the first).
  const byDestination = new Map<string, PlanTask>();
  const addTask = (image: ResolvedImage, target: string, mutable: ReadonlySet<string>) => {
    const registry = config.registries[target];
    const destination = destinationOf(image, registry);
    const key = `${target}\n${formatReference(destination)}`;
    const isMutable = destination.tag !== undefined && mutable.has(destination.tag);
    const existing = byDestination.get(key);
    if (existing) {
      if (isMutable) existing.mutable = true;
      return;
    }
    const quay = registry.kind === "quay" && config.operation.createReposIfNotExists;
    const task: PlanTask = {
      id: tasks.length,
      imageKey: image.key,
      target,
      source: image.source,
      destination,
      description: image.description,
      repo: quay
        ? { namespace: registry.organization, name: image.repository, state: "unknown" }
        : null,
      action: "push",
      comparedBy: comparison,
    };
    if (isMutable) task.mutable = true;
    if (image.verifyKeys?.length) task.verifyKeys = image.verifyKeys;
    if (config.operation.signatures) task.signatures = config.operation.signatures;
    if (image.platforms && config.operation.engine === "registry") {
      task.platforms = {
        wanted: image.platforms,
        mode: config.operation.platformsMode ?? "sparse",
      };
    }
    tasks.push(task);
    byDestination.set(key, task);
  };
  for (const image of images) {
    for (const target of image.targets) addTask(image, target, new Set());
  }
  const listingFailed: PlanTask[] = [];
  for (const selected of selections) {
    const mutable = new Set(selected.selection?.mutable ?? []);
    for (const image of selectedImages(selected)) {
      for (const target of image.targets) addTask(image, target, mutable);
    }
    const failure = selected.failure;
    if (!failure) continue;
    for (const target of selected.repository.targets) {
      const registry = config.registries[target];
      const task: PlanTask = {
        id: tasks.length,
        imageKey: selected.repository.key,
        target,
        source: selected.repository.source,
        destination: {
          registry: registry.host,
          repository: `${registry.namespace}/${selected.repository.repository}`,
        },
        description: selected.repository.description,
        repo: null,
        action: "failed",
        comparedBy: comparison,
        code: failure.code,
        message: failure.message,
      };
      tasks.push(task);
      listingFailed.push(task);
    }
  }
  return { tasks, listingFailed };
}

/**
 * The reads that decide each task's action: the Quay repository, both manifest HEADs at once,
 * the platforms of an index, the config digests (docker engine). Every read is made once per
 * run (by source, by repository); the rate limits the HEADs carried and the plan's own pulls are
 * kept for the pull budget.
 */
class TaskReads {
  /** The lowest rate limit seen per host. */
  readonly limits = new Map<string, RateLimit>();
  /** The source HEAD of each task that would push, by task id. */
  readonly pushHeads = new Map<number, SourceHead>();
  /** Pulls the plan itself spent per host (config reads). */
  readonly planPulls = new Map<string, number>();
  #sourceHeads = new Map<string, Promise<ProbedManifest | null>>();
  #sourceConfigs = new Map<string, Promise<string | null>>();
  #repoStates = new Map<string, Promise<RepoState>>();

  constructor(
    readonly config: ResolvedConfig,
    readonly probe: PlanProbe,
    readonly options: BuildPlanOptions,
    readonly brokenHosts: ReadonlyMap<string, MirrorError>,
    readonly brokenTargets: ReadonlyMap<string, MirrorError>,
  ) {}

  /** Decide `task`'s action (a failed read fails the task, an abort throws). */
  async plan(task: PlanTask): Promise<void> {
    const { options, probe } = this;
    options.signal?.throwIfAborted();
    try {
      if (task.repo) await this.#repoState(task, task.repo);
      const sourceKey = formatReference(task.source);
      // Both sides at once (a no-op run is these two HEADs per task); the source's answer and
      // failure come first, as if read one after the other.
      const destinationHead = task.repo?.state === "missing"
        ? Promise.resolve(null)
        : this.#head(task.destination);
      destinationHead.catch(() => {});
      const sourceHead = await once(this.#sourceHeads, sourceKey, () => this.#head(task.source));
      if (sourceHead === null) {
        return fail(task, "IMAGE_NOT_FOUND", `Source image ${sourceKey} does not exist`);
      }
      const sourceDigest = task.sourceDigest = sourceHead.digest;
      task.sourceMediaType = sourceHead.mediaType;
      const destinationDigest = (await destinationHead)?.digest ?? null;
      if (destinationDigest === null) {
        task.action = "push";
        this.pushHeads.set(task.id, sourceHead);
        return;
      }
      task.destinationDigest = destinationDigest;
      if (task.platforms && isIndexType(sourceHead.mediaType)) {
        const decided = await planPlatforms(task, probe, destinationDigest, options);
        if (decided === "push") this.pushHeads.set(task.id, sourceHead);
        if (decided) return;
      }
      if (destinationDigest === sourceDigest) {
        task.action = "exists";
        task.comparedBy = "manifest";
        return;
      }
      if (options.comparison === "config") {
        return await this.#compareConfigs(task, sourceHead, destinationDigest);
      }
      if (task.mutable) return replace(task, destinationDigest);
      task.action = "drift";
      task.code = "IMAGE_TAG_DRIFT";
      task.message = `${
        formatReference(task.destination)
      } holds ${destinationDigest}, source has ${sourceDigest}; left untouched`;
    } catch (error) {
      if (options.signal?.aborted) throw error;
      const code = error instanceof MirrorError ? error.code : "MIRROR_INTERNAL_ERROR";
      fail(task, code, failedLogin(this.brokenHosts, error, task) ?? errorMessage(error));
    }
  }

  /** A manifest HEAD, keeping the lowest rate limit its host sent. */
  async #head(ref: Reference): Promise<ProbedManifest | null> {
    const found = await this.probe.manifestHead(ref, this.options.signal);
    observeRateLimit(this.limits, ref.registry, found?.rateLimit);
    return found;
  }

  /** The Quay repository's state, read once per repository. */
  async #repoState(task: PlanTask, repo: NonNullable<PlanTask["repo"]>): Promise<void> {
    const registry = this.config.registries[task.target];
    repo.state = await once(
      this.#repoStates,
      `${registry.name}/${repo.namespace}/${repo.name}`,
      async () => {
        // A refused API token: no Quay read; the task fails below unless it fails first.
        if (!this.brokenTargets.has(registry.name)) {
          return await this.probe.repository(registry, repo.name, this.options.signal);
        }
        throwIfBroken(this.brokenHosts, registry.host);
        return "unknown";
      },
    );
  }

  /** The docker engine: manifest digests differ; the same image when the config digests match. */
  async #compareConfigs(
    task: PlanTask,
    sourceHead: ProbedManifest,
    destinationDigest: string,
  ): Promise<void> {
    const { options, probe } = this;
    const sourceDigest = sourceHead.digest;
    if (
      options.isEquivalent?.(formatReference(task.destination), sourceDigest, destinationDigest)
    ) {
      task.action = "exists";
      return;
    }
    const platform = this.config.operation.platform;
    const [sourceConfig, destinationConfig] = await Promise.all([
      once(this.#sourceConfigs, formatReference(task.source), () => {
        // The config read GETs the manifest (and an index's child): pulls of the plan's own.
        const host = task.source.registry;
        this.planPulls.set(
          host,
          (this.planPulls.get(host) ?? 0) + pullsForHead(sourceHead, "docker"),
        );
        return probe.configDigest(task.source, platform, options.signal);
      }),
      probe.configDigest(task.destination, platform, options.signal),
    ]);
    if (sourceConfig !== null && sourceConfig === destinationConfig) {
      task.action = "exists";
      return;
    }
    if (task.mutable) return replace(task, destinationDigest);
    task.action = "drift";
    task.code = "IMAGE_TAG_DRIFT";
    task.message = `${
      formatReference(task.destination)
    } holds image ${destinationConfig} (manifest ${destinationDigest}), source has image ${sourceConfig} (manifest ${sourceDigest}); left untouched`;
  }
}

/** The value of `key` in `cache`, made once. */
function once<T>(cache: Map<string, Promise<T>>, key: string, make: () => Promise<T>): Promise<T> {
  let value = cache.get(key);
  if (!value) cache.set(key, value = make());
  return value;
}

function throwIfBroken(broken: ReadonlyMap<string, MirrorError>, host: string): void {
  const error = broken.get(host);
  if (error) throw error;
}

/** The probe, but every read on a host whose login failed fails with the login's error. */
function failingOnBrokenHosts(
  probe: PlanProbe,
  broken: ReadonlyMap<string, MirrorError>,
): PlanProbe {
  if (broken.size === 0) return probe;
  /** `read`, failing first when the host named by its first argument is broken. */
  const on = <A extends unknown[], R>(
    host: (first: A[0]) => string,
    read: (...args: A) => Promise<R>,
  ) =>
  async (...args: A): Promise<R> => {
    throwIfBroken(broken, host(args[0]));
    return await read(...args);
  };
  return {
    manifestHead: on((ref) => ref.registry, probe.manifestHead.bind(probe)),
    configDigest: on((ref) => ref.registry, probe.configDigest.bind(probe)),
    repository: on((registry) => registry.host, probe.repository.bind(probe)),
    tags: on((repository) => repository.registry, probe.tags.bind(probe)),
    quota: probe.quota && on((registry) => registry.host, probe.quota.bind(probe)),
    manifest: probe.manifest && on((ref) => ref.registry, probe.manifest.bind(probe)),
  };
}

function fail(task: PlanTask, code: Code, message: string): void {
  task.action = "failed";
  task.code = code;
  task.message = message;
}

/** A mutable tag upstream moved: push again, replacing only the digest the plan saw. */
function replace(task: PlanTask, destinationDigest: string): void {
  task.action = "push";
  task.replaceDigest = destinationDigest;
  task.code = "IMAGE_TAG_UPDATED";
  task.message = `${
    formatReference(task.destination)
  } holds ${destinationDigest}, source has ${task.sourceDigest}; mutable tag, copied again`;
}
