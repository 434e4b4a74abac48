import assert from "node:assert/strict";
import { chooseLatest, compareVersions, parseVersion } from "../../lib/mirror/latest.ts";

Deno.test("parseVersion() reads plain, v-prefixed and pre-release versions", () => {
  assert.deepEqual(parseVersion("1.25"), { parts: [1, 25] });
  assert.deepEqual(parseVersion("v1.8.2"), { parts: [1, 8, 2] });
  assert.deepEqual(parseVersion("3.9-rc1"), { parts: [3, 9], pre: "rc1" });
  assert.equal(parseVersion("alpine"), null);
  assert.equal(parseVersion("latest"), null);
});

Deno.test("compareVersions() orders numerically, pre-releases below releases", () => {
  const v = (s: string) => parseVersion(s) ?? assert.fail(s);
  assert.ok(compareVersions(v("1.10"), v("1.9")) > 0);
  assert.ok(compareVersions(v("1.25.0"), v("1.25")) === 0);
  assert.ok(compareVersions(v("2.0-rc1"), v("2.0")) < 0);
  assert.ok(compareVersions(v("v2"), v("1.99.99")) > 0);
});

// Tag selection (tag_rules.ts) ranks prereleases by semver precedence; latest must agree, or a
// `newest` selection of release candidates moves latest to rc.9 while rc.10 is the highest.
Deno.test("compareVersions() orders pre-releases by semver precedence, as tag selection does", () => {
  const v = (s: string) => parseVersion(s) ?? assert.fail(s);
  assert.ok(compareVersions(v("2.0.0-rc.10"), v("2.0.0-rc.9")) > 0);
  assert.ok(compareVersions(v("2.0.0-rc.2"), v("2.0.0-rc.2")) === 0);
  assert.ok(compareVersions(v("2.0.0-alpha"), v("2.0.0-alpha.1")) < 0);
  assert.ok(compareVersions(v("2.0.0-rc.1"), v("2.0.0-beta.11")) > 0);
  assert.deepEqual(chooseLatest({ candidates: ["2.0.0-rc.9", "2.0.0-rc.10"], current: null }), {
    action: "move",
    tag: "2.0.0-rc.10",
    order: "version",
  });
});

Deno.test("chooseLatest() follows the rule", async (t) => {
  const rows: [string, Parameters<typeof chooseLatest>[0], ReturnType<typeof chooseLatest>][] = [
    ["highest version, not config order", { candidates: ["1.10", "1.9"], current: null }, {
      action: "move",
      tag: "1.10",
      order: "version",
    }],
    ["config order when a tag is not a version", {
      candidates: ["bookworm", "alpine"],
      current: null,
    }, {
      action: "move",
      tag: "alpine",
      order: "config",
    }],
    ["never backwards when an older version is added", {
      candidates: ["1.0", "2.0", "1.5"],
      current: "2.0",
    }, {
      action: "keep",
      reason: "latest already points at 2.0",
    }],
    ["never below a higher tag latest holds now", { candidates: ["1.5"], current: "2.0" }, {
      action: "keep",
      reason: "latest points at 2.0, higher than 1.5; never moved backwards",
    }],
    ["moves forward", { candidates: ["1.0", "2.0"], current: "1.0" }, {
      action: "move",
      tag: "2.0",
      order: "version",
    }],
    ["ignores a configured latest tag", { candidates: ["latest"], current: null }, {
      action: "keep",
      reason: "no mirrored tag to point at",
    }],
  ];
  for (const [name, input, expected] of rows) {
    await t.step(name, () => assert.deepEqual(chooseLatest(input), expected));
  }
});
