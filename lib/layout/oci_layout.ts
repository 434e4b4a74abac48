/**
 * An OCI image layout on disk (shared/registry-protocols.md §9.1), written so that a crash leaves
 * it valid (§9.6) and read so that a flipped byte is caught:
 *
 * - every blob (layers, configs, manifests) goes to a temp file in `blobs/<alg>/` (`.tmp-*`, a
 *   name readers ignore), counted and hashed while it streams, compared with its descriptor,
 *   fsynced and renamed to `blobs/<alg>/<hex>`, then the directory is fsynced; nothing is ever
 *   held whole in memory but a manifest;
 * - `index.json` is written last, read-modify-write to a temp file + fsync + rename, serialised in
 *   this process; `oci-layout` is written only when missing; one writer per layout: a lock file
 *   (`.bananna-layout.lock`, run_lock.ts's atomic lock);
 * - on open for writing, stray temp files of a crashed writer are removed; a blob already there
 *   counts as present only after it was hashed once (a mismatch is removed and written again);
 * - reads and writes go through the one verifying stream (registry/blob_verifier.ts): a blob
 *   whose bytes do not match its name fails IMAGE_DIGEST_MISMATCH naming the file, at once when
 *   it passes its descriptor's size, else at the end of its stream (before a consumer could take
 *   it as complete).
 *
 * Blobs that an earlier export carried (`--since`) are "known": a writer treats them as present
 * and does not write them again; a reader that needs one that is not on disk fails
 * IMAGE_PREDECESSOR_MISSING naming the export that carried it.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { z } from "../zod.ts";
import { MirrorError, UsageError } from "../errors.ts";
import { acquireRunLock, type RunLock } from "../mirror/run_lock.ts";
import { parseManifest } from "../registry/manifest.ts";
import type { ManifestBytes } from "../registry/image_store.ts";
import { validDigest } from "../registry/reference.ts";
import { verifyBlob } from "../registry/blob_verifier.ts";
import { DEFAULT_MAX_MANIFEST_BYTES } from "../registry/registry_client.ts";
import { FileInputError, readFileCapped, readJsonFile, SafeDir, syncDir } from "../safe_file.ts";
import { checkWrite } from "../write_guard.ts";
import { exists, fileSize, mismatch, removeStrays } from "./_layout_files.ts";

/** The annotation that names an index.json entry (the "tag"; here the full source reference). */
export const REF_NAME = "org.opencontainers.image.ref.name";

/** An index.json entry. */
export interface LayoutEntry {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

/** An earlier export that carried a blob (`--since`). */
export interface Predecessor {
  /** Its id (bananna-export.json `id`). */
  id: string;
  /** When it was made (ISO time), for messages. */
  created?: string;
}

/** A blob an earlier export carried: its size, that export, and the repositories that used it. */
export interface KnownBlob {
  size: number;
  from: Predecessor;
  /** Source repositories (`registry/repo`) whose images used it; absent: any. */
  repositories?: string[];
}

/** Options for {@link OciLayout.create} and {@link OciLayout.read}. */
export interface OciLayoutOptions {
  /** Blobs (and manifests) carried by earlier exports, by digest. */
  known?: ReadonlyMap<string, KnownBlob>;
  /** Blobs lost to a corrupt tar part: digest -> why (import of a split export). */
  lost?: ReadonlyMap<string, string>;
  /** Bytes a manifest may have. @default 4 MiB */
  maxManifestBytes?: number;
}

/** Bytes a layout's own files may have when read: `oci-layout` and `index.json`. */
export const MAX_LAYOUT_FILE_BYTES = { "oci-layout": 64 * 1024, "index.json": 4 * 1024 * 1024 };

const LAYOUT_FILE = "oci-layout";
const INDEX_FILE = "index.json";
const LOCK_NAME = ".bananna-layout.lock";
const INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json";

/** One OCI image layout directory. */
export class OciLayout implements AsyncDisposable {
  /** The directory. */
  readonly dir: string;
  #entries: LayoutEntry[];
  #annotations?: Record<string, string>;
  #lock: RunLock | null;
  #known: ReadonlyMap<string, KnownBlob>;
  #lost: ReadonlyMap<string, string>;
  #usage = new Map<string, Set<string>>();
  #verified = new Map<string, Promise<number | null>>();
  #indexQueue: Promise<void> = Promise.resolve();
  #maxManifestBytes: number;
  /** Where a writer writes: the root resolved once, no linked directory on the way. */
  #safe: SafeDir | null;

