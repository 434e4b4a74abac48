/**
 * The one session around `mirror`, `export` and `import` ({@link runCommand}): the terminal and
 * its progress display, the config's secrets registered before anything can print them, the run
 * lock first (only its holder may rotate the log, which archives and empties it) with its
 * heartbeat, then the logger; the startup lines; the run the command builds; its end (statistics,
 * report, the command's after-step such as mirror sets, metrics and notification); release. A run
 * stopped before it had a report (a refused login, SIGINT/SIGTERM) still replaces the report with
 * one marked stopped (stopped_report.ts), so nobody reads the previous run's as this one's. A dry
 * run writes nothing: no lock, and its log lines go to the console only.
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
import type { Report } from "../mirror/report.ts";
import type { MirrorEvent } from "../mirror/run_plan.ts";
import { acquireRunLock, type RunLock } from "../mirror/run_lock.ts";
import { stoppedReport } from "../mirror/stopped_report.ts";
import { publishRunEnd, registerOpsSecrets, type RunEnd } from "../ops/run_end.ts";
import { refuseSymlink } from "../safe_file.ts";
import { VERSION } from "../version.ts";
import { installWriteGuard } from "../write_guard.ts";
import type { Io } from "./io.ts";
import { finishRun, logEvent } from "./mirror_output.ts";
import { MirrorProgress } from "./mirror_progress.ts";
import { createTerminal, type Terminal } from "./terminal.ts";

/** The exit code of a run that lost its lock to another run while it ran. */
const EXIT_LOCK_LOST = 3;

