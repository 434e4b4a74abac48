/**
 * The tag selector against a generated listing of ~250 tags. Every generated tag carries what the
 * test itself says it is (its version numbers and prerelease, or none), and the expected sets are
 * computed from that by plain predicates, or written out; never by calling the selector.
 */
import assert from "node:assert/strict";
import {
  checkTagRules,
  compileTagRules,
  parseTagVersion,
  selectTags,
  type TagRules,
  TagRulesError,
  type TagSelection,
} from "../../lib/mirror/tag_selection.ts";

type Family =
  | "release"
  | "variant"
  | "prerelease"
  | "short"
  | "v-prefix"
  | "date"
  | "word"
  | "odd"
  | "sha";

/** A generated tag and what the test knows about it. */
interface Listed {
  tag: string;
  family: Family;
  /** [major, minor, patch] with missing parts as 0; null when the tag is not a version. */
  v: [number, number, number] | null;
  /** The prerelease after the first "-", or null. */
  pre: string | null;
  /** Numeric parts written (1 to 3). */
  parts: number;
}

/** mulberry32: a seeded PRNG so the listing is the same on every run. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

function generateListing(): Listed[] {
  const out: Listed[] = [];
  const add = (
    tag: string,
    family: Family,
    v: [number, number, number] | null = null,
    pre: string | null = null,
    parts = 3,
  ) => out.push({ tag, family, v, pre, parts });
  for (const m of range(20, 27)) {
    for (const p of range(0, 5)) {
      add(`1.${m}.${p}`, "release", [1, m, p]);
      add(`1.${m}.${p}-alpine`, "variant", [1, m, p], "alpine");
      if (m >= 25) add(`1.${m}.${p}-perl`, "variant", [1, m, p], "perl");
      if (m >= 24) add(`1.${m}.${p}-alpine-slim`, "variant", [1, m, p], "alpine-slim");
      if (m >= 26) add(`1.${m}.${p}-bookworm`, "variant", [1, m, p], "bookworm");
    }
    add(`1.${m}`, "short", [1, m, 0], null, 2);
  }
  for (const m of range(21, 28)) {
    add(`1.${m}.0-rc.1`, "prerelease", [1, m, 0], "rc.1");
    add(`1.${m}.0-rc.2`, "prerelease", [1, m, 0], "rc.2");
  }
  add("2.0.0-beta.1", "prerelease", [2, 0, 0], "beta.1");
  add("2.0.0-rc.1", "prerelease", [2, 0, 0], "rc.1");
  add("0.9.0", "release", [0, 9, 0]);
  add("2.0.0", "release", [2, 0, 0]);
  add("2.0.1", "release", [2, 0, 1]);
  add("2.1.0", "release", [2, 1, 0]);
  add("1", "short", [1, 0, 0], null, 1);
  add("2", "short", [2, 0, 0], null, 1);
  add("1.26-alpine", "variant", [1, 26, 0], "alpine", 2);
  add("1.27-alpine", "variant", [1, 27, 0], "alpine", 2);
  for (const p of range(0, 5)) add(`v1.19.${p}`, "v-prefix", [1, 19, p]);
  add("v1.27.5", "v-prefix", [1, 27, 5]);
  add("v2", "v-prefix", [2, 0, 0], null, 1);
  add("20241101", "date", [20241101, 0, 0], null, 1);
  for (const word of ["latest", "stable", "mainline", "edge", "alpine", "bookworm"]) {
    add(word, "word");
  }
  for (const word of ["stable-alpine", "mainline-alpine", "stable-perl", "mainline-bookworm"]) {
    add(word, "word");
  }
  // Look like versions, are not: four parts, leading zero, capital V, two v's, underscore,
  // a prerelease number with a leading zero, a trailing dot.
  for (const odd of ["1.27.3.1", "01.27.3", "V1.27.3", "vv1.27.3", "1.27_3", "1.27.3-rc.01"]) {
    add(odd, "odd");
  }
  add("1.27.", "odd");
  const random = prng(12);
  const hex = (n: number) => {
    for (;;) {
      const s = Array.from({ length: n }, () => "0123456789abcdef"[Math.floor(random() * 16)])
        .join("");
      if (/[a-f]/.test(s)) return s;
    }
  };
  for (let i = 0; i < 20; i++) add(`sha-${hex(7)}`, "sha");
  for (let i = 0; i < 20; i++) add(hex(12), "sha");
  const tags = new Set(out.map((e) => e.tag));
  assert.equal(tags.size, out.length, "generated tags are distinct");
  // A registry lists tags in lexical order (distribution sorts them).
  return out.sort((a, b) => (a.tag < b.tag ? -1 : a.tag > b.tag ? 1 : 0));
}

const LISTING = generateListing();
const TAGS = LISTING.map((e) => e.tag);
const INDEX = new Map(TAGS.map((tag, i) => [tag, i]));

/** The oracle's version order: numbers, then release above prerelease, prereleases by text
 * (enough for the prereleases generated here: no numeric identifier above 9), then more parts
 * written, then listing order. */
