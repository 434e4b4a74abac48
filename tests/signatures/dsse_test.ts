/**
 * DSSE attestations: envelopes signed by openssl over a PAE built by the fixture (not by
 * lib/signatures/dsse.ts), verified against the key and the statement's subject.
 */
import assert from "node:assert/strict";
import { MirrorError } from "../../lib/errors.ts";
import { loadCosignPublicKey } from "../../lib/signatures/cosign_key.ts";
import {
  dssePae,
  parseDsseEnvelope,
  statementNamesDigest,
  verifyAttestation,
} from "../../lib/signatures/dsse.ts";
import {
  encodeBase64,
  inTotoStatement,
  makeKey,
  opensslFingerprint,
  opensslSign,
  signedEnvelope,
} from "../support/cosign_fixture.ts";

const dir = await Deno.makeTempDir({ prefix: "dsse-test-" });
globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
const signer = await makeKey(dir, "p256");
const stranger = await makeKey(dir, "p256");
const DIGEST = `sha256:${"ab".repeat(32)}`;
const OTHER = `sha256:${"cd".repeat(32)}`;
const enc = new TextEncoder();

function assertCode(code: string, pattern?: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof MirrorError, String(e));
    assert.equal(e.code, code, e.message);
    if (pattern) assert.match(e.message, pattern);
    return true;
  };
}

Deno.test("dssePae() writes DSSEv1 with byte lengths in ASCII decimal", () => {
  assert.equal(
    new TextDecoder().decode(dssePae("application/vnd.in-toto+json", enc.encode("{}"))),
    "DSSEv1 28 application/vnd.in-toto+json 2 {}",
  );
  // lengths are bytes, not characters
  assert.equal(new TextDecoder().decode(dssePae("t", enc.encode("é"))), "DSSEv1 1 t 2 é");
  assert.equal(new TextDecoder().decode(dssePae("", new Uint8Array())), "DSSEv1 0  0 ");
});

Deno.test("verifyAttestation() passes an envelope signed over the PAE whose subject names the digest", async () => {
  const key = await loadCosignPublicKey(signer.publicPem);
  const envelope = parseDsseEnvelope(
    await signedEnvelope(signer.privateKeyFile, inTotoStatement("127.0.0.1/app", DIGEST)),
    "app.att",
  );
  assert.equal(envelope.payloadType, "application/vnd.in-toto+json");
  assert.deepEqual(
    await verifyAttestation({ keys: [key], digest: DIGEST, envelopes: [envelope] }),
    {
      ok: true,
      keyFingerprint: await opensslFingerprint(signer.publicKeyFile),
    },
  );
});

Deno.test("verifyAttestation() accepts a bundle's dsseEnvelope object as parsed JSON", async () => {
  const key = await loadCosignPublicKey(signer.publicPem);
  const statement = inTotoStatement("app", DIGEST);
  const pae = enc.encode(
    `DSSEv1 28 application/vnd.in-toto+json ${statement.length} ${
      new TextDecoder().decode(statement)
    }`,
  );
  const bundle = {
    mediaType: "application/vnd.dev.sigstore.bundle.v0.3+json",
    dsseEnvelope: {
      payload: encodeBase64(statement),
      payloadType: "application/vnd.in-toto+json",
      signatures: [{ sig: encodeBase64(await opensslSign(signer.privateKeyFile, pae)) }],
    },
  };
  const envelope = parseDsseEnvelope(bundle.dsseEnvelope, "bundle");
  const verdict = await verifyAttestation({ keys: [key], digest: DIGEST, envelopes: [envelope] });
  assert.equal(verdict.ok, true);
});

