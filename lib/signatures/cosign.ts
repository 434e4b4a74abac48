/**
 * cosign's tag-based signatures (shared/registry-protocols.md §8.1-8.4): the tag scheme
 * (`sha256-<hex>.sig` / `.att` / `.sbom`), the `.sig` manifest (one
 * `application/vnd.dev.cosign.simplesigning.v1+json` layer per signature, the signature in the
 * layer annotation `dev.cosignproject.cosign/signature`), the simple-signing payload, and
 * key-based verification of an image's signatures.
 *
 * Nothing from a registry is trusted: the manifest goes through manifest.ts's checks, every
 * annotation is type-checked and the signature must be strict standard base64; anything else is a
 * {@link MirrorError} `IMAGE_SIGNATURE_INVALID` naming the layer, never a crash. The signature is
 * checked over the payload's exact bytes before the payload is read (as cosign does).
 *
 * @module
 */
import { MirrorError } from "../errors.ts";
import { type Descriptor, parseManifest } from "../registry/manifest.ts";
import { validDigest } from "../registry/reference.ts";
import { keyFingerprint, verifySignature } from "./cosign_key.ts";

/** Media type of a `.sig` layer: the simple-signing payload. */
const SIMPLE_SIGNING_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json";
/** Layer annotation holding the base64 DER signature. */
const SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature";
/** Layer annotations of keyless signing and the transparency log (kept, not verified here). */
const CERTIFICATE_ANNOTATION = "dev.sigstore.cosign/certificate";
/** PEM intermediates to the root (keyless signing). */
const CHAIN_ANNOTATION = "dev.sigstore.cosign/chain";
/** Rekor bundle JSON. */
const BUNDLE_ANNOTATION = "dev.sigstore.cosign/bundle";
/** `critical.type` of every cosign simple-signing payload. */
const COSIGN_SIGNATURE_TYPE = "cosign container image signature";

/** The cosign tags of one digest. */
export interface CosignTags {
  /** `sha256-<hex>.sig`: signatures. */
  sig: string;
  /** `sha256-<hex>.att`: attestations. */
  att: string;
  /** `sha256-<hex>.sbom`: SBOM attachments. */
  sbom: string;
}

/**
 * The tags cosign stores a digest's signatures, attestations and SBOMs under: the digest with its
 * `:` replaced by `-`, plus `.sig`, `.att` or `.sbom`.
 *
 * @throws {MirrorError} IMAGE_MANIFEST_INVALID when `digest` is not a digest of the OCI grammar.
 *
 * @example
 * ```ts
 * import { cosignTags } from "./cosign.ts";
 * import assert from "node:assert/strict";
 * const hex = "ab".repeat(32);
 * assert.equal(cosignTags(`sha256:${hex}`).sig, `sha256-${hex}.sig`);
 * ```
 */
export function cosignTags(digest: string): CosignTags {
  if (!validDigest(digest)) {
    throw new MirrorError(
      "IMAGE_MANIFEST_INVALID",
      `cosign tags: ${JSON.stringify(String(digest).slice(0, 100))} is not a digest`,
    );
  }
  const base = digest.replace(":", "-");
  return { sig: `${base}.sig`, att: `${base}.att`, sbom: `${base}.sbom` };
}

/** One signature of a `.sig` manifest. */
export interface SignatureLayer {
  /** The layer's descriptor (media type, digest, size): its blob is the payload. */
  descriptor: Descriptor;
  /** The decoded signature (DER). */
  signature: Uint8Array;
  /** Keyless signing's PEM certificate, when present. */
  certificate?: string;
  /** Keyless signing's PEM chain, when present. */
  chain?: string;
  /** Rekor bundle JSON, when present. */
  bundle?: string;
  /** Every annotation of the layer, as written. */
  annotations: Record<string, string>;
}

/**
 * Read a `.sig` manifest: the simple-signing layers with their decoded signatures (other layers
 * are skipped). `where` names the manifest in messages.
 *
 * @throws {MirrorError} IMAGE_MANIFEST_INVALID / IMAGE_UNSUPPORTED for a manifest manifest.ts
 *   refuses, or an index; IMAGE_SIGNATURE_INVALID for annotations that are not an object of
 *   strings, a missing signature annotation, or one that is not standard base64.
 */
