/**
 * Where a credential may go (registry_auth.ts, http_transport.ts), against real registries and
 * small hostile hosts on loopback: a redirect to another host never carries or earns a credential,
 * a token realm over plain http elsewhere gets none, a Location or Link on another host goes
 * without Authorization, token answers are read under a cap and malformed ones are LOGIN_FAILED,
 * and a password outside Latin-1 works (UTF-8, then base64).
 */
import assert from "node:assert/strict";
import { endlessBody, within } from "../support/bounded.ts";
import type { Credential } from "../../lib/registry/credential.ts";
import { MirrorError } from "../../lib/errors.ts";
import { Secrets } from "../../lib/log/redact.ts";
import { basicAuthorization } from "../../lib/registry/registry_auth.ts";
import { RegistryClient } from "../../lib/registry/registry_client.ts";
import { startFaultProxy } from "../support/fault_proxy.ts";
import { pushTestImage } from "../support/images.ts";
import { startRecordingHost } from "../support/recording_host.ts";
import {
  makeCertificates,
  registryBinaryAvailable,
  startRegistry,
  type TestRegistry,
} from "../support/registry.ts";

const skip = registryBinaryAvailable() ? "" : " (ignored: docker-registry is not installed)";

/** A password with characters outside Latin-1 (ä, ö are Latin-1; € and ✓ are not). */
const UNICODE_PASSWORD = "pässwörd€✓";

function basic(reg: { username?: string; password?: string }): Credential {
  return {
    kind: "basic",
    username: reg.username ?? "",
    password: reg.password ?? "",
    source: "config",
  };
}

function client(
  target: { host: string; scheme?: "http" | "https"; caFile?: string },
  credential: Credential | null,
  secrets = new Secrets(),
) {
  return new RegistryClient({
    host: target.host,
    scheme: target.scheme ?? "http",
    caFile: target.caFile,
    credential,
    maxRetries: 1,
    retryDelayMs: 5,
    secrets,
  });
}

async function rejectsWith(fn: () => Promise<unknown>, code: string, pattern?: RegExp) {
  await assert.rejects(fn, (e: unknown) => {
    assert.ok(e instanceof MirrorError, `not a MirrorError: ${e}`);
    assert.equal(e.code, code, e.message);
    if (pattern) assert.match(e.message, pattern);
    return true;
  });
}

Deno.test("basicAuthorization() encodes user:password as UTF-8, then base64", () => {
  assert.equal(basicAuthorization("mirror", "secret"), `Basic ${btoa("mirror:secret")}`);
  const header = basicAuthorization("mirror", UNICODE_PASSWORD);
  const bytes = Uint8Array.from(atob(header.slice(6)), (c) => c.charCodeAt(0));
  assert.equal(new TextDecoder().decode(bytes), `mirror:${UNICODE_PASSWORD}`);
});

Deno.test({
  name:
    `RegistryClient holding a credential drops Authorization on a blob redirect to another host${skip}`,
  ignore: Boolean(skip),
  async fn() {
    await using reg = await startRegistry({ auth: "htpasswd" });
    const image = await pushTestImage(reg, "team/app:1", { kind: "oci", seed: 71 });
    await using proxy = startFaultProxy(reg, [
      { method: "GET", path: /\/blobs\/sha256:/, times: 1, fault: { kind: "redirect" } },
    ]);
    const c = client({ host: proxy.host }, basic(reg));
    try {
      // The client learns Basic first, so the redirected request itself carries Authorization.
      assert.equal((await c.manifestHead("team/app", "1"))?.digest, image.digest);
      const blob = await c.blobGet("team/app", image.layers[0]);
      const bytes = new Uint8Array(await new Response(blob.body).arrayBuffer());
      assert.ok(bytes.length > 0);
      assert.equal(proxy.injected.redirect, 1);
      assert.deepEqual(proxy.redirectAuth, [null], "the storage host got no Authorization");
    } finally {
      c.close();
    }
  },
});

