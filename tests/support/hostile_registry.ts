/**
 * A hostile source registry on loopback: it answers the OCI distribution API from tables the test
 * fills in, and can lie in every way a broken or malicious registry can: descriptors whose
 * "digest" is a path, `Docker-Content-Digest` headers that are not digests, blobs longer or shorter
 * than their descriptor or with a flipped byte, bodies that never end (64 KiB chunks for as long as
 * they are read, up to bounded.ts's ceiling), huge manifests, and malformed JSON. Anonymous, plain
 * http. It counts the requests and the bytes it streamed, so a test can prove a body was cut early
 * and nothing was retried.
 *
 * ```ts ignore
 * await using src = startHostileRegistry();
 * const image = hostileImage(1);
 * src.serveImage("1", image);
 * ```
 *
 * Also: {@link startUploadWatch}, a pass-through proxy in front of the destination that records
 * which blob-upload PUTs delivered their whole body (to prove a bad blob was stopped before its
 * final PUT completed, not caught by the destination's own check).
 *
 * @module
 */
import { endlessBody } from "./bounded.ts";
import { randomBytes, sha256 } from "./images.ts";
import { forward } from "./proxy.ts";
import type { TestRegistry } from "./registry.ts";

/** How one manifest or blob is answered. */
export interface HostileEntry {
  /** The body (unless `stream` is set). */
  bytes?: Uint8Array;
  /** Content-Type (manifests). */
  mediaType?: string;
  /** Instead of `bytes`: a generated body of `bytes` bytes, or one that never ends. No length. */
  stream?: { kind: "endless" } | { kind: "sized"; bytes: number };
  /** Extra or overriding headers (e.g. a lying `docker-content-digest` or `content-length`). */
  headers?: Record<string, string>;
  /** Status of the answer. @default 200 */
  status?: number;
}

/** A generated OCI image: its manifest bytes and digest, and its blobs by digest. */
export interface HostileImage {
  manifest: Uint8Array;
  digest: string;
  mediaType: string;
  config: { digest: string; size: number };
  layers: { digest: string; size: number }[];
  blobs: Map<string, Uint8Array>;
}

/** A running hostile registry. */
export interface HostileRegistry extends AsyncDisposable {
  /** `127.0.0.1:PORT`. */
  host: string;
  url: string;
  /** Manifests by reference (tag or digest), whatever the repository. */
  manifests: Map<string, HostileEntry>;
  /** Answer for a manifest reference not in `manifests` (default: 404). */
  fallbackManifest?: HostileEntry;
  /** Blobs by digest, whatever the repository. */
  blobs: Map<string, HostileEntry>;
  /** Tag list answers by repository (default: the tags of `manifests`). */
  tagLists: Map<string, HostileEntry>;
  /** The referrers API (`GET /v2/<name>/referrers/<digest>`); unset: none (404). */
  referrers?: (url: URL) => Response;
  /** Requests so far: `METHOD /path`. */
  requests: string[];
  /** Bytes of generated (`stream`) bodies handed to the network so far. */
  streamedBytes(): number;
  /** Serve `image` under `tag` (manifest by tag and by digest, its blobs). */
  serveImage(tag: string, image: HostileImage): void;
  stop(): Promise<void>;
}

const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX = "application/vnd.oci.image.index.v1+json";
const CHUNK = 64 * 1024;

/** JSON bytes of `value`. */
export function jsonBytes(value: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(value));
}

/** A small OCI image from `seed`: a JSON config and `layers` random layers of `layerSize` bytes. */
export function hostileImage(
  seed: number,
  options: { layers?: number; layerSize?: number } = {},
): HostileImage {
  const blobs = new Map<string, Uint8Array>();
  const config = jsonBytes({
    architecture: "amd64",
    os: "linux",
    rootfs: { type: "layers", diff_ids: [] },
    seed,
  });
  const configDigest = sha256(config);
  blobs.set(configDigest, config);
  const layers = [];
  for (let i = 0; i < (options.layers ?? 1); i++) {
    const bytes = randomBytes(seed * 100 + i, options.layerSize ?? 32 * 1024);
    const digest = sha256(bytes);
    blobs.set(digest, bytes);
    layers.push({ digest, size: bytes.length });
  }
  const manifest = jsonBytes({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: {
      mediaType: "application/vnd.oci.image.config.v1+json",
      digest: configDigest,
      size: config.length,
    },
    layers: layers.map((l) => ({ mediaType: "application/vnd.oci.image.layer.v1.tar", ...l })),
  });
  return {
    manifest,
    digest: sha256(manifest),
    mediaType: OCI_MANIFEST,
    config: { digest: configDigest, size: config.length },
    layers,
    blobs,
  };
}

/** Index bytes whose children are `children` (digests taken as given, however hostile). */
export function hostileIndex(children: { digest: unknown; size?: unknown }[]): Uint8Array {
  return jsonBytes({
    schemaVersion: 2,
    mediaType: OCI_INDEX,
    manifests: children.map((c) => ({
      mediaType: OCI_MANIFEST,
      digest: c.digest,
      size: c.size ?? 100,
      platform: { os: "linux", architecture: "amd64" },
    })),
  });
}

/** A body of generated bytes: `bytes` of them, or endless; `onBytes` counts what is produced. */
function generated(
  spec: NonNullable<HostileEntry["stream"]>,
  onBytes: (n: number) => void,
): ReadableStream<Uint8Array> {
  const filler = new Uint8Array(CHUNK).fill(0x61); // "a"
  // "Endless" stops at the ceiling with an error, so a client whose cap regressed ends too.
  if (spec.kind === "endless") return endlessBody(filler, onBytes);
  let left = spec.bytes;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (left <= 0) return controller.close();
      const n = Math.min(CHUNK, left);
      left -= n;
      onBytes(n);
      controller.enqueue(filler.slice(0, n));
    },
  }, { highWaterMark: 0 });
}

