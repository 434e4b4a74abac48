/**
 * The blob upload state machine of the registry client (shared/registry-protocols.md §2.5): POST
 * for a session, then one PUT streaming the whole blob (monolithic); a large blob (8 MiB and more)
 * is one streamed PATCH and a PUT without a body instead, as docker pushes, so that a failed one
 * is deleted with the session's current Location and the registry drops what it took (a failed
 * monolithic PUT leaves its bytes in distribution's upload area for good). A registry, or a proxy in
 * front of it, that refuses that body (413 too large, 411 length required) gets blobs in PATCH
 * chunks from then on, starting at 8 MiB (or the registry's `OCI-Chunk-Min-Length`) and halving
 * what was refused on each further 413; what one upload learns, the next ones of the same client
 * use. The bytes are counted and hashed on the way (blob_verifier.ts): a stream that passes its
 * descriptor's size is cut at once, a short one or one with other bytes fails
 * IMAGE_DIGEST_MISMATCH (never retried) before the final PUT completes, and a session that will
 * not be finished is deleted with its current Location, once its requests have ended.
 *
 * Requests go through the client's `send` (auth, status check, retries), so this module knows
 * nothing about tokens or transports.
 *
 * @module
 */
import { MirrorError } from "../errors.ts";
import { retry, type RetryOptions } from "../retry.ts";
import { verifyBlob } from "./blob_verifier.ts";
import { RegistryError } from "./registry_error.ts";
import { checkedDigest, mountPath, repositoryPath, scopeOf } from "./registry_paths.ts";

/** One request of the registry client: what `send` takes. */
export interface RegistryCall {
  /** HTTP method. */
  method: string;
  /** Path below /v2/ or an absolute URL (upload locations). */
  path: string | URL;
  /** The repository the request is about (its token scope). */
  repository: string;
  /** Scopes beyond `repository:<repository>:<actions>`. */
  extraScopes?: string[];
  /** Needs push access (and failures are IMAGE_PUSH_FAILED). */
  write?: boolean;
  /** Request headers. */
  headers?: Record<string, string>;
  /** A fresh body per attempt. */
  body?: () => BodyInit | null | Promise<BodyInit | null>;
  /** Aborts the request. */
  signal?: AbortSignal;
  /** Statuses that are not failures. */
  ok: number[];
  /** Do not retry (streamed bodies that cannot be re-opened). */
  once?: boolean;
  /** A blob stream: a minimum rate instead of the metadata deadline (http_transport.ts). */
  blob?: boolean;
}

/** What a blob upload did: sent the bytes, or had the blob mounted (201) and sent nothing. */
export type UploadOutcome = "uploaded" | "mounted";

/** How a blob is uploaded. */
export interface UploadOptions {
  signal?: AbortSignal;
  /** Told the length of every chunk sent on. */
  onProgress?: (bytes: number) => void;
  /**
   * Ask for the upload with a mount of the blob from this repository of the same store (the
   * destination repository itself: "is it there already?"); "mounted" when the store did.
   */
  mountFrom?: string;
}

/** Options for {@link BlobUploader}. */
export interface BlobUploaderOptions {
  /** Registry name as in references, for messages. */
  host: string;
  /** Sends one request with auth; a status outside `call.ok` throws a RegistryError. */
  send: (call: RegistryCall) => Promise<Response>;
  /** Resolves a `Location` header against the registry's /v2/. */
  resolve: (location: string) => URL;
  /** The client's retry policy for one whole upload attempt. */
  retryPolicy: (signal?: AbortSignal) => RetryOptions;
}

/** What {@link BlobUploader.upload} uploads, and how. */
export interface BlobUploadOptions extends UploadOptions {
  /** The descriptor the bytes must match. */
  blob: { digest: string; size: number };
  /** Opens a fresh source stream per attempt; aborting `signal` ends that stream's reading. */
  open: (signal: AbortSignal) => Promise<ReadableStream<Uint8Array>>;
}

/** First PATCH size once a registry refused a whole blob. */
export const CHUNK_START_BYTES = 8 * 1024 * 1024;
/** The smallest chunk size a 413 halves to; a 413 at this size fails the upload. */
export const CHUNK_MIN_BYTES = 256 * 1024;

