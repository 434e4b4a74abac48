/**
 * The daemonless engine: copies straight from registry to registry over the OCI distribution
 * API, like skopeo and crane. Every platform of an index is kept and the destination digest
 * equals the source digest (exact bytes, never re-serialised), unless the copy names
 * `platforms`: then `_platform_copy.ts` copies only those children (sparse: the same index
 * bytes; rewrite: a new index).
 *
 * Order: config and layer blobs before their manifest, children before their index, the tagged
 * manifest last. Blobs that exist are skipped (HEAD); on the same registry they are mounted from
 * the source repository; otherwise the source GET streams into the destination upload. The
 * destination tag is checked before anything is copied (not when the caller just found it absent:
 * `destinationAbsent`) and again right before the tagged PUT (crane's NoClobber placement): the
 * same digest means `exists`, another digest is IMAGE_TAG_DRIFT and the tag is not written.
 *
 * Blob work is shared by every copy of the engine (one engine per run): one HEAD/mount/upload per
 * (destination registry, repository, blob), and likewise per child manifest; other copies that
 * need it wait for that one (see `_shared_work.ts` for why and for the failure rule). A manifest
 * PUT answered with BLOB_UNKNOWN (the registry lost a blob it had taken) re-checks the manifest's
 * blobs or children once, HEAD each and upload what is missing, then PUTs again before failing.
 * The copy itself is `_manifest_copier.ts`; {@link RegistryEngine.carrySupplyChain} reuses it for
 * signatures, attestations, SBOMs and referrers (`_supply_chain.ts`).
 *
 * @module
 */
import { MirrorError } from "../errors.ts";
import { formatReference, manifestRef, type Reference } from "../registry/reference.ts";
import { type ArtifactStore, type ImageStore, isArtifactStore } from "../registry/image_store.ts";
import { parseManifest } from "../registry/manifest.ts";
import { listedParts, ManifestCopier } from "./_manifest_copier.ts";
import { PlatformCopy } from "./_platform_copy.ts";
import { SharedWork } from "./_shared_work.ts";
import { SupplyChain } from "./_supply_chain.ts";
import { ReferrersApiSupport } from "../signatures/referrers.ts";
import type {
  CopyRequest,
  CopyResult,
  Engine,
  EngineEvent,
  MemoPart,
  PlatformRequest,
  SupplyChainCounts,
  SupplyChainMemo,
  SupplyChainRequest,
} from "./engine.ts";

/** Options for {@link RegistryEngine}. */
export interface RegistryEngineOptions {
  /**
   * Where images of a registry host live: its client (one per host: one connection pool each),
   * or another {@link ImageStore} (an OCI layout for export and import).
   */
  clientFor: (registryHost: string) => ImageStore;
  /** Blobs copied at once per image. @default 4 */
  blobConcurrency?: number;
  /** What earlier runs learned about supply chains (skips destination reads; see `_supply_chain.ts`). */
  supplyChainMemo?: SupplyChainMemo;
}

/** Copies over the distribution API. */
export class RegistryEngine implements Engine {
  readonly name = "registry" as const;
  readonly comparison = "manifest" as const;
  #clientFor: (host: string) => ImageStore;
  #blobConcurrency: number;
  #shared = new SharedWork();
  /** Destination hosts that refused a sparse index this run (later copies fail at once). */
  #sparseRefused = new Set<string>();
  #referrersSupport = new ReferrersApiSupport();
  #sourceTags = new Map<string, Promise<ReadonlySet<string> | null>>();
  #memo?: SupplyChainMemo;

  /** Create the engine. */
  constructor(options: RegistryEngineOptions) {
    this.#clientFor = options.clientFor;
    this.#blobConcurrency = options.blobConcurrency ?? 4;
    this.#memo = options.supplyChainMemo;
  }

  /** Nothing to check: no daemon. */
  prepare(): Promise<void> {
    return Promise.resolve();
  }

  /** Carry an image's signatures, attestations, SBOMs and referrers (see `_supply_chain.ts`). */
  async carrySupplyChain(request: SupplyChainRequest): Promise<SupplyChainCounts> {
    const src = this.#clientFor(request.source.registry);
    const dst = this.#clientFor(request.destination.registry);
    // A registry client or a layout store (export/import: tags from index.json, no referrers API).
    if (!isArtifactStore(src) || !isArtifactStore(dst)) {
      return { signatures: 0, attestations: 0, sboms: 0, referrers: 0 };
    }
    const emit = request.onEvent ?? (() => {});
    const copier = new ManifestCopier({
      src,
      dst,
      srcRepository: request.source.repository,
      dstRepository: request.destination.repository,
      blobConcurrency: this.#blobConcurrency,
      shared: this.#shared,
      emit,
      signal: request.signal,
    });
    return await new SupplyChain({
      src,
      dst,
      srcRepository: request.source.repository,
      dstRepository: request.destination.repository,
      copier,
      support: this.#referrersSupport,
      sourceTags: () => this.#tagsOf(src, request.source.repository, request),
      artifactTypes: request.artifactTypes,
      memo: this.#memo,
      emit,
      signal: request.signal,
    }).carry(request.digest, request.mediaType, request.subjects);
  }

