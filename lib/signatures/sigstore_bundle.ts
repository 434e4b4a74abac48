/**
 * cosign v3's default signature form (shared/registry-protocols.md §8.6): a sigstore bundle
 * (`application/vnd.dev.sigstore.bundle.v0.3+json`, protobuf JSON) pushed as an OCI 1.1 referrer
 * of the image, holding `verificationMaterial` and a DSSE envelope over an in-toto statement
 * (`predicateType: https://sigstore.dev/cosign/sign/v1`, subject = the image digest).
 *
 * Key-based only: a bundle whose verificationMaterial is a `publicKey` (the `hint` is not
 * trusted: every configured key is tried) is verified over the DSSE PAE (dsse.ts); a bundle that
 * carries a certificate (`certificate` or `x509CertificateChain`: keyless, Fulcio) is refused as
 * out of scope. A bundle whose statement has another predicateType is an attestation, not a
 * signature: it is not counted. Nothing is trusted before the signature checks: the bundle is
 * type-checked field by field, anything else is IMAGE_SIGNATURE_INVALID naming the bundle.
 *
 * @module
 */
import { MirrorError } from "../errors.ts";
import { failure, fingerprintsOf, type SignatureVerdict } from "./cosign.ts";
import {
  type DsseEnvelope,
  dssePae,
  IN_TOTO_PAYLOAD_TYPE,
  parseDsseEnvelope,
  statementNamesDigest,
} from "./dsse.ts";
import { verifySignature } from "./cosign_key.ts";

/** The bundle media type cosign v3 writes (manifest artifactType, layer media type). */
const BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json";

/** Every bundle media type a reader accepts (v0.3 and the older `+json;version=` forms). */
export const BUNDLE_MEDIA_TYPES: readonly string[] = [
  BUNDLE_MEDIA_TYPE,
  "application/vnd.dev.sigstore.bundle+json;version=0.1",
  "application/vnd.dev.sigstore.bundle+json;version=0.2",
  "application/vnd.dev.sigstore.bundle+json;version=0.3",
];

/** The in-toto predicateType of `cosign sign` (v3): the statement is a signature. */
const COSIGN_SIGN_PREDICATE_TYPE = "https://sigstore.dev/cosign/sign/v1";

/** Reason given when only certificate (keyless) bundles were found. */
const KEYLESS_BUNDLE_REASON = "certificate (keyless) bundle: keyless verification is out of scope";

/** A sigstore bundle, checked and decoded. */
export interface SigstoreBundle {
  /** The bundle's own `mediaType`. */
  mediaType: string;
  /** `publicKey`: signed with a key (hint as written, not trusted); `certificate`: keyless. */
  material: { kind: "publicKey"; hint?: string } | { kind: "certificate" };
  /** The DSSE envelope. */
  envelope: DsseEnvelope;
}

/**
 * Parse a bundle's JSON bytes. `where` names it in messages.
 *
 * @throws {MirrorError} IMAGE_SIGNATURE_INVALID for anything that is not a JSON object with a
 *   known `mediaType`, a `verificationMaterial` holding `publicKey`, `certificate` or
 *   `x509CertificateChain`, and a `dsseEnvelope` (a `messageSignature` bundle signs a blob, not
 *   an image statement, and is refused by name).
 */
