/**
 * A lock file in the log dir so that two runs never overlap (cron plus a person at a laptop).
 * The file holds the owner's pid, host and start time. A lock whose process is gone (same host,
 * `ps -p` says so) or that is older than `staleAfterMs` is taken over, and the caller is told so
 * it can warn.
 *
 * @module
 */
import { MirrorError } from "./errors.ts";

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
}

/** Take the run lock in `dir`, or throw MirrorError MIRROR_LOCKED naming the holder. */
export async function acquireRunLock(dir: string, options: RunLockOptions = {}): Promise<RunLock> {
  const path = `${dir}/${options.name ?? ".bananna-bot.lock"}`;
  const staleAfterMs = options.staleAfterMs ?? 24 * 3600_000;
  const body: LockBody = {
    pid: options.pid ?? Deno.pid,
    host: hostname(),
    started: new Date().toISOString(),
  };
  await Deno.mkdir(dir, { recursive: true });
  let tookOverFrom: string | undefined;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      await Deno.writeTextFile(path, JSON.stringify(body) + "\n", { createNew: true });
      const lock: RunLock = {
        path,
        tookOverFrom,
        async release() {
          await Deno.remove(path).catch(() => {});
        },
        [Symbol.asyncDispose]() {
          return this.release();
        },
      };
      return lock;
    } catch (error) {
      if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
    }
    const holder = await readHolder(path);
    if (holder && !(await isStale(holder, staleAfterMs))) {
      throw new MirrorError(
        "MIRROR_LOCKED",
        `Another bananna-bot run holds ${path} (pid ${holder.pid} on ${holder.host}, started ${holder.started}); wait for it to finish, or remove the file if that run is gone`,
      );
    }
    tookOverFrom = holder
      ? `pid ${holder.pid} on ${holder.host}, started ${holder.started}`
      : "an unreadable lock file";
    await Deno.remove(path).catch(() => {});
  }
  throw new MirrorError("MIRROR_LOCKED", `Could not take the lock ${path}`);
}

async function readHolder(path: string): Promise<LockBody | null> {
  try {
    const parsed = JSON.parse(await Deno.readTextFile(path));
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
