/**
 * `bananna-bot export` and `bananna-bot import`, composition only, like mirror_command.ts: load the
 * config, check the inputs (bad ones are exit 2 before anything starts), take the run lock, open
 * the logger, wire events to the log and the terminal, run, print the end. Export runs
 * lib/layout/export_run.ts; import runs the mirror run (lib/mirror/mirror_run.ts) with the export
 * directory as the store of every source host (lib/layout/import_source.ts). Returns the exit
 * code; never calls Deno.exit.
 *
 * @module
 */
import type { ExportCommand, ImportCommand } from "./args.ts";
import type { Io } from "./io.ts";
import { createTerminal } from "./terminal.ts";
import { loadConfig } from "../config/load_config.ts";
import type { ResolvedConfig } from "../config/schema.ts";
import { MirrorError } from "../errors.ts";
import { readExportManifest } from "../layout/export_manifest.ts";
import { runExport } from "../layout/export_run.ts";
import { type ImportLocation, locateImport } from "../layout/import_parts.ts";
import { type ImportSource, openImportSource } from "../layout/import_source.ts";
import { parsePartSize } from "../layout/tar_parts.ts";
import type { Logger } from "../log/logger.ts";
import { createMirrorRun } from "../mirror/mirror_run.ts";
import type { Report } from "../mirror/report.ts";
import type { MirrorEvent } from "../mirror/run_plan.ts";
import { VERSION } from "../version.ts";
import { selectEntries } from "./mirror_command.ts";
import { finishRun, logEvent } from "./mirror_output.ts";
import { writeRunMirrorSets } from "./mirror_sets_output.ts";
import { MirrorProgress } from "./mirror_progress.ts";
import { endLockLost, logLockState, openRunSession, registerSecrets } from "./run_session.ts";
import { publishRunEnd, registerOpsSecrets, type RunEnd } from "../ops/run_end.ts";

/** Run `bananna-bot export`. */
export async function runExportCommand(cmd: ExportCommand, io: Io): Promise<number> {
  // The connected side reads sources only: no destination secret, no notification or metrics.
  const config = await loadConfig(cmd.config, {
    env: io.env,
    cwd: io.cwd,
    unused: { sections: ["notify", "metrics"], secretsOf: ["registries"] },
  });
  const selected = selectEntries(config, cmd.only);
  const to = absolute(cmd.to, io.cwd);
  const since = cmd.since === undefined ? undefined : absolute(cmd.since, io.cwd);
  if (since) await readExportManifest(since); // a bad --since is exit 2 before anything starts
  const partSize = cmd.partSize === undefined ? undefined : parsePartSize(cmd.partSize);
  return await session(config, io, {
    op: "Export",
    reportPath: cmd.report,
    dryRun: cmd.dryRun,
    // `last-report.json` is the last mirror's (import's) report, which operators and metrics read.
    lastReport: `${config.log.dir}/last-export-report.json`,
    run: (context) =>
      runExport({
        config,
        ...selected,
        dir: to,
        since,
        partSize,
        dryRun: cmd.dryRun,
        interactive: io.isTerminal && !cmd.nonInteractive,
        env: io.env,
        ...context,
      }, context.startedAt),
  });
}

/** Run `bananna-bot import`. */
export async function runImportCommand(cmd: ImportCommand, io: Io): Promise<number> {
  // The disconnected side never contacts a source: no source secret needed.
  const loaded = await loadConfig(cmd.config, {
    env: io.env,
    cwd: io.cwd,
    unused: { secretsOf: ["sources"] },
  });
  // A layout is read by the registry engine only (digests kept), whatever copies online.
  const config = { ...loaded, operation: { ...loaded.operation, engine: "registry" as const } };
  const selected = selectEntries(config, cmd.only);
  const location = await locateImport(absolute(cmd.from, io.cwd), {
    stagingParent: config.log.dir,
    signal: io.signal,
  });
  try {
    const source = await openImportSource(location.dir, {
      config,
      selected,
      manifestPath: location.manifestPath,
      lost: location.lost,
    });
    return await importSession(cmd, io, { loaded, config, source, location });
  } finally {
    await location.cleanup();
  }
}

