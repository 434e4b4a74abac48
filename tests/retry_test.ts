import assert from "node:assert/strict";
import { MirrorError } from "../lib/errors.ts";
import { Secrets } from "../lib/log/redact.ts";
import { QuayClient, type QuayClientOptions } from "../lib/registry/quay_client.ts";
import { RegistryClient, type RegistryClientOptions } from "../lib/registry/registry_client.ts";
import { retry, retryPolicy } from "../lib/retry.ts";
import { retryVerdict } from "../lib/http_error.ts";
import { deliver } from "../lib/ops/ops_http.ts";
import { within } from "./support/bounded.ts";
import { makeCertificates } from "./support/registry.ts";
import { startStatusServer, type StatusServer, type StatusStep } from "./support/status_server.ts";

Deno.test("retry() tries until success, within maxAttempts", async () => {
  let calls = 0;
  const value = await retry(
    () => (++calls < 3 ? Promise.reject(new Error("flaky")) : Promise.resolve("ok")),
    {
      maxAttempts: 3,
      minDelayMs: 1,
    },
  );
  assert.equal(value, "ok");
  assert.equal(calls, 3);
});

Deno.test("retry() stops at once on an error that is not retriable", async () => {
  let calls = 0;
  await assert.rejects(
    () =>
      retry(() => {
        calls++;
        return Promise.reject(new Error("401"));
      }, { maxAttempts: 5, minDelayMs: 1, isRetriable: () => false }),
    /401/,
  );
  assert.equal(calls, 1);
});

Deno.test("retry() waits what the error asks for (Retry-After) and grows the delay", async () => {
  const delays: number[] = [];
  let calls = 0;
  await retry(() => (++calls < 4 ? Promise.reject(new Error("x")) : Promise.resolve()), {
    maxAttempts: 4,
    minDelayMs: 5,
    multiplier: 2,
    jitter: 0,
    delayFor: (_e) => (calls === 1 ? 30 : undefined),
    onRetry: (_e, _a, delay) => delays.push(delay),
  });
  assert.deepEqual(delays, [30, 10, 20]);
});

Deno.test("retry() stops waiting when aborted", async () => {
  const controller = new AbortController();
  const started = Date.now();
  setTimeout(() => controller.abort(new Error("stop")), 20);
  await assert.rejects(
    () =>
      retry(() => Promise.reject(new Error("x")), {
        maxAttempts: 5,
        minDelayMs: 10_000,
        signal: controller.signal,
      }),
    /stop/,
  );
  assert.ok(Date.now() - started < 2000);
});

Deno.test("retry() rejects bad options with RangeError", async () => {
  await assert.rejects(() => retry(() => Promise.resolve(), { maxAttempts: 0 }), RangeError);
  await assert.rejects(() => retry(() => Promise.resolve(), { jitter: 2 }), RangeError);
});

Deno.test("retry() fails at once when the wanted wait passes maxWaitMs, and cuts backoff to it", async () => {
  let calls = 0;
  const started = Date.now();
  await assert.rejects(
    () =>
      retry(() => {
        calls++;
        return Promise.reject(new Error("429"));
      }, {
        maxAttempts: 5,
        minDelayMs: 1,
        maxWaitMs: 1000,
        delayFor: () => 86_400_000,
        onWaitTooLong: (error, wanted) => new Error(`${(error as Error).message} wants ${wanted}`),
      }),
    /^Error: 429 wants 86400000$/,
  );
  assert.equal(calls, 1);
  assert.ok(Date.now() - started < 1000);
  // Without onWaitTooLong the error itself is thrown.
  await assert.rejects(
    () =>
      retry(() => Promise.reject(new Error("as is")), {
        maxWaitMs: 10,
        delayFor: () => 2 ** 40,
      }),
    /as is/,
  );
  const delays: number[] = [];
  calls = 0;
  await retry(() => (++calls < 4 ? Promise.reject(new Error("x")) : Promise.resolve()), {
    maxAttempts: 4,
    minDelayMs: 15,
    maxDelayMs: 1000,
    maxWaitMs: 20,
    onRetry: (_e, _a, delay) => delays.push(delay),
  });
  assert.equal(delays.length, 3);
  assert.ok(delays.every((d) => d <= 20), String(delays));
  await assert.rejects(() => retry(() => Promise.resolve(), { maxWaitMs: 2 ** 31 }), RangeError);
});

// The retry policy of the clients through a real HTTP server (tests/support/status_server.ts).

const RETRIED_ONCE = [400, 401, 403, 404, 409];
const RETRIED = [429, 500, 502, 503, 504, "reset"] as const;

