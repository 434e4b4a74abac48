/**
 * The OCI 1.1 referrers request (`GET /v2/<name>/referrers/<digest>[?artifactType=]`), each page
 * read under the client's manifest cap and handed unparsed to the caller's `onPage` as it comes,
 * then dropped (lib/signatures/referrers.ts checks it): a listing never holds more than one page.
 * `Link: rel="next"` is followed only to the same endpoint on the same origin, never back to a page
 * already read (a loop fails at once), at most {@link MAX_REFERRERS_PAGES} pages and
 * {@link REFERRERS_TOTAL_PAGES_OF_CAP} times the page cap in all. A registry without the API
 * answers 404 (distribution 2.8.2), 400 or 406: that is `null`, never an error
 * (shared/registry-protocols.md 8.9). Used only by registry_client.ts (`referrersGet`).
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
/** All pages of one answer together take at most this many times the page cap (16 MiB by default). */
const REFERRERS_TOTAL_PAGES_OF_CAP = 4;

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
  /** Called with each page as it comes (then dropped); a throw ends the listing. */
  onPage?: (page: ReferrersPage, index: number) => void;
}

/** What a caller of `referrersGet` passes besides the repository and digest. */
export type ReferrersOptions = Omit<ReferrersRequest, "repository" | "digest">;

/**
 * Ask the referrers endpoint, following `Link: rel="next"` (same origin, same endpoint, never a
 * page already read), each page handed to `onPage` and dropped.
 *
 * @returns the number of pages read, or null when the registry has no referrers API (404, 400,
 *   406 on the first page)
 * @throws {MirrorError} IMAGE_MANIFEST_TOO_LARGE for a page past the cap or pages past the total
 *   cap; IMAGE_REFERRER_INVALID for a foreign next page, a next page already read, a later page
 *   that fails or more than 100 pages; IMAGE_MANIFEST_INVALID for a repository or digest outside
 *   the grammar (before any request); whatever `onPage` throws
 */
export async function getReferrers(
  client: ReferrersClient,
  request: ReferrersRequest,
): Promise<number | null> {
  const { repository, digest, artifactType, signal, onPage } = request;
  const path = referrersPath(repository, digest);
  const query = artifactType === undefined
    ? ""
    : `?artifactType=${encodeURIComponent(artifactType)}`;
  const where = `${client.host}/${repository} referrers of ${digest}`;
  const limit = client.maxBytes;
  const totalLimit = REFERRERS_TOTAL_PAGES_OF_CAP * limit;
  const seen = new Set<string>([client.resolve(path + query).href]);
  let pages = 0;
  let total = 0;
  let next: string | URL | null = path + query;
  while (next) {
    if (pages === MAX_REFERRERS_PAGES) {
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
      if (pages === 0) return null;
      throw new MirrorError(
        "IMAGE_REFERRER_INVALID",
        `${where}: page ${pages + 1} answered ${res.status}`,
      );
    }
    const pageLimit = Math.min(limit, totalLimit - total);
    const bytes = await readBodyCapped(res, pageLimit, (read) =>
      new MirrorError(
        "IMAGE_MANIFEST_TOO_LARGE",
        pageLimit < limit
          ? `${where}: the pages passed ${totalLimit} bytes in all (${
            total + read
          } bytes or more over ${pages + 1} pages); refused`
          : `${where}: the answer passed the ${limit}-byte cap (${read} bytes or more); raise operation.maxManifestBytes if it is genuine`,
      ));
    total += bytes.length;
    const applied = res.headers.get("oci-filters-applied") ?? "";
    onPage?.({
      contentType: (res.headers.get("content-type") ?? "").split(";")[0].trim(),
      bytes,
      filtersApplied: applied.split(",").map((f) => f.trim()).filter((f) => f !== ""),
    }, pages);
    pages++;
    const link = /<([^>]+)>\s*;\s*rel="?next"?/.exec(res.headers.get("link") ?? "");
    const url = link ? nextPage(client, { link: link[1], path, where }) : null;
    if (url && seen.has(url.href)) {
      throw new MirrorError(
        "IMAGE_REFERRER_INVALID",
        `${where}: the next page ${redactUrl(url)} was already read (the pages loop); refused`,
      );
    }
    if (url) seen.add(url.href);
    next = url;
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
