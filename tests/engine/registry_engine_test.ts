/**
 * RegistryEngine between real registries: every image kind keeps its digest (skopeo is the
 * oracle), blobs shared between repositories are mounted, a large layer streams, the never-overwrite
 * re-check holds, and a copy through injected faults (503s, a reset mid-blob, 429 with Retry-After)
 * still completes with identical digests.
 */
import assert from "node:assert/strict";
import type { EngineEvent, SupplyChainMemo } from "../../lib/engine/engine.ts";
import { RegistryEngine } from "../../lib/engine/registry_engine.ts";
import { MirrorError } from "../../lib/errors.ts";
import { SupplyChainState } from "../../lib/mirror/supply_chain_state.ts";
import { Secrets } from "../../lib/log/redact.ts";
import { parseReference } from "../../lib/registry/reference.ts";
import { RegistryClient } from "../../lib/registry/registry_client.ts";
import { startFaultProxy } from "../support/fault_proxy.ts";
import { registryRequest, startHookProxy } from "../support/hook_proxy.ts";
import { headDigest, type ImageKind, pushTestImage, skopeoInspectRaw } from "../support/images.ts";
import { registryBinaryAvailable, startRegistry, type TestRegistry } from "../support/registry.ts";

const skip = registryBinaryAvailable() ? "" : " (ignored: docker-registry is not installed)";

function engineFor(
  regs: { host: string; reg: TestRegistry }[],
  options: { timeoutMs?: number; maxRetries?: number; memo?: SupplyChainMemo } = {},
) {
  const clients = new Map<string, RegistryClient>();
  const clientFor = (host: string) => {
    let c = clients.get(host);
    if (!c) {
      const found = regs.find((r) => r.host === host);
      if (!found) throw new Error(`no registry ${host}`);
      const { reg } = found;
      c = new RegistryClient({
        host,
        scheme: host === reg.host ? reg.scheme : "http",
        caFile: reg.caFile,
        credential: reg.username
          ? {
            kind: "basic",
            username: reg.username,
            password: reg.password ?? "",
            source: "config",
          }
          : null,
        maxRetries: options.maxRetries ?? 4,
        retryDelayMs: 20,
        timeoutMs: options.timeoutMs,
        secrets: new Secrets(),
      });
      clients.set(host, c);
    }
    return c;
  };
  return {
    engine: new RegistryEngine({ clientFor, supplyChainMemo: options.memo }),
    [Symbol.dispose]() {
      for (const c of clients.values()) c.close();
    },
  };
}

Deno.test({
  name: `RegistryEngine copies every image kind with identical digests, verified by skopeo${skip}`,
  ignore: Boolean(skip),
  async fn(t) {
    await using src = await startRegistry({ auth: "token" });
    await using dst = await startRegistry({ auth: "htpasswd", tls: true });
    using e = engineFor([{ host: src.host, reg: src }, { host: dst.host, reg: dst }]);
    const kinds: [ImageKind, number][] = [["oci", 64 * 1024], ["schema2", 64 * 1024], [
      "oci-index",
      64 * 1024,
    ], [
      "docker-list",
      64 * 1024,
    ], ["oci", 24 * 1024 * 1024]];
    for (const [i, [kind, layerSize]] of kinds.entries()) {
      await t.step(`${kind}${layerSize > 1e6 ? " with a 24 MiB layer" : ""}`, async () => {
        const image = await pushTestImage(src, `team/${kind}:${i}`, {
          kind,
          seed: 50 + i,
          layerSize,
        });
        const result = await e.engine.copy({
          source: parseReference(`${src.host}/team/${kind}:${i}`),
          destination: parseReference(`${dst.host}/mirror/${kind}:${i}`),
        });
        assert.equal(result.status, "pushed");
        assert.equal(result.digest, image.digest);
        assert.equal((await skopeoInspectRaw(dst, `mirror/${kind}:${i}`)).digest, image.digest);
        for (const child of image.children ?? []) {
          assert.equal(
            (await skopeoInspectRaw(dst, `mirror/${kind}@${child.digest}`)).digest,
            child.digest,
          );
        }
        const again = await e.engine.copy({
          source: parseReference(`${src.host}/team/${kind}:${i}`),
          destination: parseReference(`${dst.host}/mirror/${kind}:${i}`),
        });
        assert.deepEqual([again.status, again.bytesUploaded], ["exists", 0]);
      });
    }
  },
});

