/**
 * The plan: one task per image x target with the action a run would take, found with reads only
 * (manifest HEADs, Quay GETs). `--dry-run` prints it; `runPlan` executes the same tasks, so the
 * dry run and the real run cannot drift apart (skopeo sync's imagesToCopy, regsync's actions).
 *
 * "Same image" depends on the engine: the registry engine keeps digests, so the manifest digest
 * decides; docker recompresses layers on push, so for it the config digest (image ID) of the
 * configured platform decides once the manifest digests differ.
 *
 * What the run learned before planning is an input, never a patch afterwards: a host whose login
 * failed (continueOnError) fails every read on it, so its tasks fail with the login's error; a
 * Quay target whose API token was refused is not asked about repositories, and its tasks that
 * would otherwise run fail with the token's error.
 *
 * @module
 */
import type { ResolvedConfig, ResolvedImage, ResolvedRegistry } from "../config/schema.ts";
import type { Comparison } from "../engine/engine.ts";
import { errorMessage, MirrorError } from "../errors.ts";
import type { Code } from "../log/codes.ts";
import { formatReference, type Reference } from "../registry/reference.ts";
import { forEachLimited } from "../worker_pool.ts";

/** What a task will do. */
export type TaskAction = "push" | "exists" | "drift" | "failed";

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
  destinationDigest?: string;
  /** Plan-time failure (e.g. IMAGE_NOT_FOUND) or drift details. */
  code?: Code;
  message?: string;
}

/** The whole plan. */
export interface MirrorPlan {
  engine: "docker" | "registry";
  tasks: PlanTask[];
}

/** Reads the plan needs. Implemented in registry_probe.ts on the registry and Quay clients. */
export interface PlanProbe {
  /** Manifest digest of a reference (HEAD), or null when absent. */
  manifestDigest(ref: Reference, signal?: AbortSignal): Promise<string | null>;
  /** Config digest (image ID) for `platform` (or the default one), or null when absent. */
  configDigest(ref: Reference, platform: string | undefined, signal?: AbortSignal): Promise<
    string | null
  >;
  /** Does the Quay repository exist? ("unknown" when Quay answers 403 to a non-admin token). */
  repository(registry: ResolvedRegistry, name: string, signal?: AbortSignal): Promise<RepoState>;
}

/** Options for {@link buildPlan}. */
export interface BuildPlanOptions {
  comparison: Comparison;
  /** Images to plan (default: all; `--only` filters). */
  images?: ResolvedImage[];
  signal?: AbortSignal;
  /** Reads at once. @default config.operation.concurrency * 4 */
  concurrency?: number;
  /** Pairs (source digest, destination digest) earlier runs proved to hold the same image. */
  isEquivalent?: (destination: string, sourceDigest: string, destinationDigest: string) => boolean;
  /** Hosts whose login failed: every read on them fails with this error. */
  brokenHosts?: ReadonlyMap<string, MirrorError>;
  /** Target names whose Quay API token was refused: their tasks fail with this error. */
  brokenTargets?: ReadonlyMap<string, MirrorError>;
}

