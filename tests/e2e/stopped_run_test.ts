/**
 * A run stopped before it had a report still replaces `last-report.json`, so
 * nobody reads the previous night's success as this run's. A SIGTERM while the first request to
 * the source stalls (logins / planning): exit 130, the report marked interrupted with this run's
 * start, `MIRROR_INTERRUPTED` in the log, the metrics' exit code 130. A login refused with
 * `continueOnError: false`: exit 1, the report marked stopped with the code, no password in it; the
 * same for an import (the session is mirror's).
 */
import assert from "node:assert/strict";
import { stringify } from "yaml";
import type { Report } from "../../lib/mirror/report.ts";
import { airgapCli, mirror, registryConfig, registryTarget } from "../support/e2e_kit.ts";
import { cliArgv } from "../support/cli.ts";
import { startFaultProxy } from "../support/fault_proxy.ts";
import { pushTestImage } from "../support/images.ts";
import { registryBinaryAvailable, startRegistry } from "../support/registry.ts";

const skip = registryBinaryAvailable() ? "" : " (ignored: docker-registry is not installed)";

/** Last night's clean run, as a previous version wrote it. */
const PREVIOUS = {
  tool: "bananna-bot",
  version: "0.1.0",
  engine: "registry",
  config: "config.yaml",
  dryRun: false,
  interrupted: false,
  startedAt: "2026-11-29T02:30:00.000Z",
  endedAt: "2026-11-29T02:31:00.000Z",
  totals: { pushed: 3, exists: 0, drift: 0, failed: 0, deferred: 0, planned: 0, skipped: 0 },
  entries: [],
  pullBudget: [],
  latest: [],
  selection: [],
};

async function seedPrevious(dir: string): Promise<void> {
  await Deno.mkdir(`${dir}/logs`, { recursive: true });
  await Deno.writeTextFile(`${dir}/logs/last-report.json`, JSON.stringify(PREVIOUS));
}

