/**
 * Time-based log rotation. Every `rotationDays` (measured from the ISO-8601 UTC timestamp in
 * `<dir>/.last_rotation`), the log is gzipped with CompressionStream into
 * `<stem>_YYYYMMDD_HHMMSS.log.gz` (local time of the rotation), then the archived bytes are cut
 * from the log, then the marker is moved. A missing marker is created and nothing is rotated
 * (first run). Only the holder of the run lock calls this (lib/cli/mirror_command.ts); a lock
 * file (`.rotation.lock`) also keeps two callers from rotating at once, and the marker is re-read
 * after it is taken.
 *
 * Nothing is lost and nothing is archived twice, whatever step a crash interrupts. Before any
 * archive is written the marker records the rotation under way (`pending` line: the archive's
 * name, how many bytes of the log it takes, and the last bytes of that part); the archive is
 * written to a temp name, fsynced and renamed; then exactly those bytes are cut from the front of
 * the log (lines appended meanwhile stay); then the marker is rewritten without `pending`. The
 * next start finds a `pending` line and finishes that rotation instead of starting another:
 * - archive absent (crash before the rename): temp removed, the rotation runs afresh;
 * - archive present and the log still starts with the archived part (its last bytes match):
 *   the part is cut from the log, the marker is moved;
 * - archive present and the log already cut: only the marker is moved.
 * So a crash right after the rename leaves exactly one archive and no lost line.
 *
 * The log, the temps and the marker are never followed through a symbolic link (safe_file.ts).
 *
 * @module
 */
import { openNoFollow, readFileCapped, writeFileAtomic } from "../safe_file.ts";

/** Options for {@link rotateIfDue}. */
export interface RotateOptions {
  /** Absolute log dir. */
  dir: string;
  /** Log file name, e.g. `bananna-bot.log`. */
  file: string;
  rotationDays: number;
  /** Archives to keep (0 = all); the oldest go first. */
  keepArchives: number;
  /** The clock (tests inject one). @default () => new Date() */
  clock?: () => Date;
  /** Test hook: called after each step; throwing simulates a crash there. */
  afterStep?: (step: "pending" | "archived" | "truncated" | "marked") => void;
}

/** What {@link rotateIfDue} did. */
export interface RotateResult {
  rotated: boolean;
  /** Path of the new archive, when rotated. */
  archive?: string;
  /** Set when this call finished a rotation a crash had interrupted (archive already written). */
  resumed?: boolean;
  /** Archives deleted by keepArchives. */
  deleted: string[];
}

/** A rotation under way, as the marker records it. */
interface Pending {
  /** Archive file name (in the log dir). */
  archive: string;
  /** How many bytes of the log the archive holds (the front of the log). */
  bytes: number;
  /** When the rotation started: the next period starts here. */
  at: string;
  /** The last (up to 64) bytes of the archived part, base64: tells a cut log from an uncut one. */
  tail: string;
}

interface Marker {
  last: Date;
  pending?: Pending;
}

const MARKER = ".last_rotation";
const LOCK = ".rotation.lock";
const DAY_MS = 86_400_000;
const TAIL_BYTES = 64;

/** Rotate the log when the period has passed. Safe to call from several processes at once. */
export async function rotateIfDue(options: RotateOptions): Promise<RotateResult> {
  const clock = options.clock ?? (() => new Date());
  const { dir } = options;
  const none: RotateResult = { rotated: false, deleted: [] };
  await Deno.mkdir(dir, { recursive: true });
  const markerPath = `${dir}/${MARKER}`;
  const due = (marker: Marker) =>
    clock().getTime() - marker.last.getTime() >= options.rotationDays * DAY_MS;
  const first = await readMarker(markerPath);
  if (first === null) {
    await writeMarker(markerPath, { last: clock() });
    return none;
  }
  if (!first.pending && !due(first)) return none;
  const lock = await takeLock(`${dir}/${LOCK}`, clock);
  if (!lock) return none;
  try {
    // Another process may have rotated while we waited for the lock.
    const marker = await readMarker(markerPath);
    if (marker === null) return none;
    const log = `${dir}/${options.file}`;
    if (marker.pending) {
      const finished = await finishPending(dir, log, options, marker.pending);
      if (finished) {
        await writeMarker(markerPath, { last: new Date(marker.pending.at) });
        options.afterStep?.("marked");
        const deleted = await pruneArchives(dir, options.file, options.keepArchives);
        return { rotated: true, archive: finished, resumed: true, deleted };
      }
    }
    if (!due(marker)) return none;
    await removeStaleTemps(dir);
    const now = clock();
    const bytes = await sizeOf(log);
    let archive: string | undefined;
    if (bytes > 0) {
      archive = await archiveName(dir, options.file, now);
      const pending: Pending = {
        archive: archive.slice(dir.length + 1),
        bytes,
        at: now.toISOString(),
        tail: await tailOf(log, bytes),
      };
      await writeMarker(markerPath, { last: marker.last, pending });
      options.afterStep?.("pending");
      const tmp = `${archive}.tmp`;
      await gzipPrefix(log, bytes, tmp);
      await Deno.rename(tmp, archive);
      await syncDir(dir);
      options.afterStep?.("archived");
      await cutPrefix(log, bytes);
      options.afterStep?.("truncated");
    }
    await writeMarker(markerPath, { last: now });
    options.afterStep?.("marked");
    const deleted = await pruneArchives(dir, options.file, options.keepArchives);
    return { rotated: archive !== undefined, archive, deleted };
  } finally {
    await Deno.remove(`${dir}/${LOCK}`).catch(() => {});
  }
}

