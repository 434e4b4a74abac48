/**
 * Export and import with `platforms`: the export holds only the kept children (their blobs, their
 * manifests) and records the platform set in bananna-export.json; an import whose config names no
 * platforms mirrors the same ones, sparse where the destination keeps sparse indexes (the digest
 * unchanged), else IMAGE_SPARSE_REFUSED with nothing tagged.
 */
import assert from "node:assert/strict";
import { airgapCli, registryTarget } from "../support/e2e_kit.ts";
import { headDigest, pushTestImage } from "../support/images.ts";
import { registryBinaryAvailable, startRegistry } from "../support/registry.ts";
import { startSparseRegistry } from "../support/sparse_registry.ts";

/** One plain registry target `dr` (namespace `mirror`, no credentials) for `ref`. */
function config(host: string, ref: string, operation: Record<string, unknown> = {}) {
  return {
    registries: { dr: registryTarget({ host }) },
    log: { dir: "./logs", level: "DEBUG" },
    operation: {
      engine: "registry",
      retryDelay: 0.05,
      maxRetries: 1,
      updateLatest: false,
      ...operation,
    },
    images: { [ref]: { targets: ["dr"] } },
  };
}
const skip = registryBinaryAvailable() ? "" : " (ignored: docker-registry is not installed)";

async function blobFiles(dir: string): Promise<Set<string>> {
  const out = new Set<string>();
  for await (const e of Deno.readDir(`${dir}/blobs/sha256`)) out.add(`sha256:${e.name}`);
  return out;
}

Deno.test({
  name:
    `export with platforms holds only the kept children; import without platforms honours them${skip}`,
  ignore: Boolean(skip),
  async fn() {
    await using src = await startRegistry();
    await using plain = await startRegistry();
    await using backend = await startRegistry();
    await using proxy = startSparseRegistry(backend);
    const dir = await Deno.makeTempDir({ prefix: "bb-airgap-platforms-" });
    try {
      const image = await pushTestImage(src, "multi/app:1", {
        kind: "oci-index",
        seed: 75,
        architectures: ["amd64", "arm64", "s390x"],
      });
      const ref = `${src.host}/multi/app:1`;
      const out = `${dir}/export`;
      const exported = await airgapCli(dir, ["export", "--to", out], {
        config: config(plain.host, ref, { platforms: ["linux/amd64"] }),
      });
      assert.equal(exported.code, 0, exported.stdout + exported.stderr);
      const manifest = JSON.parse(await Deno.readTextFile(`${out}/bananna-export.json`));
      assert.equal(manifest.images[0].digest, image.digest, "the index unchanged (sparse)");
      assert.deepEqual(manifest.images[0].platforms, {
        wanted: ["linux/amd64"],
        mode: "sparse",
        kept: ["linux/amd64"],
        skipped: ["linux/arm64", "linux/s390x"],
      });
      const files = await blobFiles(out);
      const child = (p: string) => image.children?.find((c) => c.platform === p);
      assert.ok(files.has(child("linux/amd64")?.digest as string));
      assert.ok(files.has(child("linux/amd64")?.configDigest as string));
      for (const p of ["linux/arm64", "linux/s390x"]) {
        assert.equal(files.has(child(p)?.digest as string), false, `${p} manifest not exported`);
        assert.equal(
          files.has(child(p)?.configDigest as string),
          false,
          `${p} config not exported`,
        );
      }

      // The import's config names no platforms: the export's are used.
      const refused = await airgapCli(dir, ["import", "--from", out], {
        config: config(plain.host, ref),
      });
      assert.equal(refused.code, 1, refused.stdout + refused.stderr);
      assert.equal(refused.report?.entries[0].code, "IMAGE_SPARSE_REFUSED");
      assert.equal(await headDigest(plain, "mirror/app:1"), null, "nothing tagged");

      const sparseDst = { ...backend, host: proxy.host, url: proxy.url };
      const imported = await airgapCli(dir, ["import", "--from", out], {
        config: config(proxy.host, ref),
      });
      assert.equal(imported.code, 0, imported.stdout + imported.stderr);
      assert.equal(imported.report?.entries[0].digest, image.digest);
      assert.deepEqual(imported.report?.entries[0].platforms?.kept, ["linux/amd64"]);
      assert.equal(await headDigest(sparseDst, "mirror/app:1"), image.digest);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
