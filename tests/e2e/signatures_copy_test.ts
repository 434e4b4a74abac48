/**
 * Issue 13, carrying the supply chain: `main.ts mirror` as a subprocess, registry engine, two real
 * docker-registry instances (distribution 2.8.2: no referrers API, so the fallback tag path runs).
 * The source image is a multi-arch index signed (cosign format, openssl P-256) on the index and on
 * each child, with an attestation, an SBOM, a signature of the SBOM, and OCI 1.1 referrers with
 * `subject` (a bundle, an SBOM, a bundle of that SBOM) listed in fallback tags. Every expected
 * digest is the source's own, compared with skopeo's raw bytes at the destination.
 */
import assert from "node:assert/strict";
import {
  buildAttestationManifest,
  buildSignatureManifest,
  inTotoStatement,
  makeKey,
  opensslSign,
  pushAttestationManifest,
  pushSignatureManifest,
  signedEnvelope,
  simpleSigningPayload,
} from "../support/cosign_fixture.ts";
import { runMirrorConfig } from "../support/cli.ts";
import type { ReportEntry } from "../../lib/mirror/report.ts";
import {
  headDigest,
  pushManifestWithBlobs,
  pushTestImage,
  skopeoInspectRaw,
} from "../support/images.ts";
import { forward } from "../support/proxy.ts";
import { startRecordingHost } from "../support/recording_host.ts";
import { registryBinaryAvailable, startRegistry, type TestRegistry } from "../support/registry.ts";
import {
  buildReferrer,
  buildSbomManifest,
  fallbackIndex,
  MT,
  pushFallbackTag,
  pushReferrer,
  type ReferrerEntry,
  startReferrersDouble,
} from "../support/supply_chain_fixture.ts";

const skip = registryBinaryAvailable() ? "" : " (ignored: docker-registry is not installed)";

/** Requests of a registry's access log as `METHOD PATH` (status dropped). */
async function requests(reg: TestRegistry): Promise<string[]> {
  return (await reg.accessLog()).map((l) => l.split(" ").slice(0, 2).join(" "));
}

function writes(lines: string[]): string[] {
  return lines.filter((l) => /^(PUT|POST|PATCH|DELETE) /.test(l));
}

/** Assert `ref` (a tag or `@digest`) has byte-identical manifests at both registries. */
async function sameBytes(src: TestRegistry, dst: TestRegistry, from: string, to: string) {
  const a = await skopeoInspectRaw(src, from);
  const b = await skopeoInspectRaw(dst, to);
  assert.equal(b.digest, a.digest, `${to} vs ${from}`);
  assert.deepEqual(b.bytes, a.bytes, `${to} vs ${from}`);
  return a.digest;
}

/** Every log file of a run's log dir, joined. */
async function logText(dir: string): Promise<string> {
  let text = "";
  for await (const e of Deno.readDir(`${dir}/logs`)) {
    if (e.isFile && e.name.endsWith(".log")) {
      text += await Deno.readTextFile(`${dir}/logs/${e.name}`);
    }
  }
  return text;
}

const tagOf = (digest: string, suffix = "") => `${digest.replace(":", "-")}${suffix}`;

