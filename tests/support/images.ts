/**
 * Generated test images, pushed into a test registry by a small uploader of their own (independent
 * of lib/, so the product's client is tested against something it did not write). Images are
 * deterministic for a seed: layers are real gzipped tar archives holding one incompressible random
 * file (so a real dockerd can pull and verify them), configs are valid image configs whose
 * diff_ids match. `skopeoInspectRaw()` is the oracle for what a registry really holds.
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { TestRegistry } from "./registry.ts";

/** Image kinds. */
export type ImageKind = "oci" | "schema2" | "oci-index" | "docker-list";

/** What was pushed. */
export interface PushedImage {
  /** Digest of the top manifest (index for multi-arch). */
  digest: string;
  mediaType: string;
  /** Config digest (single-arch) or of the linux/amd64 child (multi-arch). */
  configDigest: string;
  /** Children of an index, with their platform. */
  children?: { platform: string; digest: string; configDigest: string }[];
  /** Layer digests of every manifest pushed. */
  layers: string[];
  /** Total bytes of blobs. */
  bytes: number;
}

/** Options for {@link pushTestImage}. */
export interface PushTestImageOptions {
  kind: ImageKind;
  seed: number;
  /** Layers per image. @default 2 */
  layers?: number;
  /** Bytes of random content per layer. @default 64 KiB */
  layerSize?: number;
  /**
   * A config label: images with the same seed and another label share every layer (and, for an
   * index, nothing else) but differ in config, manifest and digest.
   */
  label?: string;
  /** Multi-arch: the linux architectures of the children, in index order. @default amd64, arm64 */
  architectures?: string[];
}

const MT = {
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  ociIndex: "application/vnd.oci.image.index.v1+json",
  ociConfig: "application/vnd.oci.image.config.v1+json",
  ociLayer: "application/vnd.oci.image.layer.v1.tar+gzip",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerList: "application/vnd.docker.distribution.manifest.list.v2+json",
  dockerConfig: "application/vnd.docker.container.image.v1+json",
  dockerLayer: "application/vnd.docker.image.rootfs.diff.tar.gzip",
};

/** sha256 of bytes as `sha256:<hex>`. */
export function sha256(bytes: Uint8Array): string {
  return "sha256:" + createHash("sha256").update(bytes).digest("hex");
}

/** A seeded PRNG (mulberry32) filling incompressible bytes. */
export function randomBytes(seed: number, size: number): Uint8Array {
  const out = new Uint8Array(size);
  let a = seed >>> 0;
  for (let i = 0; i < size; i += 4) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const v = (t ^ (t >>> 14)) >>> 0;
    out[i] = v & 0xff;
    if (i + 1 < size) out[i + 1] = (v >>> 8) & 0xff;
    if (i + 2 < size) out[i + 2] = (v >>> 16) & 0xff;
    if (i + 3 < size) out[i + 3] = (v >>> 24) & 0xff;
  }
  return out;
}

/** A tar archive with one regular file. */
export function tarOf(name: string, content: Uint8Array): Uint8Array {
  const header = new Uint8Array(512);
  const enc = new TextEncoder();
  const put = (offset: number, text: string) => header.set(enc.encode(text), offset);
  put(0, name);
  put(100, "0000644\0");
  put(108, "0000000\0");
  put(116, "0000000\0");
  put(124, content.length.toString(8).padStart(11, "0") + "\0");
  put(136, "00000000000\0");
  put(148, "        ");
  put(156, "0");
  put(257, "ustar\0");
  put(263, "00");
  let sum = 0;
  for (const b of header) sum += b;
  put(148, sum.toString(8).padStart(6, "0") + "\0 ");
  const padded = Math.ceil(content.length / 512) * 512;
  const tar = new Uint8Array(512 + padded + 1024);
  tar.set(header, 0);
  tar.set(content, 512);
  return tar;
}

/** gzip bytes with CompressionStream (deterministic: no name, no mtime). */
export async function gzip(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
    new CompressionStream("gzip"),
  );
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** A generated image: its blobs by digest and its manifest. */
export interface Built {
  blobs: Map<string, Uint8Array>;
  manifest: Uint8Array;
  mediaType: string;
  configDigest: string;
  layers: string[];
}

