/**
 * RegistryClient: the OCI distribution API for one registry host (method names after regclient).
 * It maps methods to endpoints; TLS, timeouts and redirects live in registry_http.ts, challenges
 * and tokens in registry_auth.ts. Absence is a value (404 -> null); every other failure throws a
 * RegistryError with a catalogue code. Requests that can pass (network, 408, 429, 5xx) are retried
 * with backoff and jitter, honouring Retry-After; 400/401/403/404 never are.
 *
 * Blobs stream: a GET body is piped into the upload while its sha256 is computed on the way, so
 * memory stays bounded whatever the blob size (one chunk, at most 8 MiB, when the registry wants
 * chunks); a digest mismatch aborts the upload.
 *
 * A registry is not trusted with anything that steers a request or costs memory: URLs are built
 * only from repository names, tags and digests of the reference grammar (anything else is
 * IMAGE_MANIFEST_INVALID before a request is made), every `Docker-Content-Digest` is checked
 * against the digest grammar, manifests and tag lists are read under `maxManifestBytes`
 * (IMAGE_MANIFEST_TOO_LARGE, reading stops at the cap), and a blob stream is cut the moment it
 * passes its descriptor's size (IMAGE_DIGEST_MISMATCH, never retried, upload session deleted).
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { Credential } from "../credentials/credential.ts";
import type { Code } from "../log/codes.ts";
import { type Secrets, secrets as runSecrets } from "../log/redact.ts";
import { retry, type RetryOptions, waitTooLongMessage } from "../retry.ts";
import { MirrorError } from "../errors.ts";
import {
  digestLike,
  MANIFEST_ACCEPT,
  parseManifest,
  selectPlatform,
  sha256Digest,
} from "./manifest.ts";
import { apiHost, isValidRepository, isValidTag, validDigest } from "./reference.ts";
import { RegistryAuth } from "./registry_auth.ts";
import {
  isRetryable,
  parseErrorBody,
  readBodyCapped,
  readCapped,
  redactUrl,
  RegistryError,
} from "./registry_error.ts";
import { type HttpRequest, RegistryHttp } from "./registry_http.ts";
import { parseRetryAfter } from "../retry.ts";

/** Options for {@link RegistryClient}. */
export interface RegistryClientOptions {
  /** Registry name as in references: `docker.io`, `quay.io`, `127.0.0.1:5000`. */
  host: string;
  scheme: "http" | "https";
  caFile?: string;
  credential?: Credential | null;
  /** Time until response headers, per request. @default 30000 */
  timeoutMs?: number;
  /** @default 3 */
  maxRetries?: number;
  /** @default 1000 */
  retryDelayMs?: number;
  /**
   * Longest single wait before a retry, in ms (operation.maxRetryWait). A registry that asks for
   * a longer one (Retry-After) fails that request at once with IMAGE_RATE_LIMITED. @default 300000
   */
  maxRetryWaitMs?: number;
  /** @default the run-wide secrets */
  secrets?: Secrets;
  /** Told before each wait for a retry: the failure, the retry number (1..) and the wait. */
  onRetry?: (error: unknown, retry: number, delayMs: number) => void;
  /**
   * Bytes a manifest or a tag-list page may have (`operation.maxManifestBytes`); a larger body
   * fails IMAGE_MANIFEST_TOO_LARGE. @default 4 MiB
   */
  maxManifestBytes?: number;
}

/** The manifest cap of distribution and containers/image. */
export const DEFAULT_MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

/** A descriptor as a HEAD reports it. */
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

/** A manifest's exact bytes. */
export interface ManifestBytes {
  mediaType: string;
  digest: string;
  bytes: Uint8Array;
}

interface Call {
  method: string;
  /** Path below /v2/ or an absolute URL (upload locations). */
  path: string | URL;
  repository: string;
  /** Scopes beyond `repository:<repository>:<actions>`. */
  extraScopes?: string[];
  write?: boolean;
  headers?: Record<string, string>;
  body?: () => BodyInit | null | Promise<BodyInit | null>;
  signal?: AbortSignal;
  /** Statuses that are not failures. */
  ok: number[];
  /** Do not retry (streamed bodies that cannot be re-opened). */
  once?: boolean;
}

