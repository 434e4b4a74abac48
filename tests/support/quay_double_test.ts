/**
 * The Quay double's own behaviours (shared/registry-protocols.md §5.14), each checked against the
 * double in front of a real docker-registry, so a feature test relying on one relies on something
 * that is there.
 */
import assert from "node:assert/strict";
import { Secrets } from "../../lib/log/redact.ts";
import { RegistryClient } from "../../lib/registry/registry_client.ts";
import {
  buildImage,
  type Built,
  headDigest,
  pushManifestWithBlobs,
  pushTestImage,
  sha256,
} from "./images.ts";
import { type QuayDouble, startQuayDouble } from "./quay_double.ts";
import { clientOf, registryBinaryAvailable, startRegistry, type TestRegistry } from "./registry.ts";
import { buildReferrer, pushReferrer } from "./supply_chain_fixture.ts";

const skip = registryBinaryAvailable() ? "" : " (ignored: docker-registry is not installed)";

Deno.test({
  name:
    `Quay double: GET /v2/ says X-Sparse-Manifest-Support (false by default); distribution says nothing${skip}`,
  ignore: Boolean(skip),
  async fn() {
    await using reg = await startRegistry();
    const seen: (boolean | null | undefined)[] = [];
    for (const sparse of [undefined, true]) {
      await using quay = startQuayDouble(reg, {
        tokens: {},
        orgs: {},
        ...(sparse === undefined ? {} : { sparseManifestSupport: sparse }),
      });
      for (const host of [quay.host, reg.host]) {
        const client = new RegistryClient({ host, scheme: "http", secrets: new Secrets() });
        try {
          await client.probeVersionCheck();
          seen.push(client.sparseManifestSupport);
        } finally {
          client.close();
        }
      }
    }
    assert.deepEqual(seen, [false, null, true, null]);
  },
});

/** The double as a TestRegistry (its url and host), with other credentials if given. */
function through(
  reg: TestRegistry,
  quay: QuayDouble,
  credentials?: { username: string; password: string },
): TestRegistry {
  return { ...reg, host: quay.host, url: quay.url, ...credentials };
}

async function pushByDigest(target: TestRegistry, repo: string, seed: number): Promise<Built> {
  const image = await buildImage(seed, true, "amd64", { layers: 1, layerSize: 4096 });
  await pushManifestWithBlobs(target, `${repo}:${sha256(image.manifest)}`, {
    mediaType: image.mediaType,
    manifest: image.manifest,
    blobs: image.blobs.values(),
  });
  return image;
}

Deno.test({
  name:
    `Quay double: a manifest PUT by digest expires with its temporary tag unless a tag, a tagged index or its subject holds it${skip}`,
  ignore: Boolean(skip),
  async fn() {
    await using reg = await startRegistry({ auth: "htpasswd" });
    // A lifetime long enough to read the pinned image before it ends on a loaded machine.
    await using quay = startQuayDouble(reg, { tokens: {}, orgs: {}, tempTagLifetimeSeconds: 3 });
    const via = through(reg, quay);
    const client = clientOf(reg, quay.host);
    const direct = clientOf(reg);
    const pinned = await pushByDigest(via, "acme/pinned", 1);
    const pinnedAt = Date.now();
    const pinnedDigest = sha256(pinned.manifest);
    const before = [
      (await client.manifestHead("acme/pinned", pinnedDigest))?.digest,
      (await client.manifestGet("acme/pinned", pinnedDigest))?.digest,
    ];
    assert.ok(Date.now() - pinnedAt < 3000, "read within the lifetime");
    assert.deepEqual(before, [pinnedDigest, pinnedDigest]);
    const later = await pushByDigest(via, "acme/later", 2);
    await pushManifestWithBlobs(via, "acme/later:v1", {
      mediaType: later.mediaType,
      manifest: later.manifest,
      blobs: [],
    });
    // An index by tag whose children were PUT by digest before it (§5.12).
    const multi = await pushTestImage(via, "acme/multi:1", { kind: "oci-index", seed: 3 });
    const referrer = await pushReferrer(
      via,
      "acme/pinned",
      buildReferrer({
        subject: { mediaType: pinned.mediaType, digest: pinnedDigest, size: 0 },
        artifactType: "application/vnd.example.sbom",
        content: "sbom",
      }),
    );
    const pushedAt = Date.now();
    const heads = async () => ({
      pinned: (await client.manifestHead("acme/pinned", sha256(pinned.manifest)))?.digest ?? null,
      pinnedGet: (await client.manifestGet("acme/pinned", sha256(pinned.manifest)))?.digest ?? null,
      later: (await client.manifestHead("acme/later", sha256(later.manifest))) !== null,
      children: await Promise.all(
        (multi.children ?? []).map(async (c) =>
          (await client.manifestHead("acme/multi", c.digest)) !== null
        ),
      ),
      referrer: (await client.manifestHead("acme/pinned", referrer.digest)) !== null,
    });
    try {
      await new Promise((r) => setTimeout(r, Math.max(0, pushedAt + 3300 - Date.now())));
      assert.deepEqual(await heads(), {
        pinned: null,
        pinnedGet: null,
        later: true,
        children: (multi.children ?? []).map(() => true),
        referrer: true,
      });
      assert.ok(
        quay.refused.includes(`HEAD /v2/acme/pinned/manifests/${sha256(pinned.manifest)} 404`),
      );
      // distribution behind the double still has it: the expiry is the double's model.
      assert.notEqual(await direct.manifestHead("acme/pinned", sha256(pinned.manifest)), null);
      // A PUT by digest again starts a new temporary tag.
      await pushByDigest(via, "acme/pinned", 1);
      assert.notEqual(await client.manifestHead("acme/pinned", sha256(pinned.manifest)), null);
    } finally {
      client.close();
    }
  },
});

