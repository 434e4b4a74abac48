/**
 * A mirror run as a library (what crane.Copy is to crane): credentials -> plan -> run_plan ->
 * latest -> state -> report. The command (cli/mirror_command.ts) loads the config, opens the
 * logger and the lock, and wires {@link MirrorRunOptions.onEvent} to the log and the terminal;
 * everything the run decides is here or one file away:
 *
 * - engine: `operation.engine` picks registry_engine.ts or docker_engine.ts; the docker engine's
 *   engine-wide events (the cleanup in `close()`) go to the log like every other step;
 * - credentials: logins.ts, before any image work; verified clients go to the host pool
 *   (registry/registry_hosts.ts), the credentials themselves go to the engine with each copy;
 * - Quay API tokens: checked once per target before planning (not in a dry run); a refused one
 *   fails that target's tasks, as an input of the plan (quay_repositories.ts);
 * - stores: the store of a host is its registry client, or for the hosts of
 *   {@link MirrorRunOptions.stores} an OCI layout (export's destination, import's sources); the
 *   plan, the engine and the verifier read and write through {@link MirrorRun}'s one `#storeFor`,
 *   so every rule below holds for mirror, export and import alike;
 * - plan: plan.ts over registry_probe.ts, with broken hosts and targets as inputs; its last step
 *   defers what the source hosts' pull budget (rate-limit headers) has no room for;
 * - 429 storm: a source host answering 429 with a Retry-After beyond `retryDelay * maxRetries`
 *   is stopped for the run (HostPullGate) and its remaining tasks deferred (run_plan.ts);
 * - signatures: a task with `verify` keys copies only when its source digest is signed by one
 *   (`.sig` or cosign v3 bundle referrer), with `signatures: require` only when it carries a
 *   signature (verify_signatures.ts), checked before anything is written; after the copy (or for
 *   a tag already there) its signatures and referrers are carried (supply_chain.ts);
 * - run and `latest`: run_plan.ts and update_latest.ts; a dry run predicts the `latest` moves
 *   (tags that would be pushed count as pushed) without writing;
 * - state: the docker engine's proven pairs (mirror_state.ts), recorded after the run; report.ts.
 *
 * Dispose the run (`await using`) after printing its end: that closes the engine (docker:
 * removes local images when configured) and every registry connection.
 *
 * @module
 */
import type { ResolvedConfig, ResolvedImage, ResolvedRepository } from "../config/schema.ts";
import type { Engine, EngineEvent } from "../engine/engine.ts";
import { errorMessage, MirrorError } from "../errors.ts";
import { CODES } from "../log/codes.ts";
import type { Logger } from "../log/logger.ts";
import type { Secrets } from "../log/redact.ts";
import type { ArtifactStore } from "../registry/image_store.ts";
import { formatReference } from "../registry/reference.ts";
import { RegistryError } from "../registry/registry_error.ts";
import { hostLimits, RegistryHosts } from "../registry/registry_hosts.ts";
import { VERSION } from "../version.ts";
import { unlessLockLost } from "../write_guard.ts";
import { loginAll, type Logins } from "./logins.ts";
import { MirrorState } from "./mirror_state.ts";
import { SUPPLY_CHAIN_STATE_FILE, SupplyChainState } from "./supply_chain_state.ts";
import { buildPlan, type MirrorPlan } from "./plan.ts";
import { PlanPrefetch } from "./_plan_prefetch.ts";
import { HostPullGate } from "./pull_gate.ts";
import { QuayRepositories } from "./quay_repositories.ts";
import { RegistryProbe } from "./registry_probe.ts";
import { selectionEntries, selectionLines } from "./repository_selection.ts";
import { buildReport, planLine, planResults, type Report } from "./report.ts";
import {
  latestGroups,
  type LatestOutcome,
  type MirrorEvent,
  type RunOutcome,
  runPlan,
  type TaskResult,
} from "./run_plan.ts";
import { updateLatest } from "./update_latest.ts";
import { listedTags, signaturesMode, supplyChainStep, unsignedSummary } from "./supply_chain.ts";

const OP = "Mirror";

