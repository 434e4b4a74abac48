/**
 * In-toto attestations in DSSE envelopes (shared/registry-protocols.md §8.5, §8.6): the blob of a
 * cosign `.att` layer, and the `dsseEnvelope` of a cosign v3 sigstore bundle, are
 * `{"payloadType":"application/vnd.in-toto+json","payload":"<base64 statement>",
 * "signatures":[{"keyid":"…","sig":"<base64 DER>"}]}`. The signature is over the PAE
 * (`"DSSEv1" SP len(type) SP type SP len(body) SP body`, decimal byte lengths), never over the raw
 * payload; the statement's `subject[].digest` must name the image.
 *
 * @module
 */
import { MirrorError } from "../errors.ts";
import { validDigest } from "../registry/reference.ts";
import { decodeBase64, failure, fingerprintsOf, type SignatureVerdict } from "./cosign.ts";
import { verifySignature } from "./cosign_key.ts";

/** The payload type of an in-toto statement. */
export const IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json";

/** A DSSE envelope, decoded. */
export interface DsseEnvelope {
  payloadType: string;
  /** The decoded payload (the statement's exact bytes). */
  payload: Uint8Array;
  /** Each signature, decoded (DER for cosign), with its optional key id. */
  signatures: { sig: Uint8Array; keyid?: string }[];
}

/**
 * Parse a DSSE envelope from its JSON bytes, or from the already parsed object (a bundle's
 * `dsseEnvelope`).
 *
 * @throws {MirrorError} IMAGE_SIGNATURE_INVALID for anything not of that shape or not base64.
 */
export function parseDsseEnvelope(input: Uint8Array | unknown, where: string): DsseEnvelope {
  let body = input;
  if (input instanceof Uint8Array) {
    try {
      body = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(input));
    } catch (cause) {
      throw new MirrorError("IMAGE_SIGNATURE_INVALID", `${where}: the envelope is not JSON`, {
        cause,
      });
    }
  }
  if (!isObject(body) || typeof body.payloadType !== "string") {
    throw invalid(`${where}: not a DSSE envelope (payloadType must be a string)`);
  }
  const payload = typeof body.payload === "string" ? decodeBase64(body.payload) : null;
  if (!payload) throw invalid(`${where}: payload is not base64`);
  if (!Array.isArray(body.signatures)) throw invalid(`${where}: signatures is not a list`);
  const signatures = body.signatures.map((entry, i) => {
    const sig = isObject(entry) && typeof entry.sig === "string" ? decodeBase64(entry.sig) : null;
    if (!sig || sig.length === 0) throw invalid(`${where}: signatures[${i}].sig is not base64`);
    const keyid = isObject(entry) && typeof entry.keyid === "string" ? entry.keyid : undefined;
    return keyid === undefined ? { sig } : { sig, keyid };
  });
  return { payloadType: body.payloadType, payload, signatures };
}

/**
 * DSSE's pre-authentication encoding: `DSSEv1 <len(type)> <type> <len(body)> <body>` with the
 * lengths in bytes, as ASCII decimal.
 *
 * @example
 * ```ts
 * import { dssePae } from "./dsse.ts";
 * import assert from "node:assert/strict";
 * const pae = dssePae("t/x", new TextEncoder().encode("hello"));
 * assert.equal(new TextDecoder().decode(pae), "DSSEv1 3 t/x 5 hello");
 * ```
 */
export function dssePae(payloadType: string, payload: Uint8Array): Uint8Array {
  const type = new TextEncoder().encode(payloadType);
  const head = new TextEncoder().encode(`DSSEv1 ${type.length} ${payloadType} ${payload.length} `);
  const out = new Uint8Array(head.length + payload.length);
  out.set(head, 0);
  out.set(payload, head.length);
  return out;
}

/**
 * Does the in-toto statement (JSON bytes) name `digest` among its subjects
 * (`subject[].digest[<algorithm>] === <hex>`)? False for anything unreadable.
 */
export function statementNamesDigest(statement: Uint8Array, digest: string): boolean {
  if (!validDigest(digest)) return false;
  const [algorithm, hex] = digest.split(":");
  let body: unknown;
  try {
    body = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(statement));
  } catch {
    return false;
  }
  if (!isObject(body) || !Array.isArray(body.subject)) return false;
  return body.subject.some((s) => isObject(s) && isObject(s.digest) && s.digest[algorithm] === hex);
}

/** Options for {@link verifyAttestation}. */
export interface VerifyAttestationOptions {
  /** Trusted keys; any one suffices. */
  keys: CryptoKey[];
  /** The digest being mirrored. */
  digest: string;
  /** Envelopes found for the digest (`.att` layers, bundle `dsseEnvelope`s). */
  envelopes: DsseEnvelope[];
}

/**
 * Is `digest` attested by one of `keys`? An envelope counts when its payload type is in-toto, one
 * of its signatures verifies over the PAE with a key, and its statement names `digest` as a
 * subject. The verdict reads like {@link verifyImageSignatures}'s: no envelope -> IMAGE_UNSIGNED
 * "no signature"; a verified envelope for another subject -> "digest mismatch"; else "bad
 * signature".
 *
 * @throws {MirrorError} CONFIG_INVALID when `keys` is empty.
 */
export async function verifyAttestation(
  options: VerifyAttestationOptions,
): Promise<SignatureVerdict> {
  const fingerprints = await fingerprintsOf(options.keys);
  let verifiedElsewhere = false;
  for (const envelope of options.envelopes) {
    const pae = dssePae(envelope.payloadType, envelope.payload);
    for (const { sig } of envelope.signatures) {
      for (const [k, key] of options.keys.entries()) {
        if (!await verifySignature({ key, payload: pae, signature: sig })) continue;
        if (
          envelope.payloadType === IN_TOTO_PAYLOAD_TYPE &&
          statementNamesDigest(envelope.payload, options.digest)
        ) {
          return { ok: true, keyFingerprint: fingerprints[k] };
        }
        verifiedElsewhere = true;
      }
    }
  }
  return failure(options.envelopes.length, verifiedElsewhere, fingerprints);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function invalid(message: string): MirrorError {
  return new MirrorError("IMAGE_SIGNATURE_INVALID", message);
}
