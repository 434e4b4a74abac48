/**
 * The Docker Hub pull budget end to end: `main.ts mirror` as a subprocess, a real source registry
 * behind a proxy that adds Docker Hub's `ratelimit-*` headers and counts manifest GETs as pulls
 * (tests/support/ratelimit_proxy.ts), a real destination registry. What fits is copied, the rest
 * is deferred (exit 0) and copied by the run after the window refills; a 429 storm defers the
 * rest of the host's images instead of failing each.
 */
import assert from "node:assert/strict";
import { stringify } from "yaml";
import { runCli } from "../support/cli.ts";
import { pushTestImage } from "../support/images.ts";
import { startRateLimitProxy } from "../support/ratelimit_proxy.ts";
import { registryBinaryAvailable, startRegistry } from "../support/registry.ts";
import { startWebhookReceiver } from "../support/webhook_receiver.ts";
import type { Report } from "../../lib/mirror/report.ts";
import { registryTarget } from "../support/e2e_kit.ts";

const skip = registryBinaryAvailable() ? "" : " (ignored: docker-registry is not installed)";
const TAGS = ["1", "2", "3", "4", "5"];

async function mirror(dir: string, extra: string[] = []) {
  const result = await runCli(
    ["mirror", "--config", `${dir}/config.yaml`, "--non-interactive", "--report", `${dir}/r.json`]
      .concat(extra),
    { cwd: dir },
  );
  const report: Report = JSON.parse(await Deno.readTextFile(`${dir}/r.json`));
  await Deno.remove(`${dir}/r.json`);
  // A dry run writes no log file: its log lines are on the console only.
  if (extra.includes("--dry-run")) return { ...result, report, log: result.stdout + result.stderr };
  const log = await Deno.readTextFile(`${dir}/logs/bananna-bot.log`);
  await Deno.remove(`${dir}/logs/bananna-bot.log`);
  return { ...result, report, log };
}

function statuses(report: Report): string[] {
  return report.entries.map((e) => `${e.destination.replace(/^[^/]+\//, "")} ${e.status}`);
}

/** An ISO time about 6 h (the 21600 s window) after `before`..`after`. */
function assertRefill(iso: string | null, before: number, after: number): void {
  assert.ok(iso !== null);
  const at = Date.parse(iso);
  assert.ok(at >= before + 21_600_000 && at <= after + 21_600_000, `${iso} is not now + 6 h`);
}

async function setUp(dir: string, sourceHost: string, dstHost: string, concurrency = 2) {
  const images = Object.fromEntries(
    TAGS.map((tag) => [`${sourceHost}/team/app:${tag}`, { targets: ["dr"] }]),
  );
  await Deno.writeTextFile(
    `${dir}/config.yaml`,
    stringify({
      registries: { dr: registryTarget({ host: dstHost }) },
      log: { dir: "./logs", level: "DEBUG" },
      operation: {
        engine: "registry",
        retryDelay: 0.05,
        maxRetries: 1,
        concurrency,
        updateLatest: false,
      },
      images,
    }),
  );
}

