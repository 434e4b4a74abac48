/**
 * Benchmark corpora: deterministic (seeded) images pushed into the source registry.
 *
 * - `small`: repositories x 2 tags, 3 layers of 0.5-2 MB; every third repository multi-arch
 *   (alternately an OCI index and a Docker manifest list, two platforms, distinct layers).
 * - `many`: tiny single-layer tags spread over repositories (the no-op re-run corpus).
 * - `big`: one image with a single large layer (see big_image.ts).
 *
 * `--quick` shrinks every corpus so the harness can be developed on a shared machine.
 *
 * @module
 */
import { type ImageKind, pushTestImage } from "../tests/support/images.ts";
import type { TestRegistry } from "../tests/support/registry.ts";
import { pushBigImage } from "./big_image.ts";

/** Sizes of the corpora. */
export interface CorpusSizes {
  smallRepos: number;
  smallMinLayer: number;
  smallMaxLayer: number;
  manyRepos: number;
  manyTagsPerRepo: number;
  bigBytes: number;
}

/** Full sizes, as in the issue. */
export const FULL: CorpusSizes = {
  smallRepos: 20,
  smallMinLayer: 512 * 1024,
  smallMaxLayer: 2 * 1024 * 1024,
  manyRepos: 30,
  manyTagsPerRepo: 10,
  bigBytes: 1024 * 1024 * 1024,
};

/** Development sizes (`--quick`). */
export const QUICK: CorpusSizes = {
  smallRepos: 3,
  smallMinLayer: 64 * 1024,
  smallMaxLayer: 256 * 1024,
  manyRepos: 3,
  manyTagsPerRepo: 4,
  bigBytes: 32 * 1024 * 1024,
};

/** One source tag of a corpus. */
export interface CorpusImage {
  /** Repository path in the source, e.g. `small/r00`. */
  repository: string;
  tag: string;
  kind: ImageKind;
}

/** A blob as stored in the source: where it is, its digest and size. */
export interface CorpusBlob {
  repository: string;
  digest: string;
  size: number;
}

/** A corpus pushed into the source. */
export interface Corpus {
  name: "small" | "many" | "big";
  images: CorpusImage[];
  /** Unique (repository, digest) blobs in the source: what the floor moves. */
  blobs: CorpusBlob[];
  /** Sum of blob sizes. */
  bytes: number;
}

/** Deterministic layer size for an image seed, in [min, max]. */
function layerSize(seed: number, min: number, max: number): number {
  const x = Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) >>> 0;
  return min + (x % (max - min + 1));
}

const MULTI: ImageKind[] = ["oci-index", "docker-list"];
const SINGLE: ImageKind[] = ["oci", "schema2"];

/** Push the `small` corpus. Seeds 1..: single-arch seed s, multi-arch children 10s, 10s+1. */
export async function pushSmall(src: TestRegistry, sizes: CorpusSizes): Promise<Corpus> {
  const images: CorpusImage[] = [];
  for (let r = 0; r < sizes.smallRepos; r++) {
    const repository = `small/r${String(r).padStart(2, "0")}`;
    const multi = r % 3 === 0;
    for (const [t, tag] of ["1.0", "1.1"].entries()) {
      // Single-arch seeds 1..99, multi-arch seeds 100.. (children 1000..): no layer is shared.
      const seed = multi ? 100 + r * 2 + t : 1 + r * 2 + t;
      const kind = multi ? MULTI[(r / 3 + t) % 2] : SINGLE[(r + t) % 2];
      await pushTestImage(src, `${repository}:${tag}`, {
        kind,
        seed,
        layers: 3,
        layerSize: layerSize(seed, sizes.smallMinLayer, sizes.smallMaxLayer),
      });
      images.push({ repository, tag, kind });
    }
  }
  return await describe(src, "small", images);
}

/** Push the `many` corpus: tiny single-layer schema2 images, seeds 5000.. */
export async function pushMany(src: TestRegistry, sizes: CorpusSizes): Promise<Corpus> {
  const images: CorpusImage[] = [];
  for (let r = 0; r < sizes.manyRepos; r++) {
    const repository = `many/m${String(r).padStart(2, "0")}`;
    for (let t = 0; t < sizes.manyTagsPerRepo; t++) {
      const tag = `1.${t}`;
      const seed = 5000 + r * 100 + t;
      await pushTestImage(src, `${repository}:${tag}`, {
        kind: "schema2",
        seed,
        layers: 1,
        layerSize: 1024,
      });
      images.push({ repository, tag, kind: "schema2" });
    }
  }
  return await describe(src, "many", images);
}

/** Push the `big` corpus: one image, one layer of `sizes.bigBytes` random bytes. */
export async function pushBig(src: TestRegistry, sizes: CorpusSizes): Promise<Corpus> {
  const image = { repository: "big/blob", tag: "1.0", kind: "oci" as const };
  await pushBigImage(src, image, { seed: 42, size: sizes.bigBytes });
  return await describe(src, "big", [image]);
}

const ACCEPT = [
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
  "application/vnd.docker.distribution.manifest.v2+json",
].join(", ");

interface ManifestJson {
  manifests?: { digest: string }[];
  config?: { digest: string; size: number };
  layers?: { digest: string; size: number }[];
}

/** Read the corpus back from the source (untimed) to list its unique blobs. */
async function describe(
  src: TestRegistry,
  name: Corpus["name"],
  images: CorpusImage[],
): Promise<Corpus> {
  const seen = new Map<string, CorpusBlob>();
  const visit = async (repository: string, ref: string): Promise<void> => {
    const res = await fetch(`${src.url}/v2/${repository}/manifests/${ref}`, {
      headers: { accept: ACCEPT },
    });
    if (!res.ok) throw new Error(`GET ${repository}:${ref} -> ${res.status}`);
    const manifest = await res.json() as ManifestJson;
    for (const child of manifest.manifests ?? []) await visit(repository, child.digest);
    for (const blob of [manifest.config, ...(manifest.layers ?? [])]) {
      if (blob) seen.set(`${repository}@${blob.digest}`, { repository, ...blob });
    }
  };
  for (const image of images) await visit(image.repository, image.tag);
  const blobs = [...seen.values()];
  return { name, images, blobs, bytes: blobs.reduce((n, b) => n + b.size, 0) };
}

/** `{ repository: [tags] }` of a corpus. */
export function tagsByRepository(corpus: Corpus): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const image of corpus.images) {
    out.set(image.repository, [...(out.get(image.repository) ?? []), image.tag]);
  }
  return out;
}
