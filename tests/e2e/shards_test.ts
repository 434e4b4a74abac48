/**
 * Sharded runs for real: three `main.ts mirror --shard I/3` processes started at once on one
 * config and one log dir against real registries (Debian's docker-registry), then `report
 * --merge`, compared with one unsharded run of the same config on fresh destinations.
 */
import assert from "node:assert/strict";
import { stringify } from "yaml";
import { runCli } from "../support/cli.ts";
import { pushTestImage, skopeoInspectRaw } from "../support/images.ts";
import { registryBinaryAvailable, startRegistry, type TestRegistry } from "../support/registry.ts";
import type { Report } from "../../lib/mirror/report.ts";
import { registryTarget } from "../support/e2e_kit.ts";

const skip = registryBinaryAvailable() ? "" : " (ignored: docker-registry is not installed)";

/** `target path:tag status`, the destination host left out (each run has its own registries). */
function statuses(report: Report): string[] {
  return report.entries
    .map((e) => `${e.target} ${e.destination.replace(/^[^/]+\//, "")} ${e.status}`)
    .sort();
}

function latestTags(report: Report): string[] {
  return report.latest
    .map((l) => `${l.target} ${l.repository.replace(/^[^/]+\//, "")} ${l.code} ${l.tag}`)
    .sort();
}

async function readReport(path: string): Promise<Report> {
  return JSON.parse(await Deno.readTextFile(path));
}

