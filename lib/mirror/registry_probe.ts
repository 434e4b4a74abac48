/**
 * The plan's reads: manifest HEADs, config digests and tag lists from the store of each host (a
 * registry client of the host pool, registry_hosts.ts, or an OCI layout standing for a host), and
 * Quay repository GETs (quay_repositories.ts, with Quay's 403 rule). Reads only; a failed login or
 * a refused Quay token is not handled here but given to the plan as an input (plan.ts).
 *
 * A manifest HEAD's `ratelimit-limit` / `ratelimit-remaining` headers are read on every host that
 * sends them, not only on Docker Hub: the headers are the signal (a mirror or proxy in front of
 * Docker Hub may pass them on, and the tests add them with a loopback proxy).
 *
 * @module
 */
import type { ResolvedRegistry } from "../config/schema.ts";
import type { NamespaceQuota } from "../registry/quay_client.ts";
import { manifestRef, type Reference } from "../registry/reference.ts";
import { imageConfigDigest } from "../registry/image_config.ts";
import type { ArtifactStore } from "../registry/image_store.ts";
import type { ManifestBytes } from "../registry/image_store.ts";
import type { PlanProbe, ProbedManifest, RepoState } from "./plan.ts";
import { parseRateLimit } from "./pull_budget.ts";
import type { QuayRepositories } from "./quay_repositories.ts";

/** Options for {@link RegistryProbe}. */
export interface RegistryProbeOptions {
  /**
   * The store of a host: every read goes through it (the host pool's client, or a layout). Null:
   * an empty store (an export directory not written yet).
   */
  storeFor: (host: string) => ArtifactStore | null;
  /** The Quay side of the run: its repository reads. */
  quay: QuayRepositories;
}

/** {@link PlanProbe} on the stores and Quay clients of a run. */
export class RegistryProbe implements PlanProbe {
  #options: RegistryProbeOptions;

  /** Reads through `options.hosts` and `options.quay`. */
  constructor(options: RegistryProbeOptions) {
    this.#options = options;
  }

  /** Tell each host's store which of its repositories the plan will read. */
  expect(refs: Iterable<Reference>): void {
    const byHost = new Map<string, Set<string>>();
    for (const ref of refs) {
      let names = byHost.get(ref.registry);
      if (!names) byHost.set(ref.registry, names = new Set());
      names.add(ref.repository);
    }
    for (const [host, names] of byHost) this.#options.storeFor(host)?.expectReads?.(names);
  }

  /** The manifest HEAD of `ref` with the rate limit it carried, or null when absent. */
  async manifestHead(ref: Reference, signal?: AbortSignal): Promise<ProbedManifest | null> {
    const store = this.#options.storeFor(ref.registry);
    const head = await store?.manifestHead(ref.repository, manifestRef(ref), signal);
    if (!head) return null;
    const { digest, mediaType, size } = head;
    return { digest, mediaType, size, rateLimit: parseRateLimit(head.headers) };
  }

  /** The exact bytes of `ref`'s manifest, or null when absent. */
  async manifest(ref: Reference, signal?: AbortSignal): Promise<ManifestBytes | null> {
    const store = this.#options.storeFor(ref.registry);
    return await store?.manifestGet(ref.repository, manifestRef(ref), signal) ?? null;
  }

  /** The config digest (image ID) of `ref` for `platform`, or null when absent. */
  configDigest(
    ref: Reference,
    platform: string | undefined,
    signal?: AbortSignal,
  ): Promise<string | null> {
    const store = this.#options.storeFor(ref.registry);
    if (!store) return Promise.resolve(null);
    return imageConfigDigest(store, ref.repository, manifestRef(ref), { platform, signal });
  }

  /** Every tag of a source repository (all pages, bounded); IMAGE_NOT_FOUND when it is absent. */
  async tags(
    repository: Omit<Reference, "tag" | "digest">,
    signal?: AbortSignal,
  ): Promise<string[]> {
    const store = this.#options.storeFor(repository.registry);
    return await store?.tagList(repository.repository, signal, { absent: "error" }) ?? [];
  }

  /** The quota of a Quay target's organization (needs its API token), or null. */
  async quota(registry: ResolvedRegistry, signal?: AbortSignal): Promise<NamespaceQuota | null> {
    if (registry.kind !== "quay" || !registry.apiToken) return null;
    return await this.#options.quay.client(registry.name).getOrganizationQuota(
      registry.organization,
      signal,
    );
  }

  /** Quay's answer (quay_repositories.ts: "unknown" without an API token and on a 403). */
  repository(
    registry: ResolvedRegistry,
    name: string,
    signal?: AbortSignal,
  ): Promise<RepoState> {
    return this.#options.quay.state(registry, name, signal);
  }
}
