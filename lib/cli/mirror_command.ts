/**
 * The composition root of a mirror run:
 * config -> logger + lock -> credentials -> plan (reads only) -> run (engine) -> report.
 * Returns the exit code; never calls Deno.exit.
 *
 * @module
 */
import type { MirrorCommand } from "./args.ts";
import type { Io } from "./io.ts";
import { createTerminal, type Terminal } from "./terminal.ts";
import { loadConfig, logOpenError } from "../config/load_config.ts";
import type { Connection, ResolvedConfig, ResolvedImage } from "../config/schema.ts";
import type { Credential } from "../credentials/credential.ts";
import type { Engine } from "../engine/engine.ts";
import { errorMessage, MirrorError, UsageError } from "../errors.ts";
import { RegistryError } from "../registry/registry_error.ts";
import { Logger } from "../log/logger.ts";
import { secrets } from "../log/redact.ts";
import { MirrorState } from "../mirror_state.ts";
import { buildPlan, type MirrorPlan, type PlanProbe } from "../plan.ts";
import { ensureRepository, QuayClient } from "../quay_client.ts";
import { formatReference, isLoopbackHost, manifestRef } from "../registry/reference.ts";
import { imageConfigDigest } from "../registry/image_config.ts";
import { RegistryClient } from "../registry/registry_client.ts";
import { buildReport, type Report } from "../report.ts";
import { acquireRunLock, type RunLock } from "../run_lock.ts";
import { latestGroups, type MirrorEvent, runPlan } from "../run_plan.ts";
import { updateLatest } from "../update_latest.ts";
import { VERSION } from "../version.ts";
import { loginAll } from "./mirror_logins.ts";
import { finishRun, logEvent, planLine, planResults } from "./mirror_output.ts";
import { MirrorProgress } from "./mirror_progress.ts";

const OP = "Mirror";

/** Run `bananna-bot mirror`. */
export async function runMirror(cmd: MirrorCommand, io: Io): Promise<number> {
  const startedAt = new Date();
  const config = await loadConfig(cmd.config, { env: io.env, cwd: io.cwd });
  const images = selectImages(config.images, cmd.only);
  const terminal = createTerminal({
    stdout: io.stdout,
    stderr: io.stderr,
    isTerminal: io.isTerminal,
    noColor: Boolean(io.env.NO_COLOR),
  });
  registerSecrets(config);
  const progress = new MirrorProgress(terminal);
  // The lock first: only its holder may rotate the log (rotation archives and empties it).
  let lock: RunLock | null = null;
  let locked: MirrorError | null = null;
  try {
    lock = await acquireRunLock(config.log.dir);
  } catch (error) {
    if (!(error instanceof MirrorError) || error.code !== "MIRROR_LOCKED") throw error;
    locked = error;
  }
  await using _lock = lock;
  const logger = await Logger.open({
    settings: config.log,
    console: (line, level) => progress.logLine(line, level),
    secrets,
    rotate: lock !== null,
  }).catch((error: unknown) => {
    throw logOpenError(config, error);
  });
  try {
    logger.info(
      "SUCCESS",
      "bananna-bot Startup",
      `bananna-bot ${VERSION} starting up (config ${config.file})`,
    );
    for (const w of config.warnings) {
      logger.warn("CONFIG_WARNING", "Config", `${w.path ? `${w.path}: ` : ""}${w.message}`);
    }
    if (!lock) {
      logger.error("MIRROR_LOCKED", OP, locked?.message ?? "the run lock is held");
      return 1;
    }
    if (lock.tookOverFrom) {
      logger.warn("MIRROR_LOCK_STALE", OP, `Took over a stale lock from ${lock.tookOverFrom}`);
    }
    const run = new MirrorRun(config, images, cmd, io, logger, terminal, progress);
    return await run.execute(startedAt);
  } catch (error) {
    if (error instanceof MirrorError) {
      logger.error(error.code, OP, error.message);
      return io.signal.aborted ? 130 : 1;
    }
    throw error;
  } finally {
    progress.clear();
    await logger.close();
  }
}

