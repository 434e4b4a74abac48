/**
 * Every registry host a run talks to, in one place: its settings (scheme, CA bundle, credentials
 * as configured) and the one {@link RegistryClient} per host the run uses, built once from plain
 * settings (like regclient's `config.Host`). "Which TLS, timeout and retry settings does this
 * host get?" is answered here: the host's own entry, or for a host nobody configured, `https`
 * (plain `http` on the loopback) with the run-wide timeout, retries and manifest cap.
 *
 * The login step verifies a credential with a client from {@link RegistryHosts.newClient} and
 * hands it over with {@link RegistryHosts.adopt}: its auth scheme, tokens and connections are
 * known good, so the plan and the engines reuse it through {@link RegistryHosts.client}.
 *
 * @module
 */
import type { Credential } from "../credentials/credential.ts";
import type { Secrets } from "../log/redact.ts";
import { isLoopbackHost } from "./reference.ts";
import { RegistryClient } from "./registry_client.ts";

/** How to reach one registry host, as configured. */
export interface HostSettings {
  /** `host[:port]` as used in references (`docker.io`, `127.0.0.1:5000`). */
  host: string;
  scheme: "http" | "https";
  /** Absolute path of a PEM CA bundle. */
  caFile?: string;
  /** Configured credentials (the credential chain reads them; the pool never sends them itself). */
  username?: string;
  password?: string;
}

/** Options for {@link RegistryHosts}. */
export interface RegistryHostsOptions {
  /** Configured hosts; when a host appears twice, the first entry wins. */
  hosts: HostSettings[];
  /** Time until response headers, per request, in ms. */
  timeoutMs: number;
  /** Retries for failures that may pass (0 = one attempt). */
  maxRetries: number;
  /** First delay between retries, in ms. */
  retryDelayMs: number;
  /** Longest single wait before a retry (Retry-After), in ms. */
  maxRetryWaitMs: number;
  /** Bytes a manifest or a tag-list page may have. */
  maxManifestBytes: number;
  /** Where secrets are registered and masked. */
  secrets: Secrets;
  /** Told before each wait for a retry, on any host's client. */
  onRetry?: (error: unknown, retry: number, delayMs: number) => void;
}

/** Host settings and the client pool of one run. */
export class RegistryHosts {
  #options: RegistryHostsOptions;
  #settings = new Map<string, HostSettings>();
  #clients = new Map<string, RegistryClient>();

  /** Index the configured hosts; no client is made yet. */
  constructor(options: RegistryHostsOptions) {
    this.#options = options;
    for (const settings of options.hosts) {
      if (!this.#settings.has(settings.host)) this.#settings.set(settings.host, settings);
    }
  }

  /**
   * The settings of `host`: its configured entry, or defaults (`https`, `http` on the loopback).
   *
   * @param host `host[:port]` as in references.
   */
  connection(host: string): HostSettings {
    return this.#settings.get(host) ?? { host, scheme: isLoopbackHost(host) ? "http" : "https" };
  }

  /**
   * A new client for `host` with this run's settings, not pooled: the login step tries
   * credentials with it and hands the one that works to {@link adopt}.
   *
   * @param credential What to authenticate with; null for anonymous.
   */
  newClient(host: string, credential: Credential | null): RegistryClient {
    const connection = this.connection(host);
    const o = this.#options;
    return new RegistryClient({
      host,
      scheme: connection.scheme,
      caFile: connection.caFile,
      credential,
      timeoutMs: o.timeoutMs,
      maxRetries: o.maxRetries,
      retryDelayMs: o.retryDelayMs,
      maxManifestBytes: o.maxManifestBytes,
      maxRetryWaitMs: o.maxRetryWaitMs,
      secrets: o.secrets,
      onRetry: o.onRetry,
    });
  }

  /** Make `client` the pool's client for `host` (closing the one it replaces, if any). */
  adopt(host: string, client: RegistryClient): void {
    const previous = this.#clients.get(host);
    if (previous && previous !== client) previous.close();
    this.#clients.set(host, client);
  }

  /**
   * The one client for `host`: the one the login step verified, or an anonymous one made on
   * first use (a host the login step did not see).
   */
  client(host: string): RegistryClient {
    let client = this.#clients.get(host);
    if (!client) {
      client = this.newClient(host, null);
      this.#clients.set(host, client);
    }
    return client;
  }

  /** Close every pooled client (their HTTP connections); the pool is empty afterwards. */
  closeAll(): void {
    for (const client of this.#clients.values()) client.close();
    this.#clients.clear();
  }
}