/** First PATCH size once a registry refused a whole blob, and the smallest it halves to. */
const CHUNK_START = 8 * 1024 * 1024;
const CHUNK_MIN = 256 * 1024;

/** The OCI distribution API for one host. */
export class RegistryClient {
  /** The registry name as in references. */
  readonly host: string;
  #base: string;
  #http: RegistryHttp;
  #auth: RegistryAuth;
  #maxRetries: number;
  #retryDelayMs: number;
  #maxRetryWaitMs: number;
  #onRetry?: (error: unknown, retry: number, delayMs: number) => void;
  /** Bytes per PATCH once this registry refused a whole blob; null = whole blobs. */
  #chunkBytes: number | null = null;
  #maxManifestBytes: number;

  /** Create a client. Reads `caFile` at once. */
  constructor(options: RegistryClientOptions) {
    this.host = options.host;
    this.#base = `${options.scheme}://${apiHost(options.host)}`;
    this.#http = new RegistryHttp({ caFile: options.caFile, timeoutMs: options.timeoutMs });
    const secrets = options.secrets ?? runSecrets;
    const credential = options.credential ?? null;
    if (credential?.kind === "basic") secrets.addBasic(credential.username, credential.password);
    if (credential && credential.kind !== "basic") secrets.add(credential.token);
    this.#auth = new RegistryAuth(this.#http, { origin: this.#base, credential, secrets });
    this.#maxRetries = options.maxRetries ?? 3;
    this.#retryDelayMs = options.retryDelayMs ?? 1000;
    this.#maxRetryWaitMs = options.maxRetryWaitMs ?? 300_000;
    this.#onRetry = options.onRetry;
    this.#maxManifestBytes = options.maxManifestBytes ?? DEFAULT_MAX_MANIFEST_BYTES;
  }

  /** Token requests made so far (tests and benchmarks). */
  get tokenRequests(): number {
    return this.#auth.tokenRequests;
  }

