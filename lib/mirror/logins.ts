/**
 * The credentials step of a mirror run, before any image work: for every destination and every
 * source host the selected images use, find a credential (config, docker config.json, credential
 * helper), or find that anonymous access works, or ask a person at a terminal (checked at once,
 * three tries). The client that verified it goes to the host pool (registry_hosts.ts); the
 * credential itself is returned as data, for the run to hand to the engine with each copy (the
 * docker engine logs docker in before its first pull or push on that host). Without a terminal a
 * missing credential is LOGIN_MISSING_CREDENTIALS naming the registry and the ways to provide it.
 *
 * A host that fails stops the run, or with continueOnError only its own tasks (it lands in
 * `broken`).
 *
 * @module
 */
import type { ResolvedConfig, ResolvedImage, ResolvedRepository } from "../config/schema.ts";
import type { Credential } from "../registry/credential.ts";
import { missingCredentialsError, resolveCredential } from "../credentials/credential_chain.ts";
import { MirrorError } from "../errors.ts";
import type { Logger } from "../log/logger.ts";
import type { Secrets } from "../log/redact.ts";
import type { RegistryClient } from "../registry/registry_client.ts";
import type { RegistryHosts } from "../registry/registry_hosts.ts";

/** What the login step needs. */
export interface LoginOptions {
  config: ResolvedConfig;
  images: ResolvedImage[];
  /** Repositories selected by rules: their source hosts and targets need logins too. */
  repositories?: ResolvedRepository[];
  /** Settings per host, new clients to try credentials with, and the pool verified ones go to. */
  hosts: RegistryHosts;
  logger: Logger;
  secrets: Secrets;
  /** The environment (DOCKER_CONFIG, HOME, PATH for credential helpers). */
  env: Record<string, string | undefined>;
  /** A person is at a terminal and may be asked (hidden prompts, checked at once). */
  interactive: boolean;
  /** Where messages for the person at the prompt go. */
  say: (text: string) => void;
  signal: AbortSignal;
  /** Hosts never contacted: their images live in a store of their own (mirror_run.ts HostStores). */
  skipHosts?: ReadonlySet<string>;
  /**
   * Called once, when the first login request is under way (or when the step ends without one):
   * work that can wait on the network starts here, not before the run's first request.
   */
  onRequested?: () => void;
}

/**
 * The outcome: the credential found per host (anonymous hosts have none), and hosts that could not
 * log in. The verified clients are already in the pool.
 */
export interface Logins {
  credentials: Map<string, Credential>;
  broken: Map<string, MirrorError>;
}

/** Log in to every host the images use; verified clients go to `options.hosts`. */
export async function loginAll(options: LoginOptions): Promise<Logins> {
  const { config } = options;
  const hosts = new Map<string, { repository: string; destination: boolean }>();
  // Destination hosts that will be asked to hold a sparse index (an entry with `platforms`): only
  // these are sent the extra `GET /v2/` that reads X-Sparse-Manifest-Support.
  const sparseHosts = new Set<string>();
  for (const image of [...options.images, ...options.repositories ?? []]) {
    if (!hosts.has(image.source.registry) && !options.skipHosts?.has(image.source.registry)) {
      hosts.set(image.source.registry, { repository: image.source.repository, destination: false });
    }
    for (const target of image.targets) {
      const registry = config.registries[target];
      if (options.skipHosts?.has(registry.host)) continue;
      hosts.set(registry.host, {
        repository: `${registry.namespace}/${image.repository}`,
        destination: true,
      });
      if (image.platforms) sparseHosts.add(registry.host);
    }
  }
  const logins: Logins = { credentials: new Map(), broken: new Map() };
  let requested = false;
  const onRequested = () => {
    if (requested) return;
    requested = true;
    options.onRequested?.();
  };
  try {
    await loginEach({ ...options, onRequested }, hosts, sparseHosts, logins);
  } finally {
    onRequested();
  }
  return logins;
}

async function loginEach(
  options: LoginOptions,
  hosts: Map<string, { repository: string; destination: boolean }>,
  sparseHosts: Set<string>,
  logins: Logins,
): Promise<void> {
  const { config, logger } = options;
  for (const [host, { repository, destination }] of hosts) {
    options.signal.throwIfAborted();
    try {
      const { client, credential } = await login(options, host, repository, destination);
      if (sparseHosts.has(host)) {
        await client.probeVersionCheck(options.signal);
        const sparse = client.sparseManifestSupport;
        if (sparse !== null && sparse !== undefined) {
          logger.debug(
            "LOGIN_SUCCESS",
            "Login",
            `${host}: X-Sparse-Manifest-Support: ${sparse} (an index with missing children is ${
              sparse ? "accepted" : "refused"
            })`,
          );
        }
      }
      // Reuse the verified client: its auth scheme, tokens and connections are known good.
      options.hosts.adopt(host, client);
      if (credential) logins.credentials.set(host, credential);
    } catch (error) {
      if (!(error instanceof MirrorError) || options.signal.aborted) throw error;
      logger.error(error.code, "Login", error.message);
      if (!config.operation.continueOnError) throw error;
      logins.broken.set(host, error);
    }
  }
}