/** Uploads blobs to one registry; remembers whether that registry wants chunks. */
export class BlobUploader {
  #host: string;
  #send: (call: RegistryCall) => Promise<Response>;
  #resolveUrl: (location: string) => URL;
  #retryPolicy: (signal?: AbortSignal) => RetryOptions;
  /** Bytes per PATCH once this registry refused a whole blob; null = whole blobs. */
  #chunkBytes: number | null = null;

  /** Create the uploader (no request yet). */
  constructor(options: BlobUploaderOptions) {
    this.#host = options.host;
    this.#send = options.send;
    this.#resolveUrl = options.resolve;
    this.#retryPolicy = options.retryPolicy;
  }

  /** Bytes per PATCH learned so far; null while whole-blob PUTs are accepted. */
  get chunkBytes(): number | null {
    return this.#chunkBytes;
  }

  /**
   * Upload a blob: POST for a session, then one PUT streaming the body (monolithic). A registry, or
   * a proxy in front of it, that refuses that body (413 too large, 411 length required) gets blobs
   * in PATCH chunks from then on (shared/registry-protocols.md §2.5 "Chunked"), starting at 8 MiB
   * (or the registry's `OCI-Chunk-Min-Length`) and halving what was refused on each further 413.
   * `open` gives a fresh stream per attempt; its bytes are counted and hashed on the way and must
   * match `blob.size` and `blob.digest`: a stream that passes the size is cut at once, a short one
   * or one with other bytes fails, each IMAGE_DIGEST_MISMATCH (not retried) before the final PUT
   * completes, and the upload session is deleted. With `mountFrom`, the session is asked for with
   * a mount of the blob from that repository: a 201 ends the upload there ("mounted", `open` never
   * called), a 202 is the session the bytes go to.
   *
   * @param repository the destination repository
   * @param options the descriptor, how to open the bytes, an abort signal and a progress callback
   * @throws {MirrorError} IMAGE_DIGEST_MISMATCH for bytes that do not match
   * @throws {RegistryError} the failure of the last try (IMAGE_PUSH_FAILED, LOGIN_FAILED ...)
   * @throws {MirrorError} IMAGE_MANIFEST_INVALID for a digest or size outside the grammar
   */
  upload(repository: string, options: BlobUploadOptions): Promise<UploadOutcome> {
    const { blob, open } = options;
    return retry(async (): Promise<UploadOutcome> => {
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
        const session = await this.#start(repository, blob.digest, options);
        if (!session) return "mounted";
        // The PUT (or PATCHes) of this try: ended before the session is deleted, so that the
        // registry is no longer writing what it received when the DELETE comes.
        const sending = new AbortController();
        const putSignal = options.signal
          ? AbortSignal.any([options.signal, sending.signal])
          : sending.signal;
        let done = false;
        const verifier = verifyBlob(blob, { onProgress: options.onProgress });
        // A source that fails with its own verdict (a layout's corrupt file) keeps it.
        const source = new SourceWatch();
        try {
          const verified = relay(await open(signal), { watch: source })
            .pipeThrough(verifier.stream);
          const failed = () => verifier.failure() ?? sourceVerdict(source.failure);
          done = this.#chunkBytes !== null
            ? await this.#putChunks(repository, blob, verified, session, putSignal)
            : blob.size >= CHUNK_START_BYTES
            ? await this.#patchWhole(repository, blob, verified, session, failed, putSignal)
            : await this.#putWhole(repository, blob, verified, session.url, putSignal);
        } catch (error) {
          // The request failed because the bytes did, or their source: say so (not a push failure).
          // An abort (Ctrl-C, a lost lock) stays what it is.
          if (options.signal?.aborted) throw error;
          await source.settled();
          throw verifier.failure() ?? sourceVerdict(source.failure) ?? error;
        } finally {
          reading.abort();
          sending.abort();
          // The session's current location (a PATCH moves it), never the first one.
          if (!done) await this.cancel(repository, session.url);
        }
        if (done) return "uploaded";
      }
    }, this.#retryPolicy(options.signal));
  }

