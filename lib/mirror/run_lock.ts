/**
 * A lock file in the log dir so that two runs never overlap (cron plus a person at a laptop).
 * The file holds the owner's pid, host, start time and a random token. A lock whose process is
 * gone (same host, `ps -p` says so) or that is older than `staleAfterMs` is taken over, and the
 * caller is told so it can warn.
 *
 * Every step is atomic, so that of several runs started together exactly one proceeds:
 * - a lock appears complete or not at all: it is written under a unique temp name and hard-linked
 *   into place (link fails when the name exists), so nobody reads a half-written lock as stale;
 * - a stale lock is taken over under a short takeover guard (`<lock>.takeover`, made the same
 *   way): the guard's holder re-reads the lock, and only if it is still the stale one it judged
 *   renames its own lock over it (rename replaces in one step: the name never goes missing, so
 *   no third run can slip in); a run that finds the guard held by a live run is refused;
 * - after taking, the owner re-reads the lock and proceeds only if it holds its own token;
 * - release removes the lock only while it still holds the owner's token.
 * A guard left by a run killed inside the takeover (a few milliseconds) is stale once its pid is
 * gone or after a minute.
 *
 * The lock name is never followed through a symbolic link: a link there is refused.
 *
 * @module
 */
import { MirrorError } from "../errors.ts";
import { refuseSymlink } from "../safe_file.ts";

/** A held lock. Release it with `release()` or `await using`. */
export interface RunLock extends AsyncDisposable {
  /** Path of the lock file. */
  path: string;
  /** Set when a stale lock was taken over: who held it. */
  tookOverFrom?: string;
  release(): Promise<void>;
}

/** Options for {@link acquireRunLock}. */
export interface RunLockOptions {
  /** Lock file name inside the dir. @default ".bananna-bot.lock" */
  name?: string;
  /** A lock older than this is stale even if its pid seems alive. @default 24 h */
  staleAfterMs?: number;
  /** For tests: the pid to write. */
  pid?: number;
}

interface LockBody {
  pid: number;
  host: string;
  started: string;
  token?: string;
}

const GUARD_STALE_MS = 60_000;

/** Take the run lock in `dir`, or throw MirrorError MIRROR_LOCKED naming the holder. */
export async function acquireRunLock(dir: string, options: RunLockOptions = {}): Promise<RunLock> {
  const path = `${dir}/${options.name ?? ".bananna-bot.lock"}`;
  const staleAfterMs = options.staleAfterMs ?? 24 * 3600_000;
  const token = crypto.randomUUID();
  const body: LockBody = {
    pid: options.pid ?? Deno.pid,
    host: hostname(),
    started: new Date().toISOString(),
    token,
  };
  const text = JSON.stringify(body) + "\n";
  await Deno.mkdir(dir, { recursive: true });
  await refuseSymlink(path, "the run lock");
  const guard = `${path}.takeover`;
  await refuseSymlink(guard, "the run lock's takeover guard");
  for (let attempt = 0; attempt < 3; attempt++) {
    if (await createComplete(path, text, token)) return heldLock(path, token);
    const seen = await readText(path);
    if (seen === null) continue; // released meanwhile: try again
    const holder = parseBody(seen);
    if (holder && !(await isStale(holder, staleAfterMs))) throw lockedBy(path, holder);
    if (!(await createComplete(guard, text, token))) {
      const guardText = await readText(guard);
      const taker = guardText === null ? null : parseBody(guardText);
      if (guardText === null || (taker && !(await isStale(taker, GUARD_STALE_MS)))) {
        throw new MirrorError(
          "MIRROR_LOCKED",
          `Another bananna-bot run is taking over the stale lock ${path}${
            taker ? ` (pid ${taker.pid} on ${taker.host})` : ""
          }; it runs, this one stops`,
        );
      }
      // A guard left by a run killed mid-takeover.
      await Deno.remove(guard).catch(() => {});
      continue;
    }
    try {
      // Still the stale lock we judged? Then replace it in one step with ours.
      if ((await readText(path)) !== seen) continue;
      const tmp = `${path}.${token}.tmp`;
      await Deno.writeTextFile(tmp, text, { createNew: true });
      await Deno.rename(tmp, path);
    } finally {
      await removeIfOwned(guard, token);
    }
    // Re-check the owner after taking.
    const now = await readText(path);
    if (now !== null && parseBody(now)?.token === token) {
      return heldLock(
        path,
        token,
        holder
          ? `pid ${holder.pid} on ${holder.host}, started ${holder.started}`
          : "an unreadable lock file",
      );
    }
  }
  throw new MirrorError("MIRROR_LOCKED", `Could not take the lock ${path}`);
}

