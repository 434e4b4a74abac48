/**
 * skopeo as the oracle for lib/layout/tar_parts*.ts: a real OCI layout made by `skopeo copy
 * docker://… oci:DIR:REF` from a test registry, tarred by writeParts(), is read by `skopeo
 * inspect oci-archive:` and copied by `skopeo copy oci-archive:… docker://…` into a fresh registry
 * with the source's digests; split into parts and read back by readParts(), it is an `oci:`
 * layout skopeo copies the same way.
 */
import assert from "node:assert/strict";
import { writeParts } from "../../lib/layout/tar_parts.ts";
import { readParts } from "../../lib/layout/tar_parts_read.ts";
import { headDigest, pushTestImage, sha256 } from "../support/images.ts";
import { runProcess } from "../support/process.ts";
import { registryBinaryAvailable, startRegistry } from "../support/registry.ts";

const skip = registryBinaryAvailable() ? "" : " (ignored: docker-registry is not installed)";

async function skopeo(args: string[]): Promise<string> {
  const run = await runProcess("skopeo", args);
  assert.equal(run.code, 0, `skopeo ${args.join(" ")}: ${run.stderr}`);
  return run.stdout;
}

Deno.test({
  name:
    `writeParts() of a skopeo-made layout: skopeo reads the oci-archive and copies it with the same digests${skip}`,
  ignore: Boolean(skip),
  async fn(t) {
    await using src = await startRegistry({ auth: "none" });
    await using dst = await startRegistry({ auth: "none" });
    const dir = await Deno.makeTempDir({ prefix: "bb-tarparts-skopeo-" });
    try {
      const app = await pushTestImage(src, "team/app:1", { kind: "oci-index", seed: 31 });
      const one = await pushTestImage(src, "team/one:1", { kind: "oci", seed: 32 });
      for (const [repo, ref] of [["team/app:1", "app"], ["team/one:1", "one"]]) {
        await skopeo([
          "copy",
          "--all",
          "--src-tls-verify=false",
          `docker://${src.host}/${repo}`,
          `oci:${dir}/layout:${ref}`,
        ]);
      }
      await Deno.mkdir(`${dir}/out`);
      const { parts, entries } = await writeParts(`${dir}/layout`, `${dir}/out`);
      assert.equal(entries[0], "oci-layout");
      assert.equal(entries.at(-1), "index.json");
      const archive = `${dir}/out/${parts[0].name}`;

      await t.step("skopeo inspect oci-archive: sees the source's manifests", async () => {
        const raw = await skopeo(["inspect", "--raw", `oci-archive:${archive}:app`]);
        assert.equal(sha256(new TextEncoder().encode(raw)), app.digest);
        const rawOne = await skopeo(["inspect", "--raw", `oci-archive:${archive}:one`]);
        assert.equal(sha256(new TextEncoder().encode(rawOne)), one.digest);
      });

      await t.step("skopeo copy oci-archive: -> a fresh registry keeps every digest", async () => {
        for (const [ref, repo] of [["app", "team/app:1"], ["one", "team/one:1"]]) {
          await skopeo([
            "copy",
            "--all",
            "--dest-tls-verify=false",
            `oci-archive:${archive}:${ref}`,
            `docker://${dst.host}/${repo}`,
          ]);
        }
        assert.equal(await headDigest(dst, "team/app:1"), app.digest);
        assert.equal(await headDigest(dst, "team/one:1"), one.digest);
        for (const child of app.children ?? []) {
          const raw = await skopeo([
            "inspect",
            "--raw",
            "--tls-verify=false",
            `docker://${dst.host}/team/app@${child.digest}`,
          ]);
          assert.equal(sha256(new TextEncoder().encode(raw)), child.digest);
        }
      });

      await t.step(
        "split into 16 KiB parts and read back: an oci: layout skopeo copies",
        async () => {
          await Deno.mkdir(`${dir}/parts`);
          const split = await writeParts(`${dir}/layout`, `${dir}/parts`, { partSize: 16 * 1024 });
          assert.ok(split.parts.length > 5, `${split.parts.length} parts`);
          const read = await readParts(`${dir}/parts/${split.parts[0].name}`, `${dir}/stage`, {
            parts: split.parts,
          });
          assert.deepEqual(read.corruptParts, []);
          await skopeo([
            "copy",
            "--all",
            "--dest-tls-verify=false",
            `oci:${dir}/stage:app`,
            `docker://${dst.host}/split/app:1`,
          ]);
          assert.equal(await headDigest(dst, "split/app:1"), app.digest);
        },
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