Deno.test({
  name:
    `Quay double: namespace quota refuses upload start, chunk and final PUT with 403 DENIED; quota_report and limits in the API${skip}`,
  ignore: Boolean(skip),
  async fn() {
    await using reg = await startRegistry({ auth: "htpasswd" });
    await using quay = startQuayDouble(reg, {
      tokens: { tok: { user: "admin", scopes: ["org:admin"] } },
      orgs: { full: { admins: ["admin"] }, free: { admins: ["admin"] } },
      quotas: { full: { limitBytes: 100_000, usedBytes: 10_000, warningPercent: 50 } },
    });
    const via = through(reg, quay);
    const basic = { authorization: `Basic ${btoa(`${reg.username}:${reg.password}`)}` };
    // A session opened while under the limit: its chunk and final PUT are refused later.
    const open = await fetch(`${quay.url}/v2/full/early/blobs/uploads/`, {
      method: "POST",
      headers: basic,
    });
    await open.body?.cancel();
    assert.equal(open.status, 202);
    const session = new URL(open.headers.get("location") ?? "", quay.url);
    // Two layers of 64 KiB: the first passes (10 KB used), the second starts at 75 KB and passes,
    // the config then starts at 140 KB: refused half-way through the image.
    await assert.rejects(
      pushTestImage(via, "full/app:1", { kind: "oci", seed: 5 }),
      /upload POST full\/app: 403/,
    );
    assert.ok(quay.usage("full") >= 100_000, String(quay.usage("full")));
    const denied = await fetch(`${quay.url}/v2/full/app/blobs/uploads/`, {
      method: "POST",
      headers: basic,
    });
    assert.equal(denied.status, 403);
    assert.deepEqual(await denied.json(), {
      errors: [{ code: "DENIED", message: "Quota has been exceeded on namespace", detail: {} }],
    });
    const chunk = await fetch(session, { method: "PATCH", headers: basic, body: "abc" });
    assert.equal(chunk.status, 403);
    await chunk.body?.cancel();
    const final = new URL(session);
    final.searchParams.set("digest", sha256(new TextEncoder().encode("abc")));
    const put = await fetch(final, { method: "PUT", headers: basic, body: "abc" });
    assert.equal(put.status, 403);
    await put.body?.cancel();
    const cancel = await fetch(session, { method: "DELETE", headers: basic });
    await cancel.body?.cancel();
    assert.equal(cancel.status, 204, "cancelling a session is never refused");
    // Another namespace goes on.
    await pushTestImage(via, "free/app:1", { kind: "oci", seed: 6 });
    const org = await fetch(`${quay.url}/api/v1/organization/full`).then((r) => r.json());
    assert.equal(org.quota_report.quota_bytes, quay.usage("full"));
    assert.equal(org.quota_report.configured_quota, 100_000);
    const limits = await fetch(`${quay.url}/api/v1/organization/full/quota`, {
      headers: { authorization: "Bearer tok" },
    }).then((r) => r.json());
    assert.deepEqual(
      limits[0].limits.map((
        l: { type: string; limit_percent: number },
      ) => [l.type, l.limit_percent]),
      [
        ["Warning", 50],
        ["Reject", 100],
      ],
    );
    const freeOrg = await fetch(`${quay.url}/api/v1/organization/free`).then((r) => r.json());
    assert.equal(freeOrg.quota_report, undefined);
  },
});