export function parseSignatureManifest(bytes: Uint8Array, where: string): SignatureLayer[] {
  const parsed = parseManifest(bytes, "", where);
  if (parsed.kind !== "image") {
    throw new MirrorError("IMAGE_SIGNATURE_INVALID", `${where}: a .sig manifest, not an index`);
  }
  const raw = (JSON.parse(new TextDecoder().decode(bytes)) as { layers: unknown[] }).layers;
  const out: SignatureLayer[] = [];
  for (const [i, descriptor] of parsed.layers.entries()) {
    if (descriptor.mediaType !== SIMPLE_SIGNING_MEDIA_TYPE) continue;
    const field = `${where}: layers[${i}]`;
    const annotations = stringRecord((raw[i] as Record<string, unknown>).annotations, field);
    const encoded = annotations[SIGNATURE_ANNOTATION];
    if (encoded === undefined) {
      throw invalid(`${field} has no ${SIGNATURE_ANNOTATION} annotation`);
    }
    const signature = decodeBase64(encoded);
    if (!signature || signature.length === 0) {
      throw invalid(`${field}: ${SIGNATURE_ANNOTATION} is not base64 (${preview(encoded)})`);
    }
    out.push({
      descriptor: {
        mediaType: descriptor.mediaType,
        digest: descriptor.digest,
        size: descriptor.size,
      },
      signature,
      certificate: annotations[CERTIFICATE_ANNOTATION],
      chain: annotations[CHAIN_ANNOTATION],
      bundle: annotations[BUNDLE_ANNOTATION],
      annotations,
    });
  }
  return out;
}

/** A simple-signing payload's fields. */
export interface SimpleSigningPayload {
  /** `critical.identity.docker-reference` (cosign does not check it). */
  dockerReference: string;
  /** `critical.image.docker-manifest-digest`: the digest the signature is for. */
  manifestDigest: string;
  /** `critical.type`. */
  type: string;
  /** `optional`: null or the `-a key=value` annotations. */
  optional: Record<string, unknown> | null;
}

/**
 * Parse a simple-signing payload (`{"critical":{"identity":{"docker-reference":…},"image":
 * {"docker-manifest-digest":…},"type":"cosign container image signature"},"optional":…}`).
 *
 * @throws {MirrorError} IMAGE_SIGNATURE_INVALID for anything that is not JSON of that shape, or a
 *   `critical.type` other than {@link COSIGN_SIGNATURE_TYPE} (containers/image's rule).
 */
