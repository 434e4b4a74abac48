import assert from "node:assert/strict";
import { MirrorError } from "../lib/errors.ts";
import { Secrets } from "../lib/log/redact.ts";
import { QuayClient, type QuayClientOptions } from "../lib/registry/quay_client.ts";
import { RegistryClient, type RegistryClientOptions } from "../lib/registry/registry_client.ts";
import { parseRetryAfter, retry, retryPolicy } from "../lib/retry.ts";
import { startStatusServer } from "./support/status_server.ts";

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

Deno.test("parseRetryAfter() reads seconds and HTTP dates", () => {
  assert.equal(parseRetryAfter("2"), 2000);
  assert.equal(parseRetryAfter(null), undefined);
  assert.equal(parseRetryAfter("soon"), undefined);
  const now = Date.parse("Wed, 21 Oct 2015 07:28:00 GMT");
  assert.equal(parseRetryAfter("Wed, 21 Oct 2015 07:28:30 GMT", now), 30_000);
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
      wanted: /(172799|172800) s \(2\.0 days\)/,
    },
    {
      name: "503, Retry-After: 2^40 s",
      status: 503,
      retryAfter: String(2 ** 40),
      wanted: /1099511627776 s/,
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
