/**
 * The registry engine's copy of an index for some platforms (`CopyRequest.platforms`). The kept
 * children (lib/registry/platforms.ts decides which) are copied with their blobs, then:
 *
 * - `sparse`: the index's own bytes are PUT, so the digest is the source's, and mirror sets,
 *   signatures and `@sha256` pins keep working. Only a destination that accepts an index whose
 *   children are not all there takes it (Quay with FEATURE_SPARSE_INDEX, zot, distribution 3
 *   relaxed). Probe, never guess: a registry that says `X-Sparse-Manifest-Support: false` on
 *   `GET /v2/` fails the copy before anything is copied; one that says nothing is tried, and a PUT
 *   refused for missing children (distribution 2.8: MANIFEST_BLOB_UNKNOWN) is
 *   IMAGE_SPARSE_REFUSED. The tag is written only by that PUT, so a refusal leaves nothing tagged;
 *   the host is then refused at once for the rest of the run.
 * - `rewrite`: a new index of the kept children (a new digest) is PUT; the never-overwrite check
 *   compares the tag against that digest, so a re-run finds it and writes nothing.
 *
 * When the tag already holds the index (sparse), the kept children missing at the destination are
 * copied and the tag is left as it is: widening `platforms` completes an earlier copy.
 * When nothing is left out, the index is copied whole (its digest kept in either mode).
 *
 * @module
 */
import { MirrorError } from "../errors.ts";
import type { ParsedManifest } from "../registry/manifest.ts";
import { sha256Digest } from "../registry/manifest.ts";
import type { ImageStore } from "../registry/image_store.ts";
import { pickPlatforms, platformOf, rewriteIndex } from "../registry/platforms.ts";
import { formatReference, manifestRef, type Reference } from "../registry/reference.ts";
import type { ManifestBytes } from "../registry/image_store.ts";
import { isBlobUnknown, type ManifestCopier } from "./_manifest_copier.ts";
import type { CopyResult, EngineEvent, PlatformOutcome, PlatformRequest } from "./engine.ts";

/** What a {@link PlatformCopy} works with (the copy job's parts). */
export interface PlatformCopyOptions {
  /** The source reference as text (messages). */
  src: string;
  dst: ImageStore;
  destination: Reference;
  copier: ManifestCopier;
  request: PlatformRequest;
  /** Destination hosts that refused a sparse index this run. */
  sparseRefused: Set<string>;
  /** The caller found the tag absent in this run: no check before copying (the late one stays). */
  destinationAbsent?: boolean;
  /** The never-overwrite check: null when the tag is free, `exists` when it holds `digest`. */
  checkDestination: (digest: string) => Promise<CopyResult | null>;
  emit: (event: EngineEvent) => void;
  signal?: AbortSignal;
}

type Index = Extract<ParsedManifest, { kind: "index" }>;

/** One index copied for some platforms. */
export class PlatformCopy {
  #o: PlatformCopyOptions;

  /** A copy for the options' platforms. */
  constructor(options: PlatformCopyOptions) {
    this.#o = options;
  }

