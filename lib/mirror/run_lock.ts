/**
 * A lock file in the log dir so that two runs never overlap (cron plus a person at a laptop).
 * The file holds the owner's pid, host, start time, a random token and a heartbeat (a lease):
 * `renewed`, the time the owner last rewrote it, and `leaseMs`, how long that stays good. The
 * owner rewrites it every `heartbeatMs` (an unref'd timer: it never keeps the process alive;
 * release stops it). A lock is stale, taken over, and the caller told so it can warn, when:
 * - its process is gone (same host, `ps -p` says so): at once;
 * - its heartbeat is older than its lease: from any host (a pod killed without SIGTERM, whose
 *   successor has another host name and cannot ask for the pid);
 * - it has no heartbeat (written by an older version) and is older than `staleAfterMs`.
 * Hosts compare `renewed` with their own clock: the lease must exceed their clock skew.
 *
 * A heartbeat rewrites the lock under the takeover guard (below) and only while the lock holds
 * the owner's token; finding another token there, the owner has lost the lock (taken over while
 * it was stalled): it stops its heartbeat, tells {@link RunLock.watch}'s callback, and never
 * removes or rewrites the new owner's lock.
 *
 * A heartbeat alone is not enough: a run paused past its lease (SIGSTOP, a frozen VM) resumes with
 * writes already under way, before its next heartbeat. So every write first asks
 * {@link RunLock.verify} (through lib/write_guard.ts): while the last confirmed renewal is younger
 * than half the lease nobody can have taken the lock (others wait a whole lease); older, the lock is
 * renewed (re-read under the guard) right then, and a lock that holds another token, is gone, or
 * cannot be renewed is lost: `verify` throws MIRROR_LOCK_LOST and the watcher is told.
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
import { unrefTimeout } from "../unref_timer.ts";
import { FileInputError, readFileCapped, refuseSymlink, writeFileAtomic } from "../safe_file.ts";

/** Bytes a lock file may have (a small JSON body; anything else is not a lock this tool wrote). */
const MAX_LOCK_BYTES = 64 * 1024;

/** A held lock. Release it with `release()` or `await using`. */
export interface RunLock extends AsyncDisposable {
  /** Path of the lock file. */
  path: string;
  /** Set when a stale lock was taken over: who held it. */
  tookOverFrom?: string;
  /** Stop the heartbeat and remove the lock if it still holds this run's token. */
  release(): Promise<void>;
  /**
   * Be told about the heartbeat: `lost` (another run replaced the lock; the heartbeat stops) or
   * `failed` (a renewal could not be written; the next one tries again). Events from before the
   * call are delivered at once.
   */
  watch(onEvent: (event: HeartbeatEvent) => void): void;
  /**
   * Resolve when this run still holds the lock (see the module notes); throw MIRROR_LOCK_LOST when
   * another run took it over, it is gone, or it cannot be renewed. Call it right before a write.
   */
  verify(what: string): Promise<void>;
  /** True once the lock was found lost (by the heartbeat or by {@link verify}). */
  readonly lost: boolean;
}

/** What the heartbeat reports (see {@link RunLock.watch}). */
export interface HeartbeatEvent {
  kind: "lost" | "failed";
  message: string;
}

/** Options for {@link acquireRunLock}. */
export interface RunLockOptions {
  /** Lock file name inside the dir. @default ".bananna-bot.lock" */
  name?: string;
  /** A lock older than this is stale even if its pid seems alive. @default 24 h */
  staleAfterMs?: number;
  /**
   * How long a heartbeat stays good: a lock not renewed for this long is stale from any host.
   * Written into the lock; a reader uses the holder's own, this one when the lock has none.
   * @default 5 min
   */
  leaseMs?: number;
  /** How often the holder renews the lock. @default leaseMs / 10 */
  heartbeatMs?: number;
  /** For tests: the pid to write. */
  pid?: number;
}

interface LockBody {
  pid: number;
  host: string;
  started: string;
  token?: string;
  /** The last heartbeat (absent in locks of older versions). */
  renewed?: string;
  /** The holder's lease. */
  leaseMs?: number;
}

/** The default lease of a lock's heartbeat. */
const DEFAULT_LEASE_MS = 5 * 60_000;

const GUARD_STALE_MS = 60_000;

