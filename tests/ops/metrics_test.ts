import assert from "node:assert/strict";
import { escapeLabel, metricsText, parseLastSuccess } from "../../lib/ops/metrics.ts";
import type { Report, ReportEntry } from "../../lib/mirror/report.ts";
import { runProcess } from "../support/process.ts";

function entry(target: string, status: ReportEntry["status"], bytesUploaded = 0): ReportEntry {
  return {
    source: "src.example/team/app:1",
    target,
    destination: `dst.example/m/app:1`,
    status,
    digest: null,
    code: "IMAGE_PUSHED",
    error: null,
    comparedBy: "manifest",
    repo: null,
    bytesUploaded,
    signatures: 0,
    attestations: 0,
    sboms: 0,
    referrers: 0,
    durationMs: 1,
  };
}

function report(entries: ReportEntry[], pullBudget: Report["pullBudget"] = []): Report {
  const totals = { pushed: 0, exists: 0, drift: 0, failed: 0, deferred: 0, planned: 0, skipped: 0 };
  for (const e of entries) totals[e.status]++;
  return {
    tool: "bananna-bot",
    version: "0",
    engine: "registry",
    config: "/c.yaml",
    dryRun: false,
    interrupted: false,
    startedAt: "2026-11-30T05:00:00.000Z",
    endedAt: "2026-11-30T05:00:10.000Z",
    totals,
    entries,
    pullBudget,
    latest: [],
    selection: [],
  };
}

const BUDGET = {
  host: "docker.io",
  limit: 100,
  remaining: 40,
  reserve: 10,
  planned: 3,
  spent: 3,
  remainingAfter: 37,
  deferred: 0,
  refillsAt: null,
  stoppedUntil: null,
};

