/**
 * Metrics: real mirror runs (CLI subprocess, real registries) with `--metrics-file` and
 * `metrics.pushgateway` pointing at a local receiver. The file passes the real `promtool check
 * metrics` (Debian's prometheus package; the test fails without it), its values are read back
 * (pushed count, exit code, timestamps, the last success kept across a failing run and a run that
 * could not log in), it is replaced atomically (no temp file left), the Pushgateway gets one PUT of
 * the same text at `/metrics/job/<job>`, and a Pushgateway that is down is a WARNING
 * MIRROR_METRICS_FAILED that leaves the exit code alone. Each step has its own destination, run
 * dir and Pushgateway; a step that needs an earlier run's outcome seeds it (the tags by direct
 * push, the previous metrics file written).
 */
import assert from "node:assert/strict";
import { pushTestImage } from "../support/images.ts";
import { runProcess } from "../support/process.ts";
import { registryBinaryAvailable, startRegistry } from "../support/registry.ts";
import { startWebhookReceiver } from "../support/webhook_receiver.ts";
import { mirror, registryTarget, startDestination } from "../support/e2e_kit.ts";

const skip = registryBinaryAvailable() ? "" : " (ignored: docker-registry is not installed)";

/** The samples of a metrics text: `name{labels}` -> value. */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const at = line.lastIndexOf(" ");
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

async function promtool(text: string): Promise<{ code: number; output: string }> {
  const run = await runProcess("promtool", ["check", "metrics"], { stdin: text });
  return { code: run.code, output: run.stdout + run.stderr };
}

