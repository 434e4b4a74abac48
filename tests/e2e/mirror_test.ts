/**
 * `main.ts mirror` as a subprocess against real registries (Debian's docker-registry) with
 * generated images: first run, no-op re-run, drift, latest, missing source, failing targets,
 * dry run, and no secret anywhere. The Quay side (REST API) is the double in tests/support, in
 * front of a real registry.
 */
import assert from "node:assert/strict";
import { stringify } from "yaml";
import { runCli } from "../support/cli.ts";
import { startFaultProxy } from "../support/fault_proxy.ts";
import { pushTestImage, skopeoInspectRaw } from "../support/images.ts";
import { registryBinaryAvailable, startRegistry } from "../support/registry.ts";
import type { Report } from "../../lib/mirror/report.ts";

const skip = registryBinaryAvailable() ? "" : " (ignored: docker-registry is not installed)";

interface Env {
  dir: string;
  config: string;
  logDir: string;
}

async function writeConfig(dir: string, config: Record<string, unknown>): Promise<Env> {
  const path = `${dir}/config.yaml`;
  await Deno.writeTextFile(path, stringify(config));
  return { dir, config: path, logDir: `${dir}/logs` };
}

async function mirror(env: Env, extra: string[] = [], vars: Record<string, string> = {}) {
  const result = await runCli(
    [
      "mirror",
      "--config",
      env.config,
      "--non-interactive",
      "--report",
      `${env.dir}/report.json`,
      ...extra,
    ],
    { env: vars, cwd: env.dir },
  );
  let report: Report = null as unknown as Report;
  try {
    report = JSON.parse(await Deno.readTextFile(`${env.dir}/report.json`));
    await Deno.remove(`${env.dir}/report.json`);
  } catch {
    // no report
  }
  return { ...result, report };
}

function statuses(report: Report): string[] {
  return report.entries.map((e) => `${e.destination.replace(/^[^/]+\//, "")} ${e.status}`);
}

async function writes(reg: { accessLog(): Promise<string[]> }): Promise<string[]> {
  return (await reg.accessLog()).filter((line) => /\b(PUT|POST|PATCH|DELETE)\b/.test(line));
}

