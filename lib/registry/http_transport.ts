/**
 * The one HTTP transport of bananna-bot: the registry client (under registry_auth.ts) and the
 * Quay client send every request through it. The bottom layer: fetch with TLS from a CA file (Deno.createHttpClient), a timeout on
 * silence for the whole exchange (every chunk of a streamed request body and of the response body
 * resets it: an upload or download may take as long as it needs, a stalled one fails), and
 * redirects followed by hand: at most 10 hops, 303 becomes GET, https never downgrades to http,
 * and the Authorization header is dropped for good as soon as scheme, host or port change
 * (shared/registry-protocols.md §2.10, gotcha 1): a redirect back to the first origin does not get
 * it again. {@link redirectedAway} tells the auth layer that an answer came from another origin,
 * so it never answers that origin's challenge. A request that carries a credential in its URL or
 * body (a token request) may refuse cross-origin redirects altogether. A body is a function, so a
 * redirected or retried request gets a fresh stream. Every request says who sends it
 * ({@link USER_AGENT}), so a registry operator can tell the mirror from anything else in an
 * access log.
 *
 * @module
 */
import { MirrorError } from "../errors.ts";
import { unrefTimeout } from "../unref_timer.ts";
import { VERSION } from "../version.ts";
import { checkWrite } from "../write_guard.ts";
import { redactUrl, RegistryError } from "./registry_error.ts";
import { Watchdog, type Watched } from "./request_watchdog.ts";

/** The `User-Agent` of every request bananna-bot sends (registry, token realm, Quay API, webhook, Pushgateway). */
export const USER_AGENT = `bananna-bot/${VERSION}`;

/**
 * How long a request may take. Every request has the timeout on silence; besides, a metadata
 * request (anything but a blob stream: manifests, tag-list pages, referrers, tokens, the Quay API,
 * webhooks) must be complete, body included, within `deadlineMs`, and a blob stream must move at
 * least `minBlobRate` bytes per second, measured over each `blobRateGraceMs` window after the first
 * (`0` turns a bound off).
 */
export interface HttpLimits {
  /** Time without progress (operation.apiTimeout). @default 30000 */
  timeoutMs?: number;
  /** Whole exchange of a metadata request (operation.requestDeadline). @default 60000 */
  deadlineMs?: number;
  /** Bytes per second a blob stream must move (operation.minBlobRate). @default 65536 */
  minBlobRate?: number;
  /** The grace, and the window the rate is measured over (operation.blobRateGrace). @default 30000 */
  blobRateGraceMs?: number;
}

/** The {@link HttpLimits} of `operation` (seconds and bytes per second, as configured). */
export function httpLimits(
  operation: {
    apiTimeout: number;
    requestDeadline: number;
    minBlobRate: number;
    blobRateGrace: number;
  },
): HttpLimits {
  return {
    timeoutMs: operation.apiTimeout * 1000,
    deadlineMs: operation.requestDeadline * 1000,
    minBlobRate: operation.minBlobRate,
    blobRateGraceMs: operation.blobRateGrace * 1000,
  };
}

/** The {@link HttpLimits} fields of `options` alone. */
export function limitsOf(options: HttpLimits): HttpLimits {
  const { timeoutMs, deadlineMs, minBlobRate, blobRateGraceMs } = options;
  return { timeoutMs, deadlineMs, minBlobRate, blobRateGraceMs };
}

/** Options for {@link HttpTransport}. */
export interface HttpTransportOptions extends HttpLimits {
  /** PEM CA bundle to trust in addition to the system roots. */
  caFile?: string;
}

