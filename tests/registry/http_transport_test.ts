/**
 * The one transport names bananna-bot in every request: registry calls, the token realm, the
 * version check, the Quay API and a watcher delivery (webhook, Pushgateway) all carry
 * `User-Agent: bananna-bot/<version>`, seen by a recording host on loopback. The version check
 * records `X-Sparse-Manifest-Support` per host.
 */
import assert from "node:assert/strict";
import { Secrets } from "../../lib/log/redact.ts";
import { deliver } from "../../lib/ops/ops_http.ts";
import { QuayClient } from "../../lib/quay_client.ts";
import { USER_AGENT } from "../../lib/registry/http_transport.ts";
import { RegistryClient } from "../../lib/registry/registry_client.ts";
import { VERSION } from "../../lib/version.ts";
import { startRecordingHost } from "../support/recording_host.ts";

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
