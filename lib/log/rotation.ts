/**
 * Time-based log rotation. Every `rotationDays` (measured from the ISO-8601 UTC timestamp in
 * `<dir>/.last_rotation`), the log is gzipped with CompressionStream into
 * `<stem>_YYYYMMDD_HHMMSS.log.gz` (local time of the rotation), then truncated, then the marker is
 * rewritten. A missing marker is created and nothing is rotated (first run).
 *
 * Nothing is lost, whatever step a crash interrupts: the archive is written to a temp name,
 * fsynced and renamed; only then is the log truncated; only then is the marker moved. A crash
 * before the rename leaves the old log (and a temp file, removed on the next run); after the
 * rename but before the truncate, a complete archive and the old log (the next run archives the
 * log again: a duplicate, never a loss). A lock file (`.rotation.lock`) keeps two runs from
 * rotating the same log twice; the marker is re-read after the lock is taken.
 *
 * @module
 */

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
  afterStep?: (step: "archived" | "truncated" | "marked") => void;
}

/** What {@link rotateIfDue} did. */
export interface RotateResult {
  rotated: boolean;
  /** Path of the new archive, when rotated. */
  archive?: string;
  /** Archives deleted by keepArchives. */
  deleted: string[];
}

const MARKER = ".last_rotation";
const LOCK = ".rotation.lock";
const DAY_MS = 86_400_000;

/** Rotate the log when the period has passed. Safe to call from several processes at once. */
export async function rotateIfDue(options: RotateOptions): Promise<RotateResult> {
  const clock = options.clock ?? (() => new Date());
  const { dir } = options;
  await Deno.mkdir(dir, { recursive: true });
  const marker = `${dir}/${MARKER}`;
  const last = await readMarker(marker);
  if (last === null) {
    await writeMarker(marker, clock());
    return { rotated: false, deleted: [] };
  }
  if (clock().getTime() - last.getTime() < options.rotationDays * DAY_MS) {
    return { rotated: false, deleted: [] };
  }
  const lock = await takeLock(`${dir}/${LOCK}`, clock);
  if (!lock) return { rotated: false, deleted: [] };
  try {
    // Another process may have rotated while we waited for the lock.
    const again = await readMarker(marker);
    if (again && clock().getTime() - again.getTime() < options.rotationDays * DAY_MS) {
      return { rotated: false, deleted: [] };
    }
    await removeStaleTemps(dir);
    const log = `${dir}/${options.file}`;
    const now = clock();
    let archive: string | undefined;
    const size = await Deno.stat(log).then((s) => s.size, () => 0);
    if (size > 0) {
      archive = await archiveName(dir, options.file, now);
      const tmp = `${archive}.tmp`;
      await gzipFile(log, tmp);
      await Deno.rename(tmp, archive);
      await syncDir(dir);
      options.afterStep?.("archived");
      await Deno.truncate(log, 0);
      options.afterStep?.("truncated");
    }
    await writeMarker(marker, now);
    options.afterStep?.("marked");
    const deleted = await pruneArchives(dir, options.file, options.keepArchives);
    return { rotated: archive !== undefined, archive, deleted };
  } finally {
    await Deno.remove(`${dir}/${LOCK}`).catch(() => {});
  }
}

/** Stream `src` through gzip into `dest`, then fsync `dest`. */
async function gzipFile(src: string, dest: string): Promise<void> {
  const input = await Deno.open(src, { read: true });
  const output = await Deno.open(dest, { write: true, create: true, truncate: true });
  try {
    await input.readable.pipeThrough(new CompressionStream("gzip")).pipeTo(
      new WritableStream({
        async write(chunk) {
          let offset = 0;
          while (offset < chunk.length) offset += await output.write(chunk.subarray(offset));
        },
      }),
    );
    await output.sync();
  } finally {
    output.close();
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
  const pattern = new RegExp(`^${escape(stemOf(file))}_(\\d{8}_\\d{6})(?:_(\\d+))?\\.log\\.gz$`);
  const found: { name: string; key: string }[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const match = pattern.exec(entry.name);
    if (entry.isFile && match) {
      found.push({ name: entry.name, key: `${match[1]}_${(match[2] ?? "0").padStart(6, "0")}` });
    }
  }
  return found.sort((a, b) => a.key.localeCompare(b.key)).map((f) => `${dir}/${f.name}`);
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
    if (entry.isFile && entry.name.endsWith(".log.gz.tmp")) {
      await Deno.remove(`${dir}/${entry.name}`).catch(() => {});
    }
  }
}

async function readMarker(path: string): Promise<Date | null> {
  try {
    const date = new Date((await Deno.readTextFile(path)).trim());
    return Number.isNaN(date.getTime()) ? null : date;
  } catch {
    return null;
  }
}

async function writeMarker(path: string, date: Date): Promise<void> {
  const tmp = `${path}.tmp-${Deno.pid}`;
  await Deno.writeTextFile(tmp, date.toISOString() + "\n");
  await Deno.rename(tmp, path);
}

/** Take the rotation lock; a lock older than 10 minutes is stale and taken over. */
async function takeLock(path: string, clock: () => Date): Promise<boolean> {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await Deno.writeTextFile(path, `${Deno.pid} ${clock().toISOString()}\n`, { createNew: true });
      return true;
    } catch (error) {
      if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
      const stat = await Deno.stat(path).catch(() => null);
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
