/**
 * QuayClient against a hostile Quay API: every answer is read under a cap (1 MiB for answers,
 * 4 KiB for error bodies), so an endless or huge body fails REPO_API_ERROR at once instead of
 * growing memory, and malformed JSON is REPO_API_ERROR, never an internal error.
 */
import assert from "node:assert/strict";
import { within } from "../support/bounded.ts";
import { Secrets } from "../../lib/log/redact.ts";
import { QuayClient, QuayError } from "../../lib/registry/quay_client.ts";
import { jsonBytes } from "../support/hostile_registry.ts";
import { startHostileQuay } from "../support/hostile_quay.ts";

const MiB = 1024 * 1024;

Deno.test("QuayClient reads every answer under a cap and fails malformed ones clearly", async (t) => {
  await using quay = startHostileQuay();
  const client = new QuayClient({
    baseUrl: quay.url,
    token: "quay-token-123",
    maxRetries: 2,
    retryDelayMs: 5,
    timeoutMs: 10_000,
    secrets: new Secrets(),
  });
  const user = "/api/v1/user/";
  const repo = "/api/v1/repository/ns/app";
  const rows: [string, string, Parameters<typeof quay.answers.set>[1], RegExp][] = [
    ["an endless user answer", user, { stream: { kind: "endless" } }, /1048576-byte cap/],
    ["a 200 MB repository answer", repo, { stream: { kind: "sized", bytes: 200 * MiB } }, /cap/],
    [
      "a user answer that is not JSON",
      user,
      { bytes: new TextEncoder().encode("<html>") },
      /not JSON/,
    ],
    ["a repository answer that is null", repo, { bytes: jsonBytes(null) }, /not a JSON object/],
    [
      "an endless error body (500)",
      repo,
      { status: 500, stream: { kind: "endless" } },
      /500|read repository/,
    ],
  ];
  try {
    for (const [name, path, entry, pattern] of rows) {
      await t.step(name, () =>
        within(15_000, name, async () => {
          quay.answers.clear();
          quay.answers.set(path, entry);
          const streamed = quay.streamedBytes();
          const started = performance.now();
          const call = path === user
            ? () => client.checkToken(AbortSignal.timeout(5_000))
            : () => client.getRepository("ns", "app", AbortSignal.timeout(5_000));
          await assert.rejects(call, (e: unknown) => {
            assert.ok(e instanceof QuayError, String(e));
            assert.equal(e.code, "REPO_API_ERROR", e.message);
            assert.match(e.message, pattern);
            assert.doesNotMatch(e.message, /quay-token-123/);
            return true;
          });
          assert.ok(performance.now() - started < 5_000, "ends quickly");
          const sent = quay.streamedBytes() - streamed;
          assert.ok(sent < 3 * 32 * MiB, `reading stopped near the cap (${sent} bytes streamed)`);
        }));
    }
  } finally {
    client.close();
  }
});

Deno.test("QuayClient goes through the shared transport: a silent Quay fails REPO_API_ERROR after apiTimeout, retried", async () => {
  // Accepts connections and never answers.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of listener) conns.push(conn);
  })();
  const secrets = new Secrets();
  const client = new QuayClient({
    baseUrl: `http://127.0.0.1:${listener.addr.port}`,
    token: "quay-token-silent",
    timeoutMs: 200,
    maxRetries: 1,
    retryDelayMs: 1,
    secrets,
  });
  try {
    await assert.rejects(() => client.checkToken(), (e: unknown) => {
      assert.ok(e instanceof QuayError, String(e));
      assert.equal(e.code, "REPO_API_ERROR", e.message);
      assert.equal(e.status, 0);
      assert.match(
        e.message,
        /^Quay API GET .*\/api\/v1\/user\/: no answer within 0\.2 s \(apiTimeout\)/,
      );
      return true;
    });
    assert.equal(conns.length, 2, "one retry (maxRetries 1)");
    assert.equal(
      secrets.mask("quay-token-silent"),
      "***",
      "the token is registered in the given Secrets",
    );
  } finally {
    client.close();
    listener.close();
    await accepting.catch(() => {});
    for (const conn of conns) conn.close();
  }
});