async function importSession(
  cmd: ImportCommand,
  io: Io,
  input: {
    loaded: ResolvedConfig;
    config: ResolvedConfig;
    source: ImportSource;
    location: ImportLocation;
  },
): Promise<number> {
  const { loaded, config, source, location } = input;
  return await session(config, io, {
    op: "Import",
    reportPath: cmd.report,
    dryRun: cmd.dryRun,
    publish: { dryRun: cmd.dryRun },
    after: cmd.openshiftMirrorSets === undefined
      ? undefined
      : (report, context) =>
        writeRunMirrorSets(report, absolute(cmd.openshiftMirrorSets as string, io.cwd), {
          logger: context.logger,
          line: context.line,
          error: context.line,
        }),
    run: async (context) => {
      if (location.parts) {
        const { names, corrupt } = location.parts;
        context.logger.log(
          corrupt.length ? "ERROR" : "INFO",
          corrupt.length ? "IMAGE_DIGEST_MISMATCH" : "SUCCESS",
          "Import",
          `${names.length} tar part(s) read from ${location.manifestPath.replace(/\/[^/]+$/, "")}${
            corrupt.length
              ? `; corrupt (sha256 differs): ${
                corrupt.join(", ")
              }: the images needing their blobs fail`
              : ", every sha256 as recorded"
          }`,
        );
      }
      context.logger.info(
        "MIRROR_START",
        "Import",
        `from ${source.layout.dir}: export ${source.manifest.id} of ${source.manifest.created} (bananna-bot ${source.manifest.tool.version}, ${source.manifest.images.length} image(s)${
          source.manifest.since.length
            ? `, builds on ${source.manifest.since.map((s) => s.id).join(" <- ")}`
            : ""
        })`,
      );
      if (loaded.operation.engine !== "registry") {
        context.logger.warn(
          "CONFIG_WARNING",
          "Import",
          `operation.engine is ${loaded.operation.engine}; an import copies with the registry engine (digests kept), operation.signatures ${loaded.operation.signatures}`,
        );
      }
      for (const name of source.missing) {
        context.logger.warn("IMAGE_NOT_FOUND", "Import", `${name}: not in this export; skipped`);
      }
      await using run = createMirrorRun({
        config,
        images: source.images,
        repositories: source.repositories,
        dryRun: cmd.dryRun,
        interactive: io.isTerminal && !cmd.nonInteractive,
        env: io.env,
        stores: source.stores,
        ...context,
      });
      const report = await run.execute(context.startedAt);
      if (config.openshift) report.mirrorSets = config.openshift.mirrorSets;
      return report;
    },
  });
}

/** What a session hands its run. */
interface SessionContext {
  startedAt: Date;
  /** Aborts the run: SIGINT / SIGTERM, or the run lock lost (run_session.ts). */
  signal: AbortSignal;
  /** A line for the terminal. */
  line: (text: string) => void;
  logger: Logger;
  secrets: Io["secrets"];
  say: (text: string) => void;
  onEvent: (event: MirrorEvent) => void;
}

