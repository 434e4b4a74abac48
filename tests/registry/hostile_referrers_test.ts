/**
 * A hostile referrers API at the source, the CLI as a subprocess under `/usr/bin/time -v`: pages
 * of almost the 4 MiB page cap whose `Link: rel="next"` loops to the same page, or always names a
 * new one. Each page is checked and dropped as it comes, a loop fails at once and the pages
 * together are capped, so the run ends by itself, the image mirrored and its supply chain failed,
 * under 120 MB peak RSS.
 */
import assert from "node:assert/strict";
import { stringify } from "yaml";
import { within } from "../support/bounded.ts";
import { hostileImage, startHostileRegistry } from "../support/hostile_registry.ts";
import { gnuTimeAvailable, runCliMeasured } from "../support/hostile_run.ts";
import { registryBinaryAvailable, startRegistry } from "../support/registry.ts";
import { registryTarget } from "../support/e2e_kit.ts";

const skip = registryBinaryAvailable() ? "" : " (ignored: docker-registry is not installed)";
const INDEX = "application/vnd.oci.image.index.v1+json";

/** A valid referrers index of about `bytes` bytes (the bulk in an annotation). */
function bigPage(bytes: number): Uint8Array {
  const head = `{"schemaVersion":2,"mediaType":"${INDEX}","annotations":{"pad":"`;
  const tail = `"},"manifests":[]}`;
  return new TextEncoder().encode(head + "x".repeat(bytes - head.length - tail.length) + tail);
}

// Before: with pages linking to new pages, all 100 pages (390 MB) were held before any was
// checked (peak RSS far above 120 MB); a Link back to the same page was read 100 times.
Deno.test({
  name:
    `mirror: a referrers Link that loops, or new pages near the cap, ends under 120 MB peak RSS${skip}`,
  ignore: Boolean(skip) || !gnuTimeAvailable(),
  async fn(t) {
    await using dst = await startRegistry();
    await using src = startHostileRegistry();
    const image = hostileImage(31, { layerSize: 1024 });
    src.serveImage("1", image);
    const page = bigPage(4 * 1024 * 1024 - 4096);
    let pages = 0;
    let variant: "same" | "new" = "same";
    src.referrers = (url) => {
      pages++;
      const n = Number(url.searchParams.get("p") ?? 0);
      const next = variant === "same" ? url.pathname + url.search : `${url.pathname}?p=${n + 1}`;
      return new Response(page as Uint8Array<ArrayBuffer>, {
        headers: { "content-type": INDEX, link: `<${next}>; rel="next"` },
      });
    };
    const dir = await Deno.makeTempDir({ prefix: "bb-hostile-referrers-" });
    try {
      await Deno.writeTextFile(
        `${dir}/config.yaml`,
        stringify({
          registries: { dr: registryTarget(dst) },
          log: { dir: "./logs" },
          operation: { engine: "registry", retryDelay: 0.05, maxRetries: 1 },
          images: { [`${src.host}/team/app:1`]: { targets: ["dr"] } },
        }),
      );
      const rows: ["same" | "new", RegExp, number][] = [
        ["same", /IMAGE_REFERRER_INVALID.*was already read \(the pages loop\)/, 1],
        ["new", /IMAGE_MANIFEST_TOO_LARGE.*passed \d+ bytes in all/, 5],
      ];
      for (const [kind, message, requests] of rows) {
        await t.step(
          `next page: ${kind === "same" ? "the same page" : "always a new one"}`,
          () =>
            within(60_000, kind, async () => {
              variant = kind;
              pages = 0;
              const run = await runCliMeasured(
                ["mirror", "--config", `${dir}/config.yaml`, "--non-interactive"],
                { cwd: dir, timeoutMs: 50_000 },
              );
              const out = run.stdout + run.stderr;
              assert.equal(run.code, 1, out);
              assert.match(out, message);
              assert.ok(run.peakRssMb < 120, `peak RSS ${run.peakRssMb.toFixed(1)} MB`);
              assert.equal(pages, requests);
            }),
        );
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
