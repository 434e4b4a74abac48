/**
 * A hostile or broken source must not steer the destination: digests that are paths, headers that
 * are not digests, manifests and tag lists past their cap, blobs that lie about their size or
 * bytes, and malformed JSON, each from the hostile registry in tests/support, with a real
 * docker-registry as the destination. Each case proves what was refused, with which code, that it
 * was not retried, and that nothing was written at the destination.
 */
import assert from "node:assert/strict";
import { within } from "../support/bounded.ts";
import { stringify } from "yaml";
import { RegistryEngine } from "../../lib/engine/registry_engine.ts";
import { MirrorError } from "../../lib/errors.ts";
import { Secrets } from "../../lib/log/redact.ts";
import { parseReference } from "../../lib/registry/reference.ts";
import { RegistryClient } from "../../lib/registry/registry_client.ts";
import {
  type HostileImage,
  hostileImage,
  hostileIndex,
  jsonBytes,
  startHostileRegistry,
  startUploadWatch,
} from "../support/hostile_registry.ts";
import { gnuTimeAvailable, runCliMeasured } from "../support/hostile_run.ts";
import { pushTestImage } from "../support/images.ts";
import { registryBinaryAvailable, startRegistry, type TestRegistry } from "../support/registry.ts";
import { registryTarget, writes } from "../support/e2e_kit.ts";

const skip = registryBinaryAvailable() ? "" : " (ignored: docker-registry is not installed)";
const MiB = 1024 * 1024;
const OCI = "application/vnd.oci.image.manifest.v1+json";

function clientOf(
  host: string,
  extra: Partial<ConstructorParameters<typeof RegistryClient>[0]> = {},
) {
  return new RegistryClient({
    host,
    scheme: "http",
    credential: null,
    maxRetries: 3,
    retryDelayMs: 5,
    timeoutMs: 10_000,
    secrets: new Secrets(),
    ...extra,
  });
}

/** An engine whose clients are anonymous plain-http clients with fast retries. */
function engineOf(options: { maxManifestBytes?: number } = {}) {
  const clients = new Map<string, RegistryClient>();
  const clientFor = (host: string) => {
    let c = clients.get(host);
    if (!c) {
      c = clientOf(host, options);
      clients.set(host, c);
    }
    return c;
  };
  return {
    engine: new RegistryEngine({ clientFor }),
    [Symbol.dispose]() {
      for (const c of clients.values()) c.close();
    },
  };
}

async function rejectsWith(fn: () => Promise<unknown>, code: string, pattern?: RegExp) {
  await assert.rejects(fn, (e: unknown) => {
    assert.ok(e instanceof MirrorError, `not a MirrorError: ${e}`);
    assert.equal(e.code, code, e.message);
    if (pattern) assert.match(e.message, pattern);
    return true;
  });
}

async function tagsOf(reg: TestRegistry, repository: string): Promise<string[]> {
  const res = await fetch(`${reg.url}/v2/${repository}/tags/list`);
  if (res.status === 404) {
    await res.body?.cancel();
    return [];
  }
  return (await res.json()).tags ?? [];
}