/** One request. */
export interface HttpRequest {
  method: string;
  url: URL;
  headers?: Record<string, string>;
  /** `Authorization` value; sent only to the request's own origin. */
  authorization?: string | null;
  /** A fresh body per call (redirects and retries call it again). */
  body?: () => BodyInit | null | Promise<BodyInit | null>;
  signal?: AbortSignal;
  /**
   * `"same-origin"`: a redirect to another origin fails (LOGIN_FAILED) instead of being followed,
   * for requests whose body or URL holds a credential (a refresh token in a token POST).
   * @default "follow"
   */
  redirects?: "follow" | "same-origin";
  /**
   * False for a request that changes nothing another run relies on (a notification): it skips
   * the write guard. @default true for every method but GET and HEAD (lib/write_guard.ts)
   */
  guarded?: boolean;
  /**
   * A blob stream (a blob GET; an upload body is one by itself): held to the minimum rate, not to
   * the metadata deadline ({@link HttpLimits}).
   */
  blob?: boolean;
  /**
   * A failure is the destination's IMAGE_PUSH_FAILED (a read from a host this run only writes to
   * too), not a source read's IMAGE_PULL_FAILED. @default true for PUT, POST, PATCH and DELETE
   */
  write?: boolean;
}

/** The request's headers with lower-case names (as `Headers` would set them). */
function requestHeaders(given: Record<string, string> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name in given) {
    const lower = name.toLowerCase();
    // Two spellings of one name: combined, as Headers appends them.
    out[lower] = lower in out ? `${out[lower]}, ${given[name]}` : given[name];
  }
  return out;
}

/** The redirect statuses followed. */
const REDIRECTS = new Set([301, 302, 303, 307, 308]);
/** Statuses whose answer has no body to watch. */
const NO_BODY = new Set([101, 204, 205, 304]);

/** Answers that came from another origin than their request's, after a redirect. */
const crossOriginAnswers = new WeakSet<Response>();

/**
 * Did `res` come from another origin than the request it answers (after a redirect)? Such an
 * answer's challenge (401 WWW-Authenticate) is not the registry's and must never be answered.
 *
 * @param res an answer from {@link HttpTransport.send}
 * @returns true when a redirect led to another scheme, host or port
 */
export function redirectedAway(res: Response): boolean {
  return crossOriginAnswers.has(res);
}

/** fetch for registries and the Quay API. */
export class HttpTransport {
  #client?: Deno.HttpClient;
  #caFile?: string;
  #timeoutMs: number;
  #deadlineMs: number;
  /** What a metadata request that passed {@link #deadlineMs} fails with (one per transport). */
  #deadlineMessage: string;
  #minBlobRate: number;
  #graceMs: number;
  #watchdog = new Watchdog();