function oracleOrder(a: Listed, b: Listed): number {
  const av = a.v as number[];
  const bv = b.v as number[];
  for (let i = 0; i < 3; i++) if (av[i] !== bv[i]) return bv[i] - av[i];
  if (a.pre !== b.pre) {
    if (a.pre === null) return -1;
    if (b.pre === null) return 1;
    return a.pre < b.pre ? 1 : -1;
  }
  return b.parts - a.parts || (INDEX.get(a.tag) as number) - (INDEX.get(b.tag) as number);
}

function atLeast(v: number[], floor: number[]): boolean {
  for (let i = 0; i < 3; i++) if (v[i] !== floor[i]) return v[i] > floor[i];
  return true;
}

function inListingOrder(keep: (e: Listed) => boolean): string[] {
  return LISTING.filter(keep).map((e) => e.tag);
}

function inVersionOrder(keep: (e: Listed) => boolean): string[] {
  return LISTING.filter(keep).sort(oracleOrder).map((e) => e.tag);
}

const isVersion = (e: Listed) => e.v !== null;
const isRelease = (e: Listed) => e.v !== null && e.pre === null;

/** Invariants of every selection: the listing is split into selected and dropped, once each, and
 * the steps add up. */
function assertConsistent(result: TagSelection, listed: readonly string[]): void {
  const distinct = [...new Set(listed)];
  assert.equal(result.listed, distinct.length);
  const dropped = result.dropped.map((d) => d.tag);
  assert.deepEqual([...result.selected, ...dropped].sort(), [...distinct].sort());
  let input = distinct.length;
  for (const step of result.steps) {
    assert.equal(step.kept + step.dropped, input, `step ${step.rule}`);
    assert.equal(
      step.dropped,
      result.dropped.filter((d) => d.rule === step.rule).length,
      `step ${step.rule}`,
    );
    input = step.kept;
  }
  assert.equal(input, result.selected.length);
}

Deno.test("the generated listing has ~250 tags of every kind", () => {
  assert.ok(LISTING.length >= 240 && LISTING.length <= 260, `${LISTING.length} tags`);
  const families = new Set(LISTING.map((e) => e.family));
  assert.equal(families.size, 9);
});