async function login(
  options: LoginOptions,
  host: string,
  repository: string,
  destination: boolean,
): Promise<{ client: RegistryClient; credential: Credential | null }> {
  const { logger, env, signal, secrets } = options;
  const connection = options.hosts.connection(host);
  let verified: RegistryClient | undefined;
  const verify = async (credential: Credential | null): Promise<boolean> => {
    const client = options.hosts.newClient(host, credential);
    try {
      const checking = client.checkAccess(repository, ["pull"], signal);
      options.onRequested?.();
      await checking;
      verified = client;
      return true;
    } catch (error) {
      client.close();
      if (error instanceof MirrorError && error.code === "LOGIN_FAILED") return false;
      throw error;
    }
  };
  let credential = await resolveCredential(host, {
    config: { username: connection.username, password: connection.password },
    env,
    secrets,
  });
  if (credential === null) {
    // Anonymous may be enough (a public source, an open registry).
    if (await verify(null)) {
      logger.debug("LOGIN_SUCCESS", "Login", `${host}: anonymous access works`);
      return { client: verified as RegistryClient, credential: null };
    }
    if (!options.interactive) throw missingCredentialsError(host);
    credential = await resolveCredential(host, {
      prompt: true,
      env,
      secrets,
      verify: (c: Credential) => verify(c),
      say: options.say,
      onRefused: ({ attempt, attempts, username }) =>
        logger.warn(
          "LOGIN_FAILED",
          "Login",
          `${host} refused the credentials typed at the prompt for user "${username}" (attempt ${attempt} of ${attempts})`,
        ),
    });
    if (credential === null) throw missingCredentialsError(host);
  } else if (!(await verify(credential))) {
    throw new MirrorError(
      "LOGIN_FAILED",
      `${host}${destination ? "" : " (source registry)"} refused ${
        credentialOrigin(options.config, host, credential, env)
      }: check the ${credential.kind === "basic" ? "password" : "token"} there`,
    );
  }
  logger.info("LOGIN_SUCCESS", "Login", `${host}: credentials from ${credential.source} accepted`);
  return { client: verified as RegistryClient, credential };
}

/**
 * Which credential a registry refused, for the message: the user and where the secret came from
 * (the config's `${VAR}` and path, docker's config.json, a credential helper, the prompt), never
 * the secret.
 */
function credentialOrigin(
  config: Pick<ResolvedConfig, "registries" | "sources">,
  host: string,
  credential: Credential,
  env: Record<string, string | undefined>,
): string {
  const user = "username" in credential && credential.username
    ? ` of user "${credential.username}"`
    : "";
  const what = credential.kind === "basic" ? `the password${user}` : `the token${user}`;
  switch (credential.source) {
    case "config": {
      const entry = [...Object.values(config.registries), ...Object.values(config.sources)]
        .find((c) => c.host === host && c.password && c.passwordFrom);
      return `${what} from ${entry?.passwordFrom ?? "the config"}`;
    }
    case "docker-config": {
      const dir = env.DOCKER_CONFIG ?? (env.HOME ? `${env.HOME}/.docker` : "~/.docker");
      const where = env.DOCKER_AUTH_CONFIG ? "DOCKER_AUTH_CONFIG" : `${dir}/config.json`;
      return `${what} from docker's config (${where}, auths)`;
    }
    case "credential-helper":
      return `${what} from a docker credential helper (credHelpers / credsStore in docker's config.json)`;
    case "prompt":
      return `${what} typed at the prompt`;
  }
}

/**
 * A plan read that failed because its host's login failed (the very error the login step logged):
 * marks `task.loginFailed` with the host and returns the task's message (not attempted); null for
 * any other failure.
 */
export function failedLogin(
  broken: ReadonlyMap<string, MirrorError>,
  error: unknown,
  task: { loginFailed?: string },
): string | null {
  const host = [...broken].find(([, e]) => e === error)?.[0];
  if (host === undefined) return null;
  task.loginFailed = host;
  return `not attempted, login to ${host} failed: ${(error as Error).message}`;
}
