/**
 * The one transport names bananna-bot in every request: registry calls, the token realm, the
 * version check, the Quay API and a watcher delivery (webhook, Pushgateway) all carry
 * `User-Agent: bananna-bot/<version>`, seen by a recording host on loopback. The version check
 * records `X-Sparse-Manifest-Support` per host. Then the transport's own rules, on loopback servers
 * (127.0.0.1 and 127.0.0.2 are two origins): Authorization never follows a redirect to another
 * origin, 303 becomes a GET, same-origin requests refuse to leave, 10 hops at most, and silence
 * (no headers, or a stalled body) fails after the timeout while a slow, steady body completes.
 */
import assert from "node:assert/strict";
import { Secrets } from "../../lib/log/redact.ts";
import { deliver } from "../../lib/ops/ops_http.ts";
import { QuayClient } from "../../lib/registry/quay_client.ts";
import { HttpTransport, redirectedAway, USER_AGENT } from "../../lib/registry/http_transport.ts";
import { RegistryError } from "../../lib/registry/registry_error.ts";
import { RegistryClient } from "../../lib/registry/registry_client.ts";
import { VERSION } from "../../lib/version.ts";
import { startRecordingHost } from "../support/recording_host.ts";
import { makeCertificates, run } from "../support/registry.ts";

Deno.test("every request says User-Agent: bananna-bot/<version> (registry, realm, Quay API, webhook)", async () => {
  assert.equal(USER_AGENT, `bananna-bot/${VERSION}`);
  await using host = startRecordingHost({
    handle(req, self) {
      const url = new URL(req.url);
      if (url.pathname === "/token") return Response.json({ token: "tok" });
      if (url.pathname === "/api/v1/user/") return Response.json({ username: "mirror" });
      if (url.pathname === "/hook") return new Response(null, { status: 204 });
      if (url.pathname === "/v2/") {
        return new Response("true", { headers: { "x-sparse-manifest-support": "true" } });
      }
      if (req.headers.get("authorization") === "Bearer tok") {
        return new Response(null, { status: 404 });
      }
      return new Response(null, {
        status: 401,
        headers: { "www-authenticate": `Bearer realm="${self.url}/token",service="rec"` },
      });
    },
  });
  const secrets = new Secrets();
  const registry = new RegistryClient({ host: host.host, scheme: "http", secrets, maxRetries: 0 });
  try {
    assert.equal(registry.sparseManifestSupport, undefined);
    assert.equal(await registry.manifestHead("team/app", "1.0"), null);
    await registry.probeVersionCheck();
    assert.equal(registry.sparseManifestSupport, true);
  } finally {
    registry.close();
  }
  const quay = new QuayClient({ baseUrl: host.url, token: "api-token", secrets, maxRetries: 0 });
  try {
    assert.deepEqual(await quay.checkToken(), { username: "mirror" });
  } finally {
    quay.close();
  }
  await deliver(
    {
      method: "POST",
      url: new URL(`${host.url}/hook`),
      label: "webhook",
      code: "MIRROR_NOTIFY_FAILED",
      headers: { "content-type": "application/json" },
      body: "{}",
    },
    { timeoutMs: 5000, maxRetries: 0, retryDelayMs: 10, maxRetryWaitMs: 100 },
  );
  assert.deepEqual(host.requests.map((r) => `${r.method} ${r.path.split("?")[0]}`), [
    "HEAD /v2/team/app/manifests/1.0",
    "GET /token",
    "HEAD /v2/team/app/manifests/1.0",
    "GET /v2/",
    "GET /api/v1/user/",
    "POST /hook",
  ]);
  assert.deepEqual(
    host.requests.filter((r) => r.userAgent !== `bananna-bot/${VERSION}`).map((r) => r.userAgent),
    [],
  );
});

Deno.test("a request's headers go out once each, named in any case; User-Agent and Authorization are the transport's", async () => {
  const seen: [string, string][][] = [];
  await using host = startRecordingHost({
    handle(req) {
      seen.push(
        [...req.headers].filter(([name]) =>
          !["host", "accept-encoding", "accept-language"].includes(name)
        ),
      );
      return new Response(null, { status: 204 });
    },
  });
  const transport = new HttpTransport();
  try {
    const res = await transport.send({
      method: "HEAD",
      url: new URL(`${host.url}/v2/a/manifests/1`),
      headers: { Accept: "application/json", "User-Agent": "caller/1", "X-Two": "a" },
      authorization: `Bearer ${"t".repeat(2048)}`,
    });
    await res.body?.cancel();
  } finally {
    transport.close();
  }
  assert.deepEqual(seen, [[
    ["accept", "application/json"],
    ["authorization", `Bearer ${"t".repeat(2048)}`],
    ["user-agent", USER_AGENT],
    ["x-two", "a"],
  ]]);
});

