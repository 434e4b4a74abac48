/**
 * cosign's tag scheme, `.sig` manifests, simple-signing payloads and the image verdict. Keys and
 * signatures come from openssl, payloads and manifests from tests/support/cosign_fixture.ts
 * (cosign's byte format written out), so the signing side is independent of lib/signatures. The
 * last test pushes a real `.sig` manifest to a real docker-registry and verifies what comes back.
 */
import assert from "node:assert/strict";
import { MirrorError } from "../../lib/errors.ts";
import {
  cosignTags,
  parseSignatureManifest,
  parseSimpleSigningPayload,
  verifyImageSignatures,
} from "../../lib/signatures/cosign.ts";
import { loadCosignPublicKey } from "../../lib/signatures/cosign_key.ts";
import {
  buildSignatureManifest,
  makeKey,
  opensslFingerprint,
  opensslSign,
  pushSignatureManifest,
  simpleSigningPayload,
} from "../support/cosign_fixture.ts";
import { pushTestImage, sha256 } from "../support/images.ts";
import { clientOf, registryBinaryAvailable, startRegistry } from "../support/registry.ts";

const skip = registryBinaryAvailable() ? "" : " (ignored: docker-registry is not installed)";
const dir = await Deno.makeTempDir({ prefix: "cosign-test-" });
globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
const signer = await makeKey(dir, "p256");
const stranger = await makeKey(dir, "p256");
const HEX = "97fc3c4e2a1b5d6f80910a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e36";
const DIGEST = `sha256:${HEX}`;
const OTHER = `sha256:${"0".repeat(63)}1`;

function assertCode(code: string, pattern?: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof MirrorError, String(e));
    assert.equal(e.code, code, e.message);
    if (pattern) assert.match(e.message, pattern);
    return true;
  };
}

Deno.test("cosignTags() names the .sig, .att and .sbom tags of a digest", () => {
  assert.deepEqual(cosignTags(DIGEST), {
    sig: "sha256-97fc3c4e2a1b5d6f80910a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e36.sig",
    att: "sha256-97fc3c4e2a1b5d6f80910a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e36.att",
    sbom: "sha256-97fc3c4e2a1b5d6f80910a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e36.sbom",
  });
  assert.equal(cosignTags(DIGEST).sig.length, 75);
});

Deno.test("cosignTags() refuses what is not a digest (no tag built from it)", () => {
  for (const bad of ["latest", "sha256:abc", `sha256:${HEX.toUpperCase()}`, `md5:${HEX}`, ""]) {
    assert.throws(() => cosignTags(bad), assertCode("IMAGE_MANIFEST_INVALID"), bad);
  }
  assert.throws(
    () => cosignTags(`sha256:${HEX}/../../other/manifests/x`),
    assertCode("IMAGE_MANIFEST_INVALID"),
  );
});

Deno.test("parseSignatureManifest() returns each simple-signing layer with its decoded signature and annotations", () => {
  const payload = simpleSigningPayload("quay.io/org/app", DIGEST);
  const signature = new Uint8Array([0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x02]);
  const built = buildSignatureManifest([{
    payload,
    signature,
    annotations: { "dev.sigstore.cosign/bundle": '{"SignedEntryTimestamp":"x"}' },
  }]);
  const layers = parseSignatureManifest(built.manifest, "app.sig");
  assert.equal(layers.length, 1);
  const { mediaType, digest, size } = layers[0].descriptor;
  assert.deepEqual({ mediaType, digest, size }, {
    mediaType: "application/vnd.dev.cosign.simplesigning.v1+json",
    // printf '%s' "$payload" | sha256sum / wc -c
    digest: "sha256:1c895aee06391249d2814335d264c9eccc5b3d18a66775a144a7769dc572b1e0",
    size: 231,
  });
  assert.deepEqual(layers[0].signature, signature);
  assert.equal(layers[0].bundle, '{"SignedEntryTimestamp":"x"}');
  assert.equal(layers[0].certificate, undefined);
  assert.deepEqual(layers[0].annotations, {
    "dev.cosignproject.cosign/signature": "MAYCAQECAQI=",
    "dev.sigstore.cosign/bundle": '{"SignedEntryTimestamp":"x"}',
  });
});

