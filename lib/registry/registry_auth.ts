/**
 * Registry authentication on top of http_transport.ts: the WWW-Authenticate challenge, Basic, and
 * the Bearer token flow (shared/registry-protocols.md §3). Tokens are cached per (realm, service,
 * scope set) until `max(expires_in, 60 s)` minus a 10 s skew (a missing expires_in, as on Quay,
 * means 60 s), and concurrent requests for the same scopes share one token request. On a 401 the
 * challenge is answered once; a second 401 is final (no token loops, gotcha 14). Every token is
 * registered as a secret the moment it arrives.
 *
 * Scopes the run says it will need ({@link RegistryAuth.expect}: the plan's destination
 * repositories) are asked for together: a token request for one of them names up to
 * {@link SCOPES_PER_TOKEN} of them (one `scope=` each, as distribution's and Quay's token
 * endpoints take them), and the token is cached for each. A token server intersects what it grants
 * with what was asked, so a scope it did not grant fails as it would alone: 401 with that token, a
 * token for exactly that scope, a second 401 final; and the host stops asking for several (a
 * token server that granted only part of each request would otherwise cost a 401 per scope).
 * Quay refuses the whole request when one scope names a repository it will not serve (marked for
 * deletion, not an image repository, a disabled namespace); so when a request for several scopes
 * fails, the host stops asking for several too and each request asks for its own scope again, as
 * if none had been batched.
 *
 * Why so strict about where a credential goes: a registry's answers (Location, Link, a redirect,
 * a challenge) are data from the network, and a hostile or compromised registry, or a storage host
 * it redirects to, would otherwise collect the credential. So:
 * - Authorization (Basic or Bearer) is sent only to the registry's own origin; a request to any
 *   other URL (an upload Location or a Link on another host) goes without it and its 401 is final.
 * - An answer that came after a redirect to another origin is never authenticated: its challenge,
 *   Basic or Bearer, is not answered (http_transport.ts drops the header on such redirects).
 * - A token realm gets the credential only when the registry itself named it, and only over https,
 *   unless the registry itself is plain http on a loopback host and the realm is on that same host
 *   (the test setup): a realm over plain http anywhere else gets nothing (LOGIN_FAILED).
 * - A token POST carrying a refresh token is not followed to another origin.
 * - A token answer is read under a 1 MiB cap; malformed JSON is LOGIN_FAILED.
 * - Basic credentials are UTF-8, then base64 (as docker does), so any password works.
 *
 * @module
 */
import type { Credential } from "./credential.ts";
import type { Secrets } from "../log/redact.ts";
import { errorMessage } from "../errors.ts";
import { parseRetryAfter } from "../http_error.ts";
import { isLoopbackHost } from "./reference.ts";
import { type HttpRequest, HttpTransport, redirectedAway } from "./http_transport.ts";
import {
  parseErrorBody,
  readBodyCapped,
  readCapped,
  redactUrl,
  RegistryError,
} from "./registry_error.ts";

/** The most bytes a token answer may have (a JWT is a few KiB). */
const TOKEN_ANSWER_MAX_BYTES = 1024 * 1024;

/**
 * The most scopes one token request names. Each granted scope adds an access entry (about 80
 * bytes of base64) to a token that every request then carries, and a proxy in front of a registry
 * (Quay's nginx) takes a header line of at most 8 KiB; ten keep the token near 2 KiB.
 */
export const SCOPES_PER_TOKEN = 10;

/** A token request for several scopes failed: each waiting request asks for its own scope. */
class BatchRefused extends Error {}

/** The token server answered a token request with an error status (the status says which). */
export class TokenRequestError extends RegistryError {}

/**
 * The `Authorization` value for Basic credentials: `user:password` as UTF-8, then base64 (as
 * docker and distribution do), so a password outside Latin-1 works.
 *
 * @example
 * ```ts
 * import { basicAuthorization } from "./registry_auth.ts";
 * import assert from "node:assert/strict";
 * assert.equal(basicAuthorization("u", "pä€"), "Basic dTpww6Tigqw=");
 * ```
 */
export function basicAuthorization(username: string, password: string): string {
  const bytes = new TextEncoder().encode(`${username}:${password}`);
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return `Basic ${btoa(binary)}`;
}

