/**
 * merge_reports.ts: shard reports on disk combined into one (totals, entries, latest, pull
 * budget, exit status), and every way a set of shard reports is refused (MIRROR_MERGE_FAILED).
 */
import assert from "node:assert/strict";
import { MirrorError } from "../../lib/errors.ts";
import { mergeReports, readShardReports } from "../../lib/mirror/merge_reports.ts";
import { exitStatus, type Report, type ReportEntry } from "../../lib/mirror/report.ts";
import { within } from "../support/bounded.ts";
import { runCli } from "../support/cli.ts";

function entry(destination: string, status: ReportEntry["status"]): ReportEntry {
  return {
    source: `src.example.com/${destination.split("/").slice(1).join("/")}`,
    target: "dr",
    destination: `dst.example.com/${destination}`,
    status,
    digest: status === "failed" ? null : "sha256:" + "a".repeat(64),
    code: status === "failed" ? "IMAGE_NOT_FOUND" : "IMAGE_PUSHED",
    error: status === "failed" ? "not found" : null,
    comparedBy: "manifest",
    repo: null,
    bytesUploaded: 100,
    signatures: 0,
    attestations: 0,
    sboms: 0,
    referrers: 0,
    durationMs: 5,
  };
}

function shardReport(index: number, count: number, entries: ReportEntry[]): Report {
  const totals = { pushed: 0, exists: 0, drift: 0, failed: 0, deferred: 0, planned: 0, skipped: 0 };
  for (const e of entries) totals[e.status]++;
  return {
    tool: "bananna-bot",
    version: "1.0.0",
    engine: "registry",
    config: "/etc/bb/config.yaml",
    dryRun: false,
    interrupted: false,
    startedAt: `2026-11-30T02:00:0${index}.000Z`,
    endedAt: `2026-11-30T02:10:0${index}.000Z`,
    totals,
    entries,
    pullBudget: [{
      host: "docker.io",
      limit: 100,
      remaining: 40 - index,
      reserve: 10,
      planned: 2,
      spent: 2,
      remainingAfter: 38 - index,
      deferred: index,
      refillsAt: `2026-11-30T0${3 + index}:00:00.000Z`,
      stoppedUntil: null,
    }],
    latest: [{
      target: "dr",
      repository: `dst.example.com/mirror/r${index}`,
      code: "IMAGE_LATEST_UPDATED",
      tag: "2.0",
      message: "moved",
    }],
    selection: [],
    shard: { index, count },
  };
}

async function writeReports(reports: Report[]): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "bb-merge-" });
  for (const r of reports) {
    await Deno.writeTextFile(`${dir}/last-report.${r.shard?.index}.json`, JSON.stringify(r));
  }
  // Not a shard report: ignored by the reader.
  await Deno.writeTextFile(`${dir}/last-report.json`, "{}");
  return dir;
}

