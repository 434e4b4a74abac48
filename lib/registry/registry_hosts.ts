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
import type { Credential } from "./credential.ts";
import type { Secrets } from "../log/redact.ts";
import { Bandwidth, type BandwidthUsage } from "./bandwidth.ts";
import { type HttpLimits, httpLimits, limitsOf } from "./http_transport.ts";
import { isLoopbackHost } from "./reference.ts";
import { RegistryClient } from "./registry_client.ts";
import { ThrottledClient } from "./throttled_client.ts";

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
  /** This host's own bandwidth limit for blob streams, per direction (bandwidth.ts). */
  maxBytesPerSecond?: number;
}

/** Options for {@link RegistryHosts}. */
export interface RegistryHostsOptions extends HttpLimits {
  /** Configured hosts; when a host appears twice, the first entry wins. */
  hosts: HostSettings[];
  /** Retries for failures that may pass (0 = one attempt). */
  maxRetries: number;
  /** First delay between retries, in ms. */
  retryDelayMs: number;
  /** Longest single wait before a retry (Retry-After), in ms. */
  maxRetryWaitMs: number;
  /** Bytes a manifest or a tag-list page may have. */
  maxManifestBytes: number;
  /**
   * The process's bandwidth limit for blob streams, per direction, shared by every host's
   * client (bandwidth.ts). @default no limit
   */
  maxBytesPerSecond?: number;
  /** Where secrets are registered and masked. */
  secrets: Secrets;
  /** Told before each wait for a retry, on any host's client. */
  onRetry?: (error: unknown, retry: number, delayMs: number) => void;
  /** Hosts only written to in this run (no image is read there): failures get destination codes. */
  destinations?: ReadonlySet<string>;
}

/** The run-wide settings {@link RegistryHosts} takes, as `operation` writes them (seconds). */
export interface OperationLimits {
  apiTimeout: number;
  requestDeadline: number;
  minBlobRate: number;
  blobRateGrace: number;
  maxRetries: number;
  retryDelay: number;
  maxRetryWait: number;
  maxManifestBytes: number;
  maxBytesPerSecond?: number;
}

/** {@link RegistryHostsOptions} from the config's `operation` (seconds to ms). */
export function hostLimits(op: OperationLimits): Pick<
  RegistryHostsOptions,
  | keyof HttpLimits
  | "maxRetries"
  | "retryDelayMs"
  | "maxRetryWaitMs"
  | "maxManifestBytes"
  | "maxBytesPerSecond"
> {
  return {
    ...httpLimits(op),
    maxRetries: op.maxRetries,
    retryDelayMs: op.retryDelay * 1000,
    maxRetryWaitMs: op.maxRetryWait * 1000,
    maxManifestBytes: op.maxManifestBytes,
    maxBytesPerSecond: op.maxBytesPerSecond,
  };
}

/** Host settings and the client pool of one run. */
export class RegistryHosts {
  #options: RegistryHostsOptions;
  #settings = new Map<string, HostSettings>();
  #clients = new Map<string, RegistryClient>();
  #bandwidth: Bandwidth;

  /** Index the configured hosts; no client is made yet. */
  constructor(options: RegistryHostsOptions) {
    this.#options = options;
    const hostLimits: Record<string, number> = {};
    for (const settings of options.hosts) {
      if (!this.#settings.has(settings.host)) this.#settings.set(settings.host, settings);
      const limit = settings.maxBytesPerSecond;
      // Two entries on one host: the lower limit holds.
      if (limit) hostLimits[settings.host] = Math.min(limit, hostLimits[settings.host] ?? limit);
    }
    this.#bandwidth = new Bandwidth(options.maxBytesPerSecond, hostLimits);
  }

  /** What the bandwidth limits let through and held back; null when nothing is limited. */
  bandwidthUsage(): BandwidthUsage | null {
    return this.#bandwidth.usage();
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
    const options = {
      host,
      scheme: connection.scheme,
      caFile: connection.caFile,
      credential,
      ...limitsOf(o),
      maxRetries: o.maxRetries,
      retryDelayMs: o.retryDelayMs,
      maxManifestBytes: o.maxManifestBytes,
      maxRetryWaitMs: o.maxRetryWaitMs,
      secrets: o.secrets,
      onRetry: o.onRetry,
      destination: o.destinations?.has(host),
    };
    if (!this.#bandwidth.limited) return new RegistryClient(options);
    return new ThrottledClient(options, {
      download: this.#bandwidth.throttle(host, "download"),
      upload: this.#bandwidth.throttle(host, "upload"),
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
