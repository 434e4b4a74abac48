/**
 * The `big` corpus: one image whose single layer is a large (1 GiB) incompressible gzip, generated
 * and pushed as a stream so the harness never holds it in memory (tests/support/images.ts builds
 * layers in memory, which is fine for small images only).
 *
 * The layer is a real tar (one random file) wrapped in a real gzip made of deflate *stored* blocks:
 * valid for any gunzip, incompressible, and cheap to produce. The random bytes are AES-128-CTR of
 * zeros keyed by the seed, so the layer is the same for the same seed and size.
 *
 * @module
 */
import zlib from "node:zlib";
import { createCipheriv, createHash, type Hash } from "node:crypto";
import type { TestRegistry } from "../tests/support/registry.ts";

const CHUNK = 1 << 20;
const STORED_MAX = 65_535;

/** What was pushed. */
export interface BigImage {
  repository: string;
  tag: string;
  /** Manifest digest. */
  digest: string;
  layerDigest: string;
  /** Compressed layer size in bytes (what travels). */
  layerSize: number;
}

/** Hashes of a generated layer. */
interface LayerStream {
  stream: ReadableStream<Uint8Array>;
  /** Resolves when the stream is fully read: sha256 of the gzip, of the tar, and gzip size. */
  done: Promise<{ digest: string; diffId: string; size: number }>;
}

function tarHeader(name: string, size: number): Uint8Array {
  const header = new Uint8Array(512);
  const enc = new TextEncoder();
  const put = (offset: number, text: string) => header.set(enc.encode(text), offset);
  put(0, name);
  put(100, "0000644\0");
  put(108, "0000000\0");
  put(116, "0000000\0");
  put(124, size.toString(8).padStart(11, "0") + "\0");
  put(136, "00000000000\0");
  put(148, "        ");
  put(156, "0");
  put(257, "ustar\0");
  put(263, "00");
  let sum = 0;
  for (const b of header) sum += b;
  put(148, sum.toString(8).padStart(6, "0") + "\0 ");
  return header;
}

/** The tar bytes of the layer, in chunks: header, `size` random bytes, padding, end blocks. */
function* tarChunks(seed: number, size: number): Generator<Uint8Array> {
  yield tarHeader(`big-${seed}.bin`, size);
  const key = new Uint8Array(16);
  new DataView(key.buffer).setUint32(0, seed >>> 0);
  const cipher = createCipheriv("aes-128-ctr", key, new Uint8Array(16));
  const zeros = new Uint8Array(CHUNK);
  for (let done = 0; done < size;) {
    const n = Math.min(CHUNK, size - done);
    yield new Uint8Array(cipher.update(n === CHUNK ? zeros : zeros.subarray(0, n)));
    done += n;
  }
  yield new Uint8Array((512 - size % 512) % 512 + 1024);
}

/** Wrap one tar chunk into deflate stored blocks (never the final block). */
function storedBlocks(chunk: Uint8Array): Uint8Array {
  const blocks = Math.ceil(chunk.length / STORED_MAX);
  const out = new Uint8Array(chunk.length + blocks * 5);
  let o = 0;
  for (let i = 0; i < chunk.length; i += STORED_MAX) {
    const len = Math.min(STORED_MAX, chunk.length - i);
    out[o] = 0; // BFINAL=0, BTYPE=00 (stored), padded to the byte boundary
    out[o + 1] = len & 0xff;
    out[o + 2] = len >>> 8;
    out[o + 3] = ~len & 0xff;
    out[o + 4] = (~len >>> 8) & 0xff;
    out.set(chunk.subarray(i, i + len), o + 5);
    o += 5 + len;
  }
  return out;
}