/** `--only` patterns: `*` matches any run of characters; matched against key and full reference. */
export function selectImages(images: ResolvedImage[], patterns: string[]): ResolvedImage[] {
  if (patterns.length === 0) return images;
  const regexes = patterns.map((p) =>
    new RegExp(`^${p.split("*").map((s) => s.replace(/[.+?^${}()|[\]\\]/g, "\\$&")).join(".*")}$`)
  );
  const selected = images.filter((image) =>
    regexes.some((r) => r.test(image.key) || r.test(formatReference(image.source)))
  );
  if (selected.length === 0) {
    throw new UsageError(
      `--only ${patterns.join(", ")} matched no image (images: ${
        images.map((i) => i.key).join(", ")
      })`,
    );
  }
  return selected;
}

function registerSecrets(config: ResolvedConfig): void {
  for (const registry of Object.values(config.registries)) {
    secrets.add(registry.password);
    secrets.add(registry.apiToken);
    if (registry.username && registry.password) {
      secrets.addBasic(registry.username, registry.password);
    }
  }
  for (const source of Object.values(config.sources)) {
    secrets.add(source.password);
    if (source.username && source.password) secrets.addBasic(source.username, source.password);
  }
}

class MirrorRun {
  #clients = new Map<string, RegistryClient>();
  #quay = new Map<string, QuayClient>();
  #quayBroken = new Map<string, MirrorError>();
  /** Hosts whose login failed: their tasks fail with this error (continueOnError) instead of the run. */
  #hostBroken = new Map<string, MirrorError>();

  constructor(
    readonly config: ResolvedConfig,
    readonly images: ResolvedImage[],
    readonly cmd: MirrorCommand,
    readonly io: Io,
    readonly logger: Logger,
    readonly terminal: Terminal,
    readonly progress: MirrorProgress,
  ) {}

  /** The connection for a host: a destination registry, a configured source, or defaults. */
  connection(host: string): Connection {
    const registry = Object.values(this.config.registries).find((r) => r.host === host);
    if (registry) return registry;
    const source = this.config.sources[host];
    if (source) return source;
    return { host, scheme: isLoopbackHost(host) ? "http" : "https" };
  }

  /** A registry client for `host` with this run's timeouts and retries. */
  newClient(host: string, credential: Credential | null): RegistryClient {
    const connection = this.connection(host);
    const op = this.config.operation;
    return new RegistryClient({
      host,
      scheme: connection.scheme,
      caFile: connection.caFile,
      credential,
      timeoutMs: op.apiTimeout * 1000,
      maxRetries: op.maxRetries,
      retryDelayMs: op.retryDelay * 1000,
      maxManifestBytes: op.maxManifestBytes,
      maxRetryWaitMs: op.maxRetryWait * 1000,
      secrets,
      onRetry: (error, retry, delayMs) => {
        const rateLimited = error instanceof RegistryError && error.status === 429;
        this.logger.warn(
          rateLimited ? "LOGIN_RATE_LIMITED" : "MIRROR_RETRY",
          "Retry",
          `${errorMessage(error)}; retry ${retry} of ${op.maxRetries} in ${
            (delayMs / 1000).toFixed(1)
          } s`,
        );
      },
    });
  }

  /** The one client per host (login hands over the client it verified the credential with). */
  clientFor = (host: string): RegistryClient => {
    let client = this.#clients.get(host);
    if (!client) {
      // Hosts the login step did not hand over (none is expected): anonymous.
      client = this.newClient(host, null);
      this.#clients.set(host, client);
    }
    return client;
  };

