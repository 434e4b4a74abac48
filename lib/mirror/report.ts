/**
 * The end of a run: statistics as the seed printed them, the JSON report, and the exit status.
 * Every error text goes through the secrets mask before it lands here.
 *
 * @module
 */
import type { Secrets } from "../log/redact.ts";
import { formatReference } from "../registry/reference.ts";
import type { MirrorPlan } from "./plan.ts";
import type { SelectionEntry } from "./repository_selection.ts";
import type { LatestOutcome, TaskResult, TaskStatus } from "./run_plan.ts";

/** One line of the JSON report. */
export interface ReportEntry {
  source: string;
  /** The target registry's name in the config. */
  target: string;
  /** Full destination reference. */
  destination: string;
  status: TaskStatus;
  digest: string | null;
  code: string;
  error: string | null;
  /** How "same image" was decided: manifest digest or config digest (docker engine). */
  comparedBy: string;
  repo: "created" | "exists" | null;
  bytesUploaded: number;
  durationMs: number;
}

/** The JSON report. */
export interface Report {
  tool: "bananna-bot";
  version: string;
  engine: string;
  config: string;
  dryRun: boolean;
  interrupted: boolean;
  startedAt: string;
  endedAt: string;
  totals: Record<TaskStatus, number>;
  entries: ReportEntry[];
  latest: {
    target: string;
    repository: string;
    code: string;
    tag: string | null;
    message: string;
  }[];
  /** Per `repositories` entry: tags listed, each rule's counts, dropped tags and why. */
  selection: SelectionEntry[];
}

/** Options for {@link buildReport}. */
export interface BuildReportOptions {
  version: string;
  engine: string;
  config: string;
  dryRun: boolean;
  interrupted: boolean;
  startedAt: Date;
  endedAt: Date;
  latest: LatestOutcome[];
  /** The plan's tag selections, as report entries. @default [] */
  selection?: SelectionEntry[];
  secrets: Secrets;
}

/** Turn results into the JSON report (secrets masked). */
export function buildReport(results: TaskResult[], options: BuildReportOptions): Report {
  const totals: Record<TaskStatus, number> = {
    pushed: 0,
    exists: 0,
    drift: 0,
    failed: 0,
    planned: 0,
    skipped: 0,
  };
  const mask = (text: string) => options.secrets.mask(text);
  const entries = results.map((result): ReportEntry => {
    totals[result.status]++;
    return {
      source: formatReference(result.task.source),
      target: result.task.target,
      destination: formatReference(result.task.destination),
      status: result.status,
      digest: result.digest ?? null,
      code: result.code,
      error: result.error ? mask(result.error) : null,
      comparedBy: result.task.comparedBy,
      repo: result.repo ?? null,
      bytesUploaded: result.bytesUploaded ?? 0,
      durationMs: result.durationMs,
    };
  });
  return {
    tool: "bananna-bot",
    version: options.version,
    engine: options.engine,
    config: options.config,
    dryRun: options.dryRun,
    interrupted: options.interrupted,
    startedAt: options.startedAt.toISOString(),
    endedAt: options.endedAt.toISOString(),
    totals,
    entries,
    latest: options.latest.map((l) => ({
      target: l.group.target,
      repository: `${l.group.registry}/${l.group.repository}`,
      code: l.code,
      tag: l.tag ?? null,
      message: mask(l.message),
    })),
    selection: options.selection ?? [],
  };
}

/** The exit status of a finished run: 130 interrupted, 1 any failure or skipped task, else 0. */
export function exitStatus(report: Report): 0 | 1 | 130 {
  if (report.interrupted) return 130;
  return report.totals.failed > 0 || report.totals.skipped > 0 ? 1 : 0;
}

/** The statistics block printed at the end of a run (and logged). */
export function formatStatistics(report: Report): string[] {
  const seconds = (Date.parse(report.endedAt) - Date.parse(report.startedAt)) / 1000;
  const images = new Set(report.entries.map((e) => e.source)).size;
  const reposCreated = report.entries.filter((e) => e.repo === "created").length;
  const bytes = report.entries.reduce((sum, e) => sum + e.bytesUploaded, 0);
  const t = report.totals;
  const lines = [
    `Mirror statistics${report.dryRun ? " (dry run: nothing written)" : ""}${
      report.interrupted ? " (interrupted)" : ""
    }`,
    `  Images:             ${images} (${report.entries.length} image x target)`,
  ];
  if (report.dryRun) {
    lines.push(`  Would push:         ${t.planned}`);
  } else {
    lines.push(`  Pushed:             ${t.pushed}`);
  }
  lines.push(
    `  Already mirrored:   ${t.exists}`,
    `  Drift (untouched):  ${t.drift}`,
    `  Failed:             ${t.failed}`,
  );
  if (t.skipped > 0) lines.push(`  Not started:        ${t.skipped}`);
  if (!report.dryRun) {
    lines.push(`  Repositories made:  ${reposCreated}`);
    lines.push(`  Bytes uploaded:     ${formatBytes(bytes)}`);
    const moved = report.latest.filter((l) => l.code === "IMAGE_LATEST_UPDATED").length;
    lines.push(`  latest moved:       ${moved}`);
  }
  lines.push(`  Engine:             ${report.engine}`);
  lines.push(`  Duration:           ${seconds.toFixed(1)} s`);
  return lines;
}

/** Human-readable byte count. */
export function formatBytes(bytes: number): string {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

/** The plan as results with status `planned` for what would be pushed. */
export function planResults(plan: MirrorPlan): TaskResult[] {
  return plan.tasks.map((task) => ({
    task,
    status: task.action === "push" ? "planned" : task.action,
    digest: task.destinationDigest,
    code: task.action === "push" ? "IMAGE_PLANNED" : task.code ?? "IMAGE_ALREADY_EXISTS",
    error: task.message,
    durationMs: 0,
  }));
}

/** One dry-run line per image x target. */
export function planLine(result: TaskResult): string {
  const t = result.task;
  const dst = `${t.target} ${formatReference(t.destination)}`;
  const repoNote = t.repo && t.repo.state !== "exists"
    ? ` (create repository ${t.repo.namespace}/${t.repo.name}${
      t.repo.state === "unknown" ? " if missing" : ""
    })`
    : "";
  switch (result.status) {
    case "planned":
      if (t.replaceDigest) {
        return `would update ${formatReference(t.source)} -> ${dst}: ${t.message}`;
      }
      return `would push   ${formatReference(t.source)} -> ${dst}${repoNote}`;
    case "exists":
      return `exists       ${dst} (${t.comparedBy} digest matches)`;
    case "drift":
      return `drift        ${dst}: ${t.message}`;
    default:
      return `would fail   ${formatReference(t.source)} -> ${dst}: [${result.code}] ${t.message}`;
  }
}