Deno.test({
  name: `mirror with the registry engine: push, no-op re-run, drift, latest, dry run${skip}`,
  ignore: Boolean(skip),
  async fn(t) {
    await using src = await startRegistry({ auth: "none" });
    await using dst = await startRegistry({ auth: "htpasswd" });
    const dir = await Deno.makeTempDir({ prefix: "bb-e2e-" });
    const password = dst.password ?? "";
    const vars = { DST_PASSWORD: password };
    const a1 = await pushTestImage(src, "team/app:1.0", { kind: "oci", seed: 1 });
    const a2 = await pushTestImage(src, "team/app:2.0", { kind: "oci-index", seed: 2 });
    const b = await pushTestImage(src, "tools/web:v1", { kind: "docker-list", seed: 3 });
    const c = await pushTestImage(src, "tools/cli:3", { kind: "schema2", seed: 4 });
    const config = (images: Record<string, unknown>, operation: Record<string, unknown> = {}) => ({
      registries: {
        dr: {
          url: dst.host,
          namespace: "mirror",
          kind: "registry",
          username: dst.username,
          password: "${DST_PASSWORD}",
        },
      },
      log: { dir: "./logs", level: "DEBUG" },
      operation: { engine: "registry", retryDelay: 0.05, maxRetries: 1, ...operation },
      images,
    });
    const base = {
      [`${src.host}/team/app:1.0`]: { targets: ["dr"] },
      [`${src.host}/team/app:2.0`]: { targets: ["dr"] },
      [`${src.host}/tools/web:v1`]: { targets: ["dr"] },
      [`${src.host}/tools/cli:3`]: { targets: ["dr"], repository: "cli-tools" },
    };
    const env = await writeConfig(dir, config(base));
    try {
      await t.step("dry run writes nothing and plans every push", async () => {
        const run = await mirror(env, ["--dry-run"], vars);
        assert.equal(run.code, 0, run.stderr);
        assert.deepEqual(statuses(run.report), [
          "mirror/app:1.0 planned",
          "mirror/app:2.0 planned",
          "mirror/web:v1 planned",
          "mirror/cli-tools:3 planned",
        ]);
        assert.deepEqual(await writes(dst), []);
      });

      await t.step(
        "--only picks images by pattern; a pattern that matches none is exit 2",
        async () => {
          const run = await mirror(env, ["--dry-run", "--only", "*/tools/*"], vars);
          assert.equal(run.code, 0, run.stderr);
          assert.deepEqual(statuses(run.report), [
            "mirror/web:v1 planned",
            "mirror/cli-tools:3 planned",
          ]);
          const none = await mirror(env, ["--dry-run", "--only", "nginx*"], vars);
          assert.equal(none.code, 2);
          assert.match(none.stderr, /--only nginx\* matched no image \(images: /);
          assert.deepEqual(await writes(dst), []);
        },
      );

      await t.step("first run pushes every image with the source digests", async () => {
        const run = await mirror(env, [], vars);
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
          const oracle = await skopeoInspectRaw(dst, repo);
          assert.equal(oracle.digest, image.digest, repo);
        }
        // latest moved to the highest version.
        assert.equal((await skopeoInspectRaw(dst, "mirror/app:latest")).digest, a2.digest);
        const log = await Deno.readTextFile(`${env.logDir}/bananna-bot.log`);
        assert.match(log, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[INFO\] \[IMAGE_PUSHED\] Mirror: /m);
        assert.match(log, /\[IMAGE_LATEST_UPDATED\]/);
      });

      await t.step("second run writes nothing: every tag already exists", async () => {
        const before = (await writes(dst)).length;
        const run = await mirror(env, [], vars);
        assert.equal(run.code, 0, run.stderr);
        assert.ok(
          run.report.entries.every((e) => e.status === "exists"),
          statuses(run.report).join(),
        );
        assert.equal((await writes(dst)).length, before);
      });

      await t.step("a tag changed upstream is drift, reported and untouched", async () => {
        const changed = await pushTestImage(src, "team/app:1.0", { kind: "oci", seed: 99 });
        assert.notEqual(changed.digest, a1.digest);
        const run = await mirror(env, [], vars);
        assert.equal(run.code, 0, run.stderr);
        const entry = run.report.entries.find((e) => e.destination.endsWith("mirror/app:1.0"));
        assert.ok(entry);
        assert.equal(entry.status, "drift");
        assert.equal(entry.code, "IMAGE_TAG_DRIFT");
        assert.match(entry.error ?? "", new RegExp(a1.digest.slice(7, 19)));
        assert.equal((await skopeoInspectRaw(dst, "mirror/app:1.0")).digest, a1.digest);
        assert.match(
          await Deno.readTextFile(`${env.logDir}/bananna-bot.log`),
          /\[WARNING\] \[IMAGE_TAG_DRIFT\]/,
        );
      });

      await t.step("adding an older version does not move latest backwards", async () => {
        const older = await pushTestImage(src, "team/app:1.5", { kind: "oci", seed: 15 });
        await writeConfig(
          dir,
          config({ ...base, [`${src.host}/team/app:1.5`]: { targets: ["dr"] } }),
        );
        const run = await mirror(env, [], vars);
        assert.equal(run.code, 0, run.stderr);
        assert.equal((await skopeoInspectRaw(dst, "mirror/app:1.5")).digest, older.digest);
        assert.equal((await skopeoInspectRaw(dst, "mirror/app:latest")).digest, a2.digest);
        assert.ok(run.report.latest.some((l) => l.code === "IMAGE_LATEST_KEPT"));
      });

      await t.step("an immutable latest (Quay's 409) is a warning; the new tag lands", async () => {
        const newer = await pushTestImage(src, "team/app:3.0", { kind: "oci", seed: 30 });
        await using proxy = startFaultProxy(dst, [{
          method: "PUT",
          path: /^\/v2\/mirror\/app\/manifests\/latest$/,
          times: 10,
          fault: { kind: "status", status: 409 },
        }]);
        const viaProxy = config({ [`${src.host}/team/app:3.0`]: { targets: ["dr"] } }) as {
          registries: { dr: { url: string } };
        };
        viaProxy.registries.dr.url = proxy.host;
        await writeConfig(dir, viaProxy);
        const run = await mirror(env, [], vars);
        assert.equal(run.code, 0, run.stderr);
        assert.equal(run.report.entries[0].status, "pushed");
        assert.equal((await skopeoInspectRaw(dst, "mirror/app:3.0")).digest, newer.digest);
        assert.equal((await skopeoInspectRaw(dst, "mirror/app:latest")).digest, a2.digest);
        assert.equal(proxy.injected["status-409"], 1, "one try, no retry of a 409");
        assert.deepEqual(run.report.latest.map((l) => l.code), ["IMAGE_TAG_IMMUTABLE"]);
        assert.match(
          await Deno.readTextFile(`${env.logDir}/bananna-bot.log`),
          /\[WARNING\] \[IMAGE_TAG_IMMUTABLE\] .*mirror\/app:latest is immutable; not moved to 3\.0/,
        );
      });

      await t.step("a missing source is IMAGE_NOT_FOUND and exit 1", async () => {
        await writeConfig(dir, config({ [`${src.host}/team/ghost:1`]: { targets: ["dr"] } }));
        const run = await mirror(env, [], vars);
        assert.equal(run.code, 1);
        assert.equal(run.report.entries[0].status, "failed");
        assert.equal(run.report.entries[0].code, "IMAGE_NOT_FOUND");
      });

      await t.step(
        "a rate-limited source (429) waits Retry-After, logs the wait, and fails when it lasts",
        async () => {
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
          {
            await using proxy = startFaultProxy(src, [{ ...limited, times: 1 }]);
            await writeConfig(
              dir,
              config({ [`${proxy.host}/team/limited:1`]: { targets: ["dr"] } }),
            );
            const run = await mirror(env, [], vars);
            assert.equal(run.code, 0, run.stderr);
            assert.equal(run.report.entries[0].status, "pushed");
            assert.equal(proxy.injected["status-429"], 1);
            const log = await Deno.readTextFile(`${env.logDir}/bananna-bot.log`);
            assert.match(
              log,
              /\[WARNING\] \[LOGIN_RATE_LIMITED\] Retry: HEAD \S+ answered 429 .*ratelimit-remaining 0;w=21600, retry after 1 s\); retry 1 of 1 in 1\.0 s/,
            );
          }
          {
            await using proxy = startFaultProxy(src, [{ ...limited, times: 100 }]);
            await writeConfig(
              dir,
              config({ [`${proxy.host}/team/limited:1`]: { targets: ["dr"] } }),
            );
            const run = await mirror(env, [], vars);
            assert.equal(run.code, 1);
            assert.equal(run.report.entries[0].status, "failed");
            assert.equal(run.report.entries[0].code, "IMAGE_RATE_LIMITED");
            assert.match(run.report.entries[0].error ?? "", /retry after 1 s/);
            assert.equal(proxy.injected["status-429"], 2, "maxRetries 1: two tries in all");
          }
        },
      );

      await t.step("no password or token in logs, reports or output", async () => {
        const texts = [
          run_text(env.logDir),
          await Deno.readTextFile(`${env.logDir}/last-report.json`),
        ];
        for (const text of await Promise.all(texts)) {
          assert.ok(!text.includes(password), "password leaked");
          assert.ok(!text.includes(btoa(`${dst.username}:${password}`)), "basic auth leaked");
        }
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

async function run_text(dir: string): Promise<string> {
  let all = "";
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile && !entry.name.endsWith(".gz")) {
      all += await Deno.readTextFile(`${dir}/${entry.name}`);
    }
  }
  return all;
}
