/**
 * `bananna-bot report --merge DIR`: the reports of a sharded run (`last-report.<index>.json`, one
 * per shard, shard.ts) combined into one report with the totals and the exit code of a single
 * run ({@link exitStatus} applies unchanged).
 *
 * Every shard records `shard: { index, count }`; the merge needs exactly one report for every
 * index below that count, all with the same count and all real runs or all dry runs, else it
 * fails with MIRROR_MERGE_FAILED naming what is missing (a shard that never wrote its report is
 * a failed run, not a smaller one). The merged report:
 * - `entries`: every shard's, sorted by destination then target (shards finish in any order);
 * - `totals`: the sums; `interrupted`: any shard's; `startedAt`/`endedAt`: the earliest/latest;
 * - `stopped`: the first shard's that stopped before its plan was complete (its index named);
 * - `latest`, `selection`: every shard's (`latest` sorted by repository);
 * - `pullBudget` per host: each shard planned with its share of the budget (`reserve +
 *   (remaining - reserve) / count`, pull_budget.ts) and reported that share as `remaining`; the
 *   merge adds the shares back up with the reserve once (`reserve + sum(remaining - reserve)`),
 *   sums `planned`/`spent`/`deferred`, recomputes `remainingAfter` as a single run does, and
 *   keeps the highest limit and reserve and the latest refill and 429 stop;
 * - `merged`: the count and each shard's start and end; no `shard` field.
 *
 * @module
 */
import { z } from "../zod.ts";
import { errorMessage, MirrorError } from "../errors.ts";
import { FileInputError, readJsonFile } from "../safe_file.ts";
import type { PullBudgetEntry, Report, ReportEntry } from "./report.ts";

/** A shard's report as read from the dir. */
export interface ShardReportFile {
  /** The file's path. */
  path: string;
  report: Report;
}

const SHARD_REPORT = /^last-report\.(\d+)\.json$/;

/** Bytes one shard report may have (about 8,000 entries); a file from outside like any other. */
const MAX_SHARD_REPORT_BYTES = 4 * 1024 * 1024;

/** Shards a run may have (as shard.ts allows). */
const MAX_SHARDS = 1000;

const count = z.number().check(z.int(), z.nonnegative(), z.lte(Number.MAX_SAFE_INTEGER));
const when = z.string().check(z.refine((t) => Number.isFinite(Date.parse(t)), "not a time"));
const status = z.enum(["pushed", "exists", "drift", "failed", "deferred", "planned", "skipped"]);

