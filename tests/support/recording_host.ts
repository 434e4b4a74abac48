/**
 * A small HTTP host on loopback that records every request it gets (method, path and query,
 * Authorization, body) and answers with a handler the test gives: the other end of a redirect, a
 * token realm on a foreign host, or a fake registry with hostile answers. The default answer is a
 * 401 with a challenge, as a host that wants credentials would send.
 *
 * @module
 */

/** One request as the host saw it. */
export interface RecordedRequest {
  method: string;
  /** Path and query. */
  path: string;
  authorization: string | null;
  /** The `User-Agent` header. */
  userAgent: string | null;
  body: string;
}

/** A running recording host. */
export interface RecordingHost extends AsyncDisposable {
  /** `HOSTNAME:PORT`. */
  host: string;
  /** `http://HOSTNAME:PORT`. */
  url: string;
  /** Every request so far. */
  requests: RecordedRequest[];
  stop(): Promise<void>;
}

/** Options for {@link startRecordingHost}. */
export interface RecordingHostOptions {
  /** @default "127.0.0.2" (another host than the registries on 127.0.0.1) */
  hostname?: string;
  /**
   * The answer to a request (after it was recorded). `self` is this host, for URLs pointing back.
   * @default a 401 with `WWW-Authenticate: Basic realm="recording"`
   */
  handle?: (req: Request, self: { url: string }) => Response | Promise<Response>;
}

/** Start a recording host. */
export function startRecordingHost(options: RecordingHostOptions = {}): RecordingHost {
  const requests: RecordedRequest[] = [];
  const self = { url: "" };
  const handle = options.handle ??
    (() =>
      new Response('{"errors":[{"code":"UNAUTHORIZED","message":"who are you"}]}', {
        status: 401,
        headers: { "www-authenticate": 'Basic realm="recording"' },
      }));
  const server = Deno.serve(
    { hostname: options.hostname ?? "127.0.0.2", port: 0, onListen() {} },
    async (req) => {
      const url = new URL(req.url);
      const body = req.body ? await req.text() : "";
      requests.push({
        method: req.method,
        path: url.pathname + url.search,
        authorization: req.headers.get("authorization"),
        userAgent: req.headers.get("user-agent"),
        body,
      });
      return await handle(new Request(req.url, { method: req.method, headers: req.headers }), self);
    },
  );
  const addr = server.addr as Deno.NetAddr;
  const host = `${addr.hostname}:${addr.port}`;
  self.url = `http://${host}`;
  const stop = async () => await server.shutdown();
  return { host, url: self.url, requests, stop, [Symbol.asyncDispose]: stop };
}