  /** Copy `top` (an index) for the wanted platforms; see the module doc. */
  async run(top: ManifestBytes, parsed: Index): Promise<CopyResult> {
    const { src, request } = this.#o;
    const pick = pickPlatforms(parsed.manifests, request.wanted);
    const all = parsed.manifests.map(platformOf).filter((p) => p !== null);
    if (pick.keptPlatforms.length === 0) {
      throw new MirrorError(
        "IMAGE_PLATFORM_ABSENT",
        `${src} holds ${all.join(", ") || "no named platform"}; none of ${
          request.wanted.join(", ")
        } (platforms)`,
      );
    }
    if (pick.absent.length > 0) {
      this.#o.emit({
        kind: "step",
        code: "IMAGE_PLATFORM_ABSENT",
        level: "WARNING",
        message: `${src} holds no ${pick.absent.join(", ")}; copying ${
          pick.keptPlatforms.join(", ")
        }`,
      });
    }
    const outcome: PlatformOutcome = {
      mode: request.mode,
      kept: pick.keptPlatforms,
      skipped: pick.skippedPlatforms,
      children: pick.kept.map((child) => child.digest),
      sourceDigest: top.digest,
    };
    const whole = pick.kept.length === parsed.manifests.length;
    if (whole || request.mode === "sparse") {
      return await this.#sparse(top, parsed, pick.kept, outcome, !whole);
    }
    const bytes = rewriteIndex(top.bytes, pick.kept, top.digest, request.wanted);
    const rewritten = { mediaType: top.mediaType, digest: await sha256Digest(bytes), bytes };
    const result = await this.#write(rewritten, parsed, pick.kept, outcome, false);
    if (result.status === "pushed") {
      this.#o.emit({
        kind: "step",
        code: "IMAGE_PLATFORMS_REWRITTEN",
        message: `${src} (${top.digest}) -> ${
          formatReference(this.#o.destination)
        } (${result.digest}): a new index of ${outcome.kept.join(", ")} (left out: ${
          outcome.skipped.join(", ")
        }); a new digest: signatures of ${top.digest} are not carried, digest pulls of it are not mirrored`,
      });
    }
    return result;
  }

  /** The index's own bytes (some children left out when `sparse`). */
  async #sparse(
    top: ManifestBytes,
    parsed: Index,
    kept: Index["manifests"],
    outcome: PlatformOutcome,
    sparse: boolean,
  ): Promise<CopyResult> {
    const { dst, copier } = this.#o;
    if (sparse) {
      const said = (dst as { sparseManifestSupport?: boolean | null }).sparseManifestSupport;
      if (said === false) throw this.#refused("it says X-Sparse-Manifest-Support: false");
      if (this.#o.sparseRefused.has(dst.host)) {
        throw this.#refused("it refused one earlier in this run");
      }
    }
    const there = this.#o.destinationAbsent ? null : await this.#o.checkDestination(top.digest);
    if (!there) return await this.#write(top, parsed, kept, outcome, sparse, true);
    // The tag holds this index: copy the kept children it lacks (widening), tag untouched.
    const added = await this.#copyKept(kept, outcome);
    if (added.length === 0) return { ...there, platforms: outcome };
    this.#o.emit({
      kind: "step",
      code: "IMAGE_PLATFORMS_ADDED",
      message: `${formatReference(this.#o.destination)} (${top.digest}): added ${
        added.join(", ")
      }; the tag is unchanged`,
    });
    return {
      status: "pushed",
      digest: top.digest,
      bytesUploaded: copier.bytesUploaded,
      platforms: { ...outcome, added },
    };
  }

  /** Copy the kept children, check the tag again, PUT the index under it. */
  async #write(
    index: ManifestBytes,
    parsed: Index,
    kept: Index["manifests"],
    outcome: PlatformOutcome,
    sparse: boolean,
    checked = false,
  ): Promise<CopyResult> {
    const { copier, destination } = this.#o;
    const early = checked || this.#o.destinationAbsent
      ? null
      : await this.#o.checkDestination(index.digest);
    if (early) return { ...early, platforms: outcome };
    await this.#copyKept(kept, outcome);
    this.#o.signal?.throwIfAborted();
    const late = await this.#o.checkDestination(index.digest);
    if (late) return { ...late, platforms: outcome };
    let digest: string;
    try {
      digest = await copier.putManifest(
        manifestRef(destination),
        index,
        { ...parsed, manifests: kept },
        this.#o.src,
        kept,
      );
    } catch (error) {
      const cause = error instanceof MirrorError ? error.cause : undefined;
      if (sparse && (isBlobUnknown(error, "index") || isBlobUnknown(cause, "index"))) {
        this.#o.sparseRefused.add(this.#o.dst.host);
        throw this.#refused("it refused the index for its missing children", error);
      }
      throw error;
    }
    this.#o.emit({
      kind: "step",
      code: "IMAGE_PUSHED",
      message: `${this.#o.src} -> ${formatReference(destination)} (${digest}; ${
        outcome.kept.join(", ")
      }${outcome.skipped.length ? `, left out: ${outcome.skipped.join(", ")}` : ""})`,
    });
    return { status: "pushed", digest, bytesUploaded: copier.bytesUploaded, platforms: outcome };
  }

  /**
   * Copy the kept children one by one; returns the platforms whose child was written now. Sets
   * `outcome.bytesSkipped`: the left-out platforms times the mean size of the kept platform
   * children read now (an estimate: the skipped children are never read, a read is a pull).
   */
  async #copyKept(kept: Index["manifests"], outcome: PlatformOutcome): Promise<string[]> {
    const { copier } = this.#o;
    const added: string[] = [];
    const sizes: number[] = [];
    for (const child of kept) {
      const [written, bytes] = [copier.childrenWritten, copier.imageBytes];
      await copier.copyChildren([child], this.#o.src);
      const platform = platformOf(child);
      if (!platform) continue;
      if (copier.childrenWritten > written) added.push(platform);
      if (copier.imageBytes > bytes) sizes.push(copier.imageBytes - bytes);
    }
    if (sizes.length > 0 && outcome.skipped.length > 0) {
      const mean = sizes.reduce((n, b) => n + b, 0) / sizes.length;
      outcome.bytesSkipped = Math.round(mean * outcome.skipped.length);
    }
    return added;
  }

  #refused(why: string, cause?: unknown): MirrorError {
    return new MirrorError(
      "IMAGE_SPARSE_REFUSED",
      `${this.#o.dst.host} does not take an index with only some of its platforms (${why}): ${
        formatReference(this.#o.destination)
      } not written. Set operation.platformsMode: rewrite to write a new index of the kept platforms (a new digest), or mirror every platform`,
      { cause },
    );
  }
}
