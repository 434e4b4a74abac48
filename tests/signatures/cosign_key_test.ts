/**
 * cosign keys and signatures: keys and signatures made by openssl (independent of the code under
 * test), refused key kinds, and the strict DER -> r||s reader row by row.
 */
import assert from "node:assert/strict";
import { MirrorError } from "../../lib/errors.ts";
import {
  derSignatureToP1363,
  keyFingerprint,
  loadCosignPublicKey,
  verifySignature,
} from "../../lib/signatures/cosign_key.ts";
import { makeKey, opensslFingerprint, opensslSign } from "../support/cosign_fixture.ts";

const dir = await Deno.makeTempDir({ prefix: "cosign-key-test-" });
const p256 = await makeKey(dir, "p256");
const other = await makeKey(dir, "p256");
const enc = new TextEncoder();
globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));

async function refused(pem: string, file: string | undefined, pattern: RegExp) {
  await assert.rejects(() => loadCosignPublicKey(pem, { file }), (e: unknown) => {
    assert.ok(e instanceof MirrorError, String(e));
    assert.equal(e.code, "CONFIG_INVALID");
    assert.match(e.message, pattern);
    return true;
  });
}

Deno.test("loadCosignPublicKey() imports an openssl P-256 key; keyFingerprint() matches openssl's sha256 of the DER SPKI", async () => {
  const key = await loadCosignPublicKey(p256.publicPem, { file: p256.publicKeyFile });
  assert.equal(key.type, "public");
  assert.deepEqual(key.algorithm, { name: "ECDSA", namedCurve: "P-256" });
  const fingerprint = await keyFingerprint(key);
  assert.match(fingerprint, /^[0-9a-f]{64}$/);
  assert.equal(fingerprint, await opensslFingerprint(p256.publicKeyFile));
  assert.notEqual(fingerprint, await opensslFingerprint(other.publicKeyFile));
});

Deno.test("loadCosignPublicKey() refuses an RSA key, naming the file", async () => {
  const rsa = await makeKey(dir, "rsa");
  await refused(
    rsa.publicPem,
    "keys/rsa.pub",
    /^cosign key keys\/rsa\.pub: is an RSA key; cosign keys must be ECDSA P-256$/,
  );
});

Deno.test("loadCosignPublicKey() refuses a P-384 key, naming the curve", async () => {
  const p384 = await makeKey(dir, "p384");
  await refused(
    p384.publicPem,
    "p384.pub",
    /^cosign key p384\.pub: is an ECDSA key on curve secp384r1; cosign keys must be P-256$/,
  );
});

Deno.test("loadCosignPublicKey() refuses garbage, a damaged PEM body and a private key", async () => {
  await refused("hello world", "garbage.pub", /^cosign key garbage\.pub: is not a PEM public key/);
  await refused(
    "-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n",
    "bad.pub",
    /^cosign key bad\.pub: cannot be read as a PEM public key$/,
  );
  await refused(
    await Deno.readTextFile(p256.privateKeyFile),
    "cosign.key",
    /^cosign key cosign\.key: is a private key; give the public key \(cosign\.pub\)$/,
  );
  await refused("", undefined, /^cosign key: is not a PEM public key/);
});

Deno.test("verifySignature() accepts openssl's DER signature and refuses a wrong key and a tampered payload", async () => {
  const key = await loadCosignPublicKey(p256.publicPem);
  const wrong = await loadCosignPublicKey(other.publicPem);
  const payload = enc.encode('{"hello":"world"}');
  const signature = await opensslSign(p256.privateKeyFile, payload);
  assert.equal(signature[0], 0x30, "openssl writes DER");
  assert.equal(await verifySignature({ key, payload, signature }), true);
  assert.equal(await verifySignature({ key: wrong, payload, signature }), false);
  const tampered = enc.encode('{"hello":"World"}');
  assert.equal(await verifySignature({ key, payload: tampered, signature }), false);
  const flipped = signature.slice();
  flipped[flipped.length - 1] ^= 1;
  assert.equal(await verifySignature({ key, payload, signature: flipped }), false);
  assert.equal(await verifySignature({ key, payload, signature: new Uint8Array() }), false);
  // WebCrypto answers false (no error) for DER itself: the conversion is what makes it pass.
  const direct = await crypto.subtle.verify(
    { name: "ECDSA", hash: "SHA-256" },
    key,
    signature as Uint8Array<ArrayBuffer>,
    payload as Uint8Array<ArrayBuffer>,
  );
  assert.equal(direct, false);
});