  /**
   * Mount a blob from `from` (another repository of the registry, or `repository` itself): true
   * when the registry did (201); a session it opened instead (202) is deleted at once.
   */
  async mount(
    repository: string,
    digest: string,
    from: string,
    signal?: AbortSignal,
  ): Promise<boolean> {
    const post = await this.#post(repository, digest, { mountFrom: from, signal });
    if (post.status === 201) return true;
    const location = post.headers.get("location");
    if (location) await this.cancel(repository, this.#resolveUrl(location));
    return false;
  }

  /** The POST that opens a session, with a mount when `mountFrom` is set (201: mounted). */
  async #post(
    repository: string,
    digest: string,
    options: { signal?: AbortSignal; mountFrom?: string },
  ): Promise<Response> {
    const from = options.mountFrom;
    const post = await this.#send({
      method: "POST",
      path: from
        ? mountPath(repository, digest, from)
        : repositoryPath(repository, "blobs/uploads/"),
      repository,
      extraScopes: from && from !== repository ? [scopeOf(from, false)] : undefined,
      write: true,
      headers: { "content-length": "0" },
      signal: options.signal,
      ok: from ? [201, 202] : [202],
    });
    await post.body?.cancel();
    return post;
  }

  /** POST for a session; null when the registry mounted the blob (201) instead. */
  async #start(
    repository: string,
    digest: string,
    options: { signal?: AbortSignal; mountFrom?: string },
  ): Promise<{ url: URL; minChunk: number } | null> {
    const post = await this.#post(repository, digest, options);
    if (post.status === 201) return null;
    const location = post.headers.get("location");
    if (!location) {
      throw new RegistryError(
        "IMAGE_PUSH_FAILED",
        `${this.#host}/${repository}: upload session has no Location`,
        { status: post.status },
      );
    }
    return {
      url: this.#resolveUrl(location),
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
    const put = await this.#close(repository, session, blob.digest, {
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
    this.#chunkBytes ??= CHUNK_START_BYTES;
    return false;
  }

  /**
   * A large blob: one PATCH streaming it whole (no Content-Range, as docker pushes), then the
   * final PUT without a body. The PATCH body never fails: a source that breaks, or bytes that
   * pass the size or do not match, end it early, so the registry answers with the session's
   * current Location and a failed blob is deleted with it. (A monolithic PUT that fails leaves
   * what it sent in distribution's upload area: its first Location no longer names the session,
   * the DELETE is refused.) False on a 413 or 411 (chunks from then on).
   */
  async #patchWhole(
    repository: string,
    blob: { digest: string },
    body: ReadableStream<Uint8Array>,
    session: { url: URL },
    failed: () => unknown,
    signal?: AbortSignal,
  ): Promise<boolean> {
    const patch = await this.#send({
      method: "PATCH",
      path: session.url,
      repository,
      write: true,
      headers: { "content-type": "application/octet-stream" },
      body: () => relay(body, { endEarly: true }),
      signal,
      ok: [202, 411, 413],
      once: true,
      blob: true,
    });
    await patch.body?.cancel();
    if (patch.status === 411 || patch.status === 413) {
      this.#chunkBytes ??= CHUNK_START_BYTES;
      return false;
    }
    const next = patch.headers.get("location");
    if (next) session.url = new URL(next, session.url);
    const failure = failed();
    if (failure) throw failure;
    await this.#close(repository, session.url, blob.digest, {
      headers: { "content-length": "0" },
      signal,
      ok: [201, 204],
    });
    return true;
  }

  /** PATCH the blob in chunks, then PUT the digest. False on a 413 (smaller chunks next time). */
  async #putChunks(
    repository: string,
    blob: { digest: string; size: number },
    body: ReadableStream<Uint8Array>,
    session: { url: URL; minChunk: number },
    signal?: AbortSignal,
  ): Promise<boolean> {
    const size = Math.max(this.#chunkBytes ?? CHUNK_START_BYTES, session.minChunk);
    let location = session.url;
    let offset = 0;
    let chunk = new Uint8Array(size);
    let filled = 0;
    const send = async (): Promise<boolean> => {
      const bytes = chunk.subarray(0, filled);
      const res = await this.#send({
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
        blob: true,
      });
      await res.body?.cancel();
      if (res.status === 413) {
        if (size <= CHUNK_MIN_BYTES) {
          throw new RegistryError(
            "IMAGE_PUSH_FAILED",
            `${this.#host}/${repository}: the registry refuses even ${size}-byte chunks (413)`,
            { status: 413 },
          );
        }
        // Half of what was refused (a short last chunk says more than the chunk size).
        this.#chunkBytes = Math.min(
          this.#chunkBytes ?? size,
          Math.max(CHUNK_MIN_BYTES, Math.floor(filled / 2)),
        );
        return false;
      }
      const next = res.headers.get("location");
      if (next) session.url = location = new URL(next, location);
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
    await this.#close(repository, location, blob.digest, {
      headers: { "content-length": "0" },
      signal,
      ok: [201, 204],
    });
    return true;
  }

  /** The final `PUT <session>?digest=` of an upload, with the body or without; body released. */
  async #close(
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
    const put = await this.#send({
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

  /**
   * Close an upload session that will not be finished (errors ignored).
   *
   * @param repository the repository the session belongs to
   * @param session the session URL (Location of the POST)
   */
  async cancel(repository: string, session: URL): Promise<void> {
    await this.#send({
      method: "DELETE",
      path: session,
      repository,
      write: true,
      ok: [200, 202, 204, 404],
      once: true,
    }).then((r) => r.body?.cancel()).catch(() => {});
  }
}

