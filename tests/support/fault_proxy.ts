/**
 * A fault-injecting reverse proxy in front of a real registry, on loopback: by rule (method, path
 * pattern, how many times) it answers 503, answers 429 with Retry-After, cuts a body off after N
 * bytes (a reset mid-blob), trickles a body in small pieces with pauses (a slow or stalled link),
 * refuses request bodies over a size with 413 as nginx's client_max_body_size does, or redirects blob GETs to a second server on 127.0.0.2 that serves the
 * blob and records whether an Authorization header came along. Location headers from upstream are
 * rewritten to the proxy. Everything else streams through untouched.
 *
 * @module
 */
import { forward } from "./proxy.ts";
import type { TestRegistry } from "./registry.ts";

/** One fault. */
export interface FaultRule {
  method?: string;
  path: RegExp;
  /** How many matching requests get the fault. */
  times: number;
  fault:
    | { kind: "status"; status: number; retryAfter?: string; headers?: Record<string, string> }
    | { kind: "cut"; afterBytes: number }
    | { kind: "delay"; ms: number }
    | { kind: "trickle"; chunkBytes: number; pauseMs: number }
    /** Matches only requests whose body is larger (a body without Content-Length counts). */
    | { kind: "limit"; maxBodyBytes: number }
    /** 307 to the proxy's storage host, or to `to` (a base URL) with the same path and query. */
    | { kind: "redirect"; to?: string };
}

/** A running proxy. */
export interface FaultProxy extends AsyncDisposable {
  host: string;
  url: string;
  /** Faults injected so far, by kind. */
  injected: Record<string, number>;
  /** Authorization headers seen by the redirect target (null = none sent). */
  redirectAuth: (string | null)[];
  stop(): Promise<void>;
}

/** Start a proxy in front of `upstream`. */
export function startFaultProxy(upstream: TestRegistry, rules: FaultRule[]): FaultProxy {
  const left = rules.map((r) => r.times);
  const injected: Record<string, number> = {};
  const redirectAuth: (string | null)[] = [];
  const count = (kind: string) => (injected[kind] = (injected[kind] ?? 0) + 1);

  // The redirect target: another loopback host (127.0.0.2) that fetches the blob from upstream
  // with the registry's own credentials, as object storage would serve a signed URL.
  const storage = Deno.serve({ hostname: "127.0.0.2", port: 0, onListen() {} }, async (req) => {
    redirectAuth.push(req.headers.get("authorization"));
    const url = new URL(req.url);
    const target = url.searchParams.get("blob") ?? "";
    const res = await fetch(`${upstream.url}${target}`, {
      headers: upstream.username
        ? { authorization: `Basic ${btoa(`${upstream.username}:${upstream.password}`)}` }
        : {},
    });
    return new Response(res.body, {
      status: res.status,
      headers: { "content-type": "application/octet-stream" },
    });
  });
  const storagePort = (storage.addr as Deno.NetAddr).port;
  let host = "";

  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const url = new URL(req.url);
    // A body without Content-Length (chunked) counts as too large; no body as empty.
    const length = Number(
      req.headers.get("content-length") ?? (req.headers.has("transfer-encoding") ? Infinity : 0),
    );
    const index = rules.findIndex((r, i) =>
      left[i] > 0 && (!r.method || r.method === req.method) && r.path.test(url.pathname) &&
      (r.fault.kind !== "limit" || length > r.fault.maxBodyBytes)
    );
    const rule = index >= 0 ? rules[index] : undefined;
    if (rule) left[index]--;
    if (rule?.fault.kind === "status") {
      count(`status-${rule.fault.status}`);
      await req.body?.cancel();
      const headers: Record<string, string> = { "content-type": "application/json" };
      if (rule.fault.retryAfter) headers["retry-after"] = rule.fault.retryAfter;
      Object.assign(headers, rule.fault.headers);
      return new Response(
        JSON.stringify({ errors: [{ code: "UNAVAILABLE", message: "injected fault" }] }),
        {
          status: rule.fault.status,
          headers,
        },
      );
    }
    if (rule?.fault.kind === "limit") {
      count(`limit-${req.method}`);
      await req.body?.cancel();
      return new Response(
        "<html><head><title>413 Request Entity Too Large</title></head></html>",
        { status: 413, headers: { "content-type": "text/html" } },
      );
    }
    if (rule?.fault.kind === "delay") {
      count("delay");
      await new Promise((r) => setTimeout(r, (rule.fault as { ms: number }).ms));
    }
    if (rule?.fault.kind === "redirect") {
      count("redirect");
      await req.body?.cancel();
      const to = rule.fault.to;
      return new Response(null, {
        status: 307,
        headers: {
          location: to
            ? `${to}${url.pathname}${url.search}`
            : `http://127.0.0.2:${storagePort}/storage?blob=${encodeURIComponent(url.pathname)}`,
        },
      });
    }
    const res = await forward(req, upstream.url, host);
    if (rule?.fault.kind === "cut" && res.body) {
      count("cut");
      const limit = rule.fault.afterBytes;
      let sent = 0;
      const reader = res.body.getReader();
      const body = new ReadableStream<Uint8Array>({
        async pull(controller) {
          const { done, value } = await reader.read();
          if (done) return controller.close();
          if (sent + value.length >= limit) {
            controller.enqueue(value.subarray(0, Math.max(0, limit - sent)));
            await reader.cancel();
            controller.error(new Error("injected reset"));
            return;
          }
          sent += value.length;
          controller.enqueue(value);
        },
        cancel: () => reader.cancel(),
      });
      return new Response(body, { status: res.status, headers: res.headers });
    }
    if (rule?.fault.kind === "trickle" && res.body) {
      count("trickle");
      const { chunkBytes, pauseMs } = rule.fault;
      const reader = res.body.getReader();
      let pending = new Uint8Array(0);
      const body = new ReadableStream<Uint8Array>({
        async pull(controller) {
          if (pending.length === 0) {
            const { done, value } = await reader.read();
            if (done) return controller.close();
            pending = value;
          }
          await new Promise((r) => setTimeout(r, pauseMs));
          controller.enqueue(pending.slice(0, chunkBytes));
          pending = pending.subarray(chunkBytes);
        },
        cancel: () => reader.cancel(),
      });
      return new Response(body, { status: res.status, headers: res.headers });
    }
    return res;
  });
  host = `127.0.0.1:${(server.addr as Deno.NetAddr).port}`;
  const stop = async () => {
    await server.shutdown();
    await storage.shutdown();
  };
  return { host, url: `http://${host}`, injected, redirectAuth, stop, [Symbol.asyncDispose]: stop };
}
