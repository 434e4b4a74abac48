/**
 * `main.ts mirror` under a bandwidth limit, between two real registries: the limit holds for the
 * whole process across concurrent copies (two images at concurrency 2 take the time of their
 * bytes at the limit, not half of it), a registry entry's own limit holds its streams, and the
 * statistics and the report say what the limit held back. Only lower bounds are asserted (a
 * loaded machine can make a run slower, never faster than the limit allows).
 */
import assert from "node:assert/strict";
import { mirror, registryTarget } from "../support/e2e_kit.ts";
import { pushTestImage } from "../support/images.ts";
import { registryBinaryAvailable, startRegistry } from "../support/registry.ts";

const skip = registryBinaryAvailable() ? "" : " (ignored: docker-registry is not installed)";
const MiB = 1024 * 1024;

Deno.test({
  name: `mirror: maxBytesPerSecond holds the whole process and a registry entry${skip}`,
  ignore: Boolean(skip),
  async fn(t) {
    await using src = await startRegistry({ auth: "none" });
    await using dst = await startRegistry({ auth: "htpasswd" });
    const layers = { kind: "oci" as const, layers: 3, layerSize: MiB };
    await pushTestImage(src, "team/a:1", { ...layers, seed: 231 });
    await pushTestImage(src, "team/b:1", { ...layers, seed: 232 });
    await pushTestImage(src, "team/c:1", { ...layers, seed: 233 });
    const dir = await Deno.makeTempDir({ prefix: "bb-e2e-bandwidth-" });
    const mirrorImages = async (
      images: string[],
      limits: { process?: number; registry?: number },
    ) => {
      const started = performance.now();
      const run = await mirror(dir, {
        registries: {
          dr: registryTarget(dst, {
            login: true,
            more: limits.registry ? { maxBytesPerSecond: limits.registry } : {},
          }),
        },
        log: { dir: "./logs" },
        operation: {
          engine: "registry",
          concurrency: 2,
          updateLatest: false,
          ...(limits.process ? { maxBytesPerSecond: limits.process } : {}),
        },
        images: Object.fromEntries(images.map((i) => [`${src.host}/${i}`, { targets: ["dr"] }])),
      }, { env: { DST_PASSWORD: dst.password ?? "" }, timeoutMs: 60_000 });
      const seconds = (performance.now() - started) / 1000;
      assert.equal(run.code, 0, run.stderr + run.stdout);
      assert.ok(run.report, "no report");
      return { ...run, report: run.report, seconds };
    };
    try {
      await t.step("two images at once share one process limit of 1 MiB/s", async () => {
        const run = await mirrorImages(["team/a:1", "team/b:1"], { process: MiB });
        assert.deepEqual(run.report.entries.map((e) => e.status), ["pushed", "pushed"]);
        const bw = run.report.bandwidth;
        assert.ok(bw, "the report has no bandwidth block");
        assert.equal(bw.bytesPerSecond, MiB);
        const uploaded = run.report.entries.reduce((n, e) => n + e.bytesUploaded, 0);
        assert.equal(bw.uploadBytes, uploaded);
        assert.ok(bw.downloadBytes >= uploaded, "every uploaded byte was downloaded first");
        // Less the one second's burst: the lower bound no machine load can undercut.
        const least = (uploaded - MiB) / MiB;
        assert.ok(uploaded > 4 * MiB, `uploaded ${uploaded}`);
        assert.ok(run.seconds >= least, `${uploaded} bytes in ${run.seconds} s (>= ${least})`);
        assert.ok(bw.waitedSeconds > 0);
        assert.match(run.stdout, /Bandwidth limit: +1\.0 MB\/s per direction; 6\.\d MB in/);
      });

      await t.step("a registry entry's own limit holds its uploads", async () => {
        const run = await mirrorImages(["team/c:1"], { registry: MiB });
        const uploaded = run.report.entries[0].bytesUploaded;
        assert.ok(uploaded > 2 * MiB, `uploaded ${uploaded}`);
        const least = (uploaded - MiB) / MiB;
        assert.ok(run.seconds >= least, `${uploaded} bytes in ${run.seconds} s (>= ${least})`);
        assert.deepEqual(run.report.bandwidth?.hosts, { [dst.host]: MiB });
        assert.equal(run.report.bandwidth?.bytesPerSecond, null);
        assert.match(run.stdout, new RegExp(`Bandwidth limit: +${dst.host} 1\\.0 MB/s`));
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
