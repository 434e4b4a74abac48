/**
 * The end of a run as Prometheus text exposition (format 0.0.4): what node_exporter's textfile
 * collector reads from a file and what a Pushgateway takes in a PUT. Every series is a gauge: the
 * file (and the Pushgateway group) is replaced whole by each run, so a value is "the last run's",
 * never a running total; `bananna_bot_bytes_uploaded` too (a counter would have to be carried
 * from file to file and would reset whenever the file is lost, which `rate()` reads as traffic).
 * Labels hold status names, target registry names from the config and source hosts, never a
 * credential. `bananna_bot_last_success_timestamp_seconds` survives a failed run: it is read back
 * from the previous text ({@link parseLastSuccess}); 0 means no success recorded yet.
 *
 * @module
 */
import type { Report } from "../mirror/report.ts";

/** The statuses in `bananna_bot_images`, each always present (0 included). */
export const METRIC_STATUSES = [
  "pushed",
  "exists",
  "drift",
  "failed",
  "deferred",
  "skipped",
] as const;

/** What the metrics of one run are made of. */
export interface RunMetricsInput {
  /** The run's report; null when the run stopped before it had one (a login failed). */
  report: Report | null;
  exitCode: number;
  startedAt: Date;
  endedAt: Date;
  /** Target registry names of the config: each gets its series even with nothing to do. */
  targets: readonly string[];
  /** The last success before this run (epoch seconds), from the previous file; 0: none. */
  previousLastSuccess: number;
  /**
   * A sharded run's index: every sample gets the label `shard` so the shards' files can sit
   * side by side in one textfile-collector folder without clashing series.
   */
  shard?: number;
}

interface Family {
  name: string;
  help: string;
  samples: { labels?: Record<string, string>; value: number }[];
}

/**
 * The text exposition of one run, HELP and TYPE lines included, base units (seconds, bytes).
 *
 * @example
 * ```ts
 * import { metricsText } from "./metrics.ts";
 * import assert from "node:assert/strict";
 * const text = metricsText({
 *   report: null,
 *   exitCode: 1,
 *   startedAt: new Date(1_000_000),
 *   endedAt: new Date(1_002_500),
 *   targets: [],
 *   previousLastSuccess: 900,
 * });
 * assert.match(text, /^bananna_bot_last_success_timestamp_seconds 900$/m);
 * assert.match(text, /^bananna_bot_run_duration_seconds 2.5$/m);
 * ```
 */
