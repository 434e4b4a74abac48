/**
 * An OCI image layout as one tar stream, optionally split into parts for removable media and
 * transfer size limits. Writing: {@link writeParts}; reading: `readParts` in
 * tar_parts_read.ts; sizes on the command line: {@link parsePartSize}.
 *
 * The tar is what `skopeo copy … oci-archive:` reads (shared/registry-protocols.md §9.2): entries
 * `oci-layout`, `blobs/`, `blobs/<alg>/`, `blobs/<alg>/<hex>`, other top-level files (e.g.
 * `bananna-export.json`), and `index.json` **last**, so a reader that stops early never sees an
 * index naming blobs it has not got. Names have no `./`, uid/gid are 0, names are ustar (PAX only
 * past 100 bytes, which `blobs/sha512/<hex>` needs). Split, the stream is cut at byte offsets:
 * `bananna-export.tar.000`, `.001`, … each of at most `partSize` bytes (a file may span parts),
 * and `cat bananna-export.tar.* > x.tar` gives the whole tar back.
 *
 * Why tar-stream (npm, mafintosh/tar-stream 3): a streaming tar encoder/parser and nothing else,
 * no file system access of its own, so this module decides the entry order, the headers and where
 * the bytes go (parts), and memory stays bounded by stream back-pressure: no blob and no part is
 * ever held whole in memory.
 *
 * @module
 */
import { verifyBlob } from "../registry/blob_verifier.ts";
import { pack as tarPack } from "tar-stream";
import { UsageError } from "../errors.ts";
import { type PartInfo, PartWriter, TAR_NAME, TarPartsError, waitDrain } from "./_part_files.ts";

export { type PartInfo, partName, TAR_NAME, TarPartsError } from "./_part_files.ts";

/** Smallest part size accepted (tests use tiny parts; real media want GiBs). */
const MIN_PART_SIZE = 1024;

/** Options for {@link writeParts}. */
export interface WritePartsOptions {
  /** Bytes per part; unset: one file, `bananna-export.tar`. At least {@link MIN_PART_SIZE}. */
  partSize?: number;
  /** Stops the write between chunks; the part being written is deleted. */
  signal?: AbortSignal;
  /** Top-level file names of the layout to leave out (e.g. `["bananna-export.json"]`). */
  exclude?: string[];
}

/** What {@link writeParts} wrote. */
export interface WritePartsResult {
  /** The parts in order (one entry, `bananna-export.tar`, without `partSize`). */
  parts: PartInfo[];
  /** Tar entries' names in archive order (directories end with `/`). */
  entries: string[];
  /** Total tar bytes (the sum of the part sizes). */
  bytes: number;
}

/** One entry to put in the tar: a directory, or a file on disk with its size. */
interface Entry {
  name: string;
  path?: string;
  size: number;
  mtime: Date;
}

const HEX: Record<string, RegExp> = { sha256: /^[a-f0-9]{64}$/, sha512: /^[a-f0-9]{128}$/ };
const TOP_LEVEL = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/**
 * Write the OCI layout at `layoutDir` as a tar into `outDir`: one file `bananna-export.tar`, or
 * with `partSize` the parts `bananna-export.tar.000`, `.001`, …, each written to a temp name,
 * fsynced and renamed, its sha256 computed while writing. Stale parts of an earlier write with a
 * higher number are removed. Blob files whose names are not digests (temp files) are left out,
 * and so are top-level names with `.tmp`, dot-files and `bananna-export.tar*` (so `outDir` may be
 * the layout itself); directories other than `blobs/` are not archived.
 *
 * @returns the parts (name, size, `sha256:<hex>`), the entries and the total size.
 * @throws {TarPartsError} `layout` when `oci-layout` or `index.json` is missing, or a file is a
 *   link or changed size while being read; `RangeError` on a bad `partSize`; the abort reason.
 */