  /**
   * Check that the credentials work for `repository` with `actions` (a missing repository is
   * fine). Throws RegistryError LOGIN_FAILED when the registry refuses them.
   */
  async checkAccess(
    repository: string,
    actions: ("pull" | "push")[],
    signal?: AbortSignal,
  ): Promise<void> {
    const res = await this.#call({
      method: "GET",
      path: `${repositoryPath(repository, "tags/list")}?n=1`,
      repository,
      write: actions.includes("push"),
      signal,
      ok: [200, 404],
    });
    await res.body?.cancel();
  }

  /** HEAD a manifest: its descriptor, or null when absent. */
  async manifestHead(
    repository: string,
    ref: string,
    signal?: AbortSignal,
  ): Promise<Descriptor | null> {
    const res = await this.#call({
      method: "HEAD",
      path: manifestPath(repository, ref),
      repository,
      headers: { accept: MANIFEST_ACCEPT },
      signal,
      ok: [200, 404],
    });
    await res.body?.cancel();
    if (res.status === 404) return null;
    const digest = res.headers.get("docker-content-digest");
    if (!digest) {
      // Old registries omit the digest on HEAD: hash the GET (gotcha 6).
      const manifest = await this.manifestGet(repository, ref, signal);
      return manifest &&
        { mediaType: manifest.mediaType, digest: manifest.digest, size: manifest.bytes.length };
    }
    if (!validDigest(digest)) {
      throw badDigestHeader(`${this.host}/${repository}:${ref}`, digest);
    }
    return {
      mediaType: (res.headers.get("content-type") ?? "").split(";")[0],
      digest,
      size: Number(res.headers.get("content-length") ?? 0),
    };
  }

  /** GET a manifest's exact bytes, digest verified; null when absent. */
  async manifestGet(
    repository: string,
    ref: string,
    signal?: AbortSignal,
  ): Promise<ManifestBytes | null> {
    const res = await this.#call({
      method: "GET",
      path: manifestPath(repository, ref),
      repository,
      headers: { accept: MANIFEST_ACCEPT },
      signal,
      ok: [200, 404],
    });
    if (res.status === 404) {
      await res.body?.cancel();
      return null;
    }
    const where = `${this.host}/${repository}${ref.includes(":") ? "@" : ":"}${ref}`;
    const header = res.headers.get("docker-content-digest");
    if (header !== null && !validDigest(header)) {
      await res.body?.cancel();
      throw badDigestHeader(where, header);
    }
    const limit = this.#maxManifestBytes;
    const bytes = await readBodyCapped(res, limit, (seen) =>
      new MirrorError(
        "IMAGE_MANIFEST_TOO_LARGE",
        `${where}: the manifest passed the ${limit}-byte cap (${seen} bytes or more); raise operation.maxManifestBytes if it is genuine`,
      ));
    const digest = sha256Digest(bytes);
    const expected = ref.includes(":") ? ref : header;
    const actual = expected ? digestLike(expected, bytes) : digest;
    if (expected && expected !== actual) {
      throw new RegistryError(
        "IMAGE_DIGEST_MISMATCH",
        `${where}: manifest bytes hash to ${actual}, expected ${expected}`,
        { status: res.status, retryable: false },
      );
    }
    const contentType = res.headers.get("content-type") ?? "";
    const parsed = parseManifest(bytes, contentType, where);
    return { mediaType: parsed.mediaType, digest, bytes };
  }

  /** PUT exact manifest bytes under `ref` (tag or digest); returns the digest, verified. */
  async manifestPut(
    repository: string,
    ref: string,
    manifest: { mediaType: string; bytes: Uint8Array },
    signal?: AbortSignal,
  ): Promise<string> {
    const digest = sha256Digest(manifest.bytes);
    const res = await this.#call({
      method: "PUT",
      path: manifestPath(repository, ref),
      repository,
      write: true,
      headers: { "content-type": manifest.mediaType },
      body: () => new Blob([manifest.bytes as Uint8Array<ArrayBuffer>]),
      signal,
      ok: [200, 201, 202],
    });
    await res.body?.cancel();
    const answered = res.headers.get("docker-content-digest");
    if (answered && answered !== digest) {
      throw new RegistryError(
        "IMAGE_DIGEST_MISMATCH",
        `${this.host}/${repository}:${ref}: registry stored ${answered}, we sent ${digest}`,
        { status: res.status },
      );
    }
    return digest;
  }

  /** HEAD a blob: its size, or null when absent. */
  async blobHead(repository: string, digest: string, signal?: AbortSignal): Promise<number | null> {
    const res = await this.#call({
      method: "HEAD",
      path: blobPath(repository, digest),
      repository,
      signal,
      ok: [200, 404],
    });
    await res.body?.cancel();
    return res.status === 404 ? null : Number(res.headers.get("content-length") ?? 0);
  }

  /** GET a blob as a stream (redirects to storage followed without Authorization). */
  async blobGet(
    repository: string,
    digest: string,
    signal?: AbortSignal,
  ): Promise<{ size: number; body: ReadableStream<Uint8Array> }> {
    const res = await this.#call({
      method: "GET",
      path: blobPath(repository, digest),
      repository,
      signal,
      ok: [200],
    });
    if (!res.body) {
      throw new RegistryError("IMAGE_PULL_FAILED", `blob ${digest}: empty body`, {
        status: res.status,
      });
    }
    return { size: Number(res.headers.get("content-length") ?? -1), body: res.body };
  }

  /** Mount a blob from another repository of the same registry. True when mounted. */
  async blobMount(
    repository: string,
    digest: string,
    from: string,
    signal?: AbortSignal,
  ): Promise<boolean> {
    const res = await this.#call({
      method: "POST",
      path: `${repositoryPath(repository, "blobs/uploads/")}?mount=${
        encodeURIComponent(checkedDigest(digest))
      }&from=${encodeURIComponent(checkedRepository(from))}`,
      repository,
      extraScopes: [`repository:${from}:pull`],
      write: true,
      signal,
      ok: [201, 202],
    });
    await res.body?.cancel();
    if (res.status === 201) return true;
    // 202: the registry opened an upload session instead; close it (gotcha 12).
    const location = res.headers.get("location");
    if (location) await this.#cancelUpload(repository, this.#resolve(location));
    return false;
  }

  /**
   * Upload a blob: POST for a session, then one PUT streaming the body (monolithic). A registry, or
   * a proxy in front of it, that refuses that body (413 too large, 411 length required) gets blobs
   * in PATCH chunks from then on (shared/registry-protocols.md §2.5 "Chunked"), starting at 8 MiB
   * (or the registry's `OCI-Chunk-Min-Length`) and halving what was refused on each further 413.
   * `open` gives a fresh stream per attempt; its bytes are counted and hashed on the way and must
   * match `blob.size` and `blob.digest`: a stream that passes the size is cut at once, a short one
   * or one with other bytes fails, each IMAGE_DIGEST_MISMATCH (not retried) before the final PUT
   * completes, and the upload session is deleted.
   */
  async blobUpload(
    repository: string,
    blob: { digest: string; size: number },
    open: (signal: AbortSignal) => Promise<ReadableStream<Uint8Array>>,
    options: { signal?: AbortSignal; onProgress?: (bytes: number) => void } = {},
  ): Promise<void> {
    await retry(async () => {
      for (;;) {
        // One source stream per try; aborted when the try ends early (a 413), so no GET lingers.
        const reading = new AbortController();
        const signal = options.signal
          ? AbortSignal.any([options.signal, reading.signal])
          : reading.signal;
        checkedDigest(blob.digest);
        if (!Number.isSafeInteger(blob.size) || blob.size < 0) {
          throw new MirrorError(
            "IMAGE_MANIFEST_INVALID",
            `blob ${blob.digest}: size ${blob.size} is not a non-negative integer`,
          );
        }
        const session = await this.#startUpload(repository, options.signal);
        let done = false;
        const verifier = verifyBlob(blob, options.onProgress);
        try {
          const verified = (await open(signal)).pipeThrough(verifier.stream);
          done = this.#chunkBytes === null
            ? await this.#putWhole(repository, blob, verified, session.url, options.signal)
            : await this.#putChunks(repository, blob, verified, session, options.signal);
        } catch (error) {
          // The request failed because the bytes did: say so (not a push failure to retry).
          throw verifier.failure() ?? error;
        } finally {
          reading.abort();
          if (!done) await this.#cancelUpload(repository, session.url);
        }
        if (done) return;
      }
    }, this.#retryPolicy(options.signal));
  }

  async #startUpload(
    repository: string,
    signal?: AbortSignal,
  ): Promise<{ url: URL; minChunk: number }> {
    const post = await this.#call({
      method: "POST",
      path: repositoryPath(repository, "blobs/uploads/"),
      repository,
      write: true,
      headers: { "content-length": "0" },
      signal,
      ok: [202],
    });
    await post.body?.cancel();
    const location = post.headers.get("location");
    if (!location) {
      throw new RegistryError(
        "IMAGE_PUSH_FAILED",
        `${this.host}/${repository}: upload session has no Location`,
        { status: post.status },
      );
    }
    return {
      url: this.#resolve(location),
      minChunk: Number(post.headers.get("oci-chunk-min-length")) || 0,
    };
  }

  /**
   * One PUT with the whole blob (fetch streams it with chunked transfer encoding). False when the
   * body is refused as too large (413) or for its missing length (411, some proxies): chunks, each
   * with its Content-Length, from now on.
   */
  async #putWhole(
    repository: string,
    blob: { digest: string; size: number },
    body: ReadableStream<Uint8Array>,
    session: URL,
    signal?: AbortSignal,
  ): Promise<boolean> {
    const put = await this.#closeUpload(repository, session, blob.digest, {
      headers: {
        "content-type": "application/octet-stream",
        "content-length": String(blob.size),
      },
      body,
      signal,
      ok: [201, 204, 411, 413],
    });
    if (put.status !== 411 && put.status !== 413) return true;
    // Blobs in flight may all meet the limit: keep what another one learned already.
    this.#chunkBytes ??= CHUNK_START;
    return false;
  }

  /** PATCH the blob in chunks, then PUT the digest. False on a 413 (smaller chunks next time). */
  async #putChunks(
    repository: string,
    blob: { digest: string; size: number },
    body: ReadableStream<Uint8Array>,
    session: { url: URL; minChunk: number },
    signal?: AbortSignal,
  ): Promise<boolean> {
    const size = Math.max(this.#chunkBytes ?? CHUNK_START, session.minChunk);
    let location = session.url;
    let offset = 0;
    let chunk = new Uint8Array(size);
    let filled = 0;
    const send = async (): Promise<boolean> => {
      const bytes = chunk.subarray(0, filled);
      const res = await this.#call({
        method: "PATCH",
        path: location,
        repository,
        write: true,
        headers: {
          "content-type": "application/octet-stream",
          "content-range": `${offset}-${offset + filled - 1}`,
          "content-length": String(filled),
        },
        body: () => bytes,
        signal,
        ok: [202, 413],
        once: true,
      });
      await res.body?.cancel();
      if (res.status === 413) {
        if (size <= CHUNK_MIN) {
          throw new RegistryError(
            "IMAGE_PUSH_FAILED",
            `${this.host}/${repository}: the registry refuses even ${size}-byte chunks (413)`,
            { status: 413 },
          );
        }
        // Half of what was refused (a short last chunk says more than the chunk size).
        this.#chunkBytes = Math.min(
          this.#chunkBytes ?? size,
          Math.max(CHUNK_MIN, Math.floor(filled / 2)),
        );
        return false;
      }
      const next = res.headers.get("location");
      if (next) location = new URL(next, location);
      offset += filled;
      chunk = new Uint8Array(size);
      filled = 0;
      return true;
    };
    const reader = body.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        for (let at = 0; at < value.length;) {
          const n = Math.min(size - filled, value.length - at);
          chunk.set(value.subarray(at, at + n), filled);
          filled += n;
          at += n;
          if (filled === size && !(await send())) return false;
        }
      }
      if (filled > 0 && !(await send())) return false;
    } finally {
      reader.releaseLock();
    }
    await this.#closeUpload(repository, location, blob.digest, {
      headers: { "content-length": "0" },
      signal,
      ok: [201, 204],
    });
    return true;
  }

  /** The final `PUT <session>?digest=` of an upload, with the body or without; body released. */
  async #closeUpload(
    repository: string,
    session: URL,
    digest: string,
    options: {
      headers: Record<string, string>;
      body?: ReadableStream<Uint8Array>;
      signal?: AbortSignal;
      ok: number[];
    },
  ): Promise<Response> {
    const url = new URL(session);
    url.searchParams.set("digest", digest);
    const body = options.body;
    const put = await this.#call({
      method: "PUT",
      path: url,
      repository,
      write: true,
      headers: options.headers,
      body: body ? () => body : undefined,
      signal: options.signal,
      ok: options.ok,
      once: true,
    });
    await put.body?.cancel();
    return put;
  }

  /** Close an upload session that will not be finished (errors ignored). */
  async #cancelUpload(repository: string, session: URL): Promise<void> {
    await this.#call({
      method: "DELETE",
      path: session,
      repository,
      write: true,
      ok: [200, 202, 204, 404],
      once: true,
    }).then((r) => r.body?.cancel()).catch(() => {});
  }

  /** All tags of a repository (follows Link pagination). */
  async tagList(repository: string, signal?: AbortSignal): Promise<string[]> {
    const tags: string[] = [];
    const path = repositoryPath(repository, "tags/list");
    let next: string | URL | null = `${path}?n=1000`;
    const where = `${this.host}/${repository}`;
    for (let page = 0; next && page < 1000; page++) {
      const res: Response = await this.#call({
        method: "GET",
        path: next,
        repository,
        signal,
        ok: [200, 404],
      });
      if (res.status === 404) {
        await res.body?.cancel();
        return [];
      }
      const limit = this.#maxManifestBytes;
      const bytes = await readBodyCapped(res, limit, (seen) =>
        new MirrorError(
          "IMAGE_MANIFEST_TOO_LARGE",
          `${where}: a tag list page passed the ${limit}-byte cap (${seen} bytes or more)`,
        ));
      tags.push(...parseTagList(bytes, where));
      const link = /<([^>]+)>\s*;\s*rel="?next"?/.exec(res.headers.get("link") ?? "");
      next = link ? this.#nextPage(link[1], path, where) : null;
    }
    return tags;
  }

  /** Release connections. */
  close(): void {
    this.#http.close();
  }

  #resolve(location: string): URL {
    return new URL(location, `${this.#base}/v2/`);
  }

  /** A tag list's next page: only the same endpoint on the same origin (a Link is data too). */
  #nextPage(link: string, path: string, where: string): URL {
    const url = this.#resolve(link);
    if (url.origin !== new URL(this.#base).origin || url.pathname !== `/v2/${path}`) {
      throw new MirrorError(
        "IMAGE_MANIFEST_INVALID",
        `${where}: the tag list's next page ${redactUrl(url)} is not this repository's tag list`,
      );
    }
    return url;
  }

  /**
   * The one retry policy of this client: isRetryable() decides (network, 408, 429, 5xx); the wait
   * is the registry's Retry-After or backoff from retryDelayMs, and never longer than
   * maxRetryWaitMs: a longer wanted wait fails at once with IMAGE_RATE_LIMITED.
   */
  #retryPolicy(signal?: AbortSignal): RetryOptions {
    const maxWaitMs = this.#maxRetryWaitMs;
    const minDelayMs = Math.min(this.#retryDelayMs, maxWaitMs);
    return {
      maxAttempts: this.#maxRetries + 1,
      minDelayMs,
      maxDelayMs: Math.max(minDelayMs, Math.min(60_000, maxWaitMs)),
      maxWaitMs,
      isRetriable: isRetryable,
      delayFor: (
        error: unknown,
      ) => (error instanceof RegistryError ? error.retryAfterMs : undefined),
      onWaitTooLong: (error, wantedMs) =>
        new RegistryError("IMAGE_RATE_LIMITED", waitTooLongMessage(error, wantedMs, maxWaitMs), {
          status: error instanceof RegistryError ? error.status : 0,
          errors: error instanceof RegistryError ? error.errors : [],
          retryAfterMs: wantedMs,
          retryable: false,
          cause: error,
        }),
      onRetry: this.#onRetry,
      signal,
    };
  }

  async #call(call: Call): Promise<Response> {
    const attempt = async () => {
      const url = call.path instanceof URL ? call.path : new URL(`${this.#base}/v2/${call.path}`);
      const scopes = [
        `repository:${call.repository}:${call.write ? "pull,push" : "pull"}`,
        ...(call.extraScopes ?? []),
      ];
      const request: HttpRequest = {
        method: call.method,
        url,
        headers: call.headers,
        body: call.body,
        signal: call.signal,
      };
      const res = await this.#auth.send(request, scopes);
      if (call.ok.includes(res.status)) return res;
      throw await this.#failure(call, url, res);
    };
    return call.once ? await attempt() : await retry(attempt, this.#retryPolicy(call.signal));
  }

  async #failure(call: Call, url: URL, res: Response): Promise<RegistryError> {
    const entries = call.method === "HEAD" ? [] : parseErrorBody(await readCapped(res));
    if (call.method === "HEAD") await res.body?.cancel();
    const detail = entries.map((e) => `${e.code}: ${e.message}`).join("; ");
    let code: Code;
    let hint = "";
    if (res.status === 401 || res.status === 403) {
      code = "LOGIN_FAILED";
      hint = res.status === 401 ? " (credentials missing or refused)" : " (access denied)";
    } else if (res.status === 404) {
      code = "IMAGE_NOT_FOUND";
    } else if (res.status === 429) {
      code = "IMAGE_RATE_LIMITED";
      const remaining = res.headers.get("ratelimit-remaining");
      const wait = parseRetryAfter(res.headers.get("retry-after"));
      hint = ` (rate limited${remaining ? `, ratelimit-remaining ${remaining}` : ""}${
        wait !== undefined ? `, retry after ${Math.round(wait / 1000)} s` : ""
      })`;
    } else {
      code = call.write ? "IMAGE_PUSH_FAILED" : "IMAGE_PULL_FAILED";
    }
    return new RegistryError(
      code,
      `${call.method} ${redactUrl(url)} answered ${res.status}${detail ? ` ${detail}` : ""}${hint}`,
      {
        status: res.status,
        errors: entries,
        retryAfterMs: parseRetryAfter(res.headers.get("retry-after")),
      },
    );
  }
}

