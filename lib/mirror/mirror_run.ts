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
 *   fails that target's tasks, as an input of the plan;
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
 * - state: the docker engine's proven pairs (mirror_state.ts), recorded after the run;
 * - report: report.ts.
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
import { ensureRepository, QuayClient } from "../quay_client.ts";
import type { ArtifactStore } from "../registry/image_store.ts";
import { formatReference } from "../registry/reference.ts";
import { RegistryError } from "../registry/registry_error.ts";
import { hostLimits, RegistryHosts } from "../registry/registry_hosts.ts";
import { VERSION } from "../version.ts";
import { loginAll, type Logins } from "./logins.ts";
import { MirrorState } from "./mirror_state.ts";
import { SUPPLY_CHAIN_STATE_FILE, SupplyChainState } from "./supply_chain_state.ts";
import { buildPlan, type MirrorPlan, type PlanProbe, type PlanTask } from "./plan.ts";
import { HostPullGate } from "./pull_budget.ts";
import { RegistryProbe } from "./registry_probe.ts";
import { selectionEntries, selectionLines } from "./repository_selection.ts";
import { buildReport, planLine, planResults, type Report } from "./report.ts";
import {
  latestGroups,
  type LatestOutcome,
  type MirrorEvent,
  type RunOutcome,
  runPlan,
} from "./run_plan.ts";
import { updateLatest } from "./update_latest.ts";
import { SignatureVerifier } from "./verify_signatures.ts";
import { listedTags, supplyChainStep } from "./supply_chain.ts";

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
  /**
   * Import: source hosts whose images live elsewhere (an OCI layout). They are never contacted:
   * no login, the plan reads them through `probe`, the engine copies images and their supply
   * chain from `storeFor(host)`, and `verify` keys are checked against its signatures.
   */
  sourceStores?: SourceStores;
}

/** Where the images of some source hosts live instead of their registries (import). */
export interface SourceStores {
  hosts: ReadonlySet<string>;
  storeFor: (host: string) => ArtifactStore;
  /** The plan's reads: those of these hosts answered by the stores, the rest by `inner`. */
  probe: (inner: PlanProbe) => PlanProbe;
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
export class MirrorRun implements AsyncDisposable {
  #options: MirrorRunOptions;
  #hosts: RegistryHosts;
  #quay = new Map<string, QuayClient>();
  #engine?: Engine;
  /** The registry engine's supply-chain memo, saved after the run. */
  #chainMemo?: SupplyChainState;
  #gate = new HostPullGate();

