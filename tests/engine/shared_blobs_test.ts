/**
 * Blob work shared across a run: 16 tags in one source repository that share their blobs (ten
 * tags of one image, six of three more images with the same layers, one an index) mirrored into one
 * destination repository at `concurrency: 8` through `main.ts mirror` with the registry engine,
 * against real docker-registry instances. Every trial gets a fresh destination (an empty
 * repository is where the copies race), and every tag must land with the source's digest (the
 * registry's own HEAD, asked with a plain fetch, is the oracle). Before blob work was shared, such
 * a run failed one tag with MANIFEST_BLOB_UNKNOWN in about half of the trials (7 of 14 measured).
 *
 * `BB_SHARED_BLOB_TRIALS` raises the number of trials for a longer hunt (default 3).
 *
 * The engine-level tests say why the trials pass, without chance: 16 copies at once upload each
 * blob (and PUT each child manifest) once per destination repository, and one copy's failed upload
 * fails that copy only.
 */
import assert from "node:assert/strict";
import { RegistryEngine } from "../../lib/engine/registry_engine.ts";
import { MirrorError } from "../../lib/errors.ts";
import { Secrets } from "../../lib/log/redact.ts";
import { parseReference } from "../../lib/registry/reference.ts";
import { RegistryClient } from "../../lib/registry/registry_client.ts";
import { type FaultRule, startFaultProxy } from "../support/fault_proxy.ts";
import { headDigest, type ImageKind, type PushedImage, pushTestImage } from "../support/images.ts";
import { registryBinaryAvailable, startRegistry, type TestRegistry } from "../support/registry.ts";
import { mirror, registryTarget } from "../support/e2e_kit.ts";

const skip = registryBinaryAvailable() ? "" : " (ignored: docker-registry is not installed)";
const TRIALS = Math.min(50, Number(Deno.env.get("BB_SHARED_BLOB_TRIALS") ?? 3) || 3);

/** Tags 0-9 hold one image; 10-15 three more that share its layers (same seed, another config
 * label), one of them an index (its children are shared by its tags). */
const VARIANTS: [ImageKind, string][] = [
  ["oci", "a"],
  ["oci", "b"],
  ["schema2", "c"],
  ["oci-index", "d"],
];

/** Push the 16 tags `team/base:0..15` into `src`; the images by tag. */
async function pushSharingTags(src: TestRegistry): Promise<Map<string, PushedImage>> {
  const images = new Map<string, PushedImage>();
  for (let i = 0; i < 16; i++) {
    const [kind, label] = VARIANTS[i < 10 ? 0 : 1 + (i % 3)];
    images.set(
      String(i),
      await pushTestImage(src, `team/base:${i}`, { kind, seed: 7, label, layers: 3 }),
    );
  }
  return images;
}

/** An engine whose clients talk plain http to `src` and, through a fault proxy, to `dst`. */
function engineFor(src: TestRegistry, dst: TestRegistry, rules: FaultRule[]) {
  const proxy = startFaultProxy(dst, rules);
  const clients = new Map<string, RegistryClient>();
  const engine = new RegistryEngine({
    clientFor(host) {
      let client = clients.get(host);
      if (!client) {
        const reg = host === src.host ? src : dst;
        client = new RegistryClient({
          host,
          scheme: "http",
          credential: reg.username
            ? {
              kind: "basic",
              username: reg.username,
              password: reg.password ?? "",
              source: "config",
            }
            : null,
          maxRetries: 0,
          retryDelayMs: 5,
          secrets: new Secrets(),
        });
        clients.set(host, client);
      }
      return client;
    },
  });
  return {
    engine,
    proxy,
    async [Symbol.asyncDispose]() {
      for (const client of clients.values()) client.close();
      await proxy.stop();
    },
  };
}

/** Completed blob uploads in the access log, by digest. */
async function uploadsByDigest(reg: TestRegistry, repo: string): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (const line of await reg.accessLog()) {
    const m = new RegExp(`^PUT /v2/${repo}/blobs/uploads/\\S*[?&]digest=([^&\\s]+)\\S* 201$`).exec(
      line,
    );
    if (m) {
      const digest = decodeURIComponent(m[1]);
      counts.set(digest, (counts.get(digest) ?? 0) + 1);
    }
  }
  return counts;
}

