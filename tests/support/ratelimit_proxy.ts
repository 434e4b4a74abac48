/**
 * A Docker Hub stand-in for the pull budget: a reverse proxy on loopback in front of a real
 * registry that adds `ratelimit-limit: <limit>;w=21600` and `ratelimit-remaining: <left>;w=21600`
 * to every manifest answer and counts a pull for every manifest GET (HEAD is free), as Docker Hub
 * does. `reset()` is the window refilling. With `stormAfter`, manifest GETs after that many answer
 * 429 with `Retry-After: 3600` (the window spent, a 429 storm). With `blipAt`, one manifest GET
 * (the n-th, counting every GET) answers 429 with a short `Retry-After` (a retry gets through).
 *
 * @module
 */
import { forward } from "./proxy.ts";
import type { TestRegistry } from "./registry.ts";

/** Options for {@link startRateLimitProxy}. */
export interface RateLimitProxyOptions {
  /** `ratelimit-limit`. */
  limit: number;
  /** `ratelimit-remaining` at the start (and after `reset()`). */
  remaining: number;
  /** Manifest GETs served before every further one answers 429 Retry-After: 3600. */
  stormAfter?: number;
  /** The n-th manifest GET (1-based) answers 429 with `Retry-After: <retryAfter>`, once. */
  blipAt?: { get: number; retryAfter: number };
}

/** A running proxy. */
export interface RateLimitProxy extends AsyncDisposable {
  host: string;
  /** Manifest GETs served (pulls) since the start or the last reset. */
  readonly pulls: number;
  /** Manifest GETs answered 429. */
  readonly refused: number;
  /** Pulls left (what the next answer says). */
  readonly remaining: number;
  /** The window refilled: remaining back to its start, the counters to 0, no storm. */
  reset(): void;
}

/** Start the proxy in front of `upstream`. */
export function startRateLimitProxy(
  upstream: TestRegistry,
  options: RateLimitProxyOptions,
): RateLimitProxy {
  let remaining = options.remaining;
  let pulls = 0;
  let refused = 0;
  let gets = 0;
  let stormAfter = options.stormAfter;
  let host = "";
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const path = new URL(req.url).pathname;
    const isManifest = /^\/v2\/.+\/manifests\/[^/]+$/.test(path);
    if (!isManifest) return await forward(req, upstream.url, host);
    if (req.method === "GET") {
      gets++;
      if (gets === options.blipAt?.get) {
        refused++;
        await req.body?.cancel();
        return new Response(
          JSON.stringify({ errors: [{ code: "TOOMANYREQUESTS", message: "slow down" }] }),
          { status: 429, headers: { "retry-after": `${options.blipAt.retryAfter}` } },
        );
      }
      if ((stormAfter !== undefined && pulls >= stormAfter) || remaining === 0) {
        refused++;
        await req.body?.cancel();
        return new Response(
          JSON.stringify({ errors: [{ code: "TOOMANYREQUESTS", message: "pull limit" }] }),
          { status: 429, headers: { "retry-after": "3600", ...limits(0) } },
        );
      }
      pulls++;
      remaining--;
    }
    const res = await forward(req, upstream.url, host);
    const headers = new Headers(res.headers);
    for (const [name, value] of Object.entries(limits(remaining))) headers.set(name, value);
    return new Response(res.body, { status: res.status, headers });
  });
  function limits(left: number): Record<string, string> {
    return {
      "ratelimit-limit": `${options.limit};w=21600`,
      "ratelimit-remaining": `${left};w=21600`,
    };
  }
  host = `127.0.0.1:${(server.addr as Deno.NetAddr).port}`;
  const stop = () => server.shutdown();
  return {
    host,
    get pulls() {
      return pulls;
    },
    get refused() {
      return refused;
    },
    get remaining() {
      return remaining;
    },
    reset() {
      remaining = options.remaining;
      pulls = 0;
      refused = 0;
      stormAfter = undefined;
    },
    [Symbol.asyncDispose]: stop,
  };
}
