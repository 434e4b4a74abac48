/**
 * Crash and concurrency, with `main.ts mirror` as a subprocess: `latest` reconciled after a run
 * that died between the tag PUT and the latest move (real registries), a run refused the lock
 * never rotates the log of the run that holds it, and no file in the log dir is written through
 * a planted symbolic link.
 */
import assert from "node:assert/strict";
import { stringify } from "yaml";
import type { Report } from "../../lib/mirror/report.ts";
import { hostname } from "../../lib/mirror/run_lock.ts";
import { runCli } from "../support/cli.ts";
import { startFaultProxy } from "../support/fault_proxy.ts";
import { pushTestImage } from "../support/images.ts";
import { registryBinaryAvailable, startRegistry, type TestRegistry } from "../support/registry.ts";
import { registryTarget } from "../support/e2e_kit.ts";

const skip = registryBinaryAvailable() ? "" : " (ignored: docker-registry is not installed)";
const MANIFEST_TYPES = [
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.v2+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
].join(", ");

async function mirror(dir: string, extra: string[] = []) {
  const result = await runCli(
    ["mirror", "--config", "config.yaml", "--non-interactive", "--report", "report.json", ...extra],
    { cwd: dir, env: { HOSTNAME: hostname() }, timeoutMs: 60_000 },
  );
  let report: Report | null = null;
  try {
    report = JSON.parse(await Deno.readTextFile(`${dir}/report.json`));
    await Deno.remove(`${dir}/report.json`);
  } catch {
    // no report
  }
  return { ...result, report };
}

/** The digest `tag` points at in the destination, or null. */
async function digestOf(reg: TestRegistry, repo: string, tag: string): Promise<string | null> {
  const res = await fetch(`${reg.url}/v2/${repo}/manifests/${tag}`, {
    method: "HEAD",
    headers: { accept: MANIFEST_TYPES },
  });
  await res.body?.cancel();
  return res.status === 200 ? res.headers.get("docker-content-digest") : null;
}

/** Point `repo:to` at the manifest of `repo:from` (what an operator or an older run did). */
async function retag(reg: TestRegistry, repo: string, from: string, to: string): Promise<void> {
  const got = await fetch(`${reg.url}/v2/${repo}/manifests/${from}`, {
    headers: { accept: MANIFEST_TYPES },
  });
  assert.equal(got.status, 200);
  const type = got.headers.get("content-type") ?? "";
  const body = new Uint8Array(await got.arrayBuffer());
  const put = await fetch(`${reg.url}/v2/${repo}/manifests/${to}`, {
    method: "PUT",
    headers: { "content-type": type },
    body,
  });
  await put.body?.cancel();
  assert.equal(put.status, 201);
}