Deno.test({
  name:
    `RegistryClient never authenticates to a host a redirect led to, whatever it challenges${skip}`,
  ignore: Boolean(skip),
  async fn(t) {
    const rows: {
      name: string;
      auth: "htpasswd" | "token";
      challenge: "basic" | "bearer";
      credential: (reg: TestRegistry) => Credential;
    }[] = [
      {
        name: "Basic registry, Basic challenge",
        auth: "htpasswd",
        challenge: "basic",
        credential: basic,
      },
      {
        name: "Basic registry, Bearer challenge",
        auth: "htpasswd",
        challenge: "bearer",
        credential: basic,
      },
      {
        name: "token registry, Bearer challenge",
        auth: "token",
        challenge: "bearer",
        credential: basic,
      },
      {
        name: "token registry with an identity token, Bearer challenge",
        auth: "token",
        challenge: "bearer",
        credential: (reg) => ({
          kind: "identity-token",
          token: reg.refreshToken ?? "",
          source: "docker-config",
        }),
      },
    ];
    for (const row of rows) {
      await t.step(row.name, async () => {
        await using reg = await startRegistry({ auth: row.auth });
        await pushTestImage(reg, "team/app:1", { kind: "oci", seed: 72 });
        await using foreign = startRecordingHost({
          handle: (req, self) => {
            if (new URL(req.url).pathname === "/token") {
              return Response.json({ token: "foreign-token", expires_in: 300 });
            }
            return new Response('{"errors":[{"code":"UNAUTHORIZED","message":"log in"}]}', {
              status: 401,
              headers: {
                "www-authenticate": row.challenge === "basic"
                  ? 'Basic realm="foreign"'
                  : `Bearer realm="${self.url}/token",service="foreign"`,
              },
            });
          },
        });
        await using proxy = startFaultProxy(reg, [{
          method: "GET",
          path: /\/manifests\//,
          times: 100,
          fault: { kind: "redirect", to: foreign.url },
        }]);
        const credential = row.credential(reg);
        // Learned auth first (the redirected request carries it), and a first request redirected.
        for (const learnFirst of [true, false]) {
          const c = client({ host: proxy.host }, credential);
          try {
            if (learnFirst) await c.checkAccess("team/app", ["pull"]);
            await rejectsWith(() => c.manifestGet("team/app", "1"), "LOGIN_FAILED", /401/);
          } finally {
            c.close();
          }
        }
        assert.ok(foreign.requests.length >= 2, "the redirects reached the foreign host");
        const secret = credential.kind === "basic"
          ? credential.password
          : credential.kind === "identity-token"
          ? credential.token
          : "";
        for (const r of foreign.requests) {
          assert.equal(r.authorization, null, `${r.method} ${r.path} carried Authorization`);
          assert.notEqual(new URL(r.path, foreign.url).pathname, "/token", "no token request");
          assert.ok(!r.body.includes(secret) && !r.path.includes(secret), "no secret sent");
        }
      });
    }
  },
});

Deno.test({
  name:
    `RegistryClient sends no credential to a token realm over plain http on another host${skip}`,
  ignore: Boolean(skip),
  async fn(t) {
    await t.step("a loopback registry naming an http realm on another host", async () => {
      await using realm = startRecordingHost({
        handle: () => Response.json({ token: "t", expires_in: 300 }),
      });
      await using registry = startRecordingHost({
        hostname: "127.0.0.1",
        handle: () =>
          new Response("{}", {
            status: 401,
            headers: { "www-authenticate": `Bearer realm="${realm.url}/token",service="x"` },
          }),
      });
      const c = client(
        { host: registry.host },
        basic({ username: "mirror", password: "pw-secret" }),
      );
      try {
        await rejectsWith(() => c.checkAccess("team/app", ["pull"]), "LOGIN_FAILED", /plain http/);
      } finally {
        c.close();
      }
      assert.deepEqual(realm.requests, [], "the realm got no request at all");
      assert.ok(registry.requests.every((r) => r.authorization === null));
    });

    await t.step(`an https registry naming an http realm${skip}`, async () => {
      await using reg = await startRegistry({ auth: "token", tls: true });
      const c = client(reg, basic(reg));
      try {
        await rejectsWith(
          () => c.checkAccess("team/app", ["pull"]),
          "LOGIN_FAILED",
          /token realm http:\/\/127\.0\.0\.1:\d+\/token over plain http/,
        );
      } finally {
        c.close();
      }
      assert.deepEqual(reg.tokenRequests(), [], "the token server got no request");
    });
  },
});

