/**
 * A double of Quay's REST API that follows shared/registry-protocols.md §5 (routes with their
 * trailing-slash rules, the four error shapes, permission checks before existence checks, 403 CSRF
 * for writes without a valid token, 400 "Repository already exists"), in front of a REAL registry:
 * everything that is not `/api/v1/` is reverse-proxied (streamed) to the upstream docker-registry,
 * so one url serves both the API and `/v2/`, as Quay does.
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
}

/** Fixtures. */
export interface QuayFixtures {
  tokens: Record<string, QuayToken>;
  orgs: Record<string, QuayOrg>;
  repos?: QuayRepo[];
  /** `X-Sparse-Manifest-Support` on `GET /v2/` (FEATURE_SPARSE_INDEX). @default false */
  sparseManifestSupport?: boolean;
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
  stop(): Promise<void>;
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
  let host = "";

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
      return Response.json({
        name: org[1],
        is_admin: token ? isNamespaceAdmin(token.user, org[1]) : false,
      });
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

  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const url = new URL(req.url);
    if (!url.pathname.startsWith("/api/")) {
      const res = await forward(req, upstream.url, host);
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
    repositories: () => [...repos.values()],
    stop,
    [Symbol.asyncDispose]: stop,
  };
}
