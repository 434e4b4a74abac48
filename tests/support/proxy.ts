/**
 * Forward a request to an upstream registry, streaming both ways, and rewrite the upstream's
 * Location headers to the proxy's own host (for the Quay double and the fault proxy).
 *
 * @module
 */

/** Forward `req` to `upstreamUrl` (e.g. `http://127.0.0.1:5000`); Locations point back at `proxyHost`. */
export async function forward(
  req: Request,
  upstreamUrl: string,
  proxyHost: string,
): Promise<Response> {
  const url = new URL(req.url);
  const headers = new Headers(req.headers);
  headers.delete("host");
  const res = await fetch(new URL(url.pathname + url.search, upstreamUrl), {
    method: req.method,
    headers,
    body: req.body,
    redirect: "manual",
  });
  const out = new Headers(res.headers);
  const location = out.get("location");
  if (location) out.set("location", location.replace(upstreamUrl, `http://${proxyHost}`));
  return new Response(res.body, { status: res.status, headers: out });
}