/** A shard's report as `report --merge` reads it: every field it adds up or copies, checked. */
const shardReportSchema = z.object({
  tool: z.literal("bananna-bot"),
  version: z.string(),
  engine: z.string(),
  config: z.string(),
  dryRun: z.boolean(),
  interrupted: z.boolean(),
  startedAt: when,
  endedAt: when,
  totals: z.pipe(
    z.object(Object.fromEntries(status.options.map((s) => [s, z._default(count, 0)]))),
    z.object({
      pushed: count,
      exists: count,
      drift: count,
      failed: count,
      deferred: count,
      planned: count,
      skipped: count,
    }),
  ),
  entries: z.array(z.object({
    source: z.string(),
    target: z.string(),
    destination: z.string(),
    status,
    digest: z.nullable(z.string()),
    code: z.string(),
    error: z.nullable(z.string()),
    comparedBy: z.string(),
    repo: z.nullable(z.enum(["created", "exists"])),
    bytesUploaded: count,
    durationMs: count,
    signatures: z._default(count, 0),
    attestations: z._default(count, 0),
    sboms: z._default(count, 0),
    referrers: z._default(count, 0),
    platforms: z.optional(z.object({
      wanted: z.array(z.string()),
      mode: z.enum(["sparse", "rewrite"]),
      kept: z.nullable(z.array(z.string())),
      skipped: z.array(z.string()),
      sourceDigest: z.nullable(z.string()),
      added: z.optional(z.array(z.string())),
    })),
  })),
  pullBudget: z._default(
    z.array(z.object({
      host: z.string(),
      limit: count,
      remaining: count,
      reserve: count,
      planned: count,
      spent: count,
      remainingAfter: z.number().check(
        z.int(),
        z.gte(-Number.MAX_SAFE_INTEGER),
        z.lte(Number.MAX_SAFE_INTEGER),
      ),
      deferred: count,
      refillsAt: z.nullable(z.string()),
      stoppedUntil: z.nullable(z.string()),
    })),
    [],
  ),
  latest: z.array(z.object({
    target: z.string(),
    repository: z.string(),
    code: z.string(),
    tag: z.nullable(z.string()),
    message: z.string(),
  })),
  selection: z._default(
    z.array(z.object({
      repository: z.string(),
      listed: z.array(z.string()),
      selected: z.array(z.string()),
      mutable: z.array(z.string()),
      rules: z.array(z.object({ rule: z.string(), kept: count, dropped: count })),
      dropped: z.array(z.object({ tag: z.string(), rule: z.string(), reason: z.string() })),
      code: z.nullable(z.string()),
      error: z.nullable(z.string()),
    })),
    [],
  ),
  shard: z.optional(
    z.object({ index: count, count: count.check(z.gte(1), z.lte(MAX_SHARDS)) }).check(
      z.refine((s) => s.index < s.count, "index must be below count"),
    ),
  ),
  bandwidth: z.optional(z.object({
    bytesPerSecond: z.nullable(count),
    hosts: z.record(z.string(), count),
    downloadBytes: count,
    uploadBytes: count,
    waitedSeconds: z.number().check(z.nonnegative()),
  })),
  stopped: z.optional(z.object({ code: z.string(), message: z.string() })),
  quotaExceeded: z.optional(
    z.array(z.object({ target: z.string(), namespace: z.string(), images: count })),
  ),
  mirrorSets: z.optional(z.object({
    name: z.string(),
    sourcePolicy: z.optional(z.enum(["AllowContactingSource", "NeverContactSource"])),
  })),
});

/**
 * Compile-time: every field of a report (and of an entry) is in the schema. zod drops keys it does
 * not know, so a field added to Report without a line here would vanish from merged reports.
 */
type Missing<A, B> = Exclude<keyof A, keyof B>;
type ShardReport = z.output<typeof shardReportSchema>;
const _everyReportKey: [Missing<Omit<Report, "merged">, ShardReport>] extends [never] ? true
  : Missing<Omit<Report, "merged">, ShardReport> = true;
const _everyEntryKey: [Missing<ReportEntry, ShardReport["entries"][number]>] extends [never] ? true
  : Missing<ReportEntry, ShardReport["entries"][number]> = true;

/** A shard report read from `path`: checked, typed, never cast. */
async function readShardReport(path: string): Promise<Report> {
  return await readJsonFile(path, shardReportSchema, {
    what: "a bananna-bot shard report",
    maxBytes: MAX_SHARD_REPORT_BYTES,
  });
}

/**
 * Read every `last-report.<index>.json` in `dir` (sorted by index).
 *
 * @throws {MirrorError} MIRROR_MERGE_FAILED when the dir cannot be read, holds no shard report,
 *   or a report is not JSON.
 */