Deno.test({
  name: `mirror with a small pull budget copies what fits, defers the rest, finishes later${skip}`,
  ignore: Boolean(skip),
  async fn(t) {
    await using src = await startRegistry({ auth: "none" });
    await using dst = await startRegistry({ auth: "none" });
    for (const [i, tag] of TAGS.entries()) {
      await pushTestImage(src, `team/app:${tag}`, { kind: "oci", seed: 40 + i, layers: 1 });
    }
    // 13 left, reserve 10 (the default, 10% of 100): room for 3 single-image pulls.
    await using hub = startRateLimitProxy(src, { limit: 100, remaining: 13 });
    const dir = await Deno.makeTempDir({ prefix: "bb-budget-" });
    await setUp(dir, hub.host, dst.host);
    try {
      await t.step("the dry run shows what would be deferred, and pulls nothing", async () => {
        const run = await mirror(dir, ["--dry-run"]);
        assert.equal(run.code, 0, run.stderr);
        assert.deepEqual(statuses(run.report), [
          "mirror/app:1 planned",
          "mirror/app:2 planned",
          "mirror/app:3 planned",
          "mirror/app:4 deferred",
          "mirror/app:5 deferred",
        ]);
        assert.equal(hub.pulls, 0);
        assert.match(run.stdout, /Deferred \(budget\): +2/);
        assert.match(
          run.stdout,
          new RegExp(
            `Pulls ${hub.host}: +3 would be spent, 10 of 100 left \\(reserve 10\\), 2 def`,
          ),
        );
      });

      await t.step("the run copies 3, defers 2 with the refill time, and exits 0", async () => {
        const before = Date.now();
        const run = await mirror(dir);
        const after = Date.now();
        assert.equal(run.code, 0, run.stderr + run.stdout);
        assert.deepEqual(statuses(run.report), [
          "mirror/app:1 pushed",
          "mirror/app:2 pushed",
          "mirror/app:3 pushed",
          "mirror/app:4 deferred",
          "mirror/app:5 deferred",
        ]);
        assert.equal(hub.pulls, 3, "one manifest GET per single image copied");
        assert.equal(run.report.totals.deferred, 2);
        assert.deepEqual(
          run.report.entries.slice(3).map((e) => e.code),
          ["IMAGE_DEFERRED_RATE_LIMIT", "IMAGE_DEFERRED_RATE_LIMIT"],
        );
        const budget = run.report.pullBudget;
        assert.equal(budget.length, 1);
        assertRefill(budget[0].refillsAt, before, after);
        assert.deepEqual({ ...budget[0], refillsAt: null }, {
          host: hub.host,
          limit: 100,
          remaining: 13,
          reserve: 10,
          planned: 3,
          spent: 3,
          remainingAfter: 10,
          deferred: 2,
          refillsAt: null,
          stoppedUntil: null,
        });
        const deferredLines = run.log.split("\n").filter((l) =>
          l.includes("[IMAGE_DEFERRED_RATE_LIMIT]")
        );
        assert.equal(deferredLines.length, 2, run.log);
        for (const [i, line] of deferredLines.entries()) {
          assert.match(line, /\[WARNING\]/);
          assert.ok(
            line.endsWith(
              `${hub.host}/team/app:${4 + i} -> dr ${dst.host}/mirror/app:${4 + i}: deferred: ` +
                `needs 1 pulls from ${hub.host}, 0 left after the reserve of 10; the window ` +
                `(21600 s) has refilled by ${budget[0].refillsAt}, the next run picks it up`,
            ),
            line,
          );
        }
        assert.match(
          run.stdout,
          new RegExp(
            `Pulls ${hub.host}: +3 spent, 10 of 100 left \\(reserve 10\\), 2 deferred; ` +
              `window refills by ${budget[0].refillsAt?.replaceAll(".", "\\.")}`,
          ),
        );
        assert.match(run.log, /\[INFO\] \[MIRROR_COMPLETE\] .*3 pushed, .* 0 failed, 2 deferred/);
      });

      await t.step("after the window refills, the next run copies the deferred two", async () => {
        hub.reset();
        const run = await mirror(dir);
        assert.equal(run.code, 0, run.stderr + run.stdout);
        assert.deepEqual(statuses(run.report), [
          "mirror/app:1 exists",
          "mirror/app:2 exists",
          "mirror/app:3 exists",
          "mirror/app:4 pushed",
          "mirror/app:5 pushed",
        ]);
        assert.equal(hub.pulls, 2);
        assert.equal(run.report.pullBudget[0].spent, 2);
        assert.equal(run.report.pullBudget[0].deferred, 0);
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: `mirror in a 429 storm defers the rest of the host's images instead of failing each${skip}`,
  ignore: Boolean(skip),
  async fn() {
    await using src = await startRegistry({ auth: "none" });
    await using dst = await startRegistry({ auth: "none" });
    for (const [i, tag] of TAGS.entries()) {
      await pushTestImage(src, `team/app:${tag}`, { kind: "oci", seed: 50 + i, layers: 1 });
    }
    // The headers say there is room; Docker Hub disagrees after 2 pulls (Retry-After: 3600).
    await using hub = startRateLimitProxy(src, { limit: 100, remaining: 100, stormAfter: 2 });
    const dir = await Deno.makeTempDir({ prefix: "bb-storm-" });
    await setUp(dir, hub.host, dst.host, 1);
    try {
      const before = Date.now();
      const run = await mirror(dir);
      const after = Date.now();
      assert.equal(run.code, 0, run.stderr + run.stdout);
      assert.deepEqual(statuses(run.report), [
        "mirror/app:1 pushed",
        "mirror/app:2 pushed",
        "mirror/app:3 deferred",
        "mirror/app:4 deferred",
        "mirror/app:5 deferred",
      ]);
      assert.equal(hub.refused, 1, "one 429, then no more pulls from the host");
      const stopped = run.report.pullBudget[0].stoppedUntil;
      assert.ok(stopped !== null);
      const at = Date.parse(stopped);
      assert.ok(at >= before + 3_600_000 && at <= after + 3_600_000, stopped);
      assert.equal(run.report.pullBudget[0].deferred, 3);
      const lines = run.log.split("\n").filter((l) => l.includes("[IMAGE_DEFERRED_RATE_LIMIT]"));
      assert.equal(lines.length, 3, run.log);
      for (const line of lines) {
        assert.ok(
          line.includes(
            `deferred: ${hub.host} answered 429 asking to wait until ${stopped}, longer than the ` +
              `retries wait; no more pulls from it this run, the next run picks it up`,
          ),
          line,
        );
      }
      assert.match(lines[0], /answered 429 TOOMANYREQUESTS: pull limit/);
      assert.doesNotMatch(run.log, /\[ERROR\]/);
      assert.match(
        run.stdout,
        new RegExp(`stopped by 429 until ${stopped.replaceAll(".", "\\.")}`),
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    `export keeps the run's rules: a short 429 is retried (LOGIN_RATE_LIMITED, retry count), a 429 storm stops the host${skip}`,
  ignore: Boolean(skip),
  async fn() {
    await using src = await startRegistry({ auth: "none" });
    for (const [i, tag] of TAGS.entries()) {
      await pushTestImage(src, `team/app:${tag}`, { kind: "oci", seed: 60 + i, layers: 1 });
    }
    // GET 2 answers 429 Retry-After 1 once (its retry gets through); after 2 pulls, a storm.
    await using hub = startRateLimitProxy(src, {
      limit: 100,
      remaining: 100,
      stormAfter: 2,
      blipAt: { get: 2, retryAfter: 1 },
    });
    const dir = await Deno.makeTempDir({ prefix: "bb-export-storm-" });
    // The destination is never contacted by an export: a closed port stands for it.
    await setUp(dir, hub.host, "127.0.0.1:9", 1);
    try {
      const before = Date.now();
      const run = await runCli(
        ["export", "--config", `${dir}/config.yaml`, "--to", `${dir}/out`, "--non-interactive"]
          .concat(["--report", `${dir}/r.json`]),
        { cwd: dir },
      );
      const after = Date.now();
      const report: Report = JSON.parse(await Deno.readTextFile(`${dir}/r.json`));
      const log = await Deno.readTextFile(`${dir}/logs/bananna-bot.log`);
      assert.equal(run.code, 0, run.stderr + run.stdout + log);
      assert.deepEqual(
        report.entries.map((e) => `${e.source.replace(/^[^/]+\//, "")} ${e.status}`),
        [
          "team/app:1 pushed",
          "team/app:2 pushed",
          "team/app:3 deferred",
          "team/app:4 deferred",
          "team/app:5 deferred",
        ],
      );
      assert.equal(hub.refused, 2, "the blip, then one 429 of the storm, then no more pulls");
      assert.match(
        log,
        /\[WARNING\] \[LOGIN_RATE_LIMITED\] Retry: GET \S+ answered 429 .*; retry 1 of 1 in 1\.0 s/,
      );
      const stopped = report.pullBudget[0].stoppedUntil;
      assert.ok(stopped !== null);
      const at = Date.parse(stopped);
      assert.ok(at >= before + 3_600_000 && at <= after + 3_600_000, stopped);
      const deferred = log.split("\n").filter((l) => l.includes("[IMAGE_DEFERRED_RATE_LIMIT]"));
      assert.equal(deferred.length, 3, log);
      // The export names what it holds: the two images it copied.
      const manifest = JSON.parse(await Deno.readTextFile(`${dir}/out/bananna-export.json`));
      assert.deepEqual(
        manifest.images.map((i: { ref: string }) => i.ref.replace(/^[^/]+\//, "")),
        ["team/app:1", "team/app:2"],
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    `ratelimit-limit: 0 (no window can carry an image) fails with IMAGE_RATE_LIMIT_TOO_SMALL, so the alert and the notification fire${skip}`,
  ignore: Boolean(skip),
  async fn() {
    await using src = await startRegistry({ auth: "none" });
    await using dst = await startRegistry({ auth: "none" });
    await pushTestImage(src, "team/app:1", { kind: "oci", seed: 61, layers: 1 });
    await using hub = startRateLimitProxy(src, { limit: 0, remaining: 0 });
    await using hook = startWebhookReceiver(() => 204);
    const dir = await Deno.makeTempDir({ prefix: "bb-budget-zero-" });
    try {
      await Deno.writeTextFile(
        `${dir}/config.yaml`,
        stringify({
          registries: { dr: registryTarget(dst) },
          log: { dir: "./logs" },
          operation: { engine: "registry", retryDelay: 0.05, maxRetries: 1, updateLatest: false },
          metrics: { file: "./metrics.prom" },
          notify: { webhook: `${hook.url}/hook` },
          images: { [`${hub.host}/team/app:1`]: { targets: ["dr"] } },
        }),
      );
      const run = await mirror(dir);
      // A failure (exit 1), not a deferral (exit 0) that no later run would ever carry.
      assert.equal(run.code, 1, run.stdout + run.stderr);
      assert.deepEqual(statuses(run.report), ["mirror/app:1 failed"]);
      assert.equal(run.report.entries[0].code, "IMAGE_RATE_LIMIT_TOO_SMALL");
      assert.equal(run.report.totals.deferred, 0);
      assert.match(
        run.log,
        /\[IMAGE_RATE_LIMIT_TOO_SMALL\] .*more than a whole window allows \(ratelimit-limit 0 /,
      );
      assert.equal(hub.pulls, 0, "nothing was pulled");
      // The documented alert: the last success does not advance. The default notification (on
      // failure) goes out.
      const metrics = await Deno.readTextFile(`${dir}/metrics.prom`);
      assert.match(metrics, /^bananna_bot_last_success_timestamp_seconds 0$/m);
      assert.equal(hook.requests.length, 1);
      assert.equal(JSON.parse(hook.requests[0].body).outcome, "failure");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
