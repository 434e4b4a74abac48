import assert from "node:assert/strict";
import { parseRetryAfter, retry } from "../lib/retry.ts";

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