Deno.test({
  name: `latest is reconciled on every run: set after a crash before the move, forward only${skip}`,
  ignore: Boolean(skip),
  async fn(t) {
    await using src = await startRegistry();
    await using dst = await startRegistry();
    const a1 = await pushTestImage(src, "team/app:1.0", { kind: "oci", seed: 41 });
    const a2 = await pushTestImage(src, "team/app:2.0", { kind: "oci", seed: 42 });
    const dir = await Deno.makeTempDir({ prefix: "bb-crash-" });
    const writeConfig = (url: string) =>
      Deno.writeTextFile(
        `${dir}/config.yaml`,
        stringify({
          registries: { dr: registryTarget({ host: url }) },
          log: { dir: "./logs" },
          operation: { engine: "registry", retryDelay: 0.05, maxRetries: 1 },
          images: {
            [`${src.host}/team/app:1.0`]: { targets: ["dr"] },
            [`${src.host}/team/app:2.0`]: { targets: ["dr"] },
          },
        }),
      );
    try {
      await t.step(
        "a run that dies before the latest move leaves the tags, no latest",
        async () => {
          // The latest PUT never lands: the same state as a kill between the tag PUT and the move.
          await using proxy = startFaultProxy(dst, [{
            method: "PUT",
            path: /^\/v2\/mirror\/app\/manifests\/latest$/,
            times: 100,
            fault: { kind: "status", status: 500 },
          }]);
          await writeConfig(proxy.host);
          await mirror(dir);
          assert.equal(await digestOf(dst, "mirror/app", "2.0"), a2.digest);
          assert.equal(await digestOf(dst, "mirror/app", "latest"), null);
        },
      );

      await writeConfig(dst.host);
      await t.step("the re-run finds every tag existing and still sets latest", async () => {
        const run = await mirror(dir);
        assert.equal(run.code, 0, run.stderr + run.stdout);
        assert.deepEqual(run.report?.entries.map((e) => e.status), ["exists", "exists"]);
        assert.equal(await digestOf(dst, "mirror/app", "latest"), a2.digest);
        assert.deepEqual(run.report?.latest.map((l) => [l.code, l.tag]), [
          ["IMAGE_LATEST_UPDATED", "2.0"],
        ]);
      });

      await t.step(
        "a latest left behind: the dry run predicts the move, the run makes it",
        async () => {
          await retag(dst, "mirror/app", "1.0", "latest");
          assert.equal(await digestOf(dst, "mirror/app", "latest"), a1.digest);
          const dry = await mirror(dir, ["--dry-run"]);
          assert.equal(dry.code, 0, dry.stderr);
          assert.deepEqual(dry.report?.latest.map((l) => [l.code, l.tag]), [
            ["IMAGE_PLANNED", "2.0"],
          ]);
          assert.equal(await digestOf(dst, "mirror/app", "latest"), a1.digest, "dry run wrote");
          const run = await mirror(dir);
          assert.equal(run.code, 0, run.stderr);
          assert.equal(await digestOf(dst, "mirror/app", "latest"), a2.digest);
        },
      );

      await t.step("a latest already where the rule says is kept, nothing written", async () => {
        const writes = async () =>
          (await dst.accessLog()).filter((l) => /^(PUT|POST|PATCH|DELETE) /.test(l)).length;
        const before = await writes();
        const run = await mirror(dir);
        assert.equal(run.code, 0, run.stderr);
        assert.deepEqual(run.report?.latest.map((l) => l.code), ["IMAGE_LATEST_KEPT"]);
        assert.equal(await writes(), before);
      });

      await t.step("a latest ahead of the mirrored tags (a higher version) stays", async () => {
        const a3 = await pushTestImage(dst, "mirror/app:3.0", { kind: "oci", seed: 43 });
        await retag(dst, "mirror/app", "3.0", "latest");
        const dry = await mirror(dir, ["--dry-run"]);
        assert.deepEqual(dry.report?.latest.map((l) => l.code), ["IMAGE_LATEST_KEPT"]);
        const run = await mirror(dir);
        assert.equal(run.code, 0, run.stderr);
        assert.equal(await digestOf(dst, "mirror/app", "latest"), a3.digest);
        assert.deepEqual(run.report?.latest.map((l) => l.code), ["IMAGE_LATEST_KEPT"]);
      });

      await t.step(
        "two mirrored tags of one image: latest reconciled without a write",
        async () => {
          await pushTestImage(src, "team/alias:1.9", { kind: "oci", seed: 44 });
          const same = await pushTestImage(src, "team/alias:2.0", { kind: "oci", seed: 44 });
          await Deno.writeTextFile(
            `${dir}/config.yaml`,
            stringify({
              registries: { dr: registryTarget(dst) },
              log: { dir: "./logs" },
              operation: { engine: "registry", retryDelay: 0.05, maxRetries: 1 },
              images: {
                [`${src.host}/team/alias:1.9`]: { targets: ["dr"] },
                [`${src.host}/team/alias:2.0`]: { targets: ["dr"] },
              },
            }),
          );
          const first = await mirror(dir);
          assert.equal(first.code, 0, first.stderr);
          assert.equal(await digestOf(dst, "mirror/alias", "latest"), same.digest);
          const writes = async () =>
            (await dst.accessLog()).filter((l) => /^(PUT|POST|PATCH|DELETE) /.test(l)).length;
          const before = await writes();
          const again = await mirror(dir);
          assert.equal(again.code, 0, again.stderr);
          assert.deepEqual(again.report?.latest.map((l) => l.code), ["IMAGE_LATEST_KEPT"]);
          assert.equal(await writes(), before);
        },
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/** A config whose only registry is a closed loopback port: the run ends at once, with a report. */
async function closedPortConfig(dir: string, log: Record<string, unknown> = {}): Promise<void> {
  await Deno.writeTextFile(
    `${dir}/config.yaml`,
    stringify({
      registries: { dr: { url: "127.0.0.1:1", namespace: "mirror", kind: "registry" } },
      log: { dir: "./logs", ...log },
      operation: { engine: "registry", retryDelay: 0.05, maxRetries: 0, apiTimeout: 5 },
      images: { "127.0.0.1:1/team/app:1.0": { targets: ["dr"] } },
    }),
  );
}

Deno.test("a run refused the lock does not rotate the log of the run that holds it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bb-rotlock-" });
  try {
    await closedPortConfig(dir, { rotationDays: 1 });
    const logs = `${dir}/logs`;
    await Deno.mkdir(logs);
    // A running run (this test process, alive) holds the lock and has logged lines.
    const first = "2025-01-01 00:00:00 [INFO] [MIRROR_START] Mirror: the running run's line\n";
    await Deno.writeTextFile(`${logs}/bananna-bot.log`, first);
    await Deno.writeTextFile(
      `${logs}/.bananna-bot.lock`,
      JSON.stringify({ pid: Deno.pid, host: hostname(), started: new Date().toISOString() }),
    );
    // Rotation is due: the marker is ten days old.
    const marker = new Date(Date.now() - 10 * 86_400_000).toISOString() + "\n";
    await Deno.writeTextFile(`${logs}/.last_rotation`, marker);
    const run = await mirror(dir);
    assert.equal(run.code, 1, run.stderr + run.stdout);
    const log = await Deno.readTextFile(`${logs}/bananna-bot.log`);
    assert.ok(log.startsWith(first), log);
    assert.match(log, /\[ERROR\] \[MIRROR_LOCKED\] Mirror: Another bananna-bot run holds /);
    const names = [...Deno.readDirSync(logs)].map((e) => e.name).sort();
    assert.deepEqual(names, [".bananna-bot.lock", ".last_rotation", "bananna-bot.log"]);
    assert.equal(await Deno.readTextFile(`${logs}/.last_rotation`), marker);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("no file of the log dir is written through a planted symbolic link", async (t) => {
  const outsideDir = await Deno.makeTempDir({ prefix: "bb-outside-" });
  const outside = `${outsideDir}/precious.txt`;
  const original = "precious, not bananna-bot's\n";
  await Deno.writeTextFile(outside, original);
  try {
    for (const name of ["bananna-bot.log", ".bananna-bot.lock"]) {
      await t.step(`${name}: refused with MIRROR_UNSAFE_PATH naming it, no stack`, async () => {
        const dir = await Deno.makeTempDir({ prefix: "bb-link-" });
        try {
          await closedPortConfig(dir);
          await Deno.mkdir(`${dir}/logs`);
          await Deno.symlink(outside, `${dir}/logs/${name}`);
          if (name === "bananna-bot.log") {
            // validate sees the log file and warns; the run's refusal has the code.
            const check = await runCli(["validate", "--config", `${dir}/config.yaml`], {
              cwd: dir,
            });
            assert.equal(check.code, 0, check.stderr);
            assert.match(
              check.stderr,
              /warning: log\.file: \/.*\/logs\/bananna-bot\.log is a symbolic link: the run will refuse/,
            );
          }
          const run = await mirror(dir);
          assert.notEqual(run.code, 0);
          assert.match(run.stderr, /\[MIRROR_UNSAFE_PATH\]/);
          assert.ok(run.stderr.includes(`logs/${name}`), run.stderr);
          assert.doesNotMatch(run.stderr, /internal error|\n\s+at /);
          assert.equal(await Deno.readTextFile(outside), original);
          assert.ok((await Deno.lstat(`${dir}/logs/${name}`)).isSymlink);
        } finally {
          await Deno.remove(dir, { recursive: true });
        }
      });
    }
    await t.step(
      "last-report.json and .mirror-state.json: replaced, target untouched",
      async () => {
        const dir = await Deno.makeTempDir({ prefix: "bb-link-" });
        try {
          await closedPortConfig(dir);
          await Deno.mkdir(`${dir}/logs`);
          for (const name of ["last-report.json", ".mirror-state.json"]) {
            await Deno.symlink(outside, `${dir}/logs/${name}`);
          }
          const run = await mirror(dir);
          assert.equal(run.code, 1, run.stderr);
          assert.equal(await Deno.readTextFile(outside), original);
          assert.ok((await Deno.lstat(`${dir}/logs/last-report.json`)).isFile);
          const report = JSON.parse(await Deno.readTextFile(`${dir}/logs/last-report.json`));
          assert.equal(report.tool, "bananna-bot");
        } finally {
          await Deno.remove(dir, { recursive: true });
        }
      },
    );
  } finally {
    await Deno.remove(outsideDir, { recursive: true });
  }
});