  /** Create the transport (reads the CA file at once, so a bad path fails early). */
  constructor(options: HttpTransportOptions = {}) {
    this.#timeoutMs = options.timeoutMs ?? 30_000;
    this.#caFile = options.caFile;
    this.#deadlineMs = options.deadlineMs ?? 60_000;
    this.#deadlineMessage = `no complete answer within ${
      this.#deadlineMs / 1000
    } s (operation.requestDeadline)`;
    this.#minBlobRate = options.minBlobRate ?? 65_536;
    this.#graceMs = options.blobRateGraceMs ?? 30_000;
    if (options.caFile) {
      let pem: string;
      try {
        pem = Deno.readTextFileSync(options.caFile);
      } catch (cause) {
        throw new MirrorError("CONFIG_INVALID", `Cannot read caFile ${options.caFile}`, { cause });
      }
      this.#client = Deno.createHttpClient({ caCerts: [pem] });
    }
  }

  /** Send one request, following redirects. Network failures throw RegistryError status 0. */
  async send(request: HttpRequest): Promise<Response> {
    let url = request.url;
    let method = request.method;
    let body = request.body;
    const origin = url.origin;
    // Once a redirect left the first origin, no hop carries the Authorization again.
    let away = false;
    for (let hop = 0; hop <= 10; hop++) {
      if (hop > 0) away ||= url.origin !== origin;
      // Every write asks the run's write guard first, and again before each chunk of a streamed
      // body: a run that lost its lock (paused mid-upload) completes no write after it resumes.
      const guarded = request.guarded ?? (method !== "GET" && method !== "HEAD");
      const what = guarded ? `${method} ${redactUrl(url)}` : "";
      if (guarded) await checkWrite(what);
      // A plain record, not a Headers: fetch checks each value once (a Headers handed to fetch
      // is iterated and every value checked again; a registry token can be 2 KB).
      const headers = requestHeaders(request.headers);
      headers["user-agent"] = USER_AGENT;
      if (request.authorization && !away) headers.authorization = request.authorization;
      const res = await this.#fetchWithTimeout(url, {
        method,
        headers,
        body: body ? await body() : undefined,
        redirect: "manual",
        signal: request.signal,
      }, {
        guard: guarded ? () => checkWrite(what) : undefined,
        blob: request.blob ?? false,
        write: request.write,
      });
      if (!REDIRECTS.has(res.status)) {
        if (away) crossOriginAnswers.add(res);
        return res;
      }
      const location = res.headers.get("location");
      await res.body?.cancel();
      if (!location) {
        if (away) crossOriginAnswers.add(res);
        return res;
      }
      const next = new URL(location, url);
      if (request.redirects === "same-origin" && next.origin !== origin) {
        throw new RegistryError(
          "LOGIN_FAILED",
          `${method} ${redactUrl(url)}: redirected to another host (${
            redactUrl(next)
          }); a request that carries a credential is not followed there`,
          { status: res.status, retryable: false },
        );
      }
      if (url.protocol === "https:" && next.protocol === "http:") {
        throw new RegistryError(
          "IMAGE_PULL_FAILED",
          `${method} ${redactUrl(url)}: refused a redirect from https to http (${redactUrl(next)})`,
          { status: res.status },
        );
      }
      if (res.status === 303) {
        method = "GET";
        body = undefined;
      }
      url = next;
    }
    throw new RegistryError(
      "IMAGE_PULL_FAILED",
      `${request.method} ${redactUrl(request.url)}: too many redirects`,
      {
        status: 0,
      },
    );
  }

  async #fetchWithTimeout(
    url: URL,
    init: RequestInit,
    options: { guard?: () => Promise<void>; blob: boolean; write?: boolean },
  ): Promise<Response> {
    const { guard } = options;
    const outer = init.signal ?? undefined;
    const timeout = new AbortController();
    const limit = this.#timeoutMs;
    let timedOut = false;
    // Besides silence: a metadata request's whole exchange has a deadline, a blob stream a
    // minimum rate (HttpLimits). `bound` says which one ended it.
    const blob = options.blob || init.body instanceof ReadableStream;
    let bound = "";
    let moved = 0;
    const deadline = blob ? 0 : this.#deadlineMs;
    const started = performance.now();
    // Until the response headers arrive, `limit` ms without progress aborts: with no body that is
    // the whole wait; a streamed body (a blob upload) counts as progress with every chunk sent, so
    // a large layer may take as long as it needs while a stalled one still fails. The silence and
    // the metadata deadline are checked by the transport's one watchdog, as is the caller's signal.
    const watch: Watched = {
      due: deadline > 0 ? started + deadline : Infinity,
      limit,
      lastProgress: started,
      outer,
      end(why) {
        bound = why;
        timedOut = true;
        timeout.abort(new DOMException("timed out", "TimeoutError"));
      },
      abort: (reason) => timeout.abort(reason),
      deadlineMessage: this.#deadlineMessage,
    };
    const end = (why: string) => {
      this.#watchdog.delete(watch);
      watch.end(why);
    };
    const bounds = blob ? this.#rateWatch(() => moved, end) : () => {};
    let body = init.body;
    const streamed = body instanceof ReadableStream;
    if (body instanceof ReadableStream) {
      body = body.pipeThrough(
        new TransformStream<Uint8Array, Uint8Array>({
          async transform(chunk, controller) {
            await guard?.();
            watch.lastProgress = performance.now();
            moved += chunk.length;
            controller.enqueue(chunk);
          },
        }),
      );
    }
    // The caller's signal also aborts the response body: it aborts the one controller until the
    // exchange ends.
    const signal = timeout.signal;
    if (outer?.aborted) timeout.abort(outer.reason);
    else this.#watchdog.add(watch);
    const write = options.write ??
      (init.method === "PUT" || init.method === "POST" || init.method === "PATCH" ||
        init.method === "DELETE");
    const failure = (what: string, cause?: unknown, retryable = true) =>
      new RegistryError(
        write ? "IMAGE_PUSH_FAILED" : "IMAGE_PULL_FAILED",
        `${init.method} ${redactUrl(url)}: ${what}`,
        { status: 0, cause, retryable },
      );
    let res: Response;
    const stop = () => {
      this.#watchdog.delete(watch);
      bounds();
    };
    try {
      res = await fetch(url, { ...init, body, signal, client: this.#client });
    } catch (cause) {
      stop();
      if (outer?.aborted) throw outer.reason ?? cause;
      const tls = !timedOut && isTlsFailure(cause);
      const what = bound ||
        (timedOut
          ? silenceMessage(limit, streamed)
          : tls
          ? tlsAdvice(url.host, causes(cause), this.#caFile)
          : causes(cause));
      throw failure(what, cause, !tls);
    }
    if (!res.body || NO_BODY.has(res.status)) {
      stop();
      return res;
    }
    // The answer's body is watched the same way: a registry that stops sending mid-body fails
    // after `limit` ms without a byte instead of hanging the run.
    watch.lastProgress = performance.now();
    const watched = watchedBody(res, !options.blob, {
      progress(bytes) {
        watch.lastProgress = performance.now();
        moved += bytes;
      },
      stop,
      failed: (cause) =>
        timedOut && !outer?.aborted
          ? failure(
            bound || `no progress for ${limit / 1000} s (apiTimeout) while reading the answer`,
          )
          : cause,
    });
    return new Response(watched, { status: res.status, headers: res.headers });
  }

  /**
   * The blob rate: after the grace, each window of the grace's length must move `minBlobRate`
   * bytes per second on average, else `end` is called; returns the stop.
   */
  #rateWatch(moved: () => number, end: (why: string) => void): () => void {
    const rate = this.#minBlobRate;
    const window = this.#graceMs;
    if (!(rate > 0) || !(window > 0)) return () => {};
    let mark = 0;
    let cancel = () => {};
    const check = (first: boolean) => {
      const now = moved();
      const need = (rate * window) / 1000;
      // The first window is the grace: it may be slow (TLS, a cold cache upstream).
      if (!first && now - mark < need) {
        end(
          `moved ${now - mark} bytes in ${
            window / 1000
          } s, under the minimum of ${rate} bytes/s (operation.minBlobRate)`,
        );
        return;
      }
      mark = now;
      arm();
    };
    let first = true;
    const arm = () => {
      cancel = unrefTimeout(() => {
        const wasFirst = first;
        first = false;
        check(wasFirst);
      }, window);
    };
    arm();
    return () => cancel();
  }

  /** Release the connection pool. */
  close(): void {
    this.#client?.close();
  }
}

/** What `limit` ms without progress before the answer's headers means. */
function silenceMessage(limit: number, streamed: boolean): string {
  return streamed
    ? `no progress for ${limit / 1000} s (apiTimeout) while sending the body or awaiting the answer`
    : `no answer within ${limit / 1000} s (apiTimeout)`;
}

/** The messages of an error and its causes, joined. */
function causes(error: unknown): string {
  const parts: string[] = [];
  for (let e = error, depth = 0; e && depth < 5; depth++) {
    parts.push(e instanceof Error ? e.message : String(e));
    e = e instanceof Error ? e.cause : undefined;
  }
  return [...new Set(parts)].join(": ");
}

/**
 * What a TLS failure means and what to do, naming the registry: a self-signed certificate
 * (`CaUsedAsEndEntity`: a CA certificate served as the server's own) or one from a CA this host
 * does not trust (`UnknownIssuer`, as behind OpenShift's default ingress) needs that CA in caFile.
 */
function tlsAdvice(host: string, detail: string, caFile: string | undefined): string {
  const what = /CaUsedAsEndEntity/i.test(detail)
    ? `${host} presents a self-signed certificate (a CA certificate used as its own)`
    : /UnknownIssuer/i.test(detail)
    ? `${host}'s certificate is signed by a CA this host does not trust`
    : /NotValidForName/i.test(detail)
    ? `${host}'s certificate is not valid for that name`
    : /Expired/i.test(detail)
    ? `${host}'s certificate has expired`
    : `TLS with ${host} failed`;
  if (/CaUsedAsEndEntity/i.test(detail)) {
    return `TLS verification failed: ${what} (${detail}); this client refuses a CA certificate ` +
      `served as the server's own even when caFile trusts it: give ${host} a server certificate ` +
      "signed by that CA (on OpenShift: a route that uses the cluster's ingress certificate, " +
      "docs/openshift.md) and set caFile to the CA, or insecure: true for plain http";
  }
  const todo = caFile
    ? `the CA in caFile ${caFile} did not verify it: put the CA that signed ${host}'s certificate there`
    : `set caFile to a PEM file of the CA that signed it (registries.<name>.caFile, or sources["${host}"].caFile for a source; on OpenShift, the cluster's trusted CA bundle: docs/openshift.md)`;
  return `TLS verification failed: ${what} (${detail}); ${todo}, or insecure: true for plain http`;
}

