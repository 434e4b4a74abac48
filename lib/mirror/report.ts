/**
 * The end of a run: statistics as the seed printed them, the JSON report, and the exit status.
 * Every error text goes through the secrets mask before it lands here.
 *
 * @module
 */
import type { Secrets } from "../log/redact.ts";
import type { BandwidthUsage } from "../registry/bandwidth.ts";
import { formatReference } from "../registry/reference.ts";
import type { MirrorPlan, PlanTask } from "./plan.ts";
import type { HostBudget } from "./pull_budget.ts";
import type { SelectionEntry } from "./repository_selection.ts";
import { type LatestOutcome, namespaceOf, type TaskResult, type TaskStatus } from "./run_plan.ts";

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
  /** cosign `.sig` manifests the destination holds in step with the source (0: none carried). */
  signatures: number;
  /** cosign `.att` manifests in step. */
  attestations: number;
  /** cosign `.sbom` manifests in step. */
  sboms: number;
  /** OCI referrer manifests present at the destination (recursively). */
  referrers: number;
  /**
   * `platforms` of the entry: wanted, how (`sparse` / `rewrite`), and for an index what the
   * destination holds (`kept`, `skipped`) with the source index digest (`digest` is the written
   * one: they differ after a rewrite). `kept` null: not known (single image, or not copied).
   */
  platforms?: {
    wanted: string[];
    mode: "sparse" | "rewrite";
    kept: string[] | null;
    skipped: string[];
    sourceDigest: string | null;
    /** Platforms copied this run into an index already at the destination (tag unchanged). */
    added?: string[];
    /** Bytes not copied, estimated from the kept platforms' sizes (a copy that read them). */
    bytesSkipped?: number;
  };
}

/**
 * Docker Hub pull budget of one source host: what the plan read and what the run spent. `spent`
 * is an upper bound (the pulls counted for every copy that started; see pull_budget.ts).
 */
export interface PullBudgetEntry {
  host: string;
  limit: number;
  /** Pulls left when the plan read the limit. */
  remaining: number;
  reserve: number;
  /** Pulls the plan let the run spend. */
  planned: number;
  /** Pulls the copies that started spent (at most); in a dry run, 0. */
  spent: number;
  /** `remaining - spent` (in a dry run, `remaining - planned`). */
  remainingAfter: number;
  /** Tasks deferred because of this host (the plan's and the 429 gate's). */
  deferred: number;
  /** When the window has refilled at the latest, or null when the registry did not say. */
  refillsAt: string | null;
  /** When a host that stopped us (429) said it takes pulls again, or null. */
  stoppedUntil: string | null;
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
  /** Per rate-limited (or 429-stopped) source host, sorted by host. */
  pullBudget: PullBudgetEntry[];
  latest: {
    target: string;
    repository: string;
    code: string;
    tag: string | null;
    message: string;
  }[];
  /** Per `repositories` entry: tags listed, each rule's counts, dropped tags and why. */
  selection: SelectionEntry[];
  /** Destination namespaces whose quota stopped pushes (IMAGE_QUOTA_EXCEEDED), with the count. */
  quotaExceeded?: { target: string; namespace: string; images: number }[];
  /** A sharded run (`--shard`): which shard of how many. Absent in an unsharded run. */
  shard?: { index: number; count: number };
  /** The bandwidth limit and what it held back; absent when no limit is set. */
  bandwidth?: BandwidthUsage;
  /**
   * A run stopped before its plan was complete (stopped_report.ts): what stopped it, masked. No
   * entries then; `interrupted` tells a signal (exit 130) from a failure (exit 1).
   */
  stopped?: { code: string; message: string };
  /**
   * The config's `openshift.mirrorSets` (object names, mirrorSourcePolicy), so that
   * `report --merge --openshift-mirror-sets` writes what the shards' config says.
   */
  mirrorSets?: { name: string; sourcePolicy?: "AllowContactingSource" | "NeverContactSource" };
  /** A report merged by `report --merge`: the shards it combines (merge_reports.ts). */
  merged?: { count: number; shards: { index: number; startedAt: string; endedAt: string }[] };
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
  /** The plan's pull budget per rate-limited source host. */
  pullBudget?: readonly HostBudget[];
  /** Source hosts a 429 stopped for the run, with when they take pulls again (epoch ms). */
  stoppedHosts?: ReadonlyMap<string, number>;
  /** This run's shard (`--shard`), recorded in the report; absent when unsharded. */
  shard?: { index: number; count: number } | null;
  /** What the bandwidth limits let through and held back (null or absent: no limit). */
  bandwidth?: BandwidthUsage | null;
}

