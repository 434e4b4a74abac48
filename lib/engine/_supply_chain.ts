/**
 * The supply chain of a mirrored image, carried byte-exact (shared/registry-protocols.md §8.11):
 * for the mirrored digest and each child of an index, the cosign tags `sha256-<hex>.sig`, `.att`,
 * `.sbom` and the OCI 1.1 referrers (the referrers API, or the fallback tag `sha256-<hex>` where the
 * source answers 404), each with its blobs, through the engine's own copy code
 * (`_manifest_copier.ts`). Whatever is carried (an attestation, an SBOM, a referrer) gets its own
 * `.sig` tag and referrers carried in turn (a signature of an SBOM), {@link MAX_DEPTH} levels down.
 *
 * Rules:
 * - The source repository's tag list is read once per run (the engine keeps it): a cosign or
 *   fallback tag it does not list is taken as absent without a request (a listing that fails
 *   falls back to a HEAD per tag). A tag pushed upstream during the run is seen by the next run.
 * - A cosign tag is compared by HEAD on both sides; the same digest costs nothing more. Another
 *   digest at the destination is replaced only when the source's manifest holds every layer (by
 *   digest and annotations: two signatures of one payload differ only there) the
 *   destination's holds (signatures appended upstream); otherwise it is drift: an
 *   `IMAGE_TAG_DRIFT` event with both digests, the tag untouched.
 * - Referrers are copied by digest (never tagged), filtered by `artifactTypes`. Whether a registry
 *   serves the referrers API is asked once per host and run (200 = yes; 404/400/406 = no). A source
 *   without it is read through its fallback tag, HEAD first: when the destination's fallback tag has
 *   the same digest, nothing else is read from the source.
 * - A destination without the API gets its fallback tag kept: the source's exact bytes when they
 *   hold everything the destination's index holds and every referrer was carried (so the next run
 *   compares by HEAD), else the destination's index with the carried referrers appended (merge:
 *   nothing the destination lists is ever dropped). Never an index naming an absent manifest.
 * - The memo ({@link SupplyChainMemo}, kept across runs by the caller): what a digest lists (an
 *   index's children, a fallback index's referrers) is not read again. The engine's copy records
 *   there what it parsed and wrote of an index's tree, so an index copied now is not read back from
 *   the destination (a child the destination already held, never parsed, is). A managed tag the
 *   destination held at the source's digest when last HEADed (or written) less than 24 h ago is
 *   "same" without its destination HEAD. A drift is never memoised; an older entry is HEADed again.
 *
 * @module
 */
import { MirrorError } from "../errors.ts";
import { MEDIA_TYPES, parseManifest } from "../registry/manifest.ts";
import type { ArtifactStore } from "../registry/image_store.ts";
import type { ManifestBytes } from "../registry/image_store.ts";
import { cosignTags, parseSignatureManifest } from "../signatures/cosign.ts";
import {
  encodeReferrersIndex,
  isSuperset,
  mergeReferrersIndex,
  notReferrerOf,
  parseReferrersIndex,
  readReferrersApi,
  type ReferrerDescriptor,
  type ReferrersApiSupport,
  type ReferrersIndex,
  referrersTag,
} from "../signatures/referrers.ts";
import { listedParts, type ManifestCopier } from "./_manifest_copier.ts";
import type { EngineEvent, MemoPart, SupplyChainCounts, SupplyChainMemo } from "./engine.ts";

/** Media types of a manifest that has no children (an index is read for them). */
const IMAGE_MANIFESTS = new Set<string>([MEDIA_TYPES.ociManifest, MEDIA_TYPES.dockerManifest]);

/**
 * Referrers carried per image at most (all levels together): a source listing more fails that
 * image's step before copying any of them, so a hostile list cannot keep the run busy for hours.
 */
const MAX_REFERRERS = 1000;

/** Levels of "a signature of a carried artifact" followed below the image's own digests. */
const MAX_DEPTH = 3;

/** What {@link SupplyChain} works with. */
export interface SupplyChainOptions {
  src: ArtifactStore;
  dst: ArtifactStore;
  srcRepository: string;
  dstRepository: string;
  /** The engine's copier between the two repositories. */
  copier: ManifestCopier;
  /** The engine's per-host answers about the referrers API. */
  support: ReferrersApiSupport;
  /**
   * The source repository's tags (listed once per run), or null when the listing failed: a
   * cosign or fallback tag not listed is not HEADed.
   */
  sourceTags: () => Promise<ReadonlySet<string> | null>;
  artifactTypes?: readonly string[];
  /** What earlier runs learned (destination reads skipped); none: everything is read. */
  memo?: SupplyChainMemo;
  emit: (event: EngineEvent) => void;
  signal?: AbortSignal;
}