/** The answer for `entry` (headers only for HEAD); `onBytes` counts generated bytes. */
export function hostileResponse(
  entry: HostileEntry,
  options: { method: string; onBytes?: (n: number) => void },
): Response {
  const { method, onBytes = () => {} } = options;
  const headers = new Headers();
  if (entry.mediaType) headers.set("content-type", entry.mediaType);
  if (entry.bytes && !entry.stream) {
    headers.set("content-length", String(entry.bytes.length));
    headers.set("docker-content-digest", sha256(entry.bytes));
  }
  for (const [k, v] of Object.entries(entry.headers ?? {})) headers.set(k, v);
  const status = entry.status ?? 200;
  if (method === "HEAD") return new Response(null, { status, headers });
  const body = entry.stream
    ? generated(entry.stream, onBytes)
    : (entry.bytes ?? new Uint8Array()) as Uint8Array<ArrayBuffer>;
  return new Response(body, { status, headers });
}

/** Start a hostile registry on 127.0.0.1. */
export function startHostileRegistry(): HostileRegistry {
  const manifests = new Map<string, HostileEntry>();
  const blobs = new Map<string, HostileEntry>();
  const tagLists = new Map<string, HostileEntry>();
  const requests: string[] = [];
  let streamed = 0;

  const answer = (entry: HostileEntry, method: string): Response =>
    hostileResponse(entry, { method, onBytes: (n) => streamed += n });

  const notFound = (code: string) =>
    new Response(JSON.stringify({ errors: [{ code, message: "unknown" }] }), {
      status: 404,
      headers: { "content-type": "application/json" },
    });

  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const url = new URL(req.url);
    requests.push(`${req.method} ${url.pathname}`);
    await req.body?.cancel();
    if (url.pathname === "/v2/") return new Response("{}", { status: 200 });
    if (/^\/v2\/.+\/referrers\/[^/]+$/.test(url.pathname) && registry.referrers) {
      return registry.referrers(url);
    }
    const m = /^\/v2\/(.+)\/(manifests|blobs|tags)\/(.+)$/.exec(url.pathname);
    if (!m) return notFound("NAME_UNKNOWN");
    const [, repository, kind, ref] = m;
    if (kind === "manifests") {
      const entry = manifests.get(ref) ?? registry.fallbackManifest;
      return entry ? answer(entry, req.method) : notFound("MANIFEST_UNKNOWN");
    }
    if (kind === "blobs") {
      const entry = blobs.get(ref);
      return entry ? answer(entry, req.method) : notFound("BLOB_UNKNOWN");
    }
    const list = tagLists.get(repository) ?? {
      bytes: jsonBytes({
        name: repository,
        tags: [...manifests.keys()].filter((k) => !k.includes(":")),
      }),
      mediaType: "application/json",
    };
    return answer(list, req.method);
  });
  const host = `127.0.0.1:${(server.addr as Deno.NetAddr).port}`;
  const stop = async () => {
    await server.shutdown();
  };
  const registry: HostileRegistry = {
    host,
    url: `http://${host}`,
    manifests,
    blobs,
    tagLists,
    requests,
    streamedBytes: () => streamed,
    serveImage(tag, image) {
      const entry = { bytes: image.manifest, mediaType: image.mediaType };
      manifests.set(tag, entry);
      manifests.set(image.digest, entry);
      for (const [digest, bytes] of image.blobs) blobs.set(digest, { bytes });
    },
    stop,
    [Symbol.asyncDispose]: stop,
  };
  return registry;
}

/** A proxy in front of a destination registry that watches blob-upload PUT bodies. */
export interface UploadWatch extends AsyncDisposable {
  host: string;
  /** Digests (`?digest=`) of blob-upload PUTs whose request body arrived in full. */
  completedUploads: string[];
  /** Digests of blob-upload PUTs whose body broke off before its end. */
  brokenUploads: string[];
  /** Requests so far: `METHOD /path`. */
  requests: string[];
  stop(): Promise<void>;
}

/**
 * Start a pass-through proxy to `upstream` that counts blob-upload PUTs by whether their body was
 * delivered in full (the body is read through here before it is forwarded).
 */
export function startUploadWatch(upstream: TestRegistry): UploadWatch {
  let host = "";
  const watch = {
    host: "",
    completedUploads: [] as string[],
    brokenUploads: [] as string[],
    requests: [] as string[],
  };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const url = new URL(req.url);
    watch.requests.push(`${req.method} ${url.pathname}`);
    if (req.method === "PUT" && url.pathname.includes("/blobs/uploads/") && req.body) {
      // Buffer the body (test blobs are small): only a body that ended cleanly is forwarded.
      let bytes: Uint8Array;
      try {
        bytes = new Uint8Array(await new Response(req.body).arrayBuffer());
      } catch {
        watch.brokenUploads.push(url.searchParams.get("digest") ?? "");
        return new Response(null, { status: 400 });
      }
      watch.completedUploads.push(url.searchParams.get("digest") ?? "");
      const headers = new Headers(req.headers);
      headers.delete("transfer-encoding");
      headers.set("content-length", String(bytes.length));
      return await forward(
        new Request(req.url, {
          method: "PUT",
          headers,
          body: bytes as Uint8Array<ArrayBuffer>,
        }),
        upstream.url,
        host,
      );
    }
    return await forward(req, upstream.url, host);
  });
  host = `127.0.0.1:${(server.addr as Deno.NetAddr).port}`;
  watch.host = host;
  const stop = async () => {
    await server.shutdown();
  };
  return Object.assign(watch, { stop, [Symbol.asyncDispose]: stop });
}