export function parseSimpleSigningPayload(bytes: Uint8Array, where: string): SimpleSigningPayload {
  let body: unknown;
  try {
    body = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (cause) {
    throw new MirrorError("IMAGE_SIGNATURE_INVALID", `${where}: the payload is not JSON`, {
      cause,
    });
  }
  const critical = isObject(body) ? body.critical : undefined;
  const identity = isObject(critical) ? critical.identity : undefined;
  const image = isObject(critical) ? critical.image : undefined;
  const reference = isObject(identity) ? identity["docker-reference"] : undefined;
  const digest = isObject(image) ? image["docker-manifest-digest"] : undefined;
  const type = isObject(critical) ? critical.type : undefined;
  if (typeof reference !== "string" || typeof digest !== "string" || typeof type !== "string") {
    throw invalid(
      `${where}: not a simple-signing payload (critical.identity.docker-reference, critical.image.docker-manifest-digest and critical.type must be strings)`,
    );
  }
  if (type !== COSIGN_SIGNATURE_TYPE) {
    throw invalid(`${where}: critical.type is ${preview(type)}, not "${COSIGN_SIGNATURE_TYPE}"`);
  }
  const optional = isObject(body) ? body.optional : undefined;
  if (optional !== undefined && optional !== null && !isObject(optional)) {
    throw invalid(`${where}: optional must be an object or null`);
  }
  return { dockerReference: reference, manifestDigest: digest, type, optional: optional ?? null };
}

/** Why no signature was accepted. */
export type SignatureFailureReason =
  | "no signature"
  | "digest mismatch"
  | "bad signature"
  // sigstore_bundle.ts: only certificate (keyless) bundles were found.
  | "certificate (keyless) bundle: keyless verification is out of scope";

/** The verdict of {@link verifyImageSignatures} (and of dsse.ts's verifyAttestation). */
export type SignatureVerdict =
  | { ok: true; keyFingerprint: string }
  | {
    ok: false;
    code: "IMAGE_UNSIGNED" | "IMAGE_SIGNATURE_INVALID";
    reason: SignatureFailureReason;
    /** Fingerprints of the keys tried, for the message. */
    keyFingerprints: string[];
  };

/** Options for {@link verifyImageSignatures}. */
export interface VerifyImageSignaturesOptions {
  /** Trusted keys; any one suffices. */
  keys: CryptoKey[];
  /** The digest being mirrored. */
  digest: string;
  /** Each signature with its payload blob's exact bytes. */
  signatures: { payload: Uint8Array; signature: Uint8Array }[];
}

/**
 * Is the image `digest` signed by one of `keys`? A signature counts when it verifies over the
 * payload bytes with a key AND its payload is a cosign simple-signing payload whose
 * `docker-manifest-digest` is `digest`. No signatures: `IMAGE_UNSIGNED` "no signature". Otherwise
 * `IMAGE_SIGNATURE_INVALID`: "digest mismatch" when some signature verified but named another
 * image (or had an unreadable payload), else "bad signature".
 *
 * @throws {MirrorError} CONFIG_INVALID when `keys` is empty.
 */
export async function verifyImageSignatures(
  options: VerifyImageSignaturesOptions,
): Promise<SignatureVerdict> {
  const fingerprints = await fingerprintsOf(options.keys);
  let verifiedElsewhere = false;
  for (const { payload, signature } of options.signatures) {
    for (const [k, key] of options.keys.entries()) {
      if (!await verifySignature({ key, payload, signature })) continue;
      if (payloadNames(payload, options.digest)) {
        return { ok: true, keyFingerprint: fingerprints[k] };
      }
      verifiedElsewhere = true;
    }
  }
  return failure(options.signatures.length, verifiedElsewhere, fingerprints);
}

/** The fingerprints of `keys` (in order). @throws {MirrorError} CONFIG_INVALID when empty. */
export async function fingerprintsOf(keys: CryptoKey[]): Promise<string[]> {
  if (keys.length === 0) {
    throw new MirrorError("CONFIG_INVALID", "signature verification needs at least one key");
  }
  return await Promise.all(keys.map((key) => keyFingerprint(key)));
}

/** The failed verdict for `count` signatures, `matched` when one verified for another digest. */
export function failure(
  count: number,
  matched: boolean,
  keyFingerprints: string[],
): SignatureVerdict {
  if (count === 0) {
    return { ok: false, code: "IMAGE_UNSIGNED", reason: "no signature", keyFingerprints };
  }
  const reason = matched ? "digest mismatch" : "bad signature";
  return { ok: false, code: "IMAGE_SIGNATURE_INVALID", reason, keyFingerprints };
}

function payloadNames(payload: Uint8Array, digest: string): boolean {
  try {
    return parseSimpleSigningPayload(payload, "payload").manifestDigest === digest;
  } catch {
    return false;
  }
}

/** Strict standard base64 (padding required) -> bytes; null when it is not. */
export function decodeBase64(text: string): Uint8Array | null {
  if (text.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) return null;
  try {
    return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  } catch {
    return null;
  }
}

function stringRecord(value: unknown, field: string): Record<string, string> {
  if (value === undefined) return {};
  if (!isObject(value)) throw invalid(`${field}.annotations is not an object`);
  for (const [key, v] of Object.entries(value)) {
    if (typeof v !== "string") throw invalid(`${field}.annotations["${key}"] is not a string`);
  }
  return value as Record<string, string>;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function invalid(message: string): MirrorError {
  return new MirrorError("IMAGE_SIGNATURE_INVALID", message);
}

function preview(text: string): string {
  return JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}…` : text);
}
