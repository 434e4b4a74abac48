/**
 * One notification per run (never one per image): when it is due ({@link notifyReasons}) and
 * what it says, as bananna-bot's own JSON ({@link notificationJson}) or as a Slack
 * incoming-webhook message ({@link slackMessage}: `text` for the notification itself, `blocks` for
 * the channel). Both carry the totals, the failed and drift entries (at most
 * {@link MAX_ENTRIES}, with the count of the rest), the duration and the report paths. Every
 * string goes through the run's secrets mask: a header token or a registry password registered
 * there never reaches the body.
 *
 * @module
 */
import type { NotifyEvent } from "../config/ops_schema.ts";
import type { Secrets } from "../log/redact.ts";
import type { Report } from "../mirror/report.ts";
import { VERSION } from "../version.ts";
import { METRIC_STATUSES } from "./metrics.ts";

/** Failed and drift entries listed in a notification; the rest are counted. */
const MAX_ENTRIES = 20;

/** How a run ended, as far as a notification is concerned. */
export type RunOutcomeKind = "success" | "failure" | "interrupted" | "not-started";

/** The end of a run, as the notification and the metrics see it. */
export interface RunEnd {
  /** The report; null when the run stopped before it had one (login, docker, lock). */
  report: Report | null;
  exitCode: number;
  startedAt: Date;
  endedAt: Date;
  /** The config file. */
  config: string;
  /** What stopped the run before its report (code and masked message), if anything did. */
  stopped?: { code: string; message: string };
  /** Where the JSON report was written. */
  reportPaths: string[];
}

/** The outcome named in a notification. */
function outcomeOf(end: RunEnd): RunOutcomeKind {
  if (end.exitCode === 130 || end.report?.interrupted) return "interrupted";
  if (!end.report) return "not-started";
  return end.exitCode === 0 ? "success" : "failure";
}

/**
 * The `on` events this run matches (empty: send nothing). `failure` is any exit code but 0
 * (failed or not started tasks, an interrupted run, a run that could not start).
 */
export function notifyReasons(end: RunEnd, on: readonly NotifyEvent[]): NotifyEvent[] {
  if (on.includes("always")) return ["always"];
  const t = end.report?.totals;
  const found: NotifyEvent[] = [];
  if (on.includes("failure") && end.exitCode !== 0) found.push("failure");
  if (on.includes("drift") && (t?.drift ?? 0) > 0) found.push("drift");
  if (on.includes("deferred") && (t?.deferred ?? 0) > 0) found.push("deferred");
  return found;
}

/** One listed entry of a notification. */
export interface NotifyEntry {
  status: string;
  code: string;
  source: string;
  target: string;
  destination: string;
  error: string | null;
}

/** The JSON notification body (format `json`). */
export interface NotificationBody {
  tool: "bananna-bot";
  version: string;
  config: string;
  outcome: RunOutcomeKind;
  exitCode: number;
  /** The `on` events this run matched. */
  reasons: NotifyEvent[];
  summary: string;
  startedAt: string;
  endedAt: string;
  durationSeconds: number;
  totals: Record<(typeof METRIC_STATUSES)[number], number>;
  bytesUploaded: number;
  /** What stopped the run before its report, if anything did. */
  error: { code: string; message: string } | null;
  /** Failed (and not started) entries first, then drift; at most {@link MAX_ENTRIES}. */
  entries: NotifyEntry[];
  /** Failed and drift entries not listed. */
  entriesOmitted: number;
  reportPaths: string[];
}

/** The JSON body: every string masked with `secrets`. */
export function notificationJson(
  end: RunEnd,
  options: { reasons: NotifyEvent[]; secrets: Secrets },
): NotificationBody {
  const report = end.report;
  const totals = Object.fromEntries(
    METRIC_STATUSES.map((s) => [s, report?.totals[s] ?? 0]),
  ) as NotificationBody["totals"];
  const listed = (report?.entries ?? [])
    .filter((e) => e.status === "failed" || e.status === "skipped" || e.status === "drift")
    .sort((a, b) => rank(a.status) - rank(b.status));
  const body: NotificationBody = {
    tool: "bananna-bot",
    version: VERSION,
    config: end.config,
    outcome: outcomeOf(end),
    exitCode: end.exitCode,
    reasons: options.reasons,
    summary: summaryLine(end),
    startedAt: end.startedAt.toISOString(),
    endedAt: end.endedAt.toISOString(),
    durationSeconds: durationSeconds(end),
    totals,
    bytesUploaded: (report?.entries ?? []).reduce((sum, e) => sum + e.bytesUploaded, 0),
    error: end.stopped ?? null,
    entries: listed.slice(0, MAX_ENTRIES).map((e) => ({
      status: e.status,
      code: e.code,
      source: e.source,
      target: e.target,
      destination: e.destination,
      error: e.error,
    })),
    entriesOmitted: Math.max(0, listed.length - MAX_ENTRIES),
    reportPaths: end.reportPaths,
  };
  return maskStrings(body, options.secrets);
}