/** The destination reference of an image on a target registry. */
function destinationOf(image: ResolvedImage, registry: ResolvedRegistry): Reference {
  const ref: Reference = {
    registry: registry.host,
    repository: `${registry.namespace}/${image.repository}`,
  };
  if (image.source.tag !== undefined) ref.tag = image.source.tag;
  else if (image.source.digest !== undefined) ref.digest = image.source.digest;
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
  const images = options.images ?? config.images;
  const tasks: PlanTask[] = [];
  for (const image of images) {
    for (const target of image.targets) {
      const registry = config.registries[target];
      const quay = registry.kind === "quay" && config.operation.createReposIfNotExists;
      tasks.push({
        id: tasks.length,
        imageKey: image.key,
        target,
        source: image.source,
        destination: destinationOf(image, registry),
        description: image.description,
        repo: quay
          ? { namespace: registry.organization, name: image.repository, state: "unknown" }
          : null,
        action: "push",
        comparedBy: options.comparison,
      });
    }
  }
  const sourceDigests = new Map<string, Promise<string | null>>();
  const sourceConfigs = new Map<string, Promise<string | null>>();
  const repoStates = new Map<string, Promise<RepoState>>();
  const platform = config.operation.platform;
  const once = <T>(cache: Map<string, Promise<T>>, key: string, make: () => Promise<T>) => {
    let value = cache.get(key);
    if (!value) cache.set(key, value = make());
    return value;
  };

  await forEachLimited(
    tasks,
    async (task) => {
      await planTask(task);
      const broken = brokenTargets.get(task.target);
      if (broken && task.action !== "failed") fail(task, broken.code, broken.message);
    },
    { limit: options.concurrency ?? config.operation.concurrency * 4 },
  );
  return { engine: config.operation.engine, tasks };

  async function planTask(task: PlanTask): Promise<void> {
    options.signal?.throwIfAborted();
    const registry = config.registries[task.target];
    try {
      if (task.repo) {
        const repo = task.repo;
        repo.state = await once(
          repoStates,
          `${registry.name}/${repo.namespace}/${repo.name}`,
          async () => {
            // A refused API token: no Quay read; the task fails below unless it fails first.
            if (!brokenTargets.has(registry.name)) {
              return await probe.repository(registry, repo.name, options.signal);
            }
            throwIfBroken(brokenHosts, registry.host);
            return "unknown";
          },
        );
      }
      const sourceKey = formatReference(task.source);
      const sourceDigest = await once(
        sourceDigests,
        sourceKey,
        () => probe.manifestDigest(task.source, options.signal),
      );
      if (sourceDigest === null) {
        return fail(task, "IMAGE_NOT_FOUND", `Source image ${sourceKey} does not exist`);
      }
      task.sourceDigest = sourceDigest;
      const destinationDigest = task.repo?.state === "missing"
        ? null
        : await probe.manifestDigest(task.destination, options.signal);
      if (destinationDigest === null) {
        task.action = "push";
        return;
      }
      task.destinationDigest = destinationDigest;
      if (destinationDigest === sourceDigest) {
        task.action = "exists";
        task.comparedBy = "manifest";
        return;
      }
      if (
        options.comparison === "config" &&
        options.isEquivalent?.(formatReference(task.destination), sourceDigest, destinationDigest)
      ) {
        task.action = "exists";
        return;
      }
      if (options.comparison === "config") {
        const [sourceConfig, destinationConfig] = await Promise.all([
          once(
            sourceConfigs,
            sourceKey,
            () => probe.configDigest(task.source, platform, options.signal),
          ),
          probe.configDigest(task.destination, platform, options.signal),
        ]);
        if (sourceConfig !== null && sourceConfig === destinationConfig) {
          task.action = "exists";
          return;
        }
        task.action = "drift";
        task.code = "IMAGE_TAG_DRIFT";
        task.message = `${
          formatReference(task.destination)
        } holds image ${destinationConfig} (manifest ${destinationDigest}), source has image ${sourceConfig} (manifest ${sourceDigest}); left untouched`;
        return;
      }
      task.action = "drift";
      task.code = "IMAGE_TAG_DRIFT";
      task.message = `${
        formatReference(task.destination)
      } holds ${destinationDigest}, source has ${sourceDigest}; left untouched`;
    } catch (error) {
      if (options.signal?.aborted) {
        throw error;
      }
      const code = error instanceof MirrorError ? error.code : "MIRROR_INTERNAL_ERROR";
      fail(task, code, errorMessage(error));
    }
  }
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
  return {
    async manifestDigest(ref, signal) {
      throwIfBroken(broken, ref.registry);
      return await probe.manifestDigest(ref, signal);
    },
    async configDigest(ref, platform, signal) {
      throwIfBroken(broken, ref.registry);
      return await probe.configDigest(ref, platform, signal);
    },
    async repository(registry, name, signal) {
      throwIfBroken(broken, registry.host);
      return await probe.repository(registry, name, signal);
    },
  };
}

function fail(task: PlanTask, code: Code, message: string): void {
  task.action = "failed";
  task.code = code;
  task.message = message;
}