Deno.test("parseSignatureManifest() refuses garbage annotations with IMAGE_SIGNATURE_INVALID, naming the layer", () => {
  const payload = simpleSigningPayload("quay.io/org/app", DIGEST);
  const rows: [string, Parameters<typeof buildSignatureManifest>[0][0], RegExp][] = [
    [
      "not base64",
      { payload, signatureAnnotation: "%%% not base64 %%%" },
      /layers\[0\]: .* is not base64/,
    ],
    ["bad padding", { payload, signatureAnnotation: "MAYCAQECAQI" }, /is not base64/],
    ["empty signature", { payload, signatureAnnotation: "" }, /is not base64/],
    [
      "annotations not an object",
      { payload, annotations: null },
      /layers\[0\]\.annotations is not an object/,
    ],
    [
      "a non-string annotation",
      { payload, signature: new Uint8Array([1]), annotations: { "x": 5 } },
      /layers\[0\]\.annotations\["x"\] is not a string/,
    ],
  ];
  for (const [name, sig, pattern] of rows) {
    const built = buildSignatureManifest([sig]);
    assert.throws(
      () => parseSignatureManifest(built.manifest, "repo:sha256-x.sig"),
      assertCode("IMAGE_SIGNATURE_INVALID", pattern),
      name,
    );
  }
  // no signature annotation at all
  const missing = new TextEncoder().encode(JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: DIGEST, size: 2 },
    layers: [{
      mediaType: "application/vnd.dev.cosign.simplesigning.v1+json",
      digest: DIGEST,
      size: 10,
      annotations: { "dev.sigstore.cosign/bundle": "{}" },
    }],
  }));
  assert.throws(
    () => parseSignatureManifest(missing, "s.sig"),
    assertCode(
      "IMAGE_SIGNATURE_INVALID",
      /^s\.sig: layers\[0\] has no dev\.cosignproject\.cosign\/signature annotation$/,
    ),
  );
  // an index where a .sig manifest belongs; and bytes that are not a manifest
  const index = new TextEncoder().encode(JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.index.v1+json",
    manifests: [],
  }));
  assert.throws(
    () => parseSignatureManifest(index, "s.sig"),
    assertCode("IMAGE_SIGNATURE_INVALID"),
  );
  assert.throws(
    () => parseSignatureManifest(new TextEncoder().encode("{nope"), "s.sig"),
    assertCode("IMAGE_MANIFEST_INVALID"),
  );
});

Deno.test("parseSimpleSigningPayload() reads cosign's payload and refuses other shapes", () => {
  assert.deepEqual(
    parseSimpleSigningPayload(simpleSigningPayload("index.docker.io/library/nginx", DIGEST), "p"),
    {
      dockerReference: "index.docker.io/library/nginx",
      manifestDigest: DIGEST,
      type: "cosign container image signature",
      optional: null,
    },
  );
  const withOptional = new TextEncoder().encode(
    `{"critical":{"identity":{"docker-reference":"a/b"},"image":{"docker-manifest-digest":"${DIGEST}"},"type":"cosign container image signature"},"optional":{"env":"prod"}}`,
  );
  assert.deepEqual(parseSimpleSigningPayload(withOptional, "p").optional, { env: "prod" });
  const rows: [string, string, RegExp][] = [
    ["not JSON", "{", /^p: the payload is not JSON$/],
    ["not an object", "[]", /not a simple-signing payload/],
    [
      "no digest",
      `{"critical":{"identity":{"docker-reference":"a"},"image":{},"type":"cosign container image signature"}}`,
      /not a simple-signing payload/,
    ],
    [
      "digest not a string",
      `{"critical":{"identity":{"docker-reference":"a"},"image":{"docker-manifest-digest":5},"type":"cosign container image signature"}}`,
      /not a simple-signing payload/,
    ],
    [
      "other type",
      `{"critical":{"identity":{"docker-reference":"a"},"image":{"docker-manifest-digest":"${DIGEST}"},"type":"atomic container signature"}}`,
      /critical\.type is "atomic container signature"/,
    ],
    [
      "optional a string",
      `{"critical":{"identity":{"docker-reference":"a"},"image":{"docker-manifest-digest":"${DIGEST}"},"type":"cosign container image signature"},"optional":"x"}`,
      /optional must be an object or null/,
    ],
  ];
  for (const [name, text, pattern] of rows) {
    assert.throws(
      () => parseSimpleSigningPayload(new TextEncoder().encode(text), "p"),
      assertCode("IMAGE_SIGNATURE_INVALID", pattern),
      name,
    );
  }
});