/** Generate (not push) a single-platform image from `seed`. */
export async function buildImage(
  seed: number,
  oci: boolean,
  arch: string,
  options: { layers: number; layerSize: number; label?: string },
): Promise<Built> {
  const blobs = new Map<string, Uint8Array>();
  const layers: { digest: string; size: number }[] = [];
  const diffIds: string[] = [];
  for (let i = 0; i < options.layers; i++) {
    const tar = tarOf(
      `layer-${seed}-${i}.bin`,
      randomBytes(seed * 1000 + i * 17 + 1, options.layerSize),
    );
    diffIds.push(sha256(tar));
    const gz = await gzip(tar);
    const digest = sha256(gz);
    blobs.set(digest, gz);
    layers.push({ digest, size: gz.length });
  }
  const config = new TextEncoder().encode(JSON.stringify({
    architecture: arch,
    os: "linux",
    created: "2024-01-01T00:00:00Z",
    config: {
      Env: ["PATH=/usr/bin:/bin"],
      Labels: {
        "org.bananna.seed": String(seed),
        ...(options.label === undefined ? {} : { "org.bananna.label": options.label }),
      },
    },
    rootfs: { type: "layers", diff_ids: diffIds },
    history: diffIds.map((_, i) => ({ created: "2024-01-01T00:00:00Z", created_by: `layer ${i}` })),
  }));
  const configDigest = sha256(config);
  blobs.set(configDigest, config);
  const mediaType = oci ? MT.ociManifest : MT.dockerManifest;
  const manifest = new TextEncoder().encode(JSON.stringify({
    schemaVersion: 2,
    mediaType,
    config: {
      mediaType: oci ? MT.ociConfig : MT.dockerConfig,
      digest: configDigest,
      size: config.length,
    },
    layers: layers.map((l) => ({
      mediaType: oci ? MT.ociLayer : MT.dockerLayer,
      digest: l.digest,
      size: l.size,
    })),
  }));
  return { blobs, manifest, mediaType, configDigest, layers: layers.map((l) => l.digest) };
}

/** Generate an image of `kind` from `seed` and push it as `repo:tag`. */
export async function pushTestImage(
  reg: TestRegistry,
  repoTag: string,
  options: PushTestImageOptions,
): Promise<PushedImage> {
  const [repo, tag] = repoTag.split(":");
  const pusher = new Pusher(reg);
  try {
    const sizes = {
      layers: options.layers ?? 2,
      layerSize: options.layerSize ?? 64 * 1024,
      label: options.label,
    };
    const multi = options.kind === "oci-index" || options.kind === "docker-list";
    const oci = options.kind === "oci" || options.kind === "oci-index";
    if (!multi) {
      const image = await buildImage(options.seed, oci, "amd64", sizes);
      let bytes = 0;
      for (const [digest, blob] of image.blobs) bytes += await pusher.blob(repo, digest, blob);
      await pusher.manifest(repo, tag, image.mediaType, image.manifest);
      return {
        digest: sha256(image.manifest),
        mediaType: image.mediaType,
        configDigest: image.configDigest,
        layers: image.layers,
        bytes,
      };
    }
    const children: NonNullable<PushedImage["children"]> = [];
    const descriptors = [];
    const layers: string[] = [];
    let bytes = 0;
    for (const [i, arch] of (options.architectures ?? ["amd64", "arm64"]).entries()) {
      const image = await buildImage(options.seed * 10 + i, oci, arch, sizes);
      for (const [digest, blob] of image.blobs) bytes += await pusher.blob(repo, digest, blob);
      const digest = sha256(image.manifest);
      await pusher.manifest(repo, digest, image.mediaType, image.manifest);
      children.push({ platform: `linux/${arch}`, digest, configDigest: image.configDigest });
      layers.push(...image.layers);
      descriptors.push({
        mediaType: image.mediaType,
        digest,
        size: image.manifest.length,
        platform: { architecture: arch, os: "linux" },
      });
    }
    const mediaType = oci ? MT.ociIndex : MT.dockerList;
    const index = new TextEncoder().encode(
      JSON.stringify({ schemaVersion: 2, mediaType, manifests: descriptors }),
    );
    await pusher.manifest(repo, tag, mediaType, index);
    return {
      digest: sha256(index),
      mediaType,
      configDigest: children[0].configDigest,
      children,
      layers,
      bytes,
    };
  } finally {
    pusher.close();
  }
}

/** A minimal uploader: monolithic POST+PUT, Basic or Bearer auth from the challenge. */
class Pusher {
  #reg: TestRegistry;
  #client?: Deno.HttpClient;
  #auth = new Map<string, string>();

  constructor(reg: TestRegistry) {
    this.#reg = reg;
    if (reg.caFile) {
      this.#client = Deno.createHttpClient({ caCerts: [Deno.readTextFileSync(reg.caFile)] });
    }
  }

  close() {
    this.#client?.close();
  }

  async #fetch(repo: string, url: string, init: RequestInit): Promise<Response> {
    for (let attempt = 0; attempt < 2; attempt++) {
      const headers = new Headers(init.headers);
      const auth = this.#auth.get(repo);
      if (auth) headers.set("authorization", auth);
      const res = await fetch(url, { ...init, headers, client: this.#client, redirect: "manual" });
      if (res.status !== 401 || attempt === 1) return res;
      const challenge = res.headers.get("www-authenticate") ?? "";
      await res.body?.cancel();
      const { username, password } = this.#reg;
      const basic = `Basic ${btoa(`${username}:${password}`)}`;
      if (/^basic/i.test(challenge)) {
        this.#auth.set(repo, basic);
      } else {
        const params = Object.fromEntries(
          [...challenge.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]),
        );
        const tokenUrl = new URL(params.realm);
        tokenUrl.searchParams.set("service", params.service);
        tokenUrl.searchParams.append("scope", `repository:${repo}:pull,push`);
        const tokenRes = await fetch(tokenUrl, {
          headers: { authorization: basic },
          client: this.#client,
        });
        const body = await tokenRes.json();
        this.#auth.set(repo, `Bearer ${body.token ?? body.access_token}`);
      }
    }
    throw new Error("unreachable");
  }