/** Take the run lock in `dir`, or throw MirrorError MIRROR_LOCKED naming the holder. */
export async function acquireRunLock(dir: string, options: RunLockOptions = {}): Promise<RunLock> {
  const path = `${dir}/${options.name ?? ".bananna-bot.lock"}`;
  const staleAfterMs = options.staleAfterMs ?? 24 * 3600_000;
  const leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
  const heartbeatMs = options.heartbeatMs ?? Math.max(10, Math.floor(leaseMs / 10));
  const stale = { staleAfterMs, leaseMs };
  const token = crypto.randomUUID();
  const now = new Date().toISOString();
  const body: LockBody = {
    pid: options.pid ?? Deno.pid,
    host: hostname(),
    started: now,
    token,
    renewed: now,
    leaseMs,
  };
  // The lease is counted from before the lock was written (conservative).
  const since = Date.now();
  const held = (tookOverFrom?: string) =>
    heldLock({ path, token, body, heartbeatMs, tookOverFrom, since, leaseMs });
  const text = JSON.stringify(body) + "\n";
  await Deno.mkdir(dir, { recursive: true });
  await refuseSymlink(path, "the run lock");
  const guard = `${path}.takeover`;
  await refuseSymlink(guard, "the run lock's takeover guard");
  for (let attempt = 0; attempt < 3; attempt++) {
    if (await createComplete(path, text, token)) return held();
    const seen = await readText(path);
    if (seen === null) continue; // released meanwhile: try again
    const holder = parseBody(seen);
    if (holder && !(await isStale(holder, stale))) throw lockedBy(path, holder);
    if (!(await createComplete(guard, text, token))) {
      const guardText = await readText(guard);
      const taker = guardText === null ? null : parseBody(guardText);
      if (guardText === null || (taker && !(await isGuardStale(taker)))) {
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
      await writeFileAtomic(path, text, { guarded: false });
    } finally {
      await removeIfOwned(guard, token);
    }
    // Re-check the owner after taking.
    const now = await readText(path);
    if (now !== null && parseBody(now)?.token === token) {
      return held(holder ? describe(holder) : "an unreadable lock file");
    }
  }
  throw new MirrorError("MIRROR_LOCKED", `Could not take the lock ${path}`);
}

function heldLock(options: {
  path: string;
  token: string;
  body: LockBody;
  heartbeatMs: number;
  tookOverFrom?: string;
  /** When the lock was last known to be this run's (ms since the epoch). */
  since: number;
  leaseMs: number;
}): RunLock {
  const { path, token, body, leaseMs } = options;
  let stopped = false;
  let confirmed = options.since;
  let lost: MirrorError | null = null;
  let beating: Promise<void> | null = null;
  let listener: ((event: HeartbeatEvent) => void) | undefined;
  const pending: HeartbeatEvent[] = [];
  const tell = (event: HeartbeatEvent) => listener ? listener(event) : pending.push(event);
  const loseTo = (why: string) => {
    if (lost) return;
    stop();
    const message = `The run lock ${path} ${why} while this run held it: this run no longer ` +
      `excludes others and writes nothing more (its lock is left alone)`;
    lost = new MirrorError("MIRROR_LOCK_LOST", message);
    tell({ kind: "lost", message });
  };
  const beat = async () => {
    const started = Date.now();
    try {
      const outcome = await renewLock(path, token, body);
      if (outcome.lost && !stopped) {
        loseTo(
          `was taken over by ${
            outcome.lost === true ? "another run (or removed)" : describe(outcome.lost)
          }`,
        );
      }
      if (outcome.renewed) confirmed = started;
    } catch (error) {
      tell({
        kind: "failed",
        message: `Cannot renew the run lock ${path}: ${
          error instanceof Error ? error.message : String(error)
        }`,
      });
    }
  };
  const beatOnce = (): Promise<void> => beating ??= beat().finally(() => beating = null);
  // Every heartbeatMs, a beat unless one is under way; the timer never keeps the process alive.
  let cancelTimer = () => {};
  const every = () => {
    cancelTimer = unrefTimeout(() => {
      if (stopped) return;
      if (!beating) void beatOnce();
      every();
    }, options.heartbeatMs);
  };
  every();
  function stop() {
    stopped = true;
    cancelTimer();
  }
  const fresh = () => Date.now() - confirmed < leaseMs / 2;
  return {
    path,
    tookOverFrom: options.tookOverFrom,
    get lost() {
      return lost !== null;
    },
    async verify(what) {
      if (lost) throw lost;
      if (fresh()) return;
      // Stale by this run's own clock (a pause, a slow disk): renew now, before writing.
      for (let attempt = 0; attempt < 5 && !lost && !stopped; attempt++) {
        if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, 50));
        await beatOnce();
        if (lost) throw lost;
        if (fresh()) return;
      }
      loseTo(
        `could not be renewed before writing ${what} (last renewed ${
          new Date(confirmed).toISOString()
        }, lease ${leaseMs / 1000} s)`,
      );
      throw lost;
    },
    async release() {
      stop();
      // A heartbeat under way would put the lock back after the removal: let it end first.
      await beating;
      await removeIfOwned(path, token);
    },
    watch(onEvent) {
      listener = onEvent;
      for (const event of pending.splice(0)) onEvent(event);
    },
    [Symbol.asyncDispose]() {
      return this.release();
    },
  };
}