Deno.test({
  name:
    `three shards at once cover every task once, never lock each other, merge like one run${skip}`,
  ignore: Boolean(skip),
  async fn(t) {
    await using src = await startRegistry({ auth: "none" });
    await using dr = await startRegistry({ auth: "htpasswd" });
    await using bk = await startRegistry({ auth: "none" });
    await using dr1 = await startRegistry({ auth: "htpasswd" });
    await using bk1 = await startRegistry({ auth: "none" });
    const dir = await Deno.makeTempDir({ prefix: "bb-shards-" });
    const pushes: [string, number][] = [
      ["team/app:1.0", 1],
      ["team/app:2.0", 2],
      ["team/app:2.1", 3],
      ["tools/web:v1", 4],
      ["tools/web:v2", 5],
      ["tools/cli:3", 6],
      ["base/os:1", 7],
      ["base/os:2", 8],
      ["data/db:5", 9],
      ["svc/api:1.0", 10],
      ["svc/api:1.1", 11],
    ];
    for (const [ref, seed] of pushes) {
      await pushTestImage(src, ref, { kind: seed % 2 ? "oci" : "schema2", seed, layerSize: 4096 });
    }
    // Drift: the destination tag already holds another image (in both runs' destinations).
    for (const reg of [dr, dr1]) {
      await pushTestImage(reg, "mirror/os:1", { kind: "oci", seed: 99, layerSize: 4096 });
    }
    const config = (drReg: TestRegistry, bkReg: TestRegistry) => ({
      registries: {
        dr: registryTarget(drReg, { login: "${DR_PASSWORD}" }),
        bk: registryTarget(bkReg, { namespace: "backup" }),
      },
      log: { dir: "./logs", level: "DEBUG" },
      operation: { engine: "registry", retryDelay: 0.05, maxRetries: 1, concurrency: 2 },
      images: {
        [`${src.host}/team/app:1.0`]: { targets: ["dr", "bk"] },
        [`${src.host}/team/app:2.0`]: { targets: ["dr", "bk"] },
        [`${src.host}/team/app:2.1`]: { targets: ["dr", "bk"] },
        [`${src.host}/tools/web:v1`]: { targets: ["dr"] },
        [`${src.host}/tools/web:v2`]: { targets: ["dr"] },
        [`${src.host}/tools/cli:3`]: { targets: ["dr", "bk"], repository: "cli-tools" },
        [`${src.host}/base/os:1`]: { targets: ["dr"] },
        [`${src.host}/base/os:2`]: { targets: ["dr"] },
        [`${src.host}/data/db:5`]: { targets: ["bk"] },
        [`${src.host}/team/gone:1`]: { targets: ["dr"] },
      },
      repositories: { [`${src.host}/svc/api`]: { targets: ["dr", "bk"], tags: {} } },
    });
    const expected = [
      "bk backup/api:1.0 pushed",
      "bk backup/api:1.1 pushed",
      "bk backup/app:1.0 pushed",
      "bk backup/app:2.0 pushed",
      "bk backup/app:2.1 pushed",
      "bk backup/cli-tools:3 pushed",
      "bk backup/db:5 pushed",
      "dr mirror/api:1.0 pushed",
      "dr mirror/api:1.1 pushed",
      "dr mirror/app:1.0 pushed",
      "dr mirror/app:2.0 pushed",
      "dr mirror/app:2.1 pushed",
      "dr mirror/cli-tools:3 pushed",
      "dr mirror/gone:1 failed",
      "dr mirror/os:1 drift",
      "dr mirror/os:2 pushed",
      "dr mirror/web:v1 pushed",
      "dr mirror/web:v2 pushed",
    ];
    const shardDir = `${dir}/sharded`;
    const singleDir = `${dir}/single`;
    await Deno.mkdir(shardDir);
    await Deno.mkdir(singleDir);
    await Deno.writeTextFile(`${shardDir}/config.yaml`, stringify(config(dr, bk)));
    await Deno.writeTextFile(`${singleDir}/config.yaml`, stringify(config(dr1, bk1)));
    const logs = `${shardDir}/logs`;
    try {
      let shardReports: Report[] = [];
      await t.step(
        "three shard processes at once: every task exactly once, no lock wait",
        async () => {
          const args = ["mirror", "--config", `${shardDir}/config.yaml`, "--non-interactive"];
          args.push("--metrics-file", `${shardDir}/metrics.prom`);
          const env = { DR_PASSWORD: dr.password ?? "" };
          const runs = await Promise.all([
            runCli([...args, "--shard", "0/3"], { env, cwd: shardDir }),
            runCli([...args, "--shard", "1/3"], { env, cwd: shardDir }),
            // The Indexed Job way: the index from JOB_COMPLETION_INDEX.
            runCli([...args, "--shards", "3"], {
              env: { ...env, JOB_COMPLETION_INDEX: "2" },
              cwd: shardDir,
            }),
          ]);
          for (const run of runs) {
            assert.ok(run.code === 0 || run.code === 1, `exit ${run.code}: ${run.stderr}`);
            assert.doesNotMatch(run.stdout + run.stderr, /MIRROR_LOCKED/);
          }
          shardReports = await Promise.all(
            [0, 1, 2].map((i) => readReport(`${logs}/last-report.${i}.json`)),
          );
          assert.deepEqual(shardReports.map((r) => r.shard), [
            { index: 0, count: 3 },
            { index: 1, count: 3 },
            { index: 2, count: 3 },
          ]);
          // A shard exits 1 exactly when its own report has a failure.
          assert.deepEqual(
            runs.map((r) => r.code),
            shardReports.map((r) => r.totals.failed ? 1 : 0),
          );
          const union = shardReports.flatMap(statuses).sort();
          assert.deepEqual(union, expected); // every task, none twice
          // One destination repository, one shard (its tags and its latest together).
          const owner = new Map<string, number>();
          shardReports.forEach((report, index) => {
            for (const e of report.entries) {
              const repo = e.destination.replace(/:[^:/]+$/, "");
              assert.equal(owner.get(repo) ?? index, index, `${repo} in two shards`);
              owner.set(repo, index);
            }
            for (const l of report.latest) assert.equal(owner.get(l.repository), index);
          });
          // Each shard its own lock, state dir and log; none logged another's lock.
          for (const i of [0, 1, 2]) {
            const log = await Deno.readTextFile(`${logs}/shard-${i}/bananna-bot.log`);
            assert.match(log, new RegExp(`Shard ${i} of 3 \\(0-based\\)`));
            assert.doesNotMatch(log, /MIRROR_LOCKED|MIRROR_LOCK_STALE/);
          }
          await assert.rejects(() => Deno.stat(`${logs}/bananna-bot.log`), Deno.errors.NotFound);
          await assert.rejects(() => Deno.stat(`${logs}/last-report.json`), Deno.errors.NotFound);
          // Metrics: one file per shard with a shard label (the textfile collector reads them all
          // from one folder; the same series without the label would clash); no shared file.
          await assert.rejects(() => Deno.stat(`${shardDir}/metrics.prom`), Deno.errors.NotFound);
          for (const i of [0, 1, 2]) {
            const text = await Deno.readTextFile(`${shardDir}/metrics.shard-${i}.prom`);
            assert.match(
              text,
              new RegExp(`^bananna_bot_run_exit_code\\{shard="${i}"\\} ${runs[i].code}$`, "m"),
            );
            assert.match(
              text,
              new RegExp(`^bananna_bot_images\\{shard="${i}",status="pushed"\\} `, "m"),
            );
            assert.doesNotMatch(text, /^bananna_bot_\w+ /m, "every sample carries the shard label");
          }
          // latest landed where it belongs.
          const app21 = await skopeoInspectRaw(dr, "mirror/app:2.1");
          assert.equal((await skopeoInspectRaw(dr, "mirror/app:latest")).digest, app21.digest);
        },
      );

      await t.step("report --merge equals one unsharded run of the same config", async () => {
        const merge = await runCli(
          ["report", "--merge", logs, "--output", `${dir}/merged.json`],
          { cwd: dir },
        );
        assert.equal(merge.code, 1, merge.stderr); // team/gone failed in one shard
        assert.match(merge.stdout, /Merged 3 shard report\(s\) from /);
        assert.match(merge.stdout, /Failed: +1\n/);
        const merged = await readReport(`${dir}/merged.json`);
        assert.deepEqual(statuses(merged), expected);
        assert.deepEqual(merged.totals, {
          pushed: 16,
          exists: 0,
          drift: 1,
          failed: 1,
          deferred: 0,
          planned: 0,
          skipped: 0,
        });
        const single = await runCli(
          [
            "mirror",
            "--config",
            `${singleDir}/config.yaml`,
            "--non-interactive",
            "--report",
            `${dir}/single.json`,
          ],
          { env: { DR_PASSWORD: dr1.password ?? "" }, cwd: singleDir },
        );
        assert.equal(single.code, merge.code, single.stderr);
        const one = await readReport(`${dir}/single.json`);
        assert.deepEqual(statuses(merged), statuses(one));
        assert.deepEqual(merged.totals, one.totals);
        assert.deepEqual(latestTags(merged), latestTags(one));
        assert.deepEqual(latestTags(merged), [
          "bk backup/api IMAGE_LATEST_UPDATED 1.1",
          "bk backup/app IMAGE_LATEST_UPDATED 2.1",
          "bk backup/cli-tools IMAGE_LATEST_UPDATED 3",
          "bk backup/db IMAGE_LATEST_UPDATED 5",
          "dr mirror/api IMAGE_LATEST_UPDATED 1.1",
          "dr mirror/app IMAGE_LATEST_UPDATED 2.1",
          "dr mirror/cli-tools IMAGE_LATEST_UPDATED 3",
          "dr mirror/os IMAGE_LATEST_UPDATED 2",
          "dr mirror/web IMAGE_LATEST_UPDATED v2",
        ]);
      });

      await t.step("a missing shard report: report --merge exits 1 naming it", async () => {
        await Deno.remove(`${logs}/last-report.1.json`);
        const merge = await runCli(["report", "--merge", logs], { cwd: dir });
        assert.equal(merge.code, 1);
        assert.match(
          merge.stderr,
          /\[MIRROR_MERGE_FAILED\] Incomplete: 3 shard\(s\), but no report from shard 1 \(last-report\.1\.json\)/,
        );
        assert.doesNotMatch(merge.stderr, /at .*\.ts:\d+/); // no stack trace
      });

      await t.step("a shard reads nothing of other shards' repositories", async () => {
        // A shard that owns some sources but not all (the split depends on the test ports).
        const repoOf = (e: { source: string }) =>
          e.source.replace(/^[^/]+\//, "").replace(/[:@].*$/, "");
        const all = new Set(shardReports.flatMap((r) => r.entries.map(repoOf)));
        const index = shardReports.findIndex((r) => {
          const own = new Set(r.entries.map(repoOf));
          return own.size > 0 && own.size < all.size;
        });
        assert.ok(index >= 0, "no shard owns a strict part of the sources");
        const before = (await src.accessLog()).length;
        const run = await runCli(
          ["mirror", "--config", `${shardDir}/config.yaml`, "--non-interactive", "--dry-run"]
            .concat(["--shard", `${index}/3`, "--report", `${dir}/dry.json`]),
          { env: { DR_PASSWORD: dr.password ?? "" }, cwd: shardDir },
        );
        assert.ok(run.code === 0 || run.code === 1, run.stderr);
        const mine = new Set((await readReport(`${dir}/dry.json`)).entries.map(repoOf));
        assert.deepEqual(mine, new Set(shardReports[index].entries.map(repoOf)));
        const read = (await src.accessLog()).slice(before)
          .map((line) => /\/v2\/(.+?)\/(manifests|tags|blobs)\//.exec(line)?.[1])
          .filter((repo): repo is string => repo !== undefined);
        assert.ok(read.length > 0);
        for (const repo of read) assert.ok(mine.has(repo), `shard ${index} read ${repo}`);
      });

      await t.step(
        "a shard that owns nothing runs, reads nothing, and reports 0 of COUNT",
        async () => {
          // mirror.corp.test/mirror/app and /web are both shard 0 of 2 (shard_test.ts pins the
          // split); shard 1 has nothing, so it must not even resolve the host.
          const emptyDir = `${dir}/empty`;
          await Deno.mkdir(emptyDir);
          await Deno.writeTextFile(
            `${emptyDir}/config.yaml`,
            stringify({
              registries: {
                ex: { url: "mirror.corp.test", namespace: "mirror", kind: "registry" },
              },
              log: { dir: "./logs" },
              operation: { engine: "registry" },
              images: {
                [`${src.host}/team/app:1.0`]: { targets: ["ex"] },
                [`${src.host}/tools/web:v1`]: { targets: ["ex"] },
              },
            }),
          );
          const run = await runCli(
            [
              "mirror",
              "--config",
              `${emptyDir}/config.yaml`,
              "--non-interactive",
              "--shard",
              "1/2",
            ],
            { cwd: emptyDir },
          );
          assert.equal(run.code, 0, run.stderr);
          const report = await readReport(`${emptyDir}/logs/last-report.1.json`);
          assert.deepEqual(report.entries, []);
          assert.deepEqual(report.shard, { index: 1, count: 2 });
          const log = await Deno.readTextFile(`${emptyDir}/logs/shard-1/bananna-bot.log`);
          assert.match(log, /Shard 1 of 2 \(0-based\): 0 of 2 image x target/);
        },
      );

      await t.step("a link planted as a shard's dir is refused, not followed", async () => {
        const emptyDir = `${dir}/empty`;
        const elsewhere = await Deno.makeTempDir({ prefix: "bb-elsewhere-" });
        await Deno.symlink(elsewhere, `${emptyDir}/logs/shard-0`);
        try {
          const run = await runCli(
            [
              "mirror",
              "--config",
              `${emptyDir}/config.yaml`,
              "--non-interactive",
              "--shard",
              "0/2",
            ],
            { cwd: emptyDir },
          );
          assert.equal(run.code, 1, run.stderr);
          assert.match(run.stderr, /\[MIRROR_UNSAFE_PATH\].*shard-0/);
          assert.deepEqual([...Deno.readDirSync(elsewhere)], []);
        } finally {
          await Deno.remove(elsewhere, { recursive: true });
        }
      });

      await t.step("bad shard input is exit 2 with the reason", async () => {
        const cfg = `${shardDir}/config.yaml`;
        const rows: [string[], Record<string, string>, RegExp][] = [
          [["--shard", "3/3"], {}, /shard index 3 is out of range for 3 shard\(s\)/],
          [["--shard", "x"], {}, /--shard "x": expected INDEX\/COUNT/],
          [
            ["--shards", "0"],
            { JOB_COMPLETION_INDEX: "0" },
            /number of shards must be 1 to 1000, not 0/,
          ],
          [
            [],
            { JOB_COMPLETION_INDEX: "1" },
            /JOB_COMPLETION_INDEX is set .* neither --shards COUNT/,
          ],
        ];
        for (const [extra, env, message] of rows) {
          const run = await runCli(["mirror", "--config", cfg, "--non-interactive", ...extra], {
            env,
            cwd: shardDir,
          });
          assert.equal(run.code, 2, `${extra.join(" ")}: ${run.stderr}`);
          assert.match(run.stderr, message);
        }
      });
    } finally {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});

// Before: node's parseArgs took "-1/2" for an option and answered with its own text ("Option
// '--shard' argument is ambiguous ... use '--shard=-XYZ'"), not the tool's usage message.
Deno.test("mirror --shard -1/2 and --shards -2 get the tool's own usage message (exit 2)", async (t) => {
  const rows: [string[], RegExp][] = [
    [["--shard", "-1/2"], /--shard "-1\/2": expected INDEX\/COUNT, e\.g\. --shard 0\/3/],
    [["--shards", "-2"], /--shards COUNT/],
  ];
  for (const [flags, message] of rows) {
    await t.step(flags.join(" "), async () => {
      const out = await runCli(["mirror", "--dry-run", ...flags], { timeoutMs: 30_000 });
      assert.equal(out.code, 2, out.stderr);
      assert.match(out.stderr, message);
      assert.doesNotMatch(out.stderr, /ambiguous|XYZ|\n\s+at /);
    });
  }
});
