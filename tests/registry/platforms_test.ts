/**
 * lib/registry/platforms.ts: one child per wanted platform (docker's rule), attestation manifests
 * kept with their image, the rewritten index and what it says it was made from.
 */
import assert from "node:assert/strict";
import type { Descriptor } from "../../lib/registry/manifest.ts";
import { sha256Digest } from "../../lib/registry/manifest.ts";
import {
  pickPlatforms,
  REWRITE_PLATFORMS,
  REWRITE_SOURCE,
  rewriteIndex,
  rewrittenFrom,
} from "../../lib/registry/platforms.ts";

const M = "application/vnd.oci.image.manifest.v1+json";
const d = (n: number) => `sha256:${String(n).repeat(64).slice(0, 64)}`;

function child(n: number, platform: string, annotations?: Record<string, string>): Descriptor {
  const [os, architecture, variant] = platform.split("/");
  return {
    mediaType: M,
    digest: d(n),
    size: 500,
    platform: { os, architecture, ...(variant ? { variant } : {}) },
    ...(annotations ? { annotations } : {}),
  } as Descriptor;
}

const INDEX = [
  child(1, "linux/amd64"),
  child(2, "linux/arm64/v8"),
  child(3, "linux/arm/v6"),
  child(4, "linux/arm/v7"),
  child(5, "linux/s390x"),
  child(6, "unknown/unknown", {
    "vnd.docker.reference.digest": d(1),
    "vnd.docker.reference.type": "attestation-manifest",
  }),
  child(7, "unknown/unknown", {
    "vnd.docker.reference.digest": d(5),
    "vnd.docker.reference.type": "attestation-manifest",
  }),
];

Deno.test("pickPlatforms: one child per platform, attestations kept with their image", () => {
  const pick = pickPlatforms(INDEX, ["linux/amd64"]);
  assert.deepEqual(pick.kept.map((k) => k.digest), [d(1), d(6)]);
  assert.deepEqual(pick.keptPlatforms, ["linux/amd64"]);
  assert.deepEqual(pick.skippedPlatforms, [
    "linux/arm64/v8",
    "linux/arm/v6",
    "linux/arm/v7",
    "linux/s390x",
  ]);
  assert.deepEqual(pick.absent, []);
});

Deno.test("pickPlatforms: arm64 is arm64/v8; a variant chooses; without one the first listed", () => {
  assert.deepEqual(pickPlatforms(INDEX, ["linux/arm64"]).keptPlatforms, ["linux/arm64/v8"]);
  assert.deepEqual(pickPlatforms(INDEX, ["linux/arm/v7"]).keptPlatforms, ["linux/arm/v7"]);
  assert.deepEqual(pickPlatforms(INDEX, ["linux/arm"]).keptPlatforms, ["linux/arm/v6"]);
  assert.deepEqual(
    pickPlatforms([child(1, "linux/arm64")], ["linux/arm64/v8"]).keptPlatforms,
    ["linux/arm64"],
  );
  const none = pickPlatforms(INDEX, ["linux/ppc64le", "windows/amd64"]);
  assert.deepEqual(none.kept, []);
  assert.deepEqual(none.absent, ["linux/ppc64le", "windows/amd64"]);
});

Deno.test("rewriteIndex: the kept children in order, annotations naming source and platforms", async () => {
  const source = new TextEncoder().encode(JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.index.v1+json",
    manifests: INDEX,
    annotations: { "org.opencontainers.image.created": "2026-01-01" },
  }));
  const pick = pickPlatforms(INDEX, ["linux/s390x", "linux/amd64"]);
  const sourceDigest = await sha256Digest(source);
  const bytes = rewriteIndex(source, pick.kept, sourceDigest, [
    "linux/s390x",
    "linux/amd64",
  ]);
  const body = JSON.parse(new TextDecoder().decode(bytes));
  assert.deepEqual(body.manifests.map((m: Descriptor) => m.digest), [d(1), d(5), d(6), d(7)]);
  assert.equal(body.annotations["org.opencontainers.image.created"], "2026-01-01");
  assert.equal(body.annotations[REWRITE_SOURCE], sourceDigest);
  assert.equal(body.annotations[REWRITE_PLATFORMS], "linux/amd64,linux/s390x");
  assert.deepEqual(rewrittenFrom(bytes), {
    source: sourceDigest,
    platforms: ["linux/amd64", "linux/s390x"],
  });
  // Deterministic: the same input gives the same bytes (a re-run compares digests).
  assert.deepEqual(
    rewriteIndex(source, pick.kept, sourceDigest, ["linux/amd64", "linux/s390x"]),
    bytes,
  );
  assert.equal(rewrittenFrom(source), null);
  assert.equal(rewrittenFrom(new TextEncoder().encode("not json")), null);
});