export function metricsText(input: RunMetricsInput): string {
  const { report, exitCode, startedAt, endedAt } = input;
  const end = endedAt.getTime() / 1000;
  const entries = report?.entries ?? [];
  const totals = report?.totals;
  const families: Family[] = [
    {
      name: "bananna_bot_last_run_timestamp_seconds",
      help: "When the last mirror run ended (Unix time).",
      samples: [{ value: end }],
    },
    {
      name: "bananna_bot_last_success_timestamp_seconds",
      help: "When a mirror run last ended with exit code 0 (Unix time); 0 when none is recorded.",
      samples: [{ value: exitCode === 0 ? end : input.previousLastSuccess }],
    },
    {
      name: "bananna_bot_run_duration_seconds",
      help: "How long the last mirror run took.",
      samples: [{ value: Math.max(0, endedAt.getTime() - startedAt.getTime()) / 1000 }],
    },
    {
      name: "bananna_bot_run_exit_code",
      help:
        "Exit code of the last mirror run (0 ok, 1 failures or could not start, 130 interrupted).",
      samples: [{ value: exitCode }],
    },
    {
      name: "bananna_bot_images",
      help: "Image x target pairs of the last mirror run, by status.",
      samples: METRIC_STATUSES.map((status) => ({
        labels: { status },
        value: totals?.[status] ?? 0,
      })),
    },
    {
      name: "bananna_bot_bytes_uploaded",
      help: "Bytes the last mirror run uploaded to its destinations.",
      samples: [{ value: entries.reduce((sum, e) => sum + e.bytesUploaded, 0) }],
    },
  ];
  const some = entries.filter((e) => e.platforms?.kept);
  if (some.length > 0) {
    const count = (key: "kept" | "skipped") =>
      some.reduce((n, e) => n + (e.platforms?.[key]?.length ?? 0), 0);
    families.push({
      name: "bananna_bot_platforms",
      help:
        "Platforms of the indexes the last mirror run mirrored with `platforms`: kept (at the destination) and skipped (left out).",
      samples: [
        { labels: { kind: "kept" }, value: count("kept") },
        { labels: { kind: "skipped" }, value: count("skipped") },
      ],
    });
  }
  const targets = [...new Set([...input.targets, ...entries.map((e) => e.target)])].sort();
  if (targets.length > 0) {
    families.push({
      name: "bananna_bot_target_images",
      help:
        "Image x target pairs of the last mirror run, by target registry (config name) and status.",
      samples: targets.flatMap((target) =>
        METRIC_STATUSES.map((status) => ({
          labels: { target, status },
          value: entries.filter((e) => e.target === target && e.status === status).length,
        }))
      ),
    }, {
      name: "bananna_bot_target_quota_exceeded_images",
      help:
        "Image x target pairs of the last mirror run refused by a full namespace quota (IMAGE_QUOTA_EXCEEDED), by target.",
      samples: targets.map((target) => ({
        labels: { target },
        value: entries.filter((e) => e.target === target && e.code === "IMAGE_QUOTA_EXCEEDED")
          .length,
      })),
    }, {
      name: "bananna_bot_target_bytes_uploaded",
      help: "Bytes the last mirror run uploaded, by target registry (config name).",
      samples: targets.map((target) => ({
        labels: { target },
        value: entries.filter((e) => e.target === target).reduce((s, e) => s + e.bytesUploaded, 0),
      })),
    });
  }
  const budgets = (report?.pullBudget ?? []).filter((b) => b.limit > 0);
  if (budgets.length > 0) {
    families.push({
      name: "bananna_bot_pull_budget_remaining",
      help: "Pulls left in the source host's rate-limit window after the last run (Docker Hub).",
      samples: budgets.map((b) => ({ labels: { host: b.host }, value: b.remainingAfter })),
    }, {
      name: "bananna_bot_pull_budget_limit",
      help: "Pulls the source host's rate-limit window allows (ratelimit-limit).",
      samples: budgets.map((b) => ({ labels: { host: b.host }, value: b.limit })),
    });
  }
  if (input.shard !== undefined) {
    const shard = String(input.shard);
    for (const family of families) {
      family.samples = family.samples.map((sample) => ({
        ...sample,
        labels: { shard, ...sample.labels },
      }));
    }
  }
  return families.map(formatFamily).join("");
}

function formatFamily(family: Family): string {
  const lines = [`# HELP ${family.name} ${family.help}`, `# TYPE ${family.name} gauge`];
  for (const sample of family.samples) {
    const labels = Object.entries(sample.labels ?? {}).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
    lines.push(`${family.name}${labels.length ? `{${labels.join(",")}}` : ""} ${sample.value}`);
  }
  return lines.join("\n") + "\n";
}

/** A label value in the text format: backslash, double quote and newline escaped. */
export function escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

/**
 * `bananna_bot_last_success_timestamp_seconds` from a previous metrics text, or 0 when it is
 * missing, unreadable or not a sane time (negative, NaN).
 */
export function parseLastSuccess(text: string | null): number {
  if (!text) return 0;
  const match = /^bananna_bot_last_success_timestamp_seconds(?:\{[^}]*\})?[ \t]+(\S+)/m.exec(text);
  const value = match ? Number(match[1]) : NaN;
  return Number.isFinite(value) && value >= 0 ? value : 0;
}
