/**
 * `export --part-size` and `import --from <first part>` as subprocesses against real registries:
 * the parts and their sha256 in bananna-export.json, the whole tar read by skopeo
 * (`oci-archive:`), only the parts and the manifest carried across, the source stopped; a missing
 * part is exit 2 naming it with nothing written; a flipped byte in a part fails only the image
 * whose blob lies in it (naming the part) while the others land; with the part copied again the
 * re-run lands the rest.
 */
import assert from "node:assert/strict";
import {
  airgapCli,
  registryConfig,
  startDestination,
  statuses,
  writes,
} from "../support/e2e_kit.ts";
import { headDigest, pushTestImage, sha256 } from "../support/images.ts";
import { registryBinaryAvailable, startRegistry, type TestRegistry } from "../support/registry.ts";

const skip = registryBinaryAvailable() ? "" : " (ignored: docker-registry is not installed)";
const PART = 100_000;

Deno.test({
  name: `export in tar parts, import from the first part: missing, corrupt, resumed${skip}`,
  ignore: Boolean(skip),
  async fn(t) {
    const src = await startRegistry({ auth: "none" });
    // The target of the export's config (an export writes nothing to it); every import step starts
    // a destination and run dir of its own and reads its own copy of the media.
    await using dst = await startRegistry({ auth: "htpasswd" });
    const dir = await Deno.makeTempDir({ prefix: "bb-airgap-parts-" });
    const env = { DST_PASSWORD: dst.password ?? "" };
    const out = `${dir}/export`;
    const media = `${dir}/media`;
    try {
      const app = await pushTestImage(src, "team/app:1.0", { kind: "oci", seed: 1 });
      const cli = await pushTestImage(src, "tools/cli:3", { kind: "schema2", seed: 4 });
      const big = await pushTestImage(src, "team/big:1", {
        kind: "oci",
        seed: 7,
        layerSize: 512 * 1024,
      });
      const configFor = (reg: TestRegistry) =>
        registryConfig(reg, {
          [`${src.host}/team/app:1.0`]: { targets: ["dr"] },
          [`${src.host}/tools/cli:3`]: { targets: ["dr"] },
          [`${src.host}/team/big:1`]: { targets: ["dr"] },
        }, {
          operation: { engine: "registry", retryDelay: 0.05, maxRetries: 1, updateLatest: false },
        });
      const config = configFor(dst);
      let parts: { name: string; size: number; sha256: string }[] = [];

      await t.step("export writes the parts, each with its sha256 in the manifest", async () => {
        const run = await airgapCli(dir, ["export", "--to", out, "--part-size", String(PART)], {
          config,
          env,
        });
        assert.equal(run.code, 0, run.stderr + run.stdout);
        parts = JSON.parse(await Deno.readTextFile(`${out}/bananna-export.json`)).parts;
        assert.ok(parts.length >= 10, `${parts.length} parts`);
        assert.equal(parts[0].name, "bananna-export.tar.000");
        for (const part of parts) {
          const bytes = await Deno.readFile(`${out}/${part.name}`);
          assert.equal(part.size, bytes.length);
          assert.equal(part.sha256, sha256(bytes));
          assert.ok(part.size <= PART);
        }
        // The parts are the output: the layout they hold is gone (it doubled the disk).
        assert.deepEqual(
          [...Deno.readDirSync(out)].map((e) => e.name).sort(),
          [...parts.map((p) => p.name), "bananna-export.json"].sort(),
        );
        assert.match(run.stdout + run.stderr, /the layout removed/);
      });

      await t.step("the parts together are a tar skopeo reads (oci-archive:)", async () => {
        const whole = await Promise.all(parts.map((p) => Deno.readFile(`${out}/${p.name}`)));
        const tar = `${dir}/whole.tar`;
        await Deno.writeFile(tar, concat(whole));
        const raw = await new Deno.Command("skopeo", {
          args: ["inspect", "--raw", `oci-archive:${tar}:${src.host}/team/app:1.0`],
          stdout: "piped",
          stderr: "piped",
        }).output();
        assert.ok(raw.success, new TextDecoder().decode(raw.stderr));
        assert.equal(sha256(raw.stdout), app.digest);
        await Deno.remove(tar);
      });

      // big's first layer, as the source serves it (the export dir keeps no layout).
      const layer = await (await fetch(`${src.url}/v2/team/big/blobs/${big.layers[0]}`)).bytes();
      // Only the parts and bananna-export.json cross the gap.
      await Deno.mkdir(media);
      for (const name of [...parts.map((p) => p.name), "bananna-export.json"]) {
        await Deno.copyFile(`${out}/${name}`, `${media}/${name}`);
      }
      await src.stop();
      /** A step's own destination, run dir and copy of the media (its first part: `first`). */
      const startImport = async () => {
        const dest = await startDestination();
        const copy = `${dest.dir}/media`;
        await Deno.mkdir(copy);
        for (const entry of Deno.readDirSync(media)) {
          await Deno.copyFile(`${media}/${entry.name}`, `${copy}/${entry.name}`);
        }
        return Object.assign(dest, {
          media: copy,
          first: `${copy}/bananna-export.tar.000`,
          config: configFor(dest.reg),
        });
      };

      await t.step("a missing part is exit 2 naming it; nothing written", async () => {
        await using d = await startImport();
        const last = parts[parts.length - 1].name;
        await Deno.remove(`${d.media}/${last}`);
        const run = await airgapCli(d.dir, ["import", "--from", d.first], {
          config: d.config,
          env: d.env,
        });
        assert.equal(run.code, 2, run.stderr + run.stdout);
        assert.match(run.stderr, new RegExp(last.replaceAll(".", "\\.")));
        assert.deepEqual(await writes(d.reg), []);
      });

      await t.step("--staging DIR: the parts are extracted there, not in the log dir", async () => {
        await using d = await startImport();
        const stage = `${d.dir}/stage/imports`;
        const run = await airgapCli(d.dir, [
          "import",
          "--from",
          d.first,
          "--dry-run",
          "--staging",
          stage,
        ], {
          config: d.config,
          env: d.env,
        });
        assert.equal(run.code, 0, run.stderr + run.stdout);
        assert.deepEqual(statuses(run.report), [
          "mirror/app:1.0 planned",
          "mirror/cli:3 planned",
          "mirror/big:1 planned",
        ]);
        // Made for the staging dir, which is removed after: nothing left, nothing in the log dir.
        assert.deepEqual([...Deno.readDirSync(stage)], []);
        const logs = await Deno.stat(`${d.dir}/logs`).then(() => [
          ...Deno.readDirSync(`${d.dir}/logs`),
        ]).catch(() => []);
        assert.deepEqual(logs.filter((e) => e.name.startsWith("import-")), []);
        assert.deepEqual(await writes(d.reg), []);
      });

      // The part in the middle of big's first layer: whole inside that blob.
      const whole = concat(
        await Promise.all(parts.map((p) => Deno.readFile(`${media}/${p.name}`))),
      );
      const start = indexOf(whole, layer.subarray(1000, 1064)) - 1000;
      assert.ok(start > 0);
      const index = Math.floor((start + 256 * 1024) / PART);
      const corrupt = parts[index].name;
      const good = await Deno.readFile(`${media}/${corrupt}`);

      await t.step("a flipped byte in a part fails only the image that needs it", async () => {
        await using d = await startImport();
        const dst = d.reg;
        const bad = good.slice();
        bad[PART / 2] ^= 0xff;
        await Deno.writeFile(`${d.media}/${corrupt}`, bad);
        const run = await airgapCli(d.dir, ["import", "--from", d.first], {
          config: d.config,
          env: d.env,
        });
        assert.equal(run.code, 1, run.stderr + run.stdout);
        assert.deepEqual(statuses(run.report), [
          "mirror/app:1.0 pushed",
          "mirror/cli:3 pushed",
          "mirror/big:1 failed",
        ]);
        const failed = run.report?.entries[2];
        assert.equal(failed?.code, "IMAGE_DIGEST_MISMATCH");
        assert.match(
          failed?.error ?? "",
          new RegExp(`${corrupt.replaceAll(".", "\\.")}, whose sha256`),
        );
        assert.equal(await headDigest(dst, "mirror/big:1"), null);
        assert.equal(await headDigest(dst, "mirror/app:1.0"), app.digest);
        assert.equal(await headDigest(dst, "mirror/cli:3"), cli.digest);
      });

      await t.step("with the part copied again the re-run lands the rest", async () => {
        await using d = await startImport();
        const dst = d.reg;
        // What the run with the flipped byte left: app and cli pushed, big not.
        assert.equal(
          (await pushTestImage(dst, "mirror/app:1.0", { kind: "oci", seed: 1 })).digest,
          app.digest,
        );
        assert.equal(
          (await pushTestImage(dst, "mirror/cli:3", { kind: "schema2", seed: 4 })).digest,
          cli.digest,
        );
        const run = await airgapCli(d.dir, ["import", "--from", d.media], {
          config: d.config,
          env: d.env,
        });
        assert.equal(run.code, 0, run.stderr + run.stdout);
        assert.deepEqual(statuses(run.report), [
          "mirror/app:1.0 exists",
          "mirror/cli:3 exists",
          "mirror/big:1 pushed",
        ]);
        assert.equal(await headDigest(dst, "mirror/big:1"), big.digest);
        // The staging dir in the log dir is gone.
        const left = [...Deno.readDirSync(`${d.dir}/logs`)].filter((e) =>
          e.name.startsWith("import-")
        );
        assert.deepEqual(left, []);
      });
    } finally {
      await src.stop().catch(() => {});
      await Deno.remove(dir, { recursive: true });
    }
  },
});

function concat(chunks: Uint8Array[]): Uint8Array {
  const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    all.set(chunk, offset);
    offset += chunk.length;
  }
  return all;
}

function indexOf(haystack: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}
