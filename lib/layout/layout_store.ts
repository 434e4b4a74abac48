/**
 * An {@link ImageStore} over an OCI layout (oci_layout.ts), so the registry engine copies
 * registry -> layout (export) and layout -> registry (import) with its one copy code.
 *
 * A layout has no repositories: an image is an index.json entry whose
 * `org.opencontainers.image.ref.name` is the full source reference (`registry/repo:tag`, or
 * `registry/repo@sha256:...` for a digest-pinned image). A view maps the engine's
 * `(repository, ref)` to that name with {@link LayoutViewOptions.nameOf}: the export's view strips
 * the plan's namespace, the import's view for a source host prefixes the host. Manifests are blobs;
 * a tag PUT writes its manifest blob, then its entry (with the view's annotations) into index.json.
 * Signatures travel the same way: cosign tags (`sha256-<hex>.sig`, `.att`, `.sbom`) are entries
 * like image tags; referrers are manifest blobs listed by their fallback tag entry `sha256-<hex>`
 * (a layout has no referrers API: {@link LayoutStore.referrersGet} answers null).
 *
 * @module
 */
import { MirrorError } from "../errors.ts";
import type {
  ArtifactStore,
  ManifestBytes,
  ManifestHead,
  UploadOptions,
  UploadOutcome,
} from "../registry/image_store.ts";
import { sha256Digest } from "../registry/manifest.ts";
import { isPinnedDigestTag, isValidTag, pinnedDigestTag } from "../registry/reference.ts";
import { type LayoutEntry, type OciLayout, REF_NAME } from "./oci_layout.ts";

/** How a view names images. */
export interface LayoutViewOptions {
  /** The host this view stands for (the engine's `clientFor` key). */
  host: string;
  /** The ref.name prefix (`registry/repo`) of an engine repository. */
  nameOf: (repository: string) => string;
  /** Annotations for the entry named `refName` (besides ref.name). */
  annotations?: (refName: string) => Record<string, string>;
  /** Digest-addressed names that get an index entry too (digest-pinned images). */
  pinned?: ReadonlySet<string>;
  /**
   * A manifest counts as present only when its blob is on disk, never because an earlier export
   * carried it (`export --since`: the layout holds the manifests of every image it lists, so its
   * import can write a new tag of an old digest; config and layer blobs stay inherited).
   */
  carryManifests?: boolean;
}

/** The full ref.name of `ref` (tag or digest) in a repository named `name`. */
function refNameOf(name: string, ref: string): string {
  return `${name}${ref.includes(":") ? "@" : ":"}${ref}`;
}

/** A view of a layout as one registry host. */
export class LayoutStore implements ArtifactStore {
  /** The host this view stands for. */
  readonly host: string;
  #layout: OciLayout;
  #options: LayoutViewOptions;

  /** A view of `layout`. */
  constructor(layout: OciLayout, options: LayoutViewOptions) {
    this.#layout = layout;
    this.#options = options;
    this.host = options.host;
  }

  /**
   * The tags of a repository: entries named `<nameOf(repository)>:<tag>`, each checked against
   * the tag grammar like a registry's tag list (index.json is input from outside).
   *
   * @throws {MirrorError} IMAGE_MANIFEST_INVALID naming index.json for a tag outside the grammar
   */
  tags(repository: string): string[] {
    const prefix = `${this.#options.nameOf(repository)}:`;
    const tags = this.#layout.entries()
      .map((e) => e.annotations?.[REF_NAME] ?? "")
      .filter((name) => name.startsWith(prefix) && !name.slice(prefix.length).includes("@"))
      .map((name) => name.slice(prefix.length));
    for (const tag of tags) {
      if (!isValidTag(tag)) {
        throw new MirrorError(
          "IMAGE_MANIFEST_INVALID",
          `${this.#layout.dir}/index.json: ${
            JSON.stringify(`${prefix}${tag}`.slice(0, 300))
          } names a tag that does not follow the tag grammar`,
        );
      }
    }
    return tags;
  }

  /** The tags of a repository (the supply-chain copy's listing: cosign and fallback tags too). */
  tagList(repository: string): Promise<string[]> {
    return Promise.resolve().then(() => this.tags(repository));
  }

  /**
   * A layout has no referrers API (null): referrers travel as blobs plus the fallback tag
   * `sha256-<hex>` index entry, as regclient's `ocidir://` keeps them.
   */
  referrersGet(): Promise<number | null> {
    return Promise.resolve(null);
  }

  /** A tag's entry, or a manifest blob by digest (on disk or carried by an earlier export). */
  async manifestHead(repository: string, tagOrDigest: string): Promise<ManifestHead | null> {
    const ref = this.#digestOfPinnedTag(repository, tagOrDigest);
    const found = await this.#resolve(repository, ref);
    if (!found) return null;
    return {
      mediaType: found.mediaType,
      digest: found.digest,
      size: found.size,
      headers: new Headers(),
    };
  }

