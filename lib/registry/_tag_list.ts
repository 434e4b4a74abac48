/**
 * A tag list page (`GET /v2/<name>/tags/list`) as data: JSON with a `tags` array, every tag
 * checked against the tag grammar, so a registry cannot hand the run a tag that steers a request.
 * Used only by registry_client.ts.
 *
 * @module
 */
import { MirrorError } from "../errors.ts";
import { isValidTag } from "./reference.ts";

/**
 * The `tags` of a tag list page, each checked against the tag grammar.
 *
 * @param bytes the page's body
 * @param where `host/repository`, for messages
 * @returns the tags (none for a missing or null `tags`)
 * @throws {MirrorError} IMAGE_MANIFEST_INVALID when the page is not JSON or a tag is not a tag
 */
export function parseTagList(bytes: Uint8Array, where: string): string[] {
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