Deno.test("verifyImageSignatures() passes a good key, any one of several, with that key's fingerprint", async () => {
  const key = await loadCosignPublicKey(signer.publicPem);
  const wrong = await loadCosignPublicKey(stranger.publicPem);
  const payload = simpleSigningPayload("127.0.0.1:5000/app", DIGEST);
  const signature = await opensslSign(signer.privateKeyFile, payload);
  const expected = await opensslFingerprint(signer.publicKeyFile);
  assert.deepEqual(
    await verifyImageSignatures({
      keys: [key],
      digest: DIGEST,
      signatures: [{ payload, signature }],
    }),
    { ok: true, keyFingerprint: expected },
  );
  assert.deepEqual(
    await verifyImageSignatures({
      keys: [wrong, key],
      digest: DIGEST,
      signatures: [{ payload, signature: new Uint8Array([0x30, 0x00]) }, { payload, signature }],
    }),
    { ok: true, keyFingerprint: expected },
  );
});

Deno.test("verifyImageSignatures() refuses a wrong key, a tampered payload, another digest and no signature", async () => {
  const key = await loadCosignPublicKey(signer.publicPem);
  const wrong = await loadCosignPublicKey(stranger.publicPem);
  const fpKey = await opensslFingerprint(signer.publicKeyFile);
  const fpWrong = await opensslFingerprint(stranger.publicKeyFile);
  const payload = simpleSigningPayload("127.0.0.1:5000/app", DIGEST);
  const signature = await opensslSign(signer.privateKeyFile, payload);

  assert.deepEqual(
    await verifyImageSignatures({
      keys: [wrong],
      digest: DIGEST,
      signatures: [{ payload, signature }],
    }),
    {
      ok: false,
      code: "IMAGE_SIGNATURE_INVALID",
      reason: "bad signature",
      keyFingerprints: [fpWrong],
    },
  );
  const tampered = simpleSigningPayload("127.0.0.1:5000/evil", DIGEST);
  assert.deepEqual(
    await verifyImageSignatures({
      keys: [key],
      digest: DIGEST,
      signatures: [{ payload: tampered, signature }],
    }),
    {
      ok: false,
      code: "IMAGE_SIGNATURE_INVALID",
      reason: "bad signature",
      keyFingerprints: [fpKey],
    },
  );
  // correctly signed, but for another image
  const forOther = simpleSigningPayload("127.0.0.1:5000/app", OTHER);
  const otherSig = await opensslSign(signer.privateKeyFile, forOther);
  assert.deepEqual(
    await verifyImageSignatures({
      keys: [key],
      digest: DIGEST,
      signatures: [{ payload: forOther, signature: otherSig }],
    }),
    {
      ok: false,
      code: "IMAGE_SIGNATURE_INVALID",
      reason: "digest mismatch",
      keyFingerprints: [fpKey],
    },
  );
  // correctly signed bytes that are not a cosign payload
  const notPayload = new TextEncoder().encode('{"critical":{}}');
  const notPayloadSig = await opensslSign(signer.privateKeyFile, notPayload);
  assert.deepEqual(
    await verifyImageSignatures({
      keys: [key],
      digest: DIGEST,
      signatures: [{ payload: notPayload, signature: notPayloadSig }],
    }),
    {
      ok: false,
      code: "IMAGE_SIGNATURE_INVALID",
      reason: "digest mismatch",
      keyFingerprints: [fpKey],
    },
  );
  assert.deepEqual(
    await verifyImageSignatures({ keys: [key, wrong], digest: DIGEST, signatures: [] }),
    {
      ok: false,
      code: "IMAGE_UNSIGNED",
      reason: "no signature",
      keyFingerprints: [fpKey, fpWrong],
    },
  );
  await assert.rejects(
    () => verifyImageSignatures({ keys: [], digest: DIGEST, signatures: [{ payload, signature }] }),
    assertCode("CONFIG_INVALID"),
  );
});

