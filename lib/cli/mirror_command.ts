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
import { loadConfig } from "../config/load_config.ts";
import type { Connection, ResolvedConfig, ResolvedImage } from "../config/schema.ts";
import type { Credential } from "../credentials/credential.ts";
import { missingCredentialsError, resolveCredential } from "../credentials/credential_chain.ts";
import type { Engine } from "../engine/engine.ts";
import { errorMessage, MirrorError, UsageError } from "../errors.ts";
import { type Code, CODES, type Level } from "../log/codes.ts";
import { Logger } from "../log/logger.ts";
import { secrets } from "../log/redact.ts";
import { MirrorState } from "../mirror_state.ts";
import { buildPlan, type MirrorPlan, type PlanProbe } from "../plan.ts";
import { ensureRepository, QuayClient } from "../quay_client.ts";
import { formatReference, isLoopbackHost, manifestRef } from "../registry/reference.ts";
import { imageConfigDigest, RegistryClient } from "../registry/registry_client.ts";
import { buildReport, exitStatus, formatStatistics, type Report } from "../report.ts";
import { acquireRunLock } from "../run_lock.ts";
import { latestGroups, type MirrorEvent, runPlan, type TaskResult } from "../run_plan.ts";
import { updateLatest } from "../update_latest.ts";
import { VERSION } from "../version.ts";
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
  const logger = await Logger.open({
    settings: config.log,
    console: (line, level) => progress.logLine(line, level),
    secrets,
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
    let lock;
    try {
      lock = await acquireRunLock(config.log.dir);
    } catch (error) {
      if (!(error instanceof MirrorError)) throw error;
      logger.error(error.code, OP, error.message);
      return 1;
    }
    await using _lock = lock;
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
  #credentials = new Map<string, Credential | null>();
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

  clientFor = (host: string): RegistryClient => {
    let client = this.#clients.get(host);
    if (!client) {
      const connection = this.connection(host);
      const op = this.config.operation;
      client = new RegistryClient({
        host,
        scheme: connection.scheme,
        caFile: connection.caFile,
        credential: this.#credentials.get(host) ?? null,
        timeoutMs: op.apiTimeout * 1000,
        maxRetries: op.maxRetries,
        retryDelayMs: op.retryDelay * 1000,
        secrets,
      });
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
    });
  }

  /** Credentials for every destination and every source that needs them, before image work. */
  async resolveCredentials(engine: Engine): Promise<void> {
    const { config, logger } = this;
    const interactive = this.io.isTerminal && !this.cmd.nonInteractive;
    const hosts = new Map<string, { repository: string; destination: boolean }>();
    for (const image of this.images) {
      if (!hosts.has(image.source.registry)) {
        hosts.set(image.source.registry, {
          repository: image.source.repository,
          destination: false,
        });
      }
      for (const target of image.targets) {
        const registry = config.registries[target];
        hosts.set(registry.host, {
          repository: `${registry.namespace}/${image.repository}`,
          destination: true,
        });
      }
    }
    for (const [host, { repository, destination }] of hosts) {
      this.io.signal.throwIfAborted();
      try {
        await this.#login(engine, host, repository, destination, interactive);
      } catch (error) {
        if (!(error instanceof MirrorError) || this.io.signal.aborted) throw error;
        logger.error(error.code, "Login", error.message);
        if (!config.operation.continueOnError) throw error;
        this.#hostBroken.set(host, error);
      }
    }
  }

  async #login(
    engine: Engine,
    host: string,
    repository: string,
    destination: boolean,
    interactive: boolean,
  ): Promise<void> {
    const { config, logger } = this;
    const connection = this.connection(host);
    const probe = (credential: Credential | null) =>
      new RegistryClient({
        host,
        scheme: connection.scheme,
        caFile: connection.caFile,
        credential,
        timeoutMs: config.operation.apiTimeout * 1000,
        maxRetries: config.operation.maxRetries,
        retryDelayMs: config.operation.retryDelay * 1000,
        secrets,
      });
    const verify = async (credential: Credential | null): Promise<boolean> => {
      const client = probe(credential);
      try {
        await client.checkAccess(repository, ["pull"], this.io.signal);
        return true;
      } catch (error) {
        if (error instanceof MirrorError && error.code === "LOGIN_FAILED") return false;
        throw error;
      } finally {
        client.close();
      }
    };
    let credential = await resolveCredential(host, {
      config: { username: connection.username, password: connection.password },
      env: this.io.env,
      prompt: false,
      secrets,
    });
    if (credential === null) {
      // Anonymous may be enough (public source, open test registry).
      if (await verify(null)) {
        this.#credentials.set(host, null);
        logger.debug("LOGIN_SUCCESS", "Login", `${host}: anonymous access works`);
        return;
      }
      if (!interactive) throw missingCredentialsError(host);
      credential = await resolveCredential(host, {
        prompt: true,
        env: this.io.env,
        secrets,
        verify: (c: Credential) => verify(c),
      });
      if (credential === null) throw missingCredentialsError(host);
    } else if (!(await verify(credential))) {
      throw new MirrorError(
        "LOGIN_FAILED",
        `${host} refused the credentials from ${credential.source}${
          destination ? "" : " (source registry)"
        }`,
      );
    }
    this.#credentials.set(host, credential);
    logger.info(
      "LOGIN_SUCCESS",
      "Login",
      `${host}: credentials from ${credential.source} accepted`,
    );
    if (engine.name === "docker" && !this.cmd.dryRun && credential.kind === "basic") {
      const docker = engine as Engine & { login(host: string, c: Credential): Promise<void> };
      await docker.login(host, credential);
    }
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
    const { logger } = this;
    this.progress.onEvent(event);
    switch (event.kind) {
      case "repo": {
        const { repo, target } = event.task;
        const where = `${this.config.registries[target].host}/${repo?.namespace}/${repo?.name}`;
        if (event.outcome === "created") {
          logger.info("REPO_CREATED", "Repository", `${where} created (private)`);
        } else logger.info("REPO_EXISTS", "Repository", `${where} exists`);
        break;
      }
      case "engine":
        if (event.event.kind === "step") {
          logger.log(
            event.event.code === "IMAGE_PUSHED" ? "DEBUG" : levelOf(event.event.code),
            event.event.code,
            "Image",
            event.event.message,
          );
        }
        break;
      case "task-done":
        logResult(logger, event.result);
        break;
      case "latest":
        logger.log(
          levelOf(event.outcome.code),
          event.outcome.code,
          "Latest",
          event.outcome.message,
        );
        break;
    }
  }

  async finishDryRun(plan: MirrorPlan, startedAt: Date): Promise<number> {
    const { terminal, logger } = this;
    const results: TaskResult[] = plan.tasks.map((task) => ({
      task,
      status: task.action === "push" ? "planned" : task.action,
      digest: task.destinationDigest,
      code: task.action === "push" ? "IMAGE_PLANNED" : task.code ?? "IMAGE_ALREADY_EXISTS",
      error: task.message,
      durationMs: 0,
    }));
    for (const result of results) {
      const t = result.task;
      const dst = `${t.target} ${formatReference(t.destination)}`;
      const repoNote = t.repo && t.repo.state !== "exists"
        ? ` (create repository ${t.repo.namespace}/${t.repo.name}${
          t.repo.state === "unknown" ? " if missing" : ""
        })`
        : "";
      const line = result.status === "planned"
        ? `would push   ${formatReference(t.source)} -> ${dst}${repoNote}`
        : result.status === "exists"
        ? `exists       ${dst} (${t.comparedBy} digest matches)`
        : result.status === "drift"
        ? `drift        ${dst}: ${t.message}`
        : `would fail   ${formatReference(t.source)} -> ${dst}: [${result.code}] ${t.message}`;
      logger.info("IMAGE_PLANNED", "Plan", line);
    }
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
    void terminal;
    return await this.finish(report);
  }

  async finish(report: Report): Promise<number> {
    const { logger, terminal, config } = this;
    this.progress.clear();
    const lines = formatStatistics(report);
    for (const line of lines) terminal.line(line);
    const code = exitStatus(report);
    const summary =
      `${report.totals.pushed} pushed, ${report.totals.exists} already mirrored, ${report.totals.drift} drift, ${report.totals.failed} failed` +
      (report.totals.skipped ? `, ${report.totals.skipped} not started` : "") +
      (report.dryRun ? `, ${report.totals.planned} would be pushed (dry run)` : "");
    if (report.interrupted) logger.warn("MIRROR_INTERRUPTED", OP, `Interrupted: ${summary}`);
    else if (code === 0) logger.info("MIRROR_COMPLETE", OP, summary);
    else logger.error("MIRROR_FAILED", OP, summary);
    const json = JSON.stringify(report, null, 2) + "\n";
    const paths = [`${config.log.dir}/last-report.json`];
    if (this.cmd.report) paths.push(this.cmd.report);
    for (const path of paths) {
      try {
        await Deno.writeTextFile(path, json);
      } catch (error) {
        logger.error(
          "MIRROR_FAILED",
          "Report",
          `Cannot write the report to ${path}: ${errorMessage(error)}`,
        );
      }
    }
    terminal.line(`Report: ${paths.join(", ")}`);
    return code;
  }
}

function levelOf(code: Code): Level {
  return CODES[code].level;
}

function logResult(logger: Logger, result: TaskResult): void {
  const t = result.task;
  const src = formatReference(t.source);
  const dst = `${t.target} ${formatReference(t.destination)}`;
  switch (result.status) {
    case "pushed":
      logger.info("IMAGE_PUSHED", OP, `${src} -> ${dst} (${result.digest})`);
      break;
    case "exists":
      logger.info(
        "IMAGE_ALREADY_EXISTS",
        OP,
        `${dst} already holds ${src} (${result.digest}, compared by ${t.comparedBy} digest)`,
      );
      break;
    case "drift":
      logger.warn("IMAGE_TAG_DRIFT", OP, result.error ?? `${dst} holds another image`);
      break;
    case "failed":
      logger.error(result.code, OP, `${src} -> ${dst}: ${result.error}`);
      break;
    default:
      break;
  }
}
