/**
 * The config digest (image ID) of an image in a store (a registry, a layout): a walk over its manifests (an index's
 * child for a platform, then the image's config descriptor), not an endpoint of its own.
 *
 * @module
 */
import { parseManifest, selectPlatform } from "./manifest.ts";
import type { ImageStore } from "./image_store.ts";

/**
 * The config digest (image ID) of `ref`; for an index, of the child for `platform`
 * (default linux/amd64). Null when the image is absent.
 */
export async function imageConfigDigest(
  client: ImageStore,
  repository: string,
  ref: string,
  options: { platform?: string; signal?: AbortSignal } = {},
): Promise<string | null> {
  const top = await client.manifestGet(repository, ref, options.signal);
  if (!top) return null;
  let parsed = parseManifest(top.bytes, top.mediaType, `${client.host}/${repository}:${ref}`);
  if (parsed.kind === "index") {
    const platform = options.platform ?? "linux/amd64";
    const child = selectPlatform(parsed.manifests, platform);
    if (!child) return null;
    const manifest = await client.manifestGet(repository, child.digest, options.signal);
    if (!manifest) return null;
    parsed = parseManifest(
      manifest.bytes,
      manifest.mediaType,
      `${client.host}/${repository}@${child.digest}`,
    );
  }
  return parsed.kind === "image" ? parsed.config.digest : null;
}
