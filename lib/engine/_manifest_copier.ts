/**
 * The registry engine's copy of one manifest and everything it refers to, from one source
 * repository to one destination repository, byte-exact: config and layer blobs before their
 * manifest, children before their index. Used by registry_engine.ts for the tagged image and by
 * _supply_chain.ts for signatures, attestations, SBOMs and referrers (copied by digest or to
 * their cosign tag).
 *
 * Blobs that exist are skipped (HEAD); on the same registry they are mounted from the source
 * repository; otherwise the source GET streams into the destination upload. A destination that
 * has shown it mounts a blob into the repository that holds it (`mountsInPlace`) is asked with the
 * upload's POST instead (`?mount=<digest>&from=<the destination repository>`, the source
 * repository on the same registry): a 201 is "there already", a 202 the upload session. Blob and
 * child work is shared by every copy of the engine (`_shared_work.ts`). A manifest PUT answered with
 * BLOB_UNKNOWN re-checks the manifest's blobs or children once, then PUTs again before failing.
 *
 * @module
 */
import { MirrorError } from "../errors.ts";
import { type Descriptor, type ParsedManifest, parseManifest } from "../registry/manifest.ts";
import type { ImageStore } from "../registry/image_store.ts";
import type { ManifestBytes } from "../registry/image_store.ts";
import { RegistryError } from "../registry/registry_error.ts";
import { forEachLimited } from "../worker_pool.ts";
import type { SharedWork } from "./_shared_work.ts";
import type { EngineEvent, MemoPart } from "./engine.ts";

/** What a {@link ManifestCopier} copies between. */
export interface ManifestCopierOptions {
  src: ImageStore;
  dst: ImageStore;
  /** Source repository. */
  srcRepository: string;
  /** Destination repository. */
  dstRepository: string;
  /** Blobs copied at once per manifest. */
  blobConcurrency: number;
  /** The run's shared work. */
  shared: SharedWork;
  emit: (event: EngineEvent) => void;
  signal?: AbortSignal;
  /**
   * Told of each child manifest this copier parsed and PUT, with the digests it lists (an image:
   * none), so that the supply-chain step need not read it back from the destination. A child
   * the destination already held is not parsed, so not told.
   */
  onChildWritten?: (digest: string, parts: readonly MemoPart[]) => void;
}

/** Copies manifests with their content from one repository to another; counts bytes uploaded. */
export class ManifestCopier {
  #src: ImageStore;
  #dst: ImageStore;
  #srcRepo: string;
  #dstRepo: string;
  #blobConcurrency: number;
  #shared: SharedWork;
  #emit: (event: EngineEvent) => void;
  #signal?: AbortSignal;
  #onChildWritten?: (digest: string, parts: readonly MemoPart[]) => void;
  /** Bytes the destination took from this copier. */
  bytesUploaded = 0;
  /** Child manifests this copier PUT (a child found at the destination is not counted). */
  childrenWritten = 0;
  /** Bytes of the blobs (config and layers) of the image manifests this copier read. */
  imageBytes = 0;

  /** A copier between two repositories. */
  constructor(options: ManifestCopierOptions) {
    this.#src = options.src;
    this.#dst = options.dst;
    this.#srcRepo = options.srcRepository;
    this.#dstRepo = options.dstRepository;
    this.#blobConcurrency = options.blobConcurrency;
    this.#shared = options.shared;
    this.#emit = options.emit;
    this.#signal = options.signal;
    this.#onChildWritten = options.onChildWritten;
  }

  /**
   * Copy a manifest's content, then PUT its exact bytes under `ref` (a tag or its digest).
   *
   * @returns the digest the destination stored (equal to the source's)
   */
  async copyManifest(manifest: ManifestBytes, ref: string, where: string): Promise<string> {
    const parsed = await this.copyContent(manifest.bytes, manifest.mediaType, where);
    this.#signal?.throwIfAborted();
    return await this.putManifest(ref, manifest, parsed, where);
  }

  /**
   * Copy everything a manifest refers to (recursively for an index), children by digest; returns
   * the parsed manifest.
   */
  async copyContent(bytes: Uint8Array, mediaType: string, where: string): Promise<ParsedManifest> {
    const parsed = parseManifest(bytes, mediaType, where);
    if (parsed.kind === "image") {
      this.imageBytes += [parsed.config, ...parsed.layers].reduce((n, b) => n + b.size, 0);
      await this.#copyBlobs([parsed.config, ...parsed.layers]);
      return parsed;
    }
    await this.copyChildren(parsed.manifests, where);
    return parsed;
  }

  /** Make each child manifest (and what it refers to) exist at the destination, in order. */
  async copyChildren(children: readonly Descriptor[], where: string): Promise<void> {
    for (const child of children) {
      this.#signal?.throwIfAborted();
      await this.#copyChild(child, where);
    }
  }