Deno.test({
  name:
    `SIGTERM while the first source request stalls: exit 130, report replaced and marked interrupted${skip}`,
  ignore: Boolean(skip),
  async fn() {
    await using src = await startRegistry();
    await using dst = await startRegistry();
    await pushTestImage(src, "team/app:1", { kind: "oci", seed: 71 });
    // The very first request to the source (login probe or plan HEAD) hangs for 4 s.
    await using stall = startFaultProxy(src, [
      { path: /.*/, times: 1, fault: { kind: "delay", ms: 4000 } },
    ]);
    const dir = await Deno.makeTempDir({ prefix: "bb-stop-" });
    try {
      await seedPrevious(dir);
      await Deno.writeTextFile(
        `${dir}/config.yaml`,
        stringify({
          registries: { dr: registryTarget(dst, { namespace: "m" }) },
          log: { dir: "./logs" },
          operation: { engine: "registry", updateLatest: false },
          images: { [`${stall.host}/team/app:1`]: { targets: ["dr"] } },
        }),
      );
      const before = new Date().toISOString();
      const [cmd, ...args] = cliArgv([
        "mirror",
        "--config",
        "config.yaml",
        "--non-interactive",
        "--report",
        "report.json",
        "--metrics-file",
        "bb.prom",
      ]);
      const child = new Deno.Command(cmd, {
        args,
        cwd: dir,
        env: { NO_COLOR: "1" },
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const deadline = Date.now() + 30_000;
      while (!stall.injected.delay && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      assert.equal(stall.injected.delay, 1, "the run reached the source");
      child.kill("SIGTERM");
      const out = await child.output();
      const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
      assert.equal(out.code, 130, text);
      assert.match(new TextDecoder().decode(out.stderr), /^bananna-bot: interrupted$/m);
      for (const path of [`${dir}/logs/last-report.json`, `${dir}/report.json`]) {
        const report: Report = JSON.parse(await Deno.readTextFile(path));
        assert.equal(report.interrupted, true, path);
        assert.ok(report.startedAt >= before, `${path}: startedAt ${report.startedAt}`);
        assert.deepEqual(report.entries, []);
        assert.equal(report.totals.pushed, 0);
        assert.equal(report.stopped?.code, "MIRROR_INTERRUPTED");
      }
      assert.match(
        await Deno.readTextFile(`${dir}/logs/bananna-bot.log`),
        /\[MIRROR_INTERRUPTED\] .*Interrupted/,
      );
      assert.match(await Deno.readTextFile(`${dir}/bb.prom`), /^bananna_bot_run_exit_code 130$/m);
      const res = await fetch(`${dst.url}/v2/m/app/tags/list`);
      await res.body?.cancel();
      assert.equal(res.status, 404, "nothing was copied");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    `a login refused with continueOnError off: exit 1, report replaced, marked stopped with the code${skip}`,
  ignore: Boolean(skip),
  async fn() {
    await using src = await startRegistry({ auth: "none" });
    await using dst = await startRegistry({ auth: "htpasswd" });
    await pushTestImage(src, "team/app:1", { kind: "oci", seed: 72 });
    const dir = await Deno.makeTempDir({ prefix: "bb-stop-" });
    const wrong = "wrong-password-4e8d1c";
    try {
      await seedPrevious(dir);
      const before = new Date().toISOString();
      const run = await mirror(dir, {
        registries: {
          dr: registryTarget(dst, { namespace: "m", login: true }),
        },
        log: { dir: "./logs" },
        operation: { engine: "registry", continueOnError: false, retryDelay: 0.05 },
        images: { [`${src.host}/team/app:1`]: { targets: ["dr"] } },
      }, { env: { DST_PASSWORD: wrong } });
      assert.equal(run.code, 1, run.stdout + run.stderr);
      const last = await Deno.readTextFile(`${dir}/logs/last-report.json`);
      assert.ok(!last.includes(wrong));
      const report: Report = JSON.parse(last);
      assert.deepEqual(run.report, report);
      assert.equal(report.interrupted, false);
      assert.ok(report.startedAt >= before, report.startedAt);
      assert.equal(report.stopped?.code, "LOGIN_FAILED");
      assert.match(report.stopped?.message ?? "", new RegExp(dst.host.replace(/\./g, "\\.")));
      assert.deepEqual(report.entries, []);
      assert.match(run.stdout, /Stopped early: +\[LOGIN_FAILED\]/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    `an import whose login is refused (continueOnError off): exit 1, report replaced, marked stopped${skip}`,
  ignore: Boolean(skip),
  async fn() {
    await using src = await startRegistry({ auth: "none" });
    await using dst = await startRegistry({ auth: "htpasswd" });
    await pushTestImage(src, "team/app:1", { kind: "oci", seed: 73 });
    const dir = await Deno.makeTempDir({ prefix: "bb-stop-import-" });
    const wrong = "wrong-password-7b21f0";
    try {
      const config = registryConfig(dst, { [`${src.host}/team/app:1`]: { targets: ["dr"] } }, {
        log: { dir: "./logs" },
        operation: { engine: "registry", continueOnError: false, retryDelay: 0.05 },
      });
      const exported = await airgapCli(dir, ["export", "--to", `${dir}/out`], {
        config,
        env: { DST_PASSWORD: wrong }, // an export never contacts the targets
      });
      assert.equal(exported.code, 0, exported.stdout + exported.stderr);
      await seedPrevious(dir);
      const before = new Date().toISOString();
      const run = await airgapCli(dir, ["import", "--from", `${dir}/out`], {
        config,
        env: { DST_PASSWORD: wrong },
      });
      assert.equal(run.code, 1, run.stdout + run.stderr);
      const last = await Deno.readTextFile(`${dir}/logs/last-report.json`);
      assert.ok(!last.includes(wrong));
      const report: Report = JSON.parse(last);
      assert.deepEqual(run.report, report);
      assert.equal(report.interrupted, false);
      assert.ok(report.startedAt >= before, report.startedAt);
      assert.equal(report.stopped?.code, "LOGIN_FAILED");
      assert.deepEqual(report.entries, []);
      assert.match(run.stdout, /Stopped early: +\[LOGIN_FAILED\]/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
