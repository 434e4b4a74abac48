/**
 * `platforms` with the registry engine, as a subprocess against real registries:
 * - distribution 2.8 as destination refuses a sparse index: IMAGE_SPARSE_REFUSED naming
 *   `platformsMode: rewrite`, nothing tagged; `rewrite` lands a one-platform index skopeo reads,
 *   the report names both digests, and a re-run writes nothing;
 * - a destination that keeps sparse indexes (tests/support/sparse_registry.ts, Quay's
 *   FEATURE_SPARSE_INDEX) gets the source's index digest with only the kept children's blobs
 *   uploaded (counted in the registry's access log), and widening `platforms` adds the missing
 *   child on the next run without writing the tag again;
 * - a real dockerd pulls the rewritten one-platform index, and the mirror-sets step warns that
 *   pulls by the upstream digest have no mirror.
 */
import assert from "node:assert/strict";
import {
  buildSignatureManifest,
  makeKey,
  opensslSign,
  pushSignatureManifest,
  simpleSigningPayload,
  type TestKey,
} from "../support/cosign_fixture.ts";
import { headDigest, pushTestImage, sha256, skopeoInspectRaw } from "../support/images.ts";
import { dockerdAvailability, startDockerd } from "../support/dockerd.ts";
import { registryBinaryAvailable, startRegistry, type TestRegistry } from "../support/registry.ts";
import { startSparseRegistry } from "../support/sparse_registry.ts";
import { mirror, registryTarget, writes } from "../support/e2e_kit.ts";

const skip = registryBinaryAvailable() ? "" : " (ignored: docker-registry is not installed)";

function config(
  src: TestRegistry,
  dstHost: string,
  operation: Record<string, unknown>,
): Record<string, unknown> {
  return {
    registries: { dr: registryTarget({ host: dstHost }) },
    log: { dir: "./logs", level: "DEBUG" },
    operation: {
      engine: "registry",
      retryDelay: 0.05,
      maxRetries: 1,
      updateLatest: false,
      ...operation,
    },
    images: { [`${src.host}/multi/app:1`]: { targets: ["dr"] } },
  };
}

async function log(dir: string): Promise<string> {
  const text = await Deno.readTextFile(`${dir}/logs/bananna-bot.log`).catch(() => "");
  await Deno.remove(`${dir}/logs/bananna-bot.log`).catch(() => {});
  return text;
}

/**
 * Verify the cosign signature of `digest` in `repo` at `url` with openssl (the oracle): the `.sig`
 * manifest's payload blob, its signature annotation, and the digest the payload names.
 */
