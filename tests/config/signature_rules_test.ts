/**
 * lib/config/signature_rules.ts: the effective signatures mode (as loadConfig resolves it and the
 * plan hands it to each task), the media type rule, and each rule's problem.
 */
import assert from "node:assert/strict";
import { loadConfig } from "../../lib/config/load_config.ts";
import {
  checkSignatureRules,
  effectiveSignatures,
  isMediaType,
} from "../../lib/config/signature_rules.ts";

Deno.test("effectiveSignatures: written wins; unset is copy (registry) or skip (docker)", () => {
  assert.equal(effectiveSignatures({ engine: "registry" }), "copy");
  assert.equal(effectiveSignatures({ engine: "docker" }), "skip");
  assert.equal(effectiveSignatures({ engine: "registry", signatures: "skip" }), "skip");
  assert.equal(effectiveSignatures({ engine: "docker", signatures: "copy" }), "copy");
  assert.equal(effectiveSignatures({ engine: "registry", signatures: "require" }), "require");
});

Deno.test("loadConfig resolves operation.signatures to the effective mode", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bb-sigmode-" });
  try {
    const load = async (operation: string) => {
      await Deno.writeTextFile(
        `${dir}/c.yaml`,
        `registries:\n  dr: { url: "127.0.0.1:5999", namespace: m, kind: registry }\nlog: { dir: ./logs }\noperation: { platform: linux/amd64, ${operation} }\nimages:\n  "127.0.0.1:5998/a/b:1": { targets: [dr] }\n`,
      );
      return await loadConfig(`${dir}/c.yaml`, { env: {}, cwd: dir });
    };
    assert.equal((await load("engine: registry")).operation.signatures, "copy");
    assert.equal((await load("engine: docker")).operation.signatures, "skip");
    assert.equal(
      (await load("engine: registry, signatures: require")).operation.signatures,
      "require",
    );
    const warned = await load("engine: docker, signatures: copy");
    assert.equal(warned.operation.signatures, "copy");
    assert.deepEqual(warned.warnings.map((w) => w.path), ["operation.signatures"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("isMediaType: type/subtype with optional parameters", () => {
  for (
    const good of [
      "application/vnd.dev.sigstore.bundle.v0.3+json",
      "application/vnd.dev.sigstore.bundle+json;version=0.3",
      "text/spdx",
      "application/vnd.cyclonedx+json",
      'text/plain; charset="utf-8"',
    ]
  ) assert.equal(isMediaType(good), true, good);
  for (
    const bad of ["spdx", "text/", "/json", "text/spdx;x", "a/b/c", "text/sp dx", "*/*x", ""]
  ) assert.equal(isMediaType(bad), false, bad);
});

Deno.test("checkSignatureRules: one problem per rule, with its path and severity", () => {
  assert.deepEqual(checkSignatureRules({ engine: "docker" }), []);
  assert.deepEqual(checkSignatureRules({ engine: "registry", signatures: "require" }), []);
  assert.deepEqual(
    checkSignatureRules({ engine: "docker", signatures: "copy" }).map((p) => [p.path, p.severity]),
    [["operation.signatures", "warning"]],
  );
  assert.deepEqual(
    checkSignatureRules({ engine: "docker", signatures: "require" }).map((p) => [
      p.path,
      p.severity,
    ]),
    [["operation.signatures", undefined]],
  );
  assert.deepEqual(
    checkSignatureRules({ engine: "registry", artifactTypes: ["text/spdx", "x", "a/b"] }).map((
      p,
    ) => p.path),
    ["operation.artifactTypes[1]"],
  );
});