  private constructor(
    dir: string,
    state: {
      entries: LayoutEntry[];
      lock: RunLock | null;
      safe?: SafeDir;
      options: OciLayoutOptions;
    },
  ) {
    this.dir = dir;
    this.#safe = state.safe ?? null;
    this.#entries = state.entries;
    this.#lock = state.lock;
    this.#known = state.options.known ?? new Map();
    this.#lost = state.options.lost ?? new Map();
    this.#maxManifestBytes = state.options.maxManifestBytes ?? DEFAULT_MAX_MANIFEST_BYTES;
  }

  /**
   * Open `dir` for writing (created when missing): take the writer's lock, write `oci-layout`
   * when missing, remove stray temp files, keep the entries already in index.json (a resumed
   * export).
   *
   * @throws {MirrorError} MIRROR_LOCKED when another writer holds the layout.
   * @throws {UsageError} when `dir` holds something that is not a layout.
   */
  static async create(dir: string, options: OciLayoutOptions = {}): Promise<OciLayout> {
    const safe = await SafeDir.create(dir, `the layout ${dir}`);
    await safe.dir("blobs/sha256");
    const lock = await acquireRunLock(dir, { name: LOCK_NAME });
    try {
      if (!(await exists(`${dir}/${LAYOUT_FILE}`))) {
        await safe.writeFile("", LAYOUT_FILE, JSON.stringify({ imageLayoutVersion: "1.0.0" }));
      }
      await removeStrays(dir);
      const entries = (await exists(`${dir}/${INDEX_FILE}`)) ? await readIndex(dir) : [];
      return new OciLayout(dir, { entries, lock, safe, options });
    } catch (error) {
      await lock.release();
      throw error;
    }
  }

  /**
   * Open `dir` for reading: `oci-layout` and `index.json` must be there and valid.
   *
   * @throws {UsageError} naming the path when it is missing or not an OCI layout (exit 2).
   */
  static async read(dir: string, options: OciLayoutOptions = {}): Promise<OciLayout> {
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(dir);
    } catch {
      throw new UsageError(`${dir} does not exist (--from names an export directory)`);
    }
    if (!info.isDirectory) throw new UsageError(`${dir} is not a directory (an export layout)`);
    try {
      await readJsonFile(`${dir}/${LAYOUT_FILE}`, layoutFileSchema, {
        what: 'an OCI layout\'s {"imageLayoutVersion": ...}',
        maxBytes: MAX_LAYOUT_FILE_BYTES[LAYOUT_FILE],
      });
    } catch (error) {
      if (!(error instanceof FileInputError)) throw error;
      throw new UsageError(`${dir} is not an OCI image layout: ${error.message}`);
    }
    return new OciLayout(dir, { entries: await readIndex(dir), lock: null, options });
  }

  /** The index.json entries (a copy). */
  entries(): LayoutEntry[] {
    return this.#entries.map((e) => ({ ...e }));
  }

  /** The entry named `refName`, if any. */
  entry(refName: string): LayoutEntry | undefined {
    return this.#entries.find((e) => e.annotations?.[REF_NAME] === refName);
  }

  /**
   * The earlier export that carried `digest` for `repository`: only a blob that export's images of
   * the same source repository used counts, since only there an import of it is sure to have put
   * it (a layout cannot mount across repositories).
   */
  carriedFor(digest: string, repository: string): KnownBlob | undefined {
    const known = this.#known.get(digest);
    if (!known || (known.repositories && !known.repositories.includes(repository))) {
      return undefined;
    }
    return known;
  }

  /** Record that an image of source `repository` uses `digest` (for bananna-export.json). */
  use(digest: string, repository: string): void {
    let repos = this.#usage.get(digest);
    if (!repos) this.#usage.set(digest, repos = new Set());
    repos.add(repository);
  }

