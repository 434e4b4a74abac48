/**
 * Signatures, attestations, SBOMs and referrers travel across the air gap.
 * `export` and `import` as subprocesses, real docker-registry instances (distribution 2.8.2: no
 * referrers API, so the fallback tag path runs on both sides), the source stopped before any
 * import. The source image is a multi-arch index signed (cosign format, openssl P-256) on the
 * index and on each child, with an attestation, an SBOM, a signature of the SBOM, and OCI 1.1
 * referrers (a bundle, an SBOM, a bundle of that SBOM) listed in fallback tags. Every expected
 * digest and byte is the source's own, read with skopeo before the source stops.
 */
import assert from "node:assert/strict";
import { airgapCli, registryTarget, startDestination, writes } from "../support/e2e_kit.ts";
import {
  buildAttestationManifest,
  buildSignatureManifest,
  type FixtureSignature,
  inTotoStatement,
  makeKey,
  opensslSign,
  pushAttestationManifest,
  pushSignatureManifest,
  signedEnvelope,
  simpleSigningPayload,
} from "../support/cosign_fixture.ts";
import {
  headDigest,
  pushManifestWithBlobs,
  pushTestImage,
  sha256,
  skopeoInspectRaw,
} from "../support/images.ts";
import { registryBinaryAvailable, startRegistry, type TestRegistry } from "../support/registry.ts";
import {
  buildReferrer,
  buildSbomManifest,
  entriesOf,
  logText,
  MT,
  pushFallbackTag,
  pushReferrer,
  pushReferrerTree,
  tagOf,
} from "../support/supply_chain_fixture.ts";
import type { ReportEntry } from "../../lib/mirror/report.ts";

const skip = registryBinaryAvailable() ? "" : " (ignored: docker-registry is not installed)";

const counts = (e: ReportEntry) => [e.status, e.signatures, e.attestations, e.sboms, e.referrers];

