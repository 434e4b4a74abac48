import assert from "node:assert/strict";
import {
  apiHost,
  formatReference,
  isLoopbackHost,
  isPinnedDigestTag,
  isValidRepository,
  isValidTag,
  parseReference,
  pinnedDigestTag,
  ReferenceError,
  validDigest,
} from "../../lib/registry/reference.ts";
import { ARTIFACT_TAG } from "../../lib/config/tag_rules.ts";
import { parseVersion } from "../../lib/mirror/latest.ts";

const D = "sha256:" + "a".repeat(64);

Deno.test("parseReference() normalises good references", async (t) => {
  const rows: [string, ReturnType<typeof parseReference>][] = [
    ["nginx", { registry: "docker.io", repository: "library/nginx", tag: "latest" }],
    ["nginx:1.25", { registry: "docker.io", repository: "library/nginx", tag: "1.25" }],
    ["docker.io/library/nginx:1.25", {
      registry: "docker.io",
      repository: "library/nginx",
      tag: "1.25",
    }],
    ["docker.io/nginx", { registry: "docker.io", repository: "library/nginx", tag: "latest" }],
    ["index.docker.io/bitnami/redis:7", {
      registry: "docker.io",
      repository: "bitnami/redis",
      tag: "7",
    }],
    ["myhost/app", { registry: "docker.io", repository: "myhost/app", tag: "latest" }],
    ["localhost/app:1", { registry: "localhost", repository: "app", tag: "1" }],
    ["localhost:5000", { registry: "docker.io", repository: "library/localhost", tag: "5000" }],
    ["127.0.0.1:5000/ns/app:v1", { registry: "127.0.0.1:5000", repository: "ns/app", tag: "v1" }],
    ["[::1]:5000/app:1", { registry: "[::1]:5000", repository: "app", tag: "1" }],
    ["registry.k8s.io/pause:3.9", { registry: "registry.k8s.io", repository: "pause", tag: "3.9" }],
    ["quay.io/prometheus/node-exporter:v1.8.2", {
      registry: "quay.io",
      repository: "prometheus/node-exporter",
      tag: "v1.8.2",
    }],
    [`ghcr.io/org/app@${D}`, { registry: "ghcr.io", repository: "org/app", digest: D }],
    [`nginx:1.25@${D}`, {
      registry: "docker.io",
      repository: "library/nginx",
      tag: "1.25",
      digest: D,
    }],
    ["a/b__c/d-----e.f_g:T_.-x", {
      registry: "docker.io",
      repository: "a/b__c/d-----e.f_g",
      tag: "T_.-x",
    }],
    ["MyHost/app", { registry: "MyHost", repository: "app", tag: "latest" }],
  ];
  for (const [input, expected] of rows) {
    await t.step(input, () => assert.deepEqual(parseReference(input), expected));
  }
});

Deno.test("parseReference() rejects malformed references with the reason", async (t) => {
  const rows: [string, RegExp][] = [
    ["", /empty/],
    [" nginx", /spaces/],
    ["Nginx:1", /lowercase/],
    ["docker.io/Library/nginx", /lowercase/],
    ["nginx:-1", /tag/],
    ["nginx:" + "x".repeat(129), /tag/],
    ["nginx@sha256:abc", /64 lowercase hex/],
    [`nginx@sha256:${"A".repeat(64)}`, /64 lowercase hex/],
    ["nginx@md5:" + "a".repeat(32), /unsupported digest algorithm/],
    ["a//b", /empty path component/],
    ["a/b_/c", /path component/],
    ["-host.io/app", /bad domain/],
    ["host.io:99999/app", /port/],
    ["a".repeat(64), /64-byte hexadecimal/],
    ["quay.io/", /missing repository|empty path/],
  ];
  for (const [input, pattern] of rows) {
    await t.step(JSON.stringify(input).slice(0, 40), () => {
      assert.throws(() => parseReference(input), (e: unknown) => {
        assert.ok(e instanceof ReferenceError);
        assert.match(e.message, pattern);
        return true;
      });
    });
  }
});

Deno.test("formatReference() gives the full form back", () => {
  assert.equal(formatReference(parseReference("nginx")), "docker.io/library/nginx:latest");
  assert.equal(formatReference(parseReference(`ghcr.io/org/app@${D}`)), `ghcr.io/org/app@${D}`);
});

