/**
 * An in-memory {@link ArtifactStore} for unit tests of code that reads and writes through stores
 * (signature verification, the supply chain): manifests by repository and reference, blobs by
 * digest, tags listed from what was put, no referrers API (readers fall back to the
 * `sha256-<hex>` tag, as against a layout). Every read is recorded in `reads`.
 *
 * ```ts ignore
 * const store = new MemoryStore("src.example");
 * const digest = store.putManifest("team/app", "1", { mediaType, bytes });
 * store.putBlob(payload);
 * ```
 *
 * @module
 */
import { sha256 } from "./images.ts";
import type { ArtifactStore, ManifestBytes, ManifestHead } from "../../lib/registry/image_store.ts";
import type { ReferrersOptions } from "../../lib/registry/_referrers_get.ts";

/** A store that lives in two maps. */
export class MemoryStore implements ArtifactStore {
  readonly host: string;
  /** `repository:ref` of every manifest or blob read, in order. */
  readonly reads: string[] = [];
  #manifests = new Map<string, ManifestBytes>();
  #blobs = new Map<string, Uint8Array>();

  /** An empty store named `host`. */
  constructor(host: string) {
    this.host = host;
  }

  /** Put a manifest under a tag (and its digest); returns the digest. */
  putManifest(repository: string, tag: string, m: { mediaType: string; bytes: Uint8Array }) {
    const digest = sha256(m.bytes);
    const value = { mediaType: m.mediaType, digest, bytes: m.bytes };
    this.#manifests.set(`${repository}:${tag}`, value);
    this.#manifests.set(`${repository}@${digest}`, value);
    return digest;
  }

  /** Put a blob; returns its digest. */
  putBlob(bytes: Uint8Array): string {
    const digest = sha256(bytes);
    this.#blobs.set(digest, bytes);
    return digest;
  }

  #manifest(repository: string, ref: string): ManifestBytes | null {
    const sep = ref.startsWith("sha256:") ? "@" : ":";
    this.reads.push(`${repository}${sep}${ref}`);
    return this.#manifests.get(`${repository}${sep}${ref}`) ?? null;
  }

  manifestHead(repository: string, ref: string): Promise<ManifestHead | null> {
    const m = this.#manifest(repository, ref);
    return Promise.resolve(
      m &&
        { mediaType: m.mediaType, digest: m.digest, size: m.bytes.length, headers: new Headers() },
    );
  }

  manifestGet(repository: string, ref: string): Promise<ManifestBytes | null> {
    return Promise.resolve(this.#manifest(repository, ref));
  }

  manifestPut(
    repository: string,
    ref: string,
    manifest: { mediaType: string; bytes: Uint8Array },
  ): Promise<string> {
    return Promise.resolve(this.putManifest(repository, ref, manifest));
  }

  blobHead(_repository: string, digest: string): Promise<number | null> {
    return Promise.resolve(this.#blobs.get(digest)?.length ?? null);
  }

  blobGet(
    repository: string,
    digest: string,
  ): Promise<{ size: number; body: ReadableStream<Uint8Array> }> {
    this.reads.push(`${repository}@${digest}`);
    const bytes = this.#blobs.get(digest);
    if (!bytes) return Promise.reject(new Error(`${this.host}/${repository}@${digest}: no blob`));
    return Promise.resolve({ size: bytes.length, body: ReadableStream.from([bytes]) });
  }

  blobMount(_repository: string, digest: string): Promise<boolean> {
    return Promise.resolve(this.#blobs.has(digest));
  }

  async blobUpload(
    _repository: string,
    blob: { digest: string; size: number },
    open: (signal: AbortSignal) => Promise<ReadableStream<Uint8Array>>,
  ): Promise<"uploaded"> {
    const bytes = new Uint8Array(
      await new Response(await open(new AbortController().signal)).arrayBuffer(),
    );
    if (sha256(bytes) !== blob.digest || bytes.length !== blob.size) {
      throw new Error(`${blob.digest}: the bytes do not match`);
    }
    this.#blobs.set(blob.digest, bytes);
    return "uploaded";
  }

  tagList(repository: string): Promise<string[]> {
    const prefix = `${repository}:`;
    return Promise.resolve(
      [...this.#manifests.keys()].filter((k) => k.startsWith(prefix)).map((k) =>
        k.slice(prefix.length)
      ),
    );
  }

  referrersGet(
    _repository: string,
    _digest: string,
    _options?: ReferrersOptions,
  ): Promise<number | null> {
    return Promise.resolve(null);
  }
}
