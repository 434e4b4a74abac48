/**
 * The Quay side of a run, per target with an API token: one Quay API client per target, the token
 * checked once before planning (a refused one fails that target's tasks, as an input of the plan),
 * the plan's read of a destination repository, and the run's rule that makes sure it exists.
 *
 * Quay's permission rules decide both: a token whose user may create repositories but is not org
 * admin gets 403, not 404, for a missing repository. So the plan reads a 403 (and a target without
 * an API token) as "unknown", and the run tries to create the repository and lets that answer
 * decide ("already exists" is a 400 and means it exists).
 *
 * @module
 */
import type {
  ResolvedConfig,
  ResolvedImage,
  ResolvedRegistry,
  ResolvedRepository,
} from "../config/schema.ts";
import { MirrorError } from "../errors.ts";
import type { Logger } from "../log/logger.ts";
import type { Secrets } from "../log/redact.ts";
import { ensureRepository, QuayClient, QuayError } from "../quay_client.ts";
import type { PlanTask, RepoState } from "./plan.ts";

/** The Quay API clients of a run's targets, and the run's rules over them. */
export class QuayRepositories {
  #config: ResolvedConfig;
  #secrets: Secrets;
  #clients = new Map<string, QuayClient>();

  /** Clients are made on first use, from `config.registries` and `config.operation`. */
  constructor(config: ResolvedConfig, secrets: Secrets) {
    this.#config = config;
    this.#secrets = secrets;
  }

  /** The Quay API client of a target (by its name in the config). */
  client(name: string): QuayClient {
    let quay = this.#clients.get(name);
    if (!quay) {
      const registry = this.#config.registries[name];
      const op = this.#config.operation;
      quay = new QuayClient({
        baseUrl: `${registry.scheme}://${registry.host}`,
        token: registry.apiToken ?? "",
        caFile: registry.caFile,
        timeoutMs: op.apiTimeout * 1000,
        maxRetries: op.maxRetries,
        retryDelayMs: op.retryDelay * 1000,
        maxRetryWaitMs: op.maxRetryWait * 1000,
        secrets: this.#secrets,
      });
      this.#clients.set(name, quay);
    }
    return quay;
  }

  /**
   * Once per run per Quay target the entries use: check the API token, so a bad one fails once,
   * early. Nothing to check without `createReposIfNotExists`.
   *
   * @returns the targets whose token was refused, with the error (logged here).
   */
  async checkTokens(
    entries: readonly (ResolvedImage | ResolvedRepository)[],
    options: { logger: Logger; signal: AbortSignal },
  ): Promise<Map<string, MirrorError>> {
    const { logger, signal } = options;
    const broken = new Map<string, MirrorError>();
    if (!this.#config.operation.createReposIfNotExists) return broken;
    for (const name of new Set(entries.flatMap((i) => i.targets))) {
      const registry = this.#config.registries[name];
      if (registry.kind !== "quay" || !registry.apiToken) continue;
      try {
        const who = await this.client(name).checkToken(signal);
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

  /**
   * The plan's read: does the repository `name` exist in the target's organization? "unknown"
   * without an API token and on a 403.
   *
   * @throws {MirrorError} any other Quay failure (the task fails with it).
   */
  async state(
    registry: ResolvedRegistry,
    name: string,
    signal?: AbortSignal,
  ): Promise<RepoState> {
    if (!registry.apiToken) return "unknown";
    try {
      const repo = await this.client(registry.name).getRepository(
        registry.organization,
        name,
        signal,
      );
      return repo ? "exists" : "missing";
    } catch (error) {
      if (error instanceof QuayError && error.status === 403) return "unknown";
      throw error;
    }
  }

  /** The run's step before a task's first copy to a repository: make sure it exists. */
  async ensure(task: PlanTask, signal?: AbortSignal): Promise<"created" | "exists"> {
    const repo = task.repo;
    if (!repo) return "exists";
    const description = task.description ??
      `Mirror of ${task.source.registry}/${task.source.repository}, kept by bananna-bot`;
    return await ensureRepository(this.client(task.target), {
      namespace: repo.namespace,
      name: repo.name,
      description,
      signal,
    });
  }
}