/** Turn results into the JSON report (secrets masked). */
export function buildReport(results: TaskResult[], options: BuildReportOptions): Report {
  const totals: Record<TaskStatus, number> = {
    pushed: 0,
    exists: 0,
    drift: 0,
    failed: 0,
    deferred: 0,
    planned: 0,
    skipped: 0,
  };
  const mask = (text: string) => options.secrets.mask(text);
  // An image's tasks (one per target) share its source reference: one string for all of them.
  const sources = new Map<PlanTask["source"], string>();
  const sourceOf = (task: PlanTask) => {
    let text = sources.get(task.source);
    if (text === undefined) sources.set(task.source, text = formatReference(task.source));
    return text;
  };
  const entries = results.map((result): ReportEntry => {
    totals[result.status]++;
    const entry: ReportEntry = {
      source: sourceOf(result.task),
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
      signatures: result.carried?.signatures ?? 0,
      attestations: result.carried?.attestations ?? 0,
      sboms: result.carried?.sboms ?? 0,
      referrers: result.carried?.referrers ?? 0,
    };
    const platforms = platformsEntry(result);
    if (platforms) entry.platforms = platforms;
    return entry;
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
    pullBudget: pullBudgetEntries(results, options),
    latest: options.latest.map((l) => ({
      target: l.group.target,
      repository: `${l.group.registry}/${l.group.repository}`,
      code: l.code,
      tag: l.tag ?? null,
      message: mask(l.message),
    })),
    selection: options.selection ?? [],
    ...quotaSection(results),
    ...(options.shard ? { shard: { index: options.shard.index, count: options.shard.count } } : {}),
    ...(options.bandwidth ? { bandwidth: options.bandwidth } : {}),
  };
}

/** `quotaExceeded` when a namespace's quota stopped a push, else nothing. */
function quotaSection(results: TaskResult[]): Pick<Report, "quotaExceeded"> {
  const byNamespace = new Map<string, { target: string; namespace: string; images: number }>();
  for (const r of results) {
    if (r.code !== "IMAGE_QUOTA_EXCEEDED") continue;
    const namespace = namespaceOf(r.task);
    const entry = byNamespace.get(namespace) ?? { target: r.task.target, namespace, images: 0 };
    entry.images++;
    byNamespace.set(namespace, entry);
  }
  return byNamespace.size ? { quotaExceeded: [...byNamespace.values()] } : {};
}

/** The `platforms` field of an entry whose task names platforms. */
function platformsEntry(result: TaskResult): ReportEntry["platforms"] {
  const wanted = result.task.platforms;
  if (!wanted) return undefined;
  const got = result.platforms;
  return {
    wanted: [...wanted.wanted],
    mode: wanted.mode,
    kept: got?.kept ?? null,
    skipped: got?.skipped ?? [],
    sourceDigest: got?.sourceDigest ?? result.task.sourceDigest ?? null,
    ...(got?.added ? { added: got.added } : {}),
    ...(got?.bytesSkipped !== undefined ? { bytesSkipped: got.bytesSkipped } : {}),
  };
}

/** Per host: the plan's budget, the pulls the started copies spent, deferrals, 429 stops. */
function pullBudgetEntries(results: TaskResult[], options: BuildReportOptions): PullBudgetEntry[] {
  const stopped = options.stoppedHosts ?? new Map<string, number>();
  const budgets = new Map((options.pullBudget ?? []).map((b) => [b.host, b]));
  const hosts = [...new Set([...budgets.keys(), ...stopped.keys()])].sort();
  return hosts.map((host) => {
    const budget = budgets.get(host);
    let spent = 0;
    let deferred = 0;
    for (const r of results) {
      if (r.task.source.registry !== host) continue;
      if (r.status === "deferred") deferred++;
      const started = r.status === "pushed" || r.status === "exists" || r.status === "failed";
      if (!options.dryRun && r.task.action === "push" && started) spent += r.task.pulls ?? 0;
    }
    const remaining = budget?.remaining ?? 0;
    const until = stopped.get(host);
    return {
      host,
      limit: budget?.limit ?? 0,
      remaining,
      reserve: budget?.reserve ?? 0,
      planned: budget?.planned ?? 0,
      spent,
      remainingAfter: remaining - (options.dryRun ? budget?.planned ?? 0 : spent),
      deferred,
      refillsAt: budget?.refillsAtMs ? new Date(budget.refillsAtMs).toISOString() : null,
      stoppedUntil: until === undefined ? null : new Date(until).toISOString(),
    };
  });
}

/**
 * The exit status of a finished run: 130 interrupted, 1 a run stopped early or any failure or
 * skipped task, else 0.
 */
export function exitStatus(report: Report): 0 | 1 | 130 {
  if (report.interrupted) return 130;
  if (report.stopped) return 1;
  return report.totals.failed > 0 || report.totals.skipped > 0 ? 1 : 0;
}

/** What `JSON.stringify([[entry]], null, 2)` puts before and after the entry's own lines. */
const WRAP_HEAD = "[\n  [\n".length;
const WRAP_TAIL = "\n  ]\n]".length;

/**
 * The JSON report as `JSON.stringify(report, null, 2) + "\n"` writes it, in chunks: the entries
 * one at a time, so a report of 15,000 entries is never one string (nor its bytes) in memory.
 * The file is still written whole (safe_file.ts writes the chunks to a temp file, then renames).
 */
export function* reportJsonChunks(report: Report): Generator<string> {
  const marker = `\u0000entries-${crypto.randomUUID()}\u0000`;
  const head = JSON.stringify({ ...report, entries: marker }, null, 2);
  const at = head.indexOf(JSON.stringify(marker));
  yield head.slice(0, at);
  if (report.entries.length === 0) yield "[]";
  else {
    yield "[\n";
    const last = report.entries.length - 1;
    for (const [i, entry] of report.entries.entries()) {
      // The entry as it stands in the report, indented at its depth by JSON.stringify itself:
      // one string per entry (a slice of it), not a copy re-indented and another joined.
      const text = JSON.stringify([[entry]], null, 2);
      yield text.slice(WRAP_HEAD, text.length - WRAP_TAIL);
      yield i < last ? ",\n" : "\n";
    }
    yield "  ]";
  }
  yield head.slice(at + JSON.stringify(marker).length) + "\n";
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
      if (t.code === "IMAGE_PLATFORMS_ADDED") return `would add    ${dst}: ${t.message}`;
      return `would push   ${formatReference(t.source)} -> ${dst}${repoNote}${platformsNote(t)}`;
    case "exists":
      return `exists       ${dst} (${t.comparedBy} digest matches)${platformsNote(t)}`;
    case "drift":
      return `drift        ${dst}: ${t.message}`;
    case "deferred":
      return `would defer  ${formatReference(t.source)} -> ${dst}: ${t.message}`;
    default:
      return `would fail   ${formatReference(t.source)} -> ${dst}: [${result.code}] ${t.message}`;
  }
}

/** ` [platforms linux/amd64, sparse]` (` ...: kept ..., left out ...` when known), or "". */
function platformsNote(task: TaskResult["task"]): string {
  if (!task.platforms) return "";
  const got = task.platformOutcome;
  const known = got
    ? `: holds ${got.kept.join(", ")}${
      got.skipped.length ? `, left out ${got.skipped.join(", ")}` : ""
    }`
    : "";
  return ` [platforms ${task.platforms.wanted.join(", ")}, ${task.platforms.mode}${known}]`;
}