/** Options for {@link RegistryAuth}. */
export interface RegistryAuthOptions {
  /** The registry's own origin (`https://registry.example`): the only place Authorization goes. */
  origin: string;
  /** The registry's credential; null for anonymous. */
  credential: Credential | null;
  /** Where each token is registered the moment it arrives. */
  secrets: Secrets;
}

/** A parsed challenge. */
export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/**
 * Parse WWW-Authenticate values (`Bearer realm="...",service="...",scope="a b"`).
 *
 * @example
 * ```ts
 * import { parseChallenges } from "./registry_auth.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual(parseChallenges('Basic realm="Registry Realm"'), [
 *   { scheme: "basic", params: { realm: "Registry Realm" } },
 * ]);
 * ```
 */
export function parseChallenges(header: string): Challenge[] {
  const out: Challenge[] = [];
  const re =
    /([A-Za-z][A-Za-z0-9_-]*)(?:\s+|$)((?:\s*,?\s*[A-Za-z0-9_-]+\s*=\s*(?:"(?:[^"\\]|\\.)*"|[^\s,"]+))*)/g;
  for (const match of header.matchAll(re)) {
    if (!match[1]) continue;
    const params: Record<string, string> = {};
    for (
      const p of match[2].matchAll(/([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]+))/g)
    ) {
      params[p[1].toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, "$1") : p[3];
    }
    out.push({ scheme: match[1].toLowerCase(), params });
  }
  return out;
}

interface CachedToken {
  token: string;
  /** `Bearer <token>`, made once: every request sends it (2 KB from some token servers). */
  header: string;
  expiresAt: number;
  /** Asked for with other scopes (a 401 with it turns batching off). */
  batched?: true;
}

/** Sends requests with the right Authorization for a set of scopes. */
export class RegistryAuth {
  #http: HttpTransport;
  #origin: URL;
  /** `#origin.origin`, read once (every request is compared with it). */
  #originText: string;
  #credential: Credential | null;
  #secrets: Secrets;
  #mode: "unknown" | "basic" | "bearer" = "unknown";
  #bearer?: { realm: string; service?: string };
  #tokens = new Map<string, CachedToken>();
  #inflight = new Map<string, Promise<CachedToken>>();
  /** Scopes the run will need (in the order given) not yet asked for; see {@link expect}. */
  #expected = new Set<string>();
  /** False once a request for several scopes failed: each scope is then asked for alone. */
  #batching = true;
  #basic?: string;
  /** Token requests made (for tests and benchmarks). */
  tokenRequests = 0;

  /** Create the auth layer for one registry host. */
  constructor(http: HttpTransport, options: RegistryAuthOptions) {
    const { credential, secrets } = options;
    this.#http = http;
    this.#origin = new URL(options.origin);
    this.#originText = this.#origin.origin;
    this.#credential = credential;
    this.#secrets = secrets;
    if (credential?.kind === "registry-token") {
      this.#mode = "bearer";
      secrets.add(credential.token);
    }
  }

  /**
   * Scopes (`repository:<name>:pull`) the run will need soon: a token request for one of them also
   * names up to {@link SCOPES_PER_TOKEN} - 1 others not yet asked for. Only for a single scope
   * asked in the Bearer flow with Basic credentials, an identity token or none; with a registry
   * token there is no token request.
   */
  expect(scopes: Iterable<string>): void {
    for (const scope of scopes) this.#expected.add(scope);
  }

