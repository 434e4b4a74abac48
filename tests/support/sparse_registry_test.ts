/**
 * The sparse-index proxy (sparse_registry.ts) models what it says: `X-Sparse-Manifest-Support`
 * on `GET /v2/`, an index with missing children kept and served byte-exact (by tag and digest,
 * listed in tags/list) while distribution behind it refuses the same PUT, and a complete index
 * passed through to the registry.
 */
import assert from "node:assert/strict";
import { pushTestImage, sha256 } from "./images.ts";
import { registryBinaryAvailable, startRegistry } from "./registry.ts";
import { startSparseRegistry } from "./sparse_registry.ts";

const skip = registryBinaryAvailable() ? "" : " (ignored: docker-registry is not installed)";
const INDEX = "application/vnd.oci.image.index.v1+json";

function sparseIndex(children: { digest: string }[]): Uint8Array {
  return new TextEncoder().encode(JSON.stringify({
    schemaVersion: 2,
    mediaType: INDEX,
    manifests: children.map((c) => ({
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      digest: c.digest,
      size: 100,
    })),
  }));
}

Deno.test({
  name:
    `sparse registry proxy: keeps an index with missing children that distribution refuses${skip}`,
  ignore: Boolean(skip),
  async fn() {
    await using backend = await startRegistry();
    await using proxy = startSparseRegistry(backend);
    const image = await pushTestImage(backend, "a/b:full", { kind: "oci-index", seed: 5 });
    const present = image.children?.[0].digest as string;
    const absent = `sha256:${"e".repeat(64)}`;
    const bytes = sparseIndex([{ digest: present }, { digest: absent }]);
    const digest = sha256(bytes);

    const ping = await fetch(`${proxy.url}/v2/`);
    await ping.body?.cancel();
    assert.equal(ping.headers.get("x-sparse-manifest-support"), "true");

    // distribution itself refuses the sparse index.
    const direct = await fetch(`${backend.url}/v2/a/b/manifests/sparse`, {
      method: "PUT",
      headers: { "content-type": INDEX },
      body: bytes as BodyInit,
    });
    assert.equal(direct.status, 400);
    assert.match(await direct.text(), /MANIFEST_BLOB_UNKNOWN/);

    const put = await fetch(`${proxy.url}/v2/a/b/manifests/sparse`, {
      method: "PUT",
      headers: { "content-type": INDEX },
      body: bytes as BodyInit,
    });
    await put.body?.cancel();
    assert.equal(put.status, 201);
    assert.equal(put.headers.get("docker-content-digest"), digest);
    assert.deepEqual(proxy.sparseStored, [`a/b:sparse@${digest}`]);
    for (const ref of ["sparse", digest]) {
      const got = await fetch(`${proxy.url}/v2/a/b/manifests/${ref}`, {
        headers: { accept: INDEX },
      });
      assert.equal(got.headers.get("docker-content-digest"), digest);
      assert.equal(got.headers.get("content-type"), INDEX);
      assert.deepEqual(new Uint8Array(await got.arrayBuffer()), bytes);
      const head = await fetch(`${proxy.url}/v2/a/b/manifests/${ref}`, { method: "HEAD" });
      await head.body?.cancel();
      assert.equal(head.status, 200);
    }
    const tags = await (await fetch(`${proxy.url}/v2/a/b/tags/list`)).json();
    assert.deepEqual(tags.tags.sort(), ["full", "sparse"]);

    // A complete index goes through to distribution (stored there, not by the proxy).
    const whole = sparseIndex([{ digest: present }]);
    const passed = await fetch(`${proxy.url}/v2/a/b/manifests/whole`, {
      method: "PUT",
      headers: { "content-type": INDEX },
      body: whole as BodyInit,
    });
    await passed.body?.cancel();
    assert.equal(passed.status, 201);
    assert.equal(proxy.sparseStored.length, 1);
    const there = await fetch(`${backend.url}/v2/a/b/manifests/whole`, {
      method: "HEAD",
      headers: { accept: INDEX },
    });
    await there.body?.cancel();
    assert.equal(there.headers.get("docker-content-digest"), sha256(whole));
  },
});

Deno.test({
  name:
    `sparse registry proxy with support false: the header says so and distribution refuses${skip}`,
  ignore: Boolean(skip),
  async fn() {
    await using backend = await startRegistry();
    await using proxy = startSparseRegistry(backend, { support: "false" });
    const ping = await fetch(`${proxy.url}/v2/`);
    await ping.body?.cancel();
    assert.equal(ping.headers.get("x-sparse-manifest-support"), "false");
    const put = await fetch(`${proxy.url}/v2/a/b/manifests/x`, {
      method: "PUT",
      headers: { "content-type": INDEX },
      body: sparseIndex([{ digest: `sha256:${"e".repeat(64)}` }]) as BodyInit,
    });
    assert.equal(put.status, 400);
    assert.match(await put.text(), /MANIFEST_BLOB_UNKNOWN/);
    assert.deepEqual(proxy.sparseStored, []);
  },
});