Deno.test("selectTags() selects exactly the expected set for each rule alone and combined", async (t) => {
  const rows: [string, TagRules, string[]][] = [
    ["no rules: everything, listing order", {}, TAGS],
    ["empty include list: no include rule", { include: [] }, TAGS],
    [
      "include alone: listing order",
      { include: ["^1\\.27\\.\\d+$"] },
      inListingOrder((e) => e.family === "release" && e.v?.[1] === 27 && e.v[0] === 1),
    ],
    [
      "include: a tag matching any pattern passes",
      { include: ["^1\\.27\\.\\d+$", "^v"] },
      inListingOrder((e) =>
        (e.family === "release" && e.v?.[1] === 27 && e.v[0] === 1) || e.tag.startsWith("v")
      ),
    ],
    [
      "include is anchored only as written (1.27 matches 01.27.3, v1.27.5 and 1.27.)",
      { include: ["1.27"] },
      inListingOrder((e) =>
        [...e.tag].some((c, i) => c === "1" && e.tag[i + 2] === "2" && e.tag[i + 3] === "7")
      ),
    ],
    ["include that matches nothing", { include: ["^nope$"] }, []],
    [
      "exclude alone: listing order",
      { exclude: ["-", "^v"] },
      inListingOrder((e) => !e.tag.includes("-") && !e.tag.startsWith("v")),
    ],
    [
      "semver alone: releases in range, two-part tags padded, prereleases and non-versions out",
      { semver: ">=1.25.0 <2" },
      inVersionOrder((e) => isRelease(e) && atLeast(e.v as number[], [1, 25, 0]) && e.v?.[0] === 1),
    ],
    [
      "semver 1.27.x: ties (1.27.5, v1.27.5) in listing order, 1.27 below 1.27.0",
      { semver: "1.27.x" },
      ["1.27.5", "v1.27.5", "1.27.4", "1.27.3", "1.27.2", "1.27.1", "1.27.0", "1.27"],
    ],
    [
      "semver ^2: 2, v2 and 2.0.0 are one version, more parts first",
      { semver: "^2" },
      ["2.1.0", "2.0.1", "2.0.0", "2", "v2"],
    ],
    [
      "semver naming a prerelease admits prereleases of that major.minor.patch only",
      { semver: ">=1.27.0-0 <1.28.0-0" },
      inVersionOrder((e) =>
        isVersion(e) && e.v?.[0] === 1 && e.v[1] === 27 &&
        (e.pre === null || e.v[2] === 0)
      ),
    ],
    [
      "newest alone: non-versions dropped, a bare number is a version and ranks first",
      { newest: 5 },
      ["20241101", "2.1.0", "2.0.1", "2.0.0", "2"],
    ],
    [
      "newest with exclude: releases only",
      { exclude: ["^\\d{8}$", "-"], newest: 3 },
      ["2.1.0", "2.0.1", "2.0.0"],
    ],
    [
      "newest over one variant picked by include",
      { include: ["^1\\.2[67]\\.\\d+-alpine$"], newest: 4 },
      ["1.27.5-alpine", "1.27.4-alpine", "1.27.3-alpine", "1.27.2-alpine"],
    ],
    [
      "newest ranks prereleases below their release",
      { include: ["^1\\.2[78]\\.0"], newest: 6 },
      inVersionOrder((e) =>
        isVersion(e) && e.parts === 3 && e.v?.[0] === 1 && e.v[2] === 0 &&
        (e.v[1] === 27 || e.v[1] === 28)
      ).slice(0, 6),
    ],
    [
      "newest tie: v2 is third of three equal versions",
      { include: ["^v?2(\\.0\\.0)?$"], newest: 2 },
      ["2.0.0", "2"],
    ],
    [
      "the issue's example: include, exclude, semver, newest",
      {
        semver: ">=1.25.0 <2",
        include: ["^\\d+\\.\\d+\\.\\d+$"],
        exclude: ["-rc", "alpine"],
        newest: 5,
      },
      ["1.27.5", "1.27.4", "1.27.3", "1.27.2", "1.27.1"],
    ],
    [
      "semver and newest larger than what is left: all of it, version order",
      { semver: "^2", newest: 10 },
      ["2.1.0", "2.0.1", "2.0.0", "2", "v2"],
    ],
    [
      "semver with exclude of two-part and v tags",
      { semver: "~1.26.2", exclude: ["^v", "^\\d+\\.\\d+$"] },
      inVersionOrder((e) =>
        isRelease(e) && e.family === "release" && e.v?.[1] === 26 && (e.v[2] >= 2)
      ),
    ],
    [
      "newest 1 of the v-prefixed series",
      { include: ["^v1\\.19\\."], newest: 1 },
      ["v1.19.5"],
    ],
  ];
  for (const [name, rules, expected] of rows) {
    await t.step(name, () => {
      const result = selectTags(TAGS, rules);
      assert.deepEqual(result.selected, expected);
      assertConsistent(result, TAGS);
    });
  }
});

