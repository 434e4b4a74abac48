/**
 * ImageStore: the surface the registry engine copies through, so that a registry and an OCI image
 * layout on disk are two places images live and one copy code moves them (like containers/image's
 * transports). {@link RegistryClient} implements it over the distribution API; the layout store
 * (lib/layout/oci_layout.ts) implements it over a directory.
 *
 * The contract is the client's: absence is a value (null / false), every other failure throws a
 * MirrorError with a catalogue code; manifests are exact bytes with their digest verified; blob
 * bodies stream and are checked against their descriptor (size and digest) while they flow.
 *
 * @module
 */
import type { ReferrersOptions } from "./_referrers_get.ts";
import type { UploadOptions, UploadOutcome } from "./blob_upload.ts";

export type { UploadOptions, UploadOutcome };

/** A manifest as a HEAD reports it (see manifest.ts's `Descriptor` for the parsed kind). */
export interface ManifestHead {
  mediaType: string;
  digest: string;
  size: number;
  /** The HEAD's response headers (the plan reads Docker Hub's `ratelimit-*` there). */
  headers: Headers;
}

/** A manifest's exact bytes. */
export interface ManifestBytes {
  mediaType: string;
  digest: string;
  bytes: Uint8Array;
}

/** Where images live, as the registry engine reads and writes them. */
export interface ImageStore {
  /** The registry name as in references (the layout: a name of its own). */
  readonly host: string;
  /** A manifest's descriptor, or null when absent. */
  manifestHead(repository: string, ref: string, signal?: AbortSignal): Promise<ManifestHead | null>;
  /** A manifest's exact bytes, digest verified; null when absent. */
  manifestGet(repository: string, ref: string, signal?: AbortSignal): Promise<ManifestBytes | null>;
  /** Store exact manifest bytes under `ref` (tag or digest); returns the digest. */
  manifestPut(
    repository: string,
    ref: string,
    manifest: { mediaType: string; bytes: Uint8Array },
    signal?: AbortSignal,
  ): Promise<string>;
  /** A blob's size, or null when absent. */
  blobHead(repository: string, digest: string, signal?: AbortSignal): Promise<number | null>;
  /** A blob as a stream. */
  blobGet(
    repository: string,
    digest: string,
    signal?: AbortSignal,
  ): Promise<{ size: number; body: ReadableStream<Uint8Array> }>;
  /** Mount a blob from another repository of the same store. True when mounted. */
  blobMount(
    repository: string,
    digest: string,
    from: string,
    signal?: AbortSignal,
  ): Promise<boolean>;
  /**
   * Store a blob from a fresh stream per attempt; size and digest checked while it flows. With
   * `mountFrom`, a store that mounts the blob from there sends nothing ("mounted").
   */
  blobUpload(
    repository: string,
    blob: { digest: string; size: number },
    open: (signal: AbortSignal) => Promise<ReadableStream<Uint8Array>>,
    options?: UploadOptions,
  ): Promise<UploadOutcome>;
  /**
   * True once an upload with `mountFrom` set to its own repository answers whether the blob is
   * there already (the store mounts a blob into the repository that holds it: 201), so the HEAD
   * before an upload can be left out. Absent or false: HEAD first.
   */
  mountsInPlace?(): boolean;
}

/**
 * An {@link ImageStore} that also lists a repository's tags and answers the OCI 1.1 referrers API
 * (null: no API, read the fallback tag): what the supply-chain copy and signature verification
 * read through. {@link RegistryClient} is one; so is the layout store (tags from index.json; no
 * referrers API, so the fallback tag `sha256-<hex>` is used, as regclient does).
 */
export interface ArtifactStore extends ImageStore {
  /** All tags of a repository; none when absent, or IMAGE_NOT_FOUND with `absent: "error"`. */
  tagList(
    repository: string,
    signal?: AbortSignal,
    options?: { absent?: "empty" | "error" },
  ): Promise<string[]>;
  /**
   * The referrers of `digest`: each unparsed page handed to `onPage` as it comes (never all held
   * at once); the number of pages, or null when the store has no referrers API.
   */
  referrersGet(
    repository: string,
    digest: string,
    options?: ReferrersOptions,
  ): Promise<number | null>;
  /**
   * Repositories the run will read soon, so a registry's token server can be asked for several
   * at once (a layout has none).
   */
  expectReads?(repositories: Iterable<string>): void;
}

/** Does `store` list tags and answer referrers (a registry client, a layout store)? */
export function isArtifactStore(store: ImageStore): store is ArtifactStore {
  const s = store as Partial<ArtifactStore>;
  return typeof s.tagList === "function" && typeof s.referrersGet === "function";
}