/**
 * Finish a rotation a crash interrupted: the archive path when it was (or now is) complete and
 * the log cut, null when its archive never landed (the caller rotates afresh).
 */
async function finishPending(
  dir: string,
  log: string,
  options: RotateOptions,
  pending: Pending,
): Promise<string | null> {
  const pattern = archivePattern(options.file);
  if (!pattern.test(pending.archive)) return null;
  const archive = `${dir}/${pending.archive}`;
  const info = await Deno.lstat(archive).catch(() => null);
  if (!info?.isFile) return null;
  const size = await sizeOf(log);
  if (size >= pending.bytes && (await tailOf(log, pending.bytes)) === pending.tail) {
    await cutPrefix(log, pending.bytes);
    options.afterStep?.("truncated");
  }
  return archive;
}

/** Size of the log (0 when missing); a link is refused. */
async function sizeOf(log: string): Promise<number> {
  try {
    const file = await openNoFollow(log, { read: true }, "the log");
    try {
      return (await file.stat()).size;
    } finally {
      file.close();
    }
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return 0;
    throw error;
  }
}

/** Base64 of the last (up to 64) bytes of the first `bytes` bytes of the log. */
async function tailOf(log: string, bytes: number): Promise<string> {
  const file = await openNoFollow(log, { read: true }, "the log");
  try {
    const start = Math.max(0, bytes - TAIL_BYTES);
    await file.seek(start, Deno.SeekMode.Start);
    const buf = new Uint8Array(bytes - start);
    let got = 0;
    while (got < buf.length) {
      const n = await file.read(buf.subarray(got));
      if (n === null) break;
      got += n;
    }
    return btoa(String.fromCharCode(...buf.subarray(0, got)));
  } finally {
    file.close();
  }
}

/** Gzip the first `bytes` bytes of the log into a new file `dest` (never a link), fsynced. */
async function gzipPrefix(log: string, bytes: number, dest: string): Promise<void> {
  const input = await openNoFollow(log, { read: true }, "the log");
  const output = await Deno.open(dest, { write: true, createNew: true });
  try {
    const gzip = new CompressionStream("gzip");
    const writer = gzip.writable.getWriter();
    const drained = gzip.readable.pipeTo(
      new WritableStream({
        async write(chunk) {
          let offset = 0;
          while (offset < chunk.length) offset += await output.write(chunk.subarray(offset));
        },
      }),
    );
    const buf = new Uint8Array(64 * 1024);
    let left = bytes;
    while (left > 0) {
      const n = await input.read(buf.subarray(0, Math.min(buf.length, left)));
      if (n === null) break;
      await writer.write(buf.slice(0, n));
      left -= n;
    }
    await writer.close();
    await drained;
    if (left > 0) throw new Error(`the log shrank while it was archived (${left} bytes short)`);
    await output.sync();
  } finally {
    input.close();
    output.close();
  }
}

/**
 * Cut the first `bytes` bytes from the log, in place (writers keep their append handles): lines
 * appended after the archived part (by another process, or since a crash) are kept.
 */
async function cutPrefix(log: string, bytes: number): Promise<void> {
  const file = await openNoFollow(log, { read: true, write: true }, "the log");
  try {
    const size = (await file.stat()).size;
    let rest = new Uint8Array(0);
    if (size > bytes) {
      rest = new Uint8Array(size - bytes);
      await file.seek(bytes, Deno.SeekMode.Start);
      let got = 0;
      while (got < rest.length) {
        const n = await file.read(rest.subarray(got));
        if (n === null) break;
        got += n;
      }
      rest = rest.subarray(0, got);
    }
    await file.truncate(0);
    await file.seek(0, Deno.SeekMode.Start);
    let offset = 0;
    while (offset < rest.length) offset += await file.write(rest.subarray(offset));
    await file.sync();
  } finally {
    file.close();
  }
}

