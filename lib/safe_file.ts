/**
 * Files bananna-bot writes in its log dir (the log, the lock, the rotation marker and archives,
 * `last-report.json`, `.mirror-state.json`) are never written through a symbolic link planted
 * there: a link would let whoever can write the dir make the tool overwrite any file the tool can
 * write. Deno has no `O_NOFOLLOW`, so:
 * - whole files are written to a fresh unique temp name (`createNew`, which is `O_EXCL` and
 *   never follows a link) and renamed into place (rename replaces a link, never follows it);
 * - files opened in place (the log) are checked with `lstat` before and `fstat` after opening:
 *   a link, or a name swapped between the two, is refused with MIRROR_UNSAFE_PATH naming the path.
 *
 * Files it reads that it did not just write (an export's `bananna-export.json`, a layout's
 * `index.json` and `oci-layout`, shard reports, state files, the lock) are input from outside, as
 * untrusted as a registry's bodies: {@link readFileCapped} and {@link readJsonFile} are the one
 * reader. Only a regular file (a link to one is followed: a Kubernetes volume is links), checked
 * with `stat` before opening and `fstat` after (a FIFO, a device like `/dev/zero`, a directory, or
 * a name swapped in between is refused), at most `maxBytes` read (a file that grows while read is
 * refused too), then parsed with a zod schema into a checked type (never an `as` cast). Every
 * failure is a {@link FileInputError} naming the file; the caller turns it into its exit code.
 *
 * @module
 */
import type { z } from "./zod.ts";
import { MirrorError } from "./errors.ts";
import { checkWrite } from "./write_guard.ts";

/** A file from outside that cannot be used: missing, not a regular file, too large, or invalid. */
export class FileInputError extends Error {
  /** The file does not exist (callers may treat that as "none yet"). */
  readonly missing: boolean;
  constructor(message: string, options: { missing?: boolean; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = "FileInputError";
    this.missing = options.missing ?? false;
  }
}

/** What a reader of a file from outside is told. */
export interface ReadFileOptions {
  /** What the file is, for messages (`an export's bananna-export.json`). */
  what: string;
  /** Bytes it may have. */
  maxBytes: number;
}

/**
 * The bytes of a regular file of at most `maxBytes` bytes (see the module doc).
 *
 * @throws {FileInputError} naming the file when it is missing, not a regular file, swapped while
 *   opened, or larger than `maxBytes`
 */
export async function readFileCapped(path: string, options: ReadFileOptions): Promise<Uint8Array> {
  const { what, maxBytes } = options;
  const named = await statOrFail(path, what);
  refuseNonRegular(path, what, named);
  if (named.size > maxBytes) throw tooLarge(path, options, named.size);
  using file = await Deno.open(path, { read: true }).catch((cause) => {
    throw new FileInputError(`${path} (${what}) cannot be opened: ${reason(cause)}`, { cause });
  });
  const opened = await file.stat();
  refuseNonRegular(path, what, opened);
  if (opened.ino !== named.ino || opened.dev !== named.dev) {
    throw new FileInputError(`${path} (${what}) was replaced while it was opened; refused`);
  }
  const buffer = new Uint8Array(Math.min(opened.size, maxBytes) + 1);
  let length = 0;
  for (;;) {
    if (length === buffer.length) {
      if (length > maxBytes) throw tooLarge(path, options, length);
      break;
    }
    const n = await file.read(buffer.subarray(length));
    if (n === null) break;
    length += n;
  }
  return buffer.subarray(0, length);
}

/**
 * A JSON file from outside, read with {@link readFileCapped} and checked with `schema`.
 *
 * @throws {FileInputError} naming the file (and the first wrong field) when it cannot be read, is
 *   not JSON, or does not match the schema
 */
export async function readJsonFile<S extends z.ZodMiniType>(
  path: string,
  schema: S,
  options: ReadFileOptions,
): Promise<z.output<S>> {
  const bytes = await readFileCapped(path, options);
  let data: unknown;
  try {
    data = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (cause) {
    throw new FileInputError(`${path} is not JSON (${options.what} was expected)`, { cause });
  }
  const parsed = schema.safeParse(data);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue.path.map(String).join(".") || "the file";
    throw new FileInputError(`${path} is not ${options.what}: ${field}: ${issue.message}`);
  }
  return parsed.data;
}

async function statOrFail(path: string, what: string): Promise<Deno.FileInfo> {
  try {
    return await Deno.stat(path);
  } catch (cause) {
    if (cause instanceof Deno.errors.NotFound) {
      throw new FileInputError(`${path} does not exist (${what})`, { missing: true, cause });
    }
    throw new FileInputError(`${path} (${what}) cannot be read: ${reason(cause)}`, { cause });
  }
}

function refuseNonRegular(path: string, what: string, info: Deno.FileInfo): void {
  if (info.isFile) return;
  const kind = info.isDirectory
    ? "a directory"
    : info.isFifo
    ? "a FIFO"
    : info.isCharDevice
    ? "a character device"
    : info.isBlockDevice
    ? "a block device"
    : info.isSocket
    ? "a socket"
    : "not a regular file";
  throw new FileInputError(`${path} (${what}) is ${kind}, not a regular file; refused`);
}

function tooLarge(path: string, options: ReadFileOptions, size: number): FileInputError {
  return new FileInputError(
    `${path} (${options.what}) has ${size} bytes or more, more than its ${options.maxBytes}-byte cap; refused`,
  );
}

function reason(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Throw MIRROR_UNSAFE_PATH when `path` is a symbolic link (a missing path is fine). */
export async function refuseSymlink(path: string, what: string): Promise<void> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.lstat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return;
    throw error;
  }
  if (info.isSymlink) throw unsafe(path, what);
}

