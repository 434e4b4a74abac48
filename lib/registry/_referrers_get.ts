/**
 * One OCI 1.1 referrers request (`GET /v2/<name>/referrers/<digest>[?artifactType=]`), its body
 * read under the client's manifest cap and returned unparsed: lib/signatures/referrers.ts checks
 * it. A registry without the API answers 404 (distribution 2.8.2), 400 or 406: that is `null`,
 * never an error (shared/registry-protocols.md 8.9). Used only by registry_client.ts
 * (`referrersGet`).
 *
 * @module
 */
import { MirrorError } from "../errors.ts";
import type { RegistryCall } from "./blob_upload.ts";
import { MEDIA_TYPES } from "./manifest.ts";
import { readBodyCapped } from "./registry_error.ts";
import { referrersPath } from "./registry_paths.ts";

/** A referrers API answer, unparsed. */
export interface ReferrersAnswer {
  /** The Content-Type without parameters. */
  contentType: string;
  bytes: Uint8Array;
  /** `OCI-Filters-Applied`, split at commas (empty: the registry filtered nothing). */
  filtersApplied: string[];
  /** A `Link: <…>; rel="next"` header came: the list has more pages. */
  hasNextPage: boolean;
}

/** What the request needs from the client that owns the host. */
export interface ReferrersClient {
  /** The registry name, for messages. */
  host: string;
  /** The client's authenticated, retried call. */
  send: (call: RegistryCall) => Promise<Response>;
  /** Bytes the answer may take (the client's manifest cap). */
  maxBytes: number;
}

/** What to ask for. */
export interface ReferrersRequest {
  repository: string;
  digest: string;
  /** Sent as `?artifactType=` (percent-encoded); the registry may ignore it. */
  artifactType?: string;
  signal?: AbortSignal;
}

/**
 * Ask the referrers endpoint once.
 *
 * @returns the answer, or null when the registry has no referrers API (404, 400, 406)
 * @throws {MirrorError} IMAGE_MANIFEST_TOO_LARGE past the cap; IMAGE_MANIFEST_INVALID for a
 *   repository or digest outside the grammar (before any request)
 */
export async function getReferrers(
  client: ReferrersClient,
  request: ReferrersRequest,
): Promise<ReferrersAnswer | null> {
  const { repository, digest, artifactType, signal } = request;
  const query = artifactType === undefined
    ? ""
    : `?artifactType=${encodeURIComponent(artifactType)}`;
  const res = await client.send({
    method: "GET",
    path: referrersPath(repository, digest) + query,
    repository,
    headers: { accept: MEDIA_TYPES.ociIndex },
    signal,
    ok: [200, 400, 404, 406],
  });
  if (res.status !== 200) {
    await res.body?.cancel();
    return null;
  }
  const where = `${client.host}/${repository} referrers of ${digest}`;
  const limit = client.maxBytes;
  const bytes = await readBodyCapped(res, limit, (seen) =>
    new MirrorError(
      "IMAGE_MANIFEST_TOO_LARGE",
      `${where}: the answer passed the ${limit}-byte cap (${seen} bytes or more); raise operation.maxManifestBytes if it is genuine`,
    ));
  const applied = res.headers.get("oci-filters-applied") ?? "";
  return {
    contentType: (res.headers.get("content-type") ?? "").split(";")[0].trim(),
    bytes,
    filtersApplied: applied.split(",").map((f) => f.trim()).filter((f) => f !== ""),
    hasNextPage: /;\s*rel="?next"?/.test(res.headers.get("link") ?? ""),
  };
}
