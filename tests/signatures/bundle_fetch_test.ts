/**
 * lib/signatures/bundle_fetch.ts on a real docker-registry (no referrers API: the fallback tag
 * path): a good bundle referrer, one listed but absent, and malformed referrers, each with its
 * code and message.
 */
import assert from "node:assert/strict";
import { MirrorError } from "../../lib/errors.ts";
import { Secrets } from "../../lib/log/redact.ts";
import { RegistryClient } from "../../lib/registry/registry_client.ts";
import { fetchImageBundles } from "../../lib/signatures/bundle_fetch.ts";
import {
  buildBundle,
  buildBundleReferrer,
  cosignSignStatement,
  pushBundleReferrer,
  subjectOf,
} from "../support/bundle_fixture.ts";
import { makeKey } from "../support/cosign_fixture.ts";
import { pushTestImage, sha256 } from "../support/images.ts";
import { registryBinaryAvailable, startRegistry } from "../support/registry.ts";

const skip = registryBinaryAvailable() ? "" : " (ignored: docker-registry is not installed)";

Deno.test({
  name:
    `fetchImageBundles reads bundle referrers through the fallback tag, refuses bad ones${skip}`,
  ignore: Boolean(skip),
  async fn(t) {
    await using reg = await startRegistry({ auth: "none" });
    const dir = await Deno.makeTempDir({ prefix: "bb-bundle-fetch-" });
    const client = new RegistryClient({
      host: reg.host,
      scheme: "http",
      maxRetries: 0,
      retryDelayMs: 1,
      maxManifestBytes: 4 * 1024 * 1024,
      secrets: new Secrets(),
    });
    try {
      const key = await makeKey(dir, "p256");
      const push = async (repo: string, seed: number, bundle: Uint8Array) => {
        const image = await pushTestImage(reg, `${repo}:1`, { kind: "oci", seed });
        const built = buildBundleReferrer(bundle, await subjectOf(reg, repo, image.digest));
        await pushBundleReferrer(reg, repo, built);
        return { digest: image.digest, referrer: sha256(built.manifest) };
      };
      const fetch = (repo: string, digest: string) =>
        fetchImageBundles(client, { repository: repo, digest });
      const refused = async (repo: string, digest: string, code: string, message: string) => {
        await assert.rejects(
          fetch(repo, digest),
          (e) => e instanceof MirrorError && e.code === code && e.message === message,
        );
      };

      await t.step("a good bundle referrer", async () => {
        const image = await pushTestImage(reg, "good:1", { kind: "oci", seed: 1 });
        const bundle = await buildBundle({
          key,
          statement: cosignSignStatement(`${reg.host}/good`, image.digest),
        });
        const built = buildBundleReferrer(bundle, await subjectOf(reg, "good", image.digest));
        await pushBundleReferrer(reg, "good", built);
        const found = await fetch("good", image.digest);
        assert.deepEqual(
          found.map((f) => [f.manifestDigest, f.via, f.bundle.material.kind]),
          [[sha256(built.manifest), "tag", "publicKey"]],
        );
      });

      await t.step("no fallback tag: no bundles", async () => {
        const image = await pushTestImage(reg, "none:1", { kind: "oci", seed: 2 });
        assert.deepEqual(await fetch("none", image.digest), []);
      });

      await t.step(
        "a bundle blob that is not JSON: IMAGE_SIGNATURE_INVALID naming it",
        async () => {
          const { digest, referrer } = await push("garbage", 3, new TextEncoder().encode("nope"));
          await refused(
            "garbage",
            digest,
            "IMAGE_SIGNATURE_INVALID",
            `${reg.host}/garbage@${referrer}: layers[0]: the bundle is not JSON`,
          );
        },
      );

      await t.step("a bundle blob past the cap: IMAGE_MANIFEST_TOO_LARGE", async () => {
        const big = new TextEncoder().encode(`{"pad":"${"x".repeat(130 * 1024)}"}`);
        const { digest, referrer } = await push("big", 4, big);
        await refused(
          "big",
          digest,
          "IMAGE_MANIFEST_TOO_LARGE",
          `${reg.host}/big@${referrer}: blob ${
            sha256(big)
          } is ${big.length} bytes, more than the 131072-byte cap`,
        );
      });
    } finally {
      client.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