Deno.test({
  name:
    `RegistryEngine: an index child "digest" that is a path PUTs nothing into another repository${skip}`,
  ignore: Boolean(skip),
  async fn() {
    await using dst = await startRegistry();
    await using src = startHostileRegistry();
    // The victim: another repository at the destination, with an image whose blobs it holds.
    const victim = await pushTestImage(dst, "app/other/repo:v0", { kind: "oci", seed: 7 });
    const victimManifest = await (await fetch(`${dst.url}/v2/app/other/repo/manifests/v0`, {
      headers: { accept: victim.mediaType },
    })).bytes();
    // The attack from the issue: resolved against /v2/app/manifests/ it lands on
    // /v2/app/other/repo/manifests/v1. The source answers any such path with the victim image.
    const attack = "a:b/../../other/repo/manifests/v1";
    src.manifests.set("1", {
      bytes: hostileIndex([{ digest: attack }]),
      mediaType: "application/vnd.oci.image.index.v1+json",
    });
    src.fallbackManifest = { bytes: victimManifest, mediaType: victim.mediaType };
    for (const digest of [victim.configDigest, ...victim.layers]) {
      const blob = await (await fetch(`${dst.url}/v2/app/other/repo/blobs/${digest}`)).bytes();
      src.blobs.set(digest, { bytes: blob });
    }
    const before = await writes(dst);
    using e = engineOf();
    const failure = await e.engine.copy({
      source: parseReference(`${src.host}/team/app:1`),
      destination: parseReference(`${dst.host}/app:1`),
      signal: AbortSignal.timeout(20_000),
    }).then(() => null, (error) => error);
    assert.deepEqual(await tagsOf(dst, "app/other/repo"), ["v0"], "the other repository untouched");
    await rejectsWith(
      () => Promise.reject(failure ?? new Error("the copy passed")),
      "IMAGE_MANIFEST_INVALID",
      /manifests\[0\]\.digest/,
    );
    assert.deepEqual(await tagsOf(dst, "app"), [], "no tag written");
    assert.deepEqual((await writes(dst)).slice(before.length), [], "no write at the destination");
  },
});

Deno.test({
  name:
    `RegistryClient refuses a repository, tag or digest off the grammar before any request${skip}`,
  ignore: Boolean(skip),
  async fn(t) {
    await using dst = await startRegistry();
    const c = clientOf(dst.host);
    const good = `sha256:${"a".repeat(64)}`;
    const manifest = {
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      bytes: jsonBytes({}),
    };
    const rows: [string, () => Promise<unknown>][] = [
      [
        "manifestPut with a path as tag",
        () => c.manifestPut("app", "v1/../../other/repo/manifests/v1", manifest),
      ],
      [
        "manifestPut with a path as digest",
        () => c.manifestPut("app", "a:b/../../x/manifests/v1", manifest),
      ],
      [
        "manifestPut into a repository with ..",
        () => c.manifestPut("app/../other", "v1", manifest),
      ],
      ["manifestHead with a query in the tag", () => c.manifestHead("app", "v1?x=1")],
      [
        "manifestGet with an upper-case digest",
        () => c.manifestGet("app", `sha256:${"A".repeat(64)}`),
      ],
      ["blobHead with a short digest", () => c.blobHead("app", "sha256:abc")],
      ["blobGet with an unknown algorithm", () => c.blobGet("app", `md5:${"a".repeat(32)}`)],
      ["blobMount from a bad repository", () => c.blobMount("app", good, "../other")],
      [
        "blobUpload with a path as digest",
        () =>
          c.blobUpload("app", { digest: "sha256:../../x", size: 1 }, () => {
            throw new Error("never opened");
          }),
      ],
      ["tagList of an encoded path", () => c.tagList("app%2F..%2Fother")],
      ["checkAccess of an empty repository", () => c.checkAccess("", ["pull"])],
    ];
    try {
      for (const [name, call] of rows) {
        await t.step(name, async () => {
          await rejectsWith(call, "IMAGE_MANIFEST_INVALID");
        });
      }
    } finally {
      c.close();
    }
    // Only the pings of the start-up wait reached the registry.
    const reached = (await dst.accessLog()).filter((l) => !l.startsWith("GET /v2/ "));
    assert.deepEqual(reached, []);
  },
});

Deno.test("RegistryClient refuses a Docker-Content-Digest that is not a digest", async (t) => {
  await using src = startHostileRegistry();
  const image = hostileImage(3);
  const c = clientOf(src.host);
  try {
    for (const header of ["a:b/../../x", `sha256:${"A".repeat(64)}`, "sha256:"]) {
      await t.step(`HEAD and GET with ${header}`, async () => {
        src.manifests.set("1", {
          bytes: image.manifest,
          mediaType: image.mediaType,
          headers: { "docker-content-digest": header },
        });
        await rejectsWith(
          () => c.manifestHead("team/app", "1"),
          "IMAGE_MANIFEST_INVALID",
          /Docker-Content-Digest/,
        );
        await rejectsWith(
          () => c.manifestGet("team/app", "1"),
          "IMAGE_MANIFEST_INVALID",
          /Docker-Content-Digest/,
        );
      });
    }
  } finally {
    c.close();
  }
});

