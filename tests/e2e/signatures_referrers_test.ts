/**
 * Carrying the supply chain over the OCI 1.1 referrers API: `main.ts mirror` as a
 * subprocess, registry engine, real docker-registry instances with a referrers-API double in front
 * (tests/support/supply_chain_fixture.ts; distribution 2.8.2 has none), `operation.artifactTypes`,
 * `signatures: skip`, IMAGE_UNSIGNED, and bad input that must fail clearly with the image mirrored.
 */
import assert from "node:assert/strict";
import type { ReportEntry } from "../../lib/mirror/report.ts";
import {
  buildSignatureManifest,
  makeKey,
  opensslSign,
  pushSignatureManifest,
  simpleSigningPayload,
} from "../support/cosign_fixture.ts";
import { headDigest, pushTestImage, skopeoInspectRaw } from "../support/images.ts";
import { registryBinaryAvailable, startRegistry, type TestRegistry } from "../support/registry.ts";
import {
  buildReferrer,
  entriesOf,
  fallbackIndex,
  logText,
  MT,
  pushReferrer,
  sameBytes,
  startReferrersDouble,
  tagOf,
} from "../support/supply_chain_fixture.ts";
import { mirror, registryTarget } from "../support/e2e_kit.ts";

const skip = registryBinaryAvailable() ? "" : " (ignored: docker-registry is not installed)";

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
        mirror(dir, {
          registries: {
            dr: registryTarget(dst),
            api: registryTarget(dstApi),
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
          assert.deepEqual(entriesOf(out).map(counts), [[
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
          assert.deepEqual(entriesOf(out).map(counts), [[
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
        assert.deepEqual(entriesOf(out).map(counts), [["pushed", "IMAGE_PUSHED", 0, 0, 0, 1]]);
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
        assert.deepEqual(entriesOf(skipped).map(counts), [[
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
        assert.deepEqual(entriesOf(copied).map(counts), [[
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
        "nothing to carry: one IMAGE_UNSIGNED summary line (no WARNING per image), the image is still mirrored",
        async () => {
          const bare = await pushTestImage(src, "team/bare:1", { kind: "oci", seed: 55 });
          const earlier = (await logText(dir)).length;
          const out = await run("team/bare:1");
          assert.equal(out.code, 0, out.stderr);
          assert.deepEqual(entriesOf(out).map(counts), [[
            "pushed",
            "IMAGE_PUSHED",
            0,
            0,
            0,
            0,
          ]]);
          const log = (await logText(dir)).slice(earlier);
          assert.doesNotMatch(log, /\[WARNING\] \[IMAGE_UNSIGNED\]/);
          assert.doesNotMatch(
            log,
            new RegExp(bare.digest.replace("sha256:", "") + ".*IMAGE_UNSIGNED"),
          );
          const lines = log.split("\n").filter((l) => l.includes("[IMAGE_UNSIGNED]"));
          assert.equal(lines.length, 1, log);
          assert.match(
            lines[0],
            /\[INFO\] \[IMAGE_UNSIGNED\] Mirror: 1 of 1 image x target carry no signature, attestation, SBOM or referrer \(signatures: copy/,
          );
        },
      );

      await t.step(
        "a .sig with garbage annotations: carried as is with a WARNING, the image mirrored",
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
          assert.equal(out.code, 0, out.stderr);
          const [entry] = entriesOf(out);
          assert.deepEqual([entry.status, entry.code, entry.digest, entry.signatures], [
            "pushed",
            "IMAGE_PUSHED",
            image.digest,
            1,
          ]);
          assert.equal(await headDigest(dst, "mirror/garbage:1"), image.digest);
          // Byte for byte: the mirror holds what upstream holds; a verifier refuses it there too.
          assert.equal(await headDigest(dst, `mirror/garbage:${bad.tag}`), bad.digest);
          assert.match(
            await logText(dir),
            new RegExp(
              `\\[WARNING\\] \\[IMAGE_SIGNATURE_INVALID\\] Image: ${api.host}/team/garbage:${bad.tag}: layers\\[0\\]: dev\\.cosignproject\\.cosign/signature is not base64.*; carried as is \\(it will not verify\\)`,
            ),
          );
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
          const [entry] = entriesOf(out);
          assert.deepEqual([entry.status, entry.code], ["failed", "IMAGE_REFERRER_INVALID"]);
          assert.match(
            String(entry.error),
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

      await t.step(
        "a source whose tag list fails: a HEAD per tag instead, the .sig still travels",
        async () => {
          const image = await pushTestImage(src, "team/listless:1", { kind: "oci", seed: 58 });
          const p = simpleSigningPayload(`${src.host}/team/listless`, image.digest);
          const sigOf = await pushSignatureManifest(
            src,
            "team/listless",
            image.digest,
            buildSignatureManifest([{
              payload: p,
              signature: await opensslSign(key.privateKeyFile, p),
            }]),
          );
          api.overrides.set(
            "/v2/team/listless/tags/list?n=1000",
            () => new Response('{"errors":[{"code":"DENIED"}]}', { status: 403 }),
          );
          const out = await run("team/listless:1");
          assert.equal(out.code, 0, out.stderr);
          assert.deepEqual(entriesOf(out).map(counts), [["pushed", "IMAGE_PUSHED", 1, 0, 0, 0]]);
          assert.equal(await headDigest(dst, `mirror/listless:${sigOf.tag}`), sigOf.digest);
          assert.ok(
            api.requests.includes(
              `HEAD /v2/team/listless/manifests/${sigOf.tag.replace(".sig", ".att")}`,
            ),
          );
        },
      );

      await t.step(
        "a referrer the source lists but does not hold: skipped, the others travel",
        async () => {
          const { image, refs: [bundle] } = await withReferrers("team/stale", 59);
          const ghost = { ...bundle, digest: `sha256:${"e".repeat(64)}` };
          api.answers.set(
            `team/stale@${image.digest}`,
            new Response(new TextDecoder().decode(fallbackIndex([bundle, ghost])), {
              headers: { "content-type": MT.index },
            }),
          );
          const out = await run("team/stale:1");
          assert.equal(out.code, 0, out.stderr);
          assert.deepEqual(entriesOf(out).map(counts), [["pushed", "IMAGE_PUSHED", 0, 0, 0, 1]]);
          const held = await skopeoInspectRaw(dst, `mirror/stale:${tagOf(image.digest)}`);
          assert.deepEqual(held.bytes, fallbackIndex([bundle]));
          assert.match(
            await logText(dir),
            new RegExp(
              `\\[ERROR\\] \\[IMAGE_REFERRER_INVALID\\] Image: ${api.host}/team/stale@${ghost.digest} \\(referrer of ${image.digest}\\): listed by the source but not there; skipped`,
            ),
          );
        },
      );

      // Before: both foreign referrers were listed in this image's fallback index (3 referrers
      // counted) and the one not at the destination was copied there.
      await t.step(
        "a referrer whose subject is another image: not copied, not listed, the own one travels",
        async () => {
          const { image, refs: [bundle] } = await withReferrers("team/foreign", 61);
          const other = await pushTestImage(src, "team/foreign:2", { kind: "oci", seed: 62 });
          const otherRaw = await skopeoInspectRaw(src, "team/foreign:2");
          const subject = {
            mediaType: MT.manifest,
            digest: other.digest,
            size: otherRaw.bytes.length,
          };
          const foreign = buildReferrer({
            subject,
            artifactType: MT.bundle,
            content: '{"other":1}',
          });
          const planted = buildReferrer({ subject, artifactType: MT.spdx, content: '{"other":2}' });
          const foreignRef = await pushReferrer(src, "team/foreign", foreign);
          const plantedRef = await pushReferrer(src, "team/foreign", planted);
          // Already at the destination (as the other image's referrer): a HEAD finds it there.
          await pushReferrer(dst, "mirror/foreign", planted);
          api.answers.set(
            `team/foreign@${image.digest}`,
            new Response(
              new TextDecoder().decode(fallbackIndex([bundle, foreignRef, plantedRef])),
              {
                headers: { "content-type": MT.index },
              },
            ),
          );
          const out = await run("team/foreign:1");
          assert.equal(out.code, 0, out.stderr);
          assert.deepEqual(entriesOf(out).map(counts), [["pushed", "IMAGE_PUSHED", 0, 0, 0, 1]]);
          assert.equal(await has(dst, "mirror/foreign", foreignRef.digest), false);
          const held = await skopeoInspectRaw(dst, `mirror/foreign:${tagOf(image.digest)}`);
          assert.deepEqual(held.bytes, fallbackIndex([bundle]));
          const log = await logText(dir);
          for (const r of [foreignRef, plantedRef]) {
            assert.match(
              log,
              new RegExp(
                `\\[IMAGE_REFERRER_INVALID\\] Image: [^ ]+/team/foreign@${r.digest} \\(referrer of ${image.digest}\\): its subject is ${other.digest}, not this image; skipped`,
              ),
            );
          }
        },
      );

      await t.step(
        "a list of more than 1000 referrers is refused before any is copied",
        async () => {
          const image = await pushTestImage(src, "team/flood:1", { kind: "oci", seed: 60 });
          const flood = Array.from({ length: 1001 }, (_, i) => ({
            mediaType: MT.manifest,
            digest: `sha256:${i.toString(16).padStart(64, "0")}`,
            size: 100,
            artifactType: MT.bundle,
          }));
          api.answers.set(
            `team/flood@${image.digest}`,
            new Response(new TextDecoder().decode(fallbackIndex(flood)), {
              headers: { "content-type": MT.index },
            }),
          );
          const before = api.requests.length;
          const out = await run("team/flood:1");
          assert.equal(out.code, 1, out.stderr);
          const [entry] = entriesOf(out);
          assert.deepEqual([entry.status, entry.code], ["failed", "IMAGE_REFERRER_INVALID"]);
          assert.match(
            String(entry.error),
            /: 1001 listed, more than the 1000 referrers carried per image; refused$/,
          );
          assert.deepEqual(
            api.requests.slice(before).filter((r) => r.includes("/manifests/sha256:0000")),
            [],
          );
          assert.equal(await headDigest(dst, "mirror/flood:1"), image.digest);
        },
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
