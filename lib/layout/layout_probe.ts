/**
 * The plan's reads (PlanProbe) for hosts whose images live in an OCI layout: manifest HEADs and
 * tag lists answered from the layout's index.json, everything else by the registry probe. Export
 * uses it for its destination (what the layout holds already), import for the source hosts
 * (never contacted).
 *
 * @module
 */
import { MirrorError } from "../errors.ts";
import type { PlanProbe } from "../mirror/plan.ts";
import { manifestRef } from "../registry/reference.ts";
import type { LayoutStore } from "./layout_store.ts";

/** `inner`, with the hosts of `stores` read from their layout views. */
export function layoutProbe(
  inner: PlanProbe,
  stores: ReadonlyMap<string, LayoutStore | null>,
): PlanProbe {
  return {
    async manifestHead(ref, signal) {
      if (!stores.has(ref.registry)) return await inner.manifestHead(ref, signal);
      const store = stores.get(ref.registry);
      const head = await store?.manifestHead(ref.repository, manifestRef(ref)) ?? null;
      if (!head) return null;
      return { digest: head.digest, mediaType: head.mediaType, size: head.size, rateLimit: null };
    },
    async configDigest(ref, platform, signal) {
      if (!stores.has(ref.registry)) return await inner.configDigest(ref, platform, signal);
      throw new MirrorError(
        "IMAGE_UNSUPPORTED",
        `${ref.registry}: an export layout is copied by the registry engine only (config digests are not compared)`,
      );
    },
    repository(registry, name, signal) {
      return inner.repository(registry, name, signal);
    },
    async tags(repository, signal) {
      if (!stores.has(repository.registry)) return await inner.tags(repository, signal);
      return stores.get(repository.registry)?.tags(repository.repository) ?? [];
    },
  };
}