Deno.test({
  name: `RegistryEngine mounts blobs on the same registry and never overwrites a tag${skip}`,
  ignore: Boolean(skip),
  async fn() {
    await using reg = await startRegistry({ auth: "htpasswd" });
    using e = engineFor([{ host: reg.host, reg }]);
    const image = await pushTestImage(reg, "upstream/app:1", { kind: "oci", seed: 61 });
    const events: EngineEvent[] = [];
    const copied = await e.engine.copy({
      source: parseReference(`${reg.host}/upstream/app:1`),
      destination: parseReference(`${reg.host}/mirror/app:1`),
      onEvent: (event) => events.push(event),
    });
    assert.equal(copied.digest, image.digest);
    assert.equal(copied.bytesUploaded, 0);
    assert.equal(events.filter((ev) => ev.kind === "blob" && ev.state === "mounted").length, 3);

    const other = await pushTestImage(reg, "mirror/app:2", { kind: "oci", seed: 62 });
    const writesBefore = (await reg.accessLog()).filter((l) => /^(PUT|POST|PATCH)/.test(l)).length;
    await assert.rejects(
      () =>
        e.engine.copy({
          source: parseReference(`${reg.host}/upstream/app:1`),
          destination: parseReference(`${reg.host}/mirror/app:2`),
        }),
      (err: unknown) =>
        err instanceof MirrorError && err.code === "IMAGE_TAG_DRIFT" &&
        err.message.includes(other.digest),
    );
    assert.equal((await skopeoInspectRaw(reg, "mirror/app:2")).digest, other.digest);
    const writesAfter = (await reg.accessLog()).filter((l) => /^(PUT|POST|PATCH)/.test(l)).length;
    assert.equal(writesAfter, writesBefore, "nothing was written for a drifted tag");
  },
});

Deno.test({
  name: `RegistryEngine replaces a tag only while it holds request.replaceDigest${skip}`,
  ignore: Boolean(skip),
  async fn() {
    await using reg = await startRegistry({ auth: "none" });
    using e = engineFor([{ host: reg.host, reg }]);
    const image = await pushTestImage(reg, "upstream/app:1.27", { kind: "oci", seed: 71 });
    const old = await pushTestImage(reg, "mirror/app:1.27", { kind: "oci", seed: 72 });
    const request = {
      source: parseReference(`${reg.host}/upstream/app:1.27`),
      destination: parseReference(`${reg.host}/mirror/app:1.27`),
    };
    // Another digest than the one there (the tag moved again after planning): still drift.
    const elsewhere = "sha256:" + "0".repeat(64);
    await assert.rejects(
      () => e.engine.copy({ ...request, replaceDigest: elsewhere }),
      (err: unknown) => err instanceof MirrorError && err.code === "IMAGE_TAG_DRIFT",
    );
    assert.equal(await headDigest(reg, "mirror/app:1.27"), old.digest);
    const copied = await e.engine.copy({ ...request, replaceDigest: old.digest });
    assert.equal(copied.status, "pushed");
    assert.equal(await headDigest(reg, "mirror/app:1.27"), image.digest);
  },
});