Deno.test("RegistryClient sends no Authorization to a Link or an upload Location on another host", async (t) => {
  const credential = basic({ username: "mirror", password: "pw-secret" });
  const expected = basicAuthorization("mirror", "pw-secret");
  await using other = startRecordingHost();
  await using registry = startRecordingHost({
    hostname: "127.0.0.1",
    handle: (req) => {
      if (req.headers.get("authorization") !== expected) {
        return new Response("{}", {
          status: 401,
          headers: { "www-authenticate": 'Basic realm="fake"' },
        });
      }
      const path = new URL(req.url).pathname;
      if (req.method === "POST" && path === "/v2/team/app/blobs/uploads/") {
        return new Response(null, {
          status: 202,
          headers: { location: `${other.url}/v2/team/app/blobs/uploads/u1` },
        });
      }
      if (req.method === "HEAD") return new Response(null, { status: 404 });
      return Response.json({ name: "team/app", tags: ["a"] }, {
        headers: { link: `<${other.url}/v2/team/app/tags/list?last=a>; rel="next"` },
      });
    },
  });
  const c = client({ host: registry.host }, credential);
  try {
    await t.step("a tag list's next page on another host is refused outright", async () => {
      await rejectsWith(() => c.tagList("team/app"), "IMAGE_MANIFEST_INVALID", /next page/);
      assert.equal(other.requests.length, 0);
    });
    await t.step("an upload Location on another host gets no Authorization", async () => {
      const bytes = new TextEncoder().encode("layer");
      const digest = `sha256:${
        Array.from(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)))
          .map((b) => b.toString(16).padStart(2, "0")).join("")
      }`;
      await assert.rejects(() =>
        c.blobUpload(
          "team/app",
          { digest, size: bytes.length },
          () => Promise.resolve(new Blob([bytes]).stream()),
        )
      );
      assert.ok(other.requests.length >= 1, "the upload went to the other host");
      for (const r of other.requests) assert.equal(r.authorization, null);
    });
  } finally {
    c.close();
  }
  assert.ok(registry.requests.some((r) => r.authorization === expected), "the registry got it");
});

Deno.test("RegistryClient reads token answers under a 1 MiB cap; malformed ones are LOGIN_FAILED", async (t) => {
  let sent = 0;
  let answer: () => Response = () => Response.json({ token: "good" });
  await using registry = startRecordingHost({
    hostname: "127.0.0.1",
    handle: (req, self) => {
      if (new URL(req.url).pathname === "/token") return answer();
      if (req.headers.get("authorization") === "Bearer good") {
        return Response.json({ name: "team/app", tags: ["1"] });
      }
      return new Response("{}", {
        status: 401,
        headers: { "www-authenticate": `Bearer realm="${self.url}/token",service="fake"` },
      });
    },
  });
  const rows: { name: string; answer: () => Response; error?: RegExp }[] = [
    {
      name: "an endless answer is cut at the cap",
      answer: () => {
        const chunk = new Uint8Array(64 * 1024).fill(0x20);
        return new Response(endlessBody(chunk, (n) => sent += n), {
          headers: { "content-type": "application/json" },
        });
      },
      error: /token answer from http:\/\/127\.0\.0\.1:\d+\/token is larger than 1048576 bytes/,
    },
    { name: "not JSON", answer: () => new Response("<html>oops</html>"), error: /is not JSON/ },
    { name: "null", answer: () => new Response("null"), error: /is not a JSON object/ },
    {
      name: "a number as token",
      answer: () => Response.json({ token: 5 }),
      error: /holds no token/,
    },
    {
      name: "wrong types beside a good token still work",
      answer: () => Response.json({ token: "good", expires_in: "soon", issued_at: { x: 1 } }),
    },
  ];
  for (const row of rows) {
    await t.step(row.name, () =>
      within(15_000, row.name, async (signal) => {
        answer = row.answer;
        const c = client(
          { host: registry.host },
          basic({ username: "mirror", password: "pw-secret" }),
        );
        try {
          if (row.error) {
            await rejectsWith(() => c.tagList("team/app", signal), "LOGIN_FAILED", row.error);
          } else {
            assert.deepEqual(await c.tagList("team/app", signal), ["1"]);
          }
        } finally {
          c.close();
        }
      }));
  }
  assert.ok(
    sent < 16 * 1024 * 1024,
    `the endless answer was cancelled near the cap (${sent} bytes)`,
  );
});