/**
 * One heartbeat: under the takeover guard, rewrite the lock with a new `renewed` if it still
 * holds `token`. `lost` names who holds it now (true: missing or unreadable). A guard held by a
 * live run skips this beat (the next one sees who won); one left by a dead run is cleared.
 */
async function renewLock(
  path: string,
  token: string,
  body: LockBody,
): Promise<{ lost?: LockBody | true; renewed?: true }> {
  const seen = await readText(path);
  const holder = seen === null ? null : parseBody(seen);
  if (holder?.token !== token) return { lost: holder ?? true };
  const guard = `${path}.takeover`;
  const guardBody: LockBody = { ...body, started: new Date().toISOString() };
  if (!(await createComplete(guard, JSON.stringify(guardBody) + "\n", token))) {
    const guardText = await readText(guard);
    const taker = guardText === null ? null : parseBody(guardText);
    if (guardText !== null && (!taker || (await isGuardStale(taker)))) {
      await Deno.remove(guard).catch(() => {});
    }
    return {};
  }
  try {
    const again = await readText(path);
    const now = again === null ? null : parseBody(again);
    if (now?.token !== token) return { lost: now ?? true };
    body.renewed = new Date().toISOString();
    await writeFileAtomic(path, JSON.stringify(body) + "\n", { guarded: false });
    return { renewed: true };
  } finally {
    await removeIfOwned(guard, token);
  }
}

function describe(holder: LockBody): string {
  return `pid ${holder.pid} on ${holder.host}, started ${holder.started}${
    holder.renewed ? `, last heartbeat ${holder.renewed}` : ""
  }`;
}

function lockedBy(path: string, holder: LockBody): MirrorError {
  return new MirrorError(
    "MIRROR_LOCKED",
    `Another bananna-bot run holds ${path} (${
      describe(holder)
    }); wait for it to finish, or remove the file if that run is gone`,
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
    const bytes = await readFileCapped(path, { what: "a run lock", maxBytes: MAX_LOCK_BYTES });
    return new TextDecoder().decode(bytes);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    if (error instanceof FileInputError) return error.missing ? null : "";
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

/**
 * Is the lock stale? Same host and its pid gone: at once. With a heartbeat: when it is older than
 * the holder's lease (`leaseMs` of the reader when the lock has none). Without (an older
 * version's lock): when it is older than `staleAfterMs`.
 */
async function isStale(
  holder: LockBody,
  rules: { staleAfterMs: number; leaseMs: number },
): Promise<boolean> {
  const renewed = typeof holder.renewed === "string" ? Date.parse(holder.renewed) : NaN;
  const lease = typeof holder.leaseMs === "number" && holder.leaseMs > 0
    ? holder.leaseMs
    : rules.leaseMs;
  const tooOld = Number.isNaN(renewed)
    ? !(Date.now() - Date.parse(holder.started) < rules.staleAfterMs)
    : !(Date.now() - renewed < lease);
  if (tooOld) return true;
  if (holder.host !== hostname()) return false;
  return !(await isAlive(holder.pid));
}

/** A takeover guard is stale once its pid is gone (same host) or after a minute. */
async function isGuardStale(taker: LockBody): Promise<boolean> {
  if (!(Date.now() - Date.parse(taker.started) < GUARD_STALE_MS)) return true;
  if (taker.host !== hostname()) return false;
  return !(await isAlive(taker.pid));
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
