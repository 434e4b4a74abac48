/**
 * A local HTTP receiver on loopback (Deno.serve) for the run's watchers: the Pushgateway PUT and
 * the webhook POST. It records every request (method, path, headers, body) and answers request
 * `n` with `script(n)` (a status; 2xx by default).
 *
 * @module
 */

/** One request the receiver read. */
export interface ReceivedRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: string;
}

/** A running receiver. */
export interface WebhookReceiver extends AsyncDisposable {
  /** `http://127.0.0.1:PORT` (`https://` with TLS). */
  url: string;
  requests: ReceivedRequest[];
  stop(): Promise<void>;
}

/**
 * Start a receiver; `script(n)` is the status of request `n` (1-based). @default 200
 * With `tls` (PEM cert and key, e.g. from registry.ts's makeCertificates), it serves https.
 */
export function startWebhookReceiver(
  script: (n: number) => number = () => 200,
  tls?: { cert: string; key: string },
): WebhookReceiver {
  const requests: ReceivedRequest[] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {}, ...tls },
    async (req) => {
      const url = new URL(req.url);
      requests.push({
        method: req.method,
        path: url.pathname,
        headers: Object.fromEntries(req.headers),
        body: await req.text(),
      });
      const status = script(requests.length);
      return new Response(status === 204 ? null : `scripted ${status}\n`, {
        status,
        headers: status === 503 ? { "retry-after": "0" } : {},
      });
    },
  );
  const { port } = server.addr as Deno.NetAddr;
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await server.shutdown();
  };
  const scheme = tls ? "https" : "http";
  return { url: `${scheme}://127.0.0.1:${port}`, requests, stop, [Symbol.asyncDispose]: stop };
}