  /**
   * PUT a manifest whose content was copied. A registry that answers BLOB_UNKNOWN lost (or never
   * linked) a blob or child it had taken: HEAD each one again, upload what is missing, PUT once
   * more; a second refusal fails.
   */
  async putManifest(
    ref: string,
    manifest: ManifestBytes,
    parsed: ParsedManifest,
    where: string,
    children?: readonly Descriptor[],
  ): Promise<string> {
    const repository = this.#dstRepo;
    try {
      return await this.#dst.manifestPut(repository, ref, manifest, this.#signal);
    } catch (error) {
      if (!isBlobUnknown(error, parsed.kind)) throw error;
      // An index copied for some platforms: only its kept children are the copier's to re-check.
      const parts = parsed.kind === "image"
        ? [parsed.config, ...parsed.layers]
        : [...children ?? parsed.manifests];
      for (const part of parts) {
        this.#shared.forget(this.#key(parsed.kind === "image" ? "blob" : "manifest", part.digest));
      }
      if (parsed.kind === "image") await this.#copyBlobs(parts);
      else for (const child of parts) await this.#copyChild(child, where);
      try {
        return await this.#dst.manifestPut(repository, ref, manifest, this.#signal);
      } catch (again) {
        if (!(again instanceof MirrorError)) throw again;
        throw new MirrorError(
          again.code,
          `${again.message} (again after re-checking its ${parts.length} ${
            parsed.kind === "image" ? "blobs" : "child manifests"
          })`,
          { cause: again },
        );
      }
    }
  }

  /** Make a child manifest (and what it refers to) exist at the destination; shared per run. */
  async #copyChild(child: Descriptor, where: string): Promise<void> {
    await this.#shared.run(this.#key("manifest", child.digest), async () => {
      if (await this.#dst.manifestHead(this.#dstRepo, child.digest, this.#signal)) return;
      const manifest = await this.#src.manifestGet(this.#srcRepo, child.digest, this.#signal);
      if (!manifest) {
        throw new MirrorError(
          "IMAGE_NOT_FOUND",
          `${where}: child manifest ${child.digest} is missing at the source`,
        );
      }
      const childWhere = `${where}@${child.digest}`;
      const parsed = await this.copyContent(manifest.bytes, manifest.mediaType, childWhere);
      await this.putManifest(child.digest, manifest, parsed, childWhere);
      this.childrenWritten++;
      this.#onChildWritten?.(child.digest, listedParts(parsed));
    }, this.#signal);
  }

  /** The key of shared work: what it makes exist in the destination repository. */
  #key(kind: "blob" | "manifest", digest: string): string {
    return `${kind} ${this.#dst.host}/${this.#dstRepo}@${digest}`;
  }

  async #copyBlobs(blobs: Descriptor[]): Promise<void> {
    await forEachLimited(blobs, async (blob) => {
      const did = await this.#shared.run(
        this.#key("blob", blob.digest),
        () => this.#copyBlob(blob),
        this.#signal,
      );
      if (!did) {
        this.#emit({ kind: "blob", digest: blob.digest, state: "skipped", total: blob.size });
      }
    }, { limit: this.#blobConcurrency });
  }

  async #copyBlob(blob: Descriptor): Promise<void> {
    const signal = this.#signal;
    signal?.throwIfAborted();
    const dstRepo = this.#dstRepo;
    const sameHost = this.#src.host === this.#dst.host;
    // A registry that answers a mount into the repository holding the blob (201) is asked with the
    // upload's own POST; any other is asked with a HEAD first.
    const byMount = this.#dst.mountsInPlace?.() ?? false;
    if (!byMount) {
      if ((await this.#dst.blobHead(dstRepo, blob.digest, signal)) !== null) {
        this.#emit({ kind: "blob", digest: blob.digest, state: "skipped", total: blob.size });
        return;
      }
      if (sameHost && await this.#dst.blobMount(dstRepo, blob.digest, this.#srcRepo, signal)) {
        this.#emit({ kind: "blob", digest: blob.digest, state: "mounted", total: blob.size });
        return;
      }
    }
    let started = false;
    const outcome = await this.#dst.blobUpload(
      dstRepo,
      { digest: blob.digest, size: blob.size },
      async (reading) => {
        if (!started) {
          started = true;
          this.#emit({ kind: "blob", digest: blob.digest, state: "started", total: blob.size });
        }
        return (await this.#src.blobGet(this.#srcRepo, blob.digest, reading)).body;
      },
      {
        signal,
        onProgress: (bytes) => {
          this.#emit({
            kind: "blob",
            digest: blob.digest,
            state: "progress",
            bytes,
            total: blob.size,
          });
        },
        mountFrom: byMount ? (sameHost ? this.#srcRepo : dstRepo) : undefined,
      },
    );
    if (outcome === "mounted") {
      const state = sameHost ? "mounted" : "skipped";
      this.#emit({ kind: "blob", digest: blob.digest, state, total: blob.size });
      return;
    }
    // Counted once the registry took the blob: bytes of a try that failed are not "uploaded".
    this.bytesUploaded += blob.size;
    this.#emit({ kind: "blob", digest: blob.digest, state: "done", total: blob.size });
  }
}

/** The digests a parsed manifest lists, as the supply-chain memo keeps them (an image: none). */
export function listedParts(parsed: ParsedManifest): MemoPart[] {
  return parsed.kind === "index" ? parsed.manifests.map((c) => ({ digest: c.digest })) : [];
}

/** Registry error codes of a manifest PUT that names a missing blob (or child, for an index). */
const BLOB_UNKNOWN = new Set(["MANIFEST_BLOB_UNKNOWN", "BLOB_UNKNOWN"]);

/** Did the registry refuse a manifest because a blob (or a child manifest) it names is missing? */
export function isBlobUnknown(error: unknown, kind: ParsedManifest["kind"]): boolean {
  return error instanceof RegistryError &&
    error.errors.some((e) =>
      BLOB_UNKNOWN.has(e.code) || (kind === "index" && e.code === "MANIFEST_UNKNOWN")
    );
}
