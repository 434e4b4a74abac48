/**
 * `main.ts mirror` as a subprocess on the transport edges: a destination password outside Latin-1
 * given through ${VAR}, and a source that answers 429 with `Retry-After: 86400` (the run ends at
 * once with IMAGE_RATE_LIMITED, the wanted wait and the configured ceiling, instead of parking for
 * a day).
 */
import assert from "node:assert/strict";
import { mirror, registryTarget } from "../support/e2e_kit.ts";
import { startFaultProxy } from "../support/fault_proxy.ts";
import { pushTestImage } from "../support/images.ts";
import { registryBinaryAvailable, startRegistry } from "../support/registry.ts";

const skip = registryBinaryAvailable() ? "" : " (ignored: docker-registry is not installed)";

const UNICODE_PASSWORD = "pässwörd€✓";

Deno.test({
  name:
    `mirror: a password outside Latin-1 works; Retry-After over maxRetryWait fails at once${skip}`,
  ignore: Boolean(skip),
  async fn(t) {
    await using src = await startRegistry({ auth: "none" });
    await using dst = await startRegistry({
      auth: "htpasswd",
      users: { mirror: UNICODE_PASSWORD },
    });
    await pushTestImage(src, "team/app:1", { kind: "oci", seed: 81 });
    await pushTestImage(src, "team/limited:1", { kind: "oci", seed: 82 });
    const dir = await Deno.makeTempDir({ prefix: "bb-e2e-transport-" });
    const mirrorImages = async (images: Record<string, unknown>) => {
      const started = Date.now();
      const run = await mirror(dir, {
        registries: {
          // dst's one user is `mirror`, its password UNICODE_PASSWORD.
          dr: registryTarget(dst, { login: true }),
        },
        log: { dir: "./logs", level: "DEBUG" },
        operation: { engine: "registry", retryDelay: 0.05, maxRetries: 3, maxRetryWait: 600 },
        images,
      }, { env: { DST_PASSWORD: UNICODE_PASSWORD }, timeoutMs: 30_000 });
      const report = run.report;
      assert.ok(report, `no report: ${run.stderr}${run.stdout}`);
      return { ...run, report, seconds: (Date.now() - started) / 1000 };
    };
    try {
      await t.step("the destination password pässwörd€✓ logs in and pushes", async () => {
        const run = await mirrorImages({ [`${src.host}/team/app:1`]: { targets: ["dr"] } });
        assert.equal(run.code, 0, run.stderr + run.stdout);
        assert.equal(run.report.entries[0].status, "pushed");
        const log = await Deno.readTextFile(`${dir}/logs/bananna-bot.log`);
        for (const text of [log, run.stdout, run.stderr]) {
          assert.ok(!text.includes(UNICODE_PASSWORD), "password leaked");
        }
      });

      await t.step("a source asking for Retry-After: 86400 fails at once", async () => {
        await using proxy = startFaultProxy(src, [{
          method: "HEAD",
          path: /\/manifests\//,
          times: 100,
          fault: { kind: "status", status: 429, retryAfter: "86400" },
        }]);
        const run = await mirrorImages({ [`${proxy.host}/team/limited:1`]: { targets: ["dr"] } });
        assert.equal(run.code, 1, run.stderr + run.stdout);
        const entry = run.report.entries[0];
        assert.equal(entry.status, "failed");
        assert.equal(entry.code, "IMAGE_RATE_LIMITED");
        assert.match(entry.error ?? "", /asks to wait 86400 s \(1\.0 days\)/);
        assert.match(entry.error ?? "", /operation\.maxRetryWait \(600 s\): not waiting/);
        assert.equal(proxy.injected["status-429"], 1, "no retry, no wait");
        assert.ok(run.seconds < 30, `the run ended in ${run.seconds} s`);
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
