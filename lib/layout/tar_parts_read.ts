/**
 * Read a tar written by `writeParts` (tar_parts.ts), split or not, into a staging directory:
 * {@link readParts}.
 *
 * Order of checks: every expected part must exist with its size before a single byte is
 * extracted (a missing part is an error naming it, and the staging dir stays as it was). Then
 * the parts stream in order through the tar parser (tar-stream) while each part's sha256 is
 * computed. A part's verdict is known only once it has been read whole, so every extracted file
 * waits under a temp name until every part its bytes (header included) lie in has a verdict: all
 * good -> renamed into place; one corrupt -> deleted and reported in `affected`. The caller
 * still checks each blob against its digest (a part checksum proves the transfer, not the
 * export). A corrupt byte in a tar header makes the parser fail: when a corrupt part explains it,
 * reading goes on from the first block after that part that looks like a layout entry's header
 * (ustar magic and a layout name; tar-stream then parses from there), so the files after it still
 * land. A file whose own header was unreadable cannot be named: it is missing from `files` and
 * from `affected`. Entry names are checked: only `oci-layout`, `index.json`, plain top-level file names
 * and `blobs/<alg>/<hex>` are written, so an archive cannot place a file outside the staging dir.
 *
 * @module
 */
import { extract as tarExtract } from "tar-stream";
import { syncDir } from "../safe_file.ts";
import {
  type PartInfo,
  PartReader,
  TAR_NAME,
  TarPartsError,
  waitDrain,
  writeAll,
} from "./_part_files.ts";

/** Options for {@link readParts}. */
export interface ReadPartsOptions {
  /**
   * The parts expected, in order, with size and sha256 (from `bananna-export.json`); their
   * names are looked up in the first part's directory. Unset: the parts are found by name
   * (`<first>.000`, `.001`, … while they exist, or the one file) and no checksum is compared.
   */
  parts?: readonly PartInfo[];
  /** Stops the read between chunks; temp files are removed. */
  signal?: AbortSignal;
}

/** What {@link readParts} extracted and what it refused. */
export interface ReadPartsResult {
  /** Entry names (relative to the staging dir, e.g. `blobs/sha256/<hex>`) now in place. */
  files: string[];
  /** Names of the parts whose sha256 differs from the expected one, in order. */
  corruptParts: string[];
  /** Entry names not written because some of their bytes lie in a corrupt part. */
  affected: Set<string>;
  /** The parts read: name, size and the sha256 computed while reading. */
  parts: PartInfo[];
}

const HEX: Record<string, RegExp> = { sha256: /^[a-f0-9]{64}$/, sha512: /^[a-f0-9]{128}$/ };
const TOP_LEVEL = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** A file extracted under a temp name, waiting for the verdicts of the parts it lies in. */
interface Pending {
  name: string;
  tmp: string;
  /** Byte range in the whole tar stream: from the end of the previous entry to its last byte. */
  start: number;
  end: number;
}

/**
 * Extract the tar whose first part is `firstPartPath` into `stagingDir` (created if missing).
 *
 * @returns the files written, the corrupt parts, the files left out because of them, and the
 *   parts with the sha256 computed.
 * @throws {TarPartsError} `missing`/`size` before anything is extracted when a part is absent or
 *   has another size than expected; `format` when the tar parser refuses the stream (the part
 *   it was reading is named) or an entry has a name or type a layout never has. The abort reason
 *   on abort.
 */