Deno.test("RegistryClient reads a manifest under maxManifestBytes and stops at the cap", async (t) => {
  await using src = startHostileRegistry();
  const c = clientOf(src.host);
  const rows: [string, Parameters<typeof src.manifests.set>[1]][] = [
    ["a 200 MB manifest without Content-Length", { stream: { kind: "sized", bytes: 200 * MiB } }],
    ["an endless manifest", { stream: { kind: "endless" } }],
    ["an endless manifest announcing 200 MB", {
      stream: { kind: "endless" },
      headers: { "content-length": String(200 * MiB) },
    }],
  ];
  try {
    for (const [name, entry] of rows) {
      await t.step(name, () =>
        within(30_000, name, async () => {
          src.manifests.set("big", {
            mediaType: "application/vnd.oci.image.manifest.v1+json",
            ...entry,
          });
          const requests = src.requests.length;
          const streamed = src.streamedBytes();
          const started = performance.now();
          await rejectsWith(
            () => c.manifestGet("team/app", "big", AbortSignal.timeout(5_000)),
            "IMAGE_MANIFEST_TOO_LARGE",
            /4194304-byte cap.*maxManifestBytes/,
          );
          assert.ok(performance.now() - started < 5000, "ends quickly");
          assert.equal(src.requests.length - requests, 1, "not retried");
          const sent = src.streamedBytes() - streamed;
          assert.ok(sent < 32 * MiB, `reading stopped near the cap (${sent} bytes streamed)`);
        }));
    }
    await t.step("a larger cap is honoured", async () => {
      const big = clientOf(src.host, { maxManifestBytes: 8 * MiB });
      try {
        src.manifests.set("big", { stream: { kind: "sized", bytes: 5 * MiB } });
        // 5 MiB pass the raised cap and then fail as what they are: not JSON.
        await rejectsWith(
          () => big.manifestGet("team/app", "big"),
          "IMAGE_MANIFEST_INVALID",
          /not JSON/,
        );
      } finally {
        big.close();
      }
    });
  } finally {
    c.close();
  }
});

Deno.test("RegistryClient.tagList() caps each page and checks every tag", async (t) => {
  await using src = startHostileRegistry();
  const c = clientOf(src.host);
  const rows: [string, Parameters<typeof src.tagLists.set>[1], string, RegExp][] = [
    [
      "an endless page",
      { stream: { kind: "endless" } },
      "IMAGE_MANIFEST_TOO_LARGE",
      /tag list page/,
    ],
    [
      "not JSON",
      { bytes: new TextEncoder().encode("<html>") },
      "IMAGE_MANIFEST_INVALID",
      /not JSON/,
    ],
    ["null", { bytes: jsonBytes(null) }, "IMAGE_MANIFEST_INVALID", /not a JSON object/],
    [
      "tags a string",
      { bytes: jsonBytes({ tags: "1" }) },
      "IMAGE_MANIFEST_INVALID",
      /tags must be an array/,
    ],
    [
      "a null tag",
      { bytes: jsonBytes({ tags: ["1", null] }) },
      "IMAGE_MANIFEST_INVALID",
      /tags\[1\]/,
    ],
    [
      "a path as tag",
      { bytes: jsonBytes({ tags: ["../../x"] }) },
      "IMAGE_MANIFEST_INVALID",
      /tags\[0\]/,
    ],
    [
      "a next page on another host",
      {
        bytes: jsonBytes({ tags: ["1"] }),
        headers: { link: '<http://127.0.0.2:1/v2/team/app/tags/list?last=1>; rel="next"' },
      },
      "IMAGE_MANIFEST_INVALID",
      /next page/,
    ],
  ];
  try {
    for (const [name, entry, code, pattern] of rows) {
      await t.step(name, () =>
        within(30_000, name, async (signal) => {
          src.tagLists.set("team/app", entry);
          await rejectsWith(() => c.tagList("team/app", signal), code, pattern);
        }));
    }
    await t.step("a good list still reads", async () => {
      src.tagLists.set("team/app", { bytes: jsonBytes({ name: "team/app", tags: ["1", "v2.0"] }) });
      assert.deepEqual(await c.tagList("team/app"), ["1", "v2.0"]);
    });
  } finally {
    c.close();
  }
});

