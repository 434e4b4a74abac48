/**
 * Registry authentication on top of registry_http.ts: the WWW-Authenticate challenge, Basic, and
 * the Bearer token flow (shared/registry-protocols.md §3). Tokens are cached per (realm, service,
 * scope set) until `max(expires_in, 60 s)` minus a 10 s skew (a missing expires_in, as on Quay,
 * means 60 s), and concurrent requests for the same scopes share one token request. On a 401 the
 * challenge is answered once; a second 401 is final (no token loops, gotcha 14). Every token is
 * registered as a secret the moment it arrives.
 *
 * @module
 */
import type { Credential } from "../credentials/credential.ts";
import type { Secrets } from "../log/redact.ts";
import { type HttpRequest, RegistryHttp } from "./registry_http.ts";
import { parseErrorBody, readCapped, redactUrl, RegistryError } from "./registry_error.ts";

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
  expiresAt: number;
}

/** Sends requests with the right Authorization for a set of scopes. */
export class RegistryAuth {
  #http: RegistryHttp;
  #credential: Credential | null;
  #secrets?: Secrets;
  #mode: "unknown" | "basic" | "bearer" = "unknown";
  #bearer?: { realm: string; service?: string };
  #tokens = new Map<string, CachedToken>();
  #inflight = new Map<string, Promise<CachedToken>>();
  /** Token requests made (for tests and benchmarks). */
  tokenRequests = 0;

  /** Create the auth layer for one registry host. */
  constructor(http: RegistryHttp, credential: Credential | null, secrets?: Secrets) {
    this.#http = http;
    this.#credential = credential;
    this.#secrets = secrets;
    if (credential?.kind === "registry-token") {
      this.#mode = "bearer";
      secrets?.add(credential.token);
    }
  }

  /** Send `request` authorised for `scopes`, answering one 401 challenge. */
  async send(request: HttpRequest, scopes: string[]): Promise<Response> {
    const first = await this.#header(scopes, request.signal);
    const res = await this.#http.send({ ...request, authorization: first });
    if (res.status !== 401) return res;
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
      if (cached && first === `Bearer ${cached.token}`) this.#tokens.delete(this.#key(all));
      await res.body?.cancel();
      const header = await this.#header(all, request.signal);
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

  async #header(scopes: string[], signal?: AbortSignal): Promise<string | null> {
    const credential = this.#credential;
    if (credential?.kind === "registry-token") return `Bearer ${credential.token}`;
    if (this.#mode === "basic" && credential?.kind === "basic") {
      return `Basic ${btoa(`${credential.username}:${credential.password}`)}`;
    }
    if (this.#mode !== "bearer" || !this.#bearer) return null;
    const key = this.#key(scopes);
    const cached = this.#tokens.get(key);
    if (cached && cached.expiresAt > Date.now()) return `Bearer ${cached.token}`;
    let pending = this.#inflight.get(key);
    if (!pending) {
      pending = this.#fetchToken(scopes, signal).finally(() => this.#inflight.delete(key));
      this.#inflight.set(key, pending);
    }
    const token = await pending;
    this.#tokens.set(key, token);
    return `Bearer ${token.token}`;
  }

  #key(scopes: string[]): string {
    return `${this.#bearer?.realm}|${this.#bearer?.service}|${
      [...new Set(scopes)].sort().join(" ")
    }`;
  }

  async #fetchToken(scopes: string[], signal?: AbortSignal): Promise<CachedToken> {
    const bearer = this.#bearer as { realm: string; service?: string };
    const url = new URL(bearer.realm);
    const credential = this.#credential;
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
      });
    } else {
      if (bearer.service) url.searchParams.set("service", bearer.service);
      for (const scope of scopes) url.searchParams.append("scope", scope);
      if (credential?.kind === "basic") url.searchParams.set("account", credential.username);
      res = await this.#http.send({
        method: "GET",
        url,
        authorization: credential?.kind === "basic"
          ? `Basic ${btoa(`${credential.username}:${credential.password}`)}`
          : null,
        signal,
      });
    }
    if (!res.ok) {
      const entries = parseErrorBody(await readCapped(res));
      const detail = entries.map((e) => e.message).filter(Boolean).join("; ");
      throw new RegistryError(
        res.status === 401 || res.status === 403 ? "LOGIN_FAILED" : "IMAGE_PULL_FAILED",
        `token request to ${redactUrl(bearer.realm)} answered ${res.status}${
          detail ? `: ${detail}` : ""
        }${res.status === 401 ? " (credentials refused)" : ""}`,
        { status: res.status, errors: entries },
      );
    }
    const body = await res.json();
    const token = body.token ?? body.access_token;
    if (typeof token !== "string" || !token) {
      throw new RegistryError(
        "LOGIN_FAILED",
        `token response from ${redactUrl(bearer.realm)} holds no token`,
        {
          status: res.status,
        },
      );
    }
    this.#secrets?.add(token);
    if (typeof body.refresh_token === "string") this.#secrets?.add(body.refresh_token);
    const lifetime = Math.max(Number(body.expires_in) || 60, 60);
    const issued = Date.parse(body.issued_at ?? "") || Date.now();
    return { token, expiresAt: Math.min(issued, Date.now()) + (lifetime - 10) * 1000 };
  }
}
