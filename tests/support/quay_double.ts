/**
 * A double of Quay's REST API that follows shared/registry-protocols.md §5 (routes with their
 * trailing-slash rules, the four error shapes, permission checks before existence checks, 403 CSRF
 * for writes without a valid token, 400 "Repository already exists"), in front of a REAL registry:
 * everything that is not `/api/v1/` is reverse-proxied (streamed) to the upstream docker-registry,
 * so one url serves both the API and `/v2/`, as Quay does.
 *
 * What a real Quay does that distribution does not (§5.14), modelled on the `/v2/` side:
 * - a manifest PUT by digest gets a temporary tag that lives `tempTagLifetimeSeconds`; after it a
 *   GET/HEAD by digest answers 404 MANIFEST_UNKNOWN unless a tag of the repository (read from the
 *   registry behind) points at it or at an index that lists it; a manifest with a `subject` never
 *   expires, and a PUT by digest again starts a new temporary tag;
 * - namespace quotas: once a namespace's usage (`usedBytes` plus every blob upload completed
 *   through the double) reaches `rejectPercent` of `limitBytes`, a blob upload start, a chunk and
 *   the final PUT answer 403 DENIED "Quota has been exceeded on namespace"; the organization GET
 *   carries `quota_report` and `GET /api/v1/organization/<org>/quota` the limits;
 * - robot accounts (`robots`: `org+name` -> token): Basic credentials of a robot at `/v2/` are
 *   checked and replaced by the registry's own; a robot may write (POST, PUT, PATCH, DELETE) only
 *   into a repository where it has the role `write` or `admin` (granted through
 *   `PUT /api/v1/repository/<ns>/<name>/permissions/user/<org+name>`, which needs admin on the
 *   repository and the `repo:admin` scope, §5.4/§5.10), else 401 UNAUTHORIZED as a push without
 *   the push action gets; reads (GET, HEAD) of a private repository the double knows answer 401
 *   to a robot without a role there. (A repository the double does not know is read through to
 *   distribution: real Quay would answer 401 there too unless the robot may read the namespace.)
 * - `GET /v2/` says `X-Sparse-Manifest-Support`.
 *
 * @module
 */
import { forward } from "./proxy.ts";
import type { TestRegistry } from "./registry.ts";

/** Who a token belongs to and what its OAuth scopes allow. */
export interface QuayToken {
  user: string;
  scopes: string[];
}

/** An organization and its team roles. */
export interface QuayOrg {
  admins?: string[];
  creators?: string[];
  members?: string[];
}

/** A repository known to the double. */
export interface QuayRepo {
  namespace: string;
  name: string;
  description: string | null;
  isPublic: boolean;
  createdBy?: string;
  /** Roles of users and robots on this repository (`read`, `write`, `admin`). */
  permissions?: Record<string, "read" | "write" | "admin">;
}

/** A namespace quota (FEATURE_QUOTA_MANAGEMENT + FEATURE_VERIFY_QUOTA). */
export interface QuayQuota {
  limitBytes: number;
  /** Usage before the test starts. @default 0 */
  usedBytes?: number;
  /** The Warning limit, in percent of limitBytes. @default 80 */
  warningPercent?: number;
  /** The Reject limit, in percent of limitBytes. @default 100 */
  rejectPercent?: number;
}

/** Fixtures. */
export interface QuayFixtures {
  tokens: Record<string, QuayToken>;
  orgs: Record<string, QuayOrg>;
  repos?: QuayRepo[];
  /** `X-Sparse-Manifest-Support` on `GET /v2/` (FEATURE_SPARSE_INDEX). @default false */
  sparseManifestSupport?: boolean;
  /** Lifetime of the temporary tag of a manifest PUT by digest (PUSH_TEMP_TAG_EXPIRATION_SEC). @default 3600 */
  tempTagLifetimeSeconds?: number;
  /** Namespace quotas by namespace. */
  quotas?: Record<string, QuayQuota>;
  /** Robot accounts: full name `org+short` -> token (their registry password). */
  robots?: Record<string, string>;
}

/** A running double. */
export interface QuayDouble extends AsyncDisposable {
  /** `127.0.0.1:PORT`. */
  host: string;
  url: string;
  /** API calls seen: `METHOD /path STATUS`. */
  requests: string[];
  /** Current repositories. */
  repositories(): QuayRepo[];
  /** `/v2/` requests the double answered itself (expired, quota, robot): `METHOD /path STATUS`. */
  refused: string[];
  /** A namespace's usage in bytes as the quota counts it. */
  usage(namespace: string): number;
  /** The User-Agent of every request seen (API and `/v2/`). */
  userAgents: string[];
  stop(): Promise<void>;
}

