/**
 * fetchImageSignatures() against a real docker-registry: `.sig` manifests in cosign's format pushed
 * by the fixture (tests/support/cosign_fixture.ts), read back, verified; absent tags, caps, size
 * lies and garbage annotations refused with their codes.
 */
import assert from "node:assert/strict";
import { MirrorError } from "../../lib/errors.ts";
import { Secrets } from "../../lib/log/redact.ts";
import { RegistryClient } from "../../lib/registry/registry_client.ts";
import { verifyImageSignatures } from "../../lib/signatures/cosign.ts";
import { fetchImageAttestations, fetchImageSignatures } from "../../lib/signatures/cosign_fetch.ts";
import { verifyAttestation } from "../../lib/signatures/dsse.ts";
import { loadCosignPublicKey } from "../../lib/signatures/cosign_key.ts";
import {
  buildAttestationManifest,
  buildSignatureManifest,
  inTotoStatement,
  makeKey,
  opensslFingerprint,
  opensslSign,
  pushAttestationManifest,
  pushSignatureManifest,
  signedEnvelope,
  simpleSigningPayload,
} from "../support/cosign_fixture.ts";
import { pushManifestWithBlobs, pushTestImage, sha256 } from "../support/images.ts";
import { registryBinaryAvailable, startRegistry, type TestRegistry } from "../support/registry.ts";

const skip = registryBinaryAvailable() ? "" : " (ignored: docker-registry is not installed)";
const dir = await Deno.makeTempDir({ prefix: "cosign-fetch-test-" });
globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
const first = await makeKey(dir, "p256");
const second = await makeKey(dir, "p256");

function client(reg: TestRegistry) {
  return new RegistryClient({
    host: reg.host,
    scheme: reg.scheme,
    credential: null,
    maxRetries: 0,
    secrets: new Secrets(),
  });
}

function assertCode(code: string, pattern?: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof MirrorError, String(e));
    assert.equal(e.code, code, e.message);
    if (pattern) assert.match(e.message, pattern);
    return true;
  };
}

Deno.test(
  `fetchImageSignatures() reads two signatures of an image and each key verifies one${skip}`,
  {
    ignore: skip !== "",
  },
  async () => {
    await using reg = await startRegistry();
    const image = await pushTestImage(reg, "app:1", {
      kind: "oci-index",
      seed: 3,
      layers: 1,
      layerSize: 512,
    });
    const payload = simpleSigningPayload(`${reg.host}/app`, image.digest);
    const built = buildSignatureManifest([
      { payload, signature: await opensslSign(first.privateKeyFile, payload) },
      { payload, signature: await opensslSign(second.privateKeyFile, payload) },
    ]);
    const pushed = await pushSignatureManifest(reg, "app", image.digest, built);
    const c = client(reg);
    try {
      const found = await fetchImageSignatures(c, { repository: "app", digest: image.digest });
      assert.ok(found);
      assert.equal(found.tag, pushed.tag);
      assert.equal(found.manifestDigest, sha256(built.manifest));
      assert.equal(found.signatures.length, 2);
      assert.deepEqual(found.signatures[0].payload, payload);
      for (const signer of [first, second]) {
        const key = await loadCosignPublicKey(signer.publicPem);
        assert.deepEqual(
          await verifyImageSignatures({
            keys: [key],
            digest: image.digest,
            signatures: found.signatures,
          }),
          { ok: true, keyFingerprint: await opensslFingerprint(signer.publicKeyFile) },
        );
      }
      // a child of the index has no .sig tag of its own
      const child = image.children?.[0].digest ?? "";
      assert.equal(await fetchImageSignatures(c, { repository: "app", digest: child }), null);
    } finally {
      c.close();
    }
  },
);

Deno.test(
  `fetchImageSignatures() refuses a payload past the cap, a size lie and garbage annotations${skip}`,
  {
    ignore: skip !== "",
  },
  async () => {
    await using reg = await startRegistry();
    const image = await pushTestImage(reg, "app:1", {
      kind: "oci",
      seed: 4,
      layers: 1,
      layerSize: 512,
    });
    const payload = simpleSigningPayload(`${reg.host}/app`, image.digest);
    const signature = await opensslSign(first.privateKeyFile, payload);
    const c = client(reg);
    try {
      await pushSignatureManifest(
        reg,
        "app",
        image.digest,
        buildSignatureManifest([{ payload, signature }]),
      );
      await assert.rejects(
        () =>
          fetchImageSignatures(c, {
            repository: "app",
            digest: image.digest,
            maxPayloadBytes: 100,
          }),
        assertCode("IMAGE_MANIFEST_TOO_LARGE", /more than the 100-byte cap/),
      );

      // the descriptor claims fewer bytes than the blob holds
      const built = buildSignatureManifest([{ payload, signature }]);
      const lie = JSON.parse(new TextDecoder().decode(built.manifest));
      lie.layers[0].size = payload.length - 10;
      const lying = { ...built, manifest: new TextEncoder().encode(JSON.stringify(lie)) };
      await pushSignatureManifest(reg, "app", image.digest, lying);
      await assert.rejects(
        () => fetchImageSignatures(c, { repository: "app", digest: image.digest }),
        assertCode("IMAGE_DIGEST_MISMATCH", /more than the descriptor.s \d+ bytes/),
      );

      const garbage = buildSignatureManifest([{ payload, signatureAnnotation: "not//base64!" }]);
      await pushSignatureManifest(reg, "app", image.digest, garbage);
      await assert.rejects(
        () => fetchImageSignatures(c, { repository: "app", digest: image.digest }),
        assertCode(
          "IMAGE_SIGNATURE_INVALID",
          /layers\[0\]: dev\.cosignproject\.cosign\/signature is not base64/,
        ),
      );

      await assert.rejects(
        () => fetchImageSignatures(c, { repository: "app", digest: "sha256:nope" }),
        assertCode("IMAGE_MANIFEST_INVALID"),
      );
    } finally {
      c.close();
    }
  },
);

