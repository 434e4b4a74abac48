/**
 * Helpers of oci_layout.ts: stray temp removal, file probes and the mismatch error of a manifest
 * file (blob streams are verified by registry/blob_verifier.ts; whole-file writes are safe_file.ts's writeFileAtomic, under a SafeDir).
 *
 * @module
 */
import { MirrorError } from "../errors.ts";

/** IMAGE_DIGEST_MISMATCH for a blob file whose bytes hash to `actual`. */
export function mismatch(path: string, hashes: { digest: string; actual: string }): MirrorError {
  const { digest, actual } = hashes;
  return new MirrorError(
    "IMAGE_DIGEST_MISMATCH",
    `${path}: the blob's bytes hash to ${actual}, not ${digest} (the file is corrupt)`,
  );
}

/** Remove temp files a crashed writer left (`index.json.tmp-*`, `blobs/<alg>/.tmp-*`). */
export async function removeStrays(dir: string): Promise<void> {
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && /\.tmp-(\d+-)?[0-9a-f]{8}$/.test(e.name)) await Deno.remove(`${dir}/${e.name}`);
  }
  for await (const alg of Deno.readDir(`${dir}/blobs`)) {
    if (!alg.isDirectory) continue;
    for await (const e of Deno.readDir(`${dir}/blobs/${alg.name}`)) {
      if (e.name.startsWith(".tmp-")) await Deno.remove(`${dir}/blobs/${alg.name}/${e.name}`);
    }
  }
}

/** A regular file's size, or null when absent. */
export async function fileSize(path: string): Promise<number | null> {
  try {
    const info = await Deno.stat(path);
    return info.isFile ? info.size : null;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

/** Does anything exist at `path` (not following a link)? */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}
