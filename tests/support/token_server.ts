/**
 * A token server for distribution's `auth: token` (shared/registry-protocols.md §3.3, §3.6): checks
 * Basic credentials, grants the requested actions to known users (pull to anonymous callers only
 * when allowed), and signs RS256 JWTs with WebCrypto; the key is named by a `kid` header (as Quay
 * names its service key) that distribution matches against the key of its `rootcertbundle`. Also the OAuth2 variant (§3.3): a form POST with
 * `grant_type=refresh_token` and a user's refresh (identity) token, answered with `access_token`
 * only. Counts requests so tests can assert that a client shares one token per scope.
 *
 * Several `scope` parameters in one request are handled as Quay's `/v2/auth` handles them
 * (shared/registry-protocols.md §3.3, Quay's endpoints/v2/v2auth.py): each scope on its own, a
 * token carrying one access entry per scope. Two rules model what Quay decides per repository:
 * - `refuse` (repository -> message): a scope naming it fails the WHOLE request, 405 UNSUPPORTED,
 *   as Quay raises for a repository that is not a container-image repository (a disabled
 *   namespace is the same 405 with DENIED): the other scopes of that request get no token either.
 * - `grantNothing`: a scope naming it is granted no actions (Quay's downscope for a user or robot
 *   without a permission there); the request still succeeds, and the registry refuses the token
 *   for that repository.
 *
 * @module
 */
import { run } from "./registry.ts";

/** Quay's per-repository decisions for a token request (see the module doc). */
export interface TokenRules {
  /** Repository -> message: a scope naming it fails the whole request (405 UNSUPPORTED). */
  refuse?: Record<string, string>;
  /** Repositories granted no actions (the request still succeeds). */
  grantNothing?: string[];
}

/** A running token server. */
export interface TokenServer {
  realm: string;
  service: string;
  issuer: string;
  /** PEM certificate for the registry's rootcertbundle. */
  certFile: string;
  /** Scope parameters of each token request, in order. */
  requests: string[][];
  /** Refresh (identity) token per user, for the OAuth2 POST. */
  refreshTokens: Record<string, string>;
  /** OAuth2 POSTs served (each with its grant_type). */
  posts: string[];
  stop(): Promise<void>;
}

function b64url(bytes: Uint8Array | string): string {
  const data = typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes;
  let binary = "";
  for (const b of data) binary += String.fromCharCode(b);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function pemBody(pem: string): Uint8Array {
  const base64 = pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, "");
  return Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
}

/** libtrust's key ID of a DER (SPKI) public key, the form distribution 2.8 matches `kid` against. */
async function libtrustKeyId(spki: Uint8Array): Promise<string> {
  const hash = new Uint8Array(
    await crypto.subtle.digest("SHA-256", spki as Uint8Array<ArrayBuffer>),
  ).slice(0, 30);
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = 0;
  let value = 0;
  let base32 = "";
  for (const byte of hash) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      base32 += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  return (base32.match(/.{4}/g) ?? []).join(":");
}