  async execute(startedAt: Date): Promise<number> {
    const { config, cmd, logger, io } = this;
    const op = config.operation;
    const pairs = this.images.reduce((n, i) => n + i.targets.length, 0);
    logger.info(
      "MIRROR_START",
      OP,
      `${
        cmd.dryRun ? "Dry run" : "Run"
      }: ${this.images.length} image(s), ${pairs} image x target, engine ${op.engine}, concurrency ${op.concurrency}`,
    );
    const engine = await this.makeEngine();
    try {
      if (!cmd.dryRun) await engine.prepare(io.signal);
      await this.resolveCredentials(engine);
      if (!cmd.dryRun) await this.checkQuayTokens();
      const state = await MirrorState.load(config.log.dir);
      const plan = await buildPlan(config, this.probe(), {
        comparison: engine.comparison,
        images: this.images,
        signal: io.signal,
        isEquivalent: (dst, s, d) => state.isEquivalent(dst, s, d),
      });
      for (const task of plan.tasks) {
        const broken = this.#quayBroken.get(task.target);
        if (broken && task.action !== "failed") {
          task.action = "failed";
          task.code = broken.code;
          task.message = broken.message;
        }
      }
      if (cmd.dryRun) return await this.finishDryRun(plan, startedAt);
      const outcome = await runPlan(plan, {
        engine,
        concurrency: op.concurrency,
        continueOnError: op.continueOnError,
        platform: op.platform,
        signal: io.signal,
        ensureRepository: (task, signal) => this.ensureRepo(task.target, task, signal),
        updateLatest: op.updateLatest
          ? (group, signal) => updateLatest(this.clientFor(group.registry), group, { signal })
          : undefined,
        onEvent: (event) => this.onEvent(event),
      });
      if (engine.comparison === "config") {
        for (const r of outcome.results) {
          if ((r.status === "pushed" || r.status === "exists") && r.task.sourceDigest && r.digest) {
            state.record(formatReference(r.task.destination), r.task.sourceDigest, r.digest);
          }
        }
        await state.save().catch((error) =>
          logger.warn(
            "MIRROR_FAILED",
            OP,
            `Cannot save ${config.log.dir}/.mirror-state.json: ${errorMessage(error)}`,
          )
        );
      }
      const report = buildReport(outcome.results, {
        version: VERSION,
        engine: op.engine,
        config: config.file,
        dryRun: false,
        interrupted: outcome.interrupted,
        startedAt,
        endedAt: new Date(),
        latest: outcome.latest,
        secrets,
      });
      return await this.finish(report);
    } finally {
      await engine.close().catch((error) =>
        logger.warn("DOCKER_COMMAND_FAILED", "Cleanup", errorMessage(error))
      );
      for (const client of this.#clients.values()) client.close();
    }
  }

  async makeEngine(): Promise<Engine> {
    const op = this.config.operation;
    if (op.engine === "registry") {
      const { RegistryEngine } = await import("../engine/registry_engine.ts");
      return new RegistryEngine({ clientFor: this.clientFor });
    }
    const { DockerEngine } = await import("../engine/docker_engine.ts");
    return new DockerEngine({
      clientFor: this.clientFor,
      dockerTimeoutMs: op.dockerTimeout * 1000,
      maxRetries: op.maxRetries,
      retryDelayMs: op.retryDelay * 1000,
      platform: op.platform,
      cleanupLocalImages: op.cleanupLocalImages,
      env: this.io.env as Record<string, string>,
      secrets,
    });
  }

  /** Credentials for every destination and source host, before image work (mirror_logins.ts). */
  async resolveCredentials(engine: Engine): Promise<void> {
    const logins = await loginAll({
      config: this.config,
      images: this.images,
      io: this.io,
      logger: this.logger,
      secrets,
      engine,
      interactive: this.io.isTerminal && !this.cmd.nonInteractive,
      dockerLogin: !this.cmd.dryRun,
      connection: (host) => this.connection(host),
      newClient: (host, credential) => this.newClient(host, credential),
      say: (text) => this.terminal.warn(text),
    });
    this.#hostBroken = logins.broken;
    // Reuse the verified clients: their auth scheme, tokens and connections are known good.
    for (const [host, client] of logins.clients) this.#clients.set(host, client);
  }

  /** Once per run per Quay registry: check the API token, so a bad one fails once, early. */
  async checkQuayTokens(): Promise<void> {
    const { config } = this;
    if (!config.operation.createReposIfNotExists) return;
    const used = new Set(this.images.flatMap((i) => i.targets));
    for (const name of used) {
      const registry = config.registries[name];
      if (registry.kind !== "quay" || !registry.apiToken) continue;
      try {
        const who = await this.quayFor(name).checkToken(this.io.signal);
        this.logger.info(
          "LOGIN_SUCCESS",
          "Quay API",
          `${registry.host}: API token of ${who.username} accepted`,
        );
      } catch (error) {
        if (!(error instanceof MirrorError)) throw error;
        this.logger.error(error.code, "Quay API", error.message);
        this.#quayBroken.set(name, error);
      }
    }
  }

  quayFor(name: string): QuayClient {
    let quay = this.#quay.get(name);
    if (!quay) {
      const registry = this.config.registries[name];
      const op = this.config.operation;
      quay = new QuayClient({
        baseUrl: `${registry.scheme}://${registry.host}`,
        token: registry.apiToken ?? "",
        caFile: registry.caFile,
        timeoutMs: op.apiTimeout * 1000,
        maxRetries: op.maxRetries,
        retryDelayMs: op.retryDelay * 1000,
        maxRetryWaitMs: op.maxRetryWait * 1000,
        secrets,
      });
      this.#quay.set(name, quay);
    }
    return quay;
  }

  #failIfBroken(host: string): void {
    const broken = this.#hostBroken.get(host);
    if (broken) throw broken;
  }