Deno.test({
  name:
    `mirror carries signatures, attestations, SBOMs and referrers of an index and its children${skip}`,
  ignore: Boolean(skip),
  async fn(t) {
    await using src = await startRegistry({ auth: "none" });
    await using dst = await startRegistry({ auth: "none" });
    const dir = await Deno.makeTempDir({ prefix: "bb-sigcopy-" });
    try {
      const key = await makeKey(dir, "p256");
      const image = await pushTestImage(src, "team/app:1", { kind: "oci-index", seed: 41 });
      const [c1, c2] = image.children!.map((c) => c.digest);
      const sign = async (repo: string, digests: string[], extra: string[] = []) => {
        const sigs = [];
        for (const d of [...digests, ...extra]) {
          const payload = simpleSigningPayload(`${src.host}/${repo}`, d);
          sigs.push({ payload, signature: await opensslSign(key.privateKeyFile, payload) });
        }
        return await pushSignatureManifest(src, repo, digests[0], buildSignatureManifest(sigs));
      };
      // cosign sign --recursive: the index and each child.
      for (const d of [image.digest, c1, c2]) await sign("team/app", [d]);
      const att = await pushAttestationManifest(
        src,
        "team/app",
        image.digest,
        buildAttestationManifest([{
          envelope: await signedEnvelope(key.privateKeyFile, inTotoStatement("app", image.digest)),
          predicateType: "https://slsa.dev/provenance/v1",
        }]),
      );
      const sbom = buildSbomManifest('{"spdxVersion":"SPDX-2.3","name":"app"}');
      const sbomDigest = await pushManifestWithBlobs(
        src,
        `team/app:${tagOf(image.digest, ".sbom")}`,
        sbom,
      );
      await sign("team/app", [sbomDigest]); // cosign sign of the SBOM: recursive
      const subject = { mediaType: image.mediaType, digest: image.digest, size: 0 };
      subject.size = (await skopeoInspectRaw(src, "team/app:1")).bytes.length;
      const bundle = await pushReferrer(
        src,
        "team/app",
        buildReferrer({ subject, artifactType: MT.bundle, content: '{"bundle":1}' }),
      );
      const sbomRef = await pushReferrer(
        src,
        "team/app",
        buildReferrer({ subject, artifactType: MT.spdx, content: '{"spdx":"ref"}' }),
      );
      const sbomRefBundle = await pushReferrer(
        src,
        "team/app",
        buildReferrer({
          subject: { mediaType: MT.manifest, digest: sbomRef.digest, size: sbomRef.size },
          artifactType: MT.bundle,
          content: '{"bundle":"of the sbom"}',
        }),
      );
      await pushFallbackTag(src, "team/app", image.digest, [bundle, sbomRef]);
      await pushFallbackTag(src, "team/app", sbomRef.digest, [sbomRefBundle]);

      // Every source request of the runs goes through this counting proxy (the registry's own
      // access log leaves out requests its router does not know, such as the referrers API).
      await using seen = startRecordingHost({
        hostname: "127.0.0.1",
        handle: (req) => forward(req, src.url, seen.host),
      });
      const config = (operation: Record<string, unknown> = {}) => ({
        registries: { dr: { url: dst.host, namespace: "mirror", kind: "registry" } },
        log: { dir: "./logs", level: "DEBUG" },
        operation: { engine: "registry", retryDelay: 0.05, maxRetries: 1, ...operation },
        images: { [`${seen.host}/team/app:1`]: { targets: ["dr"] } },
      });
      const sourceRequests = () => seen.requests.map((r) => `${r.method} ${r.path}`);
      const counts = (
        e: ReportEntry,
      ) => [e.status, e.signatures, e.attestations, e.sboms, e.referrers];

      await t.step("first run: everything arrives byte-identical, counted", async () => {
        const out = await runMirrorConfig(dir, config());
        assert.equal(out.code, 0, out.stderr);
        // .sig of the index, of both children and of the SBOM; one .att; one .sbom; 3 referrers.
        assert.deepEqual(out.report!.entries.map(counts), [["pushed", 4, 1, 1, 3]]);
        for (const d of [image.digest, c1, c2, sbomDigest]) {
          await sameBytes(
            src,
            dst,
            `team/app:${tagOf(d, ".sig")}`,
            `mirror/app:${tagOf(d, ".sig")}`,
          );
        }
        assert.equal(
          await sameBytes(src, dst, `team/app:${att.tag}`, `mirror/app:${att.tag}`),
          att.digest,
        );
        const sbomTag = tagOf(image.digest, ".sbom");
        assert.equal(
          await sameBytes(src, dst, `team/app:${sbomTag}`, `mirror/app:${sbomTag}`),
          sbomDigest,
        );
        for (const r of [bundle, sbomRef, sbomRefBundle]) {
          await sameBytes(src, dst, `team/app@${r.digest}`, `mirror/app@${r.digest}`);
        }
        // The destination has no referrers API either: the fallback tags are the source's bytes.
        for (const d of [image.digest, sbomRef.digest]) {
          await sameBytes(src, dst, `team/app:${tagOf(d)}`, `mirror/app:${tagOf(d)}`);
        }
        assert.match(
          out.stdout + out.stderr,
          /Supply chain: +4 signatures, 1 attestations, 1 SBOMs, 3 referrers/,
        );
      });

      await t.step("skip: a no-op without signatures (the baseline)", async () => {
        const [s0, d0] = [sourceRequests().length, (await requests(dst)).length];
        const out = await runMirrorConfig(dir, config({ signatures: "skip" }));
        assert.equal(out.code, 0, out.stderr);
        assert.deepEqual(out.report!.entries.map(counts), [["exists", 0, 0, 0, 0]]);
        const s = sourceRequests().slice(s0);
        const d = (await requests(dst)).slice(d0);
        assert.deepEqual(s, ["GET /v2/team/app/tags/list?n=1", "HEAD /v2/team/app/manifests/1"]);
        assert.equal(d.length, 3, d.join("\n"));
      });

      await t.step(
        "no-op run: HEADs only at the source (and one referrers probe), nothing written",
        async () => {
          const [s0, d0] = [sourceRequests().length, (await requests(dst)).length];
          const out = await runMirrorConfig(dir, config());
          assert.equal(out.code, 0, out.stderr);
          assert.deepEqual(out.report!.entries.map(counts), [["exists", 4, 1, 1, 3]]);
          const s = sourceRequests().slice(s0);
          const d = (await requests(dst)).slice(d0);
          assert.deepEqual(writes(d), []);
          // No manifest or blob GET at the source: the login check, the plan's HEAD, the one probe
          // of the referrers API (404: none), then HEADs of the managed tags.
          assert.deepEqual(s.filter((l) => !l.startsWith("HEAD ")), [
            "GET /v2/team/app/tags/list?n=1",
            `GET /v2/team/app/referrers/${image.digest}`,
          ]);
          // Index and children: .sig .att .sbom + fallback tag each (12); the 5 things carried for
          // them (.att, .sbom, 3 referrers): .sig + fallback tag each (10); the plan's HEAD (1).
          assert.equal(s.filter((l) => l.startsWith("HEAD ")).length, 23, s.join("\n"));
          console.log(`no-op with signatures: source ${s.length}, destination ${d.length}`);
        },
      );

      const upstreamBundle = await pushReferrer(
        src,
        "team/app",
        buildReferrer({ subject, artifactType: MT.bundle, content: '{"bundle":2}' }),
      );
      await t.step("signatures and referrers added upstream later are carried", async () => {
        // Re-signed upstream: cosign appends a layer, the .sig tag gets a new manifest.
        const sigs = [];
        for (const ref of [`${src.host}/team/app`, "registry.example/app"]) {
          const payload = simpleSigningPayload(ref, image.digest);
          sigs.push({ payload, signature: await opensslSign(key.privateKeyFile, payload) });
        }
        const resigned = await pushSignatureManifest(
          src,
          "team/app",
          image.digest,
          buildSignatureManifest(sigs),
        );
        await pushFallbackTag(src, "team/app", image.digest, [bundle, sbomRef, upstreamBundle]);
        const out = await runMirrorConfig(dir, config());
        assert.equal(out.code, 0, out.stderr);
        assert.deepEqual(out.report!.entries.map(counts), [["exists", 4, 1, 1, 4]]);
        const sigTag = tagOf(image.digest, ".sig");
        assert.equal(
          await sameBytes(src, dst, `team/app:${sigTag}`, `mirror/app:${sigTag}`),
          resigned.digest,
        );
        await sameBytes(
          src,
          dst,
          `team/app@${upstreamBundle.digest}`,
          `mirror/app@${upstreamBundle.digest}`,
        );
        await sameBytes(
          src,
          dst,
          `team/app:${tagOf(image.digest)}`,
          `mirror/app:${tagOf(image.digest)}`,
        );
      });

      await t.step(
        "a signature added only at the destination survives (drift, untouched)",
        async () => {
          const payload = simpleSigningPayload(`${dst.host}/mirror/app`, c1);
          const local = buildSignatureManifest([{
            payload,
            signature: await opensslSign(key.privateKeyFile, payload),
          }]);
          const localDigest = await pushManifestWithBlobs(
            dst,
            `mirror/app:${tagOf(c1, ".sig")}`,
            local,
          );
          const srcSig = await headDigest(src, `team/app:${tagOf(c1, ".sig")}`);
          const out = await runMirrorConfig(dir, config());
          assert.equal(out.code, 0, out.stderr);
          // c1's .sig is not in step (drift): 3 signatures counted.
          assert.deepEqual(out.report!.entries.map(counts), [["exists", 3, 1, 1, 4]]);
          assert.equal(await headDigest(dst, `mirror/app:${tagOf(c1, ".sig")}`), localDigest);
          const log = await logText(dir);
          assert.match(
            log,
            new RegExp(
              `\\[WARNING\\] \\[IMAGE_TAG_DRIFT\\] Image: ${dst.host}/mirror/app:${
                tagOf(c1, ".sig")
              } holds ${localDigest} with signatures the source's ${srcSig} \\(${seen.host}/team/app:${
                tagOf(c1, ".sig")
              }\\) lacks; left untouched`,
            ),
          );
        },
      );

      await t.step("the destination's fallback index is merged, never cut", async () => {
        const local = await pushReferrer(
          dst,
          "mirror/app",
          buildReferrer({ subject, artifactType: MT.bundle, content: '{"bundle":"local"}' }),
        );
        await pushFallbackTag(dst, "mirror/app", image.digest, [
          bundle,
          sbomRef,
          upstreamBundle,
          local,
        ]);
        const later = await pushReferrer(
          src,
          "team/app",
          buildReferrer({ subject, artifactType: MT.bundle, content: '{"bundle":3}' }),
        );
        await pushFallbackTag(src, "team/app", image.digest, [
          bundle,
          sbomRef,
          upstreamBundle,
          later,
        ]);
        const out = await runMirrorConfig(dir, config());
        assert.equal(out.code, 0, out.stderr);
        const held = await skopeoInspectRaw(dst, `mirror/app:${tagOf(image.digest)}`);
        assert.deepEqual(
          (held.manifest.manifests as ReferrerEntry[]).map((m) => m.digest),
          [bundle.digest, sbomRef.digest, upstreamBundle.digest, local.digest, later.digest],
        );
        await sameBytes(src, dst, `team/app@${later.digest}`, `mirror/app@${later.digest}`);
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/** Does `repo` hold the manifest `ref` (tag or digest)? A plain HEAD, no auth. */
async function has(reg: TestRegistry, repo: string, ref: string): Promise<boolean> {
  const res = await fetch(`${reg.url}/v2/${repo}/manifests/${ref}`, {
    method: "HEAD",
    headers: { accept: `${MT.manifest}, ${MT.index}` },
  });
  await res.body?.cancel();
  return res.status === 200;
}

Deno.test({
  name:
    `mirror carries referrers through the referrers API, filters them, and stops clearly on bad input${skip}`,
  ignore: Boolean(skip),
  async fn(t) {
    await using src = await startRegistry({ auth: "none" });
    await using dst = await startRegistry({ auth: "none" });
    await using dst2 = await startRegistry({ auth: "none" });
    await using api = startReferrersDouble(src);
    await using dstApi = startReferrersDouble(dst2);
    const dir = await Deno.makeTempDir({ prefix: "bb-sigapi-" });
    try {
      const key = await makeKey(dir, "p256");
      const run = (image: string, options: { operation?: object; target?: string } = {}) =>
        runMirrorConfig(dir, {
          registries: {
            dr: { url: dst.host, namespace: "mirror", kind: "registry" },
            api: { url: dstApi.host, namespace: "mirror", kind: "registry" },
          },
          log: { dir: "./logs", level: "DEBUG" },
          operation: { engine: "registry", retryDelay: 0.05, maxRetries: 1, ...options.operation },
          images: { [`${api.host}/${image}`]: { targets: [options.target ?? "dr"] } },
        });
      const counts = (
        e: ReportEntry,
      ) => [e.status, e.code, e.signatures, e.attestations, e.sboms, e.referrers];
      /** An image with a bundle and an SBOM referrer, listed only by the API double. */
      const withReferrers = async (repo: string, seed: number) => {
        const image = await pushTestImage(src, `${repo}:1`, { kind: "oci", seed });
        const raw = await skopeoInspectRaw(src, `${repo}:1`);
        const subject = { mediaType: MT.manifest, digest: image.digest, size: raw.bytes.length };
        const refs = [
          await pushReferrer(
            src,
            repo,
            buildReferrer({ subject, artifactType: MT.bundle, content: `{"bundle":${seed}}` }),
          ),
          await pushReferrer(
            src,
            repo,
            buildReferrer({ subject, artifactType: MT.spdx, content: `{"sbom":${seed}}` }),
          ),
        ];
        api.answers.set(
          `${repo}@${image.digest}`,
          new Response(new TextDecoder().decode(fallbackIndex(refs)), {
            headers: { "content-type": MT.index },
          }),
        );
        return { image, refs };
      };

      await t.step(
        "API at the source, none at the destination: copied by digest, fallback index written",
        async () => {
          const { image, refs } = await withReferrers("team/api", 51);
          const out = await run("team/api:1");
          assert.equal(out.code, 0, out.stderr);
          assert.deepEqual(out.report!.entries.map(counts), [[
            "pushed",
            "IMAGE_PUSHED",
            0,
            0,
            0,
            2,
          ]]);
          for (const r of refs) {
            await sameBytes(src, dst, `team/api@${r.digest}`, `mirror/api@${r.digest}`);
          }
          // Written from what was carried: the API's descriptors, in its order.
          const held = await skopeoInspectRaw(dst, `mirror/api:${tagOf(image.digest)}`);
          assert.deepEqual(held.bytes, fallbackIndex(refs));
          // Asked the source's API, never a fallback tag there.
          assert.ok(api.requests.includes(`GET /v2/team/api/referrers/${image.digest}`));
          assert.ok(!api.requests.includes(`GET /v2/team/api/manifests/${tagOf(image.digest)}`));
        },
      );

      await t.step(
        "API at the destination too: referrers by digest, no fallback tag there",
        async () => {
          const { image, refs } = await withReferrers("team/both", 52);
          const out = await run("team/both:1", { target: "api" });
          assert.equal(out.code, 0, out.stderr);
          assert.deepEqual(out.report!.entries.map(counts), [[
            "pushed",
            "IMAGE_PUSHED",
            0,
            0,
            0,
            2,
          ]]);
          for (const r of refs) assert.ok(await has(dst2, "mirror/both", r.digest), r.digest);
          assert.equal(await has(dst2, "mirror/both", tagOf(image.digest)), false);
        },
      );

      await t.step("artifactTypes: only the listed types travel", async () => {
        const { image, refs: [bundle, sbom] } = await withReferrers("team/filtered", 53);
        const out = await run("team/filtered:1", { operation: { artifactTypes: [MT.bundle] } });
        assert.equal(out.code, 0, out.stderr);
        assert.deepEqual(out.report!.entries.map(counts), [["pushed", "IMAGE_PUSHED", 0, 0, 0, 1]]);
        assert.ok(await has(dst, "mirror/filtered", bundle.digest));
        assert.equal(await has(dst, "mirror/filtered", sbom.digest), false);
        const held = await skopeoInspectRaw(dst, `mirror/filtered:${tagOf(image.digest)}`);
        assert.deepEqual(held.bytes, fallbackIndex([bundle]));
      });

      const signed = await pushTestImage(src, "team/signed:1", { kind: "oci", seed: 54 });
      const payload = simpleSigningPayload(`${src.host}/team/signed`, signed.digest);
      const sig = await pushSignatureManifest(
        src,
        "team/signed",
        signed.digest,
        buildSignatureManifest([{
          payload,
          signature: await opensslSign(key.privateKeyFile, payload),
        }]),
      );
      await t.step("signatures: skip carries nothing; copy then carries the .sig", async () => {
        const skipped = await run("team/signed:1", { operation: { signatures: "skip" } });
        assert.equal(skipped.code, 0, skipped.stderr);
        assert.deepEqual(skipped.report!.entries.map(counts), [[
          "pushed",
          "IMAGE_PUSHED",
          0,
          0,
          0,
          0,
        ]]);
        assert.equal(await headDigest(dst, `mirror/signed:${sig.tag}`), null);
        assert.doesNotMatch(await logText(dir), /IMAGE_UNSIGNED.*team\/signed/);
        const copied = await run("team/signed:1");
        assert.equal(copied.code, 0, copied.stderr);
        assert.deepEqual(copied.report!.entries.map(counts), [[
          "exists",
          "IMAGE_ALREADY_EXISTS",
          1,
          0,
          0,
          0,
        ]]);
        assert.equal(await headDigest(dst, `mirror/signed:${sig.tag}`), sig.digest);
      });

      await t.step(
        "nothing to carry: WARNING IMAGE_UNSIGNED, the image is still mirrored",
        async () => {
          const bare = await pushTestImage(src, "team/bare:1", { kind: "oci", seed: 55 });
          const out = await run("team/bare:1");
          assert.equal(out.code, 0, out.stderr);
          assert.deepEqual(out.report!.entries.map(counts), [[
            "pushed",
            "IMAGE_PUSHED",
            0,
            0,
            0,
            0,
          ]]);
          assert.match(
            await logText(dir),
            new RegExp(
              `\\[WARNING\\] \\[IMAGE_UNSIGNED\\] Image: ${api.host}/team/bare:1 \\(${bare.digest}\\) carries no signature, attestation, SBOM or referrer`,
            ),
          );
        },
      );

      await t.step(
        "a .sig with garbage annotations: IMAGE_SIGNATURE_INVALID, image mirrored, run fails",
        async () => {
          const image = await pushTestImage(src, "team/garbage:1", { kind: "oci", seed: 56 });
          const p = simpleSigningPayload(`${src.host}/team/garbage`, image.digest);
          const bad = await pushSignatureManifest(
            src,
            "team/garbage",
            image.digest,
            buildSignatureManifest([{ payload: p, signatureAnnotation: "%%% not base64 %%%" }]),
          );
          const out = await run("team/garbage:1");
          assert.equal(out.code, 1, out.stderr);
          const [entry] = out.report!.entries;
          assert.deepEqual([entry.status, entry.code, entry.digest], [
            "failed",
            "IMAGE_SIGNATURE_INVALID",
            image.digest,
          ]);
          assert.match(
            entry.error!,
            new RegExp(
              `^the image is mirrored \\(${image.digest}\\) but its signatures were not carried: ${api.host}/team/garbage:${bad.tag}: layers\\[0\\]: dev\\.cosignproject\\.cosign/signature is not base64`,
            ),
          );
          assert.equal(await headDigest(dst, "mirror/garbage:1"), image.digest);
          assert.equal(await headDigest(dst, `mirror/garbage:${bad.tag}`), null);
        },
      );

      await t.step(
        "a referrers answer that is not an index: IMAGE_REFERRER_INVALID, no crash",
        async () => {
          const image = await pushTestImage(src, "team/badref:1", { kind: "oci", seed: 57 });
          api.answers.set(
            `team/badref@${image.digest}`,
            new Response(`{"schemaVersion":2,"mediaType":"${MT.manifest}","manifests":[]}`, {
              headers: { "content-type": MT.index },
            }),
          );
          const out = await run("team/badref:1");
          assert.equal(out.code, 1, out.stderr);
          const [entry] = out.report!.entries;
          assert.deepEqual([entry.status, entry.code], ["failed", "IMAGE_REFERRER_INVALID"]);
          assert.match(
            entry.error!,
            new RegExp(
              `^the image is mirrored \\(${image.digest}\\) but its signatures were not carried: ${api.host}/team/badref referrers of ${image.digest}: mediaType must be ${
                MT.index.replaceAll(".", "\\.").replaceAll("+", "\\+")
              }`,
            ),
          );
          assert.doesNotMatch(out.stderr, /\bat .*\.ts:\d+/);
          assert.equal(await headDigest(dst, "mirror/badref:1"), image.digest);
        },
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