Deno.test("mergeReports() sums totals, sorts entries, keeps latest and the pull budget", async () => {
  const dir = await writeReports([
    shardReport(1, 3, [entry("mirror/web:1", "pushed"), entry("mirror/web:2", "exists")]),
    shardReport(0, 3, [entry("mirror/app:1", "pushed"), entry("mirror/app:2", "drift")]),
    shardReport(2, 3, [entry("mirror/db:1", "exists")]),
  ]);
  try {
    const files = await readShardReports(dir);
    assert.deepEqual(files.map((f) => f.path), [
      `${dir}/last-report.0.json`,
      `${dir}/last-report.1.json`,
      `${dir}/last-report.2.json`,
    ]);
    const merged = mergeReports(files);
    assert.deepEqual(merged.totals, {
      pushed: 2,
      exists: 2,
      drift: 1,
      failed: 0,
      deferred: 0,
      planned: 0,
      skipped: 0,
    });
    assert.deepEqual(merged.entries.map((e) => `${e.destination} ${e.status}`), [
      "dst.example.com/mirror/app:1 pushed",
      "dst.example.com/mirror/app:2 drift",
      "dst.example.com/mirror/db:1 exists",
      "dst.example.com/mirror/web:1 pushed",
      "dst.example.com/mirror/web:2 exists",
    ]);
    assert.equal(merged.startedAt, "2026-11-30T02:00:00.000Z");
    assert.equal(merged.endedAt, "2026-11-30T02:10:02.000Z");
    assert.deepEqual(merged.latest.map((l) => l.repository), [
      "dst.example.com/mirror/r0",
      "dst.example.com/mirror/r1",
      "dst.example.com/mirror/r2",
    ]);
    assert.deepEqual(merged.pullBudget, [{
      host: "docker.io",
      limit: 100,
      remaining: 97, // the shares added back up: 10 + 30 + 29 + 28
      reserve: 10,
      planned: 6,
      spent: 6,
      remainingAfter: 91,
      deferred: 3,
      refillsAt: "2026-11-30T05:00:00.000Z",
      stoppedUntil: null,
    }]);
    assert.equal(merged.shard, undefined);
    assert.deepEqual(merged.merged?.shards.map((s) => s.index), [0, 1, 2]);
    assert.equal(merged.merged?.count, 3);
    assert.equal(exitStatus(merged), 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("mergeReports(): a failed entry in one shard, or an interrupted shard, sets the exit status", () => {
  const ok = shardReport(0, 2, [entry("mirror/app:1", "pushed")]);
  const failed = shardReport(1, 2, [entry("mirror/web:1", "failed")]);
  const merged = mergeReports([{ path: "a", report: ok }, { path: "b", report: failed }]);
  assert.equal(merged.totals.failed, 1);
  assert.equal(exitStatus(merged), 1);
  const stopped = { ...shardReport(1, 2, []), interrupted: true };
  assert.equal(
    exitStatus(mergeReports([{ path: "a", report: ok }, { path: "b", report: stopped }])),
    130,
  );
});

Deno.test("mergeReports(): a shard stopped before its plan (a refused login) fails the merged run, named", () => {
  const ok = shardReport(0, 2, [entry("mirror/app:1", "pushed")]);
  const stopped: Report = {
    ...shardReport(1, 2, []),
    stopped: { code: "LOGIN_FAILED", message: "quay.example: login refused" },
  };
  assert.equal(exitStatus(stopped), 1);
  const merged = mergeReports([{ path: "a", report: ok }, { path: "b", report: stopped }]);
  assert.deepEqual(merged.stopped, {
    code: "LOGIN_FAILED",
    message: "shard 1: quay.example: login refused",
  });
  assert.equal(exitStatus(merged), 1);
});

Deno.test("mergeReports() refuses an incomplete or inconsistent set (MIRROR_MERGE_FAILED)", async (t) => {
  const r = (index: number, count: number) => ({
    path: `last-report.${index}.json`,
    report: shardReport(index, count, []),
  });
  const unsharded = { path: "x.json", report: { ...shardReport(0, 1, []), shard: undefined } };
  const dry = { path: "last-report.1.json", report: { ...shardReport(1, 2, []), dryRun: true } };
  const rows: [string, Parameters<typeof mergeReports>[0], RegExp][] = [
    [
      "a missing shard",
      [r(0, 3), r(2, 3)],
      /Incomplete: 3 shard\(s\), but no report from shard 1 \(last-report\.1\.json\)/,
    ],
    ["counts disagree", [r(0, 2), r(1, 3)], /is shard 1 of 3, but last-report\.0\.json is of 2/],
    ["the same index twice", [r(0, 2), r(0, 2), r(1, 2)], /are both shard 0 of 2/],
    ["an unsharded report", [unsharded], /not a shard's report/],
    ["dry and real runs mixed", [r(0, 2), dry], /Dry-run and real shard reports are mixed/],
    [
      "a shard's report left from the night before",
      [r(0, 2), {
        path: "last-report.1.json",
        report: { ...shardReport(1, 2, []), startedAt: "2026-11-29T02:00:01.000Z" },
      }],
      /Stale: last-report\.1\.json \(started 2026-11-29T02:00:01\.000Z\) started more than 12 h before last-report\.0\.json/,
    ],
    ["nothing", [], /No shard report/],
  ];
  for (const [name, files, message] of rows) {
    await t.step(name, () => {
      assert.throws(
        () => mergeReports(files),
        (e) =>
          e instanceof MirrorError && e.code === "MIRROR_MERGE_FAILED" && message.test(e.message),
      );
    });
  }
});

Deno.test("readShardReports() refuses an empty dir and a report that is not JSON", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bb-merge-" });
  try {
    await assert.rejects(
      () => readShardReports(dir),
      (e) => e instanceof MirrorError && /holds no shard report/.test(e.message),
    );
    await Deno.writeTextFile(`${dir}/last-report.0.json`, "{ half");
    await assert.rejects(
      () => readShardReports(dir),
      (e) =>
        e instanceof MirrorError &&
        e.message.includes(`Cannot merge: ${dir}/last-report.0.json is not JSON`),
    );
    await Deno.writeTextFile(`${dir}/last-report.0.json`, '{"tool":"other"}');
    await assert.rejects(
      () => readShardReports(dir),
      (e) =>
        e instanceof MirrorError &&
        /last-report\.0\.json is not a bananna-bot shard report: tool: /.test(e.message),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// Before: count 1e9 crashed V8 (out of memory), -1 and 1.5 and entries [null] were an internal
// error, string totals were concatenated into the merged report, and /dev/zero was read forever.
Deno.test("report --merge refuses shard reports with hostile values or files, naming the file (exit 1)", async (t) => {
  const base = () =>
    JSON.parse(JSON.stringify(shardReport(0, 1, [entry("mirror/web:1", "pushed")])));
  const rows: [string, (r: Record<string, unknown>) => unknown, RegExp][] = [
    ["shard.count 1e9", (r) => (r.shard = { index: 0, count: 1e9 }), /shard\.count: /],
    ["shard.count -1", (r) => (r.shard = { index: 0, count: -1 }), /shard\.count: /],
    ["shard.count 1.5", (r) => (r.shard = { index: 0, count: 1.5 }), /shard\.count: /],
    [
      "shard.index past count",
      (r) => (r.shard = { index: 2, count: 2 }),
      /shard: index must be below count/,
    ],
    ["entries [null]", (r) => (r.entries = [null]), /entries\.0: /],
    [
      "a string total",
      (r) => ((r.totals as Record<string, unknown>).pushed = "1"),
      /totals\.pushed: /,
    ],
    [
      "a string pull budget",
      (r) => ((r.pullBudget as Record<string, unknown>[])[0].spent = "2"),
      /pullBudget\.0\.spent: /,
    ],
    [
      "a negative duration",
      (r) => ((r.entries as Record<string, unknown>[])[0].durationMs = -5),
      /entries\.0\.durationMs: /,
    ],
  ];
  for (const [name, spoil, pattern] of rows) {
    await t.step(name, () =>
      within(20_000, name, async () => {
        const dir = await Deno.makeTempDir({ prefix: "bb-merge-hostile-" });
        try {
          const report = base();
          spoil(report);
          await Deno.writeTextFile(`${dir}/last-report.0.json`, JSON.stringify(report));
          const out = await runCli(["report", "--merge", dir], { timeoutMs: 15_000 });
          assert.equal(out.code, 1, out.stderr + out.stdout);
          assert.match(out.stderr, /MIRROR_MERGE_FAILED|Cannot merge/);
          assert.match(out.stderr, /last-report\.0\.json is not a bananna-bot shard report: /);
          assert.match(out.stderr, pattern);
          assert.doesNotMatch(out.stderr, /internal error|\n\s+at /i);
        } finally {
          await Deno.remove(dir, { recursive: true });
        }
      }));
  }
  for (
    const [name, make, pattern] of [
      [
        "a 5 MiB report",
        (p: string) => Deno.writeTextFile(p, `{"pad":"${"x".repeat(5 * 1024 * 1024)}"}`),
        /more than its 4194304-byte cap/,
      ],
    ] as const
  ) {
    await t.step(name, () =>
      within(20_000, name, async () => {
        const dir = await Deno.makeTempDir({ prefix: "bb-merge-hostile-" });
        try {
          await make(`${dir}/last-report.0.json`);
          const out = await runCli(["report", "--merge", dir], { timeoutMs: 15_000 });
          assert.equal(out.code, 1, out.stderr + out.stdout);
          assert.match(out.stderr, pattern);
          assert.doesNotMatch(out.stderr, /internal error|\n\s+at /i);
        } finally {
          await Deno.remove(dir, { recursive: true });
        }
      }));
  }
});

Deno.test("report --merge keeps every field a shard wrote: platforms, quota, mirror set names", async () => {
  const platforms = {
    wanted: ["linux/amd64"],
    mode: "sparse" as const,
    kept: ["linux/amd64"],
    skipped: ["linux/arm64"],
    sourceDigest: null,
  };
  const a = shardReport(0, 2, [{ ...entry("dst/m/a:1", "pushed"), platforms }]);
  const b = shardReport(1, 2, [entry("dst/m/b:1", "failed")]);
  for (const r of [a, b]) {
    r.mirrorSets = { name: "dr-site", sourcePolicy: "NeverContactSource" };
  }
  a.quotaExceeded = [{ target: "dr", namespace: "full", images: 2 }];
  b.quotaExceeded = [{ target: "dr", namespace: "full", images: 1 }, {
    target: "dr",
    namespace: "also",
    images: 1,
  }];
  const dir = await writeReports([a, b]);
  try {
    const merged = mergeReports(await readShardReports(dir));
    assert.deepEqual(
      merged.entries.find((e) => e.destination === "dst.example.com/dst/m/a:1")?.platforms,
      platforms,
    );
    assert.deepEqual(merged.mirrorSets, { name: "dr-site", sourcePolicy: "NeverContactSource" });
    assert.deepEqual(merged.quotaExceeded, [
      { target: "dr", namespace: "also", images: 1 },
      { target: "dr", namespace: "full", images: 3 },
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