function isTlsFailure(error: unknown): boolean {
  return /certificate|UnknownIssuer|invalid peer|InvalidCertificate|tls|handshake/i.test(
    causes(error),
  );
}

/** A body announced at most this long (not a blob) is read in one piece: see {@link watchedBody}. */
const SMALL_BODY = 64 * 1024;

/**
 * `res`'s body, read through `watch`: every chunk is progress; the end or a cancel stops the watch;
 * a failed read errors the stream with what `watch.failed` makes of it (the timeout's reason).
 * A small answer (a token, a manifest, a tag list page: `Content-Length` at most 64 KiB, not a
 * blob) is read whole by the runtime at the first read: read chunk by chunk, each chunk holds a 64
 * KiB buffer that V8 counts as external memory until its next full collection (40 KB per token
 * answer, which at a token per repository made most of the external memory of a 15,000-task run).
 */
function watchedBody(
  res: Response,
  small: boolean,
  watch: { progress(bytes: number): void; stop(): void; failed(cause: unknown): unknown },
): ReadableStream<Uint8Array> {
  const announced = Number(res.headers.get("content-length") ?? NaN);
  let whole = small && Number.isFinite(announced) && announced <= SMALL_BODY;
  const reader = whole ? undefined : (res.body as ReadableStream<Uint8Array>).getReader();
  const read = async (): Promise<ReadableStreamReadResult<Uint8Array>> => {
    if (reader) return await reader.read();
    if (!whole) return { done: true, value: undefined };
    whole = false;
    const value = await res.bytes();
    return value.length > 0 ? { done: false, value } : { done: true, value: undefined };
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done, value } = await read();
        if (done) {
          watch.stop();
          controller.close();
          return;
        }
        watch.progress(value.length);
        controller.enqueue(value);
      } catch (cause) {
        watch.stop();
        controller.error(watch.failed(cause));
      }
    },
    cancel(reason) {
      watch.stop();
      return reader ? reader.cancel(reason) : res.body?.cancel(reason).catch(() => {});
    },
  });
}
