/**
 * `mirror --openshift-mirror-sets PATH` as a subprocess against real registries: the YAML written
 * after the run maps every mirrored repository (by tag and by digest) to each destination; a
 * failed image is left out; a dry run writes nothing; the docker engine is refused up front.
 */
import assert from "node:assert/strict";
import { parseAllDocuments } from "yaml";
import { runCli } from "../support/cli.ts";
import { pushTestImage } from "../support/images.ts";
import { registryBinaryAvailable, startRegistry } from "../support/registry.ts";
import { mirror, registryTarget } from "../support/e2e_kit.ts";

const skip = registryBinaryAvailable() ? "" : " (ignored: docker-registry is not installed)";

Deno.test({
  name: `mirror --openshift-mirror-sets writes IDMS + ITMS for what landed${skip}`,
  ignore: Boolean(skip),
  async fn(t) {
    await using src = await startRegistry({ auth: "none" });
    await using dst = await startRegistry({ auth: "none" });
    const dir = await Deno.makeTempDir({ prefix: "bb-idms-e2e-" });
    const sets = `${dir}/out/mirror-sets.yaml`;
    await Deno.mkdir(`${dir}/out`);
    await pushTestImage(src, "team/app:1.0", { kind: "oci", seed: 21 });
    await pushTestImage(src, "team/app:2.0", { kind: "oci-index", seed: 22 });
    const tool = await pushTestImage(src, "tools/cli:3", { kind: "schema2", seed: 23 });
    const config = (operation: Record<string, unknown> = {}) => ({
      registries: {
        dr: registryTarget(dst),
        bk: registryTarget(dst, { namespace: "backup" }),
      },
      log: { dir: "./logs", level: "DEBUG" },
      operation: { engine: "registry", retryDelay: 0.05, maxRetries: 1, ...operation },
      images: {
        [`${src.host}/team/app:1.0`]: { targets: ["dr", "bk"] },
        [`${src.host}/team/app:2.0`]: { targets: ["dr"] },
        [`${src.host}/tools/cli@${tool.digest}`]: { targets: ["dr"], repository: "cli-tools" },
        [`${src.host}/team/missing:9`]: { targets: ["dr"] },
      },
    });
    const extra = ["--openshift-mirror-sets", sets];
    try {
      await t.step("a dry run does not write the file", async () => {
        const run = await mirror(dir, config(), { extra: [...extra, "--dry-run"] });
        assert.equal(run.code, 1, run.stderr); // the missing image fails the plan
        assert.match(run.stdout, /Dry run: OpenShift mirror sets not written/);
        await assert.rejects(Deno.stat(sets), Deno.errors.NotFound);
      });

      const expected = [
        {
          apiVersion: "config.openshift.io/v1",
          kind: "ImageDigestMirrorSet",
          metadata: { name: "bananna-digest-mirrors" },
          spec: {
            imageDigestMirrors: [
              {
                source: `${src.host}/team/app`,
                mirrors: [`${dst.host}/mirror/app`, `${dst.host}/backup/app`],
              },
              { source: `${src.host}/tools/cli`, mirrors: [`${dst.host}/mirror/cli-tools`] },
            ],
          },
        },
        {
          apiVersion: "config.openshift.io/v1",
          kind: "ImageTagMirrorSet",
          metadata: { name: "bananna-tag-mirrors" },
          spec: {
            imageTagMirrors: [
              {
                source: `${src.host}/team/app`,
                mirrors: [`${dst.host}/mirror/app`, `${dst.host}/backup/app`],
              },
            ],
          },
        },
      ];

      await t.step("the run writes every mirrored repository, not the failed one", async () => {
        const run = await mirror(dir, config(), { extra });
        assert.equal(run.code, 1, run.stderr);
        assert.deepEqual(run.report?.totals.pushed, 4);
        assert.deepEqual(run.report?.totals.failed, 1);
        const text = await Deno.readTextFile(sets);
        const docs = parseAllDocuments(text);
        for (const d of docs) assert.deepEqual(d.errors, []);
        assert.deepEqual(docs.map((d) => d.toJS()), expected);
        assert.match(
          run.stdout,
          /OpenShift mirror sets: .*mirror-sets\.yaml \(2 repositories by digest, 1 by tag\)/,
        );
        const log = await Deno.readTextFile(`${dir}/logs/bananna-bot.log`).catch(() => "");
        assert.match(log, /\[MIRROR_SETS_WRITTEN\]/);
      });

      await t.step("a no-op re-run (everything exists) writes the same bytes", async () => {
        const before = await Deno.readTextFile(sets);
        const run = await mirror(dir, config(), { extra });
        assert.equal(run.report?.totals.exists, 4, run.stderr);
        assert.equal(await Deno.readTextFile(sets), before);
        assert.deepEqual([...Deno.readDirSync(`${dir}/out`)].map((e) => e.name), [
          "mirror-sets.yaml",
        ]);
      });

      await t.step(
        "names and mirrorSourcePolicy come from the config (openshift.mirrorSets), merge too",
        async () => {
          const named = {
            ...config(),
            openshift: { mirrorSets: { name: "dr-site", sourcePolicy: "NeverContactSource" } },
          };
          const path = `${dir}/out/dr-sets.yaml`;
          const check = async (file: string) => {
            const docs = parseAllDocuments(await Deno.readTextFile(file)).map((d) =>
              d.toJS() as {
                metadata: { name: string };
                spec: Record<string, { mirrorSourcePolicy?: string }[]>;
              }
            );
            assert.deepEqual(docs.map((d) => d.metadata.name), [
              "dr-site-digest-mirrors",
              "dr-site-tag-mirrors",
            ]);
            const entries = docs.flatMap((d) => Object.values(d.spec).flat());
            assert.ok(entries.length >= 3);
            for (const entry of entries) {
              assert.equal(entry.mirrorSourcePolicy, "NeverContactSource");
            }
          };
          const run = await mirror(dir, named, {
            extra: ["--openshift-mirror-sets", path],
          });
          assert.equal(run.code, 1, run.stderr); // team/missing:9
          await check(path);
          for (const shard of ["0/2", "1/2"]) {
            const run = await mirror(dir, named, { extra: ["--shard", shard] });
            assert.ok(run.code === 0 || run.code === 1, run.stderr);
          }
          const merge = await runCli(
            ["report", "--merge", `${dir}/logs`, "--openshift-mirror-sets", path],
            { cwd: dir },
          );
          assert.equal(merge.code, 1, merge.stderr);
          await check(path);
          await Deno.remove(path);
        },
      );

      await t.step("sharded: refused on a shard, written by report --merge", async () => {
        const refused = await mirror(dir, config(), {
          extra: [...extra, "--shard", "0/2"],
        });
        assert.equal(refused.code, 2, refused.stderr);
        assert.match(
          refused.stderr,
          /--openshift-mirror-sets with --shard\/--shards: a shard knows only its own repositories; give it to report --merge/,
        );
        for (const shard of ["0/2", "1/2"]) {
          const run = await mirror(dir, config(), { extra: ["--shard", shard] });
          assert.ok(run.code === 0 || run.code === 1, run.stderr);
        }
        const merged = `${dir}/out/merged-sets.yaml`;
        const merge = await runCli(
          ["report", "--merge", `${dir}/logs`, "--openshift-mirror-sets", merged],
          { cwd: dir },
        );
        assert.equal(merge.code, 1, merge.stderr); // team/missing:9 failed in its shard
        assert.match(
          merge.stdout,
          /OpenShift mirror sets: .*merged-sets\.yaml \(2 repositories by digest, 1 by tag\)/,
        );
        // the merged report lists entries by destination: mirrors come in that order
        const swapped = JSON.parse(
          JSON.stringify(expected).replaceAll(
            `"${dst.host}/mirror/app","${dst.host}/backup/app"`,
            `"${dst.host}/backup/app","${dst.host}/mirror/app"`,
          ),
        );
        assert.notDeepEqual(swapped, expected);
        assert.deepEqual(
          parseAllDocuments(await Deno.readTextFile(merged)).map((d) => d.toJS()),
          swapped,
        );
        await Deno.remove(merged);
        // shard reports of a docker-engine run: refused, nothing written
        for (const i of [0, 1]) {
          const path = `${dir}/logs/last-report.${i}.json`;
          const report = JSON.parse(await Deno.readTextFile(path));
          await Deno.writeTextFile(path, JSON.stringify({ ...report, engine: "docker" }));
        }
        const docker = await runCli(
          ["report", "--merge", `${dir}/logs`, "--openshift-mirror-sets", merged],
          { cwd: dir },
        );
        assert.equal(docker.code, 2, docker.stderr);
        assert.match(
          docker.stderr,
          /--openshift-mirror-sets needs operation\.engine: registry \(engine docker in the shard reports in .*logs\)/,
        );
        await assert.rejects(Deno.stat(merged), Deno.errors.NotFound);
      });

      await t.step("the docker engine is refused before anything runs (exit 2)", async () => {
        await Deno.remove(sets);
        const run = await mirror(dir, config({ engine: "docker" }), { extra });
        assert.equal(run.code, 2, run.stderr);
        assert.match(
          run.stderr,
          /--openshift-mirror-sets needs operation\.engine: registry \(engine docker in .*config\.yaml\): the docker engine re-encodes manifests/,
        );
        assert.doesNotMatch(run.stderr, /\n\s+at /); // no stack
        assert.equal(run.report, null);
        await assert.rejects(Deno.stat(sets), Deno.errors.NotFound);
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