function heldLock(path: string, token: string, tookOverFrom?: string): RunLock {
  return {
    path,
    tookOverFrom,
    async release() {
      await removeIfOwned(path, token);
    },
    [Symbol.asyncDispose]() {
      return this.release();
    },
  };
}

function lockedBy(path: string, holder: LockBody): MirrorError {
  return new MirrorError(
    "MIRROR_LOCKED",
    `Another bananna-bot run holds ${path} (pid ${holder.pid} on ${holder.host}, started ${holder.started}); wait for it to finish, or remove the file if that run is gone`,
  );
}

/**
 * Make `path` appear with `text`, complete, unless it exists: write a unique temp file, then
 * hard-link it into place (atomic, fails when the name is taken). True when ours is in place.
 */
async function createComplete(path: string, text: string, token: string): Promise<boolean> {
  const tmp = `${path}.${token}.tmp`;
  await Deno.writeTextFile(tmp, text, { createNew: true });
  try {
    await Deno.link(tmp, path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.AlreadyExists) return false;
    // A file system without hard links: O_EXCL create (a reader may see it empty for a moment;
    // the takeover's re-read under the guard still tells it from a stale lock).
    try {
      await Deno.writeTextFile(path, text, { createNew: true });
      return true;
    } catch (fallback) {
      if (fallback instanceof Deno.errors.AlreadyExists) return false;
      throw error;
    }
  } finally {
    await Deno.remove(tmp).catch(() => {});
  }
}

/** Remove `path` only while it holds `token` (never a lock another run took over). */
async function removeIfOwned(path: string, token: string): Promise<void> {
  const text = await readText(path);
  if (text !== null && parseBody(text)?.token === token) await Deno.remove(path).catch(() => {});
}

/** The raw text of a lock file, or null when it is missing (a link is not followed). */
async function readText(path: string): Promise<string | null> {
  try {
    const info = await Deno.lstat(path);
    if (info.isSymlink) return "";
    return await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

function parseBody(text: string): LockBody | null {
  try {
    const parsed = JSON.parse(text);
    if (typeof parsed?.pid === "number" && typeof parsed?.started === "string") return parsed;
    return null;
  } catch {
    return null;
  }
}

async function isStale(holder: LockBody, staleAfterMs: number): Promise<boolean> {
  const age = Date.now() - Date.parse(holder.started);
  if (!(age < staleAfterMs)) return true;
  if (holder.host !== hostname()) return false;
  return !(await isAlive(holder.pid));
}

/**
 * Is process `pid` alive on this host? Asks `ps -p` (Deno needs --allow-all to stat /proc/<pid>,
 * and Deno.kill has no signal 0). Without `ps` we cannot tell and assume alive: age decides.
 */
async function isAlive(pid: number): Promise<boolean> {
  try {
    const out = await new Deno.Command("ps", {
      args: ["-p", String(pid)],
      stdout: "null",
      stderr: "null",
    })
      .output();
    return out.success;
  } catch {
    return true;
  }
}

/** This machine's name without --allow-sys: $HOSTNAME, /etc/hostname, or "localhost". */
export function hostname(): string {
  const fromEnv = Deno.env.get("HOSTNAME");
  if (fromEnv) return fromEnv;
  try {
    return Deno.readTextFileSync("/etc/hostname").trim() || "localhost";
  } catch {
    return "localhost";
  }
}
