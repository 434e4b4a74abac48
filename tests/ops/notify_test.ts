import assert from "node:assert/strict";
import { Secrets } from "../../lib/log/redact.ts";
import type { Report, ReportEntry } from "../../lib/mirror/report.ts";
import {
  notificationJson,
  notifyReasons,
  type RunEnd,
  slackMessage,
  summaryLine,
} from "../../lib/ops/notify.ts";

function entry(n: number, status: ReportEntry["status"], error: string | null): ReportEntry {
  return {
    source: `src.example/team/app:${n}`,
    target: "prod",
    destination: `dst.example/m/app:${n}`,
    status,
    digest: null,
    code: status === "drift" ? "IMAGE_TAG_DRIFT" : "IMAGE_PUSH_FAILED",
    error,
    comparedBy: "manifest",
    repo: null,
    bytesUploaded: 0,
    signatures: 0,
    attestations: 0,
    sboms: 0,
    referrers: 0,
    durationMs: 1,
  };
}

function end(entries: ReportEntry[], exitCode: number): RunEnd {
  const totals = { pushed: 0, exists: 0, drift: 0, failed: 0, deferred: 0, planned: 0, skipped: 0 };
  for (const e of entries) totals[e.status]++;
  const report: Report = {
    tool: "bananna-bot",
    version: "0",
    engine: "registry",
    config: "/etc/bb.yaml",
    dryRun: false,
    interrupted: false,
    startedAt: "2026-11-30T05:00:00.000Z",
    endedAt: "2026-11-30T05:00:42.000Z",
    totals,
    entries,
    pullBudget: [],
    latest: [],
    selection: [],
  };
  return {
    report,
    exitCode,
    startedAt: new Date("2026-11-30T05:00:00.000Z"),
    endedAt: new Date("2026-11-30T05:00:42.000Z"),
    config: "/etc/bb.yaml",
    reportPaths: ["/var/lib/bb/last-report.json"],
  };
}

Deno.test("notifyReasons(): failure is any exit but 0; drift and deferred by count; always alone", () => {
  const clean = end([entry(1, "exists", null)], 0);
  const drift = end([entry(1, "drift", "holds another image")], 0);
  const failed = end([entry(1, "failed", "boom")], 1);
  const stopped: RunEnd = {
    ...failed,
    report: null,
    stopped: { code: "MIRROR_LOCKED", message: "held" },
  };
  assert.deepEqual(notifyReasons(clean, ["failure", "drift", "deferred"]), []);
  assert.deepEqual(notifyReasons(clean, ["always"]), ["always"]);
  assert.deepEqual(notifyReasons(drift, ["failure"]), []);
  assert.deepEqual(notifyReasons(drift, ["failure", "drift"]), ["drift"]);
  assert.deepEqual(notifyReasons(failed, ["failure", "drift"]), ["failure"]);
  assert.deepEqual(notifyReasons(stopped, ["failure"]), ["failure"]);
  assert.deepEqual(notifyReasons({ ...clean, exitCode: 130 }, ["failure"]), ["failure"]);
  const deferred = end([entry(1, "deferred", "needs 1 pulls from docker.io")], 0);
  assert.deepEqual(notifyReasons(deferred, ["failure", "drift"]), []);
  assert.deepEqual(notifyReasons(deferred, ["failure", "drift", "deferred"]), ["deferred"]);
});

Deno.test("notificationJson(): failed first, then drift, capped at 20 with the rest counted; masked", () => {
  const secrets = new Secrets();
  secrets.add("s3cr3t-registry-pw");
  const entries = [
    ...Array.from({ length: 3 }, (_, i) => entry(100 + i, "drift", "holds another image")),
    ...Array.from({ length: 25 }, (_, i) => entry(i, "failed", "login s3cr3t-registry-pw refused")),
    entry(200, "pushed", null),
  ];
  const body = notificationJson(end(entries, 1), { reasons: ["failure"], secrets });
  assert.equal(body.outcome, "failure");
  assert.equal(body.entries.length, 20);
  assert.equal(body.entriesOmitted, 8);
  assert.deepEqual(new Set(body.entries.map((e) => e.status)), new Set(["failed"]));
  assert.deepEqual(body.totals, {
    pushed: 1,
    exists: 0,
    drift: 3,
    failed: 25,
    deferred: 0,
    skipped: 0,
  });
  assert.equal(body.durationSeconds, 42);
  assert.ok(!JSON.stringify(body).includes("s3cr3t-registry-pw"));
  assert.equal(body.entries[0].error, "login *** refused");
  assert.equal(
    body.summary,
    "bananna-bot mirror run failed (exit 1) (/etc/bb.yaml): 1 pushed, 0 already mirrored, 3 drift, 25 failed, 0 deferred, 0 not started; 42 s",
  );
});

Deno.test("slackMessage(): text and blocks; mrkdwn escaped; sections cut at 3000 characters", () => {
  const long = "x".repeat(400);
  const entries = Array.from({ length: 20 }, (_, i) => entry(i, "failed", `<b>${long}</b> & more`));
  const body = notificationJson(end(entries, 1), { reasons: ["failure"], secrets: new Secrets() });
  const message = slackMessage(body) as {
    text: string;
    blocks: { type: string; text?: { type: string; text: string } }[];
  };
  assert.equal(message.text, body.summary);
  assert.deepEqual(message.blocks.map((b) => b.type), ["header", "section", "section", "context"]);
  const list = message.blocks[2].text?.text ?? "";
  assert.equal(list.length, 3000);
  assert.ok(list.endsWith("…"));
  assert.match(
    list,
    /^• \*failed\* `dst\.example\/m\/app:0` \(IMAGE_PUSH_FAILED\): &lt;b&gt;x+&lt;\/b&gt; &amp; more\n/,
  );
  const stopped: RunEnd = {
    ...end([], 1),
    report: null,
    stopped: { code: "LOGIN_FAILED", message: "dst.example refused the credentials" },
  };
  assert.equal(
    summaryLine(stopped),
    "bananna-bot mirror run could not start (exit 1) (/etc/bb.yaml): [LOGIN_FAILED] dst.example refused the credentials; 42 s",
  );
});