export async function readParts(
  firstPartPath: string,
  stagingDir: string,
  options: ReadPartsOptions = {},
): Promise<ReadPartsResult> {
  const { signal } = options;
  const slash = firstPartPath.lastIndexOf("/");
  const dir = slash >= 0 ? firstPartPath.slice(0, slash) || "/" : ".";
  const first = firstPartPath.slice(slash + 1);
  const expected = options.parts ?? await discoverParts(dir, first);
  await checkParts(dir, expected);
  signal?.throwIfAborted();
  await Deno.mkdir(stagingDir, { recursive: true });

  const verdicts: (boolean | undefined)[] = expected.map(() => undefined);
  const files = new Set<string>();
  const affected = new Set<string>();
  const pending: Pending[] = [];
  let settling = Promise.resolve();
  const reader = new PartReader(dir, expected, {
    signal,
    onHashed: (i, sha256) => {
      const want = expected[i].sha256;
      verdicts[i] = options.parts
        ? sha256 === (want.includes(":") ? want : `sha256:${want}`)
        : true;
      return settle();
    },
  });
  const settle = () => {
    settling = settling.then(async () => {
      for (const p of [...pending]) {
        const spans = expected.map((_, i) => i).filter((i) =>
          reader.starts[i] < p.end && reader.starts[i] + expected[i].size > p.start
        );
        if (spans.some((i) => verdicts[i] === false)) {
          await Deno.remove(p.tmp).catch(() => {});
          affected.add(p.name);
        } else if (spans.every((i) => verdicts[i] === true)) {
          await Deno.rename(p.tmp, `${stagingDir}/${p.name}`);
          files.add(p.name);
        } else continue;
        pending.splice(pending.indexOf(p), 1);
      }
    });
    return settling;
  };

  // Parse from offset 0; when the parser fails after a corrupt part, scan past that part for
  // the next header that names a layout file and parse again from there (resynchronise).
  let base: number | null = 0;
  let resume = 0;
  const broken = new Set<string>();
  try {
    while (base !== null) {
      const parser = new Parser(stagingDir, base, { pending, settle, broken });
      try {
        for await (const { chunk } of reader.from(base)) await parser.write(chunk);
        await parser.end();
        break;
      } catch (thrown) {
        // the parser's own error says more than a closed stream
        const error = (await parser.stop()) ?? thrown;
        if (
          signal?.aborted || (error instanceof TarPartsError && error.problem === "size") ||
          isFileSystemError(error)
        ) throw error; // not the archive's fault: no resynchronising past it
        const k = reader.partAt(Math.max(0, base + parser.fed - 1));
        await reader.hashUpTo(k);
        const j = verdicts.slice(0, k + 1).lastIndexOf(false);
        if (j < 0) throw formatError(error, expected[k]?.name ?? first, dir);
        const after = j + 1 < expected.length ? reader.starts[j + 1] : reader.total;
        resume = Math.max(Math.ceil(after / 512) * 512, base + 512);
      }
      base = await nextHeader(reader, resume);
    }
    await reader.hashUpTo(expected.length - 1);
    await settle();
    await syncDir(stagingDir);
  } catch (error) {
    await settling.catch(() => {});
    for (const p of pending) await Deno.remove(p.tmp).catch(() => {});
    throw signal?.aborted ? signal.reason : error;
  }
  for (const name of broken) if (!files.has(name)) affected.add(name);
  const corruptParts = expected.filter((_, i) => verdicts[i] === false).map((p) => p.name);
  const parts = expected.map((p, i) => ({
    name: p.name,
    size: p.size,
    sha256: reader.hashes[i] ?? "",
  }));
  return { files: [...files], corruptParts, affected, parts };
}

/** An error of the file system (disk full, permission, …), as opposed to the parser's. */
function isFileSystemError(error: unknown): boolean {
  return Object.values(Deno.errors).some((type) => error instanceof type);
}

function formatError(error: unknown, part: string, dir: string): TarPartsError {
  if (error instanceof TarPartsError) return error;
  if (error instanceof EntryRefused) {
    return new TarPartsError(
      "format",
      part,
      `Tar entry "${error.entry}" in part ${part} ${error.why}: not an OCI image layout written by bananna-bot`,
    );
  }
  return new TarPartsError(
    "format",
    part,
    `Cannot read the tar in part ${part} (${dir}): ${
      (error as Error).message
    } (corrupt or not a bananna-bot export)`,
    { cause: error },
  );
}

