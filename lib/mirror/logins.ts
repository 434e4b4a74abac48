/**
 * The credentials step of a mirror run, before any image work: for every destination and every
 * source host the selected images use, find a credential (config, docker config.json, credential
 * helper), or find that anonymous access works, or ask a person at a terminal (checked at once,
 * three tries), and hand it to the docker engine, which logs docker in before its first pull or
 * push on that host. Without a terminal a missing credential is LOGIN_MISSING_CREDENTIALS naming
 * the registry and the ways to provide it.
 *
 * A host that fails stops the run, or with continueOnError only its own tasks (it lands in
 * `broken`).
 *
 * @module
 */
import type { Connection, ResolvedConfig, ResolvedImage } from "../config/schema.ts";
import type { Credential } from "../credentials/credential.ts";
import { missingCredentialsError, resolveCredential } from "../credentials/credential_chain.ts";
import type { Engine } from "../engine/engine.ts";
import { MirrorError } from "../errors.ts";
import type { Logger } from "../log/logger.ts";
import type { Secrets } from "../log/redact.ts";
import type { RegistryClient } from "../registry/registry_client.ts";
import type { Io } from "../cli/io.ts";

/** What the login step needs. */
export interface LoginOptions {
  config: ResolvedConfig;
  images: ResolvedImage[];
  io: Io;
  logger: Logger;
  secrets: Secrets;
  engine: Engine;
  /** Prompt when a person is at a terminal. */
  interactive: boolean;
  /** Log docker in (not in a dry run). */
  dockerLogin: boolean;
  connection: (host: string) => Connection;
  /** A client for a host with the run's settings. */
  newClient: (host: string, credential: Credential | null) => RegistryClient;
  /** Where messages for the person at the prompt go. */
  say: (text: string) => void;
}

/**
 * The outcome: per host, the client that verified its credential (or anonymous access), for the
 * run to use; and hosts that could not log in.
 */
export interface Logins {
  clients: Map<string, RegistryClient>;
  broken: Map<string, MirrorError>;
}

/** Log in to every host the images use. */
export async function loginAll(options: LoginOptions): Promise<Logins> {
  const { config, logger } = options;
  const hosts = new Map<string, { repository: string; destination: boolean }>();
  for (const image of options.images) {
    if (!hosts.has(image.source.registry)) {
      hosts.set(image.source.registry, { repository: image.source.repository, destination: false });
    }
    for (const target of image.targets) {
      const registry = config.registries[target];
      hosts.set(registry.host, {
        repository: `${registry.namespace}/${image.repository}`,
        destination: true,
      });
    }
  }
  const logins: Logins = { clients: new Map(), broken: new Map() };
  for (const [host, { repository, destination }] of hosts) {
    options.io.signal.throwIfAborted();
    try {
      logins.clients.set(host, await login(options, host, repository, destination));
    } catch (error) {
      if (!(error instanceof MirrorError) || options.io.signal.aborted) throw error;
      logger.error(error.code, "Login", error.message);
      if (!config.operation.continueOnError) throw error;
      logins.broken.set(host, error);
    }
  }
  return logins;
}

async function login(
  options: LoginOptions,
  host: string,
  repository: string,
  destination: boolean,
): Promise<RegistryClient> {
  const { logger, io, secrets } = options;
  const connection = options.connection(host);
  let verified: RegistryClient | undefined;
  const verify = async (credential: Credential | null): Promise<boolean> => {
    const client = options.newClient(host, credential);
    try {
      await client.checkAccess(repository, ["pull"], io.signal);
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
    env: io.env,
    secrets,
  });
  if (credential === null) {
    // Anonymous may be enough (a public source, an open registry).
    if (await verify(null)) {
      logger.debug("LOGIN_SUCCESS", "Login", `${host}: anonymous access works`);
      return verified as RegistryClient;
    }
    if (!options.interactive) throw missingCredentialsError(host);
    credential = await resolveCredential(host, {
      prompt: true,
      env: io.env,
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
      `${host} refused the credentials from ${credential.source}${
        destination ? "" : " (source registry)"
      }`,
    );
  }
  logger.info("LOGIN_SUCCESS", "Login", `${host}: credentials from ${credential.source} accepted`);
  if (options.dockerLogin && options.engine.name === "docker" && credential.kind === "basic") {
    // docker login happens right before the first pull or push that needs this host.
    const docker = options.engine as Engine & { useCredential(host: string, c: Credential): void };
    docker.useCredential(host, credential);
  }
  return verified as RegistryClient;
}