export function parseSigstoreBundle(bytes: Uint8Array, where: string): SigstoreBundle {
  let body: unknown;
  try {
    body = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (cause) {
    throw new MirrorError("IMAGE_SIGNATURE_INVALID", `${where}: the bundle is not JSON`, {
      cause,
    });
  }
  if (!isObject(body)) throw invalid(`${where}: the bundle is not a JSON object`);
  const mediaType = body.mediaType;
  if (typeof mediaType !== "string" || !BUNDLE_MEDIA_TYPES.includes(mediaType)) {
    throw invalid(`${where}: mediaType ${show(mediaType)} is not a sigstore bundle type`);
  }
  const material = body.verificationMaterial;
  if (!isObject(material)) throw invalid(`${where}: verificationMaterial is not an object`);
  let kind: SigstoreBundle["material"];
  if (material.certificate !== undefined || material.x509CertificateChain !== undefined) {
    kind = { kind: "certificate" };
  } else if (isObject(material.publicKey)) {
    const hint = material.publicKey.hint;
    if (hint !== undefined && typeof hint !== "string") {
      throw invalid(`${where}: verificationMaterial.publicKey.hint is not a string`);
    }
    kind = hint === undefined ? { kind: "publicKey" } : { kind: "publicKey", hint };
  } else {
    throw invalid(
      `${where}: verificationMaterial holds no publicKey, certificate or x509CertificateChain`,
    );
  }
  if (body.dsseEnvelope === undefined) {
    const what = body.messageSignature !== undefined ? "a messageSignature (a signed blob)" : "";
    throw invalid(
      `${where}: no dsseEnvelope${what ? `; ${what} is not an image signature` : ""}`,
    );
  }
  const envelope = parseDsseEnvelope(body.dsseEnvelope, `${where}: dsseEnvelope`);
  return { mediaType, material: kind, envelope };
}

/** The statement's `predicateType`, or null when the payload is not such a statement. */
function statementPredicateType(envelope: DsseEnvelope): string | null {
  if (envelope.payloadType !== IN_TOTO_PAYLOAD_TYPE) return null;
  try {
    const body = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(envelope.payload));
    return isObject(body) && typeof body.predicateType === "string" ? body.predicateType : null;
  } catch {
    return null;
  }
}

/** Is `bundle` a cosign signature (not an attestation): an in-toto sign/v1 statement? */
function isSignatureBundle(bundle: SigstoreBundle): boolean {
  return statementPredicateType(bundle.envelope) === COSIGN_SIGN_PREDICATE_TYPE;
}

/**
 * Does the signature bundle's statement name `digest` as a subject (unverified: for
 * `signatures: require` without keys, "carries a signature")?
 */
export function bundleNamesDigest(bundle: SigstoreBundle, digest: string): boolean {
  return isSignatureBundle(bundle) && statementNamesDigest(bundle.envelope.payload, digest);
}

/** Options for {@link verifyBundles}. */
export interface VerifyBundlesOptions {
  /** Trusted keys; any one suffices. */
  keys: CryptoKey[];
  /** The digest being mirrored. */
  digest: string;
  /** The bundles found for the digest (attestation bundles are left out here). */
  bundles: SigstoreBundle[];
}

/**
 * Is `digest` signed by one of `keys` through a bundle? A signature bundle (sign/v1 statement)
 * with a `publicKey` verificationMaterial counts when one of its DSSE signatures verifies over the
 * PAE with a key AND the statement names `digest`. Verdict: no signature bundle -> IMAGE_UNSIGNED
 * "no signature"; one verified for another subject -> "digest mismatch"; only certificate bundles
 * -> {@link KEYLESS_BUNDLE_REASON}; else "bad signature".
 *
 * @throws {MirrorError} CONFIG_INVALID when `keys` is empty.
 */
export async function verifyBundles(options: VerifyBundlesOptions): Promise<SignatureVerdict> {
  const fingerprints = await fingerprintsOf(options.keys);
  const signatures = options.bundles.filter(isSignatureBundle);
  let verifiedElsewhere = false;
  let keyed = 0;
  for (const bundle of signatures) {
    if (bundle.material.kind !== "publicKey") continue;
    keyed++;
    const { envelope } = bundle;
    const pae = dssePae(envelope.payloadType, envelope.payload);
    for (const { sig } of envelope.signatures) {
      for (const [k, key] of options.keys.entries()) {
        if (!await verifySignature({ key, payload: pae, signature: sig })) continue;
        if (statementNamesDigest(envelope.payload, options.digest)) {
          return { ok: true, keyFingerprint: fingerprints[k] };
        }
        verifiedElsewhere = true;
      }
    }
  }
  if (signatures.length > 0 && keyed === 0) {
    return {
      ok: false,
      code: "IMAGE_SIGNATURE_INVALID",
      reason: KEYLESS_BUNDLE_REASON,
      keyFingerprints: fingerprints,
    };
  }
  return failure(signatures.length, verifiedElsewhere, fingerprints);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function invalid(message: string): MirrorError {
  return new MirrorError("IMAGE_SIGNATURE_INVALID", message);
}

function show(value: unknown): string {
  if (typeof value !== "string") return value === undefined ? "(none)" : typeof value;
  return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);
}
