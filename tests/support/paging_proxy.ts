/**
 * A reverse proxy in front of a real registry that pages its tag lists the way registries that
 * paginate do (distribution v3, Docker Hub, the OCI distribution spec): Debian's docker-registry
 * (distribution 2.8.2) ignores `n` and `last` and sends every tag in one answer, so the proxy reads
 * that whole list from it, sorts it lexically (the spec's order) and answers
 * `GET /v2/<name>/tags/list?n=N&last=T` with at most `min(N, pageSize)` tags after `T` and, when
 * more remain, `Link: </v2/<name>/tags/list?last=<last sent>&n=N>; rel="next"`. Without `n` a page
 * is `pageSize` tags. Every other request streams through untouched. It records the tag-list
 * requests (path and query) so a test can count pages and see what the client asked for.
 *
 * @module
 */
import { forward } from "./proxy.ts";
import type { TestRegistry } from "./registry.ts";

/** A running paging proxy. */
export interface PagingProxy extends AsyncDisposable {
  /** `127.0.0.1:PORT`. */
  host: string;
  /** `http://127.0.0.1:PORT`. */
  url: string;
  /** Tag-list requests so far, as `/v2/<name>/tags/list?query`, in arrival order. */
  tagListRequests: string[];
  stop(): Promise<void>;
}

/** Options for {@link startPagingProxy}. */
export interface PagingProxyOptions {
  /** The most tags a page holds, whatever `n` asks for. @default 100 */
  pageSize?: number;
}

const TAG_LIST = /^\/v2\/(.+)\/tags\/list$/;

/** Start a paging proxy in front of `upstream` (plain http on 127.0.0.1). */
export function startPagingProxy(
  upstream: TestRegistry,
  options: PagingProxyOptions = {},
): PagingProxy {
  const pageSize = options.pageSize ?? 100;
  const tagListRequests: string[] = [];
  let host = "";
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const url = new URL(req.url);
    const match = req.method === "GET" ? TAG_LIST.exec(url.pathname) : null;
    if (!match) return await forward(req, upstream.url, host);
    tagListRequests.push(url.pathname + url.search);
    const whole = await fetch(new URL(url.pathname, upstream.url), { headers: req.headers });
    if (whole.status !== 200) return whole;
    const body = await whole.json() as { name: string; tags: string[] | null };
    const all = [...(body.tags ?? [])].sort();
    const asked = url.searchParams.get("n");
    const n = Math.min(asked === null ? pageSize : Number(asked), pageSize);
    if (!Number.isInteger(n) || n < 1) {
      const errors = [{ code: "PAGINATION_NUMBER_INVALID", message: "invalid n", detail: { n } }];
      return Response.json({ errors }, { status: 400 });
    }
    const last = url.searchParams.get("last");
    const start = last === null ? 0 : all.findIndex((tag) => tag > last);
    const rest = start < 0 ? [] : all.slice(start);
    const tags = rest.slice(0, n);
    const headers = new Headers({ "content-type": "application/json" });
    if (rest.length > n) {
      const next = new URLSearchParams({ last: tags[tags.length - 1] });
      if (asked !== null) next.set("n", asked);
      headers.set("link", `<${url.pathname}?${next}>; rel="next"`);
    }
    return new Response(JSON.stringify({ name: body.name, tags }), { headers });
  });
  host = `127.0.0.1:${(server.addr as Deno.NetAddr).port}`;
  const stop = async () => {
    await server.shutdown();
  };
  return {
    host,
    url: `http://${host}`,
    tagListRequests,
    stop,
    [Symbol.asyncDispose]: stop,
  };
}