  /** Use {@link createMirrorRun}. */
  constructor(options: MirrorRunOptions) {
    this.#options = options;
    const { config, logger } = options;
    const op = config.operation;
    this.#hosts = new RegistryHosts({
      hosts: [...Object.values(config.registries), ...Object.values(config.sources)],
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
    const engine = this.#engine = await this.#makeEngine();
    await engine.prepare(signal); // a dry run too: no "Would push" from a run that cannot push
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
      skipSources: this.#options.sourceStores?.hosts,
    });
    const brokenTargets = dryRun ? new Map<string, MirrorError>() : await this.#checkQuayTokens();
    const state = await MirrorState.load(config.log.dir);
    const probe = new RegistryProbe({ hosts: this.#hosts, quay: (name) => this.#quayFor(name) });
    const plan = await buildPlan(
      config,
      this.#options.sourceStores?.probe(probe) ?? probe,
      {
        comparison: engine.comparison,
        images,
        repositories,
        signal,
        isEquivalent: (dst, s, d) => state.isEquivalent(dst, s, d),
        brokenHosts: logins.broken,
        brokenTargets,
        budgetShare: this.#options.shard?.count,
      },
    );
    if (dryRun) return await this.#dryRunReport(plan, startedAt);
    const outcome = await this.#run(plan, engine, logins);
    if (engine.comparison === "config") await this.#recordState(state, outcome);
    const unsaved = await this.#chainMemo?.save().then(() => "", errorMessage);
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

  async #makeEngine(): Promise<Engine> {
    const op = this.#options.config.operation;
    const clientFor = (host: string) => this.#hosts.client(host);
    if (op.engine === "registry") {
      const { RegistryEngine } = await import("../engine/registry_engine.ts");
      const stores = this.#options.sourceStores;
      // Registry to registry only: an import (a layout source) reads and HEADs as without it.
      if (!stores) this.#chainMemo = await SupplyChainState.load(this.#options.config.log.dir);
      return new RegistryEngine({
        clientFor: (host) => stores?.hosts.has(host) ? stores.storeFor(host) : clientFor(host),
        supplyChainMemo: this.#chainMemo,
      });
    }
    const { DockerEngine } = await import("../engine/docker_engine.ts");
    return new DockerEngine({
      clientFor,
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

  #run(plan: MirrorPlan, engine: Engine, logins: Logins): Promise<RunOutcome> {
    const { config, signal } = this.#options;
    const op = config.operation;
    const stores = this.#options.sourceStores;
    const verifier = new SignatureVerifier({
      // An import verifies with the layout's signatures (its sources are never contacted).
      clientFor: (host) =>
        stores?.hosts.has(host) ? stores.storeFor(host) : this.#hosts.client(host),
      onVerified: (source, fingerprint) =>
        this.#options.logger.info("SUCCESS", "Verify", `${source}: signed by key ${fingerprint}`),
      onPresent: (source, form) =>
        this.#options.logger.info(
          "SUCCESS",
          "Verify",
          `${source}: carries a signature (${form}); not verified: no verify keys`,
        ),
    });
    return runPlan(plan, {
      engine,
      concurrency: op.concurrency,
      continueOnError: op.continueOnError,
      platform: op.platform,
      credentials: logins.credentials,
      signal,
      verify: (task, signal) => verifier.verify(task, signal),
      ensureRepository: (task, signal) => this.#ensureRepo(task, signal),
      updateLatest: op.updateLatest
        ? (group, signal) => updateLatest(this.#hosts.client(group.registry), group, { signal })
        : undefined,
      onEvent: this.#options.onEvent,
      // Signatures, attestations, SBOMs and referrers travel with each image (supply_chain.ts).
      // An import carries them from the layout (cosign tags and fallback tags in index.json).
      supplyChain: supplyChainStep(engine, {
        operation: op,
        emit: (task, event) => this.#options.onEvent({ kind: "engine", task, event }),
        listed: listedTags(plan),
      }),
      pullGate: { gate: this.#gate, retryDelayMs: op.retryDelay * 1000, maxRetries: op.maxRetries },
    });
  }

  /** Once per run per Quay target: check the API token, so a bad one fails once, early. */
  async #checkQuayTokens(): Promise<Map<string, MirrorError>> {
    const { config, images, repositories, logger, signal } = this.#options;
    const broken = new Map<string, MirrorError>();
    if (!config.operation.createReposIfNotExists) return broken;
    for (const name of new Set([...images, ...repositories].flatMap((i) => i.targets))) {
      const registry = config.registries[name];
      if (registry.kind !== "quay" || !registry.apiToken) continue;
      try {
        const who = await this.#quayFor(name).checkToken(signal);
        logger.info(
          "LOGIN_SUCCESS",
          "Quay API",
          `${registry.host}: API token of ${who.username} accepted`,
        );
      } catch (error) {
        if (!(error instanceof MirrorError)) throw error;
        logger.error(error.code, "Quay API", error.message);
        broken.set(name, error);
      }
    }
    return broken;
  }

  #quayFor(name: string): QuayClient {
    let quay = this.#quay.get(name);
    if (!quay) {
      const registry = this.#options.config.registries[name];
      const op = this.#options.config.operation;
      quay = new QuayClient({
        baseUrl: `${registry.scheme}://${registry.host}`,
        token: registry.apiToken ?? "",
        caFile: registry.caFile,
        timeoutMs: op.apiTimeout * 1000,
        maxRetries: op.maxRetries,
        retryDelayMs: op.retryDelay * 1000,
        maxRetryWaitMs: op.maxRetryWait * 1000,
        secrets: this.#options.secrets,
      });
      this.#quay.set(name, quay);
    }
    return quay;
  }

  async #ensureRepo(task: PlanTask, signal?: AbortSignal): Promise<"created" | "exists"> {
    const repo = task.repo;
    if (!repo) return "exists";
    const description = task.description ??
      `Mirror of ${task.source.registry}/${task.source.repository}, kept by bananna-bot`;
    return await ensureRepository(this.#quayFor(task.target), {
      namespace: repo.namespace,
      name: repo.name,
      description,
      signal,
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
      this.#options.logger.warn(
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