/**
 * Write `data` to `path` whole and durably: a unique temp file beside it (never through a link),
 * fsynced, then a rename over `path` (a link at `path` is replaced, its target untouched) and an
 * fsync of the directory. Asks the run's write guard first (lib/write_guard.ts) unless
 * `guarded` is false. The one whole-file writer: reports, state, metrics, mirror sets, the
 * rotation marker, the run lock's takeover and heartbeat, a layout's index.json and oci-layout,
 * bananna-export.json (under a {@link SafeDir} there).
 */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array | Iterable<string>,
  options: {
    /**
     * False only for the run lock's own file: the guard renews the lock through this very write,
     * so asking the guard there would ask it again. @default true
     */
    guarded?: boolean;
  } = {},
): Promise<void> {
  if (options.guarded ?? true) await checkWrite(path);
  const tmp = `${path}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  try {
    {
      using file = await Deno.open(tmp, { createNew: true, write: true, mode: 0o644 });
      if (data instanceof Uint8Array) await writeAll(file, data);
      else await writeText(file, typeof data === "string" ? [data] : data);
      await file.sync();
    }
    await Deno.rename(tmp, path);
    await syncDir(path.includes("/") ? path.slice(0, path.lastIndexOf("/")) || "/" : ".");
  } catch (error) {
    await Deno.remove(tmp).catch(() => {});
    throw error;
  }
}

/** fsync a directory (a rename in it is durable afterwards). */
export async function syncDir(dir: string): Promise<void> {
  using handle = await Deno.open(dir, { read: true });
  await handle.sync();
}

/**
 * A directory tree the tool writes (an export layout, its tar parts): the root resolved once
 * (`realPath`), and every directory below it created or checked with `lstat` right before a
 * file is written in it, so a symbolic link planted at `blobs` or `blobs/sha256` is refused
 * (MIRROR_UNSAFE_PATH naming it) instead of every blob landing in the link's target.
 */
export class SafeDir {
  /** The resolved root. */
  readonly root: string;
  #what: string;

  private constructor(root: string, what: string) {
    this.root = root;
    this.#what = what;
  }

  /** Create `path` when missing and resolve it once. */
  static async create(path: string, what: string): Promise<SafeDir> {
    await Deno.mkdir(path, { recursive: true });
    return new SafeDir(await Deno.realPath(path), what);
  }

  /**
   * The directory `rel` (`blobs/sha256`; "" is the root) under the root: each part created when
   * missing, and refused when it is a link or not a directory.
   *
   * @throws {MirrorError} MIRROR_UNSAFE_PATH naming the part
   */
  async dir(rel: string): Promise<string> {
    let path = this.root;
    for (const part of rel.split("/").filter((p) => p !== "")) {
      path = `${path}/${part}`;
      if (part === "." || part === "..") throw unsafeDir(path, this.#what, "not a plain name");
      await Deno.mkdir(path).catch((error) => {
        if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
      });
      const info = await Deno.lstat(path);
      if (info.isSymlink) throw unsafeDir(path, this.#what, "a symbolic link");
      if (!info.isDirectory) throw unsafeDir(path, this.#what, "not a directory");
    }
    return path;
  }

  /** Write `name` in the directory `rel` whole and durably ({@link writeFileAtomic}). */
  async writeFile(rel: string, name: string, data: string | Uint8Array): Promise<void> {
    await writeFileAtomic(`${await this.dir(rel)}/${name}`, data);
  }
}

function unsafeDir(path: string, what: string, kind: string): MirrorError {
  return new MirrorError(
    "MIRROR_UNSAFE_PATH",
    `${path} (in ${what}) is ${kind}; bananna-bot writes only into real directories under it. Remove it`,
  );
}

/**
 * Open `path` (for the log: append or read/write) without following a link: refuses a link at
 * `path`, and a file that is not the one `lstat` saw (swapped between the check and the open).
 */
export async function openNoFollow(
  path: string,
  options: Deno.OpenOptions,
  what: string,
): Promise<Deno.FsFile> {
  await refuseSymlink(path, what);
  const file = await Deno.open(path, options);
  try {
    const [opened, named] = await Promise.all([file.stat(), Deno.lstat(path)]);
    if (named.isSymlink || opened.ino !== named.ino || opened.dev !== named.dev) {
      throw unsafe(path, what);
    }
    return file;
  } catch (error) {
    file.close();
    throw error;
  }
}

function unsafe(path: string, what: string): MirrorError {
  return new MirrorError(
    "MIRROR_UNSAFE_PATH",
    `${path} (${what}) is a symbolic link; bananna-bot never writes through a link in its log dir. Remove it (or choose another log.dir)`,
  );
}

/** Write all of `bytes` (a write may take part of them). */
async function writeAll(file: ByteSink, bytes: Uint8Array): Promise<void> {
  for (let done = 0; done < bytes.length;) done += await file.write(bytes.subarray(done));
}

/** Where {@link writeText} writes: a file, or anything that takes bytes as a file does. */
export interface ByteSink {
  /** Write some of `bytes`; resolves with how many were written. */
  write(bytes: Uint8Array): Promise<number>;
}

/** Bytes of the buffer {@link writeText} encodes into. */
export const TEXT_BUFFER_BYTES = 64 * 1024;

/**
 * Write text chunks (a large report's, one entry each) as UTF-8 through one buffer of
 * {@link TEXT_BUFFER_BYTES}, written each time it is full: the text is never joined, not even
 * into pieces, and no chunk's bytes are allocated of their own. (Pieces joined from chunks are
 * strings that live through many young-generation collections under `--max-semi-space-size=1`,
 * so they were promoted and held the heap high at the end of a large run.)
 */
export async function writeText(file: ByteSink, chunks: Iterable<string>): Promise<void> {
  const encoder = new TextEncoder();
  const buffer = new Uint8Array(TEXT_BUFFER_BYTES);
  let used = 0;
  for (let chunk of chunks) {
    for (;;) {
      const { read, written } = encoder.encodeInto(chunk, buffer.subarray(used));
      used += written;
      if (read === chunk.length) break;
      // Full (a character that does not fit is never split): write, then the rest of the chunk.
      await writeAll(file, buffer.subarray(0, used));
      used = 0;
      chunk = chunk.slice(read);
    }
  }
  if (used > 0) await writeAll(file, buffer.subarray(0, used));
}
