/**
 * `main.ts mirror` as a subprocess against real registries (Debian's docker-registry) with
 * generated images: first run, no-op re-run, drift, latest, missing source, failing targets,
 * dry run, and no secret anywhere. One source registry holds the images; every step has its own
 * destination (tests/support/e2e_kit.ts), seeded by direct pushes when it needs tags there, so a
 * failing step names its own defect and no step relies on an earlier step's run.
 */
import assert from "node:assert/strict";
import {
  type Destination,
  mirror,
  registryConfig,
  startDestination,
  statuses,
  writes,
} from "../support/e2e_kit.ts";
import { startFaultProxy } from "../support/fault_proxy.ts";
import { type PushedImage, pushTestImage, skopeoInspectRaw } from "../support/images.ts";
import { registryBinaryAvailable, startRegistry } from "../support/registry.ts";
import type { Report } from "../../lib/mirror/report.ts";

const skip = registryBinaryAvailable() ? "" : " (ignored: docker-registry is not installed)";

/** The report of a run that must have written one. */
function reportOf(run: { report: Report | null; stderr: string }): Report {
  assert.ok(run.report, `no report: ${run.stderr}`);
  return run.report;
}

/** Push `image`'s bytes (same kind and seed) straight into the destination as `repoTag`. */
async function seed(dest: Destination, repoTag: string, image: PushedImage, seed: Seeded) {
  const pushed = await pushTestImage(dest.reg, repoTag, seed);
  assert.equal(pushed.digest, image.digest, `seeded ${repoTag}`);
}
type Seeded = Parameters<typeof pushTestImage>[2];

