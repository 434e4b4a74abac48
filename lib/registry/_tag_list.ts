/**
 * The tag list (`GET /v2/<name>/tags/list`), paged and bounded: each page is JSON with a `tags`
 * array, every tag checked against the tag grammar, so a registry cannot hand the run a tag that
 * steers a request. A `Link: rel="next"` is followed only to the same endpoint on the same origin;
 * a listing that never ends, passes {@link MAX_TAGS} tags, or whose page vanishes after the first
 * fails instead of returning a cut list. Used only by registry_client.ts (`tagList`).
 *
 * @module
 */
import { MirrorError } from "../errors.ts";
import type { RegistryCall } from "./blob_upload.ts";
import { isValidTag } from "./reference.ts";
import { readBodyCapped, redactUrl } from "./registry_error.ts";
import { repositoryPath } from "./registry_paths.ts";

/** Pages of a tag list read at most: a registry whose `Link: rel="next"` never ends fails. */
const MAX_TAG_LIST_PAGES = 1000;
/** Tags one listing may hold (all pages together): bounds the memory a listing can take. */
const MAX_TAGS = 100_000;

/** What the paging needs from the client that owns the host. */
export interface TagListClient {
  /** The registry name, for messages. */
  host: string;
  /** The registry's origin (`scheme://host:port`): a next page must stay on it. */
  origin: string;
  /** The client's authenticated, retried call. */
  send: (call: RegistryCall) => Promise<Response>;
  /** Resolve a Link or Location against `<origin>/v2/`. */
  resolve: (location: string) => URL;
  /** Bytes one page may take (the client's manifest cap). */
  maxPageBytes: number;
}

/**
 * Every tag of `repository`, all pages read.
 *
 * @param client the owning client's host, origin, call and cap
 * @param request the repository, an optional abort signal, and `absent: "error"` to fail a first
 *   page's 404 (a source repository that must exist) instead of returning none
 * @returns the tags in the registry's order; none when the first page answers 404 (unless
 *   `absent: "error"`: then IMAGE_NOT_FOUND "repository not found")
 * @throws {MirrorError} IMAGE_MANIFEST_INVALID for a bad page, a foreign next page or more than
 *   1000 pages; IMAGE_MANIFEST_TOO_LARGE for a page over the cap or more than 100,000 tags;
 *   IMAGE_PULL_FAILED when a later page answers 404; the call's own RegistryError otherwise
 */
export async function listTags(
  client: TagListClient,
  request: { repository: string; signal?: AbortSignal; absent?: "empty" | "error" },
): Promise<string[]> {
  const { repository, signal } = request;
  const tags: string[] = [];
  const path = repositoryPath(repository, "tags/list");
  let next: string | URL | null = `${path}?n=1000`;
  const where = `${client.host}/${repository}`;
  for (let page = 0; next; page++) {
    if (page === MAX_TAG_LIST_PAGES) {
      throw new MirrorError(
        "IMAGE_MANIFEST_INVALID",
        `${where}: the tag list still had a next page after ${MAX_TAG_LIST_PAGES} pages ` +
          `(${tags.length} tags read); a listing that never ends is refused`,
      );
    }
    const res: Response = await client.send({
      method: "GET",
      path: next,
      repository,
      signal,
      ok: [200, 404],
    });
    if (res.status === 404) {
      await res.body?.cancel();
      // Absent only when the first page says so; a later page that vanishes is a failure.
      if (page === 0 && request.absent === "error") {
        throw new MirrorError(
          "IMAGE_NOT_FOUND",
          `${where}: repository not found (its tag list answered 404): check the name, and that ` +
            "these credentials may see it (a registry answers 404 for a private repository)",
        );
      }
      if (page === 0) return [];
      throw new MirrorError(
        "IMAGE_PULL_FAILED",
        `${where}: page ${page + 1} of the tag list answered 404 (${tags.length} tags read)`,
      );
    }
    const limit = client.maxPageBytes;
    const bytes = await readBodyCapped(res, limit, (seen) =>
      new MirrorError(
        "IMAGE_MANIFEST_TOO_LARGE",
        `${where}: a tag list page passed the ${limit}-byte cap (${seen} bytes or more)`,
      ));
    const listed = parseTagList(bytes, where);
    // Counted before any is kept: one page may hold more tags than a spread can pass as arguments.
    if (tags.length + listed.length > MAX_TAGS) {
      throw new MirrorError(
        "IMAGE_MANIFEST_TOO_LARGE",
        `${where}: the tag list passed ${MAX_TAGS} tags; a listing that large is refused`,
      );
    }
    for (const tag of listed) tags.push(tag);
    const link = /<([^>]+)>\s*;\s*rel="?next"?/.exec(res.headers.get("link") ?? "");
    next = link ? nextPage(client, { link: link[1], path, where }) : null;
  }
  return tags;
}

/** A tag list's next page: only the same endpoint on the same origin (a Link is data too). */
function nextPage(client: TagListClient, page: { link: string; path: string; where: string }): URL {
  const url = client.resolve(page.link);
  if (url.origin !== client.origin || url.pathname !== `/v2/${page.path}`) {
    throw new MirrorError(
      "IMAGE_MANIFEST_INVALID",
      `${page.where}: the tag list's next page ${redactUrl(url)} is not this repository's tag list`,
    );
  }
  return url;
}

/**
 * The `tags` of a tag list page, each checked against the tag grammar.
 *
 * @param bytes the page's body
 * @param where `host/repository`, for messages
 * @returns the tags (none for a missing or null `tags`)
 * @throws {MirrorError} IMAGE_MANIFEST_INVALID when the page is not JSON or a tag is not a tag
 */
function parseTagList(bytes: Uint8Array, where: string): string[] {
  let body: unknown;
  try {
    body = JSON.parse(new TextDecoder().decode(bytes));
  } catch (cause) {
    throw new MirrorError("IMAGE_MANIFEST_INVALID", `${where}: the tag list is not JSON`, {
      cause,
    });
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new MirrorError("IMAGE_MANIFEST_INVALID", `${where}: the tag list is not a JSON object`);
  }
  const tags = (body as { tags?: unknown }).tags;
  if (tags === undefined || tags === null) return [];
  if (!Array.isArray(tags)) {
    throw new MirrorError("IMAGE_MANIFEST_INVALID", `${where}: tags must be an array`);
  }
  tags.forEach((tag, i) => {
    if (!isValidTag(tag)) {
      throw new MirrorError(
        "IMAGE_MANIFEST_INVALID",
        `${where}: tags[${i}] ${
          JSON.stringify(String(tag).slice(0, 200))
        } does not follow the tag grammar`,
      );
    }
  });
  return tags as string[];
}