function registryClient(host: string, extra: Partial<RegistryClientOptions> = {}) {
  return new RegistryClient({
    host,
    scheme: "http",
    credential: null,
    maxRetries: 2,
    retryDelayMs: 1,
    secrets: new Secrets(),
    ...extra,
  });
}

function quayClient(url: string, extra: Partial<QuayClientOptions> = {}) {
  return new QuayClient({
    baseUrl: url,
    token: "quay-token",
    maxRetries: 2,
    retryDelayMs: 1,
    secrets: new Secrets(),
    ...extra,
  });
}

Deno.test("RegistryClient retries 429, 5xx and resets, and tries 400, 401, 403, 404, 409 once", async (t) => {
  for (const status of [...RETRIED_ONCE, ...RETRIED]) {
    const once = typeof status === "number" && RETRIED_ONCE.includes(status);
    await t.step(`${status}: ${once ? "one try" : "three tries (maxRetries 2)"}`, async () => {
      await using server = startStatusServer(() => status);
      const c = registryClient(server.host);
      try {
        await assert.rejects(
          () => c.blobGet("team/app", `sha256:${"a".repeat(64)}`),
          (e: unknown) => e instanceof MirrorError,
        );
      } finally {
        c.close();
      }
      assert.equal(server.requests.length, once ? 1 : 3, server.requests.join(", "));
    });
  }
});

Deno.test("QuayClient retries 429, 5xx and resets, and tries 400, 401, 403, 404, 409 once", async (t) => {
  for (const status of [...RETRIED_ONCE, ...RETRIED]) {
    const once = typeof status === "number" && RETRIED_ONCE.includes(status);
    await t.step(`${status}: ${once ? "one try" : "three tries (maxRetries 2)"}`, async () => {
      await using server = startStatusServer(() => status);
      const quay = quayClient(server.url);
      try {
        if (status === 404) {
          assert.equal(await quay.getRepository("team", "app"), null);
        } else {
          await assert.rejects(
            () => quay.getRepository("team", "app"),
            (e: unknown) => e instanceof MirrorError,
          );
        }
      } finally {
        quay.close();
      }
      assert.equal(server.requests.length, once ? 1 : 3, server.requests.join(", "));
    });
  }
});

Deno.test("RegistryClient fails at once with IMAGE_RATE_LIMITED when Retry-After passes maxRetryWait", async (t) => {
  const rows = [
    {
      name: "429, Retry-After: 86400",
      status: 429,
      retryAfter: "86400",
      wanted: /86400 s \(1\.0 days\)/,
    },
    {
      name: "429, Retry-After as an HTTP date two days ahead",
      status: 429,
      retryAfter: new Date(Date.now() + 2 * 86_400_000).toUTCString(),
      // whole seconds, read against the clock a moment after the date was made
      wanted: /(17279\d|172800) s \(2\.0 days\)/,
    },
    {
      name: "503, Retry-After: 2^40 s (read as a year)",
      status: 503,
      retryAfter: String(2 ** 40),
      wanted: /31536000 s \(a year or more\)/,
    },
  ];
  for (const row of rows) {
    await t.step(row.name, async () => {
      await using server = startStatusServer(() => ({
        status: row.status,
        headers: { "retry-after": row.retryAfter },
      }));
      const c = registryClient(server.host);
      const started = Date.now();
      // Bounded: a client that waited as asked would be stopped after 5 s.
      const signal = AbortSignal.timeout(5000);
      try {
        await assert.rejects(
          () => c.blobGet("team/app", `sha256:${"b".repeat(64)}`, signal),
          (e: unknown) => {
            assert.ok(e instanceof MirrorError, String(e));
            assert.equal(e.code, "IMAGE_RATE_LIMITED", e.message);
            assert.match(e.message, row.wanted);
            assert.match(e.message, /longer than operation\.maxRetryWait \(300 s\): not waiting/);
            return true;
          },
        );
      } finally {
        c.close();
      }
      assert.ok(Date.now() - started < 2000, "no wait");
      assert.equal(server.requests.length, 1, "no retry");
    });
  }
});