export async function readShardReports(dir: string): Promise<ShardReportFile[]> {
  const found: { index: number; path: string }[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) {
      const match = SHARD_REPORT.exec(entry.name);
      if (match && entry.isFile) {
        found.push({ index: Number(match[1]), path: `${dir}/${entry.name}` });
      }
    }
  } catch (error) {
    throw new MirrorError(
      "MIRROR_MERGE_FAILED",
      `Cannot read the shard reports in ${dir}: ${errorMessage(error)}`,
      { cause: error },
    );
  }
  if (found.length === 0) {
    throw new MirrorError(
      "MIRROR_MERGE_FAILED",
      `${dir} holds no shard report (last-report.<index>.json, written by mirror --shard)`,
    );
  }
  found.sort((a, b) => a.index - b.index);
  const files: ShardReportFile[] = [];
  for (const { path } of found) {
    let report: Report;
    try {
      report = await readShardReport(path);
    } catch (error) {
      if (!(error instanceof FileInputError)) throw error;
      throw new MirrorError("MIRROR_MERGE_FAILED", `Cannot merge: ${error.message}`, {
        cause: error,
      });
    }
    files.push({ path, report });
  }
  return files;
}

/**
 * Merge the shard reports of one sharded run (see the module doc).
 *
 * @throws {MirrorError} MIRROR_MERGE_FAILED when a report has no shard, the counts disagree, an
 *   index is missing or twice, or dry runs and real runs are mixed.
 */
export function mergeReports(files: ShardReportFile[]): Report {
  if (files.length === 0) throw new MirrorError("MIRROR_MERGE_FAILED", "No shard report to merge");
  for (const { path, report } of files) {
    if (!report.shard) {
      throw new MirrorError(
        "MIRROR_MERGE_FAILED",
        `${path} is not a shard's report (no "shard" field: written by a run without --shard)`,
      );
    }
  }
  const count = (files[0].report.shard as { count: number }).count;
  const byIndex = new Map<number, ShardReportFile>();
  for (const file of files) {
    const shard = file.report.shard as { index: number; count: number };
    if (shard.count !== count) {
      throw new MirrorError(
        "MIRROR_MERGE_FAILED",
        `${file.path} is shard ${shard.index} of ${shard.count}, but ${
          files[0].path
        } is of ${count}: reports of different splits (remove the stale ones)`,
      );
    }
    const twice = byIndex.get(shard.index);
    if (twice) {
      throw new MirrorError(
        "MIRROR_MERGE_FAILED",
        `${twice.path} and ${file.path} are both shard ${shard.index} of ${count}`,
      );
    }
    byIndex.set(shard.index, file);
  }
  const missing = [...Array(count).keys()].filter((i) => !byIndex.has(i));
  if (missing.length > 0) {
    throw new MirrorError(
      "MIRROR_MERGE_FAILED",
      `Incomplete: ${count} shard(s), but no report from shard ${missing.join(", ")} (last-report.${
        missing[0]
      }.json): that shard did not finish or wrote elsewhere`,
    );
  }
  const dryRuns = new Set(files.map((f) => f.report.dryRun));
  if (dryRuns.size > 1) {
    throw new MirrorError("MIRROR_MERGE_FAILED", "Dry-run and real shard reports are mixed");
  }
  refuseStale([...byIndex.values()]);
  const reports = [...byIndex.entries()].sort(([a], [b]) => a - b).map(([, f]) => f.report);
  const first = reports[0];
  const totals = { ...first.totals };
  for (const key of Object.keys(totals) as (keyof Report["totals"])[]) {
    totals[key] = reports.reduce((sum, r) => sum + (r.totals[key] ?? 0), 0);
  }
  const entries = reports.flatMap((r) => r.entries).sort((a, b) =>
    compare(a.destination, b.destination) || compare(a.target, b.target)
  );
  return {
    tool: "bananna-bot",
    version: first.version,
    engine: first.engine,
    config: first.config,
    dryRun: first.dryRun,
    interrupted: reports.some((r) => r.interrupted),
    startedAt: reports.map((r) => r.startedAt).sort()[0],
    endedAt: reports.map((r) => r.endedAt).sort().at(-1) as string,
    totals,
    entries,
    pullBudget: mergePullBudget(reports.flatMap((r) => r.pullBudget ?? []), first.dryRun),
    latest: reports.flatMap((r) => r.latest).sort((a, b) =>
      compare(a.repository, b.repository) || compare(a.target, b.target)
    ),
    selection: reports.flatMap((r) => r.selection ?? []),
    ...firstStopped(reports),
    ...mergeQuota(reports),
    ...(reports.find((r) => r.mirrorSets)
      ? { mirrorSets: reports.find((r) => r.mirrorSets)?.mirrorSets }
      : {}),
    merged: {
      count,
      shards: reports.map((r) => ({
        index: (r.shard as { index: number }).index,
        startedAt: r.startedAt,
        endedAt: r.endedAt,
      })),
    },
  };
}