  probe(): PlanProbe {
    return {
      manifestDigest: async (ref, signal) =>
        (this.#failIfBroken(ref.registry),
          await this.clientFor(ref.registry).manifestHead(ref.repository, manifestRef(ref), signal))
          ?.digest ?? null,
      configDigest: (
        ref,
        platform,
        signal,
      ) => (this.#failIfBroken(ref.registry),
        imageConfigDigest(this.clientFor(ref.registry), ref.repository, manifestRef(ref), {
          platform,
          signal,
        })),
      repository: async (registry, name, signal) => {
        this.#failIfBroken(registry.host);
        if (this.#quayBroken.has(registry.name) || !registry.apiToken) return "unknown";
        try {
          const repo = await this.quayFor(registry.name).getRepository(
            registry.organization,
            name,
            signal,
          );
          return repo ? "exists" : "missing";
        } catch (error) {
          if ((error as { status?: number }).status === 403) return "unknown";
          throw error;
        }
      },
    };
  }

  async ensureRepo(
    target: string,
    task: {
      repo: { namespace: string; name: string } | null;
      description?: string;
      source: { registry: string; repository: string };
    },
    signal?: AbortSignal,
  ): Promise<"created" | "exists"> {
    const repo = task.repo;
    if (!repo) return "exists";
    const description = task.description ??
      `Mirror of ${task.source.registry}/${task.source.repository}, kept by bananna-bot`;
    return await ensureRepository(this.quayFor(target), {
      namespace: repo.namespace,
      name: repo.name,
      description,
      signal,
    });
  }

  onEvent(event: MirrorEvent): void {
    this.progress.onEvent(event);
    logEvent(this.logger, this.config.registries, event);
  }

  async finishDryRun(plan: MirrorPlan, startedAt: Date): Promise<number> {
    const { logger } = this;
    const results = planResults(plan);
    for (const result of results) logger.info("IMAGE_PLANNED", "Plan", planLine(result));
    // Predict latest moves: repositories that would get a new tag.
    const predicted = latestGroups(results.map((r) => ({
      ...r,
      status: r.status === "planned" ? "pushed" : r.status,
      digest: r.digest ?? r.task.sourceDigest,
    })));
    const latest = [];
    if (this.config.operation.updateLatest) {
      for (const group of predicted) {
        try {
          const outcome = await updateLatest(this.clientFor(group.registry), group, {
            dryRun: true,
            signal: this.io.signal,
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
    const report = buildReport(results, {
      version: VERSION,
      engine: this.config.operation.engine,
      config: this.config.file,
      dryRun: true,
      interrupted: false,
      startedAt,
      endedAt: new Date(),
      latest,
      secrets,
    });
    return await this.finish(report);
  }

  async finish(report: Report): Promise<number> {
    this.progress.clear();
    return await finishRun(report, {
      logger: this.logger,
      terminal: this.terminal,
      logDir: this.config.log.dir,
      reportPath: this.cmd.report,
    });
  }
}