/** The lock (or why it is held by another run) and the open logger. */
interface RunSession {
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
interface RunSessionOptions {
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
async function openRunSession(
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
function endLockLost(session: RunSession, op: string): number {
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
function logLockState(session: RunSession, op: string): boolean {
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
function registerSecrets(config: ResolvedConfig, secrets: Secrets): void {
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

/** What a command hands {@link runCommand}: its config, its files, and the run it builds. */
export interface CommandSpec {
  /** The operation in log lines (`Mirror`, `Export`, `Import`). */
  op: "Mirror" | "Export" | "Import";
  config: ResolvedConfig & { warnings?: readonly { path?: string; message: string }[] };
  dryRun: boolean;
  /** `--report PATH`. */
  reportPath?: string;
  /** The report in the log dir. @default `<log dir>/last-report.json` */
  lastReport?: string;
  /** The log dir is made by the run inside another (a shard's); see {@link RunSessionOptions}. */
  refuseLink?: string;
  /** A sharded run (recorded in a stopped report and in the metrics). */
  shard?: { index: number; count: number } | null;
  /**
   * The end of the run for its watchers (metrics file, Pushgateway, one notification;
   * lib/ops/run_end.ts): mirror and import (the disconnected side's mirror run), not export.
   */
  publish?: { metricsFile?: string };
  /** Build the run and execute it: the report, task failures in it. */
  run: (context: SessionContext) => Promise<Report>;
  /** After the report (mirror sets): false makes a successful run exit 1. */
  after?: (report: Report, context: SessionContext) => Promise<boolean>;
}

/** What the session hands the run a command builds. */
export interface SessionContext {
  startedAt: Date;
  /** Aborts the run: SIGINT / SIGTERM, or the run lock lost. */
  signal: AbortSignal;
  logger: Logger;
  secrets: Secrets;
  terminal: Terminal;
  /** Messages for the person at a credential prompt. */
  say: (text: string) => void;
  /** The run's events, to the progress display and the log. */
  onEvent: (event: MirrorEvent) => void;
}

/** What the end of the run tells its watchers, filled in as the session goes. */
interface End {
  report: Report | null;
  exitCode?: number;
  stopped?: RunEnd["stopped"];
  /** The files the report went to. */
  reportPaths: string[];
}

const INTERRUPTED_EARLY =
  "interrupted (SIGINT or SIGTERM) before the plan was complete: no image was copied";

/**
 * Run a command's run inside the one session: open, log the start, run, end, release.
 *
 * @returns the exit code (0, 1, 3 for a lost lock, 130 when interrupted).
 * @throws what is not a MirrorError (a bug: main.ts prints it), after the end was published.
 */
export async function runCommand(io: Io, spec: CommandSpec): Promise<number> {
  const { config } = spec;
  const startedAt = new Date();
  const terminal = createTerminal({
    stdout: io.stdout,
    stderr: io.stderr,
    isTerminal: io.isTerminal,
    noColor: Boolean(io.env.NO_COLOR),
  });
  registerSecrets(config, io.secrets);
  if (spec.publish) registerOpsSecrets(config, io.secrets);
  const progress = new MirrorProgress(terminal);
  const session = await openRunSession(config, {
    console: (line, level) => progress.logLine(line, level),
    secrets: io.secrets,
    op: spec.op,
    refuseLink: spec.refuseLink,
    dryRun: spec.dryRun,
    signal: io.signal,
  });
  using _guard = session;
  await using _lock = session.lock;
  const context: SessionContext = {
    startedAt,
    signal: session.signal,
    logger: session.logger,
    secrets: io.secrets,
    terminal,
    say: (text) => terminal.warn(text),
    onEvent: (event) => {
      progress.onEvent(event);
      logEvent(session.logger, config.registries, event);
    },
  };
  const end: End = { report: null, reportPaths: [] };
  try {
    return end.exitCode = await startAndRun(spec, session, context, end, progress);
  } catch (error) {
    if (session.lockLost()) return end.exitCode = lockLost(session, spec.op, end);
    return end.exitCode = await stopped(error, spec, context, end, progress, io.signal.aborted);
  } finally {
    progress.clear();
    if (spec.publish) await publish(spec, session, end, context);
    // The heartbeat stops before the log closes (release again at scope end is a no-op).
    await session.lock?.release();
    await session.logger.close();
  }
}

/** The startup lines, the lock's state, the run, its end and the command's after-step. */
async function startAndRun(
  spec: CommandSpec,
  session: RunSession,
  context: SessionContext,
  end: End,
  progress: MirrorProgress,
): Promise<number> {
  const { config, op } = spec;
  const { logger } = session;
  logger.info(
    "SUCCESS",
    "bananna-bot Startup",
    `bananna-bot ${VERSION} starting up${
      op === "Mirror" ? "" : `: ${op.toLowerCase()}`
    } (config ${config.file})`,
  );
  for (const w of config.warnings ?? []) {
    logger.warn("CONFIG_WARNING", "Config", `${w.path ? `${w.path}: ` : ""}${w.message}`);
  }
  if (!logLockState(session, op)) {
    end.stopped = {
      code: "MIRROR_LOCKED",
      message: session.locked?.message ?? "the run lock is held",
    };
    return 1;
  }
  const report = end.report = await spec.run(context);
  progress.clear();
  if (session.lockLost()) return lockLost(session, op, end);
  const code = await finishReport(report, spec, context, end);
  if (session.lockLost()) return lockLost(session, op, end);
  if (!spec.after) return code;
  return (await spec.after(report, context)) || code !== 0 ? code : 1;
}

/** Statistics, summary line and the report's files; returns the exit code of the report. */
async function finishReport(
  report: Report,
  spec: CommandSpec,
  context: SessionContext,
  end: End,
): Promise<number> {
  const lastReport = spec.lastReport ?? `${spec.config.log.dir}/last-report.json`;
  end.reportPaths = [lastReport, ...(spec.reportPath ? [spec.reportPath] : [])];
  return await finishRun(report, {
    logger: context.logger,
    terminal: context.terminal,
    logDir: spec.config.log.dir,
    reportPath: spec.reportPath,
    lastReport,
  });
}

/**
 * The run stopped before its end (a MirrorError, or SIGINT/SIGTERM): log it, and when it had no
 * report yet write one marked stopped in place of the previous run's. Exit 1, or 130 interrupted.
 */
async function stopped(
  error: unknown,
  spec: CommandSpec,
  context: SessionContext,
  end: End,
  progress: MirrorProgress,
  interrupted: boolean,
): Promise<number> {
  if (!(error instanceof MirrorError) && !interrupted) {
    end.stopped = { code: "MIRROR_INTERNAL_ERROR", message: "internal error (see stderr)" };
    throw error;
  }
  if (error instanceof MirrorError) context.logger.error(error.code, spec.op, error.message);
  end.stopped = error instanceof MirrorError && !interrupted
    ? { code: error.code, message: context.secrets.mask(error.message) }
    : { code: "MIRROR_INTERRUPTED", message: INTERRUPTED_EARLY };
  if (!end.report) {
    progress.clear();
    const report = stoppedReport({
      config: spec.config,
      dryRun: spec.dryRun,
      startedAt: context.startedAt,
      interrupted,
      stopped: end.stopped,
      secrets: context.secrets,
      shard: spec.shard,
    });
    await finishReport(report, spec, context, end);
  }
  if (interrupted) context.terminal.warn("bananna-bot: interrupted");
  return interrupted ? 130 : 1;
}

/** Lost the lock while running: nothing more is written, no report for the watchers; exit 3. */
function lockLost(session: RunSession, op: string, end: End): number {
  end.report = null;
  end.reportPaths = [];
  end.stopped = { code: "MIRROR_LOCK_LOST", message: "another run took over the run lock" };
  return endLockLost(session, op);
}

/** The end of the run for its watchers (lib/ops/run_end.ts). */
async function publish(
  spec: CommandSpec,
  session: RunSession,
  end: End,
  context: SessionContext,
): Promise<void> {
  const { startedAt, secrets } = context;
  await publishRunEnd({
    report: end.report,
    exitCode: end.exitCode ?? 1,
    startedAt,
    endedAt: end.report ? new Date(end.report.endedAt) : new Date(),
    config: spec.config.file,
    stopped: end.stopped,
    reportPaths: end.reportPaths,
  }, {
    config: spec.config,
    metricsFile: spec.publish?.metricsFile,
    dryRun: spec.dryRun,
    heldLock: session.lock !== null && !session.lockLost(),
    logger: session.logger,
    secrets,
    ...(spec.shard ? { shard: spec.shard } : {}),
  });
}
