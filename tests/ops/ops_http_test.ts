import assert from "node:assert/strict";
import { deliver, DeliveryError } from "../../lib/ops/ops_http.ts";
import { makeCertificates } from "../support/registry.ts";
import { startWebhookReceiver } from "../support/webhook_receiver.ts";
import { within } from "../support/bounded.ts";
import { startRecordingHost } from "../support/recording_host.ts";
import { silentAnswer } from "../support/trickle.ts";

const OPTIONS = { timeoutMs: 5_000, maxRetries: 3, retryDelayMs: 50, maxRetryWaitMs: 5_000 };

function delivery(url: string) {
  return {
    method: "POST" as const,
    url: new URL(url),
    label: "webhook test",
    code: "MIRROR_NOTIFY_FAILED" as const,
    headers: {},
    body: "{}",
  };
}

Deno.test("deliver(): 503 and 429 are retried, a 2xx ends it", async () => {
  await using hook = startWebhookReceiver((n) => [503, 429, 204][n - 1] ?? 500);
  const retries: string[] = [];
  const result = await deliver(delivery(`${hook.url}/x`), {
    ...OPTIONS,
    onRetry: (message) => retries.push(message),
  });
  assert.deepEqual(result, { status: 204, attempts: 3 });
  assert.deepEqual(retries, [
    "webhook test: POST answered 503",
    "webhook test: POST answered 429",
  ]);
});

Deno.test("deliver(): a 4xx other than 429 is final; the error names the label, not the url", async () => {
  await using hook = startWebhookReceiver(() => 404);
  await assert.rejects(
    deliver(delivery(`${hook.url}/T0/B0/secret-path`), OPTIONS),
    (e: unknown) =>
      e instanceof DeliveryError && e.status === 404 &&
      e.message === "webhook test: POST answered 404" &&
      hook.requests.length === 1,
  );
});

Deno.test("deliver(): nobody listening is retried, then fails with the attempts counted", async () => {
  const hook = startWebhookReceiver();
  await hook.stop();
  await assert.rejects(
    deliver(delivery(`${hook.url}/T0/B0/secret-path`), { ...OPTIONS, maxRetries: 1 }),
    (e: unknown) =>
      e instanceof DeliveryError && e.status === 0 &&
      /^webhook test: .*\(after 2 attempts\)$/.test(e.message) &&
      !e.message.includes("secret-path"),
  );
});

Deno.test("deliver(): a CA file that cannot be read is a clear failure, not a crash", async () => {
  await assert.rejects(
    deliver(delivery("https://127.0.0.1:1/x"), { ...OPTIONS, caFile: "/nonexistent/ca.pem" }),
    (e: unknown) =>
      e instanceof DeliveryError && /Cannot read caFile \/nonexistent\/ca\.pem/.test(e.message),
  );
});

Deno.test("deliver(): TLS is verified; the receiver's CA file makes it pass", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bb-ops-tls-" });
  try {
    const pem = await makeCertificates(dir);
    await using hook = startWebhookReceiver(() => 200, {
      cert: await Deno.readTextFile(pem.cert),
      key: await Deno.readTextFile(pem.key),
    });
    assert.match(hook.url, /^https:/);
    await assert.rejects(
      deliver(delivery(`${hook.url}/x`), { ...OPTIONS, maxRetries: 2 }),
      (e: unknown) =>
        e instanceof DeliveryError && /TLS verification failed/.test(e.message) &&
        !/after \d+ attempts/.test(e.message),
    );
    assert.equal(hook.requests.length, 0);
    const ok = await deliver(delivery(`${hook.url}/x`), { ...OPTIONS, caFile: pem.ca });
    assert.deepEqual(ok, { status: 200, attempts: 1 });
    assert.equal(hook.requests.length, 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deliver(): a receiver that accepts and never answers costs the delivery's deadline, not retries x timeout", async () => {
  const silence = new AbortController();
  await using host = startRecordingHost({
    hostname: "127.0.0.1",
    handle: () => silentAnswer(silence.signal),
  });
  try {
    await within(10_000, "a silent webhook", async () => {
      const started = performance.now();
      await assert.rejects(
        deliver(delivery(`${host.url}/hook`), {
          ...OPTIONS,
          // Silence alone would take 4 x 30 s plus the waits.
          timeoutMs: 30_000,
          deadlineMs: 1_000,
          deadlineSetting: "notify.deadline",
        }),
        (e: unknown) =>
          e instanceof DeliveryError &&
          e.message.startsWith("webhook test: no answer within 1 s (notify.deadline)"),
      );
      const took = performance.now() - started;
      assert.ok(took >= 900 && took < 3_000, `took ${took} ms`);
      assert.equal(host.requests.length, 1, "no second attempt after the deadline");
    });
  } finally {
    silence.abort();
  }
});