Deno.test("verifySignature() verifies many openssl signatures (DER lengths vary with the 0x00 sign bytes)", async () => {
  const key = await loadCosignPublicKey(p256.publicPem);
  const lengths = new Set<number>();
  for (let i = 0; i < 24; i++) {
    const payload = enc.encode(`payload ${i}`);
    const signature = await opensslSign(p256.privateKeyFile, payload);
    lengths.add(signature.length);
    assert.equal(await verifySignature({ key, payload, signature }), true, `signature ${i}`);
  }
  assert.ok(lengths.size >= 2, `DER lengths seen: ${[...lengths]}`);
});

Deno.test("derSignatureToP1363() reads SEQUENCE{INTEGER r, INTEGER s} and pads each to the scalar size", () => {
  // r = 0x01, s = 0x80 (encoded 00 80)
  assert.deepEqual(
    derSignatureToP1363(new Uint8Array([0x30, 0x07, 0x02, 0x01, 0x01, 0x02, 0x02, 0x00, 0x80]), 2),
    new Uint8Array([0x00, 0x01, 0x00, 0x80]),
  );
  // full-size P-256 scalars: r = 0x00 || 32 x 0xff (33 bytes), s = 32 x 0x11, long-form length
  const r = [0x02, 0x21, 0x00, ...new Array(32).fill(0xff)];
  const s = [0x02, 0x20, ...new Array(32).fill(0x11)];
  const der = new Uint8Array([0x30, 0x45, ...r, ...s]);
  assert.deepEqual(
    derSignatureToP1363(der, 32),
    new Uint8Array([...new Array(32).fill(0xff), ...new Array(32).fill(0x11)]),
  );
  // long-form SEQUENCE length (0x81 0x88) for a length >= 128 (P-521-sized scalars)
  const big = [0x02, 0x42, 0x01, ...new Array(65).fill(0x22)];
  const long = new Uint8Array([0x30, 0x81, 0x88, ...big, ...big]);
  const out = derSignatureToP1363(long, 66);
  assert.equal(out?.length, 132);
  assert.equal(out?.[0], 0x01);
});

Deno.test("derSignatureToP1363() refuses every malformed or non-minimal encoding", () => {
  const rows: [string, number[]][] = [
    ["empty", []],
    ["not a SEQUENCE", [0x31, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01]],
    ["empty SEQUENCE", [0x30, 0x00]],
    ["one INTEGER only", [0x30, 0x03, 0x02, 0x01, 0x01]],
    ["trailing byte after the SEQUENCE", [0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01, 0x00]],
    ["trailing byte inside the SEQUENCE", [0x30, 0x07, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01, 0x00]],
    ["length past the end", [0x30, 0x08, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01]],
    ["INTEGER length past the SEQUENCE", [0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x02, 0x01, 0x01]],
    ["s is not an INTEGER", [0x30, 0x06, 0x02, 0x01, 0x01, 0x04, 0x01, 0x01]],
    ["negative r", [0x30, 0x06, 0x02, 0x01, 0x81, 0x02, 0x01, 0x01]],
    ["non-minimal r (00 01)", [0x30, 0x07, 0x02, 0x02, 0x00, 0x01, 0x02, 0x01, 0x01]],
    ["zero r", [0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x01]],
    ["empty INTEGER", [0x30, 0x05, 0x02, 0x00, 0x02, 0x01, 0x01]],
    ["long form for a short length", [0x30, 0x81, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01]],
    ["indefinite length", [0x30, 0x80, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01, 0x00, 0x00]],
    ["two length bytes", [0x30, 0x82, 0x00, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01]],
    ["r wider than the scalar", [0x30, 0x07, 0x02, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01]],
  ];
  for (const [name, bytes] of rows) {
    assert.equal(derSignatureToP1363(new Uint8Array(bytes), 1), null, name);
  }
  // the same shapes are accepted once well-formed (so the rows fail for the stated reason)
  assert.deepEqual(
    derSignatureToP1363(new Uint8Array([0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01]), 1),
    new Uint8Array([0x01, 0x01]),
  );
});
