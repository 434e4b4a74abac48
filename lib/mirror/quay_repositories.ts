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
import { QuayClient, QuayError } from "../registry/quay_client.ts";
import { httpLimits } from "../registry/http_transport.ts";
import type { Reference } from "../registry/reference.ts";
import type { PlanTask, RepoState } from "./plan.ts";

/**
 * The OAuth scopes a Quay target's API token needs, each with what it is needed for (validate
 * prints them).
 */
export function requiredScopes(registry: ResolvedRegistry, createRepos: boolean): string[] {
  return [
    ...(createRepos
      ? [
        "repo:create (create a missing repository; or org:admin)",
        "repo:write (set its description)",
      ]
      : []),
    ...(registry.robot
      ? [`repo:admin (grant robot ${registry.robot} write on each repository)`]
      : []),
  ];
}

/** A refused robot grant as one clear error: the scope it needs and where it is set. */
function robotGrantError(error: unknown, registry: ResolvedRegistry): unknown {
  if (!(error instanceof QuayError) || (error.status !== 401 && error.status !== 403)) return error;
  return new MirrorError(
    "REPO_ACCESS_DENIED",
    `${registry.host}: the API token cannot grant robot ${registry.robot} write (${error.status} ${error.detail}): it needs the repo:admin scope and admin on the repositories; generate it with "Administer Repositories" ticked (Quay: organization ${registry.organization} > Applications > your application > Generate Token), or drop registries.${registry.name}.robot`,
    { cause: error },
  );
}

function descriptionOf(source: Reference, description?: string): string {
  return description ?? `Mirror of ${source.registry}/${source.repository}, kept by bananna-bot`;
}

/** The Quay API clients of a run's targets, and the run's rules over them. */
export class QuayRepositories {
  #config: ResolvedConfig;
  #secrets: Secrets;
  #clients = new Map<string, QuayClient>();
  #logger?: Logger;
  #ensured = new Map<string, Promise<"created" | "exists">>();

  /** Clients are made on first use, from `config.registries` and `config.operation`. */
  constructor(config: ResolvedConfig, secrets: Secrets, logger?: Logger) {
    this.#config = config;
    this.#secrets = secrets;
    this.#logger = logger;
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
        ...httpLimits(op),
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
        if (registry.robot) await this.#grantAhead(registry, entries, signal);
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

  /**
   * The run's step before a task's first copy to a repository: make sure it exists, and that the
   * target's robot may push into it (a repository made through the API belongs to the token's
   * user alone, §5.14).
   */
  async ensure(task: PlanTask, signal?: AbortSignal): Promise<"created" | "exists"> {
    const repo = task.repo;
    if (!repo) return "exists";
    return await this.#ensureAndGrant(this.#config.registries[task.target], {
      name: repo.name,
      description: descriptionOf(task.source, task.description),
      signal,
    });
  }

  /**
   * Before the plan, every repository a robot target's entries map to is made sure of and granted:
   * the plan reads them with the robot's credentials, and Quay answers a robot without a role 401
   * even for a HEAD. The first failure of the first repository is the target's one error (a token
   * without repo:admin fails here, not once per image); a later one fails its own tasks (the
   * run's ensure() gives the same outcome, once per repository).
   */
  async #grantAhead(
    registry: ResolvedRegistry,
    entries: readonly (ResolvedImage | ResolvedRepository)[],
    signal: AbortSignal,
  ): Promise<void> {
    const mine = entries.filter((e) => e.targets.includes(registry.name));
    const names = [...new Set(mine.map((e) => e.repository))];
    for (const [i, name] of names.entries()) {
      const entry = mine.find((e) => e.repository === name) as ResolvedImage | ResolvedRepository;
      const done = this.#ensureAndGrant(registry, {
        name,
        description: descriptionOf(entry.source, entry.description),
        signal,
      });
      if (i === 0) await done;
      else await done.catch(() => {});
    }
  }

  /** Once per repository of a target: the same promise for the plan-time grant and the run. */
  #ensureAndGrant(
    registry: ResolvedRegistry,
    repo: { name: string; description: string; signal?: AbortSignal },
  ): Promise<"created" | "exists"> {
    const key = `${registry.name}\n${repo.name}`;
    let pending = this.#ensured.get(key);
    if (!pending) this.#ensured.set(key, pending = this.#ensureAndGrantNow(registry, repo));
    return pending;
  }

  async #ensureAndGrantNow(
    registry: ResolvedRegistry,
    repo: { name: string; description: string; signal?: AbortSignal },
  ): Promise<"created" | "exists"> {
    const client = this.client(registry.name);
    const namespace = registry.organization;
    const outcome = await ensureRepository(client, { namespace, ...repo });
    const robot = registry.robot;
    if (!robot) return outcome;
    const granted = await client.grantRobotWrite({ namespace, name: repo.name, robot }, repo.signal)
      .catch((error) => {
        throw robotGrantError(error, registry);
      });
    if (granted === "granted") {
      this.#logger?.info(
        "REPO_ROBOT_GRANTED",
        "Quay API",
        `${registry.host}/${namespace}/${repo.name}: robot ${robot} granted write`,
      );
    }
    return outcome;
  }
}

/**
 * The mirror run's rule for a destination repository: GET it; 404 -> create; 403 -> try to create
 * (a creator who is not org admin cannot see a missing repository), where "already exists" means
 * it exists; 401 and other failures -> error.
 */
async function ensureRepository(
  client: QuayClient,
  repo: { namespace: string; name: string; description: string; signal?: AbortSignal },
): Promise<"exists" | "created"> {
  try {
    const found = await client.getRepository(repo.namespace, repo.name, repo.signal);
    if (found) return "exists";
  } catch (error) {
    if (!(error instanceof QuayError && error.status === 403)) throw error;
  }
  try {
    return await client.createRepository(repo, repo.signal);
  } catch (error) {
    if (error instanceof QuayError && error.code !== "REPO_API_ERROR") {
      throw new QuayError(
        error.status === 403 || error.status === 401 ? "REPO_ACCESS_DENIED" : "REPO_CREATE_FAILED",
        error.message,
        { status: error.status, errorType: error.errorType, detail: error.detail },
      );
    }
    throw error;
  }
}
