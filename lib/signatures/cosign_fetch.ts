/**
 * Read an image's cosign signatures from a registry: HEAD/GET the `sha256-<hex>.sig` tag, parse it
 * (cosign.ts), and GET each payload blob under a size cap, checking its bytes against the layer
 * descriptor (size and digest) before they are handed to {@link verifyImageSignatures}.
 *
 * ```ts ignore
 * const found = await fetchImageSignatures(client, { repository: "team/app", digest });
 * const verdict = await verifyImageSignatures({ keys, digest, signatures: found?.signatures ?? [] });
 * ```
 *
 * @module
 */
import { MirrorError } from "../errors.ts";
import { digestLike } from "../registry/manifest.ts";
import type { RegistryClient } from "../registry/registry_client.ts";
import { cosignTags, parseSignatureManifest, type SignatureLayer } from "./cosign.ts";

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
  client: RegistryClient,
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
    const { digest, size } = layer.descriptor;
    if (size > max) {
      throw new MirrorError(
        "IMAGE_MANIFEST_TOO_LARGE",
        `${where}: payload ${digest} is ${size} bytes, more than the ${max}-byte cap`,
      );
    }
    const blob = await client.blobGet(repository, digest, signal);
    const payload = await readCapped(blob.body, size);
    if (payload.length !== size || digestLike(digest, payload) !== digest) {
      throw new MirrorError(
        "IMAGE_DIGEST_MISMATCH",
        `${where}: payload ${digest} does not match its descriptor (${payload.length} bytes read, ${size} declared)`,
      );
    }
    signatures.push({ ...layer, payload });
  }
  return { tag, manifestDigest: manifest.digest, signatures };
}

/** Read at most `size` + 1 bytes of `body` (one more shows it is too long), then cancel it. */
async function readCapped(body: ReadableStream<Uint8Array>, size: number): Promise<Uint8Array> {
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    while (total <= size) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      total += value.length;
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  const out = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}