  /**
   * Send `request` authorised for `scopes`, answering one 401 challenge. A request to another
   * origin than the registry's, or an answer that came from another origin after a redirect, is
   * never authenticated.
   */
  async send(request: HttpRequest, scopes: string[]): Promise<Response> {
    if (request.url.origin !== this.#originText) {
      return await this.#http.send({ ...request, authorization: null });
    }
    const first = await this.#header(scopes, request.signal);
    const res = await this.#http.send({ ...request, authorization: first });
    if (res.status !== 401 || redirectedAway(res)) return res;
    const challenges = parseChallenges(res.headers.get("www-authenticate") ?? "");
    const bearer = challenges.find((c) => c.scheme === "bearer");
    const basic = challenges.find((c) => c.scheme === "basic");
    if (bearer?.params.realm && this.#credential?.kind !== "registry-token") {
      this.#mode = "bearer";
      this.#bearer = { realm: bearer.params.realm, service: bearer.params.service };
      const wanted = new Set(scopes);
      for (const s of (bearer.params.scope ?? "").split(" ")) if (s) wanted.add(s);
      const all = [...wanted];
      // Drop the cached token only if this request carried it and it was refused; requests that
      // went out before any token existed share the one being fetched.
      const cached = this.#tokens.get(this.#key(all));
      const refused = cached !== undefined && first === cached.header;
      if (refused) {
        this.#tokens.delete(this.#key(all));
        // A token server that grants only part of a request would cost a 401 per scope.
        if (cached.batched) this.#batching = false;
      }
      await res.body?.cancel();
      // A refused token (perhaps asked for with other scopes): ask for exactly these scopes.
      const header = await this.#header(all, request.signal, !refused);
      return await this.#http.send({ ...request, authorization: header });
    }
    // Retry with Basic unless this very request already carried it (concurrent requests may all
    // meet the first challenge).
    if (basic && this.#credential?.kind === "basic" && !first?.startsWith("Basic ")) {
      this.#mode = "basic";
      await res.body?.cancel();
      return await this.#http.send({ ...request, authorization: await this.#header(scopes) });
    }
    return res;
  }

  async #header(scopes: string[], signal?: AbortSignal, batch = true): Promise<string | null> {
    const credential = this.#credential;
    if (credential?.kind === "registry-token") return `Bearer ${credential.token}`;
    if (this.#mode === "basic" && credential?.kind === "basic") {
      // Made once: every request of a Basic registry sends it.
      return this.#basic ??= basicAuthorization(credential.username, credential.password);
    }
    if (this.#mode !== "bearer" || !this.#bearer) return null;
    const key = this.#key(scopes);
    for (;;) {
      const cached = this.#tokens.get(key);
      if (cached && cached.expiresAt > Date.now()) return cached.header;
      const pending = this.#inflight.get(key) ?? this.#request(scopes, key, batch, signal);
      try {
        const token = await pending;
        this.#tokens.set(key, token);
        return token.header;
      } catch (error) {
        // A request for several scopes failed (batching is off now): ask for this one alone.
        if (!(error instanceof BatchRefused)) throw error;
      }
    }
  }