Deno.test(
  `fetchImageAttestations() reads a .att manifest's DSSE envelopes; the key verifies the one naming the image${skip}`,
  {
    ignore: skip !== "",
  },
  async () => {
    await using reg = await startRegistry();
    const image = await pushTestImage(reg, "app:1", {
      kind: "oci",
      seed: 5,
      layers: 1,
      layerSize: 512,
    });
    const other = await pushTestImage(reg, "app:2", {
      kind: "oci",
      seed: 6,
      layers: 1,
      layerSize: 512,
    });
    const good = await signedEnvelope(first.privateKeyFile, inTotoStatement("app", image.digest));
    const built = buildAttestationManifest([
      { envelope: good, predicateType: "https://slsa.dev/provenance/v1" },
    ]);
    const pushed = await pushAttestationManifest(reg, "app", image.digest, built);
    assert.equal(pushed.tag, `sha256-${image.digest.slice(7)}.att`);
    // the other image's .att holds an envelope about the first image
    await pushAttestationManifest(reg, "app", other.digest, built);
    // a .att whose envelope is garbage
    const third = await pushTestImage(reg, "app:3", {
      kind: "oci",
      seed: 7,
      layers: 1,
      layerSize: 512,
    });
    await pushAttestationManifest(
      reg,
      "app",
      third.digest,
      buildAttestationManifest([{ envelope: new TextEncoder().encode("[1]"), predicateType: "x" }]),
    );
    const c = client(reg);
    try {
      const key = await loadCosignPublicKey(first.publicPem);
      const wrong = await loadCosignPublicKey(second.publicPem);
      const found = await fetchImageAttestations(c, { repository: "app", digest: image.digest });
      assert.ok(found);
      assert.equal(found.manifestDigest, sha256(built.manifest));
      assert.equal(found.envelopes.length, 1);
      assert.equal(found.envelopes[0].payloadType, "application/vnd.in-toto+json");
      assert.deepEqual(
        await verifyAttestation({ keys: [key], digest: image.digest, envelopes: found.envelopes }),
        { ok: true, keyFingerprint: await opensslFingerprint(first.publicKeyFile) },
      );
      const byWrong = await verifyAttestation({
        keys: [wrong],
        digest: image.digest,
        envelopes: found.envelopes,
      });
      assert.equal(byWrong.ok ? "ok" : byWrong.reason, "bad signature");
      const misplaced = await fetchImageAttestations(c, {
        repository: "app",
        digest: other.digest,
      });
      assert.ok(misplaced);
      const mismatch = await verifyAttestation({
        keys: [key],
        digest: other.digest,
        envelopes: misplaced.envelopes,
      });
      assert.equal(mismatch.ok ? "ok" : mismatch.reason, "digest mismatch");
      await assert.rejects(
        () => fetchImageAttestations(c, { repository: "app", digest: third.digest }),
        assertCode("IMAGE_SIGNATURE_INVALID", /layers\[0\]: not a DSSE envelope/),
      );
      // an index where the .att manifest belongs
      const index = new TextEncoder().encode(JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.index.v1+json",
        manifests: [],
      }));
      await pushManifestWithBlobs(reg, `app:sha256-${third.digest.slice(7)}.att`, {
        mediaType: "application/vnd.oci.image.index.v1+json",
        manifest: index,
        blobs: [],
      });
      await assert.rejects(
        () => fetchImageAttestations(c, { repository: "app", digest: third.digest }),
        assertCode("IMAGE_SIGNATURE_INVALID", /a \.att manifest, not an index$/),
      );
      const child = `sha256:${"e".repeat(64)}`;
      assert.equal(await fetchImageAttestations(c, { repository: "app", digest: child }), null);
    } finally {
      c.close();
    }
  },
);
