/**
 * Helpers of oci_layout.ts: durable whole-file writes (temp, fsync, rename, directory fsync),
 * stray temp removal, and the verifying pass-through for blob reads.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { MirrorError } from "../errors.ts";
import { checkWrite } from "../write_guard.ts";

/** A pass-through that hashes and counts, failing the stream at the end on a mismatch. */
export function verifying(
  path: string,
  blob: { digest: string; size: number },
): TransformStream<Uint8Array> {
  const { digest, size } = blob;
  const alg = digest.split(":")[0];
  const hash = createHash(alg);
  let seen = 0;
  return new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      seen += chunk.length;
      hash.update(chunk);
      controller.enqueue(chunk);
    },
    flush(controller) {
      const actual = `${alg}:${hash.digest("hex")}`;
      if (actual !== digest || seen !== size) {
        controller.error(mismatch(path, { digest, actual: `${actual} (${seen} bytes)` }));
      }
    },
  });
}

/** IMAGE_DIGEST_MISMATCH for a blob file whose bytes hash to `actual`. */
export function mismatch(path: string, hashes: { digest: string; actual: string }): MirrorError {
  const { digest, actual } = hashes;
  return new MirrorError(
    "IMAGE_DIGEST_MISMATCH",
    `${path}: the blob's bytes hash to ${actual}, not ${digest} (the file is corrupt)`,
  );
}

/** Write `name` in `dir` whole: temp file, fsync, rename, directory fsync. */
export async function writeDurable(dir: string, name: string, text: string): Promise<void> {
  const tmp = `${dir}/${name}.tmp-${crypto.randomUUID().slice(0, 8)}`;
  try {
    {
      using file = await Deno.open(tmp, { createNew: true, write: true, mode: 0o644 });
      const bytes = new TextEncoder().encode(text);
      for (let off = 0; off < bytes.length;) off += await file.write(bytes.subarray(off));
      await file.sync();
    }
    await checkWrite(`${dir}/${name}`);
    await Deno.rename(tmp, `${dir}/${name}`);
    await syncDir(dir);
  } catch (error) {
    await Deno.remove(tmp).catch(() => {});
    throw error;
  }
}

/** Remove temp files a crashed writer left (`index.json.tmp-*`, `blobs/<alg>/.tmp-*`). */
export async function removeStrays(dir: string): Promise<void> {
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && /\.tmp-[0-9a-f]{8}$/.test(e.name)) await Deno.remove(`${dir}/${e.name}`);
  }
  for await (const alg of Deno.readDir(`${dir}/blobs`)) {
    if (!alg.isDirectory) continue;
    for await (const e of Deno.readDir(`${dir}/blobs/${alg.name}`)) {
      if (e.name.startsWith(".tmp-")) await Deno.remove(`${dir}/blobs/${alg.name}/${e.name}`);
    }
  }
}

/** fsync a directory (a rename in it is durable afterwards). */
export async function syncDir(dir: string): Promise<void> {
  using handle = await Deno.open(dir);
  await handle.sync();
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