/** A stream of the gzip'd tar layer; hashes are computed as it is read. */
export function bigLayerStream(seed: number, size: number): LayerStream {
  const gzHash: Hash = createHash("sha256");
  const tarHash: Hash = createHash("sha256");
  let crc = 0;
  let tarSize = 0;
  let gzSize = 0;
  const tar = tarChunks(seed, size);
  let stage: "header" | "body" | "end" = "header";
  let resolve!: (v: { digest: string; diffId: string; size: number }) => void;
  const done = new Promise<{ digest: string; diffId: string; size: number }>((r) => resolve = r);
  const emit = (controller: ReadableStreamDefaultController<Uint8Array>, bytes: Uint8Array) => {
    gzHash.update(bytes);
    gzSize += bytes.length;
    controller.enqueue(bytes);
  };
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (stage === "header") {
        stage = "body";
        emit(controller, new Uint8Array([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]));
        return;
      }
      if (stage === "end") return;
      const next = tar.next();
      if (!next.done) {
        const chunk = next.value;
        tarHash.update(chunk);
        crc = zlib.crc32(chunk, crc);
        tarSize += chunk.length;
        emit(controller, storedBlocks(chunk));
        return;
      }
      stage = "end";
      const trailer = new Uint8Array(5 + 8);
      trailer.set([1, 0, 0, 0xff, 0xff]); // final empty stored block
      const view = new DataView(trailer.buffer);
      view.setUint32(5, crc >>> 0, true);
      view.setUint32(9, tarSize >>> 0, true);
      emit(controller, trailer);
      controller.close();
      resolve({
        digest: "sha256:" + gzHash.digest("hex"),
        diffId: "sha256:" + tarHash.digest("hex"),
        size: gzSize,
      });
    },
  }, { highWaterMark: 0 });
  return { stream, done };
}

async function expect(res: Response, status: number, what: string): Promise<Response> {
  if (res.status !== status) {
    throw new Error(`${what}: HTTP ${res.status} ${await res.text()}`);
  }
  return res;
}

/** Upload one blob from a stream: POST, one streamed PATCH, PUT ?digest= (digest known at end). */
async function uploadStream(
  reg: TestRegistry,
  repository: string,
  body: ReadableStream<Uint8Array>,
  digestAfter: () => Promise<string>,
): Promise<void> {
  const post = await expect(
    await fetch(`${reg.url}/v2/${repository}/blobs/uploads/`, { method: "POST" }),
    202,
    "upload POST",
  );
  await post.body?.cancel();
  const patch = await expect(
    await fetch(new URL(post.headers.get("location") ?? "", reg.url), {
      method: "PATCH",
      headers: { "content-type": "application/octet-stream" },
      body,
    }),
    202,
    "upload PATCH",
  );
  await patch.body?.cancel();
  const put = new URL(patch.headers.get("location") ?? "", reg.url);
  put.searchParams.set("digest", await digestAfter());
  const res = await expect(await fetch(put, { method: "PUT" }), 201, "upload PUT");
  await res.body?.cancel();
}

async function uploadBytes(
  reg: TestRegistry,
  repository: string,
  bytes: Uint8Array<ArrayBuffer>,
) {
  const digest = "sha256:" + createHash("sha256").update(bytes).digest("hex");
  await uploadStream(reg, repository, new Blob([bytes]).stream(), () => Promise.resolve(digest));
  return digest;
}

/**
 * Generate the big image and push it to `reg` (no auth) as `repository:tag`, streaming the layer.
 * `size` is the random payload of the layer in bytes.
 */
export async function pushBigImage(
  reg: TestRegistry,
  ref: { repository: string; tag: string },
  options: { seed: number; size: number },
): Promise<BigImage> {
  const { repository, tag } = ref;
  const layer = bigLayerStream(options.seed, options.size);
  await uploadStream(reg, repository, layer.stream, async () => (await layer.done).digest);
  const { digest: layerDigest, diffId, size: layerSize } = await layer.done;
  const config = new TextEncoder().encode(JSON.stringify({
    architecture: "amd64",
    os: "linux",
    created: "2024-01-01T00:00:00Z",
    config: { Env: ["PATH=/usr/bin:/bin"], Labels: { "org.bananna.bench": "big" } },
    rootfs: { type: "layers", diff_ids: [diffId] },
    history: [{ created: "2024-01-01T00:00:00Z", created_by: "big layer" }],
  }));
  const configDigest = await uploadBytes(reg, repository, config);
  const mediaType = "application/vnd.oci.image.manifest.v1+json";
  const manifest = new TextEncoder().encode(JSON.stringify({
    schemaVersion: 2,
    mediaType,
    config: {
      mediaType: "application/vnd.oci.image.config.v1+json",
      digest: configDigest,
      size: config.length,
    },
    layers: [{
      mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
      digest: layerDigest,
      size: layerSize,
    }],
  }));
  const res = await expect(
    await fetch(`${reg.url}/v2/${repository}/manifests/${tag}`, {
      method: "PUT",
      headers: { "content-type": mediaType },
      body: manifest,
    }),
    201,
    "manifest PUT",
  );
  await res.body?.cancel();
  return {
    repository,
    tag,
    digest: "sha256:" + createHash("sha256").update(manifest).digest("hex"),
    layerDigest,
    layerSize,
  };
}