Deno.test("probeVersionCheck(): X-Sparse-Manifest-Support false, absent, or no answer", async (t) => {
  for (const [header, expected] of [["false", false], [null, null], ["maybe", null]] as const) {
    await t.step(`header ${header} -> ${expected}`, async () => {
      await using host = startRecordingHost({
        handle: () =>
          new Response(null, {
            status: 401,
            headers: header === null ? {} : { "x-sparse-manifest-support": header },
          }),
      });
      const client = new RegistryClient({
        host: host.host,
        scheme: "http",
        secrets: new Secrets(),
      });
      try {
        await client.probeVersionCheck();
        assert.equal(client.sparseManifestSupport, expected);
        assert.deepEqual(host.requests.map((r) => [r.path, r.authorization]), [["/v2/", null]]);
      } finally {
        client.close();
      }
    });
  }
  await t.step("a host that does not answer -> null, no error", async () => {
    const client = new RegistryClient({
      host: "127.0.0.2:9",
      scheme: "http",
      secrets: new Secrets(),
      timeoutMs: 2000,
    });
    try {
      await client.probeVersionCheck();
      assert.equal(client.sparseManifestSupport, null);
    } finally {
      client.close();
    }
  });
});

/** A loopback server on `hostname` recording `METHOD path auth body` per request. */
function recorder(
  hostname: string,
  handle: (req: Request, url: URL) => Response | Promise<Response>,
) {
  const seen: string[] = [];
  const server = Deno.serve({ hostname, port: 0, onListen() {} }, async (req) => {
    const url = new URL(req.url);
    const body = req.body ? await req.text() : "";
    seen.push(`${req.method} ${url.pathname} ${req.headers.get("authorization") ?? "-"} ${body}`);
    return await handle(req, url);
  });
  const origin = `http://${hostname}:${(server.addr as Deno.NetAddr).port}`;
  return { origin, seen, [Symbol.asyncDispose]: () => server.shutdown() };
}

/** Rejects when `promise` takes longer than `ms` (a bound of the test itself). */

/** A body that sends `first`, then nothing for 3 s (closed then, unless the client gave up). */
function stalledAfter(first: string): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    async start(controller) {
      controller.enqueue(new TextEncoder().encode(first));
      await new Promise((r) => setTimeout(r, 3000));
      try {
        controller.close();
      } catch {
        // the client gave up first
      }
    },
  });
}
/** A GET of `url`, whose answer starts and then stalls, fails on the 0.4 s apiTimeout. */
async function stallFails(http: HttpTransport, url: string): Promise<void> {
  const stalled = await within(5000, http.send({ method: "GET", url: new URL(url) }));
  await assert.rejects(
    within(5000, stalled.text()),
    (error: RegistryError) => error.message.includes("no progress for 0.4 s (apiTimeout)"),
  );
}

