/**
 * The question before a blob upload, "does the destination repository hold it already?", asked
 * through a real registry behind a recording proxy: distribution (like Quay) mounts a blob into
 * the repository that holds it, so once the first upload showed that, the upload's own POST asks
 * it (`?mount=<digest>&from=<the same repository>`) instead of a HEAD before it; a registry that
 * ignores mounts (the proxy drops the query, as a registry without mounts opens a plain session)
 * keeps the HEAD. Neither sends a blob the repository holds again, and the digests stay the
 * source's.
 */
import assert from "node:assert/strict";
import { RegistryEngine } from "../../lib/engine/registry_engine.ts";
import { Secrets } from "../../lib/log/redact.ts";
import { parseReference } from "../../lib/registry/reference.ts";
import { RegistryClient } from "../../lib/registry/registry_client.ts";
import { pushTestImage, skopeoInspectRaw } from "../support/images.ts";
import { forward } from "../support/proxy.ts";
import { registryBinaryAvailable, startRegistry, type TestRegistry } from "../support/registry.ts";

const skip = registryBinaryAvailable() ? "" : " (ignored: docker-registry is not installed)";

/** A proxy in front of `upstream` that records `METHOD path?query status`; `dropMount` strips mounts. */
function recordingProxy(upstream: TestRegistry, dropMount: boolean) {
  const requests: string[] = [];
  let host = "";
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const url = new URL(req.url);
    if (dropMount) {
      url.searchParams.delete("mount");
      url.searchParams.delete("from");
    }
    const res = await forward(
      new Request(url, { method: req.method, headers: req.headers, body: req.body }),
      upstream.url,
      host,
    );
    requests.push(`${req.method} ${url.pathname}${url.search} ${res.status}`);
    return res;
  });
  host = `127.0.0.1:${(server.addr as Deno.NetAddr).port}`;
  const stop = () => server.shutdown();
  return { host, requests, [Symbol.asyncDispose]: stop };
}

/** Copy two tags that share their three layers (not their config) into one repository. */
async function copyTwoTags(dropMount: boolean) {
  await using src = await startRegistry();
  await using dst = await startRegistry({ auth: "htpasswd" });
  await using proxy = recordingProxy(dst, dropMount);
  const one = await pushTestImage(src, "team/app:1", { kind: "oci", seed: 81, layers: 3 });
  const two = await pushTestImage(src, "team/app:2", {
    kind: "oci",
    seed: 81,
    layers: 3,
    label: "two",
  });
  assert.deepEqual(two.layers, one.layers);
  const clients = new Map<string, RegistryClient>();
  const clientFor = (host: string) => {
    let client = clients.get(host);
    if (!client) {
      client = new RegistryClient({
        host,
        scheme: "http",
        credential: host === proxy.host
          ? {
            kind: "basic",
            username: dst.username ?? "",
            password: dst.password ?? "",
            source: "config",
          }
          : null,
        retryDelayMs: 20,
        secrets: new Secrets(),
      });
      clients.set(host, client);
    }
    return client;
  };
  try {
    // An engine per copy, as per run (a run's engine does a blob once per repository), with the
    // clients kept: what the first copy learned of the destination holds for the second.
    const copy = (tag: string) =>
      new RegistryEngine({ clientFor }).copy({
        source: parseReference(`${src.host}/team/app:${tag}`),
        destination: parseReference(`${proxy.host}/mirror/app:${tag}`),
      });
    const first = await copy("1");
    const firstRequests = proxy.requests.splice(0);
    const second = await copy("2");
    const secondRequests = proxy.requests.splice(0);
    assert.equal((await skopeoInspectRaw(dst, "mirror/app:1")).digest, one.digest);
    assert.equal((await skopeoInspectRaw(dst, "mirror/app:2")).digest, two.digest);
    const blobs = (requests: string[], method: string, path: string) =>
      requests.filter((r) => r.startsWith(`${method} /v2/mirror/app/blobs/${path}`));
    return { one, two, first, second, firstRequests, secondRequests, blobs };
  } finally {
    for (const client of clients.values()) client.close();
  }
}

Deno.test({
  name:
    `a destination that mounts a blob into its own repository is asked by the upload's POST, not a HEAD${skip}`,
  ignore: Boolean(skip),
  async fn() {
    const { one, first, second, firstRequests, secondRequests, blobs } = await copyTwoTags(false);
    assert.equal(first.bytesUploaded, one.bytes);
    // The first copy asks with HEADs (nothing is known of the registry yet), then mounts its first
    // uploaded blob into the same repository once: 201.
    assert.equal(blobs(firstRequests, "HEAD", "sha256:").length, 4);
    const probes = blobs(firstRequests, "POST", "uploads/?mount=");
    assert.equal(probes.length, 1, firstRequests.join("\n"));
    assert.match(probes[0], /&from=mirror%2Fapp 201$/);
    // The second: no blob HEAD; the three shared layers answered 201 (nothing sent), its config
    // 202 and uploaded.
    assert.deepEqual(blobs(secondRequests, "HEAD", ""), [], secondRequests.join("\n"));
    const mounts = blobs(secondRequests, "POST", "uploads/?mount=");
    assert.equal(mounts.length, 4, secondRequests.join("\n"));
    for (const layer of one.layers) {
      assert.ok(mounts.includes(
        `POST /v2/mirror/app/blobs/uploads/?mount=${
          encodeURIComponent(layer)
        }&from=mirror%2Fapp 201`,
      ));
    }
    assert.equal(blobs(secondRequests, "PUT", "uploads/").length, 1);
    assert.ok(second.bytesUploaded > 0 && second.bytesUploaded < 64 * 1024, "the config only");
  },
});

Deno.test({
  name: `a destination that ignores mounts keeps the HEAD before each upload${skip}`,
  ignore: Boolean(skip),
  async fn() {
    const { one, first, second, firstRequests, secondRequests, blobs } = await copyTwoTags(true);
    assert.equal(first.bytesUploaded, one.bytes);
    // The mount of the first uploaded blob into its repository opened a plain session (202),
    // deleted at once; every blob of the second copy is asked with a HEAD, and only its config
    // is sent.
    assert.equal(blobs(firstRequests, "POST", "uploads/").length, 5, firstRequests.join("\n"));
    assert.equal(blobs(firstRequests, "DELETE", "uploads/").length, 1, firstRequests.join("\n"));
    assert.equal(blobs(secondRequests, "HEAD", "sha256:").length, 4, secondRequests.join("\n"));
    assert.equal(blobs(secondRequests, "POST", "uploads/").length, 1);
    assert.equal(blobs(secondRequests, "PUT", "uploads/").length, 1);
    assert.ok(second.bytesUploaded > 0 && second.bytesUploaded < 64 * 1024, "the config only");
  },
});
