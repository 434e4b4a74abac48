/**
 * The report of a run stopped before its plan was complete: a signal during logins or planning
 * (`interrupted`, exit 130), or what stops a whole run (a refused login with `continueOnError`
 * off, docker unavailable: exit 1). It has no entries and says what stopped it (`stopped`, code
 * and masked message), so `last-report.json` never keeps an earlier run's outcome as if it were
 * this one's.
 *
 * @module
 */
import type { ResolvedConfig } from "../config/schema.ts";
import type { Secrets } from "../log/redact.ts";
import { VERSION } from "../version.ts";
import { buildReport, type Report } from "./report.ts";

/** Options for {@link stoppedReport}. */
export interface StoppedReportOptions {
  config: ResolvedConfig;
  dryRun: boolean;
  startedAt: Date;
  /** A signal stopped it (exit 130); else a failure did (exit 1). */
  interrupted: boolean;
  /** What stopped it (the message is masked here). */
  stopped: { code: string; message: string };
  secrets: Secrets;
  shard?: { index: number; count: number } | null;
}

/** Build the report of a run stopped before its plan was complete. */
export function stoppedReport(options: StoppedReportOptions): Report {
  const report = buildReport([], {
    version: VERSION,
    engine: options.config.operation.engine,
    config: options.config.file,
    dryRun: options.dryRun,
    interrupted: options.interrupted,
    startedAt: options.startedAt,
    endedAt: new Date(),
    latest: [],
    secrets: options.secrets,
    shard: options.shard,
  });
  return {
    ...report,
    stopped: {
      code: options.stopped.code,
      message: options.secrets.mask(options.stopped.message),
    },
  };
}