Deno.test("metricsText(): every series written out, per target, budget, label escaping", async () => {
  const text = metricsText({
    report: report(
      [
        entry("prod", "pushed", 1000),
        { ...entry('we"ird\\name\nx', "failed"), code: "IMAGE_QUOTA_EXCEEDED" },
        entry("prod", "drift"),
      ],
      [BUDGET, { ...BUDGET, host: "ghcr.io", limit: 0 }],
    ),
    exitCode: 1,
    startedAt: new Date("2026-11-30T05:00:00.000Z"),
    endedAt: new Date("2026-11-30T05:00:12.500Z"),
    targets: ["prod", "spare"],
    previousLastSuccess: 1764460000,
  });
  const lines = text.split("\n").filter((l) => l && !l.startsWith("#"));
  assert.deepEqual(lines, [
    "bananna_bot_last_run_timestamp_seconds 1796014812.5",
    "bananna_bot_last_success_timestamp_seconds 1764460000",
    "bananna_bot_run_duration_seconds 12.5",
    "bananna_bot_run_exit_code 1",
    'bananna_bot_images{status="pushed"} 1',
    'bananna_bot_images{status="exists"} 0',
    'bananna_bot_images{status="drift"} 1',
    'bananna_bot_images{status="failed"} 1',
    'bananna_bot_images{status="deferred"} 0',
    'bananna_bot_images{status="skipped"} 0',
    "bananna_bot_bytes_uploaded 1000",
    'bananna_bot_target_images{target="prod",status="pushed"} 1',
    'bananna_bot_target_images{target="prod",status="exists"} 0',
    'bananna_bot_target_images{target="prod",status="drift"} 1',
    'bananna_bot_target_images{target="prod",status="failed"} 0',
    'bananna_bot_target_images{target="prod",status="deferred"} 0',
    'bananna_bot_target_images{target="prod",status="skipped"} 0',
    'bananna_bot_target_images{target="spare",status="pushed"} 0',
    'bananna_bot_target_images{target="spare",status="exists"} 0',
    'bananna_bot_target_images{target="spare",status="drift"} 0',
    'bananna_bot_target_images{target="spare",status="failed"} 0',
    'bananna_bot_target_images{target="spare",status="deferred"} 0',
    'bananna_bot_target_images{target="spare",status="skipped"} 0',
    'bananna_bot_target_images{target="we\\"ird\\\\name\\nx",status="pushed"} 0',
    'bananna_bot_target_images{target="we\\"ird\\\\name\\nx",status="exists"} 0',
    'bananna_bot_target_images{target="we\\"ird\\\\name\\nx",status="drift"} 0',
    'bananna_bot_target_images{target="we\\"ird\\\\name\\nx",status="failed"} 1',
    'bananna_bot_target_images{target="we\\"ird\\\\name\\nx",status="deferred"} 0',
    'bananna_bot_target_images{target="we\\"ird\\\\name\\nx",status="skipped"} 0',
    'bananna_bot_target_quota_exceeded_images{target="prod"} 0',
    'bananna_bot_target_quota_exceeded_images{target="spare"} 0',
    'bananna_bot_target_quota_exceeded_images{target="we\\"ird\\\\name\\nx"} 1',
    'bananna_bot_target_bytes_uploaded{target="prod"} 1000',
    'bananna_bot_target_bytes_uploaded{target="spare"} 0',
    'bananna_bot_target_bytes_uploaded{target="we\\"ird\\\\name\\nx"} 0',
    'bananna_bot_pull_budget_remaining{host="docker.io"} 37',
    'bananna_bot_pull_budget_limit{host="docker.io"} 100',
  ]);
  // Every family has HELP and TYPE; promtool (the real one) accepts the escaped labels.
  assert.equal(text.match(/^# HELP /gm)?.length, 11);
  assert.equal(text.match(/^# TYPE \S+ gauge$/gm)?.length, 11);
  const check = await runProcess("promtool", ["check", "metrics"], { stdin: text });
  assert.equal(check.code, 0, check.stdout + check.stderr);
});

Deno.test("metricsText(): exit 0 makes this run's end the last success", () => {
  const text = metricsText({
    report: null,
    exitCode: 0,
    startedAt: new Date(1_000_000),
    endedAt: new Date(1_004_000),
    targets: [],
    previousLastSuccess: 5,
  });
  assert.match(text, /^bananna_bot_last_success_timestamp_seconds 1004$/m);
  assert.doesNotMatch(text, /bananna_bot_target_images/);
});

Deno.test("parseLastSuccess(): the value, or 0 when missing or not a sane time", () => {
  assert.equal(
    parseLastSuccess("bananna_bot_last_success_timestamp_seconds 1764460000.25\n"),
    1764460000.25,
  );
  assert.equal(parseLastSuccess('bananna_bot_last_success_timestamp_seconds{x="y"} 12\n'), 12);
  assert.equal(
    parseLastSuccess("# HELP bananna_bot_last_success_timestamp_seconds x\nother 5\n"),
    0,
  );
  assert.equal(parseLastSuccess("bananna_bot_last_success_timestamp_seconds -3\n"), 0);
  assert.equal(parseLastSuccess("bananna_bot_last_success_timestamp_seconds NaN\n"), 0);
  assert.equal(parseLastSuccess("bananna_bot_last_success_timestamp_seconds +Inf\n"), 0);
  assert.equal(parseLastSuccess(null), 0);
  assert.equal(escapeLabel('a"b\\c\nd'), 'a\\"b\\\\c\\nd');
});

Deno.test("metricsText(): platforms kept and skipped over the entries mirrored with platforms", async () => {
  const platforms = (kept: string[] | null, skipped: string[]) => ({
    wanted: ["linux/amd64"],
    mode: "sparse" as const,
    kept,
    skipped,
    sourceDigest: null,
  });
  const text = metricsText({
    report: report([
      { ...entry("prod", "pushed"), platforms: platforms(["linux/amd64"], ["linux/arm64"]) },
      {
        ...entry("prod", "exists"),
        platforms: platforms(["linux/amd64"], ["linux/arm64", "linux/s390x"]),
      },
      { ...entry("prod", "failed"), platforms: platforms(null, []) },
      entry("prod", "pushed"),
    ]),
    exitCode: 1,
    startedAt: new Date("2026-11-30T05:00:00.000Z"),
    endedAt: new Date("2026-11-30T05:00:01.000Z"),
    targets: ["prod"],
    previousLastSuccess: 0,
  });
  const lines = text.split("\n").filter((l) => l.startsWith("bananna_bot_platforms"));
  assert.deepEqual(lines, [
    'bananna_bot_platforms{kind="kept"} 2',
    'bananna_bot_platforms{kind="skipped"} 3',
  ]);
  const check = await runProcess("promtool", ["check", "metrics"], { stdin: text });
  assert.equal(check.code, 0, check.stdout + check.stderr);
  // No entry with platforms: no such family.
  assert.doesNotMatch(
    metricsText({
      report: report([entry("prod", "pushed")]),
      exitCode: 0,
      startedAt: new Date(0),
      endedAt: new Date(0),
      targets: [],
      previousLastSuccess: 0,
    }),
    /bananna_bot_platforms/,
  );
});
