/**
 * Where credentials come from, in order (ggcr's MultiKeychain): the config (`username` /
 * `password`), a credential helper docker's config.json names (`credHelpers`, then `credsStore`;
 * one without an entry for the host passes), that file's `auths`, then a prompt when a person is at
 * a terminal. The first hit wins; null means
 * anonymous. Every secret found is registered for masking at once.
 *
 * @module
 */
import { MirrorError } from "../errors.ts";
import type { Secrets } from "../log/redact.ts";
import type { Credential } from "../registry/credential.ts";
import { credentialFromHelper } from "./credential_helper.ts";
import { authFor, helperFor, readDockerConfig, serverKey } from "./docker_config.ts";
import { promptCredentials, type PromptOptions } from "./prompt_credentials.ts";

/** Options for {@link resolveCredential}. */
export interface ResolveCredentialOptions {
  /** Credentials written in the config for this host. */
  config?: { username?: string; password?: string };
  env: Record<string, string | undefined>;
  /** Ask a person when nothing else has credentials (needs a terminal). */
  prompt?: boolean;
  /** Checks a prompted credential at once (required with prompt). */
  verify?: (credential: Credential) => Promise<boolean>;
  say?: (text: string) => void;
  /** Told of each prompted answer the registry refused (see {@link promptCredentials}). */
  onRefused?: PromptOptions["onRefused"];
  /** The run's secrets: every credential found is registered there at once. */
  secrets: Secrets;
}

/** Find the credential for `host` (a registry name: `docker.io`, `quay.example.com`). */
export async function resolveCredential(
  host: string,
  options: ResolveCredentialOptions,
): Promise<Credential | null> {
  const secrets = options.secrets;
  const found = await lookup(host, options);
  if (found) {
    register(found, secrets);
    return found;
  }
  if (!options.prompt || !options.verify) return null;
  return await promptCredentials(host, {
    verify: options.verify,
    say: options.say,
    onRefused: options.onRefused,
    onSecret: (secret) => secrets.add(secret),
  });
}

async function lookup(host: string, options: ResolveCredentialOptions): Promise<Credential | null> {
  const { config } = options;
  if (config?.username && config.password) {
    return {
      kind: "basic",
      username: config.username,
      password: config.password,
      source: "config",
    };
  }
  const docker = await readDockerConfig(options.env);
  const helper = helperFor(docker, host);
  if (helper) {
    const fromHelper = await credentialFromHelper(helper, serverKey(host), { env: options.env });
    if (fromHelper) return fromHelper;
  }
  return authFor(docker, host);
}

function register(credential: Credential, secrets: Secrets): void {
  if (credential.kind === "basic") secrets.addBasic(credential.username, credential.password);
  else secrets.add(credential.token);
}

/** The error for a registry that needs credentials when nobody can be asked. */
export function missingCredentialsError(host: string): MirrorError {
  return new MirrorError(
    "LOGIN_MISSING_CREDENTIALS",
    `${host} needs credentials and none were found. Provide them in one of these ways: ` +
      `username and password in the config for this registry (password as \${VAR} in YAML); ` +
      `"docker login ${host}" (docker's config.json, or DOCKER_CONFIG); a docker credential helper ` +
      `(credHelpers / credsStore); or run in a terminal without --non-interactive to be asked`,
  );
}
