/**
 * Secrets: every password and token is registered here once, the moment it is read; `mask()`
 * replaces each with `***` and also masks what looks like a secret even when it was never
 * registered (Authorization headers, `user:pass@` in URLs, `"password": "..."`, token=... query
 * parameters). The logger, the report and error messages all go through `mask()`.
 *
 * @module
 */

const MASK = "***";

/** A set of secrets to mask. One per run; the module default {@link secrets} serves the CLI. */
export class Secrets {
  #values = new Set<string>();
  /**
   * The values longest first, each new one put in its place: a token-auth destination adds a
   * token per repository between log lines (1,500 at 15,000 tasks), and sorting them all again
   * after each made the masking grow with the square of the repository count.
   */
  #longestFirst: string[] = [];

  /** Register a secret (empty and very short values are ignored: masking "a" would garble text). */
  add(value: string | undefined | null): void {
    if (value && value.length >= 3 && !this.#values.has(value)) {
      this.#values.add(value);
      // After every value as long or longer: the order a stable sort by length gives.
      const values = this.#longestFirst;
      values.splice(firstNotLonger(values, value.length - 1), 0, value);
    }
  }

  /** Register `user:password` as it appears in Basic auth (UTF-8, then base64) too. */
  addBasic(username: string, password: string): void {
    this.add(password);
    const pair = `${username}:${password}`;
    // The Basic header carries the UTF-8 bytes (RFC 7617); btoa() alone throws past Latin-1.
    this.add(base64Utf8(pair));
    // Latin-1 text may also travel as its own bytes (btoa): mask that form too.
    if ([...pair].every((c) => c.charCodeAt(0) <= 0xff)) this.add(btoa(pair));
  }

  /** How many secrets are registered (for tests). */
  get size(): number {
    return this.#values.size;
  }

  /**
   * Replace every registered secret and every secret-looking pattern in `text`. Every log line
   * passes here, and a run against a token-auth registry registers a token per repository (1,500
   * at 50 namespaces x 30 repositories), so the cost per line must not grow with them: values
   * longer than the text are skipped by a binary search, the rest checked with `includes`.
   */
  mask(text: string): string {
    let out = text;
    const values = this.#longestFirst;
    // Longest first so that a secret containing another is masked whole.
    for (let i = firstNotLonger(values, text.length); i < values.length; i++) {
      if (out.includes(values[i])) out = out.split(values[i]).join(MASK);
    }
    return maskPatterns(out);
  }
}

/** Index of the first value (longest first) not longer than `length`. */
function firstNotLonger(values: readonly string[], length: number): number {
  let lo = 0;
  let hi = values.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (values[mid].length > length) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Base64 of the UTF-8 bytes of `text` (what a Basic header carries). */
export function base64Utf8(text: string): string {
  let binary = "";
  for (const byte of new TextEncoder().encode(text)) binary += String.fromCharCode(byte);
  return btoa(binary);
}

/**
 * What every pattern of {@link maskPatterns} needs somewhere in the text (each names a scheme,
 * `://`, or a key that contains one of these): a line without any is left as it is, one test
 * instead of five replacements.
 */
const PATTERN_HINT = /basic|bearer|:\/\/|pass|secret|token|auth/i;

/** Mask the secret-looking patterns only (no registered values). */
export function maskPatterns(text: string): string {
  if (!PATTERN_HINT.test(text)) return text;
  return text
    .replace(/(authorization\s*[:=]\s*"?)(basic|bearer)\s+[^\s",}]+/gi, `$1$2 ${MASK}`)
    .replace(/\b(basic|bearer)\s+[A-Za-z0-9+/=._~-]{8,}/gi, `$1 ${MASK}`)
    .replace(/(\b[a-z][a-z0-9+.-]*:\/\/)([^/\s:@]+):([^/\s@]+)@/gi, `$1$2:${MASK}@`)
    // JSON `"password": "x"` and query/env `token=x`; a plain `password: word` in prose is left
    // alone (it is how our own messages name a field).
    .replace(
      /("(?:password|passwd|secret|token|access_token|refresh_token|identitytoken|registrytoken|apiToken|auth|Secret)"\s*:\s*")([^"]+)/g,
      (_m, key: string, value: string) => (value === MASK ? `${key}${value}` : `${key}${MASK}`),
    )
    .replace(
      /(\b(?:password|passwd|secret|token|access_token|refresh_token|apiToken)=)([^\s"&,}]+)/gi,
      (_m, key: string, value: string) => (value === MASK ? `${key}${value}` : `${key}${MASK}`),
    );
}