function within<T>(ms: number, promise: Promise<T>): Promise<T> {
  let id: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    id = setTimeout(() => reject(new Error(`not settled within ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(id));
}

Deno.test("HttpTransport.send(): Authorization only to the first origin, never again once a redirect left it", async () => {
  let other = "";
  await using b = recorder(
    "127.0.0.2",
    (_req, url) =>
      url.pathname === "/next"
        ? new Response(null, { status: 302, headers: { location: `${first}/back` } })
        : new Response("?", { status: 404 }),
  );
  other = b.origin;
  let first = "";
  await using a = recorder("127.0.0.1", (_req, url) => {
    if (url.pathname === "/start") {
      return new Response(null, { status: 307, headers: { location: `${other}/next` } });
    }
    if (url.pathname === "/see-other") {
      return new Response(null, { status: 303, headers: { location: "/after" } });
    }
    return new Response("done");
  });
  first = a.origin;
  const http = new HttpTransport({ timeoutMs: 5000 });
  try {
    // 307 and 302 keep the method and send the body again (a fresh one per hop).
    let bodies = 0;
    const res = await http.send({
      method: "PUT",
      url: new URL(`${first}/start`),
      authorization: "Bearer secret-token",
      body: () => `body-${++bodies}`,
    });
    assert.equal(await res.text(), "done");
    assert.equal(redirectedAway(res), true, "the answer came after a hop to another origin");
    assert.deepEqual([...a.seen, ...b.seen], [
      "PUT /start Bearer secret-token body-1",
      "PUT /back - body-3",
      "PUT /next - body-2",
    ]);
    // 303 turns the request into a GET without a body; same origin, so it keeps the header.
    a.seen.length = 0;
    const after = await http.send({
      method: "POST",
      url: new URL(`${first}/see-other`),
      authorization: "Basic abc",
      body: () => "form",
    });
    assert.equal(await after.text(), "done");
    assert.equal(redirectedAway(after), false);
    assert.deepEqual(a.seen, ["POST /see-other Basic abc form", "GET /after Basic abc "]);
  } finally {
    http.close();
  }
});

Deno.test("HttpTransport.send(): a same-origin request refuses a cross-origin redirect; 11 hops are too many", async () => {
  await using b = recorder("127.0.0.2", () => new Response("token"));
  await using a = recorder(
    "127.0.0.1",
    (_req, url) =>
      url.pathname === "/token"
        ? new Response(null, { status: 307, headers: { location: `${b.origin}/token?refresh=rt` } })
        : new Response(null, { status: 302, headers: { location: "/loop" } }),
  );
  const http = new HttpTransport({ timeoutMs: 5000 });
  try {
    await assert.rejects(
      http.send({
        method: "POST",
        url: new URL(`${a.origin}/token`),
        body: () => "refresh_token=rt",
        redirects: "same-origin",
      }),
      (error: RegistryError) =>
        error instanceof RegistryError && error.code === "LOGIN_FAILED" &&
        error.message.includes("redirected to another host"),
    );
    assert.deepEqual(b.seen, [], "nothing reached the other host");
    a.seen.length = 0;
    await assert.rejects(
      http.send({ method: "GET", url: new URL(`${a.origin}/loop`) }),
      (error: RegistryError) => error.message.endsWith("too many redirects"),
    );
    assert.equal(a.seen.length, 11, "the first request and 10 hops");
  } finally {
    http.close();
  }
});

Deno.test("HttpTransport: silence fails after timeoutMs (headers or body); a slow steady body completes", async () => {
  const encoder = new TextEncoder();
  /** A body of `chunks` chunks, `gapMs` apart; after them it stalls up to 3 s when `stall`. */
  const paced = (chunks: number, gapMs: number, stall: boolean) =>
    new ReadableStream<Uint8Array>({
      async start(controller) {
        for (let i = 0; i < chunks; i++) {
          controller.enqueue(encoder.encode(`${i}`));
          await new Promise((r) => setTimeout(r, gapMs));
        }
        if (stall) await new Promise((r) => setTimeout(r, 3000));
        try {
          controller.close();
        } catch {
          // the client gave up first
        }
      },
    });
  await using host = recorder("127.0.0.1", async (_req, url) => {
    if (url.pathname === "/late") await new Promise((r) => setTimeout(r, 2000));
    if (url.pathname === "/steady") return new Response(paced(8, 100, false));
    if (url.pathname === "/stall") return new Response(paced(1, 0, true));
    return new Response("late");
  });
  const http = new HttpTransport({ timeoutMs: 400 });
  try {
    // 8 chunks 100 ms apart: 800 ms in all, never 400 ms of silence.
    const steady = await within(
      5000,
      http.send({ method: "GET", url: new URL(`${host.origin}/steady`) }),
    );
    assert.equal(await within(5000, steady.text()), "01234567");
    const started = performance.now();
    await assert.rejects(
      within(5000, http.send({ method: "GET", url: new URL(`${host.origin}/late`) })),
      (error: RegistryError) =>
        error.status === 0 && error.message.includes("no answer within 0.4 s (apiTimeout)"),
    );
    await stallFails(http, `${host.origin}/stall`);
    assert.ok(performance.now() - started < 2500, "both failed on the timeout, not the server");
  } finally {
    http.close();
  }
});

Deno.test("HttpTransport: a small answer of known length comes in one right-sized chunk, a large or blob one streams; a small one that stalls still fails after timeoutMs", async () => {
  const token = JSON.stringify({ token: "t".repeat(1500) });
  await using host = recorder("127.0.0.1", (_req, url) => {
    if (url.pathname === "/token") return Response.json(JSON.parse(token));
    if (url.pathname === "/big") return new Response("b".repeat(100_000));
    // 10 bytes announced, 1 sent, then silence (up to 3 s).
    return new Response(stalledAfter("x"), { headers: { "content-length": "10" } });
  });
  const http = new HttpTransport({ timeoutMs: 400 });
  /** The chunks of an answer, each as [its length, the length of the buffer it holds]. */
  const chunks = async (res: Response) => {
    const out: [number, number][] = [];
    for await (const chunk of res.body as ReadableStream<Uint8Array>) {
      out.push([chunk.byteLength, chunk.buffer.byteLength]);
    }
    return out;
  };
  try {
    const small = await within(
      5000,
      http.send({ method: "GET", url: new URL(`${host.origin}/token`) }),
    );
    assert.equal(small.headers.get("content-length"), String(token.length));
    // Read chunk by chunk, the runtime hands out a 64 KiB buffer per chunk, which V8 counts as
    // external memory until a full collection (40 KB per token answer).
    assert.deepEqual(await within(5000, chunks(small)), [[token.length, token.length]]);
    const big = await within(
      5000,
      http.send({ method: "GET", url: new URL(`${host.origin}/big`) }),
    );
    const bigChunks = await within(5000, chunks(big));
    assert.equal(bigChunks.reduce((sum, [n]) => sum + n, 0), 100_000);
    const blob = await within(
      5000,
      http.send({ method: "GET", url: new URL(`${host.origin}/token`), blob: true }),
    );
    assert.equal((await within(5000, chunks(blob))).reduce((sum, [n]) => sum + n, 0), token.length);
    const started = performance.now();
    await stallFails(http, `${host.origin}/stall`);
    assert.ok(performance.now() - started < 2500, "failed on the timeout, not the server");
  } finally {
    http.close();
  }
});

Deno.test("HttpTransport: the caller's signal aborts the wait for headers and a body being read, with its reason", async () => {
  await using host = recorder("127.0.0.1", async (_req, url) => {
    if (url.pathname === "/late") await new Promise((r) => setTimeout(r, 3000));
    // One chunk, then nothing for 3 s.
    return new Response(stalledAfter("0"));
  });
  const http = new HttpTransport({ timeoutMs: 20_000 });
  const started = performance.now();
  try {
    const early = new AbortController();
    const reason = new Error("stopped by the caller");
    setTimeout(() => early.abort(reason), 200);
    await assert.rejects(
      within(
        5000,
        http.send({ method: "GET", url: new URL(`${host.origin}/late`), signal: early.signal }),
      ),
      (error: unknown) => error === reason,
    );
    const mid = new AbortController();
    const res = await within(
      5000,
      http.send({ method: "GET", url: new URL(`${host.origin}/body`), signal: mid.signal }),
    );
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    assert.equal(new TextDecoder().decode((await within(5000, reader.read())).value), "0");
    const later = new Error("stopped mid-body");
    setTimeout(() => mid.abort(later), 100);
    await assert.rejects(within(5000, reader.read()), (error: unknown) => error === later);
    // Already aborted: no request waits at all.
    const gone = AbortSignal.abort(reason);
    await assert.rejects(
      within(5000, http.send({ method: "GET", url: new URL(`${host.origin}/late`), signal: gone })),
      (error: unknown) => error === reason,
    );
    assert.ok(
      performance.now() - started < 2500,
      "each ended on the caller's abort, not the server",
    );
  } finally {
    http.close();
  }
});

Deno.test("HttpTransport: requests in flight together keep their own bounds: a later one with a nearer deadline, a silent one beside a steady one, one signal for several", async () => {
  await using host = recorder("127.0.0.1", async (_req, url) => {
    if (url.pathname === "/late") await new Promise((r) => setTimeout(r, 2000));
    // Ten chunks 100 ms apart: never 400 ms of silence.
    if (url.pathname === "/steady") {
      return new Response(ReadableStream.from((async function* () {
        for (let i = 0; i < 10; i++) {
          if (i) await new Promise((r) => setTimeout(r, 100));
          yield new TextEncoder().encode(`${i}`);
        }
      })()));
    }
    return new Response(url.pathname === "/late" ? "late" : "ok");
  });
  // A blob stream has no deadline (only the 20 s silence); a metadata request has 500 ms.
  const http = new HttpTransport({ timeoutMs: 20_000, deadlineMs: 500, minBlobRate: 0 });
  const silent = new HttpTransport({ timeoutMs: 400, deadlineMs: 0 });
  try {
    let started = performance.now();
    const blob = http.send({ method: "GET", url: new URL(`${host.origin}/late`), blob: true });
    await new Promise((r) => setTimeout(r, 50));
    await assert.rejects(
      within(5000, http.send({ method: "GET", url: new URL(`${host.origin}/late`) })),
      (error: RegistryError) => error.message.includes("no complete answer within 0.5 s"),
    );
    assert.ok(performance.now() - started < 1500, "the later request's nearer deadline held");
    assert.equal(await within(5000, (await within(5000, blob)).text()), "late");

    started = performance.now();
    // Read as it comes (an unread body makes no progress).
    const steady = silent.send({ method: "GET", url: new URL(`${host.origin}/steady`) })
      .then((res) => res.text());
    await new Promise((r) => setTimeout(r, 150));
    await assert.rejects(
      within(5000, silent.send({ method: "GET", url: new URL(`${host.origin}/late`) })),
      (error: RegistryError) => error.message.includes("no answer within 0.4 s (apiTimeout)"),
    );
    assert.ok(performance.now() - started < 1500, "the silent request failed on its own timeout");
    assert.equal(await within(5000, steady), "0123456789");

    const shared = new AbortController();
    const reason = new Error("stopped by the caller");
    const done = await within(
      5000,
      http.send({ method: "GET", url: new URL(`${host.origin}/ok`), signal: shared.signal }),
    );
    const waiting = [1, 2, 3].map((i) =>
      http.send({ method: "GET", url: new URL(`${host.origin}/late?${i}`), signal: shared.signal })
    );
    setTimeout(() => shared.abort(reason), 100);
    for (const one of waiting) {
      await assert.rejects(within(5000, one), (error: unknown) => error === reason);
    }
    assert.equal(await within(5000, done.text()), "ok", "an answer already in is not aborted");
  } finally {
    http.close();
    silent.close();
  }
});

/** A TLS server on loopback with `cert`/`key` (PEM text) answering 200; stopped by the caller. */
function tlsServer(cert: string, key: string) {
  return Deno.serve(
    { port: 0, hostname: "127.0.0.1", cert, key, onListen() {} },
    () => new Response("{}"),
  );
}

Deno.test("a TLS failure says what is wrong with the registry's certificate and what to do", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bb-tls-advice-" });
  try {
    const { ca, cert, key } = await makeCertificates(dir);
    const other = await makeCertificates(`${dir}/other`);
    // A self-signed CA certificate served as the server's own (Quay's default self-signed setup).
    await run("openssl", [
      ...["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"],
      ...["-subj", "/CN=127.0.0.1", "-keyout", `${dir}/self.key`, "-out", `${dir}/self.crt`],
      ...["-addext", "subjectAltName=IP:127.0.0.1", "-addext", "basicConstraints=critical,CA:TRUE"],
    ]);
    const text = (path: string) => Deno.readTextFileSync(path);
    const failure = async (server: Deno.HttpServer<Deno.NetAddr>, caFile?: string) => {
      const transport = new HttpTransport({ caFile, timeoutMs: 5000 });
      const url = new URL(`https://127.0.0.1:${server.addr.port}/v2/`);
      try {
        const error = await transport.send({ method: "GET", url }).then(
          () => assert.fail("TLS should have failed"),
          (e) => e,
        );
        assert.ok(error instanceof RegistryError, String(error));
        assert.equal(error.retryable, false, "a TLS failure does not pass by itself");
        return { message: error.message, host: url.host };
      } finally {
        transport.close();
        await server.shutdown();
      }
    };
    const unknown = await failure(tlsServer(text(cert), text(key)));
    assert.match(
      unknown.message,
      new RegExp(
        `TLS verification failed: ${unknown.host}'s certificate is signed by a CA this host does not trust \\(.*UnknownIssuer.*\\); set caFile to a PEM file of the CA that signed it \\(registries\\.<name>\\.caFile, or sources\\["${unknown.host}"\\]\\.caFile`,
      ),
    );
    const wrongCa = await failure(tlsServer(text(cert), text(key)), other.ca);
    assert.match(wrongCa.message, new RegExp(`the CA in caFile ${other.ca} did not verify it`));
    const self = await failure(tlsServer(text(`${dir}/self.crt`), text(`${dir}/self.key`)));
    assert.match(
      self.message,
      new RegExp(
        `${self.host} presents a self-signed certificate \\(a CA certificate used as its own\\) \\(.*CaUsedAsEndEntity.*\\); this client refuses`,
      ),
    );
    // Trusting it does not help: the advice says so (a server certificate signed by the CA).
    const trusted = await failure(
      tlsServer(text(`${dir}/self.crt`), text(`${dir}/self.key`)),
      `${dir}/self.crt`,
    );
    assert.match(trusted.message, /CaUsedAsEndEntity.*give .* a server certificate signed by/);
    // And the right CA works.
    const ok = tlsServer(text(cert), text(key));
    const transport = new HttpTransport({ caFile: ca, timeoutMs: 5000 });
    try {
      const res = await transport.send({
        method: "GET",
        url: new URL(`https://127.0.0.1:${ok.addr.port}/v2/`),
      });
      assert.equal(res.status, 200);
      await res.body?.cancel();
    } finally {
      transport.close();
      await ok.shutdown();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
