/**
 * Digest-pinned images keep a tag: against the Quay double (a manifest PUT by digest alone
 * expires with its temporary tag, shared/registry-protocols.md §5.14) `name@sha256:...` is written
 * under `pinned-sha256-<hex>` and `name:tag@sha256:...` under `tag`, so after the temporary-tag
 * lifetime every mirrored image (and an index's children) still resolves by digest and by its
 * tag; the report and the dry run show the tag; a re-run writes nothing; the source tag of a
 * `tag@digest` image moving upstream changes nothing (the digest decides).
 */
import assert from "node:assert/strict";
import { pinnedDigestTag } from "../../lib/registry/reference.ts";
import { pushTestImage } from "../support/images.ts";
import { quayTarget, startQuayDouble } from "../support/quay_double.ts";
import {
  clientOf,
  registryBinaryAvailable,
  startRegistry,
  type TestRegistry,
} from "../support/registry.ts";
import { mirror, startDestination, writes } from "../support/e2e_kit.ts";

const skip = registryBinaryAvailable() ? "" : " (ignored: docker-registry is not installed)";

Deno.test({
  name:
    `digest-pinned images keep a tag on Quay: still there by digest and by tag after the temporary-tag lifetime; re-run writes nothing${skip}`,
  ignore: Boolean(skip),
  async fn(t) {
    await using src = await startRegistry();
    const app = await pushTestImage(src, "team/app:1.0", { kind: "oci-index", seed: 31 });
    const tool = await pushTestImage(src, "team/tool:x", { kind: "oci", seed: 32 });
    const web = await pushTestImage(src, "team/web:2", { kind: "schema2", seed: 33 });
    const env = (reg: TestRegistry) => ({
      QUAY_TOKEN: "tok-admin",
      QUAY_PASSWORD: reg.password ?? "",
    });
    /** A Quay of its own for one step: the double in front of a fresh registry, a run dir. */
    const startQuay = async () => {
      const dest = await startDestination();
      const reg = dest.reg;
      const quay = startQuayDouble(reg, {
        tokens: {
          "tok-admin": { user: "admin", scopes: ["org:admin", "repo:admin", "repo:create"] },
        },
        orgs: { acme: { admins: ["admin"] } },
        tempTagLifetimeSeconds: 1,
      });
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
      const expected = [
        [`${quay.host}/acme/app:${pinnedDigestTag(app.digest)}`, app.digest],
        [`${quay.host}/acme/tool:${pinnedDigestTag(tool.digest)}`, tool.digest],
        [`${quay.host}/acme/web:2`, web.digest],
      ];
      const client = clientOf(reg, quay.host);
      /** What a run leaves: each image under the tag it is written as (and web's latest), pushed straight in. */
      const seed = async () => {
        for (
          const [repoTag, image, kind] of [
            [`acme/app:${pinnedDigestTag(app.digest)}`, app, { kind: "oci-index", seed: 31 }],
            [`acme/tool:${pinnedDigestTag(tool.digest)}`, tool, { kind: "oci", seed: 32 }],
            ["acme/web:2", web, { kind: "schema2", seed: 33 }],
            ["acme/web:latest", web, { kind: "schema2", seed: 33 }],
          ] as const
        ) {
          assert.equal((await pushTestImage(reg, repoTag, kind)).digest, image.digest, repoTag);
        }
      };
      return {
        reg,
        quay,
        client,
        expected,
        seed,
        run: (extra: string[] = []) => mirror(dest.dir, config, { env: env(reg), extra }),
        async [Symbol.asyncDispose]() {
          client.close();
          await quay.stop();
          await dest[Symbol.asyncDispose]();
        },
      };
    };

    await t.step("the dry run shows the tag each image will be written under", async () => {
      await using q = await startQuay();
      const run = await q.run(["--dry-run"]);
      assert.equal(run.code, 0, run.stderr);
      assert.deepEqual(run.report?.entries.map((e) => e.destination), q.expected.map((e) => e[0]));
      assert.deepEqual(await writes(q.reg), []);
    });

    await t.step("the run writes the tags; after the lifetime all resolve", async () => {
      await using q = await startQuay();
      const run = await q.run();
      assert.equal(run.code, 0, run.stderr);
      assert.deepEqual(
        run.report?.entries.map((e) => [e.destination, e.digest, e.status]),
        q.expected.map(([d, digest]) => [d, digest, "pushed"]),
      );
      await new Promise((r) => setTimeout(r, 1300));
      for (const [destination, digest] of q.expected) {
        const [repo, tag] = destination.slice(q.quay.host.length + 1).split(":");
        assert.equal((await q.client.manifestHead(repo, tag))?.digest, digest, destination);
        assert.equal((await q.client.manifestHead(repo, digest))?.digest, digest, destination);
      }
      for (const child of app.children ?? []) {
        assert.equal(
          (await q.client.manifestHead("acme/app", child.digest))?.digest,
          child.digest,
        );
      }
      assert.deepEqual(q.quay.refused, []);
    });

    await t.step("a re-run finds every tag and writes nothing", async () => {
      await using q = await startQuay();
      await q.seed();
      const before = (await writes(q.reg)).length;
      const run = await q.run();
      assert.equal(run.code, 0, run.stderr);
      assert.deepEqual(run.report?.entries.map((e) => e.status), ["exists", "exists", "exists"]);
      assert.deepEqual((await writes(q.reg)).slice(before), []);
    });

    await t.step("upstream moving the tag of a tag@digest image changes nothing", async () => {
      await using q = await startQuay();
      await q.seed();
      await pushTestImage(src, "team/web:2", { kind: "schema2", seed: 34 });
      const run = await q.run();
      assert.equal(run.code, 0, run.stderr);
      assert.deepEqual(run.report?.entries.map((e) => e.status), ["exists", "exists", "exists"]);
      assert.equal((await q.client.manifestHead("acme/web", "2"))?.digest, web.digest);
    });
  },
});