/** A repository path checked against the reference grammar (refused before any request). */
function checkedRepository(repository: string): string {
  if (!isValidRepository(repository)) {
    throw new MirrorError(
      "IMAGE_MANIFEST_INVALID",
      `repository name ${
        JSON.stringify(String(repository).slice(0, 300))
      } does not follow the reference grammar`,
    );
  }
  return repository;
}

/** A digest checked against the OCI grammar (refused before any request). */
function checkedDigest(digest: string): string {
  if (!validDigest(digest)) {
    throw new MirrorError(
      "IMAGE_MANIFEST_INVALID",
      `digest ${
        JSON.stringify(String(digest).slice(0, 300))
      } is not sha256:<64 lowercase hex> or sha512:<128 lowercase hex>`,
    );
  }
  return digest;
}

/**
 * Paths below /v2/ are built only from checked parts: a repository of the grammar, then
 * `manifests/<tag|digest>`, `blobs/<digest>`, `blobs/uploads/` or `tags/list`. Anything else
 * throws IMAGE_MANIFEST_INVALID, so no value from a registry or a config can steer a request
 * elsewhere (defence in depth behind the parsers' checks).
 */
function manifestPath(repository: string, ref: string): string {
  return `${checkedRepository(repository)}/manifests/${isValidTag(ref) ? ref : checkedDigest(ref)}`;
}