Deno.test({
  name: `metrics: file checked by promtool, values, last success kept, Pushgateway${skip}`,
  ignore: Boolean(skip),
  async fn(t) {
    await using src = await startRegistry({ auth: "none" });
    await pushTestImage(src, "team/app:1.0", { kind: "oci", seed: 31 });
    await pushTestImage(src, "team/app:2.0", { kind: "schema2", seed: 32 });
    const good = {
      [`${src.host}/team/app:1.0`]: { targets: ["dr"] },
      [`${src.host}/team/app:2.0`]: { targets: ["dr"] },
    };
    // The last success of the metrics file a step finds from an earlier run.
    const firstSuccess = Math.floor(Date.now() / 1000) - 3600;
    /**
     * One step's own destination, run dir and Pushgateway. `seeded`: the destination holds both
     * tags and latest, as a clean run leaves it; `previous`: the metrics file of an earlier
     * successful run (its last success at `firstSuccess`) is there.
     */
    const startStep = async (options: { seeded?: boolean; previous?: boolean } = {}) => {
      const dest = await startDestination();
      const dst = dest.reg;
      const dir = dest.dir;
      const gateway = startWebhookReceiver();
      await Deno.mkdir(`${dir}/textfile`);
      const file = `${dir}/textfile/bananna_bot.prom`;
      if (options.seeded) {
        for (
          const [repoTag, kind] of [
            ["mirror/app:1.0", { kind: "oci", seed: 31 }],
            ["mirror/app:2.0", { kind: "schema2", seed: 32 }],
            ["mirror/app:latest", { kind: "schema2", seed: 32 }],
          ] as const
        ) await pushTestImage(dst, repoTag, kind);
      }
      if (options.previous) {
        await Deno.writeTextFile(
          file,
          "# HELP bananna_bot_last_success_timestamp_seconds End of the last run with exit 0.\n" +
            "# TYPE bananna_bot_last_success_timestamp_seconds gauge\n" +
            `bananna_bot_last_success_timestamp_seconds ${firstSuccess}\n`,
        );
      }
      const vars = { DST_PASSWORD: dst.password ?? "", PGW_PASSWORD: "pgw-pass-1" };
      const config = (images: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
        registries: {
          dr: registryTarget(dst, { login: true }),
        },
        log: { dir: "./logs" },
        operation: { engine: "registry", retryDelay: 0.05, maxRetries: 1 },
        metrics: {
          pushgateway: `${gateway.url.replace("//", "//bb:${PGW_PASSWORD}@")}/pgw/`,
          job: "nightly",
        },
        images,
        ...extra,
      });
      const args = { env: vars, extra: ["--metrics-file", "textfile/bananna_bot.prom"] };
      const disposeDest = dest[Symbol.asyncDispose];
      return Object.assign(dest, {
        dst,
        gateway,
        file,
        vars,
        config,
        args,
        async [Symbol.asyncDispose]() {
          await gateway.stop().catch(() => {});
          await disposeDest();
        },
      });
    };
    await t.step(
      "a clean run writes the file; promtool accepts it; values read back",
      async () => {
        await using step = await startStep();
        const { dir, dst, gateway, file, config, args } = step;
        const before = Date.now() / 1000;
        const run = await mirror(dir, config(good), args);
        const after = Date.now() / 1000;
        assert.equal(run.code, 0, run.stderr);
        const text = await Deno.readTextFile(file);
        const check = await promtool(text);
        assert.equal(check.code, 0, check.output);
        const m = samples(text);
        assert.equal(m.get('bananna_bot_images{status="pushed"}'), 2);
        assert.equal(m.get('bananna_bot_images{status="exists"}'), 0);
        assert.equal(m.get('bananna_bot_images{status="failed"}'), 0);
        assert.equal(m.get('bananna_bot_images{status="deferred"}'), 0);
        assert.equal(m.get('bananna_bot_images{status="skipped"}'), 0);
        assert.equal(m.get('bananna_bot_target_images{target="dr",status="pushed"}'), 2);
        assert.equal(m.get("bananna_bot_run_exit_code"), 0);
        const last = m.get("bananna_bot_last_run_timestamp_seconds") ?? 0;
        assert.ok(last >= before && last <= after, `${before} <= ${last} <= ${after}`);
        assert.equal(m.get("bananna_bot_last_success_timestamp_seconds"), last);
        const duration = m.get("bananna_bot_run_duration_seconds") ?? -1;
        assert.ok(duration > 0 && duration <= after - before, `duration ${duration}`);
        assert.ok((m.get("bananna_bot_bytes_uploaded") ?? 0) > 0);
        assert.match(text, /^# TYPE bananna_bot_bytes_uploaded gauge$/m);
        assert.match(text, /^# HELP bananna_bot_last_success_timestamp_seconds /m);
        assert.doesNotMatch(text, new RegExp(dst.password ?? "never"));
        // Atomic: only the file itself in its folder, no temp file left.
        const names = [...Deno.readDirSync(`${dir}/textfile`)].map((e) => e.name);
        assert.deepEqual(names, ["bananna_bot.prom"]);
        // The Pushgateway got one PUT of the same text at the job's group.
        assert.deepEqual(gateway.requests.map((r) => `${r.method} ${r.path}`), [
          "PUT /pgw/metrics/job/nightly",
        ]);
        assert.equal(gateway.requests[0].body, text);
        assert.match(
          gateway.requests[0].headers["content-type"],
          /^text\/plain; version=0\.0\.4/,
        );
        // user:password in the url went as Basic auth (bb:pgw-pass-1), and into no log line.
        assert.equal(gateway.requests[0].headers["authorization"], "Basic YmI6cGd3LXBhc3MtMQ==");
        const log = await Deno.readTextFile(`${dir}/logs/bananna-bot.log`);
        assert.match(
          log,
          /Metrics pushed to Pushgateway http:\/\/127\.0\.0\.1:\d+\/pgw\/metrics\/job\/nightly/,
        );
        assert.ok(!log.includes("pgw-pass-1"));
      },
    );

    await t.step("a failing run keeps the last success of the previous file", async () => {
      await using step = await startStep({ seeded: true, previous: true });
      const { dir, gateway, file, config, args } = step;
      const run = await mirror(
        dir,
        config({ ...good, [`${src.host}/team/app:9.9`]: { targets: ["dr"] } }),
        args,
      );
      assert.equal(run.code, 1, run.stderr);
      const text = await Deno.readTextFile(file);
      assert.equal((await promtool(text)).code, 0);
      const m = samples(text);
      assert.equal(m.get("bananna_bot_run_exit_code"), 1);
      assert.equal(m.get('bananna_bot_images{status="failed"}'), 1);
      assert.equal(m.get('bananna_bot_images{status="exists"}'), 2);
      assert.equal(m.get('bananna_bot_images{status="pushed"}'), 0);
      assert.equal(m.get("bananna_bot_last_success_timestamp_seconds"), firstSuccess);
      assert.ok((m.get("bananna_bot_last_run_timestamp_seconds") ?? 0) > firstSuccess);
      assert.equal(gateway.requests.length, 1);
      assert.equal(gateway.requests[0].body, text);
    });

    await t.step(
      "a run stopped by a refused login still writes its metrics (exit 1)",
      async () => {
        await using step = await startStep({ previous: true });
        const { dir, file, config, args, vars } = step;
        const stopping = { engine: "registry", continueOnError: false, retryDelay: 0.05 };
        const run = await mirror(dir, config(good, { operation: stopping }), {
          ...args,
          env: { ...vars, DST_PASSWORD: "wrong-password" },
        });
        assert.equal(run.code, 1, run.stderr);
        // Stopped before its plan: the report says so (no entries), it is not the last run's.
        assert.equal(run.report?.stopped?.code, "LOGIN_FAILED");
        assert.deepEqual(run.report?.entries, []);
        const text = await Deno.readTextFile(file);
        assert.equal((await promtool(text)).code, 0);
        const m = samples(text);
        assert.equal(m.get("bananna_bot_run_exit_code"), 1);
        assert.equal(m.get('bananna_bot_images{status="pushed"}'), 0);
        assert.equal(m.get('bananna_bot_images{status="exists"}'), 0);
        assert.equal(m.get('bananna_bot_target_images{target="dr",status="failed"}'), 0);
        assert.equal(m.get("bananna_bot_last_success_timestamp_seconds"), firstSuccess);
      },
    );

    await t.step("a dry run writes no metrics and pushes nothing", async () => {
      await using step = await startStep({ previous: true });
      const { dir, gateway, file, config, args } = step;
      const text = await Deno.readTextFile(file);
      const pushes = gateway.requests.length;
      const run = await mirror(dir, config(good), {
        ...args,
        extra: [...args.extra, "--dry-run"],
      });
      assert.equal(run.code, 0, run.stderr);
      assert.equal(await Deno.readTextFile(file), text);
      assert.equal(gateway.requests.length, pushes);
    });

    await t.step(
      "metrics.file from the config; Pushgateway down: WARNING, exit code unchanged",
      async () => {
        await using step = await startStep({ seeded: true });
        const { dir, gateway, config, vars } = step;
        await gateway.stop();
        const run = await mirror(
          dir,
          config(good, {
            metrics: {
              file: "textfile/from-config.prom",
              pushgateway: gateway.url,
              job: "nightly",
            },
          }),
          { env: vars },
        );
        assert.equal(run.code, 0, run.stderr);
        const log = await Deno.readTextFile(`${dir}/logs/bananna-bot.log`);
        assert.match(
          log,
          /WARNING.*MIRROR_METRICS_FAILED.*Pushgateway http:\/\/127\.0\.0\.1:\d+\/metrics\/job\/nightly: .*the run's outcome is unchanged/,
        );
        const m = samples(await Deno.readTextFile(`${dir}/textfile/from-config.prom`));
        assert.equal(m.get("bananna_bot_run_exit_code"), 0);
        assert.equal(m.get('bananna_bot_images{status="exists"}'), 2);
        // No previous file here: the success is this run's end.
        assert.equal(
          m.get("bananna_bot_last_success_timestamp_seconds"),
          m.get("bananna_bot_last_run_timestamp_seconds"),
        );
      },
    );

    await t.step(
      "a metrics file that cannot be written: WARNING, exit code unchanged",
      async () => {
        await using step = await startStep();
        const { dir, config, vars } = step;
        const run = await mirror(dir, config(good, { metrics: undefined }), {
          env: vars,
          extra: ["--metrics-file", "no-such-dir/bananna_bot.prom"],
        });
        assert.equal(run.code, 0, run.stderr);
        assert.match(
          await Deno.readTextFile(`${dir}/logs/bananna-bot.log`),
          /WARNING.*MIRROR_METRICS_FAILED.*Cannot write the metrics file .*\/no-such-dir\/bananna_bot\.prom: /,
        );
      },
    );
  },
});
