/**
 * HTTP failures from a registry, kept as data: the registry's own error codes and messages and
 * the host that answered, over the one HTTP error of lib/http_error.ts (status, Retry-After,
 * retry verdict); the message names the method and a redacted URL.
 *
 * @module
 */
import { HttpError, parseRetryAfter } from "../http_error.ts";
import type { Code } from "../log/codes.ts";
import { maskPatterns } from "../log/redact.ts";

/** One entry of an OCI error body. */
export interface RegistryErrorEntry {
  code: string;
  message: string;
}

/** A failed registry request: an {@link HttpError} with the registry's error entries and host. */
export class RegistryError extends HttpError {
  /** The registry's error entries (`errors[]`), if any. */
  readonly errors: RegistryErrorEntry[];
  /** The API host that answered (`host[:port]` of the URL), when the error is an answer. */
  readonly host?: string;

  /** Create the error. */
  constructor(
    code: Code,
    message: string,
    options: {
      status: number;
      errors?: RegistryErrorEntry[];
      retryAfterMs?: number;
      host?: string;
      cause?: unknown;
      /** Override the verdict (e.g. a TLS failure is a network error that will not pass). */
      retryable?: boolean;
    },
  ) {
    super(code, message, options);
    this.name = "RegistryError";
    this.errors = options.errors ?? [];
    this.host = options.host;
  }
}

/** A URL for messages: no credentials, no query values that look like secrets. */
export function redactUrl(url: string | URL): string {
  try {
    const u = new URL(url);
    u.username = "";
    u.password = "";
    for (const key of [...u.searchParams.keys()]) {
      if (/token|sig|signature|auth|key|verify|state|credential/i.test(key)) {
        u.searchParams.set(key, "***");
      }
    }
    return decodeURIComponent(u.href);
  } catch {
    return maskPatterns(String(url));
  }
}

/** Read at most `limit` bytes of a body as text. */
export async function readCapped(res: Response, limit = 64 * 1024): Promise<string> {
  if (!res.body) return "";
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < limit) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      size += value.length;
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  const all = new Uint8Array(Math.min(size, limit));
  let offset = 0;
  for (const c of chunks) {
    const part = c.subarray(0, Math.min(c.length, all.length - offset));
    all.set(part, offset);
    offset += part.length;
  }
  return new TextDecoder().decode(all);
}

/**
 * Read a whole body that must fit in `limit` bytes (a manifest, a token answer, a tag list, a Quay
 * API answer). A `Content-Length` over the cap fails before a byte is read; a body that passes the
 * cap while streaming is cancelled at once, so nothing past `limit` is ever buffered.
 *
 * @param res the response whose body to read
 * @param limit the most bytes accepted
 * @param tooLarge builds the error thrown when the body is larger (gets the bytes seen so far,
 *   or the announced length)
 * @returns the body's bytes (empty when there is no body)
 */
export async function readBodyCapped(
  res: Response,
  limit: number,
  tooLarge: (seen: number) => Error,
): Promise<Uint8Array> {
  const announced = Number(res.headers.get("content-length") ?? NaN);
  if (Number.isFinite(announced) && announced > limit) {
    await res.body?.cancel().catch(() => {});
    throw tooLarge(announced);
  }
  if (!res.body) return new Uint8Array(0);
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.length;
      if (size > limit) {
        await reader.cancel().catch(() => {});
        throw tooLarge(size);
      }
      chunks.push(value);
    }
  } finally {
    reader.releaseLock();
  }
  const all = new Uint8Array(size);
  let offset = 0;
  for (const c of chunks) {
    all.set(c, offset);
    offset += c.length;
  }
  return all;
}

/** Parse an OCI error body leniently (JSON errors[], Quay's `error`/`message`, or text). */
export function parseErrorBody(text: string): RegistryErrorEntry[] {
  try {
    const body = JSON.parse(text);
    if (Array.isArray(body?.errors)) {
      return body.errors.map((e: { code?: unknown; message?: unknown }) => ({
        code: String(e?.code ?? "UNKNOWN"),
        message: String(e?.message ?? ""),
      }));
    }
    const message = body?.error ?? body?.message ?? body?.detail;
    if (typeof message === "string") return [{ code: "UNKNOWN", message }];
  } catch {
    // not JSON
  }
  const trimmed = text.replace(/<[^>]+>/g, " ").replace(/\s+/g, " ").trim().slice(0, 200);
  return trimmed ? [{ code: "UNKNOWN", message: trimmed }] : [];
}

/**
 * A registry's words for a full storage quota: Quay's `Quota has been exceeded on namespace`,
 * Harbor's `... will exceed the configured upper limit of ...` (a bare 403) and the like.
 */
const QUOTA_MESSAGE = /\bquota\b|exceed(?:s|ed)? the configured upper limit/i;

/**
 * The RegistryError for an answer whose status was not expected: a 403 whose message speaks of
 * a quota IMAGE_QUOTA_EXCEEDED (never retried), other 401/403 LOGIN_FAILED, 404
 * IMAGE_NOT_FOUND (IMAGE_PUSH_FAILED for a write), 429 IMAGE_RATE_LIMITED (with
 * ratelimit-remaining and Retry-After in the message), anything else IMAGE_PUSH_FAILED for a write or IMAGE_PULL_FAILED. The registry's error body is
 * read up to 64 KiB (not for HEAD) and the body is always released; the URL in the message is
 * redacted.
 *
 * @param res the answer
 * @param request the method, URL and whether the request writes
 * @returns the error to throw (its retry verdict follows the status)
 */
export async function errorFromResponse(
  res: Response,
  request: { method: string; url: URL; write?: boolean },
): Promise<RegistryError> {
  const entries = request.method === "HEAD" ? [] : parseErrorBody(await readCapped(res));
  if (request.method === "HEAD") await res.body?.cancel();
  const detail = entries.map((e) => `${e.code}: ${e.message}`).join("; ");
  let code: Code;
  let hint = "";
  if (res.status === 403 && entries.some((e) => QUOTA_MESSAGE.test(e.message))) {
    // Quay's DENIED and Harbor's bare 403 alike: a full namespace, not a permission problem.
    code = "IMAGE_QUOTA_EXCEEDED";
    hint = " (the namespace's storage quota is full)";
  } else if (res.status === 401 || res.status === 403) {
    code = "LOGIN_FAILED";
    hint = res.status === 401 ? " (credentials missing or refused)" : " (access denied)";
  } else if (res.status === 404 && !request.write) {
    code = "IMAGE_NOT_FOUND"; // a destination's 404 (a write, or its host) is IMAGE_PUSH_FAILED
  } else if (res.status === 429) {
    code = "IMAGE_RATE_LIMITED";
    const remaining = res.headers.get("ratelimit-remaining");
    const wait = parseRetryAfter(res.headers.get("retry-after"));
    hint = ` (rate limited${remaining ? `, ratelimit-remaining ${remaining}` : ""}${
      wait !== undefined ? `, retry after ${Math.round(wait / 1000)} s` : ""
    })`;
  } else {
    code = request.write ? "IMAGE_PUSH_FAILED" : "IMAGE_PULL_FAILED";
  }
  return new RegistryError(
    code,
    `${request.method} ${redactUrl(request.url)} answered ${res.status}${
      detail ? ` ${detail}` : ""
    }${hint}`,
    {
      status: res.status,
      errors: entries,
      retryAfterMs: parseRetryAfter(res.headers.get("retry-after")),
      host: request.url.host,
    },
  );
}
