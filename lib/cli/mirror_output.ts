/**
 * What a mirror run tells the world: one log line per event and the end (statistics on the
 * console, the summary line in the log, the JSON report in the log dir and at `--report`). Pure
 * formatting over the logger and terminal the command gives it; the dry-run plan lines are
 * formatted in lib/mirror/report.ts.
 *
 * @module
 */
import type { ResolvedRegistry } from "../config/schema.ts";
import { errorMessage } from "../errors.ts";
import { type Code, CODES, type Level } from "../log/codes.ts";
import type { Logger } from "../log/logger.ts";
import { formatReference } from "../registry/reference.ts";
import { exitStatus, type Report, reportJsonChunks } from "../mirror/report.ts";
import { statisticLine, type StatisticRow, statistics } from "../mirror/statistics.ts";
import { writeFileAtomic, writeText } from "../safe_file.ts";
import { checkWrite } from "../write_guard.ts";
import type { MirrorEvent, TaskResult } from "../mirror/run_plan.ts";
import type { Terminal } from "./terminal.ts";

const OP = "Mirror";

function levelOf(code: Code): Level {
  return CODES[code].level;
}

/** Log one event of a run. */
export function logEvent(
  logger: Logger,
  registries: Record<string, ResolvedRegistry>,
  event: MirrorEvent,
): void {
  switch (event.kind) {
    case "repo": {
      const { repo, target } = event.task;
      const where = `${registries[target].host}/${repo?.namespace}/${repo?.name}`;
      if (event.outcome === "created") {
        logger.info("REPO_CREATED", "Repository", `${where} created (private)`);
      } else logger.info("REPO_EXISTS", "Repository", `${where} exists`);
      break;
    }
    case "engine":
      if (event.event.kind === "step") {
        // The task's own IMAGE_PUSHED line follows; the engine's detail goes to DEBUG.
        const code = event.event.code;
        logger.log(
          code === "IMAGE_PUSHED" ? "DEBUG" : event.event.level ?? levelOf(code),
          code,
          "Image",
          event.event.message,
        );
      }
      break;
    case "task-done":
      logResult(logger, event.result);
      break;
    case "latest":
      logger.log(levelOf(event.outcome.code), event.outcome.code, "Latest", event.outcome.message);
      break;
    default:
      break;
  }
}

function logResult(logger: Logger, result: TaskResult): void {
  const t = result.task;
  const src = formatReference(t.source);
  const dst = `${t.target} ${formatReference(t.destination)}`;
  switch (result.status) {
    case "pushed":
      if (result.code === "IMAGE_TAG_UPDATED") {
        logger.info(
          "IMAGE_TAG_UPDATED",
          OP,
          `${src} -> ${dst}: mutable tag moved from ${t.replaceDigest} to ${result.digest}`,
        );
      } else logger.info("IMAGE_PUSHED", OP, `${src} -> ${dst} (${result.digest})`);
      break;
    case "exists":
      logger.info(
        "IMAGE_ALREADY_EXISTS",
        OP,
        `${dst} already holds ${src} (${result.digest}, compared by ${t.comparedBy} digest)`,
      );
      break;
    case "drift":
      logger.warn("IMAGE_TAG_DRIFT", OP, result.error ?? `${dst} holds another image`);
      break;
    case "failed":
      // A failed login is one line per registry (the login step's), not one per image.
      if (t.loginFailed) logger.debug(result.code, OP, `${src} -> ${dst}: ${result.error}`);
      else logger.error(result.code, OP, `${src} -> ${dst}: ${result.error}`);
      break;
    case "deferred":
      logger.warn("IMAGE_DEFERRED_RATE_LIMIT", OP, `${src} -> ${dst}: ${result.error}`);
      break;
    default:
      break;
  }
}

/**
 * Print the statistics, log the summary, write the JSON report (a dry run's only to
 * `--report PATH`: it writes nothing else); returns the exit code.
 */
export async function finishRun(
  report: Report,
  options: {
    logger: Logger;
    terminal: Terminal;
    logDir: string;
    reportPath?: string;
    /** The run's report in the log dir. @default `<logDir>/last-report.json` */
    lastReport?: string;
  },
): Promise<number> {
  const { logger, terminal } = options;
  const stats = statistics(report);
  terminal.line(terminal.color.bold(stats.heading));
  for (const row of stats.rows) terminal.line(paint(terminal, row));
  const code = exitStatus(report);
  const t = report.totals;
  const summary =
    `${t.pushed} pushed, ${t.exists} already mirrored, ${t.drift} drift, ${t.failed} failed` +
    (t.deferred ? `, ${t.deferred} deferred` : "") +
    (t.skipped ? `, ${t.skipped} not started` : "") +
    (report.dryRun ? `, ${t.planned} would be pushed (dry run)` : "");
  if (report.interrupted) logger.warn("MIRROR_INTERRUPTED", OP, `Interrupted: ${summary}`);
  else if (code === 0) logger.info("MIRROR_COMPLETE", OP, summary);
  else logger.error("MIRROR_FAILED", OP, summary);
  const inLogDir = options.lastReport ?? `${options.logDir}/last-report.json`;
  const paths = [
    ...(report.dryRun ? [] : [inLogDir]),
    ...(options.reportPath ? [options.reportPath] : []),
  ];
  for (const path of paths) {
    try {
      // In the log dir: never through a planted link (temp + rename); --report as the user asked.
      if (path === inLogDir) await writeFileAtomic(path, reportJsonChunks(report));
      else {
        await checkWrite(path);
        using file = await Deno.open(path, { write: true, create: true, truncate: true });
        await writeText(file, reportJsonChunks(report));
      }
    } catch (error) {
      logger.error(
        "MIRROR_FAILED",
        "Report",
        `Cannot write the report to ${path}: ${errorMessage(error)}`,
      );
    }
  }
  terminal.line(
    paths.length ? `Report: ${paths.join(", ")}` : "Report: none written (dry run; --report PATH)",
  );
  return code;
}

/** Colour on a terminal (none with NO_COLOR or elsewhere): a row's tone. */
function paint(terminal: Terminal, row: StatisticRow): string {
  const line = statisticLine(row);
  const { color } = terminal;
  switch (row.tone) {
    case "good":
      return color.green(line);
    case "warn":
      return color.yellow(line);
    case "bad":
      return color.red(line);
    default:
      return line;
  }
}