Deno.test("selectTags() drops each tag with its rule and reason", () => {
  const listed = [
    "1.24.0",
    "1.25.0",
    "1.26.0-rc.1",
    "1.26.0",
    "1.27.0-alpine",
    "1.27.0",
    "latest",
    "nightly-2024",
  ];
  const result = selectTags(listed, {
    include: ["^\\d", "^latest$"],
    exclude: ["alpine"],
    semver: ">=1.25",
    newest: 1,
  });
  assert.deepEqual(result.selected, ["1.27.0"]);
  assert.deepEqual(result.dropped, [
    {
      tag: "nightly-2024",
      rule: "include",
      reason: "matches no include pattern (/^\\d/, /^latest$/)",
    },
    { tag: "1.27.0-alpine", rule: "exclude", reason: "matches exclude pattern /alpine/" },
    { tag: "1.24.0", rule: "semver", reason: 'version 1.24.0 is outside ">=1.25"' },
    {
      tag: "1.26.0-rc.1",
      rule: "semver",
      reason: 'version 1.26.0-rc.1 is outside ">=1.25": a prerelease, which a range admits only ' +
        "where it names a prerelease of 1.26.0",
    },
    {
      tag: "latest",
      rule: "semver",
      reason: "not a version; a semver range selects versions only",
    },
    { tag: "1.25.0", rule: "newest", reason: "not among the 1 newest (rank 3)" },
    { tag: "1.26.0", rule: "newest", reason: "not among the 1 newest (rank 2)" },
  ]);
  assert.deepEqual(result.steps, [
    { rule: "include", kept: 7, dropped: 1 },
    { rule: "exclude", kept: 6, dropped: 1 },
    { rule: "semver", kept: 3, dropped: 3 },
    { rule: "newest", kept: 1, dropped: 2 },
  ]);
});

Deno.test("selectTags() with newest and no semver drops non-versions as not-a-version", () => {
  const result = selectTags(TAGS, { newest: 3 });
  const notVersions = inListingOrder((e) => !isVersion(e));
  assert.deepEqual(
    result.dropped.filter((d) => d.rule === "not-a-version").map((d) => d.tag),
    notVersions,
  );
  assert.equal(
    result.dropped.find((d) => d.tag === "latest")?.reason,
    "not a version; newest 3 ranks versions only",
  );
  assert.deepEqual(result.steps.map((s) => s.rule), ["not-a-version", "newest"]);
  // Without newest and semver, the same tags pass.
  assert.ok(
    notVersions.every((tag) => selectTags(TAGS, { exclude: ["^x$"] }).selected.includes(tag)),
  );
});

Deno.test("selectTags() does not depend on listing order in version order, keeps it otherwise", () => {
  const random = prng(7);
  const shuffled = [...TAGS];
  for (let i = shuffled.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [shuffled[i], shuffled[j]] = [shuffled[j], shuffled[i]];
  }
  const rules: TagRules = { semver: ">=1.20", exclude: ["^v", "^\\d+(\\.\\d+)?$"] };
  assert.deepEqual(selectTags(shuffled, rules).selected, selectTags(TAGS, rules).selected);
  assert.deepEqual(
    selectTags(shuffled, { include: ["^sha-"] }).selected,
    shuffled.filter((tag) => tag.startsWith("sha-")),
  );
});

Deno.test("selectTags() counts a tag listed twice once", () => {
  const listed = ["1.0.0", "1.1.0", "1.0.0", "latest", "latest"];
  const result = selectTags(listed, { newest: 5 });
  assert.deepEqual(result.selected, ["1.1.0", "1.0.0"]);
  assert.deepEqual(result.dropped, [
    { tag: "latest", rule: "not-a-version", reason: "not a version; newest 5 ranks versions only" },
  ]);
  assertConsistent(result, listed);
  assert.deepEqual(selectTags(listed, {}).selected, ["1.0.0", "1.1.0", "latest"]);
});

