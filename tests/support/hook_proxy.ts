/**
 * A recording reverse proxy in front of a real registry, on loopback, that runs a hook before it
 * forwards each request: a test makes something happen at the registry at an exact point of a
 * copy (another image pushed to the tag on the first blob upload, a blob deleted right before a
 * manifest PUT), then checks which requests went through (`requests`). Location headers from
 * upstream are rewritten to the proxy; everything streams through untouched.
 *
 * @module
 */
import { forward } from "./proxy.ts";
import type { TestRegistry } from "./registry.ts";

/** A request as the hook sees it and as `requests` records it. */
export interface HookRequest {
  method: string;
  /** URL path, e.g. `/v2/mirror/app/manifests/1`. */
  path: string;
  /** The query with its `?`, or "". */
  search: string;
  headers: Headers;
}

/** A running proxy. */
export interface HookProxy extends AsyncDisposable {
  host: string;
  url: string;
  /** Every request forwarded so far, as `METHOD /path?query`, in arrival order. */
  requests: string[];
  stop(): Promise<void>;
}

/**
 * Start a proxy in front of `upstream` that awaits `before(request)` before forwarding each
 * request (the hook runs for every request; it keeps its own state to act once).
 */
export function startHookProxy(
  upstream: TestRegistry,
  before: (request: HookRequest) => void | Promise<void>,
): HookProxy {
  const requests: string[] = [];
  let host = "";
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const url = new URL(req.url);
    requests.push(`${req.method} ${url.pathname}${url.search}`);
    await before({
      method: req.method,
      path: url.pathname,
      search: url.search,
      headers: req.headers,
    });
    return await forward(req, upstream.url, host);
  });
  host = `127.0.0.1:${(server.addr as Deno.NetAddr).port}`;
  const stop = () => server.shutdown();
  return { host, url: `http://${host}`, requests, stop, [Symbol.asyncDispose]: stop };
}

/** Send one request straight to `reg` with its first user's Basic credentials (not via a proxy). */
export async function registryRequest(
  reg: TestRegistry,
  method: string,
  path: string,
): Promise<number> {
  const client = reg.caFile
    ? Deno.createHttpClient({ caCerts: [await Deno.readTextFile(reg.caFile)] })
    : undefined;
  try {
    const res = await fetch(`${reg.url}${path}`, {
      method,
      client,
      headers: reg.username
        ? { authorization: `Basic ${btoa(`${reg.username}:${reg.password}`)}` }
        : {},
    });
    await res.body?.cancel();
    return res.status;
  } finally {
    client?.close();
  }
}