/** Serve `image` at the hostile source with its first layer answered by `layer`. */
function serveWithLayer(
  src: ReturnType<typeof startHostileRegistry>,
  image: HostileImage,
  layer: Parameters<typeof src.blobs.set>[1],
) {
  src.serveImage("1", image);
  src.blobs.set(image.layers[0].digest, layer);
}

Deno.test({
  name:
    `RegistryEngine: a blob that lies about its size or bytes fails IMAGE_DIGEST_MISMATCH before its final PUT${skip}`,
  ignore: Boolean(skip),
  async fn(t) {
    await using dst = await startRegistry();
    await using watch = startUploadWatch(dst);
    await using src = startHostileRegistry();
    const image = hostileImage(5, { layerSize: 256 * 1024 });
    const layer = image.blobs.get(image.layers[0].digest) as Uint8Array;
    const flipped = layer.slice();
    flipped[1000] ^= 0xff;
    const rows: [string, Parameters<typeof src.blobs.set>[1], RegExp][] = [
      [
        "an endless blob",
        { stream: { kind: "endless" } },
        /more than the descriptor's 262144 bytes/,
      ],
      ["one byte more", { bytes: new Uint8Array([...layer, 0]) }, /more than the descriptor's/],
      ["one byte less", { bytes: layer.subarray(1) }, /262143 of the descriptor's 262144 bytes/],
      ["a flipped byte, right length", { bytes: flipped }, /bytes hash to sha256:/],
    ];
    using e = engineOf();
    for (const [name, entry, pattern] of rows) {
      await t.step(name, () =>
        within(30_000, name, async () => {
          serveWithLayer(src, image, entry);
          const gets = () =>
            src.requests.filter((r) => r === `GET /v2/team/app/blobs/${image.layers[0].digest}`)
              .length;
          const before = gets();
          const streamed = src.streamedBytes();
          const started = performance.now();
          await rejectsWith(
            () =>
              e.engine.copy({
                source: parseReference(`${src.host}/team/app:1`),
                destination: parseReference(`${watch.host}/mirror/app:1`),
                signal: AbortSignal.timeout(8_000),
              }),
            "IMAGE_DIGEST_MISMATCH",
            pattern,
          );
          assert.ok(performance.now() - started < 10_000, "ends quickly");
          assert.equal(gets() - before, 1, "not retried");
          assert.ok(src.streamedBytes() - streamed < 32 * MiB, "an endless body is cut early");
          assert.ok(
            !watch.completedUploads.includes(image.layers[0].digest),
            "no upload PUT of the bad blob delivered its body (the destination's own check did not catch it)",
          );
          assert.deepEqual(await tagsOf(dst, "mirror/app"), [], "no tag written");
          assert.equal(
            await (await fetch(`${dst.url}/v2/mirror/app/blobs/${image.layers[0].digest}`, {
              method: "HEAD",
            }))
              .status,
            404,
            "the blob is not at the destination",
          );
        }));
    }
    // Every upload session that did not finish was deleted (gotcha 12).
    const deletes = watch.requests.filter((r) =>
      r.startsWith("DELETE ") && r.includes("/blobs/uploads/")
    );
    assert.ok(deletes.length >= rows.length, `sessions cancelled: ${deletes.length}`);
  },
});

Deno.test({
  name:
    `RegistryEngine: malformed manifest JSON from the source is IMAGE_MANIFEST_INVALID naming the field${skip}`,
  ignore: Boolean(skip),
  async fn(t) {
    await using dst = await startRegistry();
    await using src = startHostileRegistry();
    const image = hostileImage(9);
    src.serveImage("good", image);
    const config = JSON.parse(new TextDecoder().decode(image.manifest)).config;
    const layer = JSON.parse(new TextDecoder().decode(image.manifest)).layers[0];
    const child = { mediaType: image.mediaType, digest: image.digest, size: image.manifest.length };
    const oci = "application/vnd.oci.image.manifest.v1+json";
    const index = "application/vnd.oci.image.index.v1+json";
    const rows: [string, unknown, string, RegExp][] = [
      ["null", null, oci, /the manifest must be a JSON object, not null/],
      ["an array", [], oci, /the manifest must be a JSON object/],
      [
        "a null child",
        { mediaType: index, manifests: [child, null] },
        index,
        /manifests\[1\] must be an object, not null/,
      ],
      [
        "a child without digest",
        { mediaType: index, manifests: [{ ...child, digest: undefined }] },
        index,
        /manifests\[0\]\.digest/,
      ],
      [
        "manifests an object",
        { mediaType: index, manifests: {} },
        index,
        /manifests must be an array/,
      ],
      [
        "a null layer",
        { mediaType: oci, config, layers: [null] },
        oci,
        /layers\[0\] must be an object/,
      ],
      [
        "a layer size as string",
        { mediaType: oci, config, layers: [{ ...layer, size: "12" }] },
        oci,
        /layers\[0\]\.size/,
      ],
      [
        "a negative layer size",
        { mediaType: oci, config, layers: [{ ...layer, size: -1 }] },
        oci,
        /layers\[0\]\.size/,
      ],
      ["no config", { mediaType: oci, layers: [layer] }, oci, /config must be an object/],
      [
        "config digest a number",
        { mediaType: oci, config: { ...config, digest: 5 }, layers: [] },
        oci,
        /config\.digest/,
      ],
    ];
    using e = engineOf();
    const before = await writes(dst);
    for (const [name, body, mediaType, pattern] of rows) {
      await t.step(name, async () => {
        src.manifests.set("1", { bytes: jsonBytes(body), mediaType });
        await rejectsWith(
          () =>
            e.engine.copy({
              source: parseReference(`${src.host}/team/app:1`),
              destination: parseReference(`${dst.host}/mirror/app:1`),
            }),
          "IMAGE_MANIFEST_INVALID",
          pattern,
        );
      });
    }
    assert.deepEqual((await writes(dst)).slice(before.length), [], "nothing written");
  },
});

Deno.test({
  name:
    `mirror (registry engine) against a hostile source: huge and endless bodies fail fast under 120 MB peak RSS${skip}`,
  ignore: Boolean(skip) || !gnuTimeAvailable(),
  async fn(t) {
    await using dst = await startRegistry();
    await using src = startHostileRegistry();
    const image = hostileImage(11, { layerSize: 64 * 1024 });
    src.serveImage("blob", image);
    src.blobs.set(image.layers[0].digest, { stream: { kind: "endless" } });
    src.manifests.set("huge", { mediaType: OCI, stream: { kind: "sized", bytes: 200 * MiB } });
    src.manifests.set("endless", { mediaType: OCI, stream: { kind: "endless" } });
    const dir = await Deno.makeTempDir({ prefix: "bb-hostile-" });
    src.manifests.set("five", { mediaType: OCI, stream: { kind: "sized", bytes: 5 * MiB } });
    const rows: [string, string, string, Record<string, unknown>][] = [
      ["a 200 MB manifest", "huge", "IMAGE_MANIFEST_TOO_LARGE", {}],
      ["an endless manifest", "endless", "IMAGE_MANIFEST_TOO_LARGE", {}],
      ["an endless blob", "blob", "IMAGE_DIGEST_MISMATCH", {}],
      // 5 MiB pass a cap raised in the config, and fail as what they are: not JSON.
      ["operation.maxManifestBytes raises the cap", "five", "IMAGE_MANIFEST_INVALID", {
        maxManifestBytes: 8 * MiB,
      }],
    ];
    try {
      for (const [name, tag, code, operation] of rows) {
        await t.step(name, () =>
          within(30_000, name, async () => {
            await Deno.writeTextFile(
              `${dir}/config.yaml`,
              stringify({
                registries: { dr: registryTarget(dst) },
                log: { dir: "./logs" },
                operation: { engine: "registry", retryDelay: 0.05, maxRetries: 2, ...operation },
                images: { [`${src.host}/team/app:${tag}`]: { targets: ["dr"] } },
              }),
            );
            const run = await runCliMeasured(
              ["mirror", "--config", `${dir}/config.yaml`, "--non-interactive"],
              { cwd: dir, timeoutMs: 25_000 },
            );
            const out = run.stdout + run.stderr;
            assert.ok(run.peakRssMb < 120, `peak RSS ${run.peakRssMb.toFixed(1)} MB`);
            assert.ok(run.elapsedMs < 30_000, `took ${run.elapsedMs} ms`);
            assert.equal(run.code, 1, out);
            assert.match(out, new RegExp(code), out);
            assert.deepEqual(await tagsOf(dst, "mirror/app"), [], "no tag written");
          }));
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    `RegistryEngine: manifest bytes that are a valid manifest of another digest fail IMAGE_DIGEST_MISMATCH, once, nothing PUT${skip}`,
  ignore: Boolean(skip),
  async fn(t) {
    await using dst = await startRegistry();
    await using src = startHostileRegistry();
    const a = hostileImage(21);
    const b = hostileImage(22);
    for (const image of [a, b]) {
      for (const [digest, bytes] of image.blobs) src.blobs.set(digest, { bytes });
    }
    using e = engineOf();
    const rows: { name: string; tag: string; manifestGet: string; serve: () => void }[] = [
      {
        name: "a tag GET whose Docker-Content-Digest is another image's valid digest",
        tag: "lying-header",
        manifestGet: "GET /v2/team/app/manifests/lying-header",
        serve: () =>
          src.manifests.set("lying-header", {
            bytes: a.manifest,
            mediaType: a.mediaType,
            headers: { "docker-content-digest": b.digest },
          }),
      },
      {
        name: "a child GET by digest that returns another valid manifest",
        tag: "swapped-child",
        manifestGet: `GET /v2/team/app/manifests/${a.digest}`,
        serve: () => {
          const index = hostileIndex([{ digest: a.digest, size: a.manifest.length }]);
          src.manifests.set("swapped-child", {
            bytes: index,
            mediaType: "application/vnd.oci.image.index.v1+json",
          });
          src.manifests.set(a.digest, { bytes: b.manifest, mediaType: b.mediaType });
        },
      },
    ];
    for (const row of rows) {
      await t.step(row.name, () =>
        within(30_000, row.name, async () => {
          row.serve();
          const before = src.requests.filter((r) => r === row.manifestGet).length;
          await rejectsWith(
            () =>
              e.engine.copy({
                source: parseReference(`${src.host}/team/app:${row.tag}`),
                destination: parseReference(`${dst.host}/mirror/app:${row.tag}`),
                signal: AbortSignal.timeout(8_000),
              }),
            "IMAGE_DIGEST_MISMATCH",
            /manifest bytes hash to sha256:[0-9a-f]{64}, expected sha256:[0-9a-f]{64}/,
          );
          const after = src.requests.filter((r) => r === row.manifestGet).length;
          assert.equal(after - before, 1, "one try, not retried");
          const puts = (await writes(dst)).filter((l) => /^PUT \/v2\/[^ ]+\/manifests\//.test(l));
          assert.deepEqual(puts, [], "no manifest PUT");
        }));
    }
  },
});