/** The namespaces over quota in any shard, images added up per (target, namespace). */
function mergeQuota(reports: Report[]): Pick<Report, "quotaExceeded"> {
  const all = reports.flatMap((r) => r.quotaExceeded ?? []);
  if (all.length === 0) return {};
  const byKey = new Map<string, { target: string; namespace: string; images: number }>();
  for (const q of all) {
    const key = `${q.target}\n${q.namespace}`;
    const seen = byKey.get(key);
    if (seen) seen.images += q.images;
    else byKey.set(key, { ...q });
  }
  return {
    quotaExceeded: [...byKey.values()].sort((a, b) =>
      compare(a.target, b.target) || compare(a.namespace, b.namespace)
    ),
  };
}

/**
 * The shards of one run start together (one Indexed Job, one cron minute): a report that started
 * more than {@link STALE_SPREAD_MS} before the newest shard's is a leftover of an earlier run
 * (that shard did not write this time), not part of this one.
 */
const STALE_SPREAD_MS = 12 * 3600_000;

function refuseStale(files: ShardReportFile[]): void {
  const started = (f: ShardReportFile) => Date.parse(f.report.startedAt);
  const newest = files.reduce((a, b) => (started(b) > started(a) ? b : a));
  const stale = files.filter((f) => started(newest) - started(f) > STALE_SPREAD_MS);
  if (stale.length === 0) return;
  throw new MirrorError(
    "MIRROR_MERGE_FAILED",
    `Stale: ${
      stale.map((f) => `${f.path} (started ${f.report.startedAt})`).join(", ")
    } started more than ${
      STALE_SPREAD_MS / 3600_000
    } h before ${newest.path} (started ${newest.report.startedAt}): a report of an earlier run; that shard did not finish this time`,
  );
}

function firstStopped(reports: Report[]): Pick<Report, "stopped"> {
  const r = reports.find((r) => r.stopped);
  if (!r?.stopped) return {};
  return {
    stopped: { code: r.stopped.code, message: `shard ${r.shard?.index}: ${r.stopped.message}` },
  };
}

function mergePullBudget(budgets: PullBudgetEntry[], dryRun: boolean): PullBudgetEntry[] {
  const byHost = new Map<string, PullBudgetEntry[]>();
  for (const b of budgets) byHost.set(b.host, [...(byHost.get(b.host) ?? []), b]);
  return [...byHost.keys()].sort().map((host) => {
    const all = byHost.get(host) as PullBudgetEntry[];
    const sum = (pick: (b: PullBudgetEntry) => number) => all.reduce((n, b) => n + pick(b), 0);
    const latest = (pick: (b: PullBudgetEntry) => string | null) =>
      all.map(pick).filter((v): v is string => v !== null).sort().at(-1) ?? null;
    const reserve = Math.max(...all.map((b) => b.reserve));
    const remaining = reserve + sum((b) => Math.max(0, b.remaining - reserve));
    const planned = sum((b) => b.planned);
    const spent = sum((b) => b.spent);
    return {
      host,
      limit: Math.max(...all.map((b) => b.limit)),
      remaining,
      reserve,
      planned,
      spent,
      remainingAfter: remaining - (dryRun ? planned : spent),
      deferred: sum((b) => b.deferred),
      refillsAt: latest((b) => b.refillsAt),
      stoppedUntil: latest((b) => b.stoppedUntil),
    };
  });
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
