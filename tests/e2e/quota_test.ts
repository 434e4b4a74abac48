/**
 * Namespace quotas against the Quay double (shared/registry-protocols.md §5.14): an organization
 * already at its Reject limit fails its pushes at once in the plan (usage and limit in the line,
 * nothing written, the dry run predicts it); one that fills up during the run refuses a blob
 * upload half-way through an image: IMAGE_QUOTA_EXCEEDED, not retried, no tag written, and no
 * further push into that namespace, while other organizations complete (even with
 * continueOnError off); an organization past its Warning limit is one WARNING. The count is in the
 * report, the statistics and the metrics file.
 */
import assert from "node:assert/strict";
import { headDigest, pushTestImage } from "../support/images.ts";
import { quayTarget, startQuayDouble } from "../support/quay_double.ts";
import { registryBinaryAvailable, startRegistry } from "../support/registry.ts";
import { mirror } from "../support/e2e_kit.ts";

const skip = registryBinaryAvailable() ? "" : " (ignored: docker-registry is not installed)";

Deno.test({
  name:
    `quota: a full organization fails fast with one line and no half-written image while the others complete${skip}`,
  ignore: Boolean(skip),
  async fn(t) {
    await using src = await startRegistry();
    await using reg = await startRegistry({ auth: "htpasswd" });
    await using quay = startQuayDouble(reg, {
      tokens: { tok: { user: "admin", scopes: ["org:admin", "repo:admin", "repo:create"] } },
      orgs: {
        full: { admins: ["admin"] },
        half: { admins: ["admin"] },
        warn: { admins: ["admin"] },
        free: { admins: ["admin"] },
      },
      quotas: {
        full: { limitBytes: 1_000_000, usedBytes: 1_000_000 },
        // Room for one image of two 64 KiB layers: the second (its blobs go up in parallel)
        // crosses the limit, the third is refused.
        half: { limitBytes: 200_000, usedBytes: 0 },
        warn: { limitBytes: 10_000_000, usedBytes: 9_500_000, warningPercent: 90 },
      },
    });
    const dir = await Deno.makeTempDir({ prefix: "bb-quota-" });
    for (const [i, name] of ["a", "b", "c", "d"].entries()) {
      await pushTestImage(src, `team/${name}:1`, { kind: "oci", seed: 40 + i });
    }
    const target = (namespace: string) => quayTarget(quay, reg, namespace);
    const config = {
      registries: {
        full: target("full"),
        half: target("half"),
        warn: target("warn"),
        free: target("free"),
      },
      log: { dir: "./logs" },
      metrics: { file: "./metrics.prom" },
      operation: {
        retryDelay: 0.02,
        maxRetries: 2,
        apiTimeout: 5,
        engine: "registry",
        concurrency: 1,
        continueOnError: false,
        updateLatest: false,
      },
      images: {
        [`${src.host}/team/a:1`]: { targets: ["full", "half", "warn", "free"] },
        [`${src.host}/team/b:1`]: { targets: ["half"] },
        [`${src.host}/team/c:1`]: { targets: ["half", "free"] },
        [`${src.host}/team/d:1`]: { targets: ["half"] },
      },
    };
    const env = { QUAY_TOKEN: "tok", QUAY_PASSWORD: reg.password ?? "" };
    const log = () => Deno.readTextFile(`${dir}/logs/bananna-bot.log`);
    try {
      await t.step("the dry run predicts the full organization and the warning", async () => {
        const run = await mirror(dir, config, { env, extra: ["--dry-run"] });
        assert.deepEqual(
          run.report?.entries.map((e) => [e.target, e.status, e.code]),
          [
            ["full", "failed", "IMAGE_QUOTA_EXCEEDED"],
            ["half", "planned", "IMAGE_PLANNED"],
            ["warn", "planned", "IMAGE_PLANNED"],
            ["free", "planned", "IMAGE_PLANNED"],
            ["half", "planned", "IMAGE_PLANNED"],
            ["half", "planned", "IMAGE_PLANNED"],
            ["free", "planned", "IMAGE_PLANNED"],
            ["half", "planned", "IMAGE_PLANNED"],
          ],
        );
        assert.match(
          run.report?.entries[0].error ?? "",
          /namespace 127\.0\.0\.1:\d+\/full is over its quota: 1000000 of 1000000 bytes \(100\.0%\) used, pushes are refused from 100%/,
        );
        const text = run.stdout + run.stderr;
        assert.match(
          text,
          /\[WARNING\] \[IMAGE_QUOTA_WARNING\] Plan: namespace 127\.0\.0\.1:\d+\/warn is past its quota's warning limit: 9500000 of 10000000 bytes \(95\.0%\) used \(warning at 90%, pushes refused from 100%\)/,
        );
        assert.deepEqual(quay.refused, []);
      });

      await t.step(
        "the run: full fails at once, half stops half-way, the rest completes",
        async () => {
          const run = await mirror(dir, config, { env });
          assert.equal(run.code, 1, run.stderr);
          const entries = run.report?.entries ?? [];
          const others = entries.filter((e) => e.target !== "half");
          assert.deepEqual(others.map((e) => [e.target, e.status, e.code]), [
            ["full", "failed", "IMAGE_QUOTA_EXCEEDED"],
            ["warn", "pushed", "IMAGE_PUSHED"],
            ["free", "pushed", "IMAGE_PUSHED"],
            ["free", "pushed", "IMAGE_PUSHED"],
          ]);
          // half (images a, b, c, d in order): a fits; b's blobs go up in parallel and cross the
          // limit, so Quay refuses either b's last upload (b fails half-way) or c's first; every
          // image after the refused one is not tried.
          const half = entries.filter((e) => e.target === "half");
          const refusedAt = half.findIndex((e) => e.status === "failed");
          assert.ok(refusedAt === 1 || refusedAt === 2, JSON.stringify(half));
          assert.deepEqual(
            half.map((e) => e.status),
            half.map((_, i) => (i < refusedAt ? "pushed" : "failed")),
          );
          const refusedRepo = `half/${"abcd"[refusedAt]}`;
          assert.match(
            half[refusedAt].error ?? "",
            /^namespace 127\.0\.0\.1:\d+\/half is over its quota: no more pushes into it this run \((POST|PUT) .* answered 403 DENIED: Quota has been exceeded on namespace/,
          );
          for (const e of half.slice(refusedAt + 1)) {
            assert.equal(e.code, "IMAGE_QUOTA_EXCEEDED");
            assert.match(
              e.error ?? "",
              /half is over its quota \(refused earlier this run\); not tried/,
            );
          }
          // Each refused request was one of that image's blob uploads, refused once (not retried
          // with maxRetries 2): at most its 3 blobs; nothing was tried for the images after it.
          assert.ok(quay.refused.length >= 1 && quay.refused.length <= 3, quay.refused.join());
          for (const r of quay.refused) {
            assert.match(r, new RegExp(`^(POST|PUT) /v2/${refusedRepo}/blobs/uploads/\\S* 403$`));
          }
          for (const name of "abcd".slice(refusedAt)) {
            assert.equal(await headDigest(reg, `half/${name}:1`), null, "no half-written image");
          }
          assert.equal(await headDigest(reg, "full/a:1"), null);
          assert.notEqual(await headDigest(reg, "free/c:1"), null);
          const count = 4 - refusedAt;
          assert.deepEqual(run.report?.quotaExceeded?.map((q) => [q.target, q.images]), [
            ["full", 1],
            ["half", count],
          ]);
          assert.match(run.stdout + run.stderr, /Quota exceeded: {5}1 in 127\.0\.0\.1:\d+\/full/);
          assert.match(
            run.stdout + run.stderr,
            new RegExp(`Quota exceeded: {5}${count} in 127\\.0\\.0\\.1:\\d+/half`),
          );
          const text = await log();
          assert.equal(
            text.split("\n").filter((l) =>
              /\[IMAGE_QUOTA_EXCEEDED\] Plan: namespace .*\/full/.test(l)
            )
              .length,
            1,
            "one plan line for the full organization",
          );
          const metrics = await Deno.readTextFile(`${dir}/metrics.prom`);
          assert.match(
            metrics,
            new RegExp(
              `^bananna_bot_target_quota_exceeded_images\\{target="half"\\} ${count}$`,
              "m",
            ),
          );
          assert.match(metrics, /^bananna_bot_target_quota_exceeded_images\{target="free"\} 0$/m);
        },
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
