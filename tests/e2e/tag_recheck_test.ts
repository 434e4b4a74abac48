/**
 * The never-overwrite re-check through `main.ts mirror`: the plan sees the destination tag free,
 * then (during the copy's first blob upload) another image is pushed to that tag. The run must
 * report drift (IMAGE_TAG_DRIFT) and send no manifest PUT for the tag; the other image stays. A
 * cold copy HEADs the tag twice: the plan's HEAD and the check right before the PUT.
 */
import assert from "node:assert/strict";
import { startHookProxy } from "../support/hook_proxy.ts";
import { headDigest, pushTestImage } from "../support/images.ts";
import { registryBinaryAvailable, startRegistry, type TestRegistry } from "../support/registry.ts";
import { mirror, registryTarget } from "../support/e2e_kit.ts";

const skip = registryBinaryAvailable() ? "" : " (ignored: docker-registry is not installed)";

/** `main.ts mirror` of `src`'s team/app:1.0 to `dst` through `proxy` (signed in), with `extra`. */
function mirrorApp(
  dir: string,
  parts: { src: TestRegistry; dst: TestRegistry; proxy: { host: string } },
  extra: Record<string, unknown> = {},
) {
  const { src, dst, proxy } = parts;
  return mirror(dir, {
    registries: {
      dr: registryTarget({ host: proxy.host, username: dst.username }, { login: true }),
    },
    log: { dir: "./logs", level: "DEBUG", consoleOutput: false },
    images: { [`${src.host}/team/app:1.0`]: { targets: ["dr"] } },
    ...extra,
  }, { env: { DST_PASSWORD: dst.password ?? "" }, timeoutMs: 60_000 });
}

Deno.test({
  name:
    `mirror: a tag pushed by someone else between the plan and the PUT is drift, never overwritten${skip}`,
  ignore: Boolean(skip),
  async fn() {
    await using src = await startRegistry();
    await using dst = await startRegistry({ auth: "htpasswd" });
    const image = await pushTestImage(src, "team/app:1.0", { kind: "oci-index", seed: 91 });
    let pushed = false;
    let other = "";
    await using proxy = startHookProxy(dst, async ({ method, path }) => {
      if (!pushed && method === "POST" && path === "/v2/mirror/app/blobs/uploads/") {
        pushed = true;
        other = (await pushTestImage(dst, "mirror/app:1.0", { kind: "oci", seed: 92 })).digest;
      }
    });
    const dir = await Deno.makeTempDir({ prefix: "bb-recheck-" });
    try {
      const run = await mirrorApp(dir, { src, dst, proxy }, {
        operation: { engine: "registry", retryDelay: 0.05, maxRetries: 1 },
      });
      assert.equal(run.code, 0, `${run.stdout}\n${run.stderr}`);
      assert.ok(pushed, "the other image was pushed during the copy");
      const report = run.report;
      assert.ok(report, "a report was written");
      assert.deepEqual(
        report.entries.map((e) => [e.status, e.code]),
        [["drift", "IMAGE_TAG_DRIFT"]],
      );
      assert.match(report.entries[0].error ?? "", new RegExp(`holds ${other}.*${image.digest}`));
      // The plan looked at the tag before anything was written (so it planned a push).
      const firstHead = proxy.requests.indexOf("HEAD /v2/mirror/app/manifests/1.0");
      const firstWrite = proxy.requests.findIndex((r) => /^(POST|PUT|PATCH) /.test(r));
      assert.ok(firstHead >= 0 && firstHead < firstWrite, proxy.requests.join("\n"));
      assert.deepEqual(
        proxy.requests.filter((r) => /^PUT \/v2\/mirror\/app\/manifests\/1\.0$/.test(r)),
        [],
        "no manifest PUT for the tag",
      );
      assert.equal(await headDigest(dst, "mirror/app:1.0"), other);
      assert.match(
        await Deno.readTextFile(`${dir}/logs/bananna-bot.log`),
        /\[WARNING\] \[IMAGE_TAG_DRIFT\]/,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    `mirror: a cold copy of an index HEADs its tag twice (the plan, before the PUT) and reads back only what latest copies${skip}`,
  ignore: Boolean(skip),
  async fn() {
    await using src = await startRegistry();
    await using dst = await startRegistry({ auth: "htpasswd" });
    const image = await pushTestImage(src, "team/app:1.0", { kind: "oci-index", seed: 93 });
    await using proxy = startHookProxy(dst, () => {});
    const dir = await Deno.makeTempDir({ prefix: "bb-recheck-" });
    try {
      // The defaults a user gets: the supply chain carried, latest reconciled.
      const run = await mirrorApp(dir, { src, dst, proxy });
      assert.equal(run.code, 0, `${run.stdout}\n${run.stderr}`);
      assert.deepEqual(run.report?.entries.map((e) => e.status), ["pushed"]);
      assert.equal(await headDigest(dst, "mirror/app:1.0"), image.digest);
      const log = proxy.requests.join("\n");
      // Was 3 (a HEAD at the copy's start as well).
      assert.equal(
        proxy.requests.filter((r) => r === "HEAD /v2/mirror/app/manifests/1.0").length,
        2,
        log,
      );
      // Only the latest step's read of the tag it copies to latest; the supply-chain step used to
      // read the index and its two children back as well.
      assert.deepEqual(
        proxy.requests.filter((r) => r.startsWith("GET /v2/mirror/app/manifests/")),
        ["GET /v2/mirror/app/manifests/1.0"],
        log,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
