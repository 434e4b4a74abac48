/**
 * A registry that accepts sparse manifest lists, the way Quay does with FEATURE_SPARSE_INDEX
 * (shared/registry-protocols.md §5.14): a proxy in front of a real distribution 2.8 (which itself
 * refuses an index whose children are missing). What it models, and nothing more:
 *
 * - `GET /v2/` answers as the registry does, plus `X-Sparse-Manifest-Support: true` (or `false`,
 *   or no header: `support` option), as Quay's `GET /v2/` does.
 * - `PUT /v2/<name>/manifests/<ref>` of an index (OCI index or Docker manifest list): each child is
 *   HEADed at the registry. All there: the PUT goes through unchanged. Some missing, with support
 *   `true`: the proxy keeps the exact bytes itself (by digest, and by tag when `ref` is a tag) and
 *   answers `201` with `Docker-Content-Digest` and `Location`, as Quay stores a sparse index.
 *   Otherwise the PUT goes to the registry, which refuses it (MANIFEST_BLOB_UNKNOWN).
 * - `GET`/`HEAD /v2/<name>/manifests/<ref>` of a kept index is answered from those bytes (type,
 *   digest, length); everything else streams through (blobs, uploads, children, other manifests).
 * - `GET /v2/<name>/tags/list` adds the kept tags to the registry's list.
 * - A later PUT of a complete index to a kept tag goes to the registry and drops the kept one.
 *
 * Not modelled: Quay's API, auth, temporary tags of digest pushes, quota, garbage collection.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { forward } from "./proxy.ts";
import type { TestRegistry } from "./registry.ts";

/** A running sparse-index proxy. */
export interface SparseRegistry extends AsyncDisposable {
  /** `127.0.0.1:PORT`. */
  host: string;
  /** `http://127.0.0.1:PORT`. */
  url: string;
  /** The sparse index PUTs kept so far, in arrival order (`name:ref@digest`). */
  sparseStored: string[];
  /** Requests the proxy received so far (answered by itself or passed on). */
  requests(): number;
  /** Those requests as `METHOD /path`, in arrival order. */
  requestLog(): string[];
  stop(): Promise<void>;
}

const INDEX_TYPES = new Set([
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
]);
const MANIFESTS = /^\/v2\/(.+)\/manifests\/([^/]+)$/;
const TAG_LIST = /^\/v2\/(.+)\/tags\/list$/;

/** Start the proxy in front of `upstream` (plain http on 127.0.0.1). */
export function startSparseRegistry(
  upstream: TestRegistry,
  options: { support?: "true" | "false" | null } = {},
): SparseRegistry {
  const support = options.support === undefined ? "true" : options.support;
  const kept = new Map<string, { bytes: Uint8Array; mediaType: string; digest: string }>();
  const sparseStored: string[] = [];
  let host = "";
  const log: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const url = new URL(req.url);
    log.push(`${req.method} ${url.pathname}`);
    if (url.pathname === "/v2/" || url.pathname === "/v2") {
      const res = await forward(req, upstream.url, host);
      const headers = new Headers(res.headers);
      if (support !== null) headers.set("x-sparse-manifest-support", support);
      return new Response(res.body, { status: res.status, headers });
    }
    const manifest = MANIFESTS.exec(url.pathname);
    if (manifest) {
      const [, name, ref] = manifest;
      const stored = kept.get(`${name}:${ref}`) ?? kept.get(`${name}@${ref}`);
      if ((req.method === "GET" || req.method === "HEAD") && stored) {
        const headers = {
          "content-type": stored.mediaType,
          "docker-content-digest": stored.digest,
          "content-length": String(stored.bytes.length),
        };
        return new Response(req.method === "GET" ? stored.bytes as BodyInit : null, { headers });
      }
      const type = (req.headers.get("content-type") ?? "").split(";")[0].trim();
      if (req.method === "PUT" && INDEX_TYPES.has(type)) {
        const bytes = new Uint8Array(await req.arrayBuffer());
        const children = (JSON.parse(new TextDecoder().decode(bytes)).manifests ?? []) as {
          digest: string;
        }[];
        let missing = 0;
        for (const child of children) {
          const head = await fetch(`${upstream.url}/v2/${name}/manifests/${child.digest}`, {
            method: "HEAD",
            headers: {
              accept: [
                ...INDEX_TYPES,
                "application/vnd.oci.image.manifest.v1+json",
                "application/vnd.docker.distribution.manifest.v2+json",
              ].join(", "),
            },
          });
          await head.body?.cancel();
          if (head.status === 404) missing++;
        }
        if (missing > 0 && support === "true") {
          const digest = "sha256:" + createHash("sha256").update(bytes).digest("hex");
          const entry = { bytes, mediaType: type, digest };
          kept.set(`${name}@${digest}`, entry);
          if (!ref.includes(":")) kept.set(`${name}:${ref}`, entry);
          sparseStored.push(`${name}:${ref}@${digest}`);
          return new Response(null, {
            status: 201,
            headers: {
              "docker-content-digest": digest,
              location: `/v2/${name}/manifests/${digest}`,
            },
          });
        }
        kept.delete(`${name}:${ref}`);
        const headers = new Headers(req.headers);
        headers.delete("host");
        const res = await fetch(new URL(url.pathname + url.search, upstream.url), {
          method: "PUT",
          headers,
          body: bytes as BodyInit,
        });
        return new Response(res.body, { status: res.status, headers: res.headers });
      }
    }
    const tagList = req.method === "GET" ? TAG_LIST.exec(url.pathname) : null;
    if (tagList) {
      const name = tagList[1];
      const res = await fetch(new URL(url.pathname, upstream.url), { headers: req.headers });
      const body = res.status === 200
        ? await res.json() as { name: string; tags: string[] | null }
        : (await res.body?.cancel(), { name, tags: [] });
      const mine = [...kept.keys()].filter((k) => k.startsWith(`${name}:`)).map((k) =>
        k.slice(name.length + 1)
      );
      const tags = [...new Set([...(body.tags ?? []), ...mine])];
      if (res.status !== 200 && mine.length === 0) {
        return Response.json({ errors: [{ code: "NAME_UNKNOWN", message: "unknown" }] }, {
          status: 404,
        });
      }
      return Response.json({ name, tags });
    }
    return await forward(req, upstream.url, host);
  });
  const addr = server.addr as Deno.NetAddr;
  host = `127.0.0.1:${addr.port}`;
  const stop = async () => {
    await server.shutdown();
  };
  return {
    host,
    url: `http://${host}`,
    sparseStored,
    requests: () => log.length,
    requestLog: () => [...log],
    stop,
    [Symbol.asyncDispose]: stop,
  };
}