Deno.test("selectTags() lists the selected mutable tags; compiled rules give the same result", () => {
  const rules: TagRules = { semver: "1.27.x", mutable: ["1.27", "1.26", "stable"] };
  const result = selectTags(TAGS, rules);
  assert.deepEqual(result.mutable, ["1.27"]);
  assert.deepEqual(selectTags(TAGS, compileTagRules(rules)), result);
  assert.deepEqual(selectTags(TAGS, {}).mutable, []);
});

Deno.test("parseTagVersion() follows the version rule", async (t) => {
  const rows: [string, string | null][] = [
    ["1.27.3", "1.27.3"],
    ["1.27", "1.27.0"],
    ["1", "1.0.0"],
    ["0", "0.0.0"],
    ["v1.27.3", "1.27.3"],
    ["v1", "1.0.0"],
    ["1.27.3-alpine", "1.27.3-alpine"],
    ["1.27-alpine", "1.27.0-alpine"],
    ["1.27.3-alpine3.20", "1.27.3-alpine3.20"],
    ["1.27.3-alpine-slim", "1.27.3-alpine-slim"],
    ["2.0.0-rc.1", "2.0.0-rc.1"],
    ["20241101", "20241101.0.0"],
    ["latest", null],
    ["stable-alpine", null],
    ["1.27.3.1", null],
    ["01.27.3", null],
    ["1.027", null],
    ["V1.27.3", null],
    ["vv1.27.3", null],
    ["1.27_3", null],
    ["1.27.", null],
    ["1.27.3-", null],
    ["1.27.3-rc.01", null],
    ["1.27.3-rc..1", null],
    ["sha-1a2b3c4", null],
    ["1a2b3c4d5e6f", null],
    ["9".repeat(17), null], // above Number.MAX_SAFE_INTEGER: semver refuses it
  ];
  for (const [tag, version] of rows) {
    await t.step(`${tag} -> ${version}`, () => {
      assert.equal(parseTagVersion(tag), version);
    });
  }
});