Deno.test({
  name: `RegistryClient logs in with a password outside Latin-1 (htpasswd and token auth)${skip}`,
  ignore: Boolean(skip),
  async fn(t) {
    for (const auth of ["htpasswd", "token"] as const) {
      await t.step(auth, async () => {
        await using reg = await startRegistry({ auth, users: { mirror: UNICODE_PASSWORD } });
        const secrets = new Secrets();
        const c = client(reg, basic(reg), secrets);
        try {
          await c.checkAccess("team/app", ["pull", "push"]);
          assert.deepEqual(await c.tagList("team/app"), []);
        } finally {
          c.close();
        }
        const header = basicAuthorization("mirror", UNICODE_PASSWORD);
        assert.equal(secrets.mask(`a ${header.slice(6)} b ${UNICODE_PASSWORD}`), "a *** b ***");
        const wrong = client(reg, basic({ username: "mirror", password: "pässwörd€✗" }));
        try {
          await rejectsWith(() => wrong.checkAccess("team/app", ["pull"]), "LOGIN_FAILED");
        } finally {
          wrong.close();
        }
      });
    }
  },
});

Deno.test("RegistryClient over TLS refuses a redirect to plain http: nothing reaches the http host", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bb-https-http-" });
  await using plain = startRecordingHost({ handle: () => new Response("blob bytes") });
  const certs = await makeCertificates(dir);
  const digest = `sha256:${"cd".repeat(32)}`;
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    cert: await Deno.readTextFile(certs.cert),
    key: await Deno.readTextFile(certs.key),
    onListen() {},
  }, (req) => {
    const path = new URL(req.url).pathname;
    if (path === "/v2/") return new Response("{}");
    if (path === `/v2/team/app/blobs/${digest}`) {
      return new Response(null, { status: 307, headers: { location: `${plain.url}/blob` } });
    }
    return new Response("not here", { status: 404 });
  });
  try {
    const host = `127.0.0.1:${server.addr.port}`;
    const tls = client({ host, scheme: "https", caFile: certs.ca }, null);
    await rejectsWith(
      () => tls.blobGet("team/app", digest),
      "IMAGE_PULL_FAILED",
      /refused a redirect from https to http \(http:\/\/127\.0\.0\.2:\d+\/blob\)/,
    );
    assert.deepEqual(plain.requests, [], "the http host got no request");
  } finally {
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the identity-token refresh POST is not followed to another origin: its body never leaves", async () => {
  await using catcher = startRecordingHost();
  await using registry = startRecordingHost({
    hostname: "127.0.0.1",
    handle: (req, self) => {
      if (new URL(req.url).pathname === "/token") {
        return new Response(null, { status: 307, headers: { location: `${catcher.url}/token` } });
      }
      return new Response('{"errors":[{"code":"UNAUTHORIZED","message":"log in"}]}', {
        status: 401,
        headers: { "www-authenticate": `Bearer realm="${self.url}/token",service="reg"` },
      });
    },
  });
  const refreshToken = `rt-${crypto.randomUUID()}`;
  const c = client({ host: registry.host }, {
    kind: "identity-token",
    token: refreshToken,
    source: "docker-config",
  });
  try {
    await rejectsWith(
      () => c.manifestGet("team/app", "1"),
      "LOGIN_FAILED",
      /redirected to another host .*a request that carries a credential is not followed there/,
    );
  } finally {
    c.close();
  }
  const posts = registry.requests.filter((r) => r.method === "POST");
  assert.equal(posts.length, 1, "the refresh POST went to the realm");
  assert.ok(posts[0].body.includes(refreshToken));
  assert.deepEqual(catcher.requests, [], "nothing reached the other origin");
});