/**
 * Stream offset of the first 512-byte block at or after `from` (a multiple of 512) that looks
 * like the header of a layout entry (ustar magic and a layout name, or a PAX header), or null.
 * Used only after a corrupt part broke the parser; tar-stream then parses from that block and
 * a false match fails there and the scan moves on.
 */
async function nextHeader(reader: PartReader, from: number): Promise<number | null> {
  if (from >= reader.total) return null;
  let carry = new Uint8Array(0);
  let carryAt = from;
  for await (const { chunk, at } of reader.from(from)) {
    let bytes = chunk;
    let bytesAt = at;
    if (carry.length > 0) {
      bytes = new Uint8Array(carry.length + chunk.length);
      bytes.set(carry);
      bytes.set(chunk, carry.length);
      bytesAt = carryAt;
    }
    let offset = (512 - (bytesAt % 512)) % 512;
    for (; offset + 512 <= bytes.length; offset += 512) {
      if (bytesAt + offset >= from && looksLikeHeader(bytes.subarray(offset, offset + 512))) {
        return bytesAt + offset;
      }
    }
    carry = bytes.slice(offset);
    carryAt = bytesAt + offset;
  }
  return null;
}

const CANDIDATE =
  /^(?:\.\/)?(?:oci-layout|index\.json|blobs\/?|blobs\/sha(?:256|512)\/?|blobs\/sha256\/[a-f0-9]{64}|PaxHeader|[A-Za-z0-9][A-Za-z0-9._-]*\.json)$/;

function looksLikeHeader(block: Uint8Array): boolean {
  const text = (from: number, length: number) => {
    const field = block.subarray(from, from + length);
    const nul = field.indexOf(0);
    return new TextDecoder().decode(nul >= 0 ? field.subarray(0, nul) : field);
  };
  return text(257, 5) === "ustar" && CANDIDATE.test(text(0, 100));
}

/** A tar entry with a name or type a layout never has. */
class EntryRefused extends Error {
  constructor(readonly entry: string, readonly why: string) {
    super(`tar entry "${entry}" ${why}`);
  }
}

/** One tar-stream parser fed from stream offset `base`; entries land under temp names. */
class Parser {
  readonly #extract = tarExtract();
  readonly #consuming: Promise<void>;
  /** Bytes written into the parser. */
  fed = 0;

  constructor(
    stagingDir: string,
    base: number,
    state: { pending: Pending[]; settle: () => Promise<void>; broken: Set<string> },
  ) {
    this.#consuming = consume(this.#extract, stagingDir, base, state);
    this.#consuming.catch(() => {}); // awaited in write/end
  }

