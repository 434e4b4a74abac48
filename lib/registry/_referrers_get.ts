/**
 * The OCI 1.1 referrers request (`GET /v2/<name>/referrers/<digest>[?artifactType=]`), each page
 * read under the client's manifest cap and returned unparsed: lib/signatures/referrers.ts checks
 * it. `Link: rel="next"` is followed only to the same endpoint on the same origin, at most 100
 * pages. A registry without the API answers 404 (distribution 2.8.2), 400 or 406: that is `null`,
 * never an error (shared/registry-protocols.md 8.9). Used only by registry_client.ts
 * (`referrersGet`).
 *
 * @module
 */
import { MirrorError } from "../errors.ts";
import type { RegistryCall } from "./blob_upload.ts";
import { MEDIA_TYPES } from "./manifest.ts";
import { readBodyCapped, redactUrl } from "./registry_error.ts";
import { referrersPath } from "./registry_paths.ts";

/** Pages of one referrers answer read at most: a `Link: rel="next"` that never ends fails. */
const MAX_REFERRERS_PAGES = 100;

/** One page of a referrers answer, unparsed. */
export interface ReferrersPage {
  /** The Content-Type without parameters. */
  contentType: string;
  bytes: Uint8Array;
  /** `OCI-Filters-Applied`, split at commas (empty: the registry filtered nothing). */
  filtersApplied: string[];
}

/** What the request needs from the client that owns the host. */
export interface ReferrersClient {
  /** The registry name, for messages. */
  host: string;
  /** The registry's origin (`scheme://host:port`): a next page must stay on it. */
  origin: string;
  /** The client's authenticated, retried call. */
  send: (call: RegistryCall) => Promise<Response>;
  /** Resolve a Link against `<origin>/v2/`. */
  resolve: (location: string) => URL;
  /** Bytes one page may take (the client's manifest cap). */
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
 * Ask the referrers endpoint, following `Link: rel="next"` (same origin, same endpoint only).
 *
 * @returns every page, or null when the registry has no referrers API (404, 400, 406 on the
 *   first page)
 * @throws {MirrorError} IMAGE_MANIFEST_TOO_LARGE for a page past the cap; IMAGE_REFERRER_INVALID
 *   for a foreign next page, a later page that fails or more than 100 pages;
 *   IMAGE_MANIFEST_INVALID for a repository or digest outside the grammar (before any request)
 */
export async function getReferrers(
  client: ReferrersClient,
  request: ReferrersRequest,
): Promise<ReferrersPage[] | null> {
  const { repository, digest, artifactType, signal } = request;
  const path = referrersPath(repository, digest);
  const query = artifactType === undefined
    ? ""
    : `?artifactType=${encodeURIComponent(artifactType)}`;
  const where = `${client.host}/${repository} referrers of ${digest}`;
  const pages: ReferrersPage[] = [];
  let next: string | URL | null = path + query;
  while (next) {
    if (pages.length === MAX_REFERRERS_PAGES) {
      throw new MirrorError(
        "IMAGE_REFERRER_INVALID",
        `${where}: still a next page after ${MAX_REFERRERS_PAGES} pages; refused`,
      );
    }
    const res: Response = await client.send({
      method: "GET",
      path: next,
      repository,
      headers: { accept: MEDIA_TYPES.ociIndex },
      signal,
      ok: [200, 400, 404, 406],
    });
    if (res.status !== 200) {
      await res.body?.cancel();
      if (pages.length === 0) return null;
      throw new MirrorError(
        "IMAGE_REFERRER_INVALID",
        `${where}: page ${pages.length + 1} answered ${res.status}`,
      );
    }
    const limit = client.maxBytes;
    const bytes = await readBodyCapped(res, limit, (seen) =>
      new MirrorError(
        "IMAGE_MANIFEST_TOO_LARGE",
        `${where}: the answer passed the ${limit}-byte cap (${seen} bytes or more); raise operation.maxManifestBytes if it is genuine`,
      ));
    const applied = res.headers.get("oci-filters-applied") ?? "";
    pages.push({
      contentType: (res.headers.get("content-type") ?? "").split(";")[0].trim(),
      bytes,
      filtersApplied: applied.split(",").map((f) => f.trim()).filter((f) => f !== ""),
    });
    const link = /<([^>]+)>\s*;\s*rel="?next"?/.exec(res.headers.get("link") ?? "");
    next = link ? nextPage(client, { link: link[1], path, where }) : null;
  }
  return pages;
}

/** A next page: only the same endpoint on the same origin (a Link is data too). */
function nextPage(
  client: ReferrersClient,
  page: { link: string; path: string; where: string },
): URL {
  const url = client.resolve(page.link);
  if (url.origin !== client.origin || url.pathname !== `/v2/${page.path}`) {
    throw new MirrorError(
      "IMAGE_REFERRER_INVALID",
      `${page.where}: the next page ${redactUrl(url)} is not this digest's referrers endpoint`,
    );
  }
  return url;
}
