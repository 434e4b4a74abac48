/**
 * docker's config.json (shared/registry-protocols.md §6.1): `auths` entries (base64 `auth`,
 * username/password, identitytoken, registrytoken), `credsStore` and `credHelpers`. Found at
 * `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`; `DOCKER_AUTH_CONFIG` (a JSON string)
 * comes first when set.
 *
 * @module
 */
import type { Credential } from "../registry/credential.ts";
import { DOCKER_HUB_INDEX, isDockerHub } from "../registry/reference.ts";
import { readFileCapped } from "../safe_file.ts";

/** The parts of config.json we use. */
export interface DockerConfig {
  auths: Record<string, {
    auth?: string;
    username?: string;
    password?: string;
    identitytoken?: string;
    registrytoken?: string;
  }>;
  credsStore?: string;
  credHelpers: Record<string, string>;
  /** Where it was read from (for messages). */
  path?: string;
}

/** Docker Hub's key in config.json and credential helpers. */
const DOCKER_HUB_KEY = `https://${DOCKER_HUB_INDEX}/v1/`;

/** A Docker Hub name (reference.ts knows them) or Docker Hub's config.json key. */
function isHubKey(key: string): boolean {
  return key === DOCKER_HUB_KEY || isDockerHub(key);
}

/** Read docker's config (missing file = empty config; unreadable JSON = empty, with the reason). */
export async function readDockerConfig(
  env: Record<string, string | undefined>,
): Promise<DockerConfig> {
  const empty: DockerConfig = { auths: {}, credHelpers: {} };
  const inline = env.DOCKER_AUTH_CONFIG;
  if (inline) {
    try {
      return normalise(JSON.parse(inline), "DOCKER_AUTH_CONFIG");
    } catch {
      // fall through to the file
    }
  }
  const dir = env.DOCKER_CONFIG ?? (env.HOME ? `${env.HOME}/.docker` : undefined);
  if (!dir) return empty;
  const path = `${dir}/config.json`;
  try {
    const bytes = await readFileCapped(path, {
      what: "docker's config.json",
      maxBytes: 1024 * 1024,
    });
    return normalise(JSON.parse(new TextDecoder().decode(bytes)), path);
  } catch {
    return empty;
  }
}

function normalise(raw: Record<string, unknown>, path: string): DockerConfig {
  return {
    auths: (raw.auths as DockerConfig["auths"]) ?? {},
    credsStore: typeof raw.credsStore === "string" && raw.credsStore ? raw.credsStore : undefined,
    credHelpers: (raw.credHelpers as Record<string, string>) ?? {},
    path,
  };
}

/** `https://quay.io/v1/` -> `quay.io`; `quay.io:443` stays. */
function hostnameOf(key: string): string {
  return key.replace(/^[a-z]+:\/\//i, "").replace(/\/.*$/, "");
}

/** The config.json key a registry host is stored under (Docker Hub's legacy URL for docker.io). */
export function serverKey(host: string): string {
  return isHubKey(host) ? DOCKER_HUB_KEY : host;
}

/** Which helper serves `host`, if any (credHelpers first, then credsStore). */
export function helperFor(config: DockerConfig, host: string): string | undefined {
  for (const [key, helper] of Object.entries(config.credHelpers)) {
    if (
      key === host || hostnameOf(key) === host ||
      (isHubKey(host) && isHubKey(hostnameOf(key)))
    ) {
      return helper;
    }
  }
  return config.credsStore;
}

/** The credential in `auths` for `host`, or null. */
export function authFor(config: DockerConfig, host: string): Credential | null {
  const entries = Object.entries(config.auths);
  const match = entries.find(([key]) => key === host) ??
    entries.find(([key]) => hostnameOf(key) === host) ??
    (isHubKey(host)
      ? entries.find(([key]) => isHubKey(key) || isHubKey(hostnameOf(key)))
      : undefined);
  if (!match) return null;
  const entry = match[1] ?? {};
  if (entry.registrytoken) {
    return { kind: "registry-token", token: entry.registrytoken, source: "docker-config" };
  }
  let username = entry.username;
  let password = entry.password;
  if (entry.auth) {
    try {
      // base64 of `user:password` as UTF-8 (docker writes it so): a password outside Latin-1
      // decodes whole; bytes that are not UTF-8 make the entry's auth ignored.
      const decoded = new TextDecoder("utf-8", { fatal: true }).decode(
        Uint8Array.from(atob(entry.auth), (c) => c.charCodeAt(0)),
      );
      const sep = decoded.indexOf(":");
      if (sep > 0) {
        username = decoded.slice(0, sep);
        password = decoded.slice(sep + 1).replace(/\0+$/, "");
      }
    } catch {
      // not base64 or not UTF-8: ignore the entry's auth
    }
  }
  if (entry.identitytoken) {
    return {
      kind: "identity-token",
      token: entry.identitytoken,
      username,
      source: "docker-config",
    };
  }
  if (username && password) return { kind: "basic", username, password, source: "docker-config" };
  return null;
}