async function syncDir(dir: string): Promise<void> {
  try {
    const handle = await Deno.open(dir, { read: true });
    try {
      await handle.sync();
    } finally {
      handle.close();
    }
  } catch {
    // Not every platform can fsync a directory; the rename is still atomic.
  }
}

function stamp(date: Date): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${date.getFullYear()}${p(date.getMonth() + 1)}${p(date.getDate())}_${p(date.getHours())}${
    p(date.getMinutes())
  }${p(date.getSeconds())}`;
}

function stemOf(file: string): string {
  return file.replace(/\.log$/, "");
}

async function archiveName(dir: string, file: string, date: Date): Promise<string> {
  const base = `${dir}/${stemOf(file)}_${stamp(date)}`;
  for (let n = 0;; n++) {
    const name = `${base}${n === 0 ? "" : `_${n}`}.log.gz`;
    try {
      await Deno.lstat(name);
    } catch {
      return name;
    }
  }
}

/** Archives of `file` in `dir`, oldest first (by the timestamp in the name). */
export async function listArchives(dir: string, file: string): Promise<string[]> {
  const pattern = archivePattern(file);
  const found: { name: string; key: string }[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const match = pattern.exec(entry.name);
    if (entry.isFile && match) {
      found.push({ name: entry.name, key: `${match[1]}_${(match[2] ?? "0").padStart(6, "0")}` });
    }
  }
  return found.sort((a, b) => a.key.localeCompare(b.key)).map((f) => `${dir}/${f.name}`);
}

function archivePattern(file: string): RegExp {
  return new RegExp(`^${escape(stemOf(file))}_(\\d{8}_\\d{6})(?:_(\\d+))?\\.log\\.gz$`);
}

async function pruneArchives(dir: string, file: string, keep: number): Promise<string[]> {
  if (keep <= 0) return [];
  const archives = await listArchives(dir, file);
  const doomed = archives.slice(0, Math.max(0, archives.length - keep));
  for (const path of doomed) await Deno.remove(path).catch(() => {});
  return doomed;
}

async function removeStaleTemps(dir: string): Promise<void> {
  for await (const entry of Deno.readDir(dir)) {
    if ((entry.isFile || entry.isSymlink) && entry.name.endsWith(".log.gz.tmp")) {
      await Deno.remove(`${dir}/${entry.name}`).catch(() => {});
    }
  }
}

/** The marker: line 1 the period start (ISO-8601), optional line 2 `pending {json}`. */
async function readMarker(path: string): Promise<Marker | null> {
  let text: string;
  try {
    if ((await Deno.lstat(path)).isSymlink) return null;
    const bytes = await readFileCapped(path, { what: "the rotation marker", maxBytes: 64 * 1024 });
    text = new TextDecoder().decode(bytes);
  } catch {
    return null;
  }
  const [first, second] = text.split("\n");
  const last = new Date(first.trim());
  if (Number.isNaN(last.getTime())) return null;
  const marker: Marker = { last };
  if (second?.startsWith("pending ")) {
    try {
      const p = JSON.parse(second.slice("pending ".length));
      if (
        typeof p?.archive === "string" && Number.isSafeInteger(p?.bytes) && p.bytes > 0 &&
        typeof p?.at === "string" && !Number.isNaN(Date.parse(p.at)) && typeof p?.tail === "string"
      ) {
        marker.pending = { archive: p.archive, bytes: p.bytes, at: p.at, tail: p.tail };
      }
    } catch {
      // A torn pending line cannot happen (temp + rename); a hand-edited one is ignored.
    }
  }
  return marker;
}

async function writeMarker(path: string, marker: Marker): Promise<void> {
  const pending = marker.pending ? `pending ${JSON.stringify(marker.pending)}\n` : "";
  await writeFileAtomic(path, marker.last.toISOString() + "\n" + pending);
}

/** Take the rotation lock; a lock older than 10 minutes is stale and taken over. */
async function takeLock(path: string, clock: () => Date): Promise<boolean> {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await Deno.writeTextFile(path, `${Deno.pid} ${clock().toISOString()}\n`, { createNew: true });
      return true;
    } catch (error) {
      if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
      const stat = await Deno.lstat(path).catch(() => null);
      const age = stat?.mtime ? Date.now() - stat.mtime.getTime() : Infinity;
      if (age < 10 * 60_000) return false;
      await Deno.remove(path).catch(() => {});
    }
  }
  return false;
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