Deno.test({
  name:
    `RegistryEngine completes a copy through 503s, a reset mid-blob and a 429 with Retry-After${skip}`,
  ignore: Boolean(skip),
  async fn() {
    await using src = await startRegistry();
    await using dst = await startRegistry({ auth: "htpasswd" });
    const image = await pushTestImage(src, "team/app:1", {
      kind: "oci-index",
      seed: 71,
      layerSize: 512 * 1024,
    });
    await using proxy = startFaultProxy(src, [
      { method: "GET", path: /\/manifests\//, times: 2, fault: { kind: "status", status: 503 } },
      {
        method: "GET",
        path: /\/blobs\/sha256:/,
        times: 1,
        fault: { kind: "cut", afterBytes: 100_000 },
      },
      {
        method: "HEAD",
        path: /\/manifests\//,
        times: 1,
        fault: { kind: "status", status: 429, retryAfter: "1" },
      },
    ]);
    using e = engineFor([{ host: proxy.host, reg: src }, { host: dst.host, reg: dst }]);
    const started = Date.now();
    const result = await e.engine.copy({
      source: parseReference(`${proxy.host}/team/app:1`),
      destination: parseReference(`${dst.host}/mirror/app:1`),
    });
    assert.equal(result.digest, image.digest);
    assert.equal(result.bytesUploaded, image.bytes, "the cut try is not counted as uploaded");
    assert.equal((await skopeoInspectRaw(dst, "mirror/app:1")).digest, image.digest);
    assert.equal(proxy.injected["status-503"], 2);
    assert.equal(proxy.injected.cut, 1);
    // The 429 rule applies to HEADs through the proxy; exercise it and honour Retry-After.
    const c = new RegistryClient({
      host: proxy.host,
      scheme: "http",
      retryDelayMs: 5,
      secrets: new Secrets(),
    });
    try {
      const t0 = Date.now();
      assert.equal((await c.manifestHead("team/app", "1"))?.digest, image.digest);
      assert.ok(Date.now() - t0 >= 900, "Retry-After: 1 was honoured");
      assert.equal(proxy.injected["status-429"], 1);
    } finally {
      c.close();
    }
    assert.ok(Date.now() - started < 30_000);
  },
});

Deno.test({
  name:
    `RegistryEngine: apiTimeout bounds silence, not a whole upload (slow blob copies, stalled fails)${skip}`,
  ignore: Boolean(skip),
  async fn() {
    await using src = await startRegistry();
    await using dst = await startRegistry({ auth: "htpasswd" });
    const image = await pushTestImage(src, "team/app:1", {
      kind: "oci",
      seed: 73,
      layerSize: 160 * 1024,
    });
    // Every blob GET trickles 8 KiB per 100 ms: the 160 KiB layer takes ~2 s, longer than the 1.5 s
    // timeout, yet bytes keep coming. (1.5 s, not less: a loaded 2-core machine can take over half
    // a second to answer the final PUT of an htpasswd registry.)
    {
      await using proxy = startFaultProxy(src, [
        {
          method: "GET",
          path: /\/blobs\/sha256:/,
          times: 10,
          fault: { kind: "trickle", chunkBytes: 8 * 1024, pauseMs: 100 },
        },
      ]);
      using e = engineFor([{ host: proxy.host, reg: src }, { host: dst.host, reg: dst }], {
        timeoutMs: 1500,
        maxRetries: 0,
      });
      const started = Date.now();
      const result = await e.engine.copy({
        source: parseReference(`${proxy.host}/team/app:1`),
        destination: parseReference(`${dst.host}/mirror/slow:1`),
      });
      assert.equal(result.digest, image.digest);
      assert.ok(proxy.injected.trickle >= 1);
      assert.ok(Date.now() - started > 1500, "the copy took longer than the timeout");
    }
    // A blob that stops flowing (4 s pauses) fails on the timeout, as the source's failure (its
    // GET stalled), not the destination's.
    {
      await using proxy = startFaultProxy(src, [
        {
          method: "GET",
          path: /\/blobs\/sha256:/,
          times: 10,
          fault: { kind: "trickle", chunkBytes: 32 * 1024, pauseMs: 4000 },
        },
      ]);
      using e = engineFor([{ host: proxy.host, reg: src }, { host: dst.host, reg: dst }], {
        timeoutMs: 1500,
        maxRetries: 0,
      });
      const error = await e.engine.copy({
        source: parseReference(`${proxy.host}/team/app:1`),
        destination: parseReference(`${dst.host}/mirror/stalled:1`),
      }).then(() => undefined, (err) => err);
      assert.ok(error instanceof MirrorError, String(error));
      assert.equal(error.code, "IMAGE_PULL_FAILED", error.message);
      assert.match(error.message, /no progress for 1\.5 s/);
      assert.match(error.message, new RegExp(`GET http://${proxy.host.replace(/\./g, "\\.")}/`));
      assert.equal(
        (await dst.accessLog()).filter((l) => /^PUT \/v2\/mirror\/stalled\/manifests\//.test(l))
          .length,
        0,
        "no tag written",
      );
    }
  },
});

Deno.test({
  name: `RegistryClient: a manifest whose body stops mid-way fails on apiTimeout, not hangs${skip}`,
  ignore: Boolean(skip),
  async fn() {
    await using src = await startRegistry();
    await pushTestImage(src, "team/app:1", { kind: "oci", seed: 74 });
    // The manifest's headers come at once, then 16 bytes every 1.5 s.
    await using proxy = startFaultProxy(src, [{
      method: "GET",
      path: /\/manifests\//,
      times: 10,
      fault: { kind: "trickle", chunkBytes: 16, pauseMs: 1500 },
    }]);
    const c = new RegistryClient({
      host: proxy.host,
      scheme: "http",
      timeoutMs: 500,
      maxRetries: 0,
      secrets: new Secrets(),
    });
    try {
      const started = Date.now();
      const error = await c.manifestGet("team/app", "1").then(() => undefined, (e) => e);
      assert.ok(error instanceof MirrorError, String(error));
      assert.equal(error.code, "IMAGE_PULL_FAILED");
      assert.match(error.message, /no progress for 0\.5 s \(apiTimeout\) while reading the answer/);
      assert.ok(Date.now() - started < 10_000, "failed within seconds");
    } finally {
      c.close();
    }
  },
});

Deno.test({
  name:
    `RegistryEngine: a destination that refuses large bodies (413) gets the blob in chunks${skip}`,
  ignore: Boolean(skip),
  async fn() {
    await using src = await startRegistry();
    await using dst = await startRegistry({ auth: "htpasswd" });
    // Two layers of 1.5 MiB; a proxy in front of the destination refuses bodies over 1 MiB
    // (nginx's default client_max_body_size), as an OpenShift route or ingress may.
    const image = await pushTestImage(src, "team/app:1", {
      kind: "schema2",
      seed: 79,
      layers: 2,
      layerSize: 1536 * 1024,
    });
    await using proxy = startFaultProxy(dst, [
      {
        path: /\/blobs\/uploads\//,
        times: 1000,
        fault: { kind: "limit", maxBodyBytes: 1024 * 1024 },
      },
    ]);
    using e = engineFor([{ host: src.host, reg: src }, { host: proxy.host, reg: dst }], {
      maxRetries: 0,
    });
    const result = await e.engine.copy({
      source: parseReference(`${src.host}/team/app:1`),
      destination: parseReference(`${proxy.host}/mirror/app:1`),
    });
    assert.equal(result.status, "pushed");
    assert.equal(result.digest, image.digest);
    assert.equal(result.bytesUploaded, image.bytes, "refused tries are not counted as uploaded");
    assert.equal((await skopeoInspectRaw(dst, "mirror/app:1")).digest, image.digest);
    // fetch streams a whole-blob PUT without Content-Length, which this proxy refuses: once for each
    // blob in flight (2 layers and the config) before the client learned. Then a PATCH holding a
    // whole 1.5 MiB layer was refused (at most once per layer in flight), and 768 KiB chunks fit.
    const put = proxy.injected["limit-PUT"];
    const patch = proxy.injected["limit-PATCH"];
    assert.ok(put >= 1 && put <= 3, `refused PUTs: ${put}`);
    assert.ok(patch >= 1 && patch <= 2, `refused PATCHes: ${patch}`);
    const log = await dst.accessLog();
    const patches = log.filter((l) => /^PATCH \/v2\/mirror\/app\/blobs\/uploads\/\S+ 202$/.test(l));
    assert.ok(patches.length >= 4, `two chunks a layer: ${patches.length} PATCHes`);
    // Every layer is whole at the destination: the registry checked its digest on the final PUT.
    for (const layer of image.layers) {
      const res = await fetch(`${dst.url}/v2/mirror/app/blobs/${layer}`, {
        headers: { authorization: `Basic ${btoa(`${dst.username}:${dst.password}`)}` },
      });
      const bytes = new Uint8Array(await res.arrayBuffer());
      assert.equal(res.status, 200);
      const hash = await crypto.subtle.digest("SHA-256", bytes);
      assert.equal(
        `sha256:${
          Array.from(new Uint8Array(hash), (b) => b.toString(16).padStart(2, "0")).join("")
        }`,
        layer,
      );
    }
  },
});

Deno.test({
  name:
    `RegistryEngine: a manifest PUT answered MANIFEST_BLOB_UNKNOWN re-checks its blobs once, re-uploads, and lands${skip}`,
  ignore: Boolean(skip),
  async fn(t) {
    await using src = await startRegistry();
    await using dst = await startRegistry({ auth: "htpasswd" });
    const single = await pushTestImage(src, "team/app:1", { kind: "oci", seed: 81 });
    const index = await pushTestImage(src, "team/multi:1", { kind: "oci-index", seed: 82 });
    // The registry loses something the copy put there, right before the manifest PUT: a layer
    // (image) or a child manifest (index). `losses` says how many PUTs of `tag` meet that.
    let losses = 0;
    let lose = "";
    let tagPath = "";
    await using proxy = startHookProxy(dst, async ({ method, path }) => {
      if (method === "PUT" && path === tagPath && losses > 0) {
        losses--;
        assert.equal(await registryRequest(dst, "DELETE", lose), 202, lose);
      }
    });
    using e = engineFor([{ host: src.host, reg: src }, { host: proxy.host, reg: dst }], {
      maxRetries: 0,
    });
    const manifestPuts = () => proxy.requests.filter((r) => r === `PUT ${tagPath}`).length;

    await t.step("a lost layer is uploaded again", async () => {
      tagPath = "/v2/mirror/app/manifests/1";
      lose = `/v2/mirror/app/blobs/${single.layers[1]}`;
      losses = 1;
      const result = await e.engine.copy({
        source: parseReference(`${src.host}/team/app:1`),
        destination: parseReference(`${proxy.host}/mirror/app:1`),
      });
      assert.deepEqual([result.status, result.digest], ["pushed", single.digest]);
      assert.equal(manifestPuts(), 2);
      const uploads = proxy.requests.filter((r) =>
        r.startsWith("PUT /v2/mirror/app/blobs/uploads/") &&
        decodeURIComponent(r).includes(single.layers[1])
      );
      assert.equal(uploads.length, 2, "uploaded, lost, uploaded again");
      assert.equal((await skopeoInspectRaw(dst, "mirror/app:1")).digest, single.digest);
    });

    await t.step("a lost child manifest of an index is put again", async () => {
      const child = index.children?.[0].digest ?? "";
      tagPath = "/v2/mirror/multi/manifests/1";
      lose = `/v2/mirror/multi/manifests/${child}`;
      losses = 1;
      const result = await e.engine.copy({
        source: parseReference(`${src.host}/team/multi:1`),
        destination: parseReference(`${proxy.host}/mirror/multi:1`),
      });
      assert.deepEqual([result.status, result.digest], ["pushed", index.digest]);
      assert.equal(manifestPuts(), 2);
      assert.equal(
        proxy.requests.filter((r) => r === `PUT /v2/mirror/multi/manifests/${child}`).length,
        2,
      );
      assert.equal((await skopeoInspectRaw(dst, "mirror/multi:1")).digest, index.digest);
    });

    await t.step("once only: a registry that keeps losing it fails the copy", async () => {
      tagPath = "/v2/mirror/app/manifests/2";
      lose = `/v2/mirror/app/blobs/${single.layers[0]}`;
      losses = 100;
      const error = await e.engine.copy({
        source: parseReference(`${src.host}/team/app:1`),
        destination: parseReference(`${proxy.host}/mirror/app:2`),
      }).then(() => undefined, (err) => err);
      assert.ok(error instanceof MirrorError, String(error));
      assert.equal(error.code, "IMAGE_PUSH_FAILED");
      assert.match(error.message, /MANIFEST_BLOB_UNKNOWN.*again after re-checking its 3 blobs/);
      assert.equal(manifestPuts(), 2, "one PUT, one re-check, one more PUT");
      assert.equal(await headDigest(dst, "mirror/app:2"), null);
    });
  },
});

Deno.test({
  name:
    `RegistryEngine: a tag that appears after the first check is drift, with no manifest PUT for it${skip}`,
  ignore: Boolean(skip),
  async fn() {
    await using src = await startRegistry();
    await using dst = await startRegistry({ auth: "htpasswd" });
    const image = await pushTestImage(src, "team/app:1", { kind: "oci", seed: 83 });
    // Someone else pushes to the tag while the copy uploads its first blob: after the copy's first
    // look at the tag (free), before its manifest PUT.
    // Someone else writes tag 2 after the caller found it absent (here: during the copy of tag 1).
    let other: { digest: string } | undefined;
    await using proxy = startHookProxy(dst, async ({ method, path }) => {
      if (!other && method === "POST" && path === "/v2/mirror/app/blobs/uploads/") {
        other = { digest: "" };
        other = await pushTestImage(dst, "mirror/app:1", { kind: "oci", seed: 84 });
      }
    });
    using e = engineFor([{ host: src.host, reg: src }, { host: proxy.host, reg: dst }]);
    const error = await e.engine.copy({
      source: parseReference(`${src.host}/team/app:1`),
      destination: parseReference(`${proxy.host}/mirror/app:1`),
    }).then(() => undefined, (err) => err);
    assert.ok(other?.digest, "the hook pushed the other image");
    assert.ok(error instanceof MirrorError, String(error));
    assert.equal(error.code, "IMAGE_TAG_DRIFT");
    assert.match(error.message, new RegExp(`holds ${other.digest}.*has ${image.digest}`));
    assert.ok(
      proxy.requests.filter((r) => r === "HEAD /v2/mirror/app/manifests/1").length >= 2,
      "checked before the blobs and again before the PUT",
    );
    assert.deepEqual(
      proxy.requests.filter((r) => r.startsWith("PUT /v2/mirror/app/manifests/")),
      [],
      "no manifest PUT",
    );
    assert.equal(await headDigest(dst, "mirror/app:1"), other.digest);
  },
});

Deno.test({
  name:
    `RegistryEngine: the supply-chain step walks an index the copy wrote without reading it back; a child the destination held is read${skip}`,
  ignore: Boolean(skip),
  async fn() {
    await using src = await startRegistry();
    await using dst = await startRegistry({ auth: "htpasswd" });
    const image = await pushTestImage(src, "team/app:1", { kind: "oci-index", seed: 97 });
    const [held, fresh] = (image.children ?? []).map((c) => c.digest);
    const dir = await Deno.makeTempDir({ prefix: "bb-engine-memo-" });
    try {
      const memo = await SupplyChainState.load(dir);
      await using proxy = startHookProxy(dst, () => {});
      using e = engineFor([{ host: src.host, reg: src }, { host: proxy.host, reg: dst }], { memo });
      // One child is at the destination before the index is copied: found by HEAD, never parsed.
      await e.engine.copy({
        source: parseReference(`${src.host}/team/app@${held}`),
        destination: parseReference(`${proxy.host}/mirror/app@${held}`),
      });
      const from = proxy.requests.length;
      const copied = await e.engine.copy({
        source: parseReference(`${src.host}/team/app:1`),
        destination: parseReference(`${proxy.host}/mirror/app:1`),
      });
      assert.equal(copied.status, "pushed");
      await e.engine.carrySupplyChain({
        source: parseReference(`${src.host}/team/app`),
        destination: parseReference(`${proxy.host}/mirror/app`),
        digest: copied.digest,
        mediaType: image.mediaType,
      });
      const reads = proxy.requests.slice(from).filter((r) => r.startsWith("GET /v2/mirror/app/"));
      // Was the index and both children read back from the destination.
      assert.deepEqual(reads, [`GET /v2/mirror/app/manifests/${held}`], proxy.requests.join("\n"));
      // What the memo keeps is what the destination's bytes list.
      assert.deepEqual(memo.parts(image.digest), [{ digest: held }, { digest: fresh }]);
      assert.deepEqual(memo.parts(fresh), []);
      assert.deepEqual(memo.parts(held), []);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    `RegistryEngine: a tag the caller found absent is HEADed only right before its PUT, and a tag written meanwhile is still drift${skip}`,
  ignore: Boolean(skip),
  async fn() {
    await using src = await startRegistry();
    await using dst = await startRegistry({ auth: "htpasswd" });
    const image = await pushTestImage(src, "team/app:1", { kind: "oci-index", seed: 98 });
    // Someone else writes tag 2 after the caller found it absent (here: during the copy of tag 1).
    let other: { digest: string } | undefined;
    await using proxy = startHookProxy(dst, async ({ method, path }) => {
      if (!other && method === "POST" && path === "/v2/mirror/app/blobs/uploads/") {
        other = { digest: "" };
        other = await pushTestImage(dst, "mirror/app:2", { kind: "oci", seed: 99 });
      }
    });
    using e = engineFor([{ host: src.host, reg: src }, { host: proxy.host, reg: dst }]);
    const tagHeads = (tag: string) =>
      proxy.requests.filter((r) => r === `HEAD /v2/mirror/app/manifests/${tag}`).length;
    const copied = await e.engine.copy({
      source: parseReference(`${src.host}/team/app:1`),
      destination: parseReference(`${proxy.host}/mirror/app:1`),
      destinationAbsent: true,
    });
    assert.equal(copied.status, "pushed");
    assert.equal(await headDigest(dst, "mirror/app:1"), image.digest);
    // Without destinationAbsent, one HEAD more: before the blobs.
    assert.equal(tagHeads("1"), 1, proxy.requests.join("\n"));
    // The copy of tag 2 does not look first; the check before its PUT finds the other image.
    const error = await e.engine.copy({
      source: parseReference(`${src.host}/team/app:1`),
      destination: parseReference(`${proxy.host}/mirror/app:2`),
      destinationAbsent: true,
    }).then(() => undefined, (err) => err);
    assert.ok(other?.digest, "the hook pushed the other image");
    assert.ok(error instanceof MirrorError, String(error));
    assert.equal(error.code, "IMAGE_TAG_DRIFT");
    assert.equal(tagHeads("2"), 1);
    assert.deepEqual(proxy.requests.filter((r) => r === "PUT /v2/mirror/app/manifests/2"), []);
    assert.equal(await headDigest(dst, "mirror/app:2"), other.digest);
  },
});