/** Start a token server on a free loopback port. */
export async function startTokenServer(
  options: {
    dir: string;
    users: Record<string, string>;
    anonymousPull: boolean;
  } & TokenRules,
): Promise<TokenServer> {
  const keyFile = `${options.dir}/token.key`;
  const certFile = `${options.dir}/token.crt`;
  await run("openssl", [
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-days",
    "2",
    "-subj",
    "/CN=bananna-bot token issuer",
    "-keyout",
    keyFile,
    "-out",
    certFile,
  ]);
  const key = await crypto.subtle.importKey(
    "pkcs8",
    pemBody(await Deno.readTextFile(keyFile)) as Uint8Array<ArrayBuffer>,
    { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" },
    false,
    ["sign"],
  );
  // The key is named by its `kid`, as Quay names its service key, not carried as an `x5c` chain:
  // distribution 2.8 then looks the key up among its rootcertbundle's keys instead of parsing and
  // verifying a certificate chain on every request. The ID is libtrust's, which is what 2.8 indexes
  // those keys by: SHA-256 of the DER public key, 240 bits, base32, in groups of 4 joined by ':'.
  const kid = await libtrustKeyId(
    pemBody(await run("openssl", ["x509", "-in", certFile, "-noout", "-pubkey"])),
  );
  const service = "bananna-test-registry";
  const issuer = "bananna-test-issuer";
  const requests: string[][] = [];
  const posts: string[] = [];
  const refreshTokens: Record<string, string> = {};
  for (const name of Object.keys(options.users)) refreshTokens[name] = `rt-${crypto.randomUUID()}`;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const url = new URL(req.url);
    let scopes = url.searchParams.getAll("scope");
    let user: string | null = null;
    const oauth = req.method === "POST";
    if (oauth) {
      const form = new URLSearchParams(await req.text());
      posts.push(form.get("grant_type") ?? "");
      scopes = (form.get("scope") ?? "").split(" ").filter(Boolean);
      const owner = Object.entries(refreshTokens).find(([, t]) => t === form.get("refresh_token"));
      if (form.get("grant_type") !== "refresh_token" || !owner || form.get("service") !== service) {
        return Response.json(
          { errors: [{ code: "UNAUTHORIZED", message: "invalid refresh token" }] },
          { status: 401 },
        );
      }
      user = owner[0];
    }
    requests.push(scopes);
    const header = req.headers.get("authorization");
    if (!oauth && header?.toLowerCase().startsWith("basic ")) {
      // user:password as UTF-8, then base64 (as docker sends it).
      const decoded = new TextDecoder().decode(
        Uint8Array.from(atob(header.slice(6)), (c) => c.charCodeAt(0)),
      );
      const sep = decoded.indexOf(":");
      const name = decoded.slice(0, sep);
      if (options.users[name] === undefined || options.users[name] !== decoded.slice(sep + 1)) {
        return Response.json(
          { errors: [{ code: "UNAUTHORIZED", message: "invalid username or password" }] },
          { status: 401 },
        );
      }
      user = name;
    }
    const access = [];
    for (const scope of scopes.flatMap((s) => s.split(" "))) {
      const match = /^repository:(.+):([a-z*,]+)$/.exec(scope);
      if (!match) continue;
      const refused = options.refuse?.[match[1]];
      if (refused !== undefined) {
        return Response.json(
          { errors: [{ code: "UNSUPPORTED", message: refused, detail: {} }] },
          { status: 405 },
        );
      }
      const wanted = match[2].split(",");
      const actions = options.grantNothing?.includes(match[1])
        ? []
        : user
        ? wanted
        : options.anonymousPull
        ? wanted.filter((a) => a === "pull")
        : [];
      access.push({ type: "repository", name: match[1], actions });
    }
    const now = Math.floor(Date.now() / 1000);
    const head = b64url(JSON.stringify({ alg: "RS256", typ: "JWT", kid }));
    const claims = b64url(JSON.stringify({
      iss: issuer,
      sub: user ?? "",
      aud: service,
      exp: now + 300,
      nbf: now - 10,
      iat: now,
      jti: crypto.randomUUID(),
      access,
    }));
    const signature = new Uint8Array(
      await crypto.subtle.sign(
        "RSASSA-PKCS1-v1_5",
        key,
        new TextEncoder().encode(`${head}.${claims}`),
      ),
    );
    const token = `${head}.${claims}.${b64url(signature)}`;
    if (oauth) {
      return Response.json({ access_token: token, expires_in: 300, scope: scopes.join(" ") });
    }
    return Response.json({
      token,
      access_token: token,
      expires_in: 300,
      issued_at: new Date().toISOString(),
    });
  });
  const addr = server.addr as Deno.NetAddr;
  return {
    realm: `http://127.0.0.1:${addr.port}/token`,
    service,
    issuer,
    certFile,
    requests,
    refreshTokens,
    posts,
    async stop() {
      await server.shutdown();
    },
  };
}
