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
 * @module
 */
import { MirrorError } from "./errors.ts";
import { checkWrite } from "./write_guard.ts";

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
 * Write `data` to `path` whole: a unique temp file beside it (never through a link), then a
 * rename over `path` (a link at `path` is replaced, its target untouched). Asks the run's write
 * guard first (lib/write_guard.ts).
 */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array | Iterable<string>,
): Promise<void> {
  await checkWrite(path);
  const tmp = `${path}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  try {
    if (typeof data === "string" || data instanceof Uint8Array) {
      const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
      await Deno.writeFile(tmp, bytes, { createNew: true, mode: 0o644 });
    } else {
      // Chunks (a large report): written in pieces of about 256 KiB, never joined whole.
      const encoder = new TextEncoder();
      using file = await Deno.open(tmp, { createNew: true, write: true, mode: 0o644 });
      for (const piece of textPieces(data)) {
        const bytes = encoder.encode(piece);
        for (let done = 0; done < bytes.length;) done += await file.write(bytes.subarray(done));
      }
    }
    await Deno.rename(tmp, path);
  } catch (error) {
    await Deno.remove(tmp).catch(() => {});
    throw error;
  }
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

/** Small text chunks joined into pieces of about 256 KiB: one write each, none the whole text. */
export function* textPieces(chunks: Iterable<string>): Generator<string> {
  let piece = "";
  for (const chunk of chunks) {
    piece += chunk;
    if (piece.length >= 256 * 1024) {
      yield piece;
      piece = "";
    }
  }
  if (piece) yield piece;
}
