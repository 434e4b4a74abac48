/**
 * RegistryClient against real registries (Debian's docker-registry): auth modes, TLS, token
 * sharing, absence as null, redirects without Authorization, retries through a fault proxy.
 */
import assert from "node:assert/strict";
import { MirrorError } from "../../lib/errors.ts";
import { Secrets } from "../../lib/log/redact.ts";
import { parseChallenges } from "../../lib/registry/registry_auth.ts";
import { RegistryClient } from "../../lib/registry/registry_client.ts";
import { startFaultProxy } from "../support/fault_proxy.ts";
import { pushTestImage } from "../support/images.ts";
import { startRateLimitProxy } from "../support/ratelimit_proxy.ts";
import { RegistryError } from "../../lib/registry/registry_error.ts";
import { registryBinaryAvailable, startRegistry, type TestRegistry } from "../support/registry.ts";

const skip = registryBinaryAvailable() ? "" : " (ignored: docker-registry is not installed)";

function client(
  reg: TestRegistry,
  extra: Partial<ConstructorParameters<typeof RegistryClient>[0]> = {},
) {
  return new RegistryClient({
    host: reg.host,
    scheme: reg.scheme,
    caFile: reg.caFile,
    credential: reg.username
      ? { kind: "basic", username: reg.username, password: reg.password ?? "", source: "config" }
      : null,
    maxRetries: 3,
    retryDelayMs: 10,
    secrets: new Secrets(),
    ...extra,
  });
}

async function rejectsWith(fn: () => Promise<unknown>, code: string, pattern?: RegExp) {
  await assert.rejects(fn, (e: unknown) => {
    assert.ok(e instanceof MirrorError, String(e));
    assert.equal(e.code, code, e.message);
    if (pattern) assert.match(e.message, pattern);
    return true;
  });
}

Deno.test("parseChallenges() reads Basic and Bearer challenges with quoted values and scopes", () => {
  assert.deepEqual(
    parseChallenges(
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:samalba/my-app:pull,push"',
    ),
    [{
      scheme: "bearer",
      params: {
        realm: "https://auth.docker.io/token",
        service: "registry.docker.io",
        scope: "repository:samalba/my-app:pull,push",
      },
    }],
  );
  assert.deepEqual(parseChallenges('Basic realm="Registry Realm"'), [{
    scheme: "basic",
    params: { realm: "Registry Realm" },
  }]);
  assert.equal(
    parseChallenges('Bearer realm="r",error="insufficient_scope"')[0].params.error,
    "insufficient_scope",
  );
});

Deno.test({
  name:
    `RegistryClient reads with Basic auth, returns null when absent, refuses a wrong password${skip}`,
  ignore: Boolean(skip),
  async fn() {
    await using reg = await startRegistry({ auth: "htpasswd" });
    const image = await pushTestImage(reg, "team/app:1", { kind: "schema2", seed: 41 });
    const c = client(reg);
    try {
      const head = await c.manifestHead("team/app", "1");
      assert.equal(head?.digest, image.digest);
      assert.equal(head?.mediaType, "application/vnd.docker.distribution.manifest.v2+json");
      assert.equal(await c.manifestHead("team/app", "missing"), null);
      assert.equal(await c.manifestHead("team/nothing", "1"), null);
      assert.equal(await c.blobHead("team/app", `sha256:${"0".repeat(64)}`), null);
      const manifest = await c.manifestGet("team/app", image.digest);
      assert.equal(manifest?.digest, image.digest);
      assert.deepEqual(await c.tagList("team/app"), ["1"]);
    } finally {
      c.close();
    }
    const wrong = client(reg, {
      credential: {
        kind: "basic",
        username: reg.username ?? "",
        password: "not-the-password",
        source: "config",
      },
    });
    try {
      await rejectsWith(() => wrong.manifestHead("team/app", "1"), "LOGIN_FAILED", /401/);
      await rejectsWith(() => wrong.checkAccess("team/app", ["pull"]), "LOGIN_FAILED");
    } finally {
      wrong.close();
    }
    const anonymous = client(reg, { credential: null });
    try {
      await rejectsWith(
        () => anonymous.checkAccess("team/app", ["pull"]),
        "LOGIN_FAILED",
        /credentials missing/,
      );
    } finally {
      anonymous.close();
    }
  },
});

Deno.test({
  name: `RegistryClient verifies TLS with the configured CA and fails clearly without it${skip}`,
  ignore: Boolean(skip),
  async fn() {
    await using reg = await startRegistry({ tls: true });
    const image = await pushTestImage(reg, "team/app:1", { kind: "oci", seed: 42 });
    const trusted = client(reg);
    try {
      assert.equal((await trusted.manifestHead("team/app", "1"))?.digest, image.digest);
    } finally {
      trusted.close();
    }
    const untrusted = client(reg, { caFile: undefined, maxRetries: 0 });
    try {
      await rejectsWith(
        () => untrusted.manifestHead("team/app", "1"),
        "IMAGE_PULL_FAILED",
        /TLS verification failed.*caFile/,
      );
    } finally {
      untrusted.close();
    }
  },
});

