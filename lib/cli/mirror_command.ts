/**
 * `bananna-bot mirror`, composition only: load the config, open the lock and the logger, wire
 * the run's events to the log and the terminal, call the run (lib/mirror/mirror_run.ts), print
 * the end. Every rule of the run itself is in lib/mirror/. Returns the exit code; never calls
 * Deno.exit.
 *
 * @module
 */
import type { MirrorCommand } from "./args.ts";
import type { Io } from "./io.ts";
import { createTerminal } from "./terminal.ts";
import { loadConfig } from "../config/load_config.ts";
import type { ResolvedImage, ResolvedRepository } from "../config/schema.ts";
import { MirrorError, UsageError } from "../errors.ts";
import { createMirrorRun } from "../mirror/mirror_run.ts";
import {
  resolveShard,
  selectShard,
  shardDir,
  shardLine,
  shardReportPath,
} from "../mirror/shard.ts";
import { formatReference } from "../registry/reference.ts";
import { VERSION } from "../version.ts";
import { finishRun, logEvent } from "./mirror_output.ts";
import { MirrorProgress } from "./mirror_progress.ts";
import { endLockLost, logLockState, openRunSession, registerSecrets } from "./run_session.ts";
import { refuseDockerMirrorSets, writeRunMirrorSets } from "./mirror_sets_output.ts";
import type { Report } from "../mirror/report.ts";
import { stoppedReport } from "../mirror/stopped_report.ts";
import { publishRunEnd, registerOpsSecrets, type RunEnd } from "../ops/run_end.ts";

const OP = "Mirror";
const INTERRUPTED_EARLY =
  "interrupted (SIGINT or SIGTERM) before the plan was complete: no image was copied";

/** Run `bananna-bot mirror`. */
export async function runMirror(cmd: MirrorCommand, io: Io): Promise<number> {
  const startedAt = new Date();
  const shard = resolveShard({ shard: cmd.shard, shards: cmd.shards, env: io.env });
  const loaded = await loadConfig(cmd.config, { env: io.env, cwd: io.cwd });
  refuseDockerMirrorSets(cmd.openshiftMirrorSets, {
    engine: loaded.operation.engine,
    file: loaded.file,
  });
  const selected = selectEntries(loaded, cmd.only);
  // A shard: only its destination repositories, before any read; its own lock, state and log.
  const { images, repositories } = shard ? selectShard(loaded, selected, shard) : selected;
  const config = shard
    ? { ...loaded, log: { ...loaded.log, dir: shardDir(loaded.log.dir, shard) } }
    : loaded;
  const terminal = createTerminal({
    stdout: io.stdout,
    stderr: io.stderr,
    isTerminal: io.isTerminal,
    noColor: Boolean(io.env.NO_COLOR),
  });
  const secrets = io.secrets;
  registerSecrets(config, secrets);
  registerOpsSecrets(config, secrets);
  const progress = new MirrorProgress(terminal);
  // The lock first, then the log (run_session.ts); a shard's dir is never followed through a link.
  const session = await openRunSession(config, {
    console: (line, level) => progress.logLine(line, level),
    secrets,
    op: OP,
    refuseLink: shard ? "a shard's log dir" : undefined,
    dryRun: cmd.dryRun,
    signal: io.signal,
  });
  using _guard = session;
  const { lock, logger } = session;
  await using _lock = lock;
  const lastReport = shard ? shardReportPath(loaded.log.dir, shard) : undefined;
  // The end of the run for its watchers (lib/ops/run_end.ts): metrics, Pushgateway, notification.
  const end: {
    report: Report | null;
    exitCode?: number;
    stopped?: RunEnd["stopped"];
    /** The report of a run stopped before its plan was complete (stopped_report.ts). */
    reportPaths?: string[];
  } = { report: null };
  // Lost the lock while running: nothing more is written (run_session.ts), exit 3.
  const lockLost = () => {
    end.report = null;
    end.stopped = { code: "MIRROR_LOCK_LOST", message: "another run took over the run lock" };
    return end.exitCode = endLockLost(session, OP);
  };
  try {
    logger.info(
      "SUCCESS",
      "bananna-bot Startup",
      `bananna-bot ${VERSION} starting up (config ${config.file})`,
    );
    for (const w of config.warnings) {
      logger.warn("CONFIG_WARNING", "Config", `${w.path ? `${w.path}: ` : ""}${w.message}`);
    }
    if (!logLockState(session, OP)) {
      const message = session.locked?.message ?? "the run lock is held";
      end.stopped = { code: "MIRROR_LOCKED", message };
      return end.exitCode = 1;
    }
    if (shard) {
      logger.info("MIRROR_START", OP, shardLine(shard, selected, { images, repositories }));
    }
    await using run = createMirrorRun({
      config,
      images,
      repositories,
      dryRun: cmd.dryRun,
      interactive: io.isTerminal && !cmd.nonInteractive,
      env: io.env,
      signal: session.signal,
      logger,
      secrets,
      shard,
      say: (text) => terminal.warn(text),
      onEvent: (event) => {
        progress.onEvent(event);
        logEvent(logger, config.registries, event);
      },
    });
    const report = end.report = await run.execute(startedAt);
    if (config.openshift) report.mirrorSets = config.openshift.mirrorSets;
    progress.clear();
    if (session.lockLost()) return lockLost();
    const code = await finishRun(report, {
      logger,
      terminal,
      logDir: config.log.dir,
      reportPath: cmd.report,
      lastReport,
    });
    if (session.lockLost()) return lockLost();
    if (cmd.openshiftMirrorSets === undefined) return end.exitCode = code;
    const written = await writeRunMirrorSets(report, cmd.openshiftMirrorSets, {
      logger,
      line: (text) => terminal.line(text),
      error: (text) => terminal.warn(text),
    });
    return end.exitCode = written || code !== 0 ? code : 1;
  } catch (error) {
    if (session.lockLost()) return lockLost();
    const interrupted = io.signal.aborted;
    if (!(error instanceof MirrorError) && !interrupted) {
      end.stopped = { code: "MIRROR_INTERNAL_ERROR", message: "internal error (see stderr)" };
      throw error;
    }
    if (error instanceof MirrorError) logger.error(error.code, OP, error.message);
    end.stopped = error instanceof MirrorError && !interrupted
      ? { code: error.code, message: secrets.mask(error.message) }
      : { code: "MIRROR_INTERRUPTED", message: INTERRUPTED_EARLY };
    // Stopped before its report: one marked so replaces the previous run's (stopped_report.ts).
    if (!end.report) {
      progress.clear();
      const report = stoppedReport({
        config,
        dryRun: cmd.dryRun,
        startedAt,
        interrupted,
        stopped: end.stopped,
        secrets,
        shard,
      });
      await finishRun(report, {
        logger,
        terminal,
        logDir: config.log.dir,
        reportPath: cmd.report,
        lastReport,
      });
      end.reportPaths = [
        lastReport ?? `${config.log.dir}/last-report.json`,
        ...(cmd.report ? [cmd.report] : []),
      ];
    }
    if (interrupted) terminal.warn("bananna-bot: interrupted");
    return end.exitCode = interrupted ? 130 : 1;
  } finally {
    progress.clear();
    await publishRunEnd({
      report: end.report,
      exitCode: end.exitCode ?? 1,
      startedAt,
      endedAt: end.report ? new Date(end.report.endedAt) : new Date(),
      config: config.file,
      stopped: end.stopped,
      reportPaths: end.reportPaths ??
        (end.report
          ? [
            lastReport ?? `${config.log.dir}/last-report.json`,
            ...(cmd.report ? [cmd.report] : []),
          ]
          : []),
    }, {
      config,
      metricsFile: cmd.metricsFile && absolutePath(cmd.metricsFile, io.cwd),
      dryRun: cmd.dryRun,
      heldLock: lock !== null && !session.lockLost(),
      logger,
      secrets,
      ...(shard ? { shard } : {}),
    });
    // The heartbeat stops before the log closes (release again at scope end is a no-op).
    await lock?.release();
    await logger.close();
  }
}

