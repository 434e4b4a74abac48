/**
 * RegistryClient: the OCI distribution API for one registry host (method names after regclient).
 * It maps methods to endpoints; TLS, timeouts and redirects live in http_transport.ts, challenges
 * and tokens in registry_auth.ts. Absence is a value (404 -> null); every other failure throws a
 * RegistryError with a catalogue code. Requests that can pass (network, 408, 429, 5xx) are retried
 * with backoff and jitter, honouring Retry-After; 400/401/403/404 never are.
 *
 * Blobs stream: a GET body is piped into the upload (blob_upload.ts) while its sha256 is computed
 * on the way, so memory stays bounded whatever the blob size (one chunk, at most 8 MiB, when the
 * registry wants chunks); a digest mismatch aborts the upload. Paths are built in
 * registry_paths.ts, status-to-error mapping is errorFromResponse() in registry_error.ts, and the
 * retry policy is retry.ts's retryPolicy().
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
import type { Credential } from "./credential.ts";
import type { Secrets } from "../log/redact.ts";
import { retry, type RetryOptions, retryPolicy, waitTooLongMessage } from "../retry.ts";
import { MirrorError } from "../errors.ts";
import { listTags } from "./_tag_list.ts";
import { getReferrers, type ReferrersOptions } from "./_referrers_get.ts";
import { BlobUploader, type RegistryCall } from "./blob_upload.ts";
import { digestLike, MANIFEST_ACCEPT, parseManifest, sha256Digest } from "./manifest.ts";
import { apiHost, validDigest } from "./reference.ts";
import { RegistryAuth, TokenRequestError } from "./registry_auth.ts";
import { errorFromResponse, readBodyCapped, RegistryError } from "./registry_error.ts";
import { type HttpLimits, type HttpRequest, HttpTransport, limitsOf } from "./http_transport.ts";
import type {
  ImageStore,
  ManifestBytes,
  ManifestHead,
  UploadOptions,
  UploadOutcome,
} from "./image_store.ts";
import { blobPath, manifestPath, repositoryPath, scopeOf } from "./registry_paths.ts";

/** Options for {@link RegistryClient}. */
export interface RegistryClientOptions extends HttpLimits {
  /** Registry name as in references: `docker.io`, `quay.io`, `127.0.0.1:5000`. */
  host: string;
  scheme: "http" | "https";
  caFile?: string;
  credential?: Credential | null;
  /** @default 3 */
  maxRetries?: number;
  /** @default 1000 */
  retryDelayMs?: number;
  /**
   * Longest single wait before a retry, in ms (operation.maxRetryWait). A registry that asks for
   * a longer one (Retry-After) fails that request at once with IMAGE_RATE_LIMITED. @default 300000
   */
  maxRetryWaitMs?: number;
  /** The run's secrets: the credential and every token are registered there. */
  secrets: Secrets;
  /** Told before each wait for a retry: the failure, the retry number (1..) and the wait. */
  onRetry?: (error: unknown, retry: number, delayMs: number) => void;
  /**
   * Bytes a manifest or a tag-list page may have (`operation.maxManifestBytes`); a larger body
   * fails IMAGE_MANIFEST_TOO_LARGE. @default 4 MiB
   */
  maxManifestBytes?: number;
  /** Only written to in this run: a failed read is the destination's IMAGE_PUSH_FAILED too. */
  destination?: boolean;
}

/** The manifest cap of distribution and containers/image. */
export const DEFAULT_MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

/** The OCI distribution API for one host (an {@link ImageStore}). */
export class RegistryClient implements ImageStore {
  /** The registry name as in references. */
  readonly host: string;
  #base: string;
  #http: HttpTransport;
  #auth: RegistryAuth;
  #maxRetries: number;
  #retryDelayMs: number;
  #maxRetryWaitMs: number;
  #onRetry?: (error: unknown, retry: number, delayMs: number) => void;
  #uploader: BlobUploader;
  /** The first uploaded blob was mounted into its own repository once (see blobUpload). */
  #mountProbed = false;
  /** That mount answered 201. */
  #mountsInPlace = false;
  #maxManifestBytes: number;
  #destination: boolean;
  /** Accepts an index missing children? true/false per Quay's `GET /v2/`; null: not said; see {@link probeVersionCheck}. */
  sparseManifestSupport: boolean | null | undefined;

