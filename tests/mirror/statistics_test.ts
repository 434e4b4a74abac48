/**
 * The statistics as rows (statistics.ts): each count carries its tone, so the terminal paints by
 * tone instead of re-reading text; the text lines keep the label column aligned.
 */
import assert from "node:assert/strict";
import { Secrets } from "../../lib/log/redact.ts";
import { buildReport } from "../../lib/mirror/report.ts";
import type { PlanTask } from "../../lib/mirror/plan.ts";
import type { TaskResult, TaskStatus } from "../../lib/mirror/run_plan.ts";
import { formatStatistics, statistics } from "../../lib/mirror/statistics.ts";

function result(id: number, status: TaskStatus): TaskResult {
  const task: PlanTask = {
    id,
    imageKey: `app:${id}`,
    target: "dr",
    source: { registry: "src.example", repository: "team/app", tag: `${id}` },
    destination: { registry: "dst.example", repository: "mirror/team/app", tag: `${id}` },
    repo: null,
    action: status === "planned" ? "push" : "exists",
    comparedBy: "manifest",
  };
  return { task, status, code: "SUCCESS", durationMs: 1, digest: `sha256:${"a".repeat(64)}` };
}

const report = (statuses: TaskStatus[], dryRun = false) =>
  buildReport(statuses.map((s, i) => result(i, s)), {
    version: "0.0.0",
    engine: "registry",
    config: "/c.yaml",
    dryRun,
    interrupted: false,
    startedAt: new Date(0),
    endedAt: new Date(2500),
    latest: [],
    secrets: new Secrets(),
  });

Deno.test("statistics(): counts that matter carry their tone; zero counts are plain", () => {
  const tones = (statuses: TaskStatus[], dryRun = false) =>
    Object.fromEntries(statistics(report(statuses, dryRun)).rows.map((r) => [r.label, r.tone]));
  const busy = tones(["pushed", "drift", "failed", "deferred", "skipped", "exists"]);
  assert.deepEqual(
    [busy["Pushed"], busy["Drift (untouched)"], busy["Failed"], busy["Deferred (budget)"]],
    ["good", "warn", "bad", "warn"],
  );
  assert.equal(busy["Not started"], "bad");
  assert.equal(busy["Already mirrored"], "plain");
  const quiet = tones(["exists"]);
  assert.deepEqual([quiet["Pushed"], quiet["Failed"]], ["plain", "plain"]);
  assert.equal(tones(["planned"], true)["Would push"], "good");
});

Deno.test("formatStatistics(): heading, then every label in one aligned column", () => {
  assert.deepEqual(formatStatistics(report(["pushed", "failed"])), [
    "Mirror statistics",
    "  Images:             2 (2 image x target)",
    "  Pushed:             1",
    "  Already mirrored:   0",
    "  Drift (untouched):  0",
    "  Failed:             1",
    "  Repositories made:  0",
    "  Bytes uploaded:     0 B",
    "  latest moved:       0",
    "  Engine:             registry",
    "  Duration:           2.5 s",
  ]);
});
