/**
 * The daemonless engine: copies straight from registry to registry over the OCI distribution
 * API, like skopeo and crane. Every platform of an index is kept and the destination digest
 * equals the source digest (exact bytes, never re-serialised).
 *
 * Order: config and layer blobs before their manifest, children before their index, the tagged
 * manifest last. Blobs that exist are skipped (HEAD); on the same registry they are mounted from
 * the source repository; otherwise the source GET streams into the destination upload. Right
 * before the tagged PUT the destination tag is checked again (crane's NoClobber placement): the
 * same digest means `exists`, another digest is IMAGE_TAG_DRIFT and nothing is written.
 *
 * Blob work is shared by every copy of the engine (one engine per run): one HEAD/mount/upload per
 * (destination registry, repository, blob), and likewise per child manifest; other copies that
 * need it wait for that one (see `_shared_work.ts` for why and for the failure rule). A manifest
 * PUT answered with BLOB_UNKNOWN (the registry lost a blob it had taken) re-checks the manifest's
 * blobs or children once, HEAD each and upload what is missing, then PUTs again before failing.
 *
 * @module
 */
import { MirrorError } from "../errors.ts";
import { type Descriptor, type ParsedManifest, parseManifest } from "../registry/manifest.ts";
import { formatReference, manifestRef, type Reference } from "../registry/reference.ts";
import type { ImageStore } from "../registry/image_store.ts";
import type { ManifestBytes } from "../registry/registry_client.ts";
import { RegistryError } from "../registry/registry_error.ts";
import { forEachLimited } from "../worker_pool.ts";
import { SharedWork } from "./_shared_work.ts";
import type { CopyRequest, CopyResult, Engine, EngineEvent } from "./engine.ts";

/** Options for {@link RegistryEngine}. */
export interface RegistryEngineOptions {
  /**
   * Where images of a registry host live: its client (one per host: one connection pool each),
   * or another {@link ImageStore} (an OCI layout for export and import).
   */
  clientFor: (registryHost: string) => ImageStore;
  /** Blobs copied at once per image. @default 4 */
  blobConcurrency?: number;
}

/** Copies over the distribution API. */
export class RegistryEngine implements Engine {
  readonly name = "registry" as const;
  readonly comparison = "manifest" as const;
  #clientFor: (host: string) => ImageStore;
  #blobConcurrency: number;
  #shared = new SharedWork();

  /** Create the engine. */
  constructor(options: RegistryEngineOptions) {
    this.#clientFor = options.clientFor;
    this.#blobConcurrency = options.blobConcurrency ?? 4;
  }

  /** Nothing to check: no daemon. */
  prepare(): Promise<void> {
    return Promise.resolve();
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
  #signal?: AbortSignal;
  #emit: (event: EngineEvent) => void;
  #blobConcurrency: number;
  #shared: SharedWork;
  bytesUploaded = 0;

  constructor(
    clientFor: (host: string) => ImageStore,
    request: CopyRequest,
    options: { blobConcurrency: number; shared: SharedWork },
  ) {
    this.#src = clientFor(request.source.registry);
    this.#dst = clientFor(request.destination.registry);
    this.#source = request.source;
    this.#destination = request.destination;
    this.#replaceDigest = request.replaceDigest;
    this.#signal = request.signal;
    this.#emit = request.onEvent ?? (() => {});
    this.#blobConcurrency = options.blobConcurrency;
    this.#shared = options.shared;
  }

  async run(): Promise<CopyResult> {
    const src = formatReference(this.#source);
    const top = await this.#src.manifestGet(
      this.#source.repository,
      manifestRef(this.#source),
      this.#signal,
    );
    if (!top) throw new MirrorError("IMAGE_NOT_FOUND", `Source image ${src} does not exist`);
    const early = await this.#checkDestination(top.digest);
    if (early) return early;
    const parsed = await this.#copyContent(top.bytes, top.mediaType, src);
    this.#signal?.throwIfAborted();
    const late = await this.#checkDestination(top.digest);
    if (late) return late;
    const digest = await this.#putManifest(manifestRef(this.#destination), top, parsed, src);
    this.#emit({
      kind: "step",
      code: "IMAGE_PUSHED",
      message: `${src} -> ${formatReference(this.#destination)} (${digest})`,
    });
    return { status: "pushed", digest, bytesUploaded: this.bytesUploaded };
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

  /**
   * Copy everything a manifest refers to (recursively for an index), children by digest; returns
   * the parsed manifest.
   */
  async #copyContent(
    bytes: Uint8Array,
    mediaType: string,
    where: string,
  ): Promise<ParsedManifest> {
    const parsed = parseManifest(bytes, mediaType, where);
    if (parsed.kind === "image") {
      await this.#copyBlobs([parsed.config, ...parsed.layers]);
      return parsed;
    }
    for (const child of parsed.manifests) {
      this.#signal?.throwIfAborted();
      await this.#copyChild(child, where);
    }
    return parsed;
  }

