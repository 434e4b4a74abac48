/**
 * An import is the disconnected side's mirror run, so its end reaches the same watchers as a
 * mirror's: the `metrics.file` (checked by the real promtool, values read back) and
 * exactly one notification per run; an export (the connected side's copy to disk) writes no
 * mirror metrics. The source registry is stopped before the import.
 */
import assert from "node:assert/strict";
import { airgapCli, registryConfig, statuses } from "../support/e2e_kit.ts";
import { pushTestImage } from "../support/images.ts";
import { runProcess } from "../support/process.ts";
import { registryBinaryAvailable, startRegistry } from "../support/registry.ts";
import { startWebhookReceiver } from "../support/webhook_receiver.ts";

const skip = registryBinaryAvailable() ? "" : " (ignored: docker-registry is not installed)";

Deno.test({
  name: `import writes the run's metrics and sends one notification, as mirror does${skip}`,
  ignore: Boolean(skip),
  async fn() {
    const src = await startRegistry({ auth: "none" });
    await using dst = await startRegistry({ auth: "htpasswd" });
    await using hook = startWebhookReceiver();
    const dir = await Deno.makeTempDir({ prefix: "bb-airgap-ops-" });
    const env = { DST_PASSWORD: dst.password ?? "", HOOK_TOKEN: "hook-secret-4711" };
    try {
      await pushTestImage(src, "team/app:1.0", { kind: "oci", seed: 31 });
      await pushTestImage(src, "team/app:2.0", { kind: "oci-index", seed: 32 });
      const config = registryConfig(dst, {
        [`${src.host}/team/app:1.0`]: { targets: ["dr"] },
        [`${src.host}/team/app:2.0`]: { targets: ["dr"] },
      }, {
        metrics: { file: `${dir}/metrics/bananna-bot.prom` },
        notify: {
          webhook: `${hook.url}/hooks/import`,
          on: ["always"],
          headers: { Authorization: "Bearer ${HOOK_TOKEN}" },
        },
      });
      await Deno.mkdir(`${dir}/metrics`);
      const exported = await airgapCli(dir, ["export", "--to", `${dir}/export`], { config, env });
      assert.equal(exported.code, 0, exported.stderr + exported.stdout);
      // The export is not the mirror run the metrics describe.
      await assert.rejects(Deno.stat(`${dir}/metrics/bananna-bot.prom`), Deno.errors.NotFound);
      assert.equal(hook.requests.length, 0);
      await src.stop();

      const run = await airgapCli(dir, ["import", "--from", `${dir}/export`], { config, env });
      assert.equal(run.code, 0, run.stderr + run.stdout);
      assert.deepEqual(statuses(run.report), ["mirror/app:1.0 pushed", "mirror/app:2.0 pushed"]);
      const text = await Deno.readTextFile(`${dir}/metrics/bananna-bot.prom`);
      assert.match(text, /^bananna_bot_images\{status="pushed"\} 2$/m);
      assert.match(text, /^bananna_bot_run_exit_code 0$/m);
      const ended = Number(/^bananna_bot_last_success_timestamp_seconds (\S+)$/m.exec(text)?.[1]);
      assert.ok(Math.abs(ended - Date.now() / 1000) < 120, `last success ${ended}`);
      const promtool = await runProcess("promtool", ["check", "metrics"], { stdin: text });
      assert.equal(promtool.code, 0, promtool.stdout + promtool.stderr);
      assert.equal(hook.requests.length, 1, "one notification per run");
      const [request] = hook.requests;
      assert.equal(request.headers.authorization, "Bearer hook-secret-4711");
      const body = JSON.parse(request.body);
      assert.equal(body.totals.pushed, 2);
      assert.doesNotMatch(request.body, /hook-secret-4711/);
      assert.doesNotMatch(request.body, new RegExp(dst.password ?? "never"));

      // A config written for the docker engine imports with the registry engine: digests kept.
      await using dst2 = await startRegistry({ auth: "htpasswd" });
      const docker = registryConfig(dst2, config.images as Record<string, unknown>);
      docker.operation = { engine: "docker", retryDelay: 0.05, maxRetries: 1 };
      const again = await airgapCli(dir, ["import", "--from", `${dir}/export`], {
        config: docker,
        env: { DST_PASSWORD: dst2.password ?? "" },
      });
      assert.equal(again.code, 0, again.stderr + again.stdout);
      assert.deepEqual(statuses(again.report), ["mirror/app:1.0 pushed", "mirror/app:2.0 pushed"]);
      assert.equal(again.report?.engine, "registry");
      assert.deepEqual(
        again.report?.entries.map((e) => e.digest),
        run.report?.entries.map((e) => e.digest),
      );
      assert.match(
        await Deno.readTextFile(`${dir}/logs/bananna-bot.log`),
        /\[WARNING\] \[CONFIG_WARNING\] Import: operation\.engine is docker; an import copies with the registry engine \(digests kept\), operation\.signatures skip/,
      );
    } finally {
      await src.stop().catch(() => {});
      await Deno.remove(dir, { recursive: true });
    }
  },
});
