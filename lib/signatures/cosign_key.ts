/**
 * cosign public keys and ECDSA signatures, the way `cosign verify --key` checks them
 * (shared/registry-protocols.md §8.4): a `cosign.pub` is a PEM `PUBLIC KEY` block holding a PKIX
 * SubjectPublicKeyInfo of an ECDSA P-256 key, and a signature is ECDSA P-256 over SHA-256 of the
 * signed bytes, encoded ASN.1 DER `SEQUENCE { INTEGER r, INTEGER s }`.
 *
 * The crypto is WebCrypto's (node:crypto only reads the key's type and curve for a clear message).
 * WebCrypto wants the signature as IEEE P1363 `r || s` and silently answers `false` for DER, so
 * {@link derSignatureToP1363} converts it: a strict DER reader of that one SEQUENCE and nothing
 * else (minimal lengths, minimal positive integers, no trailing bytes).
 *
 * ```ts ignore
 * const key = await loadCosignPublicKey(await Deno.readTextFile("cosign.pub"), { file: "cosign.pub" });
 * const ok = await verifySignature({ key, payload, signature });
 * ```
 *
 * @module
 */
import { MirrorError } from "../errors.ts";

/** Bytes of one coordinate (r or s) of a P-256 signature. */
const P256_SCALAR_BYTES = 32;

/** Options for {@link loadCosignPublicKey}. */
export interface LoadCosignPublicKeyOptions {
  /** The file the PEM came from: named in every error message. */
  file?: string;
}

/**
 * Import a cosign public key (PEM `PUBLIC KEY`, SubjectPublicKeyInfo, ECDSA P-256) as a WebCrypto
 * verify key. The key is extractable so that {@link keyFingerprint} can read its SPKI.
 *
 * @throws {MirrorError} CONFIG_INVALID naming the file (when given) for text that is not a PEM
 *   public key, a private key, an RSA/Ed25519/... key, or an ECDSA key on another curve (P-384...).
 */
export async function loadCosignPublicKey(
  pem: string,
  options: LoadCosignPublicKeyOptions = {},
): Promise<CryptoKey> {
  const where = options.file ? `cosign key ${options.file}` : "cosign key";
  const refuse = (why: string, cause?: unknown) =>
    new MirrorError("CONFIG_INVALID", `${where}: ${why}`, { cause });
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) {
    throw refuse("is a private key; give the public key (cosign.pub)");
  }
  if (!pem.includes("-----BEGIN PUBLIC KEY-----")) {
    throw refuse('is not a PEM public key (no "-----BEGIN PUBLIC KEY-----" block)');
  }
  // node:crypto only here, for a configured key (it brings part of Deno's Node layer).
  const { createPublicKey } = await import("node:crypto");
  let der: Uint8Array;
  try {
    const key = createPublicKey({ key: pem, format: "pem" });
    const type = key.asymmetricKeyType;
    if (type !== "ec") {
      throw refuse(`is ${describeKeyType(type)}; cosign keys must be ECDSA P-256`);
    }
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (curve !== "prime256v1") {
      throw refuse(`is an ECDSA key on curve ${curve ?? "unknown"}; cosign keys must be P-256`);
    }
    der = new Uint8Array(key.export({ type: "spki", format: "der" }));
  } catch (error) {
    if (error instanceof MirrorError) throw error;
    throw refuse("cannot be read as a PEM public key", error);
  }
  try {
    return await crypto.subtle.importKey(
      "spki",
      der as Uint8Array<ArrayBuffer>,
      { name: "ECDSA", namedCurve: "P-256" },
      true,
      ["verify"],
    );
  } catch (error) {
    throw refuse("is not a usable ECDSA P-256 public key", error);
  }
}

function describeKeyType(type: string | undefined): string {
  if (type === "rsa" || type === "rsa-pss") return "an RSA key";
  return type ? `a ${type} key` : "a key of unknown type";
}

/**
 * A key's fingerprint: the lowercase hex sha256 of its DER SubjectPublicKeyInfo, i.e. what
 * `openssl pkey -pubin -in cosign.pub -outform DER | sha256sum` prints. Used to name a key in
 * logs and reports without printing it.
 */