Deno.test({
  name: `RegistryClient shares one token per scope between concurrent requests (token auth)${skip}`,
  ignore: Boolean(skip),
  async fn() {
    await using reg = await startRegistry({ auth: "token" });
    const image = await pushTestImage(reg, "team/app:1", { kind: "oci-index", seed: 43 });
    const before = reg.tokenRequests().length;
    const secrets = new Secrets();
    const c = client(reg, { secrets });
    try {
      const heads = await Promise.all(
        Array.from({ length: 12 }, () => c.manifestHead("team/app", "1")),
      );
      assert.ok(heads.every((h) => h?.digest === image.digest));
      await Promise.all(image.layers.map((digest) => c.blobHead("team/app", digest)));
      assert.equal(c.tokenRequests, 1);
      assert.equal(reg.tokenRequests().length - before, 1);
      assert.equal(secrets.size > 0, true, "the token was registered as a secret");
      const wrong = client(reg, {
        credential: {
          kind: "basic",
          username: reg.username ?? "",
          password: "bad",
          source: "config",
        },
      });
      await rejectsWith(
        () => wrong.manifestHead("team/app", "1"),
        "LOGIN_FAILED",
        /credentials refused/,
      );
      wrong.close();
    } finally {
      c.close();
    }
  },
});

Deno.test({
  name:
    `RegistryClient with an identity token uses the OAuth2 refresh-token POST (token auth)${skip}`,
  ignore: Boolean(skip),
  async fn() {
    await using reg = await startRegistry({ auth: "token" });
    const image = await pushTestImage(reg, "team/app:1", { kind: "oci", seed: 45 });
    const secrets = new Secrets();
    const c = client(reg, {
      secrets,
      credential: {
        kind: "identity-token",
        token: reg.refreshToken ?? "",
        source: "docker-config",
      },
    });
    try {
      assert.equal((await c.manifestHead("team/app", "1"))?.digest, image.digest);
      await c.checkAccess("team/other", ["pull", "push"]);
      const last = reg.tokenRequests().at(-1) ?? [];
      assert.deepEqual(last, ["repository:team/other:pull,push"], "scopes went in the form");
      assert.deepEqual(reg.tokenPosts(), ["refresh_token", "refresh_token"], "POSTs, no GET");
      assert.ok(secrets.mask(`x ${reg.refreshToken} y`).includes("***"), "refresh token masked");
    } finally {
      c.close();
    }
    const wrong = client(reg, {
      credential: { kind: "identity-token", token: "rt-not-issued", source: "docker-config" },
    });
    try {
      await rejectsWith(() => wrong.manifestHead("team/app", "1"), "LOGIN_FAILED", /401/);
    } finally {
      wrong.close();
    }
  },
});

Deno.test({
  name:
    `RegistryClient follows a blob redirect to another host without the Authorization header${skip}`,
  ignore: Boolean(skip),
  async fn() {
    await using reg = await startRegistry({ auth: "htpasswd" });
    const image = await pushTestImage(reg, "team/app:1", { kind: "oci", seed: 44 });
    await using proxy = startFaultProxy(reg, [
      { method: "GET", path: /\/blobs\/sha256:/, times: 1, fault: { kind: "redirect" } },
    ]);
    const c = client({ ...reg, host: proxy.host, scheme: "http" });
    try {
      const blob = await c.blobGet("team/app", image.layers[0]);
      const bytes = new Uint8Array(await new Response(blob.body).arrayBuffer());
      assert.ok(bytes.length > 0);
      assert.equal(proxy.injected.redirect, 1);
      assert.deepEqual(proxy.redirectAuth, [null]);
    } finally {
      c.close();
    }
  },
});

Deno.test({
  name:
    `manifestHead() hands over the ratelimit headers; a long 429 names its host and wait${skip}`,
  ignore: Boolean(skip),
  async fn() {
    await using reg = await startRegistry({ auth: "none" });
    await pushTestImage(reg, "team/app:1", { kind: "oci", seed: 43, layers: 1 });
    await using hub = startRateLimitProxy(reg, { limit: 100, remaining: 7, stormAfter: 0 });
    const c = new RegistryClient({
      host: hub.host,
      scheme: "http",
      credential: null,
      maxRetries: 3,
      retryDelayMs: 10,
      maxRetryWaitMs: 1000,
      secrets: new Secrets(),
    });
    try {
      const head = await c.manifestHead("team/app", "1");
      assert.equal(head?.headers.get("ratelimit-limit"), "100;w=21600");
      assert.equal(head?.headers.get("ratelimit-remaining"), "7;w=21600");
      await assert.rejects(() => c.manifestGet("team/app", "1"), (e: unknown) => {
        assert.ok(e instanceof RegistryError);
        assert.equal(e.code, "IMAGE_RATE_LIMITED");
        assert.equal(e.host, hub.host);
        assert.equal(e.retryAfterMs, 3_600_000);
        return true;
      });
      assert.equal(hub.refused, 1, "a wait beyond maxRetryWait is not retried");
    } finally {
      c.close();
    }
  },
});
