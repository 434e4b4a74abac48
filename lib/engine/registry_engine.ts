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
 * @module
 */
import { MirrorError } from "../errors.ts";
import { type Descriptor, parseManifest } from "../registry/manifest.ts";
import { formatReference, manifestRef, type Reference } from "../registry/reference.ts";
import type { RegistryClient } from "../registry/registry_client.ts";
import type { CopyRequest, CopyResult, Engine, EngineEvent } from "./engine.ts";

/** Options for {@link RegistryEngine}. */
export interface RegistryEngineOptions {
  /** The client for a registry host (one per host: one connection pool each). */
  clientFor: (registryHost: string) => RegistryClient;
  /** Blobs copied at once per image. @default 4 */
  blobConcurrency?: number;
}

/** Copies over the distribution API. */
export class RegistryEngine implements Engine {
  readonly name = "registry" as const;
  readonly comparison = "manifest" as const;
  #clientFor: (host: string) => RegistryClient;
  #blobConcurrency: number;

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
    const job = new CopyJob(this.#clientFor, request, this.#blobConcurrency);
    return await job.run();
  }
}

class CopyJob {
  #src: RegistryClient;
  #dst: RegistryClient;
  #source: Reference;
  #destination: Reference;
  #signal?: AbortSignal;
  #emit: (event: EngineEvent) => void;
  #blobConcurrency: number;
  #blobsDone = new Map<string, Promise<void>>();
  bytesUploaded = 0;

  constructor(
    clientFor: (host: string) => RegistryClient,
    request: CopyRequest,
    blobConcurrency: number,
  ) {
    this.#src = clientFor(request.source.registry);
    this.#dst = clientFor(request.destination.registry);
    this.#source = request.source;
    this.#destination = request.destination;
    this.#signal = request.signal;
    this.#emit = request.onEvent ?? (() => {});
    this.#blobConcurrency = blobConcurrency;
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
    await this.#copyContent(top.bytes, top.mediaType, src);
    this.#signal?.throwIfAborted();
    const late = await this.#checkDestination(top.digest);
    if (late) return late;
    const dstRef = manifestRef(this.#destination);
    const digest = await this.#dst.manifestPut(
      this.#destination.repository,
      dstRef,
      top,
      this.#signal,
    );
    this.#emit({
      kind: "step",
      code: "IMAGE_PUSHED",
      message: `${src} -> ${formatReference(this.#destination)} (${digest})`,
    });
    return { status: "pushed", digest, bytesUploaded: this.bytesUploaded };
  }

  /** The never-overwrite rule: null when the tag is free. */
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
    throw new MirrorError(
      "IMAGE_TAG_DRIFT",
      `${formatReference(this.#destination)} holds ${existing.digest}, source ${
        formatReference(this.#source)
      } has ${digest}; left untouched`,
    );
  }

  /** Copy everything a manifest refers to (recursively for an index), children by digest. */
  async #copyContent(bytes: Uint8Array, mediaType: string, where: string): Promise<void> {
    const parsed = parseManifest(bytes, mediaType, where);
    if (parsed.kind === "image") {
      await this.#copyBlobs([parsed.config, ...parsed.layers]);
      return;
    }
    for (const child of parsed.manifests) {
      this.#signal?.throwIfAborted();
      const exists = await this.#dst.manifestHead(
        this.#destination.repository,
        child.digest,
        this.#signal,
      );
      if (exists) continue;
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
      await this.#copyContent(manifest.bytes, manifest.mediaType, `${where}@${child.digest}`);
      await this.#dst.manifestPut(
        this.#destination.repository,
        child.digest,
        manifest,
        this.#signal,
      );
    }
  }

  async #copyBlobs(blobs: Descriptor[]): Promise<void> {
    let next = 0;
    const worker = async () => {
      while (next < blobs.length) {
        const blob = blobs[next++];
        let done = this.#blobsDone.get(blob.digest);
        if (!done) {
          done = this.#copyBlob(blob);
          this.#blobsDone.set(blob.digest, done);
        }
        await done;
      }
    };
    await Promise.all(
      Array.from({ length: Math.min(this.#blobConcurrency, blobs.length) }, worker),
    );
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