/** `<repository>/blobs/<digest>`, both checked (see {@link manifestPath}). */
function blobPath(repository: string, digest: string): string {
  return `${checkedRepository(repository)}/blobs/${checkedDigest(digest)}`;
}

/** `<repository>/<rest>` for the fixed endpoints, the repository checked. */
function repositoryPath(repository: string, rest: "tags/list" | "blobs/uploads/"): string {
  return `${checkedRepository(repository)}/${rest}`;
}

function badDigestHeader(where: string, digest: string): MirrorError {
  return new MirrorError(
    "IMAGE_MANIFEST_INVALID",
    `${where}: Docker-Content-Digest ${
      JSON.stringify(digest.slice(0, 300))
    } is not sha256:<64 lowercase hex> or sha512:<128 lowercase hex>`,
  );
}

/** The `tags` of a tag list page, each checked against the tag grammar. */
function parseTagList(bytes: Uint8Array, where: string): string[] {
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

/**
 * A pass-through stream that counts and hashes a blob: it errors the moment the bytes pass
 * `blob.size` (nothing past it is passed on), and at the end when fewer came or the digest
 * differs. `failure()` is that error, for the caller whose request the stream was the body of.
 */
function verifyBlob(
  blob: { digest: string; size: number },
  onProgress?: (bytes: number) => void,
): { stream: TransformStream<Uint8Array, Uint8Array>; failure: () => RegistryError | undefined } {
  const hash = createHash(blob.digest.startsWith("sha512:") ? "sha512" : "sha256");
  let seen = 0;
  let failure: RegistryError | undefined;
  const fail = (message: string) =>
    failure = new RegistryError("IMAGE_DIGEST_MISMATCH", `blob ${blob.digest}: ${message}`, {
      status: 0,
      retryable: false,
    });
  const stream = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      seen += chunk.length;
      if (seen > blob.size) {
        controller.error(fail(`the source sent more than the descriptor's ${blob.size} bytes`));
        return;
      }
      hash.update(chunk);
      onProgress?.(chunk.length);
      controller.enqueue(chunk);
    },
    flush(controller) {
      if (seen < blob.size) {
        controller.error(
          fail(`the source sent ${seen} of the descriptor's ${blob.size} bytes`),
        );
        return;
      }
      const actual = `${blob.digest.split(":")[0]}:${hash.digest("hex")}`;
      if (actual !== blob.digest) controller.error(fail(`the bytes hash to ${actual}`));
    },
  });
  return { stream, failure: () => failure };
}

/**
 * The config digest (image ID) of `ref`; for an index, of the child for `platform`
 * (default linux/amd64). Null when the image is absent.
 */
export async function imageConfigDigest(
  client: RegistryClient,
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
