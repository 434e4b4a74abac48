/**
 * Read an image's cosign signatures and attestations from a registry: GET the `sha256-<hex>.sig`
 * (or `.att`) tag, parse it (cosign.ts, dsse.ts), and GET each payload blob under a size cap,
 * checking its bytes against the layer descriptor (size and digest) before they are handed to
 * cosign.ts's verifyImageSignatures() or dsse.ts's verifyAttestation().
 *
 * ```ts ignore
 * const found = await fetchImageSignatures(client, { repository: "team/app", digest });
 * const verdict = await verifyImageSignatures({ keys, digest, signatures: found?.signatures ?? [] });
 * ```
 *
 * @module
 */
import { MirrorError } from "../errors.ts";
import { verifyBlob } from "../registry/blob_verifier.ts";
import { parseManifest } from "../registry/manifest.ts";
import type { ArtifactStore } from "../registry/image_store.ts";
import { cosignTags, parseSignatureManifest, type SignatureLayer } from "./cosign.ts";
import { type DsseEnvelope, parseDsseEnvelope } from "./dsse.ts";

/** Media type of a `.att` layer: a DSSE envelope. */
const DSSE_ENVELOPE_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json";

/** Payloads are a few hundred bytes; cosign's own cap for a payload is far above real ones. */
export const DEFAULT_MAX_PAYLOAD_BYTES = 128 * 1024;

/** Options for {@link fetchImageSignatures}. */
export interface FetchImageSignaturesOptions {
  /** Repository holding the image (and its `.sig` tag). */
  repository: string;
  /** The image digest whose signatures are wanted. */
  digest: string;
  /** Largest payload blob read. @default {@link DEFAULT_MAX_PAYLOAD_BYTES} */
  maxPayloadBytes?: number;
  signal?: AbortSignal;
}

/** An image's `.sig` manifest and its signatures with their payload bytes. */
export interface FetchedSignatures {
  /** The `.sig` tag. */
  tag: string;
  /** Digest of the `.sig` manifest. */
  manifestDigest: string;
  /** Each simple-signing layer with its payload's exact bytes. */
  signatures: (SignatureLayer & { payload: Uint8Array })[];
}

/**
 * The signatures of `digest` in `repository`, or null when there is no `.sig` tag.
 *
 * @throws {MirrorError} IMAGE_SIGNATURE_INVALID for a malformed `.sig` manifest or annotations;
 *   IMAGE_MANIFEST_TOO_LARGE for a payload past the cap; IMAGE_DIGEST_MISMATCH for a payload whose
 *   bytes do not match its descriptor; RegistryError codes for registry failures.
 */
export async function fetchImageSignatures(
  client: ArtifactStore,
  options: FetchImageSignaturesOptions,
): Promise<FetchedSignatures | null> {
  const { repository, signal } = options;
  const tag = cosignTags(options.digest).sig;
  const manifest = await client.manifestGet(repository, tag, signal);
  if (!manifest) return null;
  const where = `${client.host}/${repository}:${tag}`;
  const layers = parseSignatureManifest(manifest.bytes, where);
  const max = options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
  const signatures = [];
  for (const layer of layers) {
    const payload = await readBlob(client, {
      repository,
      where,
      descriptor: layer.descriptor,
      max,
      signal,
    });
    signatures.push({ ...layer, payload });
  }
  return { tag, manifestDigest: manifest.digest, signatures };
}

/** An image's `.att` manifest and its DSSE envelopes. */
export interface FetchedAttestations {
  /** The `.att` tag. */
  tag: string;
  /** Digest of the `.att` manifest. */
  manifestDigest: string;
  /** Each `application/vnd.dsse.envelope.v1+json` layer's envelope, decoded. */
  envelopes: DsseEnvelope[];
}

/**
 * The attestations of `digest` in `repository` (the `sha256-<hex>.att` tag: one DSSE envelope
 * blob per layer), or null when there is no `.att` tag. Feed `envelopes` to dsse.ts's
 * verifyAttestation().
 *
 * @throws {MirrorError} as {@link fetchImageSignatures}; IMAGE_SIGNATURE_INVALID for an envelope
 *   that is not DSSE.
 */
export async function fetchImageAttestations(
  client: ArtifactStore,
  options: FetchImageSignaturesOptions,
): Promise<FetchedAttestations | null> {
  const { repository, signal } = options;
  const tag = cosignTags(options.digest).att;
  const manifest = await client.manifestGet(repository, tag, signal);
  if (!manifest) return null;
  const where = `${client.host}/${repository}:${tag}`;
  const parsed = parseManifest(manifest.bytes, "", where);
  if (parsed.kind !== "image") {
    throw new MirrorError("IMAGE_SIGNATURE_INVALID", `${where}: a .att manifest, not an index`);
  }
  const max = options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
  const envelopes = [];
  for (const [i, layer] of parsed.layers.entries()) {
    if (layer.mediaType !== DSSE_ENVELOPE_MEDIA_TYPE) continue;
    const bytes = await readBlob(client, { repository, where, descriptor: layer, max, signal });
    envelopes.push(parseDsseEnvelope(bytes, `${where}: layers[${i}]`));
  }
  return { tag, manifestDigest: manifest.digest, envelopes };
}

/**
 * GET a small blob (a payload, an envelope, a bundle): size capped, bytes checked against the
 * descriptor's size and digest.
 *
 * @throws {MirrorError} IMAGE_MANIFEST_TOO_LARGE past `max`; IMAGE_DIGEST_MISMATCH.
 */
export async function readBlob(
  client: ArtifactStore,
  options: {
    repository: string;
    where: string;
    descriptor: { digest: string; size: number };
    max: number;
    signal?: AbortSignal;
  },
): Promise<Uint8Array> {
  const { where, max } = options;
  const { digest, size } = options.descriptor;
  if (size > max) {
    throw new MirrorError(
      "IMAGE_MANIFEST_TOO_LARGE",
      `${where}: blob ${digest} is ${size} bytes, more than the ${max}-byte cap`,
    );
  }
  const blob = await client.blobGet(options.repository, digest, options.signal);
  // Cut the moment it passes `size` (at most `max`), so only that much is ever held.
  const verifier = verifyBlob({ digest, size }, { where: `${where}: blob ${digest}` });
  return new Uint8Array(await new Response(blob.body.pipeThrough(verifier.stream)).arrayBuffer());
}
