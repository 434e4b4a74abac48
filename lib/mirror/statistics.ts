/**
 * The statistics of a run, as rows (label, value, tone) built from its report: the terminal paints
 * them by tone (cli/mirror_output.ts), `report --merge` and the log print them as aligned text
 * lines ({@link formatStatistics}). Nothing here parses text back.
 *
 * @module
 */
import type { BandwidthUsage } from "../registry/bandwidth.ts";
import { formatBytes, type PullBudgetEntry, type Report, type ReportEntry } from "./report.ts";

/** How a row reads on a terminal: plain, or a count that matters (good, worth a look, bad). */
export type StatisticTone = "plain" | "good" | "warn" | "bad";

/** One statistics row: `  <label>:  <value>`. */
export interface StatisticRow {
  label: string;
  value: string;
  tone: StatisticTone;
}

/** The statistics block: a heading and its rows. */
export interface Statistics {
  heading: string;
  rows: StatisticRow[];
}

/** `tone` when `count` is not 0, else plain. */
function count(label: string, n: number, tone: StatisticTone = "plain"): StatisticRow {
  return { label, value: String(n), tone: n > 0 ? tone : "plain" };
}

function row(label: string, value: string): StatisticRow {
  return { label, value, tone: "plain" };
}

/** The statistics of a run (or of merged shard reports). */
export function statistics(report: Report): Statistics {
  const seconds = (Date.parse(report.endedAt) - Date.parse(report.startedAt)) / 1000;
  const images = new Set(report.entries.map((e) => e.source)).size;
  const t = report.totals;
  const rows: StatisticRow[] = [
    row("Images", `${images} (${report.entries.length} image x target)`),
    report.dryRun ? count("Would push", t.planned, "good") : count("Pushed", t.pushed, "good"),
    count("Already mirrored", t.exists),
    count("Drift (untouched)", t.drift, "warn"),
    count("Failed", t.failed, "bad"),
  ];
  for (const q of report.quotaExceeded ?? []) {
    rows.push(row("Quota exceeded", `${q.images} in ${q.namespace}`));
  }
  if (t.deferred > 0) rows.push(count("Deferred (budget)", t.deferred, "warn"));
  if (t.skipped > 0) rows.push(count("Not started", t.skipped, "bad"));
  if (report.stopped) {
    rows.push(row("Stopped early", `[${report.stopped.code}] ${report.stopped.message}`));
  }
  for (const b of report.pullBudget ?? []) rows.push(pullBudgetRow(b, report.dryRun));
  if (!report.dryRun) {
    const bytes = report.entries.reduce((sum, e) => sum + e.bytesUploaded, 0);
    const moved = report.latest.filter((l) => l.code === "IMAGE_LATEST_UPDATED").length;
    rows.push(
      count("Repositories made", report.entries.filter((e) => e.repo === "created").length),
      row("Bytes uploaded", formatBytes(bytes)),
      count("latest moved", moved),
    );
    const carried = supplyChainRow(report.entries);
    if (carried) rows.push(carried);
    const platforms = platformsRow(report.entries);
    if (platforms) rows.push(platforms);
    if (report.bandwidth) rows.push(bandwidthRow(report.bandwidth));
  }
  rows.push(row("Engine", report.engine), row("Duration", `${seconds.toFixed(1)} s`));
  const heading = `Mirror statistics${report.dryRun ? " (dry run: nothing written)" : ""}${
    report.interrupted ? " (interrupted)" : ""
  }`;
  return { heading, rows };
}

/** A row as a text line: the label and its colon in 19 columns, then the value. */
export function statisticLine(row: StatisticRow): string {
  return `  ${`${row.label}:`.padEnd(19)} ${row.value}`;
}

/** The statistics block as text lines (heading first). */
export function formatStatistics(report: Report): string[] {
  const { heading, rows } = statistics(report);
  return [heading, ...rows.map(statisticLine)];
}

/** `Supply chain: 3 signatures, 1 attestations, 0 SBOMs, 2 referrers`, or null when none. */
function supplyChainRow(entries: ReportEntry[]): StatisticRow | null {
  const sum = (key: "signatures" | "attestations" | "sboms" | "referrers") =>
    entries.reduce((n, e) => n + (e[key] ?? 0), 0);
  const [sig, att, sbom, ref] = [
    sum("signatures"),
    sum("attestations"),
    sum("sboms"),
    sum("referrers"),
  ];
  if (sig + att + sbom + ref === 0) return null;
  return row(
    "Supply chain",
    `${sig} signatures, ${att} attestations, ${sbom} SBOMs, ${ref} referrers`,
  );
}

/**
 * `Platforms: 3 indexes for some platforms: 3 kept, 9 left out (2 rewritten); about 1.2 GB not
 * copied (estimated)`, or null.
 */
function platformsRow(entries: ReportEntry[]): StatisticRow | null {
  const some = entries.filter((e) => e.platforms?.kept && e.platforms.skipped.length > 0);
  if (some.length === 0) return null;
  const kept = some.reduce((n, e) => n + (e.platforms?.kept?.length ?? 0), 0);
  const skipped = some.reduce((n, e) => n + (e.platforms?.skipped.length ?? 0), 0);
  const rewritten = some.filter((e) => e.platforms?.sourceDigest !== e.digest).length;
  const saved = some.reduce((n, e) => n + (e.platforms?.bytesSkipped ?? 0), 0);
  return row(
    "Platforms",
    `${some.length} indexes for some platforms: ${kept} kept, ${skipped} left out${
      rewritten ? ` (${rewritten} rewritten: new digests)` : ""
    }${saved ? `; about ${formatBytes(saved)} not copied (estimated)` : ""}`,
  );
}

/**
 * `Bandwidth limit: 50.0 MB/s per direction; 1.0 GB in, 1.0 GB out, streams held 19.7 s` (host
 * limits listed after the process one).
 */
function bandwidthRow(b: BandwidthUsage): StatisticRow {
  const rates = [
    ...(b.bytesPerSecond ? [`${formatBytes(b.bytesPerSecond)}/s`] : []),
    ...Object.entries(b.hosts).map(([host, rate]) => `${host} ${formatBytes(rate)}/s`),
  ];
  return row(
    "Bandwidth limit",
    `${rates.join(", ")} per direction; ${formatBytes(b.downloadBytes)} in, ${
      formatBytes(b.uploadBytes)
    } out, streams held ${b.waitedSeconds.toFixed(1)} s`,
  );
}

/**
 * One row per rate-limited source host, e.g. `Pulls docker.io: 12 spent, 28 of 100 left (reserve
 * 10), 3 deferred; window refills by 2026-11-30T10:00:00.000Z`.
 */
function pullBudgetRow(b: PullBudgetEntry, dryRun: boolean): StatisticRow {
  const used = dryRun ? `${b.planned} would be spent` : `${b.spent} spent`;
  const left = b.limit > 0 ? `, ${b.remainingAfter} of ${b.limit} left (reserve ${b.reserve})` : "";
  const refill = b.refillsAt ? `; window refills by ${b.refillsAt}` : "";
  const stop = b.stoppedUntil ? `; stopped by 429 until ${b.stoppedUntil}` : "";
  return row(`Pulls ${b.host}`, `${used}${left}, ${b.deferred} deferred${refill}${stop}`);
}
