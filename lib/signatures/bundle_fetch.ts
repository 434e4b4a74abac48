/**
 * Read an image's sigstore bundles (cosign v3's default signatures) from a registry: list the
 * referrers of the digest (referrers.ts: the API, else the fallback tag `sha256-<hex>`), keep the
 * entries whose `artifactType` is a bundle type, GET each referrer manifest by digest, check that
 * its `subject` is the digest (a fallback index is written by clients and proves nothing), and
 * read its bundle layer under a size cap, checked against its descriptor (cosign_fetch.ts).
 *
 * ```ts ignore
 * const bundles = await fetchImageBundles(client, { repository: "team/app", digest });
 * const verdict = await verifyBundles({ keys, digest, bundles: bundles.map((b) => b.bundle) });
 * ```
 *
 * @module
 */
import { MirrorError } from "../errors.ts";
import { parseManifest } from "../registry/manifest.ts";
import type { ArtifactStore } from "../registry/image_store.ts";
import {
  DEFAULT_MAX_PAYLOAD_BYTES,
  type FetchImageSignaturesOptions,
  readBlob,
} from "./cosign_fetch.ts";
import { listReferrers, referrerSubject } from "./referrers.ts";
import { BUNDLE_MEDIA_TYPES, parseSigstoreBundle, type SigstoreBundle } from "./sigstore_bundle.ts";

/** At most this many bundle referrers of one digest are read (a hostile list stays cheap). */
const MAX_BUNDLES = 32;

/** One bundle referrer of an image. */
export interface FetchedBundle {
  /** Digest of the referrer manifest. */
  manifestDigest: string;
  /** How the referrer was found: the referrers API or the fallback tag. */
  via: "api" | "tag";
  bundle: SigstoreBundle;
}

/**
 * The sigstore bundles that refer to `digest` in `repository` (empty when there are none).
 * Listed referrers that are absent, or whose manifest names another subject, are skipped.
 *
 * @throws {MirrorError} IMAGE_REFERRER_INVALID for a malformed referrers list;
 *   IMAGE_SIGNATURE_INVALID for a referrer manifest without a bundle layer or a malformed bundle;
 *   IMAGE_MANIFEST_TOO_LARGE / IMAGE_DIGEST_MISMATCH for a bundle blob past the cap or not
 *   matching its descriptor; RegistryError codes for registry failures.
 */
export async function fetchImageBundles(
  client: ArtifactStore,
  options: FetchImageSignaturesOptions,
): Promise<FetchedBundle[]> {
  const { repository, digest, signal } = options;
  const max = options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
  const listed = await listReferrers(client, repository, digest, { signal });
  const candidates = listed.descriptors
    .filter((d) => d.artifactType !== undefined && BUNDLE_MEDIA_TYPES.includes(d.artifactType))
    .slice(0, MAX_BUNDLES);
  const out: FetchedBundle[] = [];
  for (const descriptor of candidates) {
    const manifest = await client.manifestGet(repository, descriptor.digest, signal);
    if (!manifest) continue;
    const where = `${client.host}/${repository}@${descriptor.digest}`;
    const parsed = parseManifest(manifest.bytes, "", where);
    if (parsed.kind !== "image") {
      throw new MirrorError("IMAGE_SIGNATURE_INVALID", `${where}: a bundle referrer, not an index`);
    }
    if (referrerSubject(manifest.bytes) !== digest) continue;
    const index = parsed.layers.findIndex((l) => BUNDLE_MEDIA_TYPES.includes(l.mediaType));
    if (index < 0) {
      throw new MirrorError(
        "IMAGE_SIGNATURE_INVALID",
        `${where}: a bundle referrer without a sigstore bundle layer`,
      );
    }
    const bytes = await readBlob(client, {
      repository,
      where,
      descriptor: parsed.layers[index],
      max,
      signal,
    });
    out.push({
      manifestDigest: manifest.digest,
      via: listed.via,
      bundle: parseSigstoreBundle(bytes, `${where}: layers[${index}]`),
    });
  }
  return out;
}
