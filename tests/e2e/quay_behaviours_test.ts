/**
 * One config against the Quay double with every behaviour of shared/registry-protocols.md §5.14
 * at once: a digest-pinned multi-arch image, a tag@digest image and a tagged image go to an
 * organization a robot pushes into (the API token creates the repositories and grants it write)
 * and to an organization whose quota is full. The full organization fails at once, one line, no
 * write reaching it; the other completes, and after the temporary-tag lifetime every image there
 * still resolves by digest and by its tag.
 */
import assert from "node:assert/strict";
import { Secrets } from "../../lib/log/redact.ts";
import { pinnedDigestTag } from "../../lib/registry/reference.ts";
import { RegistryClient } from "../../lib/registry/registry_client.ts";
import { pushTestImage } from "../support/images.ts";
import { startQuayDouble } from "../support/quay_double.ts";
import { registryBinaryAvailable, startRegistry } from "../support/registry.ts";
import { mirror } from "../support/e2e_kit.ts";

const skip = registryBinaryAvailable() ? "" : " (ignored: docker-registry is not installed)";

Deno.test({
  name:
    `Quay as it really is: pinned digests, tag@digest, a robot and a full organization in one run${skip}`,
  ignore: Boolean(skip),
  async fn() {
    await using src = await startRegistry();
    await using reg = await startRegistry({ auth: "htpasswd" });
    await using quay = startQuayDouble(reg, {
      tokens: { tok: { user: "creator", scopes: ["repo:create", "repo:write", "repo:admin"] } },
      orgs: { acme: { creators: ["creator"] }, full: { creators: ["creator"] } },
      robots: { "acme+mirror": "robot-secret" },
      quotas: { full: { limitBytes: 500_000, usedBytes: 600_000 } },
      tempTagLifetimeSeconds: 1,
    });
    const dir = await Deno.makeTempDir({ prefix: "bb-quay-real-" });
    const app = await pushTestImage(src, "team/app:1.0", { kind: "oci-index", seed: 61 });
    const web = await pushTestImage(src, "team/web:2", { kind: "schema2", seed: 62 });
    const tool = await pushTestImage(src, "team/tool:3", { kind: "oci", seed: 63 });
    const quayTarget = (namespace: string) => ({
      url: quay.host,
      namespace,
      kind: "quay",
      apiToken: "${QUAY_TOKEN}",
    });
    const config = {
      registries: {
        // The host's credentials come from its first entry: the robot.
        prod: { ...quayTarget("acme"), username: "acme+mirror", password: "${ROBOT_TOKEN}" },
        full: quayTarget("full"),
      },
      log: { dir: "./logs" },
      operation: { retryDelay: 0.02, maxRetries: 1, apiTimeout: 5, engine: "registry" },
      images: {
        [`${src.host}/team/app@${app.digest}`]: { targets: ["prod", "full"] },
        [`${src.host}/team/web:2@${web.digest}`]: { targets: ["prod"] },
        [`${src.host}/team/tool:3`]: { targets: ["prod", "full"] },
      },
    };
    const env = { QUAY_TOKEN: "tok", ROBOT_TOKEN: "robot-secret" };
    const client = new RegistryClient({
      host: quay.host,
      scheme: "http",
      secrets: new Secrets(),
      credential: {
        kind: "basic",
        username: "acme+mirror",
        password: "robot-secret",
        source: "config",
      },
      maxRetries: 0,
    });
    try {
      const run = await mirror(dir, config, { env });
      assert.equal(run.code, 1, run.stderr);
      assert.deepEqual(run.report?.entries.map((e) => [e.destination, e.status, e.code]), [
        [`${quay.host}/acme/app:${pinnedDigestTag(app.digest)}`, "pushed", "IMAGE_PUSHED"],
        [`${quay.host}/full/app:${pinnedDigestTag(app.digest)}`, "failed", "IMAGE_QUOTA_EXCEEDED"],
        [`${quay.host}/acme/web:2`, "pushed", "IMAGE_PUSHED"],
        [`${quay.host}/acme/tool:3`, "pushed", "IMAGE_PUSHED"],
        [`${quay.host}/full/tool:3`, "failed", "IMAGE_QUOTA_EXCEEDED"],
      ]);
      // The full organization: one line naming it, nothing written there, nothing refused.
      const log = await Deno.readTextFile(`${dir}/logs/bananna-bot.log`);
      const lines = log.split("\n").filter((l) =>
        /\[IMAGE_QUOTA_EXCEEDED\] Plan: namespace/.test(l)
      );
      assert.equal(lines.length, 1, log);
      assert.match(lines[0], /\/full is over its quota: 600000 of 500000 bytes \(120\.0%\) used/);
      assert.deepEqual(
        (await reg.accessLog()).filter((l) => /^(PUT|POST|PATCH) \/v2\/full\//.test(l)),
        [],
      );
      // The robot pushed into repositories the token created (it was never refused a write).
      assert.deepEqual(quay.refused, []);
      for (const name of ["app", "web", "tool"]) {
        const repo = quay.repositories().find((r) => r.namespace === "acme" && r.name === name);
        assert.equal(repo?.createdBy, "creator", name);
        assert.equal(repo?.permissions?.["acme+mirror"], "write", name);
      }
      // After the temporary-tag lifetime every image resolves by digest and by its tag.
      await new Promise((r) => setTimeout(r, 1300));
      for (
        const [repo, tag, digest] of [
          ["acme/app", pinnedDigestTag(app.digest), app.digest],
          ["acme/web", "2", web.digest],
          ["acme/tool", "3", tool.digest],
        ]
      ) {
        assert.equal((await client.manifestHead(repo, tag))?.digest, digest, `${repo}:${tag}`);
        assert.equal(
          (await client.manifestHead(repo, digest))?.digest,
          digest,
          `${repo}@${digest}`,
        );
      }
      for (const child of app.children ?? []) {
        assert.equal((await client.manifestHead("acme/app", child.digest))?.digest, child.digest);
      }
      assert.deepEqual(quay.refused, []);
    } finally {
      client.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
