/**
 * Digest-pinned images keep a tag: against the Quay double (a manifest PUT by digest alone
 * expires with its temporary tag, shared/registry-protocols.md §5.14) `name@sha256:...` is written
 * under `pinned-sha256-<hex>` and `name:tag@sha256:...` under `tag`, so after the temporary-tag
 * lifetime every mirrored image (and an index's children) still resolves by digest and by its
 * tag; the report and the dry run show the tag; a re-run writes nothing; the source tag of a
 * `tag@digest` image moving upstream changes nothing (the digest decides).
 */
import assert from "node:assert/strict";
import { Secrets } from "../../lib/log/redact.ts";
import { pinnedDigestTag } from "../../lib/registry/reference.ts";
import { RegistryClient } from "../../lib/registry/registry_client.ts";
import { pushTestImage } from "../support/images.ts";
import { quayTarget, startQuayDouble } from "../support/quay_double.ts";
import { registryBinaryAvailable, startRegistry } from "../support/registry.ts";
import { mirror, writes } from "../support/e2e_kit.ts";

const skip = registryBinaryAvailable() ? "" : " (ignored: docker-registry is not installed)";

Deno.test({
  name:
    `digest-pinned images keep a tag on Quay: still there by digest and by tag after the temporary-tag lifetime; re-run writes nothing${skip}`,
  ignore: Boolean(skip),
  async fn(t) {
    await using src = await startRegistry();
    await using reg = await startRegistry({ auth: "htpasswd" });
    await using quay = startQuayDouble(reg, {
      tokens: {
        "tok-admin": { user: "admin", scopes: ["org:admin", "repo:admin", "repo:create"] },
      },
      orgs: { acme: { admins: ["admin"] } },
      tempTagLifetimeSeconds: 1,
    });
    const dir = await Deno.makeTempDir({ prefix: "bb-pinned-" });
    const app = await pushTestImage(src, "team/app:1.0", { kind: "oci-index", seed: 31 });
    const tool = await pushTestImage(src, "team/tool:x", { kind: "oci", seed: 32 });
    const web = await pushTestImage(src, "team/web:2", { kind: "schema2", seed: 33 });
    const config = {
      registries: {
        prod: quayTarget(quay, reg),
      },
      log: { dir: "./logs" },
      operation: { retryDelay: 0.02, maxRetries: 1, apiTimeout: 5, engine: "registry" },
      images: {
        [`${src.host}/team/app@${app.digest}`]: { targets: ["prod"] },
        [`${src.host}/team/tool@${tool.digest}`]: { targets: ["prod"] },
        [`${src.host}/team/web:2@${web.digest}`]: { targets: ["prod"] },
      },
    };
    const env = { QUAY_TOKEN: "tok-admin", QUAY_PASSWORD: reg.password ?? "" };
    const expected = [
      [`${quay.host}/acme/app:${pinnedDigestTag(app.digest)}`, app.digest],
      [`${quay.host}/acme/tool:${pinnedDigestTag(tool.digest)}`, tool.digest],
      [`${quay.host}/acme/web:2`, web.digest],
    ];
    const client = new RegistryClient({
      host: quay.host,
      scheme: "http",
      secrets: new Secrets(),
      credential: {
        kind: "basic",
        username: reg.username ?? "",
        password: reg.password ?? "",
        source: "config",
      },
      maxRetries: 0,
    });
    try {
      await t.step("the dry run shows the tag each image will be written under", async () => {
        const run = await mirror(dir, config, { env, extra: ["--dry-run"] });
        assert.equal(run.code, 0, run.stderr);
        assert.deepEqual(run.report?.entries.map((e) => e.destination), expected.map((e) => e[0]));
        assert.deepEqual(await writes(reg), []);
      });

      await t.step("the run writes the tags; after the lifetime all resolve", async () => {
        const run = await mirror(dir, config, { env });
        assert.equal(run.code, 0, run.stderr);
        assert.deepEqual(
          run.report?.entries.map((e) => [e.destination, e.digest, e.status]),
          expected.map(([d, digest]) => [d, digest, "pushed"]),
        );
        await new Promise((r) => setTimeout(r, 1300));
        for (const [destination, digest] of expected) {
          const [repo, tag] = destination.slice(quay.host.length + 1).split(":");
          assert.equal((await client.manifestHead(repo, tag))?.digest, digest, destination);
          assert.equal((await client.manifestHead(repo, digest))?.digest, digest, destination);
        }
        for (const child of app.children ?? []) {
          assert.equal((await client.manifestHead("acme/app", child.digest))?.digest, child.digest);
        }
        assert.deepEqual(quay.refused, []);
      });

      await t.step("a re-run finds every tag and writes nothing", async () => {
        const before = (await writes(reg)).length;
        const run = await mirror(dir, config, { env });
        assert.equal(run.code, 0, run.stderr);
        assert.deepEqual(run.report?.entries.map((e) => e.status), ["exists", "exists", "exists"]);
        assert.equal((await writes(reg)).length, before);
      });

      await t.step("upstream moving the tag of a tag@digest image changes nothing", async () => {
        await pushTestImage(src, "team/web:2", { kind: "schema2", seed: 34 });
        const run = await mirror(dir, config, { env });
        assert.equal(run.code, 0, run.stderr);
        assert.deepEqual(run.report?.entries.map((e) => e.status), ["exists", "exists", "exists"]);
        assert.equal((await client.manifestHead("acme/web", "2"))?.digest, web.digest);
      });
    } finally {
      client.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