Deno.test(
  `a .sig manifest in cosign's format pushed next to an image on a real registry verifies after reading it back through RegistryClient${skip}`,
  {
    ignore: skip !== "",
  },
  async () => {
    await using reg = await startRegistry({ auth: "htpasswd" });
    const image = await pushTestImage(reg, "team/app:1.0", {
      kind: "oci",
      seed: 13,
      layers: 1,
      layerSize: 1024,
    });
    const payload = simpleSigningPayload(`${reg.host}/team/app`, image.digest);
    const signature = await opensslSign(signer.privateKeyFile, payload);
    const pushed = await pushSignatureManifest(
      reg,
      "team/app",
      image.digest,
      buildSignatureManifest([{ payload, signature }]),
    );
    assert.equal(pushed.tag, `sha256-${image.digest.slice("sha256:".length)}.sig`);

    const client = clientOf(reg);
    try {
      const tag = cosignTags(image.digest).sig;
      assert.equal(tag, pushed.tag);
      assert.ok((await client.tagList("team/app")).includes(tag));
      const manifest = await client.manifestGet("team/app", tag);
      assert.ok(manifest);
      assert.equal(manifest.digest, pushed.digest);
      const layers = parseSignatureManifest(manifest.bytes, `team/app:${tag}`);
      assert.equal(layers.length, 1);
      assert.equal(layers[0].descriptor.digest, sha256(payload));
      const blob = await client.blobGet("team/app", layers[0].descriptor.digest);
      const bytes = new Uint8Array(await new Response(blob.body).arrayBuffer());
      assert.deepEqual(bytes, payload);
      const key = await loadCosignPublicKey(signer.publicPem);
      const wrong = await loadCosignPublicKey(stranger.publicPem);
      const signatures = layers.map((l) => ({ payload: bytes, signature: l.signature }));
      assert.deepEqual(
        await verifyImageSignatures({ keys: [key], digest: image.digest, signatures }),
        {
          ok: true,
          keyFingerprint: await opensslFingerprint(signer.publicKeyFile),
        },
      );
      const refused = await verifyImageSignatures({
        keys: [wrong],
        digest: image.digest,
        signatures,
      });
      assert.equal(refused.ok, false);
      // the image's other digest (another tag) is not covered by this signature
      const other = await pushTestImage(reg, "team/app:2.0", {
        kind: "oci",
        seed: 14,
        layers: 1,
        layerSize: 1024,
      });
      assert.equal(await client.manifestHead("team/app", cosignTags(other.digest).sig), null);
      const mismatch = await verifyImageSignatures({
        keys: [key],
        digest: other.digest,
        signatures,
      });
      assert.deepEqual(mismatch.ok ? null : mismatch.reason, "digest mismatch");
    } finally {
      client.close();
    }
  },
);