  /**
   * Start the token request for `scopes` (cache key `key`), naming with it the next expected
   * scopes that have no token and no request yet; every named scope shares the request.
   */
  #request(
    scopes: string[],
    key: string,
    batch: boolean,
    signal?: AbortSignal,
  ): Promise<CachedToken> {
    const together = [...scopes];
    const keys = [key];
    if (batch && this.#batching && scopes.length === 1 && this.#expected.delete(scopes[0])) {
      for (const scope of this.#expected) {
        if (together.length >= SCOPES_PER_TOKEN) break;
        this.#expected.delete(scope);
        const other = this.#key([scope]);
        const held = this.#tokens.get(other);
        if (this.#inflight.has(other) || (held && held.expiresAt > Date.now())) continue;
        together.push(scope);
        keys.push(other);
      }
    }
    const fetching = this.#fetchToken(together, signal);
    const pending = keys.length === 1 ? fetching : fetching.then((fetched) => {
      const token = { ...fetched, batched: true as const };
      for (const other of keys) this.#tokens.set(other, token);
      return token;
    }, (error) => {
      this.#batching = false;
      throw new BatchRefused(errorMessage(error), { cause: error });
    });
    const settled = pending.finally(() => {
      for (const k of keys) if (this.#inflight.get(k) === settled) this.#inflight.delete(k);
    });
    for (const k of keys) this.#inflight.set(k, settled);
    return settled;
  }

  #key(scopes: string[]): string {
    // One scope (nearly every request): no set, no sort.
    const names = scopes.length === 1 ? scopes[0] : [...new Set(scopes)].sort().join(" ");
    return `${this.#bearer?.realm}|${this.#bearer?.service}|${names}`;
  }

  /**
   * May the credential go to `realm`? Over https, yes (the registry named it: Docker Hub's realm is
   * auth.docker.io). Over plain http only when the registry itself is plain http on a loopback
   * host and the realm is on that same host.
   */
  #realmTrusted(realm: URL): boolean {
    if (realm.protocol === "https:") return true;
    const registry = this.#origin;
    return realm.protocol === "http:" && registry.protocol === "http:" &&
      isLoopbackHost(registry.host) && realm.hostname === registry.hostname;
  }

  async #fetchToken(scopes: string[], signal?: AbortSignal): Promise<CachedToken> {
    const bearer = this.#bearer as { realm: string; service?: string };
    let url: URL;
    try {
      url = new URL(bearer.realm);
      if (url.protocol !== "https:" && url.protocol !== "http:") throw new TypeError("scheme");
    } catch {
      throw new RegistryError(
        "LOGIN_FAILED",
        `${this.#origin.host} names a token realm that is not an http(s) URL: ${
          redactUrl(bearer.realm)
        }`,
        { status: 401, retryable: false },
      );
    }
    const credential = this.#credential;
    if (credential && !this.#realmTrusted(url)) {
      throw new RegistryError(
        "LOGIN_FAILED",
        `${this.#origin.host} names the token realm ${
          redactUrl(url)
        } over plain http; its credential is sent to a token realm only over https (or on the ` +
          `registry's own loopback host when the registry itself is plain http), so none was sent`,
        { status: 401, retryable: false },
      );
    }
    this.tokenRequests++;
    let res: Response;
    if (credential?.kind === "identity-token") {
      const form = new URLSearchParams({
        grant_type: "refresh_token",
        refresh_token: credential.token,
        client_id: "bananna-bot",
      });
      if (bearer.service) form.set("service", bearer.service);
      if (scopes.length) form.set("scope", scopes.join(" "));
      res = await this.#http.send({
        method: "POST",
        url,
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: () => form.toString(),
        signal,
        redirects: "same-origin",
      });
    } else {
      // Set once: each change through url.searchParams parses the URL again.
      const query = new URLSearchParams(url.search);
      if (bearer.service) query.set("service", bearer.service);
      for (const scope of scopes) query.append("scope", scope);
      if (credential?.kind === "basic") query.set("account", credential.username);
      if (bearer.service || scopes.length || credential?.kind === "basic") {
        url.search = query.toString();
      }
      res = await this.#http.send({
        method: "GET",
        url,
        authorization: credential?.kind === "basic"
          ? this.#basic ??= basicAuthorization(credential.username, credential.password)
          : null,
        signal,
      });
    }
    if (!res.ok) {
      const entries = parseErrorBody(await readCapped(res));
      const detail = entries.map((e) => e.message).filter(Boolean).join("; ");
      throw new TokenRequestError(
        res.status === 401 || res.status === 403 ? "LOGIN_FAILED" : "IMAGE_PULL_FAILED",
        `token request to ${redactUrl(bearer.realm)} answered ${res.status}${
          detail ? `: ${detail}` : ""
        }${res.status === 401 ? " (credentials refused)" : ""}`,
        {
          status: res.status,
          errors: entries,
          retryAfterMs: parseRetryAfter(res.headers.get("retry-after")),
        },
      );
    }
    const where = `token answer from ${redactUrl(url.origin + url.pathname)}`;
    const bytes = await readBodyCapped(
      res,
      TOKEN_ANSWER_MAX_BYTES,
      (seen) =>
        new RegistryError(
          "LOGIN_FAILED",
          `${where} is larger than ${TOKEN_ANSWER_MAX_BYTES} bytes (${seen} seen); not read further`,
          { status: res.status, retryable: false },
        ),
    );
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(new TextDecoder().decode(bytes));
    } catch {
      throw new RegistryError("LOGIN_FAILED", `${where} is not JSON`, {
        status: res.status,
        retryable: false,
      });
    }
    if (typeof body !== "object" || body === null || Array.isArray(body)) {
      throw new RegistryError("LOGIN_FAILED", `${where} is not a JSON object`, {
        status: res.status,
        retryable: false,
      });
    }
    const token = body.token ?? body.access_token;
    if (typeof token !== "string" || !token) {
      throw new RegistryError("LOGIN_FAILED", `${where} holds no token (token or access_token)`, {
        status: res.status,
        retryable: false,
      });
    }
    this.#secrets.add(token);
    if (typeof body.refresh_token === "string") this.#secrets.add(body.refresh_token);
    const lifetime = Math.max(Number(body.expires_in) || 60, 60);
    const issued = (typeof body.issued_at === "string" && Date.parse(body.issued_at)) || Date.now();
    return {
      token,
      header: `Bearer ${token}`,
      expiresAt: Math.min(issued, Date.now()) + (lifetime - 10) * 1000,
    };
  }
}