async function verifySignature(url: string, repo: string, digest: string, key: TestKey) {
  const tag = `${digest.replace(":", "-")}.sig`;
  const res = await fetch(`${url}/v2/${repo}/manifests/${tag}`, {
    headers: { accept: "application/vnd.oci.image.manifest.v1+json" },
  });
  assert.equal(res.status, 200, `${tag} at the destination`);
  const layer = (await res.json()).layers[0];
  const payload = new Uint8Array(
    await (await fetch(`${url}/v2/${repo}/blobs/${layer.digest}`)).arrayBuffer(),
  );
  assert.equal(sha256(payload), layer.digest);
  const named = JSON.parse(new TextDecoder().decode(payload)).critical.image;
  assert.equal(named["docker-manifest-digest"], digest);
  const dir = await Deno.makeTempDir({ prefix: "bb-verify-" });
  try {
    const signature = Uint8Array.from(
      atob(layer.annotations["dev.cosignproject.cosign/signature"]),
      (c) => c.charCodeAt(0),
    );
    await Deno.writeFile(`${dir}/sig`, signature);
    await Deno.writeFile(`${dir}/payload`, payload);
    const out = await new Deno.Command("openssl", {
      args: [
        "dgst",
        "-sha256",
        "-verify",
        key.publicKeyFile,
        "-signature",
        `${dir}/sig`,
        `${dir}/payload`,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(new TextDecoder().decode(out.stdout).trim(), "Verified OK");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test({
  name:
    `platforms on distribution 2.8: sparse refused, nothing tagged; rewrite lands one platform; a re-run writes nothing${skip}`,
  ignore: Boolean(skip),
  async fn() {
    await using src = await startRegistry();
    await using dst = await startRegistry();
    const dir = await Deno.makeTempDir({ prefix: "bb-platforms-" });
    try {
      const image = await pushTestImage(src, "multi/app:1", {
        kind: "oci-index",
        seed: 71,
        architectures: ["amd64", "arm64", "s390x"],
      });
      const amd64 = image.children?.find((c) => c.platform === "linux/amd64")?.digest;

      const sparse = await mirror(
        dir,
        config(src, dst.host, { platforms: ["linux/amd64"] }),
      );
      assert.equal(sparse.code, 1, sparse.stdout + sparse.stderr);
      const refused = sparse.report?.entries[0];
      assert.equal(refused?.status, "failed");
      assert.equal(refused?.code, "IMAGE_SPARSE_REFUSED");
      assert.match(refused?.error ?? "", /platformsMode: rewrite/);
      assert.equal(await headDigest(dst, "mirror/app:1"), null, "nothing tagged");
      assert.match(await log(dir), /\[IMAGE_SPARSE_REFUSED\]/);

      const operation = { platforms: ["linux/amd64"], platformsMode: "rewrite" };
      const rewrite = await mirror(dir, config(src, dst.host, operation));
      assert.equal(rewrite.code, 0, rewrite.stdout + rewrite.stderr);
      const entry = rewrite.report?.entries[0];
      assert.equal(entry?.status, "pushed");
      const written = await headDigest(dst, "mirror/app:1");
      assert.ok(written && written !== image.digest, "a new digest");
      assert.equal(entry?.digest, written);
      assert.deepEqual(entry?.platforms, {
        wanted: ["linux/amd64"],
        mode: "rewrite",
        kept: ["linux/amd64"],
        skipped: ["linux/arm64", "linux/s390x"],
        sourceDigest: image.digest,
      });
      const text = await log(dir);
      assert.match(text, /\[IMAGE_PLATFORMS_REWRITTEN\]/);
      assert.ok(text.includes(image.digest) && text.includes(written), "both digests logged");
      assert.match(rewrite.stdout, /Platforms: +1 indexes for some platforms: 1 kept, 2 left out/);
      // skopeo (the oracle) reads the one-platform index and its child.
      const seen = await skopeoInspectRaw(dst, "mirror/app:1");
      assert.equal(seen.digest, written);
      const manifests = seen.manifest.manifests as { digest: string }[];
      assert.deepEqual(manifests.map((m) => m.digest), [amd64]);
      // Only the amd64 child's blobs (config + 2 layers) were ever uploaded (by the sparse try).
      const uploads = (await writes(dst, 0)).filter((l) =>
        /^PUT \/v2\/mirror\/app\/blobs\/uploads\/\S+ 201$/.test(l)
      );
      assert.equal(uploads.length, 3, uploads.join("\n"));

      const mark = (await dst.accessLog()).length;
      const again = await mirror(dir, config(src, dst.host, operation));
      assert.equal(again.code, 0, again.stdout + again.stderr);
      assert.equal(again.report?.entries[0].status, "exists");
      assert.equal(again.report?.entries[0].digest, written);
      assert.deepEqual(await writes(dst, mark), [], "the re-run writes nothing");
      // The next one knows the rewrite from the memo: the tag HEAD alone, no GET of the index.
      const mark2 = (await dst.accessLog()).length;
      const third = await mirror(dir, config(src, dst.host, operation));
      assert.equal(third.report?.entries[0].status, "exists", third.stdout);
      assert.deepEqual(third.report?.entries[0].platforms?.kept, ["linux/amd64"]);
      assert.deepEqual(
        (await dst.accessLog()).slice(mark2).filter((l) => l.includes("/manifests/")),
        ["HEAD /v2/mirror/app/manifests/1 200"],
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    `platforms sparse into a registry that keeps sparse indexes: the digest kept, only kept blobs uploaded; widening adds a child, tag untouched${skip}`,
  ignore: Boolean(skip),
  async fn() {
    await using src = await startRegistry();
    await using backend = await startRegistry();
    await using proxy = startSparseRegistry(backend);
    const dst = { ...backend, host: proxy.host, url: proxy.url };
    const dir = await Deno.makeTempDir({ prefix: "bb-platforms-" });
    try {
      const image = await pushTestImage(src, "multi/app:1", {
        kind: "docker-list",
        seed: 72,
        architectures: ["amd64", "arm64", "ppc64le", "s390x"],
      });
      const child = (p: string) => image.children?.find((c) => c.platform === p)?.digest;
      // The index is signed upstream (cosign's .sig tag on the index digest).
      const key = await makeKey(dir, "p256");
      const payload = simpleSigningPayload(`${src.host}/multi/app`, image.digest);
      const signature = await opensslSign(key.privateKeyFile, payload);
      await pushSignatureManifest(
        src,
        "multi/app",
        image.digest,
        buildSignatureManifest([{ payload, signature }]),
      );

      const before = (await backend.accessLog()).length;
      const first = await mirror(
        dir,
        config(src, proxy.host, { platforms: ["linux/amd64"] }),
      );
      assert.equal(first.code, 0, first.stdout + first.stderr);
      assert.equal(first.report?.entries[0].status, "pushed");
      assert.equal(first.report?.entries[0].digest, image.digest, "the source's digest");
      assert.equal(await headDigest(dst, "mirror/app:1"), image.digest);
      assert.deepEqual(proxy.sparseStored, [`mirror/app:1@${image.digest}`]);
      assert.equal(first.report?.entries[0].signatures, 1, "the index's signature carried");
      // Bytes not copied: 3 left-out platforms x the amd64 child's blobs (children of one size).
      const saved = first.report?.entries[0].platforms?.bytesSkipped ?? 0;
      assert.ok(Math.abs(saved - image.bytes * 3 / 4) < image.bytes * 0.05, `${saved}`);
      assert.match(first.stdout, /left out; about [0-9.]+ KB not copied \(estimated\)/);
      await verifySignature(proxy.url, "mirror/app", image.digest, key);
      const firstWrites = await writes(backend, before);
      const uploads = firstWrites.filter((l) => /^PUT \/v2\/mirror\/app\/blobs\/uploads\//.test(l));
      // linux/amd64's config and 2 layers, and the index signature's config and payload.
      assert.equal(uploads.length, 5, uploads.join("\n"));
      const children = firstWrites.filter((l) =>
        /^PUT \/v2\/mirror\/app\/manifests\/sha256:/.test(l)
      );
      assert.deepEqual(children, [`PUT /v2/mirror/app/manifests/${child("linux/amd64")} 201`]);

      // A re-run: nothing written, the platform set in the report.
      const mark = (await backend.accessLog()).length;
      const again = await mirror(
        dir,
        config(src, proxy.host, { platforms: ["linux/amd64"] }),
      );
      assert.equal(again.report?.entries[0].status, "exists", again.stdout);
      assert.deepEqual(again.report?.entries[0].platforms?.kept, ["linux/amd64"]);
      assert.deepEqual(await writes(backend, mark), []);
      // That re-run read the index and HEADed its child at the destination; the next one knows
      // both from the memo (children of a digest; a child found < 24 h ago): the tag HEAD only.
      const seen = proxy.requestLog().length;
      const third = await mirror(
        dir,
        config(src, proxy.host, { platforms: ["linux/amd64"] }),
      );
      assert.equal(third.report?.entries[0].status, "exists", third.stdout);
      assert.deepEqual(third.report?.entries[0].platforms?.kept, ["linux/amd64"]);
      assert.deepEqual(
        proxy.requestLog().slice(seen).filter((l) => l.includes("/manifests/")),
        ["HEAD /v2/mirror/app/manifests/1"],
      );

      // Widening: the arm64 child is added, the tag (kept by the proxy) is not PUT again.
      const widened = { platforms: ["linux/amd64", "linux/arm64"] };
      const dry = await mirror(dir, config(src, proxy.host, widened), {
        extra: ["--dry-run"],
      });
      assert.match(dry.stdout, /would add .*without linux\/arm64/);
      const wide = await mirror(dir, config(src, proxy.host, widened));
      assert.equal(wide.code, 0, wide.stdout + wide.stderr);
      const entry = wide.report?.entries[0];
      assert.equal(entry?.code, "IMAGE_PLATFORMS_ADDED");
      assert.deepEqual(entry?.platforms?.added, ["linux/arm64"]);
      assert.equal(entry?.digest, image.digest);
      assert.deepEqual(
        proxy.sparseStored,
        [`mirror/app:1@${image.digest}`],
        "tag not written again",
      );
      const wideWrites = await writes(backend, mark);
      assert.deepEqual(
        wideWrites.filter((l) => /manifests/.test(l)),
        [`PUT /v2/mirror/app/manifests/${child("linux/arm64")} 201`],
      );
      // Narrowing deletes nothing and is a no-op.
      const mark2 = (await backend.accessLog()).length;
      const narrow = await mirror(
        dir,
        config(src, proxy.host, { platforms: ["linux/arm64"] }),
      );
      assert.equal(narrow.report?.entries[0].status, "exists");
      assert.deepEqual(await writes(backend, mark2), []);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    `platforms sparse into a registry that says X-Sparse-Manifest-Support: false: refused before anything is copied${skip}`,
  ignore: Boolean(skip),
  async fn() {
    await using src = await startRegistry();
    await using backend = await startRegistry();
    await using proxy = startSparseRegistry(backend, { support: "false" });
    const dir = await Deno.makeTempDir({ prefix: "bb-platforms-" });
    try {
      await pushTestImage(src, "multi/app:1", { kind: "oci-index", seed: 73 });
      const run = await mirror(
        dir,
        config(src, proxy.host, { platforms: ["linux/arm64"] }),
      );
      assert.equal(run.code, 1, run.stdout + run.stderr);
      const entry = run.report?.entries[0];
      assert.equal(entry?.code, "IMAGE_SPARSE_REFUSED");
      assert.match(entry?.error ?? "", /X-Sparse-Manifest-Support: false/);
      assert.match(entry?.error ?? "", /platformsMode: rewrite/);
      assert.deepEqual(await writes(backend, 0), [], "nothing copied, nothing tagged");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

const availability = await dockerdAvailability();
const noDocker = skip || (availability.ok ? "" : ` (ignored: ${availability.reason})`);

Deno.test({
  name:
    `platforms rewrite: a real dockerd pulls the one-platform index; mirror sets warn about the upstream digest${noDocker}`,
  ignore: Boolean(noDocker),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using dockerd = await startDockerd();
    await using src = await startRegistry();
    await using dst = await startRegistry();
    const dir = await Deno.makeTempDir({ prefix: "bb-platforms-" });
    try {
      const image = await pushTestImage(src, "multi/app:1", {
        kind: "oci-index",
        seed: 74,
        architectures: ["amd64", "arm64", "s390x"],
      });
      const operation = { platforms: ["linux/amd64"], platformsMode: "rewrite" };
      const run = await mirror(dir, config(src, dst.host, operation), {
        extra: ["--openshift-mirror-sets", `${dir}/sets.yaml`],
      });
      assert.equal(run.code, 0, run.stdout + run.stderr);
      const written = run.report?.entries[0].digest as string;
      assert.notEqual(written, image.digest);
      assert.match(
        run.stdout,
        new RegExp(
          `a pull by the upstream digest \\(${src.host}/multi/app@${image.digest}\\) finds nothing at the mirror, which holds ${written}`,
        ),
      );
      assert.match(await log(dir), /\[WARNING\] \[IMAGE_PLATFORMS_REWRITTEN\]/);
      const pull = await dockerd.docker(["pull", `${dst.host}/mirror/app:1`]);
      assert.equal(pull.code, 0, pull.stderr);
      assert.match(pull.stdout, new RegExp(`Digest: ${written}`));
      const arch = await dockerd.docker([
        "image",
        "inspect",
        "--format",
        "{{.Os}}/{{.Architecture}}",
        `${dst.host}/mirror/app:1`,
      ]);
      assert.equal(arch.stdout.trim(), "linux/amd64");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    `platforms: a single-platform image just mirrors; an index without a wanted platform fails IMAGE_PLATFORM_ABSENT${skip}`,
  ignore: Boolean(skip),
  async fn() {
    await using src = await startRegistry();
    await using dst = await startRegistry();
    const dir = await Deno.makeTempDir({ prefix: "bb-platforms-" });
    try {
      const single = await pushTestImage(src, "multi/app:1", { kind: "schema2", seed: 76 });
      await pushTestImage(src, "multi/other:1", { kind: "oci-index", seed: 77 });
      const cfg = config(src, dst.host, { platforms: ["linux/s390x"], platformsMode: "rewrite" });
      cfg.images = {
        [`${src.host}/multi/app:1`]: { targets: ["dr"] },
        [`${src.host}/multi/other:1`]: { targets: ["dr"] },
      };
      const run = await mirror(dir, cfg);
      assert.equal(run.code, 1, run.stdout + run.stderr);
      const [app, other] = run.report?.entries ?? [];
      assert.equal(app.status, "pushed");
      assert.equal(app.digest, single.digest, "mirrored as it is");
      assert.equal(await headDigest(dst, "mirror/app:1"), single.digest);
      assert.equal(other.status, "failed");
      assert.equal(other.code, "IMAGE_PLATFORM_ABSENT");
      assert.match(other.error ?? "", /holds linux\/amd64, linux\/arm64; none of linux\/s390x/);
      assert.equal(await headDigest(dst, "mirror/other:1"), null);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
