/**
 * A raw HTTP/1.1 server on loopback that answers each request by a script: a status (with a small
 * JSON error body and optional headers) or a connection reset (the socket closed before any
 * answer). It counts the requests it read, so a test can tell how often a client tried. Every
 * answer closes the connection, so each try is a new connection.
 *
 * @module
 */

/** What the server does with request number `n` (1-based). */
export type StatusStep = number | "reset" | { status: number; headers?: Record<string, string> };

/** A running status server. */
export interface StatusServer extends AsyncDisposable {
  /** `127.0.0.1:PORT`. */
  host: string;
  /** `http://127.0.0.1:PORT`. */
  url: string;
  /** Requests read so far (`METHOD PATH`). */
  requests: string[];
  stop(): Promise<void>;
}

/** Start a server that answers request `n` with `script(n)`. */
export function startStatusServer(script: (n: number) => StatusStep): StatusServer {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const requests: string[] = [];
  const open = new Set<Deno.Conn>();
  const handlers = new Set<Promise<void>>();
  const serve = async (conn: Deno.Conn) => {
    try {
      // Read the request head (these tests send no request bodies).
      const buffer = new Uint8Array(64 * 1024);
      let head = "";
      while (!head.includes("\r\n\r\n") && head.length < buffer.length) {
        const n = await conn.read(buffer);
        if (n === null) return;
        head += new TextDecoder().decode(buffer.subarray(0, n));
      }
      const line = head.split("\r\n")[0].split(" ");
      requests.push(`${line[0]} ${line[1]}`);
      const step = script(requests.length);
      if (step === "reset") return;
      const { status, headers = {} } = typeof step === "number" ? { status: step } : step;
      const body = line[0] === "HEAD"
        ? ""
        : JSON.stringify({ errors: [{ code: "TEST", message: `scripted ${status}` }] });
      const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join("");
      await conn.write(
        new TextEncoder().encode(
          `HTTP/1.1 ${status} Scripted\r\ncontent-type: application/json\r\n` +
            `content-length: ${new TextEncoder().encode(body).length}\r\n${extra}` +
            `connection: close\r\n\r\n${body}`,
        ),
      );
    } catch {
      // the client went away
    } finally {
      open.delete(conn);
      try {
        conn.close();
      } catch {
        // already closed
      }
    }
  };
  const accepting = (async () => {
    for (;;) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch {
        return;
      }
      open.add(conn);
      const handler = serve(conn);
      handlers.add(handler);
      handler.finally(() => handlers.delete(handler));
    }
  })();
  const host = `127.0.0.1:${(listener.addr as Deno.NetAddr).port}`;
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    listener.close();
    await accepting;
    for (const conn of open) {
      try {
        conn.close();
      } catch {
        // closed
      }
    }
    await Promise.allSettled([...handlers]);
  };
  return { host, url: `http://${host}`, requests, stop, [Symbol.asyncDispose]: stop };
}