const ACCEPT = [
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.v2+json",
].join(", ");

async function sha256(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return `sha256:${Array.from(hash, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/** The children an index lists and whether a manifest has a subject (referrers never expire). */
function describe(bytes: Uint8Array): { children: string[]; subject: boolean } {
  try {
    const body = JSON.parse(new TextDecoder().decode(bytes));
    const children = Array.isArray(body?.manifests)
      ? body.manifests.map((m: { digest?: unknown }) => String(m?.digest))
      : [];
    return { children, subject: typeof body?.subject?.digest === "string" };
  } catch {
    return { children: [], subject: false };
  }
}

const NAME = /^(?=.{0,255}$)[a-z0-9][.a-z0-9_-]*(?:\/[a-z0-9][.a-z0-9_-]*)*$/;

function shapeA(status: number, type: string, detail: string, host: string): Response {
  return Response.json(
    {
      detail,
      error_message: detail,
      error_type: type,
      title: type,
      type: `http://${host}/api/v1/error/${type}`,
      status,
    },
    { status },
  );
}

/** Start the double in front of `upstream`. */
export function startQuayDouble(upstream: TestRegistry, fixtures: QuayFixtures): QuayDouble {
  const repos = new Map<string, QuayRepo>();
  for (const repo of fixtures.repos ?? []) repos.set(`${repo.namespace}/${repo.name}`, { ...repo });
  const requests: string[] = [];
  const refused: string[] = [];
  const userAgents: string[] = [];
  let host = "";
  const lifetimeMs = (fixtures.tempTagLifetimeSeconds ?? 3600) * 1000;
  /** `repo@digest` -> when its temporary tag expires (manifests PUT by digest). */
  const tempTags = new Map<string, number>();
  /** `repo@digest` -> the digests an index lists and whether it has a subject. */
  const manifests = new Map<string, { children: string[]; subject: boolean }>();
  const used = new Map<string, number>();
  for (const [ns, quota] of Object.entries(fixtures.quotas ?? {})) {
    used.set(ns, quota.usedBytes ?? 0);
  }
  const upstreamAuth: Record<string, string> = upstream.username
    ? { authorization: `Basic ${btoa(`${upstream.username}:${upstream.password}`)}` }
    : {};

  const knownUser = (name: string) =>
    Object.values(fixtures.tokens).some((t) => t.user === name) ||
    Object.values(fixtures.orgs).some((o) =>
      [...o.admins ?? [], ...o.creators ?? [], ...o.members ?? []].includes(name)
    );
  const quotaView = (quota: QuayQuota) => ({
    id: 1,
    limit_bytes: quota.limitBytes,
    limit: `${quota.limitBytes} B`,
    default_config: false,
    limits: [
      { id: 1, type: "Warning", limit_percent: quota.warningPercent ?? 80 },
      { id: 2, type: "Reject", limit_percent: quota.rejectPercent ?? 100 },
    ],
    default_config_exists: false,
  });
  const scopeAllows = (token: QuayToken | undefined, needed: string[]) =>
    token !== undefined && needed.some((s) => token.scopes.includes(s));
  const isNamespaceAdmin = (user: string, ns: string) =>
    user === ns || (fixtures.orgs[ns]?.admins ?? []).includes(user);
  const canCreate = (user: string, ns: string) =>
    isNamespaceAdmin(user, ns) || (fixtures.orgs[ns]?.creators ?? []).includes(user);

  async function api(req: Request, url: URL): Promise<Response> {
    const auth = req.headers.get("authorization") ?? "";
    const token = auth.startsWith("Bearer ") ? fixtures.tokens[auth.slice(7)] : undefined;
    const path = url.pathname;
    const write = req.method !== "GET" && req.method !== "HEAD";
    if (write && !token) {
      return Response.json({ error: "CSRF token was invalid or missing." }, { status: 403 });
    }

    if (path === "/api/v1/user/") {
      if (!token) return shapeA(401, "invalid_token", "Requires authentication", host);
      return Response.json({ anonymous: false, username: token.user, organizations: [] });
    }
    if (path === "/api/v1/user") {
      return new Response(null, { status: 308, headers: { location: "/api/v1/user/" } });
    }

    const org = /^\/api\/v1\/organization\/([^/]+)$/.exec(path);
    if (org && req.method === "GET") {
      if (!fixtures.orgs[org[1]]) return shapeA(404, "not_found", "Not Found", host);
      const quota = fixtures.quotas?.[org[1]];
      return Response.json({
        name: org[1],
        is_admin: token ? isNamespaceAdmin(token.user, org[1]) : false,
        ...(quota
          ? {
            quota_report: {
              quota_bytes: used.get(org[1]) ?? 0,
              configured_quota: quota.limitBytes,
              running_backfill: "complete",
              backfill_status: "complete",
            },
            quotas: [quotaView(quota)],
          }
          : {}),
      });
    }
    const quotaList = /^\/api\/v1\/organization\/([^/]+)\/quota$/.exec(path);
    if (quotaList && req.method === "GET") {
      if (!fixtures.orgs[quotaList[1]]) return shapeA(404, "not_found", "Not Found", host);
      if (!token) return shapeA(401, "invalid_token", "Requires authentication", host);
      const quota = fixtures.quotas?.[quotaList[1]];
      return Response.json(quota ? [quotaView(quota)] : []);
    }

    const permission = /^\/api\/v1\/repository\/([^/]+)\/(.+)\/permissions\/user\/([^/]+)$/
      .exec(path);
    if (permission) {
      const [, ns, name] = permission;
      const who = decodeURIComponent(permission[3]);
      const repo = repos.get(`${ns}/${name}`);
      // Admin on the repository, capped by the repo:admin scope (§5.4), before existence.
      const user = token?.user;
      const admin = user !== undefined && scopeAllows(token, ["repo:admin"]) &&
        (isNamespaceAdmin(user, ns) || repo?.createdBy === user ||
          repo?.permissions?.[user] === "admin");
      if (!admin) {
        return token
          ? shapeA(403, "insufficient_scope", "Unauthorized", host)
          : shapeA(401, "invalid_token", "Requires authentication", host);
      }
      if (!repo) return shapeA(404, "not_found", "Not Found", host);
      const isRobot = who.includes("+");
      const known = isRobot ? who in (fixtures.robots ?? {}) : knownUser(who);
      if (!known) return shapeA(400, "invalid_request", `Invalid username: ${who}`, host);
      const view = (role: string) => ({
        role,
        name: who,
        is_robot: isRobot,
        avatar: { name: who, hash: "0", color: "#000000", kind: isRobot ? "robot" : "user" },
        ...(ns in fixtures.orgs ? { is_org_member: true } : {}),
      });
      if (req.method === "GET") {
        const role = repo.permissions?.[who];
        if (!role) {
          return Response.json({ message: "User does not have permission for repo." }, {
            status: 400,
          });
        }
        return Response.json(view(role));
      }
      if (req.method === "PUT") {
        const body = await req.json().catch(() => null);
        const role = body?.role;
        if (role !== "read" && role !== "write" && role !== "admin") {
          return shapeA(400, "invalid_request", "'role' is a required property", host);
        }
        repo.permissions = { ...repo.permissions, [who]: role };
        return Response.json(view(role));
      }
      if (req.method === "DELETE") {
        if (repo.permissions) delete repo.permissions[who];
        return new Response(null, { status: 204 });
      }
    }

    if (path === "/api/v1/repository" && req.method === "POST") {
      let body: Record<string, unknown> | null;
      try {
        body = await req.json();
      } catch {
        return Response.json({
          message: "The browser (or proxy) sent a request that this server could not understand.",
        }, {
          status: 400,
        });
      }
      if (body === null) return shapeA(400, "invalid_request", "Missing JSON body", host);
      for (const field of ["repository", "visibility", "description"]) {
        if (!(field in body)) {
          return shapeA(400, "invalid_request", `'${field}' is a required property`, host);
        }
      }
      const ns = String(body.namespace ?? (token as QuayToken).user);
      const name = String(body.repository);
      const user = (token as QuayToken).user;
      if (!canCreate(user, ns) || !scopeAllows(token, ["repo:create", "org:admin"])) {
        return shapeA(403, "insufficient_scope", "Unauthorized", host);
      }
      if (repos.has(`${ns}/${name}`)) {
        return shapeA(400, "invalid_request", "Repository already exists", host);
      }
      if (!NAME.test(name)) return shapeA(400, "invalid_request", "Invalid repository name", host);
      repos.set(`${ns}/${name}`, {
        namespace: ns,
        name,
        description: String(body.description),
        isPublic: body.visibility === "public",
        createdBy: user,
      });
      return Response.json({ namespace: ns, name, kind: "image" }, { status: 201 });
    }

    const repoMatch = /^\/api\/v1\/repository\/([^/]+)\/(.+?)(\/tag\/)?$/.exec(path);
    if (repoMatch) {
      const [, ns, name, tagPath] = repoMatch;
      const repo = repos.get(`${ns}/${name}`);
      // Permission first (§5.4): read = namespace admin, the repo's creator, or a public repo.
      const user = token?.user;
      const readable = repo?.isPublic ||
        (user !== undefined &&
          scopeAllows(token, [
            "repo:read",
            "repo:write",
            "repo:admin",
            "repo:create",
            "org:admin",
          ]) &&
          (isNamespaceAdmin(user, ns) || repo?.createdBy === user));
      if (req.method === "GET") {
        if (!readable) {
          return token
            ? shapeA(403, "insufficient_scope", "Unauthorized", host)
            : shapeA(401, "invalid_token", "Requires authentication", host);
        }
        if (!repo) return shapeA(404, "not_found", "Not Found", host);
        if (tagPath) {
          const res = await fetch(`${upstream.url}/v2/${ns}/${name}/tags/list`, {
            headers: upstream.username
              ? { authorization: `Basic ${btoa(`${upstream.username}:${upstream.password}`)}` }
              : {},
          });
          const tags = res.ok ? ((await res.json()).tags ?? []) : (await res.body?.cancel(), []);
          const only = url.searchParams.get("specificTag");
          return Response.json({
            tags: tags.filter((t: string) => !only || t === only).map((t: string) => ({
              name: t,
              reversion: false,
            })),
            page: 1,
            has_additional: false,
          });
        }
        return Response.json({
          namespace: ns,
          name,
          kind: "image",
          description: repo.description,
          is_public: repo.isPublic,
          is_organization: ns in fixtures.orgs,
          state: "NORMAL",
          can_write: true,
          can_admin: user !== undefined && isNamespaceAdmin(user, ns),
        });
      }
      if (req.method === "PUT" && !tagPath) {
        if (!user || !(isNamespaceAdmin(user, ns) || repo?.createdBy === user)) {
          return shapeA(403, "insufficient_scope", "Unauthorized", host);
        }
        if (!repo) return shapeA(404, "not_found", "Not Found", host);
        const body = await req.json().catch(() => null);
        if (typeof body?.description !== "string") {
          return shapeA(400, "invalid_request", "'description' is a required property", host);
        }
        repo.description = body.description;
        return Response.json({ success: true });
      }
    }
    return shapeA(404, "not_found", "Not Found", host);
  }

  /** A registry error body (§2.9) with its status; recorded in `refused`. */
  function registryError(req: Request, status: number, code: string, message: string) {
    refused.push(`${req.method} ${new URL(req.url).pathname} ${status}`);
    return Response.json({ errors: [{ code, message, detail: {} }] }, {
      status,
      headers: status === 401 ? { "www-authenticate": `Basic realm="${host}"` } : {},
    });
  }

  async function upstreamGet(path: string, accept?: string): Promise<Response> {
    return await fetch(`${upstream.url}${path}`, {
      headers: { ...upstreamAuth, ...(accept ? { accept } : {}) },
    });
  }

  /** Does a live tag of `repo` point at `digest`, or at an index that lists it? */
  async function tagged(repo: string, digest: string): Promise<boolean> {
    const list = await upstreamGet(`/v2/${repo}/tags/list`);
    const tags: string[] = list.ok
      ? ((await list.json()).tags ?? [])
      : (await list.body?.cancel(), []);
    for (const tag of tags) {
      const res = await upstreamGet(`/v2/${repo}/manifests/${tag}`, ACCEPT);
      if (!res.ok) {
        await res.body?.cancel();
        continue;
      }
      const bytes = new Uint8Array(await res.arrayBuffer());
      const tagDigest = await sha256(bytes);
      if (tagDigest === digest) return true;
      if (describe(bytes).children.includes(digest)) return true;
    }
    return false;
  }

  /** The `/v2/` side: temporary tags, quota and robots in front of the registry. */
  async function registry(req: Request, url: URL): Promise<Response> {
    const match = /^\/v2\/(.+?)\/(manifests|blobs|tags)\/(.*)$/.exec(url.pathname);
    const repo = match?.[1];
    const ns = repo?.split("/")[0];
    const write = !["GET", "HEAD"].includes(req.method);
    let forwarded: Request = req;
    const auth = req.headers.get("authorization") ?? "";
    if (auth.startsWith("Basic ")) {
      const [user, ...rest] = atob(auth.slice(6)).split(":");
      const robotToken = fixtures.robots?.[user];
      if (user.includes("+")) {
        if (robotToken === undefined || robotToken !== rest.join(":")) {
          return registryError(req, 401, "UNAUTHORIZED", "Invalid Username or Password");
        }
        const known = repo === undefined ? undefined : repos.get(repo);
        if (!write && known && !known.isPublic && !known.permissions?.[user]) {
          // A robot without a role on a private repository reads nothing there, not even a HEAD.
          await req.body?.cancel();
          return registryError(
            req,
            401,
            "UNAUTHORIZED",
            "access to the requested resource is not authorized",
          );
        }
        if (write && repo !== undefined) {
          const role = known?.permissions?.[user];
          const creator = (fixtures.orgs[ns ?? ""]?.creators ?? []).includes(user);
          if (role !== "write" && role !== "admin" && !(creator && !repos.has(repo))) {
            return registryError(
              req,
              401,
              "UNAUTHORIZED",
              "access to the requested resource is not authorized",
            );
          }
        }
        const headers = new Headers(req.headers);
        if (upstreamAuth.authorization) headers.set("authorization", upstreamAuth.authorization);
        else headers.delete("authorization");
        forwarded = new Request(req.url, {
          method: req.method,
          headers,
          body: req.body,
          // @ts-ignore: Deno needs duplex for a streamed body
          duplex: "half",
        });
      }
    }
    if (
      match && match[2] === "blobs" && match[3].startsWith("uploads") && ns &&
      req.method !== "DELETE"
    ) {
      const quota = fixtures.quotas?.[ns];
      if (quota) {
        const reject = quota.limitBytes * (quota.rejectPercent ?? 100) / 100;
        if ((used.get(ns) ?? 0) >= reject) {
          await req.body?.cancel();
          return registryError(req, 403, "DENIED", "Quota has been exceeded on namespace");
        }
      }
    }
    if (match && match[2] === "manifests" && repo) {
      const ref = match[3];
      const key = `${repo}@${ref}`;
      if (req.method === "PUT") {
        const bytes = new Uint8Array(await req.arrayBuffer());
        const digest = await sha256(bytes);
        manifests.set(`${repo}@${digest}`, describe(bytes));
        const res = await forward(
          new Request(req.url, { method: "PUT", headers: forwarded.headers, body: bytes }),
          upstream.url,
          host,
        );
        if (res.status === 201 && ref.startsWith("sha256:")) {
          tempTags.set(key, Date.now() + lifetimeMs);
        }
        return res;
      }
      const expires = tempTags.get(key);
      if (
        (req.method === "GET" || req.method === "HEAD") && expires !== undefined &&
        expires <= Date.now() && !manifests.get(key)?.subject && !(await tagged(repo, ref))
      ) {
        return registryError(req, 404, "MANIFEST_UNKNOWN", "manifest unknown");
      }
    }
    const res = await forward(forwarded, upstream.url, host);
    if (
      match && match[2] === "blobs" && req.method === "PUT" && res.status === 201 && ns &&
      used.has(ns)
    ) {
      const digest = url.searchParams.get("digest") ?? "";
      const head = await fetch(`${upstream.url}/v2/${repo}/blobs/${digest}`, {
        method: "HEAD",
        headers: upstreamAuth,
      });
      await head.body?.cancel();
      used.set(ns, (used.get(ns) ?? 0) + Number(head.headers.get("content-length") ?? 0));
    }
    return res;
  }

  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const url = new URL(req.url);
    userAgents.push(req.headers.get("user-agent") ?? "");
    if (!url.pathname.startsWith("/api/")) {
      const res = await registry(req, url);
      if (url.pathname === "/v2/") {
        // Quay says on its version check whether it takes an index with missing children (§5.14).
        res.headers.set(
          "x-sparse-manifest-support",
          String(fixtures.sparseManifestSupport ?? false),
        );
      }
      return res;
    }
    const res = await api(req, url);
    requests.push(`${req.method} ${url.pathname} ${res.status}`);
    return res;
  });
  const addr = server.addr as Deno.NetAddr;
  host = `127.0.0.1:${addr.port}`;
  const stop = async () => {
    await server.shutdown();
  };
  return {
    host,
    url: `http://${host}`,
    requests,
    refused,
    userAgents,
    usage: (namespace: string) => used.get(namespace) ?? 0,
    repositories: () => [...repos.values()],
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

/**
 * The `registries` entry of a Quay target served by `quay` in front of `reg`: the API token from
 * `${QUAY_TOKEN}`, the registry login from `reg`'s user and `${QUAY_PASSWORD}`.
 */
export function quayTarget(
  quay: { host: string },
  reg: { username?: string },
  namespace = "acme",
): Record<string, unknown> {
  return {
    url: quay.host,
    namespace,
    kind: "quay",
    apiToken: "${QUAY_TOKEN}",
    username: reg.username,
    password: "${QUAY_PASSWORD}",
  };
}
