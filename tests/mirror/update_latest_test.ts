/**
 * `updateLatest()` against a real registry: what the plan saw of `latest` keeps it without a
 * request when it already points at the chosen tag; anything else is decided on a fresh HEAD.
 */
import assert from "node:assert/strict";
import { Secrets } from "../../lib/log/redact.ts";
import type { LatestGroup } from "../../lib/mirror/run_plan.ts";
import { updateLatest } from "../../lib/mirror/update_latest.ts";
import { RegistryClient } from "../../lib/registry/registry_client.ts";
import { headDigest, pushTestImage } from "../support/images.ts";
import { registryBinaryAvailable, startRegistry } from "../support/registry.ts";

const skip = registryBinaryAvailable() ? "" : " (ignored: docker-registry is not installed)";

Deno.test({
  name:
    `updateLatest() keeps latest as the plan saw it without a request; a move reads again${skip}`,
  ignore: Boolean(skip),
  sanitizeResources: false,
  fn: async (t) => {
    await using reg = await startRegistry();
    const one = await pushTestImage(reg, "m/app:1.0", { kind: "oci", seed: 1, layers: 1 });
    const two = await pushTestImage(reg, "m/app:2.0", { kind: "oci", seed: 2, layers: 1 });
    await pushTestImage(reg, "m/app:latest", { kind: "oci", seed: 2, layers: 1 });
    const client = new RegistryClient({ host: reg.host, scheme: "http", secrets: new Secrets() });
    try {
      const group = (seen?: string | null): LatestGroup => ({
        target: "dr",
        registry: reg.host,
        repository: "m/app",
        candidates: [{ tag: "1.0", digest: one.digest }, { tag: "2.0", digest: two.digest }],
        ...(seen === undefined ? {} : { seen }),
      });
      const requests = async () => (await reg.accessLog()).length;
      await t.step("seen at the chosen tag: kept, no request", async () => {
        const before = await requests();
        const outcome = await updateLatest(client, group(two.digest));
        assert.equal(outcome.code, "IMAGE_LATEST_KEPT", outcome.message);
        assert.equal(await requests(), before);
      });
      await t.step("not seen: one HEAD, kept", async () => {
        const before = await requests();
        const outcome = await updateLatest(client, group());
        assert.equal(outcome.code, "IMAGE_LATEST_KEPT", outcome.message);
        assert.equal(await requests(), before + 1);
      });
      await t.step("seen elsewhere (the rule would move it): decided on a fresh HEAD", async () => {
        // The plan saw latest at 1.0; it is at 2.0 by now: the fresh HEAD says keep, nothing written.
        const before = await requests();
        const outcome = await updateLatest(client, group(one.digest));
        assert.equal(outcome.code, "IMAGE_LATEST_KEPT", outcome.message);
        assert.deepEqual((await reg.accessLog()).slice(before), [
          "HEAD /v2/m/app/manifests/latest 200",
        ]);
      });
      await t.step("seen absent, but there by now: a fresh HEAD, no write", async () => {
        const before = await requests();
        const outcome = await updateLatest(client, group(null));
        assert.equal(outcome.code, "IMAGE_LATEST_KEPT", outcome.message);
        assert.equal(await requests(), before + 1);
        assert.equal(await headDigest(reg, "m/app:latest"), two.digest);
      });
    } finally {
      client.close();
    }
  },
});
