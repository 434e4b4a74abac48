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
 * export). Entry names are checked: only `oci-layout`, `index.json`, plain top-level file names
 * and `blobs/<alg>/<hex>` are written, so an archive cannot place a file outside the staging dir.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { extract as tarExtract } from "tar-stream";
import {
  type PartInfo,
  syncDir,
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

  const starts: number[] = [];
  let total = 0;
  for (const part of expected) {
    starts.push(total);
    total += part.size;
  }
  const verdicts: (boolean | undefined)[] = expected.map(() => undefined);
  const computed: PartInfo[] = [];
  const files: string[] = [];
  const affected = new Set<string>();
  const pending: Pending[] = [];
  let settling = Promise.resolve();
  const settle = () => {
    settling = settling.then(async () => {
      for (const p of [...pending]) {
        const spans = expected.map((_, i) => i).filter((i) =>
          starts[i] < p.end && starts[i] + expected[i].size > p.start
        );
        if (spans.some((i) => verdicts[i] === false)) {
          await Deno.remove(p.tmp).catch(() => {});
          affected.add(p.name);
        } else if (spans.every((i) => verdicts[i] === true)) {
          await Deno.rename(p.tmp, `${stagingDir}/${p.name}`);
          files.push(p.name);
        } else continue;
        pending.splice(pending.indexOf(p), 1);
      }
    });
    return settling;
  };

  const extract = tarExtract();
  let current = expected[0]?.name ?? first;
  const consuming = consume(extract, stagingDir, pending, settle, () => current);
  consuming.catch(() => {}); // awaited below
  try {
    for (const [i, part] of expected.entries()) {
      current = part.name;
      const hash = createHash("sha256");
      let size = 0;
      const file = await Deno.open(`${dir}/${part.name}`, { read: true });
      for await (const chunk of file.readable) {
        signal?.throwIfAborted();
        hash.update(chunk);
        size += chunk.length;
        if (!extract.write(chunk)) await waitDrain(extract);
      }
      if (size !== part.size) {
        throw new TarPartsError(
          "size",
          part.name,
          `Part ${part.name} changed while being read (${size} bytes, expected ${part.size})`,
        );
      }
      const sha256 = hash.digest("hex");
      computed.push({ name: part.name, size, sha256 });
      verdicts[i] = options.parts ? sha256 === part.sha256 : true;
      await settle();
    }
    extract.end(null);
    await consuming;
    await settle();
    await syncDir(stagingDir);
  } catch (error) {
    extract.destroy();
    const failure = await consuming.then(() => error, (e: unknown) => e);
    await settling.catch(() => {});
    for (const p of pending) await Deno.remove(p.tmp).catch(() => {});
    if (signal?.aborted) throw signal.reason;
    if (failure instanceof TarPartsError) throw failure;
    if (error instanceof TarPartsError) throw error;
    throw new TarPartsError(
      "format",
      current,
      `Cannot read the tar in part ${current} (${dir}): ${
        (failure as Error).message
      } (corrupt or not a bananna-bot export)`,
      { cause: failure },
    );
  }
  const corruptParts = expected.filter((_, i) => verdicts[i] === false).map((p) => p.name);
  return { files, corruptParts, affected, parts: computed };
}

/** Pull every entry from the parser: directories made, files written to temp names. */
async function consume(
  extract: ReturnType<typeof tarExtract>,
  stagingDir: string,
  pending: Pending[],
  settle: () => Promise<void>,
  currentPart: () => string,
): Promise<void> {
  let lastEnd = 0;
  for await (const entry of extract) {
    const header = entry.header;
    const start = lastEnd;
    const dataStart = (header as { byteOffset?: number }).byteOffset ?? entry.offset + 512;
    const end = dataStart + header.size;
    lastEnd = end + ((512 - (header.size % 512)) % 512);
    const name = entryName(header.name, header.type, currentPart());
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
      throw error;
    }
    file.close();
    pending.push({ name, tmp, start, end });
    await settle();
  }
}

/**
 * The entry's name relative to the staging dir ("" for the archive's own `./`), or a `format`
 * error: only layout names, never a path that leaves the dir, only files and directories.
 */
function entryName(raw: string, type: string, part: string): string {
  const name = raw.replace(/^(\.\/)+/, "").replace(/\/+$/, "");
  const refuse = (why: string) =>
    new TarPartsError(
      "format",
      part,
      `Tar entry "${raw}" in part ${part} ${why}: not an OCI image layout written by bananna-bot`,
    );
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