Deno.test("RegistryClient and QuayClient still honour a Retry-After under maxRetryWait", async () => {
  const script = (n: number) => (n === 1 ? { status: 429, headers: { "retry-after": "1" } } : 200);
  {
    await using server = startStatusServer(script);
    const c = registryClient(server.host, { maxRetryWaitMs: 2000 });
    const started = Date.now();
    try {
      const blob = await c.blobGet("team/app", `sha256:${"c".repeat(64)}`);
      await blob.body.cancel();
    } finally {
      c.close();
    }
    assert.ok(Date.now() - started >= 900, "waited the second the registry asked for");
    assert.equal(server.requests.length, 2);
  }
  {
    await using server = startStatusServer(script);
    const quay = quayClient(server.url, { maxRetryWaitMs: 2000 });
    const started = Date.now();
    try {
      await quay.getRepository("team", "app");
    } finally {
      quay.close();
    }
    assert.ok(Date.now() - started >= 900, "Quay: waited the second Quay asked for");
    assert.equal(server.requests.length, 2);
  }
  {
    await using server = startStatusServer(() => ({
      status: 429,
      headers: { "retry-after": "86400" },
    }));
    const quay = quayClient(server.url);
    try {
      const signal = AbortSignal.timeout(5000);
      await assert.rejects(() => quay.getRepository("team", "app", signal), (e: unknown) => {
        assert.ok(e instanceof MirrorError, String(e));
        assert.equal(e.code, "IMAGE_RATE_LIMITED", e.message);
        assert.match(e.message, /86400 s \(1\.0 days\).*maxRetryWait \(300 s\)/);
        assert.deepEqual(retryVerdict(e), { retry: false }, "a wait too long is final");
        return true;
      });
    } finally {
      quay.close();
    }
    assert.equal(server.requests.length, 1);
  }
});

Deno.test("RegistryClient with a retryDelay over a minute waits at most maxRetryWait", async () => {
  await using server = startStatusServer((n) => (n === 1 ? 503 : 200));
  const c = registryClient(server.host, { retryDelayMs: 120_000, maxRetryWaitMs: 50 });
  try {
    const blob = await c.blobGet("team/app", `sha256:${"d".repeat(64)}`);
    await blob.body.cancel();
  } finally {
    c.close();
  }
  assert.equal(server.requests.length, 2);
});

Deno.test("retryPolicy() turns a client's settings into retry() options", async (t) => {
  await t.step("no ceiling: backoff from retryDelayMs up to a minute", () => {
    const isRetriable = () => true;
    const policy = retryPolicy({ maxRetries: 2, retryDelayMs: 500, isRetriable });
    assert.equal(policy.maxAttempts, 3);
    assert.equal(policy.minDelayMs, 500);
    assert.equal(policy.maxDelayMs, 60_000);
    assert.equal(policy.maxWaitMs, 2 ** 31 - 1);
    assert.equal(policy.isRetriable, isRetriable);
  });
  await t.step("maxRetryWaitMs cuts the first delay and the longest one", () => {
    const policy = retryPolicy({
      maxRetries: 0,
      retryDelayMs: 5_000,
      maxRetryWaitMs: 2_000,
      isRetriable: () => false,
    });
    assert.equal(policy.maxAttempts, 1);
    assert.equal(policy.minDelayMs, 2_000);
    assert.equal(policy.maxDelayMs, 2_000);
    assert.equal(policy.maxWaitMs, 2_000);
  });
  await t.step("a delay longer than a minute stays the longest delay", () => {
    const policy = retryPolicy({ maxRetries: 1, retryDelayMs: 90_000, isRetriable: () => true });
    assert.equal(policy.maxDelayMs, 90_000);
  });
});

// The four HTTP call sites decide through one verdict: the same statuses retried, the same final.

/** Request a call site makes until it gives up; the server's requests it counts. */
interface CallSite {
  /** Make one call against `server` (its error swallowed). */
  call(server: StatusServer): Promise<void>;
  /** The requests of `server` that count as tries (the token site: its token requests). */
  tries(server: StatusServer): number;
  /** The script of request n, given what the tried request should answer. */
  script(server: () => StatusServer, step: StatusStep): (n: number) => StatusStep;
}

const plain = (_server: () => StatusServer, step: StatusStep) => () => step;
const SITES: Record<string, CallSite> = {
  "registry client": {
    async call(server) {
      const c = registryClient(server.host);
      try {
        await c.blobGet("team/app", `sha256:${"a".repeat(64)}`).catch(() => {});
      } finally {
        c.close();
      }
    },
    tries: (server) => server.requests.length,
    script: plain,
  },
  "token request (registry login)": {
    async call(server) {
      const c = registryClient(server.host);
      try {
        await c.blobGet("team/app", `sha256:${"a".repeat(64)}`).catch(() => {});
      } finally {
        c.close();
      }
    },
    tries: (server) => server.requests.filter((r) => r.startsWith("GET /token")).length,
    // The registry asks for a token; the token endpoint answers the step.
    script: (server, step) => (n) =>
      server().requests[n - 1].startsWith("GET /token") ? step : {
        status: 401,
        headers: {
          "www-authenticate": `Bearer realm="${server().url}/token",service="test"`,
        },
      },
  },
  "Quay API client": {
    async call(server) {
      const quay = quayClient(server.url);
      try {
        await quay.getRepository("team", "app").catch(() => {});
      } finally {
        quay.close();
      }
    },
    tries: (server) => server.requests.length,
    script: plain,
  },
  "delivery (metrics, notification)": {
    async call(server) {
      await deliver({
        method: "POST",
        url: new URL(`${server.url}/hook`),
        label: "webhook test",
        code: "MIRROR_NOTIFY_FAILED",
        headers: {},
        body: "{}",
      }, { timeoutMs: 5000, maxRetries: 2, retryDelayMs: 1, maxRetryWaitMs: 1000 }).catch(() => {});
    },
    tries: (server) => server.requests.length,
    script: plain,
  },
};

