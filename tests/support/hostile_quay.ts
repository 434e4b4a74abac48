/**
 * A hostile Quay REST API on loopback: each path (`/api/v1/user/`,
 * `/api/v1/repository/ns/name`) is answered from a table with a {@link HostileEntry} (endless or
 * huge bodies, malformed JSON, any status). It counts the bytes it streamed.
 *
 * @module
 */
import { type HostileEntry, hostileResponse } from "./hostile_registry.ts";

/** A running hostile Quay API. */
export interface HostileQuay extends AsyncDisposable {
  /** `http://127.0.0.1:PORT`. */
  url: string;
  /** Answers by path (query ignored); anything else is 404. */
  answers: Map<string, HostileEntry>;
  /** Bytes of generated bodies handed to the network so far. */
  streamedBytes(): number;
  stop(): Promise<void>;
}

/** Start a hostile Quay API on 127.0.0.1. */
export function startHostileQuay(): HostileQuay {
  const answers = new Map<string, HostileEntry>();
  let streamed = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    await req.body?.cancel();
    const entry = answers.get(new URL(req.url).pathname);
    if (!entry) return new Response('{"error_message":"not found"}', { status: 404 });
    return hostileResponse(entry, { method: req.method, onBytes: (n) => streamed += n });
  });
  const stop = async () => {
    await server.shutdown();
  };
  return {
    url: `http://127.0.0.1:${(server.addr as Deno.NetAddr).port}`,
    answers,
    streamedBytes: () => streamed,
    stop,
    [Symbol.asyncDispose]: stop,
  };
}