Deno.test({
  name:
    `Quay double: a robot pushes only where it has write; the grant needs admin and the repo:admin scope${skip}`,
  ignore: Boolean(skip),
  async fn() {
    await using reg = await startRegistry({ auth: "htpasswd" });
    await using quay = startQuayDouble(reg, {
      tokens: {
        "tok-create": { user: "creator", scopes: ["repo:create", "repo:write"] },
        "tok-admin": { user: "creator", scopes: ["repo:create", "repo:admin"] },
        "tok-other": { user: "stranger", scopes: ["repo:admin"] },
      },
      orgs: { acme: { creators: ["creator"], members: ["stranger"] } },
      robots: { "acme+mirror": "robot-secret" },
    });
    const api = async (method: string, path: string, token?: string, body?: unknown) => {
      const res = await fetch(`${quay.url}${path}`, {
        method,
        headers: {
          ...(token ? { authorization: `Bearer ${token}` } : {}),
          ...(body ? { "content-type": "application/json" } : {}),
        },
        body: body ? JSON.stringify(body) : undefined,
      });
      return { status: res.status, body: await res.json().catch(() => null) };
    };
    const created = await api("POST", "/api/v1/repository", "tok-create", {
      namespace: "acme",
      repository: "app",
      visibility: "private",
      description: "",
    });
    assert.equal(created.status, 201);
    const robot = through(reg, quay, { username: "acme+mirror", password: "robot-secret" });
    await assert.rejects(
      pushTestImage(robot, "acme/app:1", { kind: "oci", seed: 7 }),
      /upload POST acme\/app: 401/,
    );
    const wrong = through(reg, quay, { username: "acme+mirror", password: "nope" });
    await assert.rejects(pushTestImage(wrong, "acme/app:1", { kind: "oci", seed: 7 }), /401/);
    const grant = "/api/v1/repository/acme/app/permissions/user/acme+mirror";
    assert.equal((await api("PUT", grant, undefined, { role: "write" })).status, 403, "CSRF");
    const noScope = await api("PUT", grant, "tok-create", { role: "write" });
    assert.deepEqual([noScope.status, noScope.body?.error_type], [403, "insufficient_scope"]);
    const notAdmin = await api("PUT", grant, "tok-other", { role: "write" });
    assert.equal(notAdmin.status, 403);
    const unknown = await api(
      "PUT",
      "/api/v1/repository/acme/app/permissions/user/acme+ghost",
      "tok-admin",
      { role: "write" },
    );
    assert.equal(unknown.status, 400);
    const missing = await api(
      "PUT",
      "/api/v1/repository/acme/none/permissions/user/acme+mirror",
      "tok-admin",
      { role: "write" },
    );
    assert.equal(missing.status, 403, "no rights on a repo that does not exist: 403, not 404");
    assert.equal((await api("GET", grant, "tok-admin")).status, 400, "no grant yet");
    const granted = await api("PUT", grant, "tok-admin", { role: "write" });
    assert.deepEqual([granted.status, granted.body?.role, granted.body?.is_robot], [
      200,
      "write",
      true,
    ]);
    assert.equal((await api("GET", grant, "tok-admin")).body?.role, "write");
    const pushed = await pushTestImage(robot, "acme/app:1", { kind: "oci", seed: 7 });
    assert.equal(await headDigest(reg, "acme/app:1"), pushed.digest);
  },
});
