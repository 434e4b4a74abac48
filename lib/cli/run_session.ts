/**
 * What `mirror`, `export` and `import` open the same way before any work: the run lock first (only
 * its holder may rotate the log, which archives and empties it), with its heartbeat, then the
 * logger; and the config's secrets registered before anything can print them. A dry run writes
 * nothing: no lock, and its log lines go to the console only.
 *
 * The lock guards every write of the run (lib/write_guard.ts): each write first verifies the lock
 * (run_lock.ts). A lock taken over while this run held it (the run was paused past its lease) is
 * an ERROR `MIRROR_LOCK_LOST`: the run is aborted at once ({@link RunSession.signal}), writes
 * nothing more (no tag, report, state or metrics over the new holder's) and exits
 * {@link EXIT_LOCK_LOST}.
 *
 * @module
 */
import { logOpenError } from "../config/load_config.ts";
import type { ResolvedConfig } from "../config/schema.ts";
import { MirrorError } from "../errors.ts";
import type { Level } from "../log/codes.ts";
import { Logger } from "../log/logger.ts";
import type { Secrets } from "../log/redact.ts";
import { acquireRunLock, type RunLock } from "../mirror/run_lock.ts";
import { refuseSymlink } from "../safe_file.ts";
import { installWriteGuard } from "../write_guard.ts";

/** The exit code of a run that lost its lock to another run while it ran. */
export const EXIT_LOCK_LOST = 3;

/** The lock (or why it is held by another run) and the open logger. */
export interface RunSession {
  /** The held lock; null when another run holds it (`locked` says who). */
  lock: RunLock | null;
  locked: MirrorError | null;
  logger: Logger;
  /** A dry run's session: no lock was wanted. */
  dryRun?: boolean;
  /** The caller's signal, also aborted when the lock is lost: give it to the run. */
  signal: AbortSignal;
  /** True once this run lost its lock (see {@link endLockLost}). */
  lockLost(): boolean;
  /** Uninstall the write guard (after the lock is released). */
  [Symbol.dispose](): void;
}

/** Options for {@link openRunSession}. */
export interface RunSessionOptions {
  /** Where log lines go on the terminal (the progress display's `logLine`). */
  console: (line: string, level: Level) => void;
  secrets: Secrets;
  /** The operation named in the lock's log lines (`Mirror`, `Export`, `Import`). */
  op: string;
  /**
   * The log dir is made by the run inside another (a shard's): never followed through a planted
   * link. The text names it in the refusal.
   */
  refuseLink?: string;
  /** A dry run: no lock taken, the log on the console only (the log dir is left untouched). */
  dryRun?: boolean;
  /** Aborts the run (SIGINT / SIGTERM). */
  signal: AbortSignal;
}

/**
 * Take the lock (a held one is not an error here: the caller logs it and exits 1), open the logger
 * (rotating only with the lock), and watch the lock's heartbeat.
 *
 * @throws {MirrorError} MIRROR_UNSAFE_PATH for a planted link; {@link logOpenError} when the log
 *   cannot be opened.
 */
export async function openRunSession(
  config: ResolvedConfig,
  options: RunSessionOptions,
): Promise<RunSession> {
  let lock: RunLock | null = null;
  let locked: MirrorError | null = null;
  if (options.dryRun) {
    const logger = await Logger.open({
      settings: config.log,
      console: options.console,
      secrets: options.secrets,
      consoleOnly: true,
    });
    return {
      lock,
      locked,
      logger,
      dryRun: true,
      signal: options.signal,
      lockLost: () => false,
      [Symbol.dispose]: () => {},
    };
  }
  try {
    if (options.refuseLink) await refuseSymlink(config.log.dir, options.refuseLink);
    lock = await acquireRunLock(config.log.dir, { leaseMs: config.log.lockLease * 1000 });
  } catch (error) {
    if (!(error instanceof MirrorError) || error.code !== "MIRROR_LOCKED") throw error;
    locked = error;
  }
  let logger: Logger;
  try {
    logger = await Logger.open({
      settings: config.log,
      console: options.console,
      secrets: options.secrets,
      rotate: lock !== null,
    });
  } catch (error) {
    await lock?.release();
    throw logOpenError(config, error);
  }
  // The lock's heartbeat (run_lock.ts): a lock taken over while this run held it is an ERROR,
  // and the run stops at once.
  const lost = new AbortController();
  lock?.watch((event) => {
    if (event.kind === "lost") {
      logger.error("MIRROR_LOCK_LOST", options.op, event.message);
      lost.abort(new MirrorError("MIRROR_LOCK_LOST", event.message));
    } else {
      logger.warn("MIRROR_RETRY", "Lock", `${event.message}; tried again at the next heartbeat`);
    }
  });
  const guard = lock ? installWriteGuard((what) => lock.verify(what)) : null;
  return {
    lock,
    locked,
    logger,
    signal: AbortSignal.any([options.signal, lost.signal]),
    lockLost: () => lock?.lost ?? false,
    [Symbol.dispose]: () => guard?.[Symbol.dispose](),
  };
}

/**
 * The end of a run that lost its lock: one ERROR line saying what was left undone; no report,
 * state or metrics (they are the new holder's). Returns {@link EXIT_LOCK_LOST}.
 */
export function endLockLost(session: RunSession, op: string): number {
  session.logger.error(
    "MIRROR_LOCK_LOST",
    op,
    `Stopped: another run took over the run lock ${
      session.lock?.path ?? ""
    } while this one was paused past log.lockLease; this run wrote nothing more (no tag, report, state or metrics) and exits ${EXIT_LOCK_LOST}`,
  );
  return EXIT_LOCK_LOST;
}

/**
 * Log what the lock says: `MIRROR_LOCKED` (returns false: the caller exits 1) or a stale lock
 * taken over (`MIRROR_LOCK_STALE`, naming its holder).
 */
export function logLockState(session: RunSession, op: string): boolean {
  const { lock, locked, logger } = session;
  if (session.dryRun) return true;
  if (!lock) {
    logger.error("MIRROR_LOCKED", op, locked?.message ?? "the run lock is held");
    return false;
  }
  if (lock.tookOverFrom) {
    logger.warn("MIRROR_LOCK_STALE", op, `Took over a stale lock from ${lock.tookOverFrom}`);
  }
  return true;
}

/** Register every password and API token of the config's registries and sources as secrets. */
export function registerSecrets(config: ResolvedConfig, secrets: Secrets): void {
  for (const registry of Object.values(config.registries)) {
    secrets.add(registry.password);
    secrets.add(registry.apiToken);
    if (registry.username && registry.password) {
      secrets.addBasic(registry.username, registry.password);
    }
  }
  for (const source of Object.values(config.sources)) {
    secrets.add(source.password);
    if (source.username && source.password) secrets.addBasic(source.username, source.password);
  }
}
