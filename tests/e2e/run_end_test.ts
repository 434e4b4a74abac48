/**
 * The edges of a run's end for its watchers (CLI subprocess, real registries, a local
 * receiver): an interrupted run (SIGINT) writes exit code 130 and keeps the last success of the
 * previous file and notifies once; a run that finds the lock held notifies (not started,
 * MIRROR_LOCKED) but leaves the metrics file to the holder; with a Pushgateway and no file, the
 * last success is carried through `<log dir>/last-metrics.prom`.
 */
import assert from "node:assert/strict";
import { stringify } from "yaml";
import { acquireRunLock } from "../../lib/mirror/run_lock.ts";
import { cliArgv } from "../support/cli.ts";
import { startFaultProxy } from "../support/fault_proxy.ts";
import { pushTestImage } from "../support/images.ts";
import { registryBinaryAvailable, startRegistry } from "../support/registry.ts";
import { startWebhookReceiver } from "../support/webhook_receiver.ts";
import { mirror, registryTarget } from "../support/e2e_kit.ts";

const skip = registryBinaryAvailable() ? "" : " (ignored: docker-registry is not installed)";

/** A previous metrics file whose last success is 1700000000 (2023-11-14T22:13:20Z). */
const PREVIOUS = [
  "# HELP bananna_bot_last_success_timestamp_seconds When a mirror run last ended with exit code 0.",
  "# TYPE bananna_bot_last_success_timestamp_seconds gauge",
  "bananna_bot_last_success_timestamp_seconds 1700000000",
  "",
].join("\n");

function sample(text: string, name: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

Deno.test({
  name: `run end: interrupted run, lock held, Pushgateway without a file${skip}`,
  ignore: Boolean(skip),
  async fn(t) {
    await using src = await startRegistry();
    await using dst = await startRegistry();
    for (let i = 0; i < 4; i++) {
      await pushTestImage(src, `team/app${i}:1`, { kind: "oci", seed: 60 + i });
    }
    const dir = await Deno.makeTempDir({ prefix: "bb-run-end-" });
    await using hook = startWebhookReceiver();
    const base = (images: Record<string, unknown>) => ({
      registries: { dr: registryTarget(dst, { namespace: "m" }) },
      log: { dir: "./logs" },
      operation: { engine: "registry", concurrency: 1, updateLatest: false, retryDelay: 0.05 },
      metrics: { file: "bb.prom" },
      notify: { webhook: `${hook.url}/hook`, on: ["failure"] },
      images,
    });
    try {
      await t.step(
        "SIGINT: exit 130 in the file, last success kept, one notification",
        async () => {
          // Every blob GET from the source takes 400 ms: the run is busy when the signal comes.
          await using slow = startFaultProxy(src, [
            { method: "GET", path: /\/blobs\//, times: 1000, fault: { kind: "delay", ms: 400 } },
          ]);
          await Deno.writeTextFile(`${dir}/bb.prom`, PREVIOUS);
          const images = Object.fromEntries(
            Array.from(
              { length: 4 },
              (_, i) => [`${slow.host}/team/app${i}:1`, { targets: ["dr"] }],
            ),
          );
          await Deno.writeTextFile(`${dir}/config.yaml`, stringify(base(images)));
          const [cmd, ...args] = cliArgv(["mirror", "--config", "config.yaml"]);
          const child = new Deno.Command(cmd, {
            args,
            cwd: dir,
            env: { NO_COLOR: "1" },
            stdout: "piped",
            stderr: "null",
          }).spawn();
          const reader = child.stdout.getReader();
          let seen = "";
          while (!/IMAGE_PUSHED/.test(seen)) {
            const { done, value } = await reader.read();
            if (done) break;
            seen += new TextDecoder().decode(value);
          }
          child.kill("SIGINT");
          while (!(await reader.read()).done) {
            // drain
          }
          assert.equal((await child.status).code, 130, seen);
          const text = await Deno.readTextFile(`${dir}/bb.prom`);
          assert.equal(sample(text, "bananna_bot_run_exit_code"), 130);
          assert.equal(sample(text, "bananna_bot_last_success_timestamp_seconds"), 1700000000);
          assert.ok((sample(text, 'bananna_bot_images{status="pushed"}') ?? 0) >= 1);
          assert.equal(hook.requests.length, 1);
          const body = JSON.parse(hook.requests[0].body);
          assert.equal(body.outcome, "interrupted");
          assert.equal(body.exitCode, 130);
        },
      );

      await t.step(
        "lock held: notified as not started; the metrics file is the holder's",
        async () => {
          await Deno.writeTextFile(`${dir}/bb.prom`, PREVIOUS);
          await Deno.mkdir(`${dir}/logs`, { recursive: true });
          const sent = hook.requests.length;
          await using _held = await acquireRunLock(`${dir}/logs`);
          const run = await mirror(
            dir,
            base({ [`${src.host}/team/app0:1`]: { targets: ["dr"] } }),
          );
          assert.equal(run.code, 1, run.stderr);
          assert.equal(await Deno.readTextFile(`${dir}/bb.prom`), PREVIOUS);
          assert.equal(hook.requests.length, sent + 1);
          const body = JSON.parse(hook.requests[sent].body);
          assert.equal(body.outcome, "not-started");
          assert.equal(body.error.code, "MIRROR_LOCKED");
        },
      );

      await t.step(
        "Pushgateway without a file: the last success goes through the log dir",
        async () => {
          await using gateway = startWebhookReceiver();
          const config = (images: Record<string, unknown>) => ({
            ...base(images),
            metrics: { pushgateway: gateway.url },
            notify: undefined,
          });
          const good = { [`${src.host}/team/app0:1`]: { targets: ["dr"] } };
          const ok = await mirror(dir, config(good));
          assert.equal(ok.code, 0, ok.stderr);
          const first = sample(
            gateway.requests[0].body,
            "bananna_bot_last_success_timestamp_seconds",
          );
          assert.equal(
            first,
            sample(gateway.requests[0].body, "bananna_bot_last_run_timestamp_seconds"),
          );
          assert.equal(
            await Deno.readTextFile(`${dir}/logs/last-metrics.prom`),
            gateway.requests[0].body,
          );
          const bad = await mirror(
            dir,
            config({ ...good, [`${src.host}/team/nope:1`]: { targets: ["dr"] } }),
          );
          assert.equal(bad.code, 1, bad.stderr);
          assert.equal(gateway.requests.length, 2);
          const second = gateway.requests[1].body;
          assert.equal(sample(second, "bananna_bot_run_exit_code"), 1);
          assert.equal(sample(second, "bananna_bot_last_success_timestamp_seconds"), first);
        },
      );

      await t.step(
        "a previous file that is a device is not read (the run ends; no last success)",
        async () => {
          await Deno.remove(`${dir}/bb.prom`);
          await Deno.symlink("/dev/zero", `${dir}/bb.prom`);
          const config = {
            ...base({ [`${src.host}/team/nope:1`]: { targets: ["dr"] } }),
            notify: undefined,
          };
          const run = await mirror(dir, config, { timeoutMs: 30_000 });
          assert.equal(run.code, 1, run.stderr);
          assert.ok(!(await Deno.lstat(`${dir}/bb.prom`)).isSymlink, "replaced by a file");
          const text = await Deno.readTextFile(`${dir}/bb.prom`);
          assert.equal(sample(text, "bananna_bot_last_success_timestamp_seconds"), 0);
        },
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