type CosignKind = "sig" | "att" | "sbom";
const COUNTER: Record<CosignKind, keyof SupplyChainCounts> = {
  sig: "signatures",
  att: "attestations",
  sbom: "sboms",
};

/** One image's supply-chain sync. */
export class SupplyChain {
  #o: SupplyChainOptions;
  #visited = new Set<string>();
  #referrersSeen = 0;
  /** The source's tag list once read for this image (null: not listed). */
  #sourceTags?: ReadonlySet<string> | null;
  #counts: SupplyChainCounts = { signatures: 0, attestations: 0, sboms: 0, referrers: 0 };

  /** A sync between two repositories. */
  constructor(options: SupplyChainOptions) {
    this.#o = options;
  }

  /**
   * Carry everything of `digest` (and of each child when it is an index).
   *
   * @param digest the mirrored manifest's digest
   * @param mediaType its media type when known: an image manifest is not read again
   * @param only the digests to carry for, not `digest` and its children (some platforms)
   *
   * @throws {MirrorError} IMAGE_SIGNATURE_INVALID (a `.sig` that is not cosign's format),
   *   IMAGE_REFERRER_INVALID (a referrers answer or fallback tag that is not an index), registry
   *   errors
   */
  async carry(digest: string, mediaType?: string, only?: readonly string[]) {
    const image = IMAGE_MANIFESTS.has(mediaType ?? "");
    const digests = only ?? (image ? [digest] : await this.#imageDigests(digest));
    for (const subject of digests) await this.#subject(subject, 0);
    return this.#counts;
  }

  /** The mirrored digest and its children (read at the destination, where it now is). */
  async #imageDigests(digest: string): Promise<string[]> {
    const out = [digest];
    let children = this.#o.memo?.parts(digest);
    if (!children) {
      const manifest = await this.#dstGet(digest);
      if (!manifest) return out;
      const parsed = parseManifest(manifest.bytes, manifest.mediaType, this.#dstWhere(digest));
      children = listedParts(parsed);
      this.#o.memo?.recordParts(digest, children);
    }
    for (const child of children) out.push(...await this.#imageDigests(child.digest));
    return out;
  }

  async #subject(digest: string, depth: number): Promise<void> {
    if (this.#visited.has(digest)) return;
    this.#visited.add(digest);
    const next: string[] = [];
    const tags = cosignTags(digest);
    // An image digest may carry all three; what is carried for it only gets signed in turn.
    for (const kind of depth === 0 ? ["sig", "att", "sbom"] as const : ["sig"] as const) {
      this.#o.signal?.throwIfAborted();
      const outcome = this.#unlisted(tags[kind])
        ? { state: "absent" as const }
        : await this.#cosignTag(kind, tags[kind]);
      if (!("digest" in outcome)) continue;
      this.#counts[COUNTER[kind]]++;
      // A signature is not signed in turn; an attestation or an SBOM may be (cosign sign <it>).
      if (kind !== "sig") next.push(outcome.digest);
    }
    next.push(...await this.#referrers(digest));
    if (depth >= MAX_DEPTH) return;
    for (const more of next) await this.#subject(more, depth + 1);
  }

  /** One cosign tag: in step, copied, drift, or absent at the source. */
  async #cosignTag(
    kind: CosignKind,
    tag: string,
  ): Promise<{ state: "absent" | "drift" } | { state: "same" | "copied"; digest: string }> {
    const { src, dst, srcRepository, dstRepository, signal } = this.#o;
    if (!(await this.#listed(tag))) return { state: "absent" };
    const head = await src.manifestHead(srcRepository, tag, signal);
    if (!head) return { state: "absent" };
    const memo = this.#o.memo;
    const key = `${dst.host}/${dstRepository}`;
    if (memo?.inStep(key, tag, head.digest)) return { state: "same", digest: head.digest };
    const there = await dst.manifestHead(dstRepository, tag, signal);
    if (there?.digest === head.digest) {
      memo?.recordInStep(key, tag, head.digest);
      return { state: "same", digest: head.digest };
    }
    memo?.forget(key, tag);
    const where = `${src.host}/${srcRepository}:${tag}`;
    const manifest = await src.manifestGet(srcRepository, head.digest, signal).catch((error) => {
      // An import of an export made with --since: the tag is as an earlier export carried it
      // (imported before); the destination's other digest is kept, as drift.
      if (!there || !isPredecessorMissing(error)) throw error;
      this.#o.emit({
        kind: "step",
        code: "IMAGE_TAG_DRIFT",
        message: `${this.#dstWhere(tag)} holds ${there.digest}; the source's ${head.digest} ` +
          `(${where}) was carried by an earlier export, not this one; left untouched`,
      });
      return "earlier" as const;
    });
    if (manifest === "earlier") return { state: "drift" };
    if (!manifest) return { state: "absent" };
    if (kind === "sig") this.#checkSignature(manifest, where);
    if (there) {
      const held = await this.#dstGet(there.digest);
      if (held && !holdsAll(manifest, where, held, this.#dstWhere(tag))) {
        this.#o.emit({
          kind: "step",
          code: "IMAGE_TAG_DRIFT",
          message: `${this.#dstWhere(tag)} holds ${there.digest} with ${
            kind === "sig" ? "signatures" : "layers"
          } the source's ${head.digest} (${where}) lacks; left untouched`,
        });
        return { state: "drift" };
      }
    }
    await this.#o.copier.copyManifest(manifest, tag, where);
    memo?.recordInStep(key, tag, manifest.digest);
    this.#o.emit({
      kind: "step",
      code: "IMAGE_SIGNATURE_COPIED",
      message: `${where} -> ${this.#dstWhere(tag)} (${manifest.digest}${
        there ? `, replaced ${there.digest}: the source's holds all of it` : ""
      })`,
    });
    return { state: "copied", digest: manifest.digest };
  }

  /**
   * A `.sig` that is not cosign's format (garbage annotations) is still carried byte for byte:
   * the mirror holds what upstream holds, and a verifier refuses it there as it would upstream.
   * It does not fail the image; a WARNING says it will not verify.
   */
  #checkSignature(manifest: ManifestBytes, where: string): void {
    try {
      parseSignatureManifest(manifest.bytes, where);
    } catch (error) {
      if (!(error instanceof MirrorError)) throw error;
      this.#o.emit({
        kind: "step",
        code: "IMAGE_SIGNATURE_INVALID",
        level: "WARNING",
        message: `${error.message}; carried as is (it will not verify)`,
      });
    }
  }

  /** The referrers of `digest`: copied by digest, the destination's fallback tag kept; returns their digests. */
  async #referrers(digest: string): Promise<string[]> {
    const { src, dst, srcRepository, dstRepository, signal } = this.#o;
    const tag = referrersTag(digest);
    const listed = await this.#sourceReferrers(digest);
    if ("inStep" in listed) {
      const held = this.#filter<MemoPart>(
        this.#o.memo?.parts(listed.inStep) ??
          (await this.#fallbackIndex(dst, dstRepository, tag))?.index.manifests ?? [],
      );
      this.#counts.referrers += held.length;
      return held.map((d) => d.digest);
    }
    const wanted = this.#filter(listed.descriptors);
    this.#referrersSeen += wanted.length;
    if (this.#referrersSeen > MAX_REFERRERS) {
      throw new MirrorError(
        "IMAGE_REFERRER_INVALID",
        `${src.host}/${srcRepository} referrers of ${digest}: ${wanted.length} listed, more than the ${MAX_REFERRERS} referrers carried per image; refused`,
      );
    }
    const carried: ReferrerDescriptor[] = [];
    for (const referrer of wanted) {
      signal?.throwIfAborted();
      const where = `${src.host}/${srcRepository}@${referrer.digest} (referrer of ${digest})`;
      const there = await dst.manifestHead(dstRepository, referrer.digest, signal);
      const manifest = there
        ? await this.#dstGet(referrer.digest)
        : await src.manifestGet(srcRepository, referrer.digest, signal);
      // A stale entry of the source's list (a referrer deleted without updating its fallback
      // index), or one whose own subject is another image (a list proves nothing): the others
      // still travel; the destination's index never names it.
      const why = notReferrerOf(manifest, digest);
      if (why || !manifest) {
        this.#o.emit({ kind: "step", code: "IMAGE_REFERRER_INVALID", message: `${where}: ${why}` });
        continue;
      }
      if (!there) {
        await this.#o.copier.copyManifest(manifest, referrer.digest, where);
        this.#o.emit({
          kind: "step",
          code: "IMAGE_REFERRER_COPIED",
          message: `${where} -> ${dst.host}/${dstRepository}@${referrer.digest}${
            referrer.artifactType ? ` (${referrer.artifactType})` : ""
          }`,
        });
      }
      carried.push(referrer);
      this.#counts.referrers++;
    }
    if (carried.length > 0 && !(await this.#hasApi(dst, dstRepository, digest))) {
      const exact = listed.index && carried.length === listed.index.manifests.length
        ? listed
        : null;
      await this.#keepFallback(digest, carried, exact);
    }
    return carried.map((d) => d.digest);
  }

  /**
   * The source's referrers of `digest`, or `inStep` (the fallback tag's digest, "" when unknown)
   * when the source has no API and its fallback tag has the digest the destination's has (HEADs
   * only, or the memo), or was carried by an earlier export.
   */
  async #sourceReferrers(
    digest: string,
  ): Promise<
    { inStep: string } | {
      descriptors: ReferrerDescriptor[];
      index?: ReferrersIndex;
      raw?: ManifestBytes;
    }
  > {
    const { src, dst, srcRepository, dstRepository, signal } = this.#o;
    const apiSupport = this.#o.support;
    const descriptors = await readReferrersApi(src, srcRepository, digest, { signal, apiSupport });
    if (descriptors !== null) return { descriptors };
    const tag = referrersTag(digest);
    if (this.#unlisted(tag) || !(await this.#listed(tag))) return { descriptors: [] };
    const head = await src.manifestHead(srcRepository, tag, signal);
    if (!head) return { descriptors: [] };
    const memo = this.#o.memo;
    const key = `${dst.host}/${dstRepository}`;
    if (memo?.inStep(key, tag, head.digest)) return { inStep: head.digest };
    const there = await dst.manifestHead(dstRepository, tag, signal);
    if (there?.digest === head.digest) {
      memo?.recordInStep(key, tag, head.digest);
      return { inStep: head.digest };
    }
    const read = await this.#fallbackIndex(src, srcRepository, head.digest, tag).catch((error) => {
      // An import of an export made with --since: the fallback index is as an earlier export
      // carried it (imported before): nothing new; the destination's (merged) index is counted.
      if (isPredecessorMissing(error)) return "earlier" as const;
      throw error;
    });
    if (read === "earlier") return { inStep: "" };
    if (!read) return { descriptors: [] };
    return { descriptors: read.index.manifests, index: read.index, raw: read.raw };
  }

  /** May the source hold `tag`? False only when its tag list was read and lacks it. */
  async #listed(tag: string): Promise<boolean> {
    const tags = this.#sourceTags ??= await this.#o.sourceTags();
    return tags === null || tags.has(tag);
  }

  /**
   * Known without waiting that the source lacks `tag` (its tag list was read for this image
   * already and lacks it): a no-op image's four tags cost one wait, not four.
   */
  #unlisted(tag: string): boolean {
    return this.#sourceTags !== undefined && this.#sourceTags !== null &&
      !this.#sourceTags.has(tag);
  }

  /** A fallback index (by tag or digest), checked; null when absent. */
  async #fallbackIndex(
    client: ArtifactStore,
    repository: string,
    ref: string,
    tag = ref,
  ): Promise<{ index: ReferrersIndex; raw: ManifestBytes } | null> {
    const raw = client === this.#o.dst
      ? await this.#dstGet(ref)
      : await client.manifestGet(repository, ref, this.#o.signal);
    if (!raw) return null;
    const index = parseReferrersIndex(raw.bytes, `${client.host}/${repository}:${tag}`);
    this.#o.memo?.recordParts(raw.digest, memoParts(index.manifests));
    return { index, raw };
  }

  /**
   * A manifest at the destination. A layout written with `--since` may list a manifest an earlier
   * export carried (not in this directory): then the source's, which has the same digest.
   */
  async #dstGet(ref: string): Promise<ManifestBytes | null> {
    const { src, dst, srcRepository, dstRepository, signal } = this.#o;
    try {
      return await dst.manifestGet(dstRepository, ref, signal);
    } catch (error) {
      if (!isPredecessorMissing(error)) throw error;
      return await src.manifestGet(srcRepository, ref, signal);
    }
  }

  /** Does `client`'s host serve the referrers API? Asked once per host and run. */
  async #hasApi(client: ArtifactStore, repository: string, digest: string): Promise<boolean> {
    const known = this.#o.support.get(client.host);
    if (known !== undefined) return known;
    const listed = await readReferrersApi(client, repository, digest, {
      signal: this.#o.signal,
      apiSupport: this.#o.support,
    });
    return listed !== null;
  }

  /** Keep the destination's fallback tag of `digest` listing `carried` (merge, never drop). */
  async #keepFallback(
    digest: string,
    carried: ReferrerDescriptor[],
    source: { index?: ReferrersIndex; raw?: ManifestBytes } | null,
  ): Promise<void> {
    const { dst, dstRepository, signal } = this.#o;
    const tag = referrersTag(digest);
    const held = await this.#fallbackIndex(dst, dstRepository, tag);
    const merged = mergeReferrersIndex(held?.index ?? null, carried);
    if (held && merged.manifests.length === held.index.manifests.length) return;
    const exact = source?.raw && source.index &&
        isSuperset(source.index.manifests, held?.index.manifests ?? [])
      ? { raw: source.raw, count: source.index.manifests.length, parts: source.index.manifests }
      : null;
    const body = exact ? exact.raw : encodeReferrersIndex(merged);
    const written = await dst.manifestPut(dstRepository, tag, body, signal);
    this.#o.memo?.recordParts(written, memoParts(exact?.parts ?? merged.manifests));
    this.#o.memo?.recordInStep(`${dst.host}/${dstRepository}`, tag, written);
    this.#o.emit({
      kind: "step",
      code: "IMAGE_REFERRER_COPIED",
      message: `${this.#dstWhere(tag)}: fallback index now lists ${
        exact ? exact.count : merged.manifests.length
      } referrer(s) (${written}${exact ? ", the source's bytes" : ", merged"})`,
    });
  }

  #filter<T extends MemoPart>(descriptors: readonly T[]): T[] {
    const types = this.#o.artifactTypes;
    if (!types) return [...descriptors];
    return descriptors.filter((d) =>
      d.artifactType !== undefined && types.includes(d.artifactType)
    );
  }

  #dstWhere(ref: string): string {
    const { dst, dstRepository } = this.#o;
    return `${dst.host}/${dstRepository}${ref.startsWith("sha256:") ? "@" : ":"}${ref}`;
  }
}

/**
 * What a managed manifest holds, one key per part: a layer by its digest and its annotations, a
 * child of an index by its digest. Two cosign signatures of one payload are two layers with the
 * same digest and different `dev.cosignproject.cosign/signature` annotations: compared by digest
 * alone, a signature only the destination holds would be overwritten.
 */
function heldParts(manifest: ManifestBytes, where: string): string[] {
  const parsed = parseManifest(manifest.bytes, manifest.mediaType, where);
  if (parsed.kind !== "image") return parsed.manifests.map((d) => d.digest);
  const raw = JSON.parse(new TextDecoder().decode(manifest.bytes)) as {
    layers?: { annotations?: Record<string, unknown> }[];
  };
  return parsed.layers.map((layer, i) => {
    const annotations = Object.entries(raw.layers?.[i]?.annotations ?? {})
      .sort(([a], [b]) => a.localeCompare(b));
    return `${layer.digest} ${JSON.stringify(annotations)}`;
  });
}

/** Does the source's manifest hold every part the destination's holds (never lose one)? */
function holdsAll(
  source: ManifestBytes,
  sourceWhere: string,
  held: ManifestBytes,
  heldWhere: string,
): boolean {
  const have = new Set(heldParts(source, sourceWhere));
  return heldParts(held, heldWhere).every((part) => have.has(part));
}

/** What the memo keeps of a referrers index's descriptors. */
function memoParts(descriptors: readonly ReferrerDescriptor[]): MemoPart[] {
  return descriptors.map((d) =>
    d.artifactType ? { digest: d.digest, artifactType: d.artifactType } : { digest: d.digest }
  );
}

/** A layout's "an earlier export carried this blob, not this one" (`--since`). */
function isPredecessorMissing(error: unknown): boolean {
  return error instanceof MirrorError && error.code === "IMAGE_PREDECESSOR_MISSING";
}