  async blob(repo: string, digest: string, bytes: Uint8Array): Promise<number> {
    const base = this.#reg.url;
    const head = await this.#fetch(repo, `${base}/v2/${repo}/blobs/${digest}`, { method: "HEAD" });
    if (head.status === 200) return 0;
    const post = await this.#fetch(repo, `${base}/v2/${repo}/blobs/uploads/`, { method: "POST" });
    await post.body?.cancel();
    if (post.status !== 202) throw new Error(`upload POST ${repo}: ${post.status}`);
    const location = new URL(post.headers.get("location") ?? "", base);
    location.searchParams.set("digest", digest);
    const put = await this.#fetch(repo, location.href, {
      method: "PUT",
      headers: { "content-type": "application/octet-stream" },
      body: bytes as Uint8Array<ArrayBuffer>,
    });
    const text = await put.text();
    if (put.status !== 201) throw new Error(`upload PUT ${repo} ${digest}: ${put.status} ${text}`);
    return bytes.length;
  }

  async manifest(repo: string, ref: string, mediaType: string, bytes: Uint8Array): Promise<void> {
    const res = await this.#fetch(repo, `${this.#reg.url}/v2/${repo}/manifests/${ref}`, {
      method: "PUT",
      headers: { "content-type": mediaType },
      body: bytes as Uint8Array<ArrayBuffer>,
    });
    const text = await res.text();
    if (res.status !== 201) throw new Error(`manifest PUT ${repo}:${ref}: ${res.status} ${text}`);
  }
}

/** skopeo's view of `repo:tag` in `reg`: the raw manifest and its digest (the oracle). */
export async function skopeoInspectRaw(
  reg: TestRegistry,
  repoTag: string,
): Promise<{ digest: string; manifest: Record<string, unknown>; bytes: Uint8Array }> {
  const args = ["inspect", "--raw", ...skopeoTlsArgs(reg)];
  const authDir = await Deno.makeTempDir();
  try {
    if (reg.username) {
      const authfile = `${authDir}/auth.json`;
      await Deno.writeTextFile(
        authfile,
        JSON.stringify({
          auths: { [reg.host]: { auth: btoa(`${reg.username}:${reg.password}`) } },
        }),
      );
      args.push("--authfile", authfile);
    }
    args.push(`docker://${reg.host}/${repoTag}`);
    const out = await new Deno.Command("skopeo", { args, stdout: "piped", stderr: "piped" })
      .output();
    if (!out.success) {
      throw new Error(`skopeo ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
    }
    return {
      digest: sha256(out.stdout),
      manifest: JSON.parse(new TextDecoder().decode(out.stdout)),
      bytes: out.stdout,
    };
  } finally {
    await Deno.remove(authDir, { recursive: true });
  }
}

/** skopeo's TLS flags for a test registry. */
export function skopeoTlsArgs(reg: TestRegistry): string[] {
  if (reg.scheme === "http") return ["--tls-verify=false"];
  return [`--cert-dir=${reg.caFile?.replace(/\/[^/]+$/, "")}`];
}

/**
 * The digest the registry reports for `repo:tag` on a HEAD (Docker-Content-Digest), asked with a
 * plain fetch and the first user's Basic credentials: a cheaper oracle than skopeo for many tags.
 * Null when the tag is absent.
 */
export async function headDigest(reg: TestRegistry, repoTag: string): Promise<string | null> {
  const [repo, tag] = repoTag.split(":");
  const client = reg.caFile
    ? Deno.createHttpClient({ caCerts: [await Deno.readTextFile(reg.caFile)] })
    : undefined;
  try {
    const accept = [MT.ociIndex, MT.ociManifest, MT.dockerList, MT.dockerManifest].join(", ");
    const headers: Record<string, string> = { accept };
    if (reg.username) headers.authorization = `Basic ${btoa(`${reg.username}:${reg.password}`)}`;
    const res = await fetch(`${reg.url}/v2/${repo}/manifests/${tag}`, {
      method: "HEAD",
      headers,
      client,
    });
    await res.body?.cancel();
    if (res.status === 404) return null;
    if (res.status !== 200) throw new Error(`HEAD ${repoTag}: ${res.status}`);
    return res.headers.get("docker-content-digest");
  } finally {
    client?.close();
  }
}

/**
 * Push prepared blobs and then a manifest as `repo:ref` with the same small uploader (for fixtures
 * built elsewhere, e.g. cosign_fixture.ts). Returns the manifest digest.
 */
export async function pushManifestWithBlobs(
  reg: TestRegistry,
  repoRef: string,
  options: { mediaType: string; manifest: Uint8Array; blobs: Iterable<Uint8Array> },
): Promise<string> {
  const [repo, ref] = repoRef.split(/:(.*)/s);
  const pusher = new Pusher(reg);
  try {
    for (const blob of options.blobs) await pusher.blob(repo, sha256(blob), blob);
    await pusher.manifest(repo, ref, options.mediaType, options.manifest);
    return sha256(options.manifest);
  } finally {
    pusher.close();
  }
}