/** What a run needs. */
export interface MirrorRunOptions {
  config: ResolvedConfig;
  /** The images to mirror (the config's, filtered by `--only`). */
  images: ResolvedImage[];
  /** The repositories whose tags rules select (the config's, filtered by `--only`). */
  repositories: ResolvedRepository[];
  /** Plan only: nothing written, no Quay token check; docker still prepared (fails early). */
  dryRun: boolean;
  /** A person is at a terminal and may be asked for credentials. */
  interactive: boolean;
  /** The environment (credential lookup, the docker CLI's environment). */
  env: Record<string, string | undefined>;
  /** Aborts the run (SIGINT / SIGTERM). */
  signal: AbortSignal;
  /** The run's log; the run writes its own lines (start, logins, retries, plan, state). */
  logger: Logger;
  /** The run's secrets: everything found is registered here. */
  secrets: Secrets;
  /** Where messages for the person at a credential prompt go. */
  say: (text: string) => void;
  /** Events of the image work, for the log and the terminal. */
  onEvent: (event: MirrorEvent) => void;
  /** This run's shard (`--shard`, shard.ts), recorded in the report. */
  shard?: { index: number; count: number } | null;
  /** Hosts whose images live in a store of their own, not a registry (export, import). */
  stores?: HostStores;
}

/**
 * Hosts whose images live in a store of their own (an OCI layout) instead of a registry: export's
 * destination, import's sources. They are never contacted and never logged into; the plan reads
 * them, the engine copies from and to them, and `verify` keys are checked against their
 * signatures, all through {@link HostStores.storeFor}.
 */
export interface HostStores {
  hosts: ReadonlySet<string>;
  /**
   * The store of a host in `hosts`; null: an empty one (a dry-run export to a directory not there
   * yet). `use` "supplyChain" is the view the supply-chain step copies through (an export
   * `--since` counts the earlier export's signature manifests as present, not its images').
   */
  storeFor: (host: string, use: "image" | "supplyChain") => ArtifactStore | null;
}

/**
 * Create a run; nothing happens before {@link MirrorRun.execute}.
 *
 * @example Usage (the command's shape)
 * ```ts
 * import { createMirrorRun, type MirrorRunOptions } from "./mirror_run.ts";
 *
 * async function mirror(options: MirrorRunOptions) {
 *   await using run = createMirrorRun(options);
 *   return await run.execute(new Date());
 * }
 * ```
 */
export function createMirrorRun(options: MirrorRunOptions): MirrorRun {
  return new MirrorRun(options);
}

/** One run: execute it once, then dispose it. */
class MirrorRun implements AsyncDisposable {
  #options: MirrorRunOptions;
  #hosts: RegistryHosts;
  #quay: QuayRepositories;
  #engine?: Engine;
  /** The registry engine's supply-chain memo, saved after the run. */
  #chainMemo?: SupplyChainState;
  #gate = new HostPullGate();
  #results: readonly TaskResult[] = [];