export async function writeParts(
  layoutDir: string,
  outDir: string,
  options: WritePartsOptions = {},
): Promise<WritePartsResult> {
  const { partSize, signal } = options;
  if (
    partSize !== undefined && (!Number.isSafeInteger(partSize) || partSize < MIN_PART_SIZE)
  ) {
    throw new RangeError(`part size ${partSize} must be a whole number of bytes >= 1024`);
  }
  signal?.throwIfAborted();
  const entries = await layoutEntries(layoutDir, new Set(options.exclude ?? []));
  const pack = tarPack();
  const producing = (async () => {
    try {
      for (const entry of entries) {
        signal?.throwIfAborted();
        await addEntry(pack, entry, signal);
      }
      pack.finalize();
    } catch (error) {
      pack.destroy(error as Error);
      throw error;
    }
  })();
  producing.catch(() => {}); // awaited below; no unhandled rejection meanwhile
  const writer = new PartWriter(outDir, partSize);
  try {
    for await (const chunk of pack as AsyncIterable<Uint8Array>) {
      signal?.throwIfAborted();
      await writer.write(chunk);
    }
    await producing;
    const parts = await writer.finish();
    await removeStaleParts(outDir, partSize === undefined ? 0 : parts.length);
    return {
      parts,
      entries: entries.map((e) => e.name),
      bytes: parts.reduce((sum, p) => sum + p.size, 0),
    };
  } catch (error) {
    pack.destroy();
    await writer.abort();
    await producing.catch(() => {});
    const cause = await producing.then(() => error, (e: unknown) => e);
    throw signal?.aborted ? signal.reason : cause;
  }
}

/** Add one entry and wait until the packer took all of it. */
async function addEntry(
  pack: ReturnType<typeof tarPack>,
  entry: Entry,
  signal: AbortSignal | undefined,
): Promise<void> {
  const header = {
    name: entry.name,
    size: entry.size,
    mode: entry.path ? 0o644 : 0o755,
    mtime: entry.mtime,
    type: entry.path ? "file" as const : "directory" as const,
    uid: 0,
    gid: 0,
    uname: "",
    gname: "",
  };
  let sink!: ReturnType<typeof pack.entry>;
  const taken = new Promise<void>((resolve, reject) => {
    sink = pack.entry(header, (error) => error ? reject(error) : resolve());
  });
  taken.catch(() => {}); // awaited below, unless reading the file failed first
  sink.on("error", () => {}); // the entry callback above carries the error
  if (entry.path) {
    const file = await Deno.open(entry.path, { read: true });
    try {
      for await (const chunk of file.readable) {
        signal?.throwIfAborted();
        if (!sink.write(chunk)) await waitDrain(sink);
      }
    } catch (error) {
      sink.destroy(error as Error);
      throw error;
    }
    sink.end(null);
  }
  await taken.catch((error: unknown) => {
    throw new TarPartsError(
      "layout",
      entry.name,
      `Cannot add ${entry.path} to the tar: ${
        (error as Error).message
      } (did it change while being read?)`,
      { cause: error },
    );
  });
}

/** The layout's entries in archive order: oci-layout, blobs, other top-level files, index.json. */
async function layoutEntries(layoutDir: string, exclude: Set<string>): Promise<Entry[]> {
  const file = async (name: string): Promise<Entry> => {
    const path = `${layoutDir}/${name}`;
    let info: Deno.FileInfo;
    try {
      info = await Deno.lstat(path);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        throw new TarPartsError("layout", name, `${path} is missing: not an OCI image layout`);
      }
      throw error;
    }
    if (!info.isFile) {
      throw new TarPartsError("layout", name, `${path} is not a regular file (a link?): refused`);
    }
    return { name, path, size: info.size, mtime: whole(info.mtime) };
  };
  const dir = (name: string, info: Deno.FileInfo): Entry => ({
    name: `${name}/`,
    size: 0,
    mtime: whole(info.mtime),
  });
  const head = await file("oci-layout");
  const index = await file("index.json");
  const out: Entry[] = [head];
  const blobs = `${layoutDir}/blobs`;
  const blobsInfo = await Deno.lstat(blobs).catch(() => null);
  if (blobsInfo?.isDirectory) {
    out.push(dir("blobs", blobsInfo));
    const algorithms = (await names(blobs)).filter((n) => Object.hasOwn(HEX, n)).sort();
    for (const alg of algorithms) {
      const algInfo = await Deno.lstat(`${blobs}/${alg}`);
      if (!algInfo.isDirectory) continue;
      out.push(dir(`blobs/${alg}`, algInfo));
      const hexes = (await names(`${blobs}/${alg}`)).filter((n) => HEX[alg].test(n)).sort();
      for (const hex of hexes) out.push(await file(`blobs/${alg}/${hex}`));
    }
  }
  const others = (await names(layoutDir)).filter((n) =>
    n !== "oci-layout" && n !== "index.json" && n !== "blobs" && TOP_LEVEL.test(n) &&
    !n.includes(".tmp") && !n.startsWith(TAR_NAME) && !exclude.has(n)
  ).sort();
  for (const name of others) {
    const info = await Deno.lstat(`${layoutDir}/${name}`);
    if (info.isFile) out.push(await file(name));
  }
  out.push(index);
  return out;
}