  /**
   * A source repository's tags, listed once per run (or as the caller listed them); null when the
   * listing failed or was empty.
   */
  #tagsOf(
    client: ArtifactStore,
    repository: string,
    request: SupplyChainRequest,
  ): Promise<ReadonlySet<string> | null> {
    const { signal } = request;
    const key = `${client.host}/${repository}`;
    let tags = this.#sourceTags.get(key);
    if (!tags) {
      const listed = request.sourceTags
        ? Promise.resolve(request.sourceTags)
        : client.tagList(repository, signal);
      tags = listed.then(
        // An empty list says nothing (the image's own tag is not in it): HEAD each tag instead.
        (list) => list.length > 0 ? new Set(list) : null,
        (error) => {
          if (signal?.aborted) throw error;
          return null;
        },
      );
      this.#sourceTags.set(key, tags);
    }
    return tags;
  }

  /** Nothing to release (clients belong to the caller). */
  close(): Promise<void> {
    return Promise.resolve();
  }

  /** Copy one image; see the module doc for the guarantees. */
  async copy(request: CopyRequest): Promise<CopyResult> {
    const job = new CopyJob(this.#clientFor, request, {
      blobConcurrency: this.#blobConcurrency,
      shared: this.#shared,
      sparseRefused: this.#sparseRefused,
      memo: this.#memo,
    });
    return await job.run();
  }
}

class CopyJob {
  #src: ImageStore;
  #dst: ImageStore;
  #source: Reference;
  #destination: Reference;
  #replaceDigest?: string;
  #destinationAbsent: boolean;
  #platforms?: PlatformRequest;
  #sparseRefused: Set<string>;
  #signal?: AbortSignal;
  #emit: (event: EngineEvent) => void;
  #copier: ManifestCopier;
  #memo?: SupplyChainMemo;
  /** The whole image is copied (no `platforms`): what it lists goes into the memo. */
  #whole = false;

  constructor(
    clientFor: (host: string) => ImageStore,
    request: CopyRequest,
    options: {
      blobConcurrency: number;
      shared: SharedWork;
      sparseRefused: Set<string>;
      memo?: SupplyChainMemo;
    },
  ) {
    this.#src = clientFor(request.source.registry);
    this.#dst = clientFor(request.destination.registry);
    this.#source = request.source;
    this.#destination = request.destination;
    this.#replaceDigest = request.replaceDigest;
    this.#destinationAbsent = request.destinationAbsent === true;
    this.#platforms = request.platforms;
    this.#sparseRefused = options.sparseRefused;
    this.#signal = request.signal;
    this.#emit = request.onEvent ?? (() => {});
    this.#memo = options.memo;
    this.#copier = new ManifestCopier({
      src: this.#src,
      dst: this.#dst,
      srcRepository: request.source.repository,
      dstRepository: request.destination.repository,
      blobConcurrency: options.blobConcurrency,
      shared: options.shared,
      emit: this.#emit,
      signal: request.signal,
      onChildWritten: (digest, parts) => this.#remember(digest, parts),
    });
  }

  get bytesUploaded(): number {
    return this.#copier.bytesUploaded;
  }

  async run(): Promise<CopyResult> {
    const src = formatReference(this.#source);
    const top = await this.#src.manifestGet(
      this.#source.repository,
      manifestRef(this.#source),
      this.#signal,
    );
    if (!top) throw new MirrorError("IMAGE_NOT_FOUND", `Source image ${src} does not exist`);
    if (this.#platforms) {
      const parsed = parseManifest(top.bytes, top.mediaType, src);
      // A single image is mirrored as it is: there is nothing to choose.
      if (parsed.kind === "index") {
        return await new PlatformCopy({
          src,
          dst: this.#dst,
          destination: this.#destination,
          copier: this.#copier,
          request: this.#platforms,
          sparseRefused: this.#sparseRefused,
          destinationAbsent: this.#destinationAbsent,
          checkDestination: (digest) => this.#checkDestination(digest),
          emit: this.#emit,
          signal: this.#signal,
        }).run(top, parsed);
      }
    }
    // The plan just found the tag absent: only the late check (a tag written meanwhile costs
    // this copy's uploads, never the tag).
    const early = this.#destinationAbsent ? null : await this.#checkDestination(top.digest);
    if (early) return early;
    this.#whole = true;
    const parsed = await this.#copier.copyContent(top.bytes, top.mediaType, src);
    this.#signal?.throwIfAborted();
    const late = await this.#checkDestination(top.digest);
    if (parsed.kind === "index") this.#remember(top.digest, listedParts(parsed));
    if (late) return late;
    const digest = await this.#copier.putManifest(manifestRef(this.#destination), top, parsed, src);
    this.#emit({
      kind: "step",
      code: "IMAGE_PUSHED",
      message: `${src} -> ${formatReference(this.#destination)} (${digest})`,
    });
    return { status: "pushed", digest, bytesUploaded: this.bytesUploaded };
  }

  /**
   * What a manifest this copy parsed lists (its digest is of the bytes parsed), kept in the memo
   * when it has none: the supply-chain step then walks an index's tree without reading it back
   * from the destination. An image tag is not kept (the step knows it from its media type).
   */
  #remember(digest: string, parts: readonly MemoPart[]): void {
    if (this.#whole && this.#memo && !this.#memo.parts(digest)) {
      this.#memo.recordParts(digest, parts);
    }
  }

  /** The never-overwrite rule: null when the tag is free (or holds the digest to replace). */
  async #checkDestination(digest: string): Promise<CopyResult | null> {
    const existing = await this.#dst.manifestHead(
      this.#destination.repository,
      manifestRef(this.#destination),
      this.#signal,
    );
    if (!existing) return null;
    if (existing.digest === digest) {
      return { status: "exists", digest, bytesUploaded: this.bytesUploaded };
    }
    if (this.#replaceDigest !== undefined && existing.digest === this.#replaceDigest) return null;
    throw new MirrorError(
      "IMAGE_TAG_DRIFT",
      `${formatReference(this.#destination)} holds ${existing.digest}, source ${
        formatReference(this.#source)
      } has ${digest}; left untouched`,
    );
  }
}