Deno.test("every HTTP call site retries network failures, 408, 429 and 5xx, and tries other answers once", async (t) => {
  const table: [StatusStep, number][] = [
    [400, 1],
    [401, 1],
    [403, 1],
    [404, 1],
    [409, 1],
    [408, 3],
    [429, 3],
    [500, 3],
    [503, 3],
    ["reset", 3],
  ];
  for (const [site, { call, tries, script }] of Object.entries(SITES)) {
    for (const [step, expected] of table) {
      await t.step(
        `${site}: ${step} -> ${expected} ${expected === 1 ? "try" : "tries"}`,
        async () => {
          const holder: { server?: StatusServer } = {};
          const server = startStatusServer(script(() => holder.server as StatusServer, step));
          holder.server = server;
          await using _ = server;
          await within(10_000, `${site} ${step}`, () => call(server));
          assert.equal(tries(server), expected, server.requests.join(", "));
        },
      );
    }
  }
});

Deno.test("the token request honours Retry-After like the registry's own answers", async () => {
  const holder: { server?: StatusServer } = {};
  const server = startStatusServer(
    SITES["token request (registry login)"].script(
      () => holder.server as StatusServer,
      { status: 429, headers: { "retry-after": "0" } },
    ),
  );
  holder.server = server;
  await using _ = server;
  const delays: number[] = [];
  const c = registryClient(server.host, {
    maxRetries: 1,
    retryDelayMs: 1500,
    onRetry: (_e, _n, delayMs) => delays.push(delayMs),
  });
  try {
    await within(
      10_000,
      "token 429",
      () => c.blobGet("team/app", `sha256:${"a".repeat(64)}`).catch(() => {}),
    );
  } finally {
    c.close();
  }
  assert.deepEqual(delays, [0], "Retry-After: 0, not the 1.5 s backoff");
});

Deno.test("a Retry-After that is no number and no HTTP date gets the backoff, not an instant retry", async () => {
  await using server = startStatusServer((n) =>
    n === 1 ? { status: 503, headers: { "retry-after": "1.5" } } : 200
  );
  const delays: number[] = [];
  const c = registryClient(server.host, {
    retryDelayMs: 300,
    onRetry: (_e, _n, delayMs) => delays.push(delayMs),
  });
  try {
    const blob = await within(
      10_000,
      "503 then 200",
      () => c.blobGet("team/app", `sha256:${"c".repeat(64)}`),
    );
    await blob.body.cancel();
  } finally {
    c.close();
  }
  assert.equal(delays.length, 1);
  assert.ok(delays[0] >= 240, `backoff from retryDelay 300 ms (jitter 20%), got ${delays[0]} ms`);
});

Deno.test("QuayClient tries a TLS failure once: it will not pass by itself", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bb-quay-tls-" });
  const { cert, key } = await makeCertificates(dir);
  const listener = Deno.listenTls({
    hostname: "127.0.0.1",
    port: 0,
    cert: Deno.readTextFileSync(cert),
    key: Deno.readTextFileSync(key),
  });
  let connections = 0;
  const accepting = (async () => {
    for (;;) {
      let conn: Deno.TlsConn;
      try {
        conn = await listener.accept();
      } catch {
        return;
      }
      connections++;
      await conn.handshake().catch(() => {});
      conn.close();
    }
  })();
  // No caFile: the server's CA is unknown to this client.
  const quay = quayClient(`https://127.0.0.1:${listener.addr.port}`);
  try {
    await within(
      10_000,
      "Quay over TLS",
      () =>
        assert.rejects(() => quay.getRepository("team", "app"), (e: unknown) => {
          assert.ok(e instanceof MirrorError, String(e));
          assert.equal(e.code, "REPO_API_ERROR");
          assert.match(e.message, /TLS verification failed/);
          return true;
        }),
    );
  } finally {
    quay.close();
    listener.close();
    await accepting;
    await Deno.remove(dir, { recursive: true });
  }
  assert.equal(connections, 1, "one try (maxRetries 2)");
});