async function names(dir: string): Promise<string[]> {
  const found: string[] = [];
  for await (const entry of Deno.readDir(dir)) found.push(entry.name);
  return found;
}

function whole(date: Date | null): Date {
  return new Date(Math.floor((date?.getTime() ?? 0) / 1000) * 1000);
}

/** Remove `bananna-export.tar.NNN` with NNN >= `from` (left by an earlier, longer write). */
async function removeStaleParts(outDir: string, from: number): Promise<void> {
  for (const name of await names(outDir)) {
    const match = /^bananna-export\.tar\.(\d{3,})$/.exec(name);
    if (match && Number(match[1]) >= from) await Deno.remove(`${outDir}/${name}`);
  }
}

const UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  k: 1e3,
  kb: 1e3,
  m: 1e6,
  mb: 1e6,
  g: 1e9,
  gb: 1e9,
  t: 1e12,
  tb: 1e12,
  ki: 2 ** 10,
  kib: 2 ** 10,
  mi: 2 ** 20,
  mib: 2 ** 20,
  gi: 2 ** 30,
  gib: 2 ** 30,
  ti: 2 ** 40,
  tib: 2 ** 40,
};

/**
 * A part size from the command line: bytes (`1048576`), or a number with a unit: decimal `K`,
 * `M`, `G`, `T` (and `KB`, …: powers of 1000) or binary `KiB`, `MiB`, `GiB`, `TiB` (and `Ki`, …:
 * powers of 1024), any case. Fractions are rounded down to whole bytes. FAT32 media hold files of
 * at most 4 GiB - 1 byte: `4GiB` does not fit there, `4G` (4,000,000,000) does.
 *
 * @example
 * ```ts
 * import { parsePartSize } from "./tar_parts.ts";
 * import assert from "node:assert/strict";
 * assert.equal(parsePartSize("4GiB"), 4 * 1024 ** 3);
 * assert.equal(parsePartSize("1G"), 1_000_000_000);
 * assert.equal(parsePartSize("500MiB"), 500 * 1024 ** 2);
 * ```
 * @throws {UsageError} naming the value: not a size, unknown unit, or below 1024 bytes.
 */
export function parsePartSize(value: string | number): number {
  const text = String(value).trim();
  const match = /^(\d+(?:\.\d+)?)\s*([A-Za-z]*)$/.exec(text);
  const unit = match ? UNITS[match[2].toLowerCase()] : undefined;
  if (!match || unit === undefined) {
    throw new UsageError(
      `--part-size "${value}" is not a size: use bytes or a number with a unit (500MiB, 4GiB, 4G)`,
    );
  }
  const bytes = Math.floor(Number(match[1]) * unit);
  if (!Number.isSafeInteger(bytes) || bytes < MIN_PART_SIZE) {
    throw new UsageError(
      `--part-size "${value}" is ${
        Number.isSafeInteger(bytes) ? `${bytes} bytes` : "too large"
      }: a part holds 1024 bytes at least and at most ${Number.MAX_SAFE_INTEGER}`,
    );
  }
  return bytes;
}

/**
 * Read every part back from `dir` and check its size and sha256 against what
 * {@link writeParts} computed while writing, before the layout they hold is removed.
 *
 * @throws {MirrorError} IMAGE_DIGEST_MISMATCH for a part whose bytes on disk differ (the layout
 *   is kept then).
 */
export async function verifyParts(
  dir: string,
  parts: readonly PartInfo[],
  signal?: AbortSignal,
): Promise<void> {
  for (const part of parts) {
    const path = `${dir}/${part.name}`;
    const file = await Deno.open(path, { read: true });
    const where = `${path} (read back; the layout is kept)`;
    const verified = file.readable.pipeThrough(
      verifyBlob({ digest: part.sha256, size: part.size }, { where }).stream,
    );
    for await (const _ of verified) signal?.throwIfAborted();
  }
}

/**
 * Remove from `dir` exactly the layout entries the (verified) parts hold: files first, then the
 * emptied folders (`blobs/sha256/`, `blobs/`). Nothing else in `dir` is touched.
 */
export async function removeTarred(dir: string, entries: readonly string[]): Promise<void> {
  for (const name of entries.filter((n) => !n.endsWith("/"))) {
    await Deno.remove(`${dir}/${name}`).catch((error) => {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    });
  }
  const folders = entries.filter((n) => n.endsWith("/")).sort((a, b) => b.length - a.length);
  for (const name of folders) {
    await Deno.remove(`${dir}/${name.slice(0, -1)}`).catch(() => {}); // kept when not empty
  }
}