/**
 * What a failed source says about the upload: its own error when it is one of ours (a layout's
 * corrupt file: IMAGE_DIGEST_MISMATCH; a stalled or broken GET: IMAGE_PULL_FAILED naming the
 * source), anything else as IMAGE_PULL_FAILED. A source that failed is never reported as the
 * destination's push failure, even when the upload's request is what broke first.
 */
function sourceVerdict(error: unknown): MirrorError | undefined {
  if (error === undefined) return undefined;
  if (error instanceof MirrorError) return error;
  return new RegistryError(
    "IMAGE_PULL_FAILED",
    `the source of the blob failed: ${error instanceof Error ? error.message : String(error)}`,
    { status: 0, cause: error },
  );
}

/** How long an upload that failed waits for its stalled source to say so (see SourceWatch). */
const SOURCE_VERDICT_GRACE_MS = 1_000;

/**
 * The source side of one upload try: its own failure, and a read of it still pending. When the
 * upload's request fails (its no-progress timer) while a source read is pending, the source is
 * what stalled: its bytes went on as soon as they came, so its own timer started no later than
 * the upload's and its failure is moments away. The relay then holds the source open (the
 * upload's cancel is deferred) and {@link settled} waits for that failure, at most
 * SOURCE_VERDICT_GRACE_MS, so that a stalled source is reported as the source's failure
 * (IMAGE_PULL_FAILED naming its GET), never as the destination's push failure.
 */
class SourceWatch {
  failure: unknown;
  waiting = false;
  /** The upload's cancel of the source, held while a read is pending. */
  deferredCancel?: () => Promise<void>;
  #failed = Promise.withResolvers<void>();

  fail(error: unknown): void {
    this.failure = error;
    this.#failed.resolve();
  }

  async settled(): Promise<void> {
    if (this.failure === undefined && this.waiting) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const grace = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, SOURCE_VERDICT_GRACE_MS);
      });
      await Promise.race([this.#failed.promise, grace]);
      clearTimeout(timer);
    }
    await this.deferredCancel?.().catch(() => {});
  }
}

/**
 * `stream` relayed chunk by chunk. When the source fails, `watch` hears its own error (not a
 * consumer's), and the relay either fails with it or, `endEarly`, just ends (its failure is read
 * elsewhere). A cancel while a read is pending is handed to `watch` (see SourceWatch).
 */
function relay(
  stream: ReadableStream<Uint8Array>,
  options: { watch?: SourceWatch; endEarly?: boolean },
): ReadableStream<Uint8Array> {
  const reader = stream.getReader();
  const watch = options.watch;
  let cancelled = false;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      let chunk: ReadableStreamReadResult<Uint8Array>;
      try {
        if (watch) watch.waiting = true;
        chunk = await reader.read();
      } catch (error) {
        watch?.fail(error);
        if (cancelled) return;
        if (options.endEarly) controller.close();
        else controller.error(error);
        return;
      } finally {
        if (watch) watch.waiting = false;
      }
      if (cancelled) return;
      if (chunk.done) controller.close();
      else controller.enqueue(chunk.value);
    },
    cancel(reason) {
      cancelled = true;
      if (watch?.waiting) {
        watch.deferredCancel = () => reader.cancel(reason);
        return;
      }
      return reader.cancel(reason);
    },
  });
}
