/**
 * The plan's reads on real registries: manifest HEADs, config digests and tag lists through the
 * host pool
 * (registry_hosts.ts), and Quay repository GETs. Reads only; a failed login or a refused Quay
 * token is not handled here but given to the plan as an input (plan.ts).
 *
 * Quay's 403 on a repository GET is "unknown", not an error: Quay answers 403 both for "no
 * permission" and for "no such repository, and you are not an org admin", so the run tries to
 * create it and lets that answer decide. A target without an API token is "unknown" too.
 *
 * A manifest HEAD's `ratelimit-limit` / `ratelimit-remaining` headers are read on every host that
 * sends them, not only on Docker Hub: the headers are the signal (a mirror or proxy in front of
 * Docker Hub may pass them on, and the tests add them with a loopback proxy).
 *
 * @module
 */
import type { ResolvedRegistry } from "../config/schema.ts";
import type { QuayClient } from "../quay_client.ts";
import { manifestRef, type Reference } from "../registry/reference.ts";
import { imageConfigDigest } from "../registry/image_config.ts";
import type { RegistryHosts } from "../registry/registry_hosts.ts";
import type { PlanProbe, ProbedManifest, RepoState } from "./plan.ts";
import { parseRateLimit } from "./pull_budget.ts";

/** Options for {@link RegistryProbe}. */
export interface RegistryProbeOptions {
  /** The run's host pool: every registry read goes through its client for the host. */
  hosts: RegistryHosts;
  /** The Quay API client of a target (by its name in the config). */
  quay: (target: string) => QuayClient;
}

/** {@link PlanProbe} on the registry and Quay clients of a run. */
export class RegistryProbe implements PlanProbe {
  #options: RegistryProbeOptions;

  /** Reads through `options.hosts` and `options.quay`. */
  constructor(options: RegistryProbeOptions) {
    this.#options = options;
  }

  /** The manifest HEAD of `ref` with the rate limit it carried, or null when absent. */
  async manifestHead(ref: Reference, signal?: AbortSignal): Promise<ProbedManifest | null> {
    const client = this.#options.hosts.client(ref.registry);
    const head = await client.manifestHead(ref.repository, manifestRef(ref), signal);
    if (!head) return null;
    const { digest, mediaType, size } = head;
    return { digest, mediaType, size, rateLimit: parseRateLimit(head.headers) };
  }

  /** The config digest (image ID) of `ref` for `platform`, or null when absent. */
  configDigest(
    ref: Reference,
    platform: string | undefined,
    signal?: AbortSignal,
  ): Promise<string | null> {
    const client = this.#options.hosts.client(ref.registry);
    return imageConfigDigest(client, ref.repository, manifestRef(ref), { platform, signal });
  }

  /** Every tag of a source repository (all pages, bounded); [] when it is absent (404). */
  async tags(
    repository: Omit<Reference, "tag" | "digest">,
    signal?: AbortSignal,
  ): Promise<string[]> {
    const client = this.#options.hosts.client(repository.registry);
    return await client.tagList(repository.repository, signal);
  }

  /**
   * Does the Quay repository `name` exist in the target's organization? "unknown" without an API
   * token and on a 403.
   *
   * @throws {MirrorError} any other Quay failure (the task fails with it).
   */
  async repository(
    registry: ResolvedRegistry,
    name: string,
    signal?: AbortSignal,
  ): Promise<RepoState> {
    if (!registry.apiToken) return "unknown";
    try {
      const repo = await this.#options.quay(registry.name).getRepository(
        registry.organization,
        name,
        signal,
      );
      return repo ? "exists" : "missing";
    } catch (error) {
      if ((error as { status?: number }).status === 403) return "unknown";
      throw error;
    }
  }
}