Deno.test({
  name:
    `RegistryEngine: 16 copies at once upload each shared blob and child manifest once per repository${skip}`,
  ignore: Boolean(skip),
  async fn() {
    await using src = await startRegistry();
    await using dst = await startRegistry({ auth: "htpasswd" });
    const images = await pushSharingTags(src);
    // Uploads take a while, so every copy has looked at the destination before the first blob is
    // there: without shared work each of them uploads every blob.
    await using e = engineFor(src, dst, [
      { method: "PUT", path: /\/blobs\/uploads\//, times: 1000, fault: { kind: "delay", ms: 300 } },
    ]);
    const results = await Promise.all(
      [...images.keys()].map((tag) =>
        e.engine.copy({
          source: parseReference(`${src.host}/team/base:${tag}`),
          destination: parseReference(`${e.proxy.host}/mirror/base:${tag}`),
        })
      ),
    );
    assert.deepEqual(results.map((r) => r.status), Array(16).fill("pushed"));
    assert.deepEqual(results.map((r) => r.digest), [...images.values()].map((i) => i.digest));
    const uploads = await uploadsByDigest(dst, "mirror/base");
    const blobs = new Set([...images.values()].flatMap((i) => i.layers));
    assert.ok(uploads.size > blobs.size, "layers and configs were uploaded");
    for (const [digest, count] of uploads) {
      assert.equal(count, 1, `${digest} uploaded ${count} times`);
    }
    // Each blob counted once, by the copy that uploaded it (the pusher counted each blob once too).
    const total = results.reduce((sum, r) => sum + r.bytesUploaded, 0);
    assert.equal(total, [...images.values()].reduce((sum, i) => sum + i.bytes, 0));
    const childPuts = (await dst.accessLog()).filter((l) =>
      /^PUT \/v2\/mirror\/base\/manifests\/sha256:\S+ 201$/.test(l)
    );
    const index = [...images.values()].find((i) => i.children);
    assert.equal(childPuts.length, index?.children?.length, childPuts.join("\n"));
    for (const [tag, image] of images) {
      assert.equal(await headDigest(dst, `mirror/base:${tag}`), image.digest, tag);
    }
  },
});

Deno.test({
  name: `RegistryEngine: a failed shared upload fails its own copy only; a waiter uploads${skip}`,
  ignore: Boolean(skip),
  async fn() {
    await using src = await startRegistry();
    await using dst = await startRegistry({ auth: "htpasswd" });
    const images = await pushSharingTags(src);
    // The first blob upload to finish is refused (no retries): the copy that owned it fails, the
    // copies waiting for that blob try it again themselves.
    await using e = engineFor(src, dst, [
      {
        method: "PUT",
        path: /\/blobs\/uploads\//,
        times: 1,
        fault: { kind: "status", status: 500 },
      },
      { method: "PUT", path: /\/blobs\/uploads\//, times: 1000, fault: { kind: "delay", ms: 200 } },
    ]);
    const outcomes = await Promise.all(
      [...images.keys()].map((tag) =>
        e.engine.copy({
          source: parseReference(`${src.host}/team/base:${tag}`),
          destination: parseReference(`${e.proxy.host}/mirror/base:${tag}`),
        }).then((r) => r.status, (error) => error)
      ),
    );
    const failed = outcomes.filter((o) => o instanceof MirrorError);
    assert.equal(failed.length, 1, outcomes.map(String).join("\n"));
    assert.equal((failed[0] as MirrorError).code, "IMAGE_PUSH_FAILED");
    assert.equal(outcomes.filter((o) => o === "pushed").length, 15);
    assert.equal(e.proxy.injected["status-500"], 1);
    for (const [tag, image] of images) {
      if (outcomes[Number(tag)] !== "pushed") continue;
      assert.equal(await headDigest(dst, `mirror/base:${tag}`), image.digest, tag);
    }
  },
});

Deno.test({
  name:
    `mirror: 16 tags sharing blobs at concurrency 8 all land with the source digests, ${TRIALS} trials${skip}`,
  ignore: Boolean(skip),
  async fn(t) {
    await using src = await startRegistry();
    const digests = new Map(
      [...(await pushSharingTags(src))].map(([tag, image]) => [tag, image.digest]),
    );
    const failures: string[] = [];
    for (let trial = 1; trial <= TRIALS; trial++) {
      await t.step(`trial ${trial}`, async () => {
        await using dst = await startRegistry({ auth: "htpasswd" });
        const dir = await Deno.makeTempDir({ prefix: "bb-shared-" });
        try {
          const images: Record<string, unknown> = {};
          for (const tag of digests.keys()) {
            images[`${src.host}/team/base:${tag}`] = { targets: ["dr"] };
          }
          const run = await mirror(dir, {
            registries: {
              dr: registryTarget(dst, { login: true }),
            },
            log: { dir: "./logs", level: "DEBUG", consoleOutput: false },
            operation: {
              engine: "registry",
              concurrency: 8,
              retryDelay: 0.05,
              maxRetries: 1,
              updateLatest: false,
            },
            images,
          }, { env: { DST_PASSWORD: dst.password ?? "" }, timeoutMs: 60_000 });
          const report = run.report;
          assert.ok(report, `no report: ${run.stderr}`);
          const bad = report.entries.filter((e) => e.status !== "pushed");
          for (const e of bad) {
            failures.push(`trial ${trial}: ${e.destination} ${e.code} ${e.error}`);
          }
          assert.equal(run.code, 0, `${run.stdout}\n${run.stderr}`);
          assert.equal(report.entries.length, 16);
          assert.deepEqual(bad, []);
          for (const [tag, digest] of digests) {
            assert.equal(await headDigest(dst, `mirror/base:${tag}`), digest, tag);
          }
        } finally {
          await Deno.remove(dir, { recursive: true });
        }
      });
    }
    assert.deepEqual(failures, []);
  },
});