  /** The source repositories recorded with {@link use} for `digest`, sorted. */
  usage(digest: string): string[] {
    return [...this.#usage.get(digest) ?? []].sort();
  }

  /** The file of a blob (the digest is checked against the grammar first). */
  blobPath(digest: string): string {
    if (!validDigest(digest)) {
      throw new MirrorError("IMAGE_MANIFEST_INVALID", `${digest}: not a digest`);
    }
    const [alg, hex] = digest.split(":");
    return `${this.dir}/blobs/${alg}/${hex}`;
  }

  /**
   * The size of a blob on disk, or null. A writer hashes a blob it did not write once before
   * trusting it (a bad one is removed); a reader only looks.
   */
  hasBlob(digest: string): Promise<number | null> {
    const path = this.blobPath(digest);
    if (!this.#lock) return fileSize(path);
    let found = this.#verified.get(digest);
    if (!found) {
      found = (async () => {
        const size = await fileSize(path);
        if (size === null) return null;
        const file = await Deno.open(path);
        try {
          for await (const _ of file.readable.pipeThrough(verifyBlob({ digest, size }).stream));
          return size;
        } catch (error) {
          if (!(error instanceof MirrorError)) throw error;
          await Deno.remove(path).catch(() => {});
          return null;
        }
      })();
      this.#verified.set(digest, found);
      found.then((size) => size === null && this.#verified.delete(digest), () => {});
    }
    return found;
  }

  /** A blob's bytes as a stream, hashed on the way; the end fails on a mismatch. */
  async openBlob(digest: string, size?: number): Promise<{ size: number; body: ReadableStream }> {
    const path = this.blobPath(digest);
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) throw this.#missing(digest, path);
      throw error;
    }
    const info = await file.stat();
    if (!info.isFile) {
      file.close();
      throw new MirrorError("IMAGE_DIGEST_MISMATCH", `${path} is not a regular file; refused`);
    }
    const actualSize = info.size;
    const expected = size ?? actualSize;
    return {
      size: actualSize,
      body: file.readable.pipeThrough(
        verifyBlob({ digest, size: expected }, { where: path }).stream,
      ),
    };
  }

  /** A manifest's exact bytes from its blob, verified and capped. */
  async readManifest(
    digest: string,
    context: { mediaType: string; where: string },
  ): Promise<ManifestBytes> {
    const { mediaType, where } = context;
    const path = this.blobPath(digest);
    const size = await fileSize(path);
    if (size === null) throw this.#missing(digest, path);
    if (size > this.#maxManifestBytes) {
      throw new MirrorError(
        "IMAGE_MANIFEST_TOO_LARGE",
        `${where}: ${path} has ${size} bytes, more than the ${this.#maxManifestBytes}-byte manifest cap`,
      );
    }
    const bytes = await readFileCapped(path, {
      what: `the manifest of ${where}`,
      maxBytes: this.#maxManifestBytes,
    }).catch((error) => {
      if (!(error instanceof FileInputError)) throw error;
      throw error.missing
        ? this.#missing(digest, path)
        : new MirrorError("IMAGE_MANIFEST_TOO_LARGE", error.message);
    });
    const actual = `${digest.split(":")[0]}:${
      createHash(digest.split(":")[0]).update(bytes).digest("hex")
    }`;
    if (actual !== digest) throw mismatch(path, { digest, actual });
    const parsed = parseManifest(bytes, mediaType, `${where} (${path})`);
    return { mediaType: parsed.mediaType, digest, bytes };
  }

  /**
   * Write a blob from `stream` crash-safely: temp file, size and digest checked while streaming,
   * fsync, rename, directory fsync. A blob already present is not written again.
   */
  async writeBlob(
    blob: { digest: string; size: number },
    stream: ReadableStream<Uint8Array>,
    options: { signal?: AbortSignal; onProgress?: (bytes: number) => void } = {},
  ): Promise<void> {
    this.blobPath(blob.digest); // checked against the digest grammar
    const safe = this.#writable();
    const [alg, hex] = blob.digest.split(":");
    const dir = await safe.dir(`blobs/${alg}`);
    const path = `${dir}/${hex}`;
    const tmp = `${dir}/.tmp-${hex.slice(0, 12)}-${crypto.randomUUID().slice(0, 8)}`;
    const verified = stream.pipeThrough(
      verifyBlob(blob, { onProgress: options.onProgress }).stream,
    );
    try {
      {
        using file = await Deno.open(tmp, { createNew: true, write: true, mode: 0o644 });
        for await (const chunk of verified) {
          options.signal?.throwIfAborted();
          for (let off = 0; off < chunk.length;) off += await file.write(chunk.subarray(off));
        }
        await file.sync();
      }
      await checkWrite(path);
      await Deno.rename(tmp, path);
      await syncDir(dir);
      this.#verified.set(blob.digest, Promise.resolve(blob.size));
    } catch (error) {
      await verified.cancel().catch(() => {});
      await Deno.remove(tmp).catch(() => {});
      throw error;
    }
  }

  /**
   * Add (or replace) the entry with the same ref.name and rewrite index.json crash-safely. Call
   * only once everything the entry names is on disk.
   */
  setEntry(entry: LayoutEntry): Promise<void> {
    this.#writable();
    const name = entry.annotations?.[REF_NAME];
    const run = this.#indexQueue.then(async () => {
      this.#entries = this.#entries.filter((e) => !name || e.annotations?.[REF_NAME] !== name);
      this.#entries.push(entry);
      await this.#writeIndex();
    });
    this.#indexQueue = run.catch(() => {});
    return run;
  }

  /** Write index.json when it is missing (a layout with no image is still a valid layout). */
  async ensureIndex(): Promise<void> {
    this.#writable();
    await this.#indexQueue;
    if (!(await exists(`${this.dir}/${INDEX_FILE}`))) {
      await (this.#indexQueue = this.#indexQueue.then(() => this.#writeIndex()));
    }
  }

  /** Set the index's own annotations (written with the next entry, or now). */
  async setIndexAnnotations(annotations: Record<string, string>): Promise<void> {
    this.#annotations = annotations;
    await (this.#indexQueue = this.#indexQueue.then(() => this.#writeIndex()));
  }

  /** Release the writer's lock. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.#indexQueue;
    await this.#lock?.release();
    this.#lock = null;
  }

  async #writeIndex(): Promise<void> {
    const index: Record<string, unknown> = {
      schemaVersion: 2,
      mediaType: INDEX_MEDIA_TYPE,
      manifests: this.#entries,
    };
    if (this.#annotations) index.annotations = this.#annotations;
    await this.#writable().writeFile("", INDEX_FILE, JSON.stringify(index, null, 2) + "\n");
  }

  #writable(): SafeDir {
    if (!this.#lock || !this.#safe) throw new Error(`${this.dir} was opened for reading`);
    return this.#safe;
  }

  #missing(digest: string, path: string): MirrorError {
    const lost = this.#lost.get(digest);
    if (lost) return new MirrorError("IMAGE_DIGEST_MISMATCH", lost);
    const known = this.#known.get(digest);
    if (known) {
      return new MirrorError(
        "IMAGE_PREDECESSOR_MISSING",
        `${digest} is not in ${this.dir}: the earlier export ${known.from.id}${
          known.from.created ? ` (created ${known.from.created})` : ""
        } carried it; import that export first`,
      );
    }
    return new MirrorError("IMAGE_NOT_FOUND", `${path} is missing from the layout`);
  }
}

/** `oci-layout`. */
const layoutFileSchema = z.object({ imageLayoutVersion: z.string() });

/** `index.json`: the descriptors this tool reads (other fields are ignored). */
const indexSchema = z.object({
  manifests: z.array(z.object({
    mediaType: z.string(),
    digest: z.string().check(z.refine(validDigest, "not a digest")),
    size: z.number().check(z.int(), z.nonnegative(), z.lte(Number.MAX_SAFE_INTEGER)),
    annotations: z.optional(z.record(z.string(), z.string())),
  })),
});

/**
 * The entries of `<dir>/index.json`, read as a file from outside (a regular file under its cap,
 * every descriptor checked).
 *
 * @throws {UsageError} naming the file and the field (exit 2)
 */
async function readIndex(dir: string): Promise<LayoutEntry[]> {
  try {
    const index = await readJsonFile(`${dir}/${INDEX_FILE}`, indexSchema, {
      what: "an OCI image index (a layout's index.json)",
      maxBytes: MAX_LAYOUT_FILE_BYTES[INDEX_FILE],
    });
    return index.manifests;
  } catch (error) {
    if (!(error instanceof FileInputError)) throw error;
    throw new UsageError(error.message);
  }
}