/** `--only` patterns: `*` matches any run of characters; matched against key and full reference. */
export function selectImages(images: ResolvedImage[], patterns: string[]): ResolvedImage[] {
  return selectEntries({ images, repositories: [] }, patterns).images;
}

/**
 * `--only` over images and `repositories` entries: an entry is kept when a pattern matches its
 * key or its full source reference (`docker.io/library/nginx`).
 *
 * @throws {UsageError} when the patterns match nothing (exit 2).
 */
export function selectEntries(
  config: { images: ResolvedImage[]; repositories: ResolvedRepository[] },
  patterns: string[],
): { images: ResolvedImage[]; repositories: ResolvedRepository[] } {
  if (patterns.length === 0) return { images: config.images, repositories: config.repositories };
  const regexes = patterns.map((p) =>
    new RegExp(`^${p.split("*").map((s) => s.replace(/[.+?^${}()|[\]\\]/g, "\\$&")).join(".*")}$`)
  );
  const matches = (entry: { key: string; source: ResolvedRepository["source"] }) =>
    regexes.some((r) => r.test(entry.key) || r.test(formatReference(entry.source)));
  const images = config.images.filter(matches);
  const repositories = config.repositories.filter(matches);
  if (images.length === 0 && repositories.length === 0) {
    const keys = config.repositories.map((r) => r.key);
    throw new UsageError(
      `--only ${patterns.join(", ")} matched no image (images: ${
        config.images.map((i) => i.key).join(", ")
      }${keys.length ? `; repositories: ${keys.join(", ")}` : ""})`,
    );
  }
  return { images, repositories };
}

function absolutePath(path: string, cwd: string): string {
  return path.startsWith("/") ? path : `${cwd}/${path}`;
}