Deno.test("checkTagRules() reports each bad input with its path", async (t) => {
  const on = { updateLatest: true };
  const rows: [string, TagRules, { updateLatest: boolean }, [string, RegExp][]][] = [
    [
      "valid rules",
      {
        include: ["^\\d+\\.\\d+\\.\\d+$"],
        exclude: ["-rc", "alpine"],
        semver: ">=1.25.0 <2",
        newest: 5,
        mutable: ["1.27.3"],
      },
      on,
      [],
    ],
    ["no rules", {}, on, []],
    ["include regex that does not compile", { include: ["^ok$", "("] }, on, [
      ["include[1]", /^include pattern "\(" is not a valid regex: .*Unterminated group/],
    ]],
    ["exclude regex that does not compile", { exclude: ["[a-"] }, on, [
      [
        "exclude[0]",
        /^exclude pattern "\[a-" is not a valid regex: .*Unterminated character class/,
      ],
    ]],
    ["semver range that does not parse", { semver: ">=1.2.3 <" }, on, [
      ["semver", /^semver range ">=1\.2\.3 <" does not parse/],
    ]],
    ["semver range that is not a range", { semver: "bananas" }, on, [
      ["semver", /^semver range "bananas" does not parse/],
    ]],
    ["newest 0", { newest: 0 }, on, [["newest", /^newest must be an integer >= 1, got 0$/]]],
    ["newest -1", { newest: -1 }, on, [["newest", /got -1$/]]],
    ["newest 1.5", { newest: 1.5 }, on, [["newest", /got 1\.5$/]]],
    ["newest NaN", { newest: NaN }, on, [["newest", /got NaN$/]]],
    ["latest mutable while updateLatest is on", { mutable: ["latest"] }, on, [
      ["mutable[0]", /^"latest" cannot be mutable while operation\.updateLatest is on/],
    ]],
    ["latest mutable while updateLatest is off", { mutable: ["latest"] }, {
      updateLatest: false,
    }, []],
    ["mutable entry that is not a tag", { mutable: ["1.27", "bad tag!"] }, on, [
      ["mutable[1]", /^mutable entry "bad tag!" is not a valid tag/],
    ]],
    [
      "mutable entry that include never selects",
      {
        include: ["^\\d+\\.\\d+\\.\\d+$"],
        mutable: ["1.27"],
      },
      on,
      [["mutable[0]", /^mutable tag "1\.27" can never be selected by these rules \(include: /]],
    ],
    ["mutable entry that exclude drops", { exclude: ["alpine"], mutable: ["1.27-alpine"] }, on, [
      ["mutable[0]", /\(exclude: matches exclude pattern \/alpine\/\)$/],
    ]],
    ["mutable entry outside the semver range", { semver: ">=1.25", mutable: ["1.24"] }, on, [
      ["mutable[0]", /\(semver: version 1\.24\.0 is outside ">=1\.25"\)$/],
    ]],
    ["mutable non-version with semver", { semver: ">=1.25", mutable: ["stable"] }, on, [
      ["mutable[0]", /\(semver: not a version; a semver range selects versions only\)$/],
    ]],
    ["mutable non-version with newest", { newest: 3, mutable: ["stable"] }, on, [
      ["mutable[0]", /\(not-a-version: not a version; newest 3 ranks versions only\)$/],
    ]],
    ["mutable version with newest: selectable", { newest: 1, mutable: ["1.27"] }, on, []],
    [
      "several problems, in field order",
      {
        include: ["("],
        semver: "nope",
        newest: 0,
        mutable: ["latest"],
      },
      on,
      [
        ["include[0]", /Unterminated group/],
        ["semver", /does not parse/],
        ["newest", /got 0/],
        ["mutable[0]", /cannot be mutable/],
      ],
    ],
  ];
  for (const [name, rules, options, expected] of rows) {
    await t.step(name, () => {
      const problems = checkTagRules(rules, options);
      assert.deepEqual(problems.map((p) => p.path), expected.map(([path]) => path));
      problems.forEach((p, i) => assert.match(p.message, expected[i][1]));
    });
  }
});

Deno.test("compileTagRules() and selectTags() throw TagRulesError on rules that do not compile", () => {
  assert.throws(
    () => compileTagRules({ include: ["("], newest: 0 }),
    (e: unknown) =>
      e instanceof TagRulesError &&
      e.problems.map((p) => p.path).join() === "include[0],newest",
  );
  try {
    selectTags(TAGS, { semver: "nope" });
    assert.fail("selectTags() accepted an unparsable range");
  } catch (e) {
    assert.ok(e instanceof TagRulesError);
    assert.deepEqual(e.problems.map((p) => p.path), ["semver"]);
    assert.match(e.message, /^invalid tag rules: semver: semver range "nope" does not parse/);
  }
});

Deno.test("selectTags() never selects cosign, referrers-fallback or digest-pinned tags (rule artifact)", () => {
  const hex = "0123456789abcdef".repeat(4);
  const tags = [
    "1.0.0",
    `sha256-${hex}.sig`,
    `sha256-${hex}.att`,
    `sha256-${hex}.sbom`,
    `sha256-${hex}`,
    `pinned-sha256-${hex}`,
    "sha-abc",
  ];
  const all = selectTags(tags, {});
  assert.deepEqual(all.selected, ["1.0.0", "sha-abc"]);
  assert.deepEqual(all.dropped.map((d) => [d.tag, d.rule]), [
    [`sha256-${hex}.sig`, "artifact"],
    [`sha256-${hex}.att`, "artifact"],
    [`sha256-${hex}.sbom`, "artifact"],
    [`sha256-${hex}`, "artifact"],
    [`pinned-sha256-${hex}`, "artifact"],
  ]);
  assert.deepEqual(all.steps, [{ rule: "artifact", kept: 2, dropped: 5 }]);
  // An include that would match them does not bring them back.
  assert.deepEqual(selectTags(tags, { include: ["^sha", "^pinned"] }).selected, ["sha-abc"]);
  // No step when the listing has none.
  assert.deepEqual(selectTags(["1.0.0"], {}).steps, []);
});
