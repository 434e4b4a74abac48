/**
 * The plan's decision for an index mirrored for some platforms (plan.ts only), when the
 * destination tag holds something. Reads the destination only (no source pull):
 *
 * - The tag holds the source's own index digest: an exists check by that digest alone would call
 *   a sparse copy complete even when it lacks a platform now wanted. So the index is read at the
 *   destination and each kept child HEADed there: all present is `exists` (its platform set in the
 *   report); some missing is a `push` that copies them and leaves the tag as it is (widening).
 * - `rewrite`: a rewritten index names the source digest and the wanted platforms it was made for
 *   (lib/registry/platforms.ts). The same source digest and a list holding every platform wanted
 *   now is the index the run would write (narrowing deletes nothing): `exists`. The same source
 *   with a platform more is drift (a new index would be a new digest; the tag is never
 *   overwritten), unless the tag is mutable.
 *
 * A probe without `manifest` leaves the decision to the engine (a `push` that
 * finds the tag in place writes nothing).
 *
 * @module
 */
import type { Comparison, PlatformOutcome, PlatformRequest } from "../engine/engine.ts";
import type { Code } from "../log/codes.ts";
import type { ManifestBytes } from "../registry/image_store.ts";
import { MEDIA_TYPES, parseManifest } from "../registry/manifest.ts";
import { pickPlatforms, platformOf, rewrittenFrom } from "../registry/platforms.ts";
import { formatReference, type Reference } from "../registry/reference.ts";

/** The plan's reads this step uses (plan.ts PlanProbe has them). */
export interface PlatformProbe {
  manifestHead(ref: Reference, signal?: AbortSignal): Promise<{ digest: string } | null>;
  manifest?(ref: Reference, signal?: AbortSignal): Promise<ManifestBytes | null>;
}

/** The fields of a plan task (plan.ts PlanTask) this step reads and sets. */
export interface PlatformTask {
  destination: Reference;
  sourceDigest?: string;
  platforms?: PlatformRequest;
  mutable?: boolean;
  action: "push" | "exists" | "drift" | "failed" | "deferred";
  comparedBy: Comparison;
  platformOutcome?: PlatformOutcome;
  code?: Code;
  message?: string;
}

/**
 * Decide a task with `platforms` whose source is an index and whose destination tag holds
 * `destinationDigest` (sets its action, code, message, platform outcome).
 *
 * @returns `exists` / `push` / `drift` when decided here; null: decide as for any image
 */
export async function planPlatforms(
  task: PlatformTask,
  probe: PlatformProbe,
  destinationDigest: string,
  signal?: AbortSignal,
): Promise<"exists" | "push" | "drift" | null> {
  const digests = { source: task.sourceDigest as string, destination: destinationDigest };
  const decided = await decidePlatforms(task, probe, digests, signal);
  switch (decided.action) {
    case "exists":
      task.action = "exists";
      task.comparedBy = "manifest";
      task.platformOutcome = decided.outcome;
      return "exists";
    case "complete":
      task.action = "push";
      task.code = "IMAGE_PLATFORMS_ADDED";
      task.message = decided.message;
      return "push";
    case "drift":
      // A mutable tag follows upstream: replaced as any moved tag is (plan.ts).
      if (task.mutable) return null;
      task.action = "drift";
      task.code = "IMAGE_TAG_DRIFT";
      task.message = decided.message;
      return "drift";
    default:
      return null;
  }
}

/** What the plan does with the task. */
export type PlatformDecision =
  | { action: "exists"; outcome: PlatformOutcome }
  | { action: "complete"; message: string }
  | { action: "drift"; message: string }
  | { action: "default" };

/** Is `mediaType` an index's? */
export function isIndexType(mediaType: string): boolean {
  return mediaType === MEDIA_TYPES.ociIndex || mediaType === MEDIA_TYPES.dockerList;
}

/**
 * Decide a task with `platforms` whose destination tag holds `destinationDigest`.
 *
 * @returns `default`: decide as for any image (digests equal: exists; else drift or mutable)
 */
export async function decidePlatforms(
  task: PlatformTask,
  probe: PlatformProbe,
  digests: { source: string; destination: string },
  signal?: AbortSignal,
): Promise<PlatformDecision> {
  const request = task.platforms;
  if (!request || !probe.manifest) return { action: "default" };
  const sameIndex = digests.source === digests.destination;
  if (!sameIndex && request.mode !== "rewrite") return { action: "default" };
  const held = await probe.manifest(task.destination, signal);
  if (!held || held.digest !== digests.destination) return { action: "default" };
  const where = formatReference(task.destination);
  const parsed = parseManifest(held.bytes, held.mediaType, where);
  if (parsed.kind !== "index") return { action: "default" };
  if (!sameIndex) {
    const made = rewrittenFrom(held.bytes);
    if (!made || made.source !== digests.source) return { action: "default" };
    const more = request.wanted.filter((p) => !made.platforms.includes(p));
    if (more.length > 0) {
      return {
        action: "drift",
        message: `${where} holds ${digests.destination}, the rewrite of ${digests.source} for ${
          made.platforms.join(", ")
        }; adding ${
          more.join(", ")
        } needs a new index (a new digest) and a tag is never overwritten: left untouched (mirror to a new tag, or remove the tag and run again)`,
      };
    }
    const images = parsed.manifests.map(platformOf).filter((p) => p !== null);
    return {
      action: "exists",
      outcome: {
        mode: "rewrite",
        kept: images,
        skipped: [],
        children: parsed.manifests.map((m) => m.digest),
        sourceDigest: digests.source,
      },
    };
  }
  const pick = pickPlatforms(parsed.manifests, request.wanted);
  const missing: string[] = [];
  for (const child of pick.kept) {
    const found = await probe.manifestHead(
      {
        registry: task.destination.registry,
        repository: task.destination.repository,
        digest: child.digest,
      },
      signal,
    );
    if (!found) missing.push(platformOf(child) ?? child.digest);
  }
  if (missing.length > 0) {
    return {
      action: "complete",
      message: `${where} holds ${digests.destination} without ${
        missing.join(", ")
      }: the missing platforms are copied, the tag is unchanged`,
    };
  }
  return {
    action: "exists",
    outcome: {
      mode: request.mode,
      kept: pick.keptPlatforms,
      skipped: pick.skippedPlatforms,
      children: pick.kept.map((m) => m.digest),
      sourceDigest: digests.source,
    },
  };
}