Deno.test("apiHost() maps Docker Hub to its API host; isLoopbackHost() knows loopback", () => {
  assert.equal(apiHost("docker.io"), "registry-1.docker.io");
  assert.equal(apiHost("quay.io"), "quay.io");
  for (const host of ["localhost", "localhost:5000", "127.0.0.1", "127.3.2.1:80", "[::1]:5000"]) {
    assert.ok(isLoopbackHost(host), host);
  }
  for (const host of ["quay.io", "10.0.0.1:5000", "127.example.com"]) {
    assert.ok(!isLoopbackHost(host), host);
  }
});

Deno.test("validDigest() accepts only sha256 and sha512 digests of lowercase hex", async (t) => {
  const good = [`sha256:${"0".repeat(64)}`, `sha512:${"f".repeat(128)}`];
  const bad: unknown[] = [
    "a:b/../../other/repo/manifests/v1",
    `sha256:${"a".repeat(63)}`,
    `sha256:${"a".repeat(65)}`,
    `sha256:${"A".repeat(64)}`,
    `sha384:${"a".repeat(96)}`,
    `sha512:${"a".repeat(64)}`,
    `sha256:${"a".repeat(64)}\n`,
    `sha256:${"a".repeat(62)}/.`,
    "",
    null,
    5,
  ];
  for (const value of good) {
    await t.step(`good ${value.slice(0, 12)}`, () => assert.equal(validDigest(value), true));
  }
  for (const value of bad) {
    await t.step(`bad ${JSON.stringify(value)?.slice(0, 40)}`, () => {
      assert.equal(validDigest(value), false);
    });
  }
});

Deno.test("isValidRepository() and isValidTag() refuse anything that could steer a URL", () => {
  for (const ok of ["app", "team/app", "a/b/c", "a.b_c__d-e"]) {
    assert.equal(isValidRepository(ok), true, ok);
  }
  for (
    const bad of ["", "../x", "a/../b", "a//b", "A", "a/", "a?b", "a%2fb", "x".repeat(256), null]
  ) {
    assert.equal(isValidRepository(bad), false, String(bad));
  }
  for (const ok of ["1", "v1.0", "latest", "A_b-c.d"]) assert.equal(isValidTag(ok), true, ok);
  for (const bad of ["", "..", ".x", "-x", "a/b", "a?b", "a:b", "x".repeat(129), 1]) {
    assert.equal(isValidTag(bad), false, String(bad));
  }
});

Deno.test("pinnedDigestTag(): a valid tag of at most 128 characters, the same every time, never a cosign, referrers or version tag", () => {
  const digests = [
    D,
    `sha256:${"0123456789abcdef".repeat(4)}`,
    `sha512:${"f".repeat(128)}`,
    `sha512:${"0123456789abcdef".repeat(8)}`,
  ];
  const tags = digests.map(pinnedDigestTag);
  assert.equal(tags[0], `pinned-sha256-${"a".repeat(64)}`);
  assert.equal(tags[2], `pinned-sha512-${"f".repeat(114)}`);
  for (const [i, tag] of tags.entries()) {
    assert.ok(isValidTag(tag), tag);
    assert.ok(tag.length <= 128, tag);
    assert.equal(pinnedDigestTag(digests[i]), tag, "idempotent");
    assert.ok(isPinnedDigestTag(tag), tag);
    assert.equal(parseVersion(tag), null, "never a version, so never chosen for latest");
    const hex = digests[i].slice(7);
    const algorithm = digests[i].slice(0, 6);
    for (const suffix of ["", ".sig", ".att", ".sbom"]) {
      assert.notEqual(tag, `${algorithm}-${hex}${suffix}`);
    }
    assert.equal(ARTIFACT_TAG.test(tag), false);
  }
  assert.equal(new Set(tags).size, tags.length);
  for (
    const tag of [
      "latest",
      "1.2.3",
      `sha256-${"a".repeat(64)}`,
      `sha256-${"a".repeat(64)}.sig`,
      "pinned-sha256-abc",
    ]
  ) {
    assert.equal(isPinnedDigestTag(tag), false, tag);
  }
  assert.throws(() => pinnedDigestTag("sha256:abc"), RangeError);
  assert.throws(() => pinnedDigestTag("a:b/../../x"), RangeError);
});