  async write(chunk: Uint8Array): Promise<void> {
    if (this.#extract.destroying) await this.#consuming.then(() => this.#fail());
    this.fed += chunk.length;
    if (!this.#extract.write(chunk)) {
      await Promise.race([waitDrain(this.#extract), this.#consuming.then(() => this.#fail())]);
    }
  }

  async end(): Promise<void> {
    this.#extract.end(null);
    await this.#consuming;
  }

  /** Stop parsing; returns the error the parser failed with, if any. */
  async stop(): Promise<unknown> {
    this.#extract.destroy();
    return await this.#consuming.then(() => undefined, (error: unknown) => error);
  }

  #fail(): never {
    throw new Error("the tar parser stopped early");
  }
}

/** Pull every entry from the parser: directories made, files written to temp names. */
async function consume(
  extract: ReturnType<typeof tarExtract>,
  stagingDir: string,
  base: number,
  state: { pending: Pending[]; settle: () => Promise<void>; broken: Set<string> },
): Promise<void> {
  let lastEnd = base;
  for await (const entry of extract) {
    const header = entry.header;
    const start = lastEnd;
    const dataStart = base +
      ((header as { byteOffset?: number }).byteOffset ?? entry.offset + 512);
    const end = dataStart + header.size;
    lastEnd = end + ((512 - (header.size % 512)) % 512);
    const name = entryName(header.name, header.type);
    if (header.type === "directory") {
      if (name !== "") await Deno.mkdir(`${stagingDir}/${name}`, { recursive: true });
      for await (const _ of entry) { /* no body */ }
      continue;
    }
    const slash = name.lastIndexOf("/");
    if (slash > 0) await Deno.mkdir(`${stagingDir}/${name.slice(0, slash)}`, { recursive: true });
    const tmp = `${stagingDir}/${name}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
    const file = await Deno.open(tmp, { write: true, createNew: true, mode: 0o644 });
    try {
      for await (const chunk of entry as AsyncIterable<Uint8Array>) await writeAll(file, chunk);
      await file.sync();
    } catch (error) {
      file.close();
      await Deno.remove(tmp).catch(() => {});
      state.broken.add(name);
      throw error;
    }
    file.close();
    state.pending.push({ name, tmp, start, end });
    await state.settle();
  }
}

/**
 * The entry's name relative to the staging dir ("" for the archive's own `./`), or a `format`
 * error: only layout names, never a path that leaves the dir, only files and directories.
 */
function entryName(raw: string, type: string): string {
  const name = raw.replace(/^(\.\/)+/, "").replace(/\/+$/, "");
  const refuse = (why: string) => new EntryRefused(raw, why);
  if (type !== "file" && type !== "directory") throw refuse(`is a ${type}`);
  const [top, alg, hex, ...rest] = name.split("/");
  if (type === "directory") {
    const ok = name === "" || name === "." || (top === "blobs" && hex === undefined &&
      (alg === undefined || Object.hasOwn(HEX, alg)));
    if (!ok) throw refuse("is an unexpected directory");
    return name === "." ? "" : name;
  }
  if (alg === undefined && TOP_LEVEL.test(top)) return name;
  if (
    top === "blobs" && alg !== undefined && Object.hasOwn(HEX, alg) && hex !== undefined &&
    HEX[alg].test(hex) && rest.length === 0
  ) return name;
  throw refuse("has a name a layout never has");
}

/** The parts by name: `<base>.NNN` upwards from the first while they exist, or the one file. */
async function discoverParts(dir: string, first: string): Promise<PartInfo[]> {
  const match = /^(.*)\.(\d{3,})$/.exec(first);
  if (!match) return [{ name: first, size: await sizeOf(dir, first), sha256: "" }];
  const parts: PartInfo[] = [];
  for (let n = Number(match[2]);; n++) {
    const name = `${match[1]}.${String(n).padStart(match[2].length, "0")}`;
    const size = await sizeOf(dir, name).catch(() => null);
    if (size === null) break;
    parts.push({ name, size, sha256: "" });
  }
  if (parts.length === 0) await sizeOf(dir, first); // throws: missing
  return parts;
}

async function sizeOf(dir: string, name: string): Promise<number> {
  try {
    const info = await Deno.stat(`${dir}/${name}`);
    if (info.isFile) return info.size;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  throw new TarPartsError("missing", name, `Part ${name} is missing in ${dir}`);
}

/** Every part present with its size, before anything is extracted. */
async function checkParts(dir: string, parts: readonly PartInfo[]): Promise<void> {
  if (parts.length === 0) {
    throw new TarPartsError("missing", TAR_NAME, `No part to read in ${dir}`);
  }
  const missing: string[] = [];
  for (const part of parts) {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(part.name)) {
      throw new TarPartsError("format", part.name, `Part name "${part.name}" is not a file name`);
    }
    const size = await sizeOf(dir, part.name).catch((error) => {
      if (error instanceof TarPartsError) return null;
      throw error;
    });
    if (size === null) missing.push(part.name);
    else if (size !== part.size) {
      throw new TarPartsError(
        "size",
        part.name,
        `Part ${part.name} in ${dir} has ${size} bytes, expected ${part.size} (truncated or another export's part); nothing was extracted`,
      );
    }
  }
  if (missing.length > 0) {
    throw new TarPartsError(
      "missing",
      missing[0],
      `Part${missing.length > 1 ? "s" : ""} ${
        missing.join(", ")
      } missing in ${dir} (${parts.length} expected); nothing was extracted`,
    );
  }
}
