/**
 * Paths below /v2/ for the registry client and the blob upload, built only from checked parts: a
 * repository of the reference grammar, then `manifests/<tag|digest>`, `blobs/<digest>`,
 * `blobs/uploads/` (with a mount's query), `tags/list` or `referrers/<digest>`; and the token scope
 * of a repository. Anything else throws IMAGE_MANIFEST_INVALID before a request is made, so no
 * value from a registry or a config can steer a request elsewhere.
 *
 * @module
 */
import { MirrorError } from "../errors.ts";
import { isValidRepository, isValidTag, validDigest } from "./reference.ts";

/**
 * A repository path checked against the reference grammar (refused before any request).
 *
 * @throws {MirrorError} IMAGE_MANIFEST_INVALID when it does not follow the grammar
 */
function checkedRepository(repository: string): string {
  if (!isValidRepository(repository)) {
    throw new MirrorError(
      "IMAGE_MANIFEST_INVALID",
      `repository name ${
        JSON.stringify(String(repository).slice(0, 300))
      } does not follow the reference grammar`,
    );
  }
  return repository;
}

/**
 * A digest checked against the OCI grammar (refused before any request).
 *
 * @throws {MirrorError} IMAGE_MANIFEST_INVALID when it is not a digest
 */
export function checkedDigest(digest: string): string {
  if (!validDigest(digest)) {
    throw new MirrorError(
      "IMAGE_MANIFEST_INVALID",
      `digest ${
        JSON.stringify(String(digest).slice(0, 300))
      } is not sha256:<64 lowercase hex> or sha512:<128 lowercase hex>`,
    );
  }
  return digest;
}

/**
 * Paths below /v2/ are built only from checked parts: a repository of the grammar, then
 * `manifests/<tag|digest>`, `blobs/<digest>`, `blobs/uploads/` or `tags/list`. Anything else
 * throws IMAGE_MANIFEST_INVALID, so no value from a registry or a config can steer a request
 * elsewhere (defence in depth behind the parsers' checks).
 */
export function manifestPath(repository: string, ref: string): string {
  return `${checkedRepository(repository)}/manifests/${isValidTag(ref) ? ref : checkedDigest(ref)}`;
}

/** `<repository>/blobs/<digest>`, both checked (see {@link manifestPath}). */
export function blobPath(repository: string, digest: string): string {
  return `${checkedRepository(repository)}/blobs/${checkedDigest(digest)}`;
}

/** `<repository>/<rest>` for the fixed endpoints, the repository checked. */
export function repositoryPath(repository: string, rest: "tags/list" | "blobs/uploads/"): string {
  return `${checkedRepository(repository)}/${rest}`;
}

/**
 * `<repository>/blobs/uploads/?mount=<digest>&from=<repository>`: the upload session asked for with
 * a mount, the digest and both repositories checked.
 */
export function mountPath(repository: string, digest: string, from: string): string {
  return `${repositoryPath(repository, "blobs/uploads/")}?mount=${
    encodeURIComponent(checkedDigest(digest))
  }&from=${encodeURIComponent(checkedRepository(from))}`;
}

/**
 * The token scope of `repository`: pull, or pull and push for a write. The one place it is
 * spelt: a token asked for in advance (`expectReads`) is found again only under the same string.
 */
export function scopeOf(repository: string, write: boolean): string {
  return `repository:${repository}:${write ? "pull,push" : "pull"}`;
}

/** `<repository>/referrers/<digest>` (OCI 1.1), both checked (see {@link manifestPath}). */
export function referrersPath(repository: string, digest: string): string {
  return `${checkedRepository(repository)}/referrers/${checkedDigest(digest)}`;
}