  /** Make a child manifest (and what it refers to) exist at the destination; shared per run. */
  async #copyChild(child: Descriptor, where: string): Promise<void> {
    await this.#shared.run(this.#key("manifest", child.digest), async () => {
      const repository = this.#destination.repository;
      if (await this.#dst.manifestHead(repository, child.digest, this.#signal)) return;
      const manifest = await this.#src.manifestGet(
        this.#source.repository,
        child.digest,
        this.#signal,
      );
      if (!manifest) {
        throw new MirrorError(
          "IMAGE_NOT_FOUND",
          `${where}: child manifest ${child.digest} is missing at the source`,
        );
      }
      const childWhere = `${where}@${child.digest}`;
      const parsed = await this.#copyContent(manifest.bytes, manifest.mediaType, childWhere);
      await this.#putManifest(child.digest, manifest, parsed, childWhere);
    }, this.#signal);
  }

  /**
   * PUT a manifest whose content was copied. A registry that answers BLOB_UNKNOWN lost (or never
   * linked) a blob or child it had taken: HEAD each one again, upload what is missing, PUT once
   * more; a second refusal fails.
   */
  async #putManifest(
    ref: string,
    manifest: ManifestBytes,
    parsed: ParsedManifest,
    where: string,
  ): Promise<string> {
    const repository = this.#destination.repository;
    try {
      return await this.#dst.manifestPut(repository, ref, manifest, this.#signal);
    } catch (error) {
      if (!isBlobUnknown(error, parsed.kind)) throw error;
      const parts = parsed.kind === "image" ? [parsed.config, ...parsed.layers] : parsed.manifests;
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

  /** The key of shared work: what it makes exist in the destination repository. */
  #key(kind: "blob" | "manifest", digest: string): string {
    return `${kind} ${this.#dst.host}/${this.#destination.repository}@${digest}`;
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
    const dstRepo = this.#destination.repository;
    if ((await this.#dst.blobHead(dstRepo, blob.digest, signal)) !== null) {
      this.#emit({ kind: "blob", digest: blob.digest, state: "skipped", total: blob.size });
      return;
    }
    if (this.#src.host === this.#dst.host) {
      if (await this.#dst.blobMount(dstRepo, blob.digest, this.#source.repository, signal)) {
        this.#emit({ kind: "blob", digest: blob.digest, state: "mounted", total: blob.size });
        return;
      }
    }
    this.#emit({ kind: "blob", digest: blob.digest, state: "started", total: blob.size });
    await this.#dst.blobUpload(
      dstRepo,
      { digest: blob.digest, size: blob.size },
      async (reading) =>
        (await this.#src.blobGet(this.#source.repository, blob.digest, reading)).body,
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
      },
    );
    // Counted once the registry took the blob: bytes of a try that failed are not "uploaded".
    this.bytesUploaded += blob.size;
    this.#emit({ kind: "blob", digest: blob.digest, state: "done", total: blob.size });
  }
}

/** Registry error codes of a manifest PUT that names a missing blob (or child, for an index). */
const BLOB_UNKNOWN = new Set(["MANIFEST_BLOB_UNKNOWN", "BLOB_UNKNOWN"]);

/** Did the registry refuse a manifest because a blob (or a child manifest) it names is missing? */
function isBlobUnknown(error: unknown, kind: ParsedManifest["kind"]): boolean {
  return error instanceof RegistryError &&
    error.errors.some((e) =>
      BLOB_UNKNOWN.has(e.code) || (kind === "index" && e.code === "MANIFEST_UNKNOWN")
    );
}
