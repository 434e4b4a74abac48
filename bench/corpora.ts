/**
 * Benchmark corpora: deterministic (seeded) images pushed into the source registry.
 *
 * - `small`: repositories x 2 tags, 3 layers of 0.5-2 MB; every third repository multi-arch
 *   (alternately an OCI index and a Docker manifest list, two platforms, distinct layers).
 * - `many`: tiny single-layer tags spread over repositories (the no-op re-run corpus).
 * - `big`: one image with a single large layer (see big_image.ts).
 * - `select`: one repository with many tags of one tiny image (tags added by manifest PUT), of
 *   which a semver range selects the newest few (the tag-selection no-op corpus).
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
  /** Tags in the `select` repository, and how many of them its semver range selects. */
  selectTags: number;
  selectSelected: number;
}

/** Full sizes, as in the issue. */
export const FULL: CorpusSizes = {
  smallRepos: 20,
  smallMinLayer: 512 * 1024,
  smallMaxLayer: 2 * 1024 * 1024,
  manyRepos: 30,
  manyTagsPerRepo: 10,
  bigBytes: 1024 * 1024 * 1024,
  selectTags: 1000,
  selectSelected: 300,
};

/** Development sizes (`--quick`). */
export const QUICK: CorpusSizes = {
  smallRepos: 3,
  smallMinLayer: 64 * 1024,
  smallMaxLayer: 256 * 1024,
  manyRepos: 3,
  manyTagsPerRepo: 4,
  bigBytes: 32 * 1024 * 1024,
  selectTags: 100,
  selectSelected: 30,
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
  name: "small" | "many" | "big" | "select";
  /** The tags to mirror (for `select`: the tags its rule selects, in listing order). */
  images: CorpusImage[];
  /** `select` only: the source repository, how many tags it lists and the rule selecting `images`. */
  selection?: { repository: string; listed: number; semver: string };
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

/** Tag `i` of the `select` repository: `1.<i / 100>.<i % 100>` (1.0.0 ... 1.9.99 for 1,000). */
function selectTag(i: number): string {
  return `1.${Math.floor(i / 100)}.${i % 100}`;
}

/**
 * Push the `select` corpus: one tiny schema2 image (seed 9000) under `sizes.selectTags` tags of
 * `select/app` (the first by a push, the rest by PUTting the same manifest, 8 at a time); the
 * semver range `>=<tag N-S>` selects the last `sizes.selectSelected` of them.
 */
export async function pushSelect(src: TestRegistry, sizes: CorpusSizes): Promise<Corpus> {
  const repository = "select/app";
  const first = selectTag(0);
  await pushTestImage(src, `${repository}:${first}`, {
    kind: "schema2",
    seed: 9000,
    layers: 1,
    layerSize: 1024,
  });
  const res = await fetch(`${src.url}/v2/${repository}/manifests/${first}`, {
    headers: { accept: ACCEPT },
  });
  if (!res.ok) throw new Error(`GET ${repository}:${first} -> ${res.status}`);
  const contentType = res.headers.get("content-type") ?? "";
  const body = new Uint8Array(await res.arrayBuffer());
  const rest = Array.from({ length: sizes.selectTags - 1 }, (_, i) => selectTag(i + 1));
  const put = async () => {
    for (let tag = rest.shift(); tag !== undefined; tag = rest.shift()) {
      const out = await fetch(`${src.url}/v2/${repository}/manifests/${tag}`, {
        method: "PUT",
        headers: { "content-type": contentType },
        body,
      });
      await out.body?.cancel();
      if (out.status !== 201) throw new Error(`PUT ${repository}:${tag} -> ${out.status}`);
    }
  };
  await Promise.all(Array.from({ length: 8 }, put));
  const from = sizes.selectTags - sizes.selectSelected;
  const images: CorpusImage[] = [];
  for (let i = from; i < sizes.selectTags; i++) {
    images.push({ repository, tag: selectTag(i), kind: "schema2" });
  }
  const corpus = await describe(src, "select", images);
  return {
    ...corpus,
    selection: { repository, listed: sizes.selectTags, semver: `>=${selectTag(from)}` },
  };
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