/** skopeo's raw manifest of `ref` in an OCI layout, as a sha256 digest. */
async function skopeoOci(dir: string, ref: string): Promise<string> {
  const out = await new Deno.Command("skopeo", {
    args: ["inspect", "--raw", `oci:${dir}:${ref}`],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
  return sha256(out.stdout);
}

Deno.test({
  name: `signatures, attestations, SBOMs and referrers travel across the air gap${skip}`,
  ignore: Boolean(skip),
  async fn(t) {
    const src = await startRegistry({ auth: "none" });
    // The target of the export runs' config (an export writes nothing to it); every import step
    // starts a destination and run dir of its own.
    await using dst = await startRegistry({ auth: "none" });
    const dir = await Deno.makeTempDir({ prefix: "bb-airsig-" });
    const e1 = `${dir}/e1`;
    const e2 = `${dir}/e2`;
    try {
      const keyA = await makeKey(dir, "p256");
      const keyB = await makeKey(dir, "p256");
      const image = await pushTestImage(src, "team/app:1", { kind: "oci-index", seed: 61 });
      const [c1, c2] = (image.children ?? []).map((c) => c.digest);
      const signatureOf = async (key: string, reference: string, d: string) => {
        const payload = simpleSigningPayload(reference, d);
        return { payload, signature: await opensslSign(key, payload) } as FixtureSignature;
      };
      const firstSig = await signatureOf(keyA.privateKeyFile, `${src.host}/team/app`, image.digest);
      await pushSignatureManifest(
        src,
        "team/app",
        image.digest,
        buildSignatureManifest([firstSig]),
      );
      for (const d of [c1, c2]) {
        const sig = await signatureOf(keyA.privateKeyFile, `${src.host}/team/app`, d);
        await pushSignatureManifest(src, "team/app", d, buildSignatureManifest([sig]));
      }
      const att = await pushAttestationManifest(
        src,
        "team/app",
        image.digest,
        buildAttestationManifest([{
          envelope: await signedEnvelope(keyA.privateKeyFile, inTotoStatement("app", image.digest)),
          predicateType: "https://slsa.dev/provenance/v1",
        }]),
      );
      const sbomDigest = await pushManifestWithBlobs(
        src,
        `team/app:${tagOf(image.digest, ".sbom")}`,
        buildSbomManifest('{"spdxVersion":"SPDX-2.3","name":"app"}'),
      );
      const sbomSig = await signatureOf(keyA.privateKeyFile, `${src.host}/team/app`, sbomDigest);
      await pushSignatureManifest(src, "team/app", sbomDigest, buildSignatureManifest([sbomSig]));
      const subject = {
        mediaType: image.mediaType,
        digest: image.digest,
        size: (await skopeoInspectRaw(src, "team/app:1")).bytes.length,
      };
      const { bundle, sbomRef, sbomRefBundle } = await pushReferrerTree(src, "team/app", subject);

      // Every artifact as the source holds it, by the reference under team/app.
      const tags = [
        ...[image.digest, c1, c2, sbomDigest].map((d) => `:${tagOf(d, ".sig")}`),
        `:${att.tag}`,
        `:${tagOf(image.digest, ".sbom")}`,
        `:${tagOf(image.digest)}`,
        `:${tagOf(sbomRef.digest)}`,
      ];
      const refs = [...tags, ...[bundle, sbomRef, sbomRefBundle].map((r) => `@${r.digest}`)];
      const atSource = new Map<string, { digest: string; bytes: Uint8Array }>();
      for (const ref of refs) atSource.set(ref, await skopeoInspectRaw(src, `team/app${ref}`));
      const sameAsSource = async (reg: TestRegistry, ref: string) => {
        const there = await skopeoInspectRaw(reg, `mirror/app${ref}`);
        const want = atSource.get(ref);
        assert.equal(there.digest, want?.digest, ref);
        assert.deepEqual(there.bytes, want?.bytes, ref);
      };
      const config = (reg: TestRegistry, entry: Record<string, unknown> = {}) => ({
        registries: { dr: registryTarget(reg) },
        log: { dir: "./logs", level: "DEBUG" },
        operation: { engine: "registry", retryDelay: 0.05, maxRetries: 1 },
        images: { [`${src.host}/team/app:1`]: { targets: ["dr"], ...entry } },
      });
      const readExport = async (path: string) =>
        JSON.parse(await Deno.readTextFile(`${path}/bananna-export.json`));

      await t.step("export writes every artifact into the layout, counted", async () => {
        const run = await airgapCli(dir, ["export", "--to", e1], { config: config(dst) });
        assert.equal(run.code, 0, run.stderr + run.stdout);
        // .sig of the index, of both children and of the SBOM; one .att; one .sbom; 3 referrers.
        assert.deepEqual(entriesOf(run).map(counts), [["pushed", 4, 1, 1, 3]]);
        const manifest = await readExport(e1);
        assert.deepEqual(
          manifest.images.map((i: { ref: string; supplyChain: unknown }) => [i.ref, i.supplyChain]),
          [[`${src.host}/team/app:1`, { signatures: 4, attestations: 1, sboms: 1, referrers: 3 }]],
        );
        assert.deepEqual(
          manifest.artifacts.map((a: { ref: string; digest: string }) => `${a.ref} ${a.digest}`),
          tags.map((tag) => `${src.host}/team/app${tag} ${atSource.get(tag)?.digest}`).sort(),
        );
        // Referrers are blobs of the layout (no index entry of their own).
        for (const r of [bundle, sbomRef, sbomRefBundle]) {
          assert.deepEqual(
            await Deno.readFile(`${e1}/blobs/sha256/${r.digest.slice(7)}`),
            atSource.get(`@${r.digest}`)?.bytes,
          );
        }
        // skopeo reads a cosign tag of the layout by its full source reference.
        const sigTag = `:${tagOf(image.digest, ".sig")}`;
        assert.equal(
          await skopeoOci(e1, `${src.host}/team/app${sigTag}`),
          atSource.get(sigTag)?.digest,
        );
        // The export's report has a file of its own; last-report.json stays the mirror's.
        const logs = `${dir}/logs`;
        const saved = JSON.parse(await Deno.readTextFile(`${logs}/last-export-report.json`));
        assert.deepEqual(saved.entries.map(counts), [["pushed", 4, 1, 1, 3]]);
        await assert.rejects(Deno.stat(`${logs}/last-report.json`), Deno.errors.NotFound);
      });

      const e1p = `${dir}/e1-parts`;
      await t.step("export --part-size: the same artifacts, as tar parts", async () => {
        const run = await airgapCli(dir, ["export", "--to", e1p, "--part-size", "64KiB"], {
          config: config(dst),
        });
        assert.equal(run.code, 0, run.stderr + run.stdout);
        assert.deepEqual(entriesOf(run).map(counts), [["pushed", 4, 1, 1, 3]]);
        const manifest = await readExport(e1p);
        assert.ok(manifest.parts.length > 1, JSON.stringify(manifest.parts));
        assert.equal(manifest.artifacts.length, tags.length);
      });

      // Upstream appends a signature (another key) to the index's .sig after the first export.
      const secondSig = await signatureOf(keyB.privateKeyFile, "example.com/app", image.digest);
      const resigned = buildSignatureManifest([firstSig, secondSig]);
      const resignedDigest = sha256(resigned.manifest);
      await pushSignatureManifest(src, "team/app", image.digest, resigned);
      const newSigTag = `:${tagOf(image.digest, ".sig")}`;
      const firstSigDigest = atSource.get(newSigTag)?.digest;
      const resignedAtSource = await skopeoInspectRaw(src, `team/app${newSigTag}`);
      assert.equal(resignedAtSource.digest, resignedDigest);

      await t.step("export --since carries only the new signature", async () => {
        const run = await airgapCli(
          dir,
          ["export", "--to", e2, "--since", `${e1}/bananna-export.json`],
          { config: config(dst) },
        );
        assert.equal(run.code, 0, run.stderr + run.stdout);
        assert.deepEqual(entriesOf(run).map((e) => counts(e).slice(1)), [[4, 1, 1, 3]]);
        const manifest = await readExport(e2);
        // The new .sig manifest, its config (diff_ids) and the new payload, and the image's own
        // manifests (the index and its children: every listed image's are carried); nothing else.
        assert.deepEqual(
          manifest.blobs.map((b: { digest: string }) => b.digest),
          [
            image.digest,
            c1,
            c2,
            resignedDigest,
            ...resigned.blobs.slice(0, 1).map(sha256),
            sha256(secondSig.payload),
          ].sort(),
        );
        const sig = manifest.artifacts.find((a: { ref: string }) =>
          a.ref === `${src.host}/team/app${newSigTag}`
        );
        assert.equal(sig?.digest, resignedDigest);
      });

      await src.stop();

      await t.step("import (source stopped) lands every artifact byte-identical", async () => {
        await using dest = await startDestination({ auth: "none" });
        const run = await airgapCli(dest.dir, ["import", "--from", e1], {
          config: config(dest.reg),
        });
        assert.equal(run.code, 0, run.stderr + run.stdout);
        assert.deepEqual(entriesOf(run).map(counts), [["pushed", 4, 1, 1, 3]]);
        for (const ref of refs) await sameAsSource(dest.reg, ref);
        assert.match(
          run.stdout + run.stderr,
          /Supply chain: +4 signatures, 1 attestations, 1 SBOMs, 3 referrers/,
        );
        const log = await logText(dest.dir);
        assert.match(log, /\[IMAGE_SIGNATURE_COPIED\]/);
        assert.match(log, /\[IMAGE_REFERRER_COPIED\]/);
      });

      await t.step(
        "importing the --since export lands the new signature, nothing else",
        async () => {
          // The destination holds the first export's import (as the drift step below does).
          await using dest = await startDestination({ auth: "none" });
          const dst = dest.reg;
          const first = await airgapCli(dest.dir, ["import", "--from", e1], {
            config: config(dst),
          });
          assert.equal(first.code, 0, first.stderr + first.stdout);
          const before = (await writes(dst)).length;
          const run = await airgapCli(dest.dir, ["import", "--from", e2], { config: config(dst) });
          assert.equal(run.code, 0, run.stderr + run.stdout);
          assert.deepEqual(entriesOf(run).map(counts), [["exists", 4, 1, 1, 3]]);
          const there = await skopeoInspectRaw(dst, `mirror/app${newSigTag}`);
          assert.equal(there.digest, resignedDigest);
          assert.deepEqual(there.bytes, resignedAtSource.bytes);
          const manifestPuts = (await writes(dst)).slice(before).filter((l) =>
            l.startsWith("PUT ") && l.includes("/manifests/")
          );
          assert.deepEqual(manifestPuts.map((l) => l.split(" ")[1]), [
            `/v2/mirror/app/manifests/${tagOf(image.digest, ".sig")}`,
          ]);
        },
      );

      await t.step("a signature added only at the destination survives (drift)", async () => {
        await using dest = await startDestination({ auth: "none" });
        const dst2 = dest.reg;
        const first = await airgapCli(dest.dir, ["import", "--from", e1], {
          config: config(dst2),
        });
        assert.equal(first.code, 0, first.stderr + first.stdout);
        assert.equal(await headDigest(dst2, `mirror/app${newSigTag}`), firstSigDigest);
        // The mirror's own signature appended to the index's .sig (as cosign sign does).
        const mine = await signatureOf(
          keyB.privateKeyFile,
          `${dst2.host}/mirror/app`,
          image.digest,
        );
        const localDigest = await pushManifestWithBlobs(
          dst2,
          `mirror/app${newSigTag}`,
          buildSignatureManifest([firstSig, mine]),
        );
        // c1's .sig (unchanged upstream: the --since export lists it, the first one carried it)
        // and the index's fallback index get the mirror's own additions too.
        const c1Tag = `:${tagOf(c1, ".sig")}`;
        const c1Local = await pushManifestWithBlobs(
          dst2,
          `mirror/app${c1Tag}`,
          buildSignatureManifest([await signatureOf(keyB.privateKeyFile, "mirror", c1)]),
        );
        const localRef = await pushReferrer(
          dst2,
          "mirror/app",
          buildReferrer({ subject, artifactType: MT.bundle, content: '{"bundle":"mirror"}' }),
        );
        const fallback = `:${tagOf(image.digest)}`;
        const localIndex = await pushFallbackTag(dst2, "mirror/app", image.digest, [
          bundle,
          sbomRef,
          localRef,
        ]);
        const run = await airgapCli(dest.dir, ["import", "--from", e2], { config: config(dst2) });
        assert.equal(run.code, 0, run.stderr + run.stdout);
        // Two .sig not in step (drift): 2 signatures; referrers: the destination's 3 + 1 below.
        assert.deepEqual(entriesOf(run).map(counts), [["exists", 2, 1, 1, 4]]);
        assert.equal(await headDigest(dst2, `mirror/app${newSigTag}`), localDigest);
        assert.equal(await headDigest(dst2, `mirror/app${c1Tag}`), c1Local);
        assert.equal(await headDigest(dst2, `mirror/app${fallback}`), localIndex);
        const log = await logText(dest.dir);
        assert.match(
          log,
          new RegExp(
            `\\[WARNING\\] \\[IMAGE_TAG_DRIFT\\] Image: ${dst2.host}/mirror/app${newSigTag} holds ${localDigest} with signatures the source's ${resignedDigest} \\(${src.host}/team/app${newSigTag}\\) lacks; left untouched`,
          ),
        );
        assert.match(
          log,
          new RegExp(
            `\\[WARNING\\] \\[IMAGE_TAG_DRIFT\\] Image: ${dst2.host}/mirror/app${c1Tag} holds ${c1Local}; the source's ${
              atSource.get(c1Tag)?.digest
            } \\(${src.host}/team/app${c1Tag}\\) was carried by an earlier export, not this one; left untouched`,
          ),
        );
      });

      await t.step("import verifies with the layout's signatures", async () => {
        await using dest = await startDestination({ auth: "none" });
        const dst3 = dest.reg;
        const wrong = await airgapCli(dest.dir, ["import", "--from", e1], {
          config: config(dst3, { verify: { cosignKey: keyB.publicKeyFile } }),
        });
        assert.equal(wrong.code, 1, wrong.stderr + wrong.stdout);
        const [entry] = entriesOf(wrong);
        assert.equal(entry.status, "failed");
        assert.equal(entry.code, "IMAGE_SIGNATURE_INVALID");
        assert.deepEqual(await writes(dst3), []);
        // From the tar parts this time: the signatures travel in them too.
        const good = await airgapCli(dest.dir, [
          "import",
          "--from",
          `${e1p}/bananna-export.tar.000`,
        ], {
          config: config(dst3, { verify: { cosignKey: keyA.publicKeyFile } }),
        });
        assert.equal(good.code, 0, good.stderr + good.stdout);
        assert.deepEqual(entriesOf(good).map(counts), [["pushed", 4, 1, 1, 3]]);
        for (const ref of refs) await sameAsSource(dst3, ref);
        assert.match(await logText(dest.dir), /team\/app.*: signed by key /);
      });
    } finally {
      await src.stop().catch(() => {});
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    `import with signatures: require refuses an unsigned image, nothing written; export of it warns${skip}`,
  ignore: Boolean(skip),
  async fn() {
    const src = await startRegistry({ auth: "none" });
    await using dst = await startRegistry({ auth: "none" });
    const dir = await Deno.makeTempDir({ prefix: "bb-airsig-unsigned-" });
    const out = `${dir}/export`;
    try {
      await pushTestImage(src, "team/plain:1", { kind: "oci", seed: 62 });
      const config = (signatures: string) => ({
        registries: { dr: registryTarget(dst) },
        log: { dir: "./logs", level: "DEBUG" },
        operation: { engine: "registry", retryDelay: 0.05, maxRetries: 1, signatures },
        images: { [`${src.host}/team/plain:1`]: { targets: ["dr"] } },
      });
      const exported = await airgapCli(dir, ["export", "--to", out], { config: config("copy") });
      assert.equal(exported.code, 0, exported.stderr + exported.stdout);
      assert.deepEqual(entriesOf(exported).map(counts), [["pushed", 0, 0, 0, 0]]);
      assert.match(await logText(dir), /\[INFO\] \[IMAGE_UNSIGNED\] \w+: 1 of 1 image x target/);
      const manifest = JSON.parse(await Deno.readTextFile(`${out}/bananna-export.json`));
      assert.deepEqual(manifest.artifacts, []);
      await src.stop();
      const run = await airgapCli(dir, ["import", "--from", out], { config: config("require") });
      assert.equal(run.code, 1, run.stderr + run.stdout);
      const [entry] = entriesOf(run);
      assert.equal(entry.status, "failed");
      assert.equal(entry.code, "IMAGE_UNSIGNED");
      assert.deepEqual(await writes(dst), []);
    } finally {
      await src.stop().catch(() => {});
      await Deno.remove(dir, { recursive: true });
    }
  },
});
