/**
 * Carrying the supply chain: `main.ts mirror` as a subprocess, registry engine, two real
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
import type { ReportEntry } from "../../lib/mirror/report.ts";
import {
  headDigest,
  pushManifestWithBlobs,
  pushTestImage,
  skopeoInspectRaw,
} from "../support/images.ts";
import { forward } from "../support/proxy.ts";
import { startRecordingHost } from "../support/recording_host.ts";
import { registryBinaryAvailable, startRegistry } from "../support/registry.ts";
import {
  ageMemo,
  atOnce,
  buildReferrer,
  buildSbomManifest,
  entriesOf,
  logText,
  MT,
  pushFallbackTag,
  pushReferrer,
  pushReferrerTree,
  type ReferrerEntry,
  requests,
  sameBytes,
  tagOf,
} from "../support/supply_chain_fixture.ts";
import { mirror, registryTarget } from "../support/e2e_kit.ts";

const skip = registryBinaryAvailable() ? "" : " (ignored: docker-registry is not installed)";

function writes(lines: string[]): string[] {
  return lines.filter((l) => /^(PUT|POST|PATCH|DELETE) /.test(l));
}

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
      const [c1, c2] = (image.children ?? []).map((c) => c.digest);
      // The signatures made per digest: a later signature is appended to them (as cosign does).
      const signed = new Map<string, { payload: Uint8Array; signature: Uint8Array }[]>();
      const sign = async (repo: string, digests: string[], extra: string[] = []) => {
        const sigs = [];
        for (const d of [...digests, ...extra]) {
          const payload = simpleSigningPayload(`${src.host}/${repo}`, d);
          sigs.push({ payload, signature: await opensslSign(key.privateKeyFile, payload) });
        }
        signed.set(digests[0], sigs);
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
      const { bundle, sbomRef, sbomRefBundle } = await pushReferrerTree(src, "team/app", subject);

      // Every source request of the runs goes through this counting proxy (the registry's own
      // access log leaves out requests its router does not know, such as the referrers API).
      await using seen = startRecordingHost({
        hostname: "127.0.0.1",
        handle: (req) => forward(req, src.url, seen.host),
      });
      const config = (operation: Record<string, unknown> = {}) => ({
        registries: { dr: registryTarget(dst) },
        log: { dir: "./logs", level: "DEBUG" },
        operation: { engine: "registry", retryDelay: 0.05, maxRetries: 1, ...operation },
        images: { [`${seen.host}/team/app:1`]: { targets: ["dr"] } },
      });
      const sourceRequests = () => seen.requests.map((r) => `${r.method} ${r.path}`);
      const counts = (
        e: ReportEntry,
      ) => [e.status, e.signatures, e.attestations, e.sboms, e.referrers];

      await t.step("first run: everything arrives byte-identical, counted", async () => {
        const out = await mirror(dir, config());
        assert.equal(out.code, 0, out.stderr);
        // .sig of the index, of both children and of the SBOM; one .att; one .sbom; 3 referrers.
        assert.deepEqual(entriesOf(out).map(counts), [["pushed", 4, 1, 1, 3]]);
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
        const out = await mirror(dir, config({ signatures: "skip" }));
        assert.equal(out.code, 0, out.stderr);
        assert.deepEqual(entriesOf(out).map(counts), [["exists", 0, 0, 0, 0]]);
        const s = sourceRequests().slice(s0);
        const d = (await requests(dst)).slice(d0);
        assert.deepEqual(s, ["GET /v2/team/app/tags/list?n=1", "HEAD /v2/team/app/manifests/1"]);
        assert.equal(d.length, 3, d.join("\n"));
      });

      await t.step(
        "no-op run: HEADs only at the source (and one referrers probe), nothing written",
        async () => {
          const [s0, d0] = [sourceRequests().length, (await requests(dst)).length];
          const out = await mirror(dir, config());
          assert.equal(out.code, 0, out.stderr);
          assert.deepEqual(entriesOf(out).map(counts), [["exists", 4, 1, 1, 3]]);
          const s = sourceRequests().slice(s0);
          const d = (await requests(dst)).slice(d0);
          assert.deepEqual(writes(d), []);
          // No manifest or blob GET at the source (no pull spent): the login check, the one tag list
          // of the repository, the one probe of the referrers API (404: none), then HEADs.
          assert.deepEqual(s.filter((l) => !l.startsWith("HEAD ")), [
            "GET /v2/team/app/tags/list?n=1",
            "GET /v2/team/app/tags/list?n=1000",
            `GET /v2/team/app/referrers/${image.digest}`,
          ]);
          // HEADs only of the tags the list holds: the plan's (1); .sig of index, children and SBOM
          // (4); .att, .sbom (2); the fallback tags of the index and of the SBOM referrer (2).
          assert.equal(s.filter((l) => l.startsWith("HEAD ")).length, 9, s.join("\n"));
          assert.equal(s.length, 12);
          // The destination: as without signatures. The memo of the first run knows the index's
          // children and the fallback indexes' referrers (by digest), and that every managed tag
          // held the source's digest when HEADed or written less than 24 h ago (15 vs 5; was 28).
          // The tag's HEAD and latest's are read at once, in the plan.
          assert.deepEqual(atOnce(d, 1, 3), [
            "GET /v2/mirror/app/tags/list?n=1",
            "HEAD /v2/mirror/app/manifests/1",
            "HEAD /v2/mirror/app/manifests/latest",
          ]);
        },
      );

      const upstreamBundle = await pushReferrer(
        src,
        "team/app",
        buildReferrer({ subject, artifactType: MT.bundle, content: '{"bundle":2}' }),
      );
      await t.step("signatures and referrers added upstream later are carried", async () => {
        // Re-signed upstream: cosign appends a layer (the earlier signature kept as it was), the
        // .sig tag gets a new manifest.
        const sigs = [...signed.get(image.digest) ?? []];
        const payload = simpleSigningPayload("registry.example/app", image.digest);
        sigs.push({ payload, signature: await opensslSign(key.privateKeyFile, payload) });
        const resigned = await pushSignatureManifest(
          src,
          "team/app",
          image.digest,
          buildSignatureManifest(sigs),
        );
        await pushFallbackTag(src, "team/app", image.digest, [bundle, sbomRef, upstreamBundle]);
        const out = await mirror(dir, config());
        assert.equal(out.code, 0, out.stderr);
        assert.deepEqual(entriesOf(out).map(counts), [["exists", 4, 1, 1, 4]]);
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
          // Within 24 h of the last destination HEAD the memo answers: not seen, still untouched.
          const early = await mirror(dir, config());
          assert.equal(early.code, 0, early.stderr);
          assert.deepEqual(entriesOf(early).map(counts), [["exists", 4, 1, 1, 4]]);
          assert.equal(await headDigest(dst, `mirror/app:${tagOf(c1, ".sig")}`), localDigest);
          await ageMemo(dir);
          const out = await mirror(dir, config());
          assert.equal(out.code, 0, out.stderr);
          // c1's .sig is not in step (drift): 3 signatures counted.
          assert.deepEqual(entriesOf(out).map(counts), [["exists", 3, 1, 1, 4]]);
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
        const out = await mirror(dir, config());
        assert.equal(out.code, 0, out.stderr);
        const held = await skopeoInspectRaw(dst, `mirror/app:${tagOf(image.digest)}`);
        assert.deepEqual(
          (held.manifest.manifests as ReferrerEntry[]).map((m) => m.digest),
          [bundle.digest, sbomRef.digest, upstreamBundle.digest, local.digest, later.digest],
        );
        await sameBytes(src, dst, `team/app@${later.digest}`, `mirror/app@${later.digest}`);
      });

      await t.step(
        "a signed single-arch image: the no-op cost with and without signatures",
        async () => {
          const one = await pushTestImage(src, "team/one:1", { kind: "oci", seed: 42 });
          await sign("team/one", [one.digest]);
          const oneConfig = (operation: Record<string, unknown> = {}) => ({
            ...config(operation),
            images: { [`${seen.host}/team/one:1`]: { targets: ["dr"] } },
          });
          assert.equal((await mirror(dir, oneConfig())).code, 0);
          const noop = async (operation: Record<string, unknown>) => {
            const [s0, d0] = [sourceRequests().length, (await requests(dst)).length];
            const out = await mirror(dir, oneConfig(operation));
            assert.equal(out.code, 0, out.stderr);
            return { s: sourceRequests().slice(s0), d: (await requests(dst)).slice(d0), out };
          };
          const base = await noop({ signatures: "skip" });
          const carried = await noop({});
          assert.deepEqual(entriesOf(carried.out).map(counts), [["exists", 1, 0, 0, 0]]);
          assert.deepEqual([base.s.length, base.d.length], [2, 3]);
          // Source: + the tag list, + the .sig HEAD, + the referrers probe (a GET answered 404).
          // Destination: nothing more (the plan's HEAD said: not an index; the .sig was written
          // by the run before, less than 24 h ago: the memo). 8 vs 5: 1.6x (was 9: 1.8x).
          // The plan reads the tag list at once with the HEAD (and latest with the tag's HEAD).
          assert.deepEqual(atOnce(carried.s, 1, 3), [
            "GET /v2/team/one/tags/list?n=1",
            "GET /v2/team/one/tags/list?n=1000",
            "HEAD /v2/team/one/manifests/1",
            `HEAD /v2/team/one/manifests/${tagOf(one.digest, ".sig")}`,
            `GET /v2/team/one/referrers/${one.digest}`,
          ]);
          assert.deepEqual(atOnce(carried.d, 1, 3), [
            "GET /v2/mirror/one/tags/list?n=1",
            "HEAD /v2/mirror/one/manifests/1",
            "HEAD /v2/mirror/one/manifests/latest",
          ]);
        },
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