  /** Use {@link createMirrorRun}. */
  constructor(options: MirrorRunOptions) {
    this.#options = options;
    const { config, logger } = options;
    this.#quay = new QuayRepositories(config, options.secrets, logger);
    const op = config.operation;
    this.#hosts = new RegistryHosts({
      hosts: [...Object.values(config.registries), ...Object.values(config.sources)],
      destinations: destinationHosts(config, [...options.images, ...options.repositories]),
      ...hostLimits(op),
      secrets: options.secrets,
      onRetry: (error, retry, delayMs) => {
        const rateLimited = error instanceof RegistryError && error.status === 429;
        logger.warn(
          rateLimited ? "LOGIN_RATE_LIMITED" : "MIRROR_RETRY",
          "Retry",
          `${errorMessage(error)}; retry ${retry} of ${op.maxRetries} in ${
            (delayMs / 1000).toFixed(1)
          } s`,
        );
      },
    });
  }

  /**
   * Run: log in, plan, and (unless a dry run) copy, move `latest`, record state.
   *
   * @param startedAt When the command started (the report's `startedAt`).
   * @returns The report; task failures are in it, not thrown.
   * @throws {MirrorError} what stops the whole run (docker unavailable, a login without
   *   continueOnError, an abort while planning).
   */
  async execute(startedAt: Date): Promise<Report> {
    const { config, images, repositories, dryRun, logger, signal } = this.#options;
    const op = config.operation;
    const pairs = images.reduce((n, i) => n + i.targets.length, 0);
    logger.info(
      "MIRROR_START",
      OP,
      `${dryRun ? "Dry run" : "Run"}: ${images.length} image(s), ${pairs} image x target, ${
        repositories.length ? `${repositories.length} repositor(ies) by rules, ` : ""
      }engine ${op.engine}, concurrency ${op.concurrency}`,
    );
    // The docker engine's daemon is checked before any request (a dry run too: no "Would push"
    // from a run that cannot push). The registry engine has nothing to check: its modules and
    // supply-chain memo load once the first login request is under way, while the logins wait on
    // the network (started before, their loading could land ahead of that request).
    let startEngine = () => {};
    const started = op.engine === "docker"
      ? Promise.resolve()
      : new Promise<void>((resolve) => startEngine = resolve);
    const ready = started.then(() => this.#makeEngine()).then(async (engine) => {
      this.#engine = engine;
      await engine.prepare(signal);
      return engine;
    });
    ready.catch(() => {}); // awaited below, where a failure is thrown
    if (op.engine === "docker") await ready;
    // Quay tokens first: with a robot, its grants must be in place before the login step and the
    // plan read its repositories with the robot's credentials (quay_repositories.ts).
    const brokenTargets = dryRun
      ? new Map<string, MirrorError>()
      : await this.#quay.checkTokens([...images, ...repositories], { logger, signal });
    const logins = await loginAll({
      config,
      images,
      repositories,
      hosts: this.#hosts,
      logger,
      secrets: this.#options.secrets,
      env: this.#options.env,
      interactive: this.#options.interactive,
      say: this.#options.say,
      signal,
      skipHosts: this.#options.stores?.hosts,
      onRequested: () => startEngine(),
    });
    const engine = await ready;
    const state = await MirrorState.load(config.log.dir);
    const probe = new RegistryProbe({
      storeFor: (host) => this.#storeFor(host),
      quay: this.#quay,
    });
    // Reads the run makes after the plan anyway, made beside the plan's HEADs.
    const prefetch = dryRun || this.#options.stores ? undefined : new PlanPrefetch(
      probe,
      {
        latest: op.updateLatest,
        sourceTags: engine.carrySupplyChain !== undefined && signaturesMode(op) !== "skip",
      },
      new Set(repositories.map((r) => r.key)),
      signal,
    );
    const plan = await buildPlan(
      config,
      probe,
      {
        comparison: engine.comparison,
        images,
        repositories,
        signal,
        isEquivalent: (dst, s, d) => state.isEquivalent(dst, s, d),
        brokenHosts: logins.broken,
        brokenTargets,
        memo: this.#chainMemo,
        budgetShare: this.#options.shard?.count,
        // Not for a target whose Quay token was refused: its tasks fail.
        beside: prefetch &&
          ((task) => brokenTargets.has(task.target) ? undefined : prefetch.read(task)),
      },
    );
    for (const q of plan.quotas ?? []) logger.log(CODES[q.code].level, q.code, "Plan", q.message);
    if (dryRun) return await this.#dryRunReport(plan, startedAt);
    const outcome = await this.#run(plan, engine, logins, prefetch);
    this.#results = outcome.results;
    const unsigned = unsignedSummary(outcome.results, op);
    if (unsigned) logger.log("INFO", "IMAGE_UNSIGNED", OP, unsigned); // normal under copy
    if (engine.comparison === "config") await this.#recordState(state, outcome);
    const unsaved = await this.#chainMemo?.save().then(() => "", unlessLockLost);
    if (unsaved) {
      logger.warn("MIRROR_FAILED", OP, `Cannot save ${SUPPLY_CHAIN_STATE_FILE}: ${unsaved}`);
    }
    return buildReport(outcome.results, {
      version: VERSION,
      engine: op.engine,
      config: config.file,
      dryRun: false,
      interrupted: outcome.interrupted,
      startedAt,
      endedAt: new Date(),
      latest: outcome.latest,
      selection: selectionEntries(plan.selections ?? []),
      secrets: this.#options.secrets,
      pullBudget: plan.pullBudget,
      shard: this.#options.shard,
      bandwidth: this.#hosts.bandwidthUsage(),
      stoppedHosts: new Map(
        this.#gate.stoppedHosts().map((host) => [host, this.#gate.stoppedUntil(host) as number]),
      ),
    });
  }

  /** What the executed run did per task (none before, nor in a dry run): for a command's after-step. */
  get results(): readonly TaskResult[] {
    return this.#results;
  }

  /** Close the engine (a failure is a warning) and every registry connection. */
  async [Symbol.asyncDispose](): Promise<void> {
    try {
      await this.#engine?.close().catch((error) =>
        this.#options.logger.warn("DOCKER_COMMAND_FAILED", "Cleanup", errorMessage(error))
      );
    } finally {
      this.#hosts.closeAll();
    }
  }

  /**
   * The store of `host`: its store in {@link MirrorRunOptions.stores}, else its registry client
   * from the host pool. The one place the run answers "where do this host's images live".
   */
  #storeFor(host: string, use: "image" | "supplyChain" = "image"): ArtifactStore | null {
    const stores = this.#options.stores;
    return stores?.hosts.has(host) ? stores.storeFor(host, use) : this.#hosts.client(host);
  }

  /** {@link #storeFor} for copies: a store that is not there is a bug of the caller. */
  #copyStore(host: string, use: "image" | "supplyChain"): ArtifactStore {
    const store = this.#storeFor(host, use);
    if (!store) throw new MirrorError("MIRROR_INTERNAL_ERROR", `${host}: no store to copy with`);
    return store;
  }

  async #makeEngine(use: "image" | "supplyChain" = "image"): Promise<Engine> {
    const op = this.#options.config.operation;
    if (op.engine === "registry") {
      const { RegistryEngine } = await import("../engine/registry_engine.ts");
      // Registry to registry only: a layout is read and HEADed as without it.
      if (!this.#options.stores && !this.#chainMemo) {
        this.#chainMemo = await SupplyChainState.load(this.#options.config.log.dir);
      }
      return new RegistryEngine({
        clientFor: (host) => this.#copyStore(host, use),
        // The engine's copies record what they wrote into it for the supply-chain step: not for
        // a run that carries none (the plan still reads and records its own).
        supplyChainMemo: signaturesMode(op) === "skip" ? undefined : this.#chainMemo,
      });
    }
    const { DockerEngine } = await import("../engine/docker_engine.ts");
    return new DockerEngine({
      clientFor: (host) => this.#hosts.client(host),
      dockerTimeoutMs: op.dockerTimeout * 1000,
      maxRetries: op.maxRetries,
      retryDelayMs: op.retryDelay * 1000,
      platform: op.platform,
      cleanupLocalImages: op.cleanupLocalImages,
      env: this.#options.env as Record<string, string>,
      secrets: this.#options.secrets,
      onEvent: (event) => this.#logEngineEvent(event),
    });
  }

  /** Engine-wide events (not tied to a task: the docker engine's cleanup) go to the log. */
  #logEngineEvent(event: EngineEvent): void {
    if (event.kind !== "step") return;
    this.#options.logger.log(
      CODES[event.code].level,
      event.code,
      event.code === "IMAGE_CLEANUP" ? "Cleanup" : "Image",
      event.message,
    );
  }

  async #run(
    plan: MirrorPlan,
    engine: Engine,
    logins: Logins,
    prefetch?: PlanPrefetch,
  ): Promise<RunOutcome> {
    const { config, signal } = this.#options;
    const op = config.operation;
    // A store with a supply-chain view of its own (a layout) gets an engine of its own for it.
    const chainEngine = this.#options.stores ? await this.#makeEngine("supplyChain") : engine;
    // The signature code (cosign, sigstore bundles, referrers: 7 modules) loads here, once the
    // plan is made: no request before it waits for it.
    const { SignatureVerifier } = await import("./verify_signatures.ts");
    const verifier = new SignatureVerifier({
      // A layout source verifies with the layout's signatures (it is never contacted).
      clientFor: (host) => this.#copyStore(host, "image"),
      onVerified: (source, fingerprint) =>
        this.#options.logger.info("SUCCESS", "Verify", `${source}: signed by key ${fingerprint}`),
      onPresent: (source, form) =>
        this.#options.logger.info(
          "SUCCESS",
          "Verify",
          `${source}: carries a signature (${form}); not verified: no verify keys`,
        ),
    });
    return await runPlan(plan, {
      engine,
      concurrency: op.concurrency,
      continueOnError: op.continueOnError,
      platform: op.platform,
      credentials: logins.credentials,
      signal,
      verify: (task, signal) => verifier.verify(task, signal),
      ensureRepository: (task, signal) => this.#quay.ensure(task, signal),
      updateLatest: op.updateLatest
        ? (group, signal) => {
          const seen = prefetch?.latestSeen.get(`${group.registry}/${group.repository}`);
          const client = this.#hosts.client(group.registry);
          return updateLatest(client, seen === undefined ? group : { ...group, seen }, { signal });
        }
        : undefined,
      onEvent: this.#options.onEvent,
      // Signatures, attestations, SBOMs and referrers travel with each image (supply_chain.ts).
      // A layout holds them as cosign tags and fallback tags in index.json.
      supplyChain: supplyChainStep(chainEngine, {
        operation: op,
        emit: (task, event) => this.#options.onEvent({ kind: "engine", task, event }),
        listed: new Map([...prefetch?.sourceTags ?? [], ...listedTags(plan)]),
      }),
      pullGate: { gate: this.#gate, retryDelayMs: op.retryDelay * 1000, maxRetries: op.maxRetries },
    });
  }

  /** Record the pairs this run proved (docker engine), so a no-op re-run needs only HEADs. */
  async #recordState(state: MirrorState, outcome: RunOutcome): Promise<void> {
    for (const r of outcome.results) {
      if ((r.status === "pushed" || r.status === "exists") && r.task.sourceDigest && r.digest) {
        state.record(formatReference(r.task.destination), r.task.sourceDigest, r.digest);
      }
    }
    await state.save().catch((error) =>
      unlessLockLost(error) && this.#options.logger.warn(
        "MIRROR_FAILED",
        OP,
        `Cannot save ${this.#options.config.log.dir}/.mirror-state.json: ${errorMessage(error)}`,
      )
    );
  }

  /** The dry run: log the plan, predict the `latest` moves, report without writing anything. */
  async #dryRunReport(plan: MirrorPlan, startedAt: Date): Promise<Report> {
    const { config, logger, signal } = this.#options;
    const results = planResults(plan);
    for (const selection of plan.selections ?? []) {
      for (const line of selectionLines(selection)) logger.info("IMAGE_PLANNED", "Plan", line);
    }
    for (const result of results) {
      if (result.status === "deferred") {
        logger.warn("IMAGE_DEFERRED_RATE_LIMIT", "Plan", planLine(result));
      } else logger.info("IMAGE_PLANNED", "Plan", planLine(result));
    }
    // Predict latest moves: repositories that would get a new tag.
    const predicted = latestGroups(results.map((r) => ({
      ...r,
      status: r.status === "planned" ? "pushed" : r.status,
      digest: r.digest ?? r.task.sourceDigest,
    })));
    const latest: LatestOutcome[] = [];
    if (config.operation.updateLatest) {
      for (const group of predicted) {
        try {
          const outcome = await updateLatest(this.#hosts.client(group.registry), group, {
            dryRun: true,
            signal,
          });
          latest.push(outcome);
          logger.info("IMAGE_PLANNED", "Plan", outcome.message);
        } catch (error) {
          logger.warn(
            "IMAGE_PLANNED",
            "Plan",
            `latest in ${group.repository}: ${errorMessage(error)}`,
          );
        }
      }
    }
    return buildReport(results, {
      version: VERSION,
      engine: config.operation.engine,
      config: config.file,
      dryRun: true,
      interrupted: false,
      startedAt,
      endedAt: new Date(),
      latest,
      selection: selectionEntries(plan.selections ?? []),
      secrets: this.#options.secrets,
      pullBudget: plan.pullBudget,
      shard: this.#options.shard,
    });
  }
}

/** Hosts of the targets that no entry reads from (a host both read and written keeps per-request codes). */
function destinationHosts(
  config: ResolvedConfig,
  entries: { source: { registry: string }; targets: string[] }[],
): Set<string> {
  const read = new Set(entries.map((e) => e.source.registry));
  const written = entries.flatMap((e) => e.targets.map((t) => config.registries[t]?.host));
  return new Set(written.filter((host) => host && !read.has(host)));
}