Deno.test({
  name: `mirror with the registry engine: push, no-op re-run, drift, latest, dry run${skip}`,
  ignore: Boolean(skip),
  async fn(t) {
    await using src = await startRegistry({ auth: "none" });
    const kinds = {
      a1: { kind: "oci", seed: 1 },
      a2: { kind: "oci-index", seed: 2 },
      b: { kind: "docker-list", seed: 3 },
      c: { kind: "schema2", seed: 4 },
    } as const;
    const a1 = await pushTestImage(src, "team/app:1.0", kinds.a1);
    const a2 = await pushTestImage(src, "team/app:2.0", kinds.a2);
    const b = await pushTestImage(src, "tools/web:v1", kinds.b);
    const c = await pushTestImage(src, "tools/cli:3", kinds.c);
    const base = {
      [`${src.host}/team/app:1.0`]: { targets: ["dr"] },
      [`${src.host}/team/app:2.0`]: { targets: ["dr"] },
      [`${src.host}/tools/web:v1`]: { targets: ["dr"] },
      [`${src.host}/tools/cli:3`]: { targets: ["dr"], repository: "cli-tools" },
    };
    /** What a run of `base` leaves in a destination: the four tags and each repository's latest. */
    const seedBase = async (dest: Destination) => {
      await seed(dest, "mirror/app:1.0", a1, kinds.a1);
      await seed(dest, "mirror/app:2.0", a2, kinds.a2);
      await seed(dest, "mirror/app:latest", a2, kinds.a2);
      await seed(dest, "mirror/web:v1", b, kinds.b);
      await seed(dest, "mirror/web:latest", b, kinds.b);
      await seed(dest, "mirror/cli-tools:3", c, kinds.c);
      await seed(dest, "mirror/cli-tools:latest", c, kinds.c);
    };
    const logOf = (dest: Destination) => Deno.readTextFile(`${dest.dir}/logs/bananna-bot.log`);

    await t.step("dry run writes nothing and plans every push", async () => {
      await using dest = await startDestination();
      const run = await mirror(dest.dir, registryConfig(dest.reg, base), {
        env: dest.env,
        extra: ["--dry-run"],
      });
      assert.equal(run.code, 0, run.stderr);
      assert.deepEqual(statuses(run.report), [
        "mirror/app:1.0 planned",
        "mirror/app:2.0 planned",
        "mirror/web:v1 planned",
        "mirror/cli-tools:3 planned",
      ]);
      assert.deepEqual(await writes(dest.reg), []);
    });

    await t.step(
      "--only picks images by pattern; a pattern that matches none is exit 2",
      async () => {
        await using dest = await startDestination();
        const config = registryConfig(dest.reg, base);
        const only = (pattern: string) =>
          mirror(dest.dir, config, { env: dest.env, extra: ["--dry-run", "--only", pattern] });
        const run = await only("*/tools/*");
        assert.equal(run.code, 0, run.stderr);
        assert.deepEqual(statuses(run.report), [
          "mirror/web:v1 planned",
          "mirror/cli-tools:3 planned",
        ]);
        const none = await only("nginx*");
        assert.equal(none.code, 2);
        assert.match(none.stderr, /--only nginx\* matched no image \(images: /);
        assert.deepEqual(await writes(dest.reg), []);
      },
    );

    await t.step("first run pushes every image with the source digests", async () => {
      await using dest = await startDestination();
      const run = await mirror(dest.dir, registryConfig(dest.reg, base), { env: dest.env });
      assert.equal(run.code, 0, run.stderr + run.stdout);
      assert.deepEqual(statuses(run.report), [
        "mirror/app:1.0 pushed",
        "mirror/app:2.0 pushed",
        "mirror/web:v1 pushed",
        "mirror/cli-tools:3 pushed",
      ]);
      for (
        const [repo, image] of [["mirror/app:1.0", a1], ["mirror/app:2.0", a2], [
          "mirror/web:v1",
          b,
        ], ["mirror/cli-tools:3", c]] as const
      ) {
        const oracle = await skopeoInspectRaw(dest.reg, repo);
        assert.equal(oracle.digest, image.digest, repo);
      }
      // latest moved to the highest version.
      assert.equal((await skopeoInspectRaw(dest.reg, "mirror/app:latest")).digest, a2.digest);
      const log = await logOf(dest);
      assert.match(log, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[INFO\] \[IMAGE_PUSHED\] Mirror: /m);
      assert.match(log, /\[IMAGE_LATEST_UPDATED\]/);
    });

    await t.step("second run writes nothing: every tag already exists", async () => {
      await using dest = await startDestination();
      await seedBase(dest);
      const before = (await writes(dest.reg)).length;
      const run = await mirror(dest.dir, registryConfig(dest.reg, base), { env: dest.env });
      assert.equal(run.code, 0, run.stderr);
      assert.ok(
        reportOf(run).entries.every((e) => e.status === "exists"),
        statuses(run.report).join(),
      );
      assert.deepEqual((await writes(dest.reg)).slice(before), []);
    });

    await t.step("a tag changed upstream is drift, reported and untouched", async () => {
      await using dest = await startDestination();
      // The destination holds what upstream's app:1.0 was before it changed (seed 99).
      const earlier = await pushTestImage(dest.reg, "mirror/app:1.0", { kind: "oci", seed: 99 });
      assert.notEqual(earlier.digest, a1.digest);
      const run = await mirror(dest.dir, registryConfig(dest.reg, base), { env: dest.env });
      assert.equal(run.code, 0, run.stderr);
      const entry = reportOf(run).entries.find((e) => e.destination.endsWith("mirror/app:1.0"));
      assert.ok(entry);
      assert.equal(entry.status, "drift");
      assert.equal(entry.code, "IMAGE_TAG_DRIFT");
      assert.match(entry.error ?? "", new RegExp(earlier.digest.slice(7, 19)));
      assert.equal((await skopeoInspectRaw(dest.reg, "mirror/app:1.0")).digest, earlier.digest);
      assert.match(await logOf(dest), /\[WARNING\] \[IMAGE_TAG_DRIFT\]/);
    });

    await t.step("adding an older version does not move latest backwards", async () => {
      await using dest = await startDestination();
      await seedBase(dest);
      const older = await pushTestImage(src, "team/app:1.5", { kind: "oci", seed: 15 });
      // Only 1.5 in the config: latest (2.0, found by digest among the destination's tags) is
      // higher than every candidate, so only the never-backwards rule keeps it.
      const config = registryConfig(dest.reg, {
        [`${src.host}/team/app:1.5`]: { targets: ["dr"] },
      });
      const run = await mirror(dest.dir, config, { env: dest.env });
      assert.equal(run.code, 0, run.stderr);
      assert.equal((await skopeoInspectRaw(dest.reg, "mirror/app:1.5")).digest, older.digest);
      assert.equal((await skopeoInspectRaw(dest.reg, "mirror/app:latest")).digest, a2.digest);
      assert.ok(reportOf(run).latest.some((l) => l.code === "IMAGE_LATEST_KEPT"));
    });

    await t.step("an immutable latest (Quay's 409) is a warning; the new tag lands", async () => {
      await using dest = await startDestination();
      await seedBase(dest);
      const newer = await pushTestImage(src, "team/app:3.0", { kind: "oci", seed: 30 });
      await using proxy = startFaultProxy(dest.reg, [{
        method: "PUT",
        path: /^\/v2\/mirror\/app\/manifests\/latest$/,
        times: 10,
        fault: { kind: "status", status: 409 },
      }]);
      const viaProxy = registryConfig(
        { host: proxy.host, username: dest.reg.username },
        { [`${src.host}/team/app:3.0`]: { targets: ["dr"] } },
      );
      const run = await mirror(dest.dir, viaProxy, { env: dest.env });
      assert.equal(run.code, 0, run.stderr);
      assert.equal(reportOf(run).entries[0].status, "pushed");
      assert.equal((await skopeoInspectRaw(dest.reg, "mirror/app:3.0")).digest, newer.digest);
      assert.equal((await skopeoInspectRaw(dest.reg, "mirror/app:latest")).digest, a2.digest);
      assert.equal(proxy.injected["status-409"], 1, "one try, no retry of a 409");
      assert.deepEqual(reportOf(run).latest.map((l) => l.code), ["IMAGE_TAG_IMMUTABLE"]);
      assert.match(
        await logOf(dest),
        /\[WARNING\] \[IMAGE_TAG_IMMUTABLE\] .*mirror\/app:latest is immutable; not moved to 3\.0/,
      );
    });

    await t.step("a missing source is IMAGE_NOT_FOUND and exit 1", async () => {
      await using dest = await startDestination();
      const config = registryConfig(dest.reg, {
        [`${src.host}/team/ghost:1`]: { targets: ["dr"] },
      });
      const run = await mirror(dest.dir, config, { env: dest.env });
      assert.equal(run.code, 1);
      assert.equal(reportOf(run).entries[0].status, "failed");
      assert.equal(reportOf(run).entries[0].code, "IMAGE_NOT_FOUND");
    });

    const limited = {
      method: "HEAD",
      path: /\/manifests\//,
      fault: {
        kind: "status" as const,
        status: 429,
        retryAfter: "1",
        headers: { "ratelimit-remaining": "0;w=21600" },
      },
    };
    await pushTestImage(src, "team/limited:1", { kind: "oci", seed: 9 });

    await t.step("a rate-limited source (429) waits Retry-After and logs the wait", async () => {
      await using dest = await startDestination();
      await using proxy = startFaultProxy(src, [{ ...limited, times: 1 }]);
      const config = registryConfig(dest.reg, {
        [`${proxy.host}/team/limited:1`]: { targets: ["dr"] },
      });
      const run = await mirror(dest.dir, config, { env: dest.env });
      assert.equal(run.code, 0, run.stderr);
      assert.equal(reportOf(run).entries[0].status, "pushed");
      assert.equal(proxy.injected["status-429"], 1);
      assert.match(
        await logOf(dest),
        /\[WARNING\] \[LOGIN_RATE_LIMITED\] Retry: HEAD \S+ answered 429 .*ratelimit-remaining 0;w=21600, retry after 1 s\); retry 1 of 1 in 1\.0 s/,
      );
    });

    await t.step("a source rate-limited (429) past the retries fails the image", async () => {
      await using dest = await startDestination();
      await using proxy = startFaultProxy(src, [{ ...limited, times: 100 }]);
      const config = registryConfig(dest.reg, {
        [`${proxy.host}/team/limited:1`]: { targets: ["dr"] },
      });
      const run = await mirror(dest.dir, config, { env: dest.env });
      assert.equal(run.code, 1);
      assert.equal(reportOf(run).entries[0].status, "failed");
      assert.equal(reportOf(run).entries[0].code, "IMAGE_RATE_LIMITED");
      assert.match(reportOf(run).entries[0].error ?? "", /retry after 1 s/);
      assert.equal(proxy.injected["status-429"], 2, "maxRetries 1: two tries in all");
    });

    await t.step("no password or token in logs, reports or output", async () => {
      await using dest = await startDestination();
      // A push, a drift, a missing source, then a re-run: every kind of line the runs log.
      await pushTestImage(dest.reg, "mirror/web:v1", { kind: "oci", seed: 98 });
      const config = registryConfig(dest.reg, {
        [`${src.host}/team/app:1.0`]: { targets: ["dr"] },
        [`${src.host}/tools/web:v1`]: { targets: ["dr"] },
        [`${src.host}/team/ghost:1`]: { targets: ["dr"] },
      });
      const runs = [
        await mirror(dest.dir, config, { env: dest.env }),
        await mirror(dest.dir, config, { env: dest.env }),
      ];
      const password = dest.reg.password ?? "";
      const texts = [
        await allText(`${dest.dir}/logs`),
        await Deno.readTextFile(`${dest.dir}/logs/last-report.json`),
        ...runs.flatMap((run) => [run.stdout, run.stderr]),
      ];
      // The runs logged about the destination (a check over empty logs would pass on anything).
      assert.match(texts[0], new RegExp(`${dest.reg.host}/mirror/app:1\\.0`));
      for (const text of texts) {
        assert.ok(!text.includes(password), "password leaked");
        assert.ok(!text.includes(btoa(`${dest.reg.username}:${password}`)), "basic auth leaked");
      }
    });
  },
});

/** Every file of a log dir but the archives, as one text. */
async function allText(dir: string): Promise<string> {
  let all = "";
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile && !entry.name.endsWith(".gz")) {
      all += await Deno.readTextFile(`${dir}/${entry.name}`);
    }
  }
  return all;
}
