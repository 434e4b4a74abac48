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
 * What this learns goes into the supply-chain memo when the run has one (registry to registry):
 * the children of an index digest with their platforms (immutable), each child a HEAD found (kept
 * 24 h, the memo's tag rule) and a rewrite found for a source and platform list (24 h). A later run
 * then decides from the memo with no read but the tag's HEAD.
 *
 * A probe without `manifest` leaves the decision to the engine (a `push` that
 * finds the tag in place writes nothing).
 *
 * @module
 */
import type {
  Comparison,
  MemoPart,
  PlatformOutcome,
  PlatformRequest,
  SupplyChainMemo,
} from "../engine/engine.ts";
import type { Code } from "../log/codes.ts";
import type { ManifestBytes } from "../registry/image_store.ts";
import { type Descriptor, MEDIA_TYPES, parseManifest } from "../registry/manifest.ts";
import { pickPlatforms, platformOf, rewrittenFrom } from "../registry/platforms.ts";
import { formatReference, type Reference, validDigest } from "../registry/reference.ts";

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
  options: { signal?: AbortSignal; memo?: SupplyChainMemo } = {},
): Promise<"exists" | "push" | "drift" | null> {
  const digests = { source: task.sourceDigest as string, destination: destinationDigest };
  const decided = await decidePlatforms(task, probe, digests, options);
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
async function decidePlatforms(
  task: PlatformTask,
  probe: PlatformProbe,
  digests: { source: string; destination: string },
  options: { signal?: AbortSignal; memo?: SupplyChainMemo } = {},
): Promise<PlatformDecision> {
  const { signal, memo } = options;
  const request = task.platforms;
  if (!request || !probe.manifest) return { action: "default" };
  const sameIndex = digests.source === digests.destination;
  if (!sameIndex && request.mode !== "rewrite") return { action: "default" };
  const where = formatReference(task.destination);
  const { registry, repository } = task.destination;
  const repo = `${registry}/${repository}`;
  // The children of an index digest never change: known from an earlier run, not read again.
  let children = fromMemo(memo?.parts(digests.destination));
  // A rewrite found < 24 h ago for this source and these platforms (the memo's tag rule).
  const made = `${task.destination.tag ?? ""}#rewrite:${digests.source}:${
    [...request.wanted].sort().join(",")
  }`;
  if (!sameIndex && children && memo?.inStep(repo, made, digests.destination)) {
    return { action: "exists", outcome: rewriteOutcome(children, digests.source) };
  }
  if (!children || !sameIndex) {
    const held = await probe.manifest(task.destination, signal);
    if (!held || held.digest !== digests.destination) return { action: "default" };
    const parsed = parseManifest(held.bytes, held.mediaType, where);
    if (parsed.kind !== "index") return { action: "default" };
    children = parsed.manifests;
    memo?.recordParts(digests.destination, children.map(toMemo));
    if (!sameIndex) {
      const decided = rewriteDecision(request, digests, held.bytes, children, where);
      if (decided.action === "exists") memo?.recordInStep(repo, made, digests.destination);
      return decided;
    }
  }
  const pick = pickPlatforms(children, request.wanted);
  const missing: string[] = [];
  for (const child of pick.kept) {
    // A child a destination HEAD found less than 24 h ago is taken as there (the memo's rule).
    if (memo?.inStep(repo, child.digest, child.digest)) continue;
    const found = await probe.manifestHead({ registry, repository, digest: child.digest }, signal);
    if (found) memo?.recordInStep(repo, child.digest, child.digest);
    else missing.push(platformOf(child) ?? child.digest);
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

/** The tag holds a rewritten index: the one the run would write, a narrower one, or another. */
function rewriteDecision(
  request: PlatformRequest,
  digests: { source: string; destination: string },
  bytes: Uint8Array,
  children: Descriptor[],
  where: string,
): PlatformDecision {
  const made = rewrittenFrom(bytes);
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
  return { action: "exists", outcome: rewriteOutcome(children, digests.source) };
}

/** What a rewritten index holds: its children are the kept ones. */
function rewriteOutcome(children: Descriptor[], sourceDigest: string): PlatformOutcome {
  return {
    mode: "rewrite",
    kept: children.map(platformOf).filter((p) => p !== null),
    skipped: [],
    children: children.map((m) => m.digest),
    sourceDigest,
  };
}

/** Buildx's annotation naming the image an attestation manifest belongs to. */
const REFERENCE_DIGEST = "vnd.docker.reference.digest";

/** An index child as the memo keeps it: digest, platform, the image an attestation describes. */
function toMemo(child: Descriptor): MemoPart {
  const part: MemoPart = { digest: child.digest };
  const platform = platformOf(child);
  if (platform) part.platformName = platform;
  const reference = (child as { annotations?: Record<string, unknown> }).annotations
    ?.[REFERENCE_DIGEST];
  if (typeof reference === "string" && validDigest(reference)) part.describes = reference;
  return part;
}

/** The children the memo knows with their platforms, or undefined (none recorded by a plan). */
function fromMemo(parts: readonly MemoPart[] | undefined): Descriptor[] | undefined {
  if (!parts?.some((p) => p.platformName)) return undefined;
  return parts.map((p) => {
    const [os, architecture, variant] = (p.platformName ?? "unknown/unknown").split("/");
    const child = {
      mediaType: "",
      digest: p.digest,
      size: 0,
      platform: { os, architecture, ...(variant ? { variant } : {}) },
      ...(p.describes ? { annotations: { [REFERENCE_DIGEST]: p.describes } } : {}),
    };
    return child as Descriptor;
  });
}
