/**
 * A dry run writes nothing: `mirror --dry-run` (whole and sharded) and `export --dry-run` against
 * real registries leave every file of the log dir as it was (names, sizes, mtimes, contents: the
 * log, the last reports, the state), and write a report only where `--report PATH` says.
 */
import assert from "node:assert/strict";
import { stringify } from "yaml";
import { runCli } from "../support/cli.ts";
import { pushTestImage } from "../support/images.ts";
import { registryBinaryAvailable, startRegistry } from "../support/registry.ts";
import { registryTarget } from "../support/e2e_kit.ts";

const skip = registryBinaryAvailable() ? "" : " (ignored: docker-registry is not installed)";

/** Every file under `dir` (recursively): path -> size, mtime and content. */
async function snapshot(dir: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  const walk = async (at: string) => {
    for await (const entry of Deno.readDir(at)) {
      const path = `${at}/${entry.name}`;
      if (entry.isDirectory) {
        await walk(path);
        continue;
      }
      const info = await Deno.lstat(path);
      const content = info.isFile ? await Deno.readTextFile(path) : "";
      files.set(path, `${info.size} ${info.mtime?.getTime()} ${content}`);
    }
  };
  await walk(dir);
  return files;
}

Deno.test({
  name: `a dry run leaves every file in the log dir untouched${skip}`,
  ignore: Boolean(skip),
  async fn(t) {
    await using src = await startRegistry({ auth: "none" });
    await using dst = await startRegistry({ auth: "none" });
    await pushTestImage(src, "team/app:1.0", { kind: "oci", seed: 71 });
    await pushTestImage(src, "team/tool:2.0", { kind: "oci", seed: 72 });
    const dir = await Deno.makeTempDir({ prefix: "bb-dry-run-" });
    const logs = `${dir}/logs`;
    await Deno.writeTextFile(
      `${dir}/config.yaml`,
      stringify({
        registries: { dr: registryTarget(dst) },
        log: { dir: "./logs" },
        operation: { retryDelay: 0.05, maxRetries: 1 },
        images: {
          [`${src.host}/team/app:1.0`]: { targets: ["dr"] },
          [`${src.host}/team/tool:2.0`]: { targets: ["dr"] },
        },
      }),
    );
    const cli = (args: string[]) =>
      runCli([...args, "--config", `${dir}/config.yaml`, "--non-interactive"], { cwd: dir });
    try {
      // A real run and a real shard run first, so the log dir holds what a dry run could touch.
      const real = await cli(["mirror", "--only", "*app*"]);
      assert.equal(real.code, 0, real.stdout + real.stderr);
      const shard = await cli(["mirror", "--shard", "0/2", "--only", "*app*"]);
      assert.equal(shard.code, 0, shard.stdout + shard.stderr);
      const before = await snapshot(logs);
      for (
        const name of ["bananna-bot.log", "last-report.json", "last-report.0.json"]
      ) {
        assert.ok([...before.keys()].includes(`${logs}/${name}`), `${name} exists before`);
      }
      // mtimes have a resolution: a write right now would show.
      await new Promise((resolve) => setTimeout(resolve, 20));

      await t.step("mirror --dry-run", async () => {
        const run = await cli(["mirror", "--dry-run"]);
        assert.equal(run.code, 0, run.stdout + run.stderr);
        assert.match(run.stdout, /Would push: +1/);
        assert.match(run.stdout, /Report: none written \(dry run; --report PATH\)/);
        assert.deepEqual(await snapshot(logs), before);
      });
      await t.step("a shard's dry run", async () => {
        for (const index of [0, 1]) {
          const run = await cli(["mirror", "--dry-run", "--shard", `${index}/2`]);
          assert.equal(run.code, 0, run.stdout + run.stderr);
        }
        assert.deepEqual(await snapshot(logs), before);
      });
      await t.step("--report PATH is the one file a dry run writes", async () => {
        const run = await cli(["mirror", "--dry-run", "--report", `${dir}/plan.json`]);
        assert.equal(run.code, 0, run.stdout + run.stderr);
        const report = JSON.parse(await Deno.readTextFile(`${dir}/plan.json`));
        assert.equal(report.dryRun, true);
        assert.equal(report.totals.planned, 1);
        assert.deepEqual(await snapshot(logs), before);
      });
      await t.step("export --dry-run", async () => {
        const run = await cli(["export", "--to", `${dir}/export`, "--dry-run"]);
        assert.equal(run.code, 0, run.stdout + run.stderr);
        assert.deepEqual(await snapshot(logs), before);
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