function rank(status: string): number {
  return status === "failed" ? 0 : status === "skipped" ? 1 : 2;
}

function durationSeconds(end: RunEnd): number {
  return Math.round(Math.max(0, end.endedAt.getTime() - end.startedAt.getTime()) / 100) / 10;
}

/** One line: outcome, config, totals, duration. */
export function summaryLine(end: RunEnd): string {
  const t = end.report?.totals;
  const head = {
    success: "mirror run succeeded",
    failure: `mirror run failed (exit ${end.exitCode})`,
    interrupted: "mirror run interrupted",
    "not-started": `mirror run could not start (exit ${end.exitCode})`,
  }[outcomeOf(end)];
  const counts = t
    ? `: ${t.pushed} pushed, ${t.exists} already mirrored, ${t.drift} drift, ${t.failed} failed, ` +
      `${t.deferred} deferred, ${t.skipped} not started`
    : end.stopped
    ? `: [${end.stopped.code}] ${end.stopped.message}`
    : "";
  return `bananna-bot ${head} (${end.config})${counts}; ${durationSeconds(end)} s`;
}

/** Slack's longest `text` in a section block. */
const SLACK_SECTION_MAX = 3000;

/**
 * A Slack incoming-webhook message: `text` (the fallback and the notification line) and
 * `blocks`: a header, the totals, the listed entries, the report paths.
 */
export function slackMessage(body: NotificationBody): Record<string, unknown> {
  const title = {
    success: "bananna-bot: mirror run succeeded",
    failure: "bananna-bot: mirror run failed",
    interrupted: "bananna-bot: mirror run interrupted",
    "not-started": "bananna-bot: mirror run could not start",
  }[body.outcome];
  const t = body.totals;
  const blocks: Record<string, unknown>[] = [
    { type: "header", text: { type: "plain_text", text: title } },
    {
      type: "section",
      text: {
        type: "mrkdwn",
        text: `*Config:* \`${slackEscape(body.config)}\`  *Exit code:* ${body.exitCode}  ` +
          `*Duration:* ${body.durationSeconds} s\n*Pushed:* ${t.pushed}  *Already mirrored:* ${t.exists}  ` +
          `*Drift:* ${t.drift}  *Failed:* ${t.failed}  *Deferred:* ${t.deferred}  *Not started:* ${t.skipped}`,
      },
    },
  ];
  if (body.error) {
    blocks.push({
      type: "section",
      text: {
        type: "mrkdwn",
        text: cut(`*[${body.error.code}]* ${slackEscape(body.error.message)}`),
      },
    });
  }
  if (body.entries.length > 0) {
    const lines = body.entries.map((e) =>
      `• *${e.status}* \`${slackEscape(e.destination)}\` (${e.code})${
        e.error ? `: ${slackEscape(e.error)}` : ""
      }`
    );
    if (body.entriesOmitted > 0) lines.push(`…and ${body.entriesOmitted} more (see the report)`);
    blocks.push({ type: "section", text: { type: "mrkdwn", text: cut(lines.join("\n")) } });
  }
  blocks.push({
    type: "context",
    elements: [{
      type: "mrkdwn",
      text: cut(`Report: ${body.reportPaths.map((p) => `\`${slackEscape(p)}\``).join(", ")}`),
    }],
  });
  return { text: body.summary, blocks };
}

function cut(text: string): string {
  return text.length > SLACK_SECTION_MAX ? `${text.slice(0, SLACK_SECTION_MAX - 1)}…` : text;
}

/** Slack mrkdwn control characters (&, <, >) escaped. */
function slackEscape(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** `value` with every string masked. */
function maskStrings<T>(value: T, secrets: Secrets): T {
  return JSON.parse(
    JSON.stringify(value, (_key, v) => (typeof v === "string" ? secrets.mask(v) : v)),
  ) as T;
}