export async function keyFingerprint(key: CryptoKey): Promise<string> {
  const spki = await crypto.subtle.exportKey("spki", key);
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", spki));
  return Array.from(hash, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Options for {@link verifySignature}. */
export interface VerifySignatureOptions {
  /** A key from {@link loadCosignPublicKey}. */
  key: CryptoKey;
  /** The signed bytes, exactly (a simple-signing payload, or a DSSE PAE). */
  payload: Uint8Array;
  /** The signature as cosign writes it: ASN.1 DER `SEQUENCE { r, s }`. */
  signature: Uint8Array;
}

/**
 * Does `signature` (DER) verify over `payload` with `key` (ECDSA P-256, SHA-256)? A signature that
 * is not well-formed DER is simply `false`.
 */
export async function verifySignature(options: VerifySignatureOptions): Promise<boolean> {
  const raw = derSignatureToP1363(options.signature, P256_SCALAR_BYTES);
  if (!raw) return false;
  return await crypto.subtle.verify(
    { name: "ECDSA", hash: "SHA-256" },
    options.key,
    raw as Uint8Array<ArrayBuffer>,
    options.payload as Uint8Array<ArrayBuffer>,
  );
}

/**
 * Convert an ECDSA signature from ASN.1 DER `SEQUENCE { INTEGER r, INTEGER s }` to IEEE P1363
 * `r || s`, each left-padded to `scalarBytes`. Strict DER: definite minimal lengths, integers
 * positive and minimally encoded, nothing after the SEQUENCE. Null for anything else.
 *
 * @example
 * ```ts
 * import { derSignatureToP1363 } from "./cosign_key.ts";
 * import assert from "node:assert/strict";
 * // SEQUENCE { INTEGER 1, INTEGER 0x80 (needs a 0x00 sign byte) }, 2-byte scalars
 * const der = new Uint8Array([0x30, 0x07, 0x02, 0x01, 0x01, 0x02, 0x02, 0x00, 0x80]);
 * assert.deepEqual(derSignatureToP1363(der, 2), new Uint8Array([0, 1, 0, 0x80]));
 * assert.equal(derSignatureToP1363(new Uint8Array([0x30, 0x00]), 2), null);
 * ```
 */
export function derSignatureToP1363(der: Uint8Array, scalarBytes: number): Uint8Array | null {
  const seq = readTlv(der, 0, 0x30);
  if (!seq || seq.end !== der.length) return null;
  const r = readTlv(der, seq.start, 0x02);
  if (!r) return null;
  const s = readTlv(der, r.end, 0x02);
  if (!s || s.end !== seq.end) return null;
  const out = new Uint8Array(scalarBytes * 2);
  for (const [i, int] of [r, s].entries()) {
    const value = positiveInteger(der.subarray(int.start, int.end), scalarBytes);
    if (!value) return null;
    out.set(value, (i + 1) * scalarBytes - value.length);
  }
  return out;
}

/** One DER TLV with `tag` at `offset`: where its content starts and ends; null if malformed. */
function readTlv(
  bytes: Uint8Array,
  offset: number,
  tag: number,
): { start: number; end: number } | null {
  if (offset + 2 > bytes.length || bytes[offset] !== tag) return null;
  let length = bytes[offset + 1];
  let start = offset + 2;
  if (length & 0x80) {
    const count = length & 0x7f;
    // P-256/P-384 signatures need at most one length byte; 0x80 (indefinite) is not DER.
    if (count !== 1 || start >= bytes.length) return null;
    length = bytes[start];
    if (length < 0x80) return null; // long form for a short length: not minimal
    start += 1;
  }
  const end = start + length;
  return end <= bytes.length ? { start, end } : null;
}

/** The magnitude of a DER INTEGER's content if it is positive, minimal and fits; else null. */
function positiveInteger(content: Uint8Array, scalarBytes: number): Uint8Array | null {
  if (content.length === 0 || content[0] & 0x80) return null; // empty or negative
  if (content.length > 1 && content[0] === 0 && !(content[1] & 0x80)) return null; // not minimal
  const magnitude = content[0] === 0 && content.length > 1 ? content.subarray(1) : content;
  if (magnitude.length > scalarBytes) return null;
  if (magnitude.every((b) => b === 0)) return null; // r and s are in [1, n-1]
  return magnitude;
}
