/**
 * The rule data shared by validate and the selector: which rule drops one tag on its own, and
 * which per-tag filters exist for a set of rules. (The selector over a full listing, the version
 * rule and checkTagRules are tested in tests/mirror/tag_selection_test.ts.)
 */
import assert from "node:assert/strict";
import {
  compileTagRules,
  tagDropReason,
  tagFilters,
  type TagRules,
} from "../../lib/config/tag_rules.ts";

Deno.test("tagDropReason() names the first rule that drops a tag on its own", async (t) => {
  const rows: [string, TagRules, { rule: string; reason: string } | null][] = [
    ["1.27.3", {}, null],
    ["1.27.3", { include: ["^1\\.27"], exclude: ["-rc"], semver: "^1.27", newest: 1 }, null],
    ["1.28.0", { include: ["^1\\.27"] }, {
      rule: "include",
      reason: "matches no include pattern (/^1\\.27/)",
    }],
    ["1.27.0-rc.1", { exclude: ["-rc"], semver: "^1" }, {
      rule: "exclude",
      reason: "matches exclude pattern /-rc/",
    }],
    ["2.0.0", { semver: "^1.27" }, {
      rule: "semver",
      reason: 'version 2.0.0 is outside "^1.27"',
    }],
    ["mainline", { semver: "^1.27" }, {
      rule: "semver",
      reason: "not a version; a semver range selects versions only",
    }],
    ["mainline", { newest: 3 }, {
      rule: "not-a-version",
      reason: "not a version; newest 3 ranks versions only",
    }],
    ["mainline", { exclude: ["alpine"] }, null],
  ];
  for (const [tag, rules, expected] of rows) {
    await t.step(`${tag} with ${JSON.stringify(rules)}`, () => {
      assert.deepEqual(tagDropReason(tag, compileTagRules(rules)), expected);
    });
  }
});

Deno.test("tagFilters() lists the per-tag rules written, in order, newest left out", async (t) => {
  const rows: [TagRules, string[]][] = [
    [{}, []],
    [{ mutable: ["1.27"] }, []],
    [{ newest: 2 }, ["not-a-version"]],
    [{ semver: "^1", newest: 2 }, ["semver"]],
    [{ newest: 2, exclude: ["a"], include: ["b"] }, ["include", "exclude", "not-a-version"]],
    [{ include: [], exclude: [] }, []],
  ];
  for (const [rules, expected] of rows) {
    await t.step(JSON.stringify(rules), () => {
      assert.deepEqual(tagFilters(compileTagRules(rules)).map((f) => f.rule), expected);
    });
  }
});