  /** Create a client. Reads `caFile` at once. */
  constructor(options: RegistryClientOptions) {
    this.host = options.host;
    this.#base = `${options.scheme}://${apiHost(options.host)}`;
    this.#http = new HttpTransport({ caFile: options.caFile, ...limitsOf(options) });
    const secrets = options.secrets;
    const credential = options.credential ?? null;
    if (credential?.kind === "basic") secrets.addBasic(credential.username, credential.password);
    if (credential && credential.kind !== "basic") secrets.add(credential.token);
    this.#auth = new RegistryAuth(this.#http, { origin: this.#base, credential, secrets });
    this.#maxRetries = options.maxRetries ?? 3;
    this.#retryDelayMs = options.retryDelayMs ?? 1000;
    this.#maxRetryWaitMs = options.maxRetryWaitMs ?? 300_000;
    this.#onRetry = options.onRetry;
    this.#destination = options.destination ?? false;
    this.#maxManifestBytes = options.maxManifestBytes ?? DEFAULT_MAX_MANIFEST_BYTES;
    this.#uploader = new BlobUploader({
      host: this.host,
      send: (call) => this.#call(call),
      resolve: (location) => this.#resolve(location),
      retryPolicy: (signal) => this.#retryPolicy(signal),
    });
  }

  /**
   * Repositories this run will read soon (the plan's destinations): their pull scopes are asked
   * for several at a time (registry_auth.ts).
   */
  expectReads(repositories: Iterable<string>): void {
    const scopes = [];
    for (const repository of repositories) scopes.push(scopeOf(repository, false));
    this.#auth.expect(scopes);
  }

  /** Token requests made so far (tests and benchmarks). */
  get tokenRequests(): number {
    return this.#auth.tokenRequests;
  }

  /**
   * Check that the credentials work for `repository` with `actions` (a missing repository is
   * fine). Throws RegistryError LOGIN_FAILED when the registry refuses them.
   *
   * A token server that refuses the repository itself, not the credentials (a 4xx other than 401
   * and 403: Quay answers 405 for a repository that holds no container images or a disabled
   * namespace, 400 for a name it does not take), is not a failed login: the credentials are then
   * checked with a token for no repository (`GET /v2/`), and that repository's own requests meet
   * the refusal.
   */
  async checkAccess(
    repository: string,
    actions: ("pull" | "push")[],
    signal?: AbortSignal,
  ): Promise<void> {
    try {
      const res = await this.#call({
        method: "GET",
        path: `${repositoryPath(repository, "tags/list")}?n=1`,
        repository,
        write: actions.includes("push"),
        signal,
        ok: [200, 404],
      });
      await res.body?.cancel();
    } catch (error) {
      const status = error instanceof TokenRequestError ? error.status : 0;
      if (status < 400 || status >= 500 || status === 401 || status === 403) throw error;
      const url = new URL(`${this.#base}/v2/`);
      const res = await this.#auth.send({ method: "GET", url, signal }, []);
      if (res.status !== 200) {
        throw await errorFromResponse(res, { method: "GET", url, write: this.#destination });
      }
      await res.body?.cancel();
    }
  }

  /**
   * `GET /v2/` without credentials (Quay answers it even with a 401): records its
   * `X-Sparse-Manifest-Support` (the login step runs it for each destination host that an entry
   * with `platforms` targets, so other runs pay no extra request; a failure: null).
   */
  async probeVersionCheck(signal?: AbortSignal): Promise<void> {
    this.sparseManifestSupport = null;
    const url = new URL(`${this.#base}/v2/`);
    const res = await this.#http.send({ method: "GET", url, signal }).catch((error) => {
      if (signal?.aborted) throw error;
    });
    await res?.body?.cancel();
    const header = res?.headers.get("x-sparse-manifest-support")?.trim().toLowerCase();
    if (header === "true" || header === "false") this.sparseManifestSupport = header === "true";
  }

  /** HEAD a manifest: its descriptor, or null when absent. */
  async manifestHead(
    repository: string,
    ref: string,
    signal?: AbortSignal,
  ): Promise<ManifestHead | null> {
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
      if (!manifest) return null;
      const { mediaType, digest, bytes } = manifest;
      return { mediaType, digest, size: bytes.length, headers: res.headers };
    }
    if (!validDigest(digest)) {
      throw badDigestHeader(`${this.host}/${repository}:${ref}`, digest);
    }
    return {
      mediaType: (res.headers.get("content-type") ?? "").split(";")[0],
      digest,
      size: Number(res.headers.get("content-length") ?? 0),
      headers: res.headers,
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
    const digest = await sha256Digest(bytes);
    const expected = ref.includes(":") ? ref : header;
    const actual = expected ? await digestLike(expected, bytes) : digest;
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
    const digest = await sha256Digest(manifest.bytes);
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
      blob: true,
    });
    if (!res.body) {
      throw new RegistryError("IMAGE_PULL_FAILED", `blob ${digest}: empty body`, {
        status: res.status,
      });
    }
    return { size: Number(res.headers.get("content-length") ?? -1), body: res.body };
  }

  /** Mount a blob from another repository of the same registry. True when mounted. */
  blobMount(
    repository: string,
    digest: string,
    from: string,
    signal?: AbortSignal,
  ): Promise<boolean> {
    // A 202 opened an upload session instead: the uploader deletes it (gotcha 12).
    return this.#uploader.mount(repository, digest, from, signal);
  }

  /**
   * Upload a blob (see blob_upload.ts): one streamed PUT, or PATCH chunks once this registry
   * refused a whole body (413/411). `open` gives a fresh stream per attempt; its bytes must match
   * `blob.size` and `blob.digest`, or the upload fails IMAGE_DIGEST_MISMATCH (not retried) before
   * the final PUT completes and the session is deleted. With `mountFrom`, the session is asked for
   * with a mount from there: a 201 sends nothing ("mounted").
   *
   * The first blob this client uploads is then mounted into its own repository once (POST
   * `?mount=<digest>&from=<the same repository>`): a 201 shows that this registry answers that
   * mount for a blob it holds, so {@link mountsInPlace} is true and the copy asks with the
   * upload's own POST instead of a HEAD before it (distribution, Quay). A 202 (a registry that
   * ignores mounts opens a session, deleted at once) or any failure leaves the HEAD.
   */
  async blobUpload(
    repository: string,
    blob: { digest: string; size: number },
    open: (signal: AbortSignal) => Promise<ReadableStream<Uint8Array>>,
    options: UploadOptions = {},
  ): Promise<UploadOutcome> {
    const outcome = await this.#uploader.upload(repository, { blob, open, ...options });
    if (outcome === "uploaded" && !this.#mountProbed) {
      this.#mountProbed = true;
      this.#mountsInPlace = await this.blobMount(
        repository,
        blob.digest,
        repository,
        options.signal,
      )
        .catch(() => false);
    }
    return outcome;
  }

  /** Does an upload with `mountFrom` set to its own repository say whether the blob is there? */
  mountsInPlace(): boolean {
    return this.#mountsInPlace;
  }

  /**
   * All tags of a repository (follows Link pagination; see _tag_list.ts for the bounds); none
   * when it is absent, or IMAGE_NOT_FOUND with `absent: "error"`.
   */
  tagList(
    repository: string,
    signal?: AbortSignal,
    options: { absent?: "empty" | "error" } = {},
  ): Promise<string[]> {
    return listTags({
      host: this.host,
      origin: new URL(this.#base).origin,
      send: (call) => this.#call(call),
      resolve: (location) => this.#resolve(location),
      maxPageBytes: this.#maxManifestBytes,
    }, { repository, signal, absent: options.absent });
  }

  /**
   * OCI 1.1 referrers of `digest`: each page capped and handed unparsed to `onPage`, then dropped
   * (see _referrers_get.ts); the page count, or null when the registry has no referrers API.
   */
  referrersGet(
    repository: string,
    digest: string,
    options: ReferrersOptions = {},
  ): Promise<number | null> {
    return getReferrers({
      host: this.host,
      origin: new URL(this.#base).origin,
      send: (call) => this.#call(call),
      resolve: (location) => this.#resolve(location),
      maxBytes: this.#maxManifestBytes,
    }, { repository, digest, ...options });
  }

  /** Release connections. */
  close(): void {
    this.#http.close();
  }

  #resolve(location: string): URL {
    return new URL(location, `${this.#base}/v2/`);
  }

  /**
   * The one retry policy of this client: the HTTP verdict (lib/http_error.ts: network, 408, 429,
   * 5xx) decides; the wait is the registry's Retry-After or backoff from retryDelayMs, and never
   * longer than maxRetryWaitMs: a longer wanted wait fails at once with IMAGE_RATE_LIMITED.
   */
  #retryPolicy(signal?: AbortSignal): RetryOptions {
    const maxWaitMs = this.#maxRetryWaitMs;
    return retryPolicy({
      maxRetries: this.#maxRetries,
      retryDelayMs: this.#retryDelayMs,
      maxRetryWaitMs: maxWaitMs,
      onWaitTooLong: (error, wantedMs) =>
        new RegistryError("IMAGE_RATE_LIMITED", waitTooLongMessage(error, wantedMs, maxWaitMs), {
          status: error instanceof RegistryError ? error.status : 0,
          errors: error instanceof RegistryError ? error.errors : [],
          retryAfterMs: wantedMs,
          host: error instanceof RegistryError ? error.host : undefined,
          retryable: false,
          cause: error,
        }),
      onRetry: this.#onRetry,
      signal,
    });
  }

  async #call(call: RegistryCall): Promise<Response> {
    const attempt = async () => {
      const url = call.path instanceof URL ? call.path : new URL(`${this.#base}/v2/${call.path}`);
      const scopes = [
        scopeOf(call.repository, call.write ?? false),
        ...(call.extraScopes ?? []),
      ];
      const write = call.write || this.#destination;
      const request: HttpRequest = {
        write: write || undefined,
        method: call.method,
        url,
        headers: call.headers,
        body: call.body,
        signal: call.signal,
        blob: call.blob,
      };
      const res = await this.#auth.send(request, scopes);
      if (call.ok.includes(res.status)) return res;
      throw await errorFromResponse(res, { method: call.method, url, write });
    };
    return call.once ? await attempt() : await retry(attempt, this.#retryPolicy(call.signal));
  }
}

function badDigestHeader(where: string, digest: string): MirrorError {
  return new MirrorError(
    "IMAGE_MANIFEST_INVALID",
    `${where}: Docker-Content-Digest ${
      JSON.stringify(digest.slice(0, 300))
    } is not sha256:<64 lowercase hex> or sha512:<128 lowercase hex>`,
  );
}
