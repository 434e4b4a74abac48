/**
 * `export --since` when upstream adds a tag for a digest the earlier export already carried (a
 * re-tag: `stable` -> the image `1.0` is), for an image and a multi-arch index, as subprocesses
 * against real registries (the source stopped before any import): the incremental export carries
 * the manifests of every image it lists (index, children) and none of the earlier config or layer
 * blobs (nor the signature manifest: its cosign tag names the digest); imported after its
 * predecessor it lands the new tags with the source digests, writing only their manifest PUTs;
 * imported alone it fails naming the predecessor.
 */
import assert from "node:assert/strict";
import { airgapCli, registryConfig, statuses, writes } from "../support/e2e_kit.ts";
import {
  buildSignatureManifest,
  makeKey,
  opensslSign,
  pushSignatureManifest,
  simpleSigningPayload,
} from "../support/cosign_fixture.ts";
import { headDigest, pushTestImage } from "../support/images.ts";
import { registryBinaryAvailable, startRegistry } from "../support/registry.ts";

const skip = registryBinaryAvailable() ? "" : " (ignored: docker-registry is not installed)";

Deno.test({
  name:
    `export --since with a re-tagged digest the earlier export carried: in order the tag lands${skip}`,
  ignore: Boolean(skip),
  async fn() {
    const src = await startRegistry({ auth: "none" });
    await using dst = await startRegistry({ auth: "htpasswd" });
    await using fresh = await startRegistry({ auth: "htpasswd" });
    const dir = await Deno.makeTempDir({ prefix: "bb-airgap-retag-" });
    const env = { DST_PASSWORD: dst.password ?? "" };
    try {
      const app = await pushTestImage(src, "team/app:1.0", { kind: "oci", seed: 31 });
      const multi = await pushTestImage(src, "team/multi:1.0", { kind: "oci-index", seed: 32 });
      // app is signed: its .sig names the digest, so `stable` shares it with `1.0`.
      const key = await makeKey(dir, "p256");
      const payload = simpleSigningPayload(`${src.host}/team/app`, app.digest);
      const signature = await opensslSign(key.privateKeyFile, payload);
      await pushSignatureManifest(
        src,
        "team/app",
        app.digest,
        buildSignatureManifest([{ payload, signature }]),
      );
      const images: Record<string, unknown> = {
        [`${src.host}/team/app:1.0`]: { targets: ["dr"] },
        [`${src.host}/team/multi:1.0`]: { targets: ["dr"] },
      };
      const one = await airgapCli(dir, ["export", "--to", `${dir}/one`], {
        config: registryConfig(dst, images),
        env,
      });
      assert.equal(one.code, 0, one.stderr + one.stdout);
      const oneManifest = JSON.parse(await Deno.readTextFile(`${dir}/one/bananna-export.json`));

      // Upstream tags the same images `stable` (same bytes: same digests).
      const appStable = await pushTestImage(src, "team/app:stable", { kind: "oci", seed: 31 });
      const multiStable = await pushTestImage(src, "team/multi:stable", {
        kind: "oci-index",
        seed: 32,
      });
      assert.equal(appStable.digest, app.digest);
      assert.equal(multiStable.digest, multi.digest);
      images[`${src.host}/team/app:stable`] = { targets: ["dr"] };
      images[`${src.host}/team/multi:stable`] = { targets: ["dr"] };
      const config = registryConfig(dst, images);
      const two = await airgapCli(
        dir,
        ["export", "--to", `${dir}/two`, "--since", `${dir}/one/bananna-export.json`],
        { config, env },
      );
      assert.equal(two.code, 0, two.stderr + two.stdout);
      const twoManifest = JSON.parse(await Deno.readTextFile(`${dir}/two/bananna-export.json`));
      // The manifests of every listed image (the index and its children); no config, no layer.
      const manifests = [
        app.digest,
        multi.digest,
        ...(multi.children ?? []).map((c) => c.digest),
      ].sort();
      assert.equal(manifests.length, 4);
      const onDisk = [...Deno.readDirSync(`${dir}/two/blobs/sha256`)]
        .map((e) => `sha256:${e.name}`).sort();
      assert.deepEqual(onDisk, manifests);
      assert.deepEqual(twoManifest.blobs.map((b: { digest: string }) => b.digest), manifests);
      const inherited = new Set(twoManifest.inherited.map((b: { digest: string }) => b.digest));
      for (const digest of [app.configDigest, ...app.layers, ...multi.layers]) {
        assert.ok(inherited.has(digest), `${digest} inherited`);
      }
      assert.deepEqual(
        twoManifest.images.map((i: { ref: string; digest: string }) => `${i.ref} ${i.digest}`),
        [
          `${src.host}/team/app:1.0 ${app.digest}`,
          `${src.host}/team/app:stable ${app.digest}`,
          `${src.host}/team/multi:1.0 ${multi.digest}`,
          `${src.host}/team/multi:stable ${multi.digest}`,
        ],
      );
      await src.stop();

      // Alone (its predecessor not imported): every image fails naming that export.
      const freshConfig = registryConfig(fresh, images);
      const freshEnv = { DST_PASSWORD: fresh.password ?? "" };
      const alone = await airgapCli(dir, ["import", "--from", `${dir}/two`], {
        config: freshConfig,
        env: freshEnv,
      });
      assert.equal(alone.code, 1, alone.stderr + alone.stdout);
      assert.deepEqual(statuses(alone.report).sort(), [
        "mirror/app:1.0 failed",
        "mirror/app:stable failed",
        "mirror/multi:1.0 failed",
        "mirror/multi:stable failed",
      ]);
      for (const entry of alone.report?.entries ?? []) {
        assert.equal(entry.code, "IMAGE_PREDECESSOR_MISSING");
        assert.match(
          entry.error ?? "",
          new RegExp(`the earlier export ${oneManifest.id} .*import that export first`),
        );
      }
      assert.equal(await headDigest(fresh, "mirror/app:stable"), null);
      assert.equal(await headDigest(fresh, "mirror/multi:stable"), null);

      // In order: the first lands everything; the second only writes the two new tags.
      const first = await airgapCli(dir, ["import", "--from", `${dir}/one`], { config, env });
      assert.equal(first.code, 0, first.stderr + first.stdout);
      assert.deepEqual(statuses(first.report), [
        "mirror/app:1.0 pushed",
        "mirror/multi:1.0 pushed",
      ]);
      const before = (await writes(dst)).length;
      const second = await airgapCli(dir, ["import", "--from", `${dir}/two`], { config, env });
      assert.equal(second.code, 0, second.stderr + second.stdout);
      assert.deepEqual(statuses(second.report), [
        "mirror/app:1.0 exists",
        "mirror/multi:1.0 exists",
        "mirror/app:stable pushed",
        "mirror/multi:stable pushed",
      ]);
      // app's .sig (carried by the first export, landed by its import) counts for both tags.
      assert.deepEqual(second.report?.entries.map((e) => e.signatures), [1, 0, 1, 0]);
      assert.equal(await headDigest(dst, "mirror/app:stable"), app.digest);
      assert.equal(await headDigest(dst, "mirror/multi:stable"), multi.digest);
      const written = (await writes(dst)).slice(before).map((l) => l.split(" ").slice(0, 2));
      assert.deepEqual(written.sort(), [
        ["PUT", "/v2/mirror/app/manifests/stable"],
        ["PUT", "/v2/mirror/multi/manifests/stable"],
      ]);
    } finally {
      await src.stop().catch(() => {});
      await Deno.remove(dir, { recursive: true });
    }
  },
});