Deno.test("verifyAttestation() refuses a signature over the raw payload, a wrong key, another subject, another payload type, no envelope", async () => {
  const key = await loadCosignPublicKey(signer.publicPem);
  const wrong = await loadCosignPublicKey(stranger.publicPem);
  const fp = await opensslFingerprint(signer.publicKeyFile);
  const statement = inTotoStatement("app", DIGEST);
  const check = async (bytes: Uint8Array, keys = [key]) =>
    await verifyAttestation({
      keys,
      digest: DIGEST,
      envelopes: [parseDsseEnvelope(bytes, "e")],
    });

  assert.deepEqual(
    await check(await signedEnvelope(signer.privateKeyFile, statement, { signOver: "payload" })),
    { ok: false, code: "IMAGE_SIGNATURE_INVALID", reason: "bad signature", keyFingerprints: [fp] },
  );
  assert.deepEqual(
    await check(await signedEnvelope(signer.privateKeyFile, statement), [wrong]),
    {
      ok: false,
      code: "IMAGE_SIGNATURE_INVALID",
      reason: "bad signature",
      keyFingerprints: [await opensslFingerprint(stranger.publicKeyFile)],
    },
  );
  assert.deepEqual(
    await check(await signedEnvelope(signer.privateKeyFile, inTotoStatement("app", OTHER))),
    {
      ok: false,
      code: "IMAGE_SIGNATURE_INVALID",
      reason: "digest mismatch",
      keyFingerprints: [fp],
    },
  );
  assert.deepEqual(
    await check(
      await signedEnvelope(signer.privateKeyFile, statement, { payloadType: "text/plain" }),
    ),
    {
      ok: false,
      code: "IMAGE_SIGNATURE_INVALID",
      reason: "digest mismatch",
      keyFingerprints: [fp],
    },
  );
  // a signed envelope whose payload was swapped afterwards
  const good = JSON.parse(
    new TextDecoder().decode(await signedEnvelope(signer.privateKeyFile, statement)),
  );
  good.payload = encodeBase64(inTotoStatement("app", DIGEST).slice(0, -1));
  assert.deepEqual(
    await check(enc.encode(JSON.stringify(good))),
    { ok: false, code: "IMAGE_SIGNATURE_INVALID", reason: "bad signature", keyFingerprints: [fp] },
  );
  assert.deepEqual(
    await verifyAttestation({ keys: [key], digest: DIGEST, envelopes: [] }),
    { ok: false, code: "IMAGE_UNSIGNED", reason: "no signature", keyFingerprints: [fp] },
  );
});

Deno.test("statementNamesDigest() matches subject[].digest by algorithm and hex only", () => {
  const hex = "ab".repeat(32);
  const statement = (subject: unknown) => enc.encode(JSON.stringify({ subject }));
  assert.equal(statementNamesDigest(statement([{ digest: { sha256: hex } }]), DIGEST), true);
  assert.equal(
    statementNamesDigest(
      statement([{ digest: { sha512: hex } }, { digest: { sha256: hex } }]),
      DIGEST,
    ),
    true,
  );
  assert.equal(statementNamesDigest(statement([{ digest: { sha512: hex } }]), DIGEST), false);
  assert.equal(
    statementNamesDigest(statement([{ digest: { sha256: hex.toUpperCase() } }]), DIGEST),
    false,
  );
  assert.equal(statementNamesDigest(statement("x"), DIGEST), false);
  assert.equal(statementNamesDigest(statement([{ digest: { sha256: hex } }]), "sha256:ab"), false);
  assert.equal(statementNamesDigest(enc.encode("{"), DIGEST), false);
});

Deno.test("parseDsseEnvelope() refuses garbage with IMAGE_SIGNATURE_INVALID", () => {
  const rows: [string, string, RegExp][] = [
    ["not JSON", "{", /^e: the envelope is not JSON$/],
    ["no payloadType", '{"payload":"e30=","signatures":[]}', /not a DSSE envelope/],
    [
      "payload not base64",
      '{"payloadType":"t","payload":"%","signatures":[]}',
      /payload is not base64/,
    ],
    [
      "signatures not a list",
      '{"payloadType":"t","payload":"e30=","signatures":{}}',
      /signatures is not a list/,
    ],
    [
      "sig not base64",
      '{"payloadType":"t","payload":"e30=","signatures":[{"sig":"!"}]}',
      /signatures\[0\]\.sig is not base64/,
    ],
    [
      "sig missing",
      '{"payloadType":"t","payload":"e30=","signatures":[{}]}',
      /signatures\[0\]\.sig is not base64/,
    ],
  ];
  for (const [name, text, pattern] of rows) {
    assert.throws(
      () => parseDsseEnvelope(enc.encode(text), "e"),
      assertCode("IMAGE_SIGNATURE_INVALID", pattern),
      name,
    );
  }
  assert.deepEqual(
    parseDsseEnvelope(
      enc.encode('{"payloadType":"t","payload":"e30=","signatures":[{"keyid":"k","sig":"AQ=="}]}'),
      "e",
    ),
    {
      payloadType: "t",
      payload: enc.encode("{}"),
      signatures: [{ sig: new Uint8Array([1]), keyid: "k" }],
    },
  );
});