  /** A manifest's bytes, verified against its digest. */
  async manifestGet(repository: string, tagOrDigest: string): Promise<ManifestBytes | null> {
    const ref = this.#digestOfPinnedTag(repository, tagOrDigest);
    const name = refNameOf(this.#options.nameOf(repository), ref);
    const entry = this.#layout.entry(name);
    const digest = entry?.digest ?? (ref.includes(":") ? ref : null);
    if (!digest) return null;
    return await this.#layout.readManifest(digest, {
      mediaType: entry?.mediaType ?? "",
      where: name,
    });
  }

  /** Write the manifest blob, then (for a tag or a pinned digest) its index.json entry. */
  async manifestPut(
    repository: string,
    tagOrDigest: string,
    manifest: { mediaType: string; bytes: Uint8Array },
  ): Promise<string> {
    const ref = this.#digestOfPinnedTag(repository, tagOrDigest);
    const digest = await sha256Digest(manifest.bytes);
    const size = manifest.bytes.length;
    if ((await this.#manifestPresent(digest, repository)) === null) {
      await this.#layout.writeBlob({ digest, size }, ReadableStream.from([manifest.bytes]));
    }
    const name = refNameOf(this.#options.nameOf(repository), ref);
    if (!ref.includes(":") || this.#options.pinned?.has(name)) {
      const entry: LayoutEntry = {
        mediaType: manifest.mediaType,
        digest,
        size,
        annotations: { [REF_NAME]: name, ...this.#options.annotations?.(name) },
      };
      await this.#layout.setEntry(entry);
    }
    return digest;
  }

  /** A blob's size when on disk or carried by an earlier export. */
  blobHead(repository: string, digest: string): Promise<number | null> {
    return this.#present(digest, repository);
  }

  /** A blob as a stream, hashed on the way (a mismatch fails its end, naming the file). */
  blobGet(
    _repository: string,
    digest: string,
  ): Promise<{ size: number; body: ReadableStream<Uint8Array> }> {
    return this.#layout.openBlob(digest);
  }

  /** A layout has no repositories to mount between. */
  blobMount(): Promise<boolean> {
    return Promise.resolve(false);
  }

  /** Write a blob crash-safely (temp, verify, fsync, rename). */
  async blobUpload(
    _repository: string,
    blob: { digest: string; size: number },
    open: (signal: AbortSignal) => Promise<ReadableStream<Uint8Array>>,
    options: UploadOptions = {},
  ): Promise<UploadOutcome> {
    const reading = new AbortController();
    const signal = options.signal
      ? AbortSignal.any([options.signal, reading.signal])
      : reading.signal;
    try {
      await this.#layout.writeBlob(blob, await open(signal), options);
      return "uploaded";
    } finally {
      reading.abort();
    }
  }

  /**
   * A layout names a digest-pinned image by its digest (`registry/repo@sha256:...`), so the tag a
   * registry gets for it (reference.ts pinnedDigestTag) stands for that digest here.
   */
  #digestOfPinnedTag(repository: string, ref: string): string {
    if (!isPinnedDigestTag(ref)) return ref;
    const prefix = `${this.#options.nameOf(repository)}@`;
    for (const name of this.#options.pinned ?? []) {
      const digest = name.slice(prefix.length);
      if (name.startsWith(prefix) && pinnedDigestTag(digest) === ref) return digest;
    }
    return ref;
  }

  /** On disk, or carried for this repository by an earlier export; records the use. */
  async #present(digest: string, repository: string): Promise<number | null> {
    const name = this.#options.nameOf(repository);
    this.#layout.use(digest, name);
    return (await this.#layout.hasBlob(digest)) ?? this.#layout.carriedFor(digest, name)?.size ??
      null;
  }

  /** A manifest blob: as {@link #present}, or only on disk with `carryManifests`. */
  #manifestPresent(digest: string, repository: string): Promise<number | null> {
    if (!this.#options.carryManifests) return this.#present(digest, repository);
    this.#layout.use(digest, this.#options.nameOf(repository));
    return this.#layout.hasBlob(digest);
  }

  async #resolve(
    repository: string,
    ref: string,
  ): Promise<{ mediaType: string; digest: string; size: number } | null> {
    const name = refNameOf(this.#options.nameOf(repository), ref);
    const entry = this.#layout.entry(name);
    if (entry) return entry;
    if (!ref.includes(":")) return null;
    const size = await this.#manifestPresent(ref, repository);
    if (size === null) return null;
    if ((await this.#layout.hasBlob(ref)) === null) return { mediaType: "", digest: ref, size };
    try {
      const manifest = await this.#layout.readManifest(ref, { mediaType: "", where: name });
      return { mediaType: manifest.mediaType, digest: ref, size };
    } catch (error) {
      if (error instanceof MirrorError) return null;
      throw error;
    }
  }
}
