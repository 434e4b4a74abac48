/**
 * The Quay double's own behaviours (shared/registry-protocols.md §5.14), each checked against the
 * double in front of a real docker-registry, so a feature test relying on one relies on something
 * that is there.
 */
import assert from "node:assert/strict";
import { Secrets } from "../../lib/log/redact.ts";
import { RegistryClient } from "../../lib/registry/registry_client.ts";
import { startQuayDouble } from "./quay_double.ts";
import { registryBinaryAvailable, startRegistry } from "./registry.ts";

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