/** Lock, logger, terminal and the end of a run, as `mirror` does them. */
async function session(
  config: ResolvedConfig & { warnings?: readonly { path?: string; message: string }[] },
  io: Io,
  options: {
    op: string;
    reportPath?: string;
    /** A dry run: no lock, the log on the console only, no report but `--report PATH`. */
    dryRun: boolean;
    /** The report in the log dir. @default `<log dir>/last-report.json` */
    lastReport?: string;
    run: (context: SessionContext) => Promise<Report>;
    /** After the report: false makes a successful run exit 1 (mirror sets not written). */
    after?: (report: Report, context: SessionContext) => Promise<boolean>;
    /**
     * Import: the end of the run for its watchers, as mirror's (metrics file, Pushgateway, one
     * notification; lib/ops/run_end.ts). An import is the disconnected side's mirror run.
     */
    publish?: { dryRun: boolean };
  },
): Promise<number> {
  const startedAt = new Date();
  const terminal = createTerminal({
    stdout: io.stdout,
    stderr: io.stderr,
    isTerminal: io.isTerminal,
    noColor: Boolean(io.env.NO_COLOR),
  });
  const secrets = io.secrets;
  registerSecrets(config, secrets);
  if (options.publish) registerOpsSecrets(config, secrets);
  const progress = new MirrorProgress(terminal);
  // The lock first, then the log, as `mirror` (run_session.ts: heartbeat, MIRROR_LOCK_LOST).
  const session = await openRunSession(config, {
    console: (line, level) => progress.logLine(line, level),
    secrets,
    op: options.op,
    dryRun: options.dryRun,
    signal: io.signal,
  });
  using _guard = session;
  const { lock, logger } = session;
  await using _lock = lock;
  const lastReport = options.lastReport ?? `${config.log.dir}/last-report.json`;
  const end: { report: Report | null; exitCode?: number; stopped?: RunEnd["stopped"] } = {
    report: null,
  };
  // Lost the lock while running: nothing more is written (run_session.ts), exit 3.
  const lockLost = () => {
    end.report = null;
    end.stopped = { code: "MIRROR_LOCK_LOST", message: "another run took over the run lock" };
    return end.exitCode = endLockLost(session, options.op);
  };
  try {
    logger.info(
      "SUCCESS",
      "bananna-bot Startup",
      `bananna-bot ${VERSION} starting up: ${options.op.toLowerCase()} (config ${config.file})`,
    );
    for (const w of config.warnings ?? []) {
      logger.warn("CONFIG_WARNING", "Config", `${w.path ? `${w.path}: ` : ""}${w.message}`);
    }
    if (!logLockState(session, options.op)) {
      end.stopped = { code: "MIRROR_LOCKED", message: "the run lock is held" };
      return end.exitCode = 1;
    }
    const context: SessionContext = {
      startedAt,
      signal: session.signal,
      line: (text) => terminal.line(text),
      logger,
      secrets,
      say: (text) => terminal.warn(text),
      onEvent: (event) => {
        progress.onEvent(event);
        logEvent(logger, config.registries, event);
      },
    };
    const report = end.report = await options.run(context);
    progress.clear();
    if (session.lockLost()) return lockLost();
    const code = await finishRun(report, {
      logger,
      terminal,
      logDir: config.log.dir,
      reportPath: options.reportPath,
      lastReport,
    });
    if (session.lockLost()) return lockLost();
    if (!options.after) return end.exitCode = code;
    return end.exitCode = (await options.after(report, context)) || code !== 0 ? code : 1;
  } catch (error) {
    if (session.lockLost()) return lockLost();
    if (error instanceof MirrorError) {
      logger.error(error.code, options.op, error.message);
      end.stopped = { code: error.code, message: secrets.mask(error.message) };
      return end.exitCode = io.signal.aborted ? 130 : 1;
    }
    end.stopped = { code: "MIRROR_INTERNAL_ERROR", message: "internal error (see stderr)" };
    throw error;
  } finally {
    progress.clear();
    if (options.publish) {
      await publishRunEnd({
        report: end.report,
        exitCode: end.exitCode ?? 1,
        startedAt,
        endedAt: end.report ? new Date(end.report.endedAt) : new Date(),
        config: config.file,
        stopped: end.stopped,
        reportPaths: end.report
          ? [lastReport, ...(options.reportPath ? [options.reportPath] : [])]
          : [],
      }, {
        config,
        dryRun: options.publish.dryRun,
        heldLock: lock !== null && !session.lockLost(),
        logger,
        secrets,
      });
    }
    // The heartbeat stops before the log closes (release again at scope end is a no-op).
    await lock?.release();
    await logger.close();
  }
}

function absolute(path: string, cwd: string): string {
  return path.startsWith("/")
    ? path.replace(/\/+$/, "") || "/"
    : `${cwd}/${path}`.replace(/\/+$/, "");
}
