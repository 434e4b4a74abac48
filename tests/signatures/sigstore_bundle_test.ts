/**
 * lib/signatures/sigstore_bundle.ts on its own: bundles built by tests/support/bundle_fixture.ts
 * (openssl-signed, cosign v3's shape) and garbage. Every expected value is written out.
 */
import assert from "node:assert/strict";
import { MirrorError } from "../../lib/errors.ts";
import { loadCosignPublicKey } from "../../lib/signatures/cosign_key.ts";
import {
  bundleNamesDigest,
  parseSigstoreBundle,
  verifyBundles,
} from "../../lib/signatures/sigstore_bundle.ts";
import { buildBundle, cosignSignStatement } from "../support/bundle_fixture.ts";
import { encodeBase64, makeKey, opensslFingerprint } from "../support/cosign_fixture.ts";

const DIGEST = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const OTHER = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json";

function text(value: unknown): Uint8Array {
  return new TextEncoder().encode(typeof value === "string" ? value : JSON.stringify(value));
}

function refused(bytes: Uint8Array, message: string) {
  assert.throws(
    () => parseSigstoreBundle(bytes, "b"),
    (e) =>
      e instanceof MirrorError && e.code === "IMAGE_SIGNATURE_INVALID" && e.message === message,
  );
}

const ENVELOPE = {
  payload: encodeBase64(cosignSignStatement("r/app", DIGEST)),
  payloadType: "application/vnd.in-toto+json",
  signatures: [{ sig: "MEUCIQ==" }],
};

Deno.test("parseSigstoreBundle refuses garbage by name", () => {
  refused(text("{"), "b: the bundle is not JSON");
  refused(text([1]), "b: the bundle is not a JSON object");
  refused(
    text({ mediaType: "application/json" }),
    'b: mediaType "application/json" is not a sigstore bundle type',
  );
  refused(text({ mediaType: BUNDLE }), "b: verificationMaterial is not an object");
  refused(
    text({ mediaType: BUNDLE, verificationMaterial: {} }),
    "b: verificationMaterial holds no publicKey, certificate or x509CertificateChain",
  );
  refused(
    text({ mediaType: BUNDLE, verificationMaterial: { publicKey: { hint: 7 } } }),
    "b: verificationMaterial.publicKey.hint is not a string",
  );
  refused(
    text({
      mediaType: BUNDLE,
      verificationMaterial: { publicKey: {} },
      messageSignature: { signature: "AA==" },
    }),
    "b: no dsseEnvelope; a messageSignature (a signed blob) is not an image signature",
  );
  refused(
    text({
      mediaType: BUNDLE,
      verificationMaterial: { publicKey: {} },
      dsseEnvelope: { ...ENVELOPE, payload: "%%%" },
    }),
    "b: dsseEnvelope: payload is not base64",
  );
});

Deno.test("parseSigstoreBundle reads the v0.3 and older media types, key and certificate material", () => {
  for (const mediaType of [BUNDLE, "application/vnd.dev.sigstore.bundle+json;version=0.2"]) {
    const parsed = parseSigstoreBundle(
      text({
        mediaType,
        verificationMaterial: { publicKey: { hint: "aGk=" } },
        dsseEnvelope: ENVELOPE,
      }),
      "b",
    );
    assert.equal(parsed.mediaType, mediaType);
    assert.deepEqual(parsed.material, { kind: "publicKey", hint: "aGk=" });
    assert.equal(bundleNamesDigest(parsed, DIGEST), true);
    assert.equal(bundleNamesDigest(parsed, OTHER), false);
  }
  const chain = parseSigstoreBundle(
    text({
      mediaType: BUNDLE,
      verificationMaterial: { x509CertificateChain: { certificates: [] } },
      dsseEnvelope: ENVELOPE,
    }),
    "b",
  );
  assert.deepEqual(chain.material, { kind: "certificate" });
});

Deno.test("verifyBundles: key, subject, predicate and keyless verdicts", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bb-bundle-unit-" });
  try {
    const a = await makeKey(dir, "p256");
    const b = await makeKey(dir, "p256");
    const fpA = await opensslFingerprint(a.publicKeyFile);
    const keyA = await loadCosignPublicKey(a.publicPem);
    const bundle = async (options: Partial<Parameters<typeof buildBundle>[0]> = {}) =>
      parseSigstoreBundle(
        await buildBundle({ key: a, statement: cosignSignStatement("r/app", DIGEST), ...options }),
        "b",
      );
    const verify = async (...bundles: Awaited<ReturnType<typeof bundle>>[]) =>
      await verifyBundles({ keys: [keyA], digest: DIGEST, bundles });
    const failed = (code: string, reason: string) => ({
      ok: false,
      code,
      reason,
      keyFingerprints: [fpA],
    });
    assert.deepEqual(await verify(await bundle()), { ok: true, keyFingerprint: fpA });
    assert.deepEqual(await verify(), failed("IMAGE_UNSIGNED", "no signature"));
    assert.deepEqual(
      await verify(await bundle({ key: b })),
      failed("IMAGE_SIGNATURE_INVALID", "bad signature"),
    );
    assert.deepEqual(
      await verify(await bundle({ statement: cosignSignStatement("r/app", OTHER) })),
      failed("IMAGE_SIGNATURE_INVALID", "digest mismatch"),
    );
    assert.deepEqual(
      await verify(await bundle({ material: "certificate" })),
      failed(
        "IMAGE_SIGNATURE_INVALID",
        "certificate (keyless) bundle: keyless verification is out of scope",
      ),
    );
    // An attestation bundle is not a signature, even signed by the key for this digest.
    const attestation = await bundle({
      statement: cosignSignStatement("r/app", DIGEST, "https://slsa.dev/provenance/v1"),
    });
    assert.deepEqual(await verify(attestation), failed("IMAGE_UNSIGNED", "no signature"));
    assert.equal(bundleNamesDigest(attestation, DIGEST), false);
    // Any good bundle among bad ones suffices.
    assert.deepEqual(
      await verify(
        await bundle({ key: b }),
        await bundle({ material: "certificate" }),
        await bundle(),
      ),
      { ok: true, keyFingerprint: fpA },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
