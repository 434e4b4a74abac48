/**
 * Tag selection: which of the tags a source repository lists are mirrored. Pure: the listed tags
 * and the rules go in, the selected tags come out with, for every dropped tag, the rule that
 * dropped it and why (the dry run prints both).
 *
 * ## Rules, in this order
 * 1. `include`: regexes; a tag must match at least one. An empty list is no rule.
 * 2. `exclude`: regexes; a tag matching any of them is dropped.
 * 3. `semver`: an npm semver range (`semver` package, strict syntax, e.g. `">=1.25.0 <2"`,
 *    `"1.27.x"`, `"^2"`). Only versions (below) can satisfy it; a tag that is not a version is
 *    dropped by this rule.
 * 4. `newest: N`: keep the N highest versions. Without `semver`, tags that are not versions are
 *    dropped first, with the rule `not-a-version`.
 *
 * Without `semver` and `newest`, tags that are not versions pass like any other tag. A tag listed
 * twice counts once. `mutable` selects nothing: it names the selected destination tags that may
 * follow upstream ({@link TagSelection.mutable}).
 *
 * Patterns are JavaScript regexes, built with `new RegExp(pattern)` (no flags) and tested with
 * `.test(tag)`: they are anchored only as written, so `1.27` also matches `11.27.0` and `1x27`;
 * write `^1\.27\.\d+$`. A tag is at most 128 characters, but a pattern with nested quantifiers
 * (`(a+)+$`) can still take exponential time on one; nothing guards against that.
 *
 * ## Versions
 * A tag is a version when, after at most one leading lowercase `v`, it reads
 * `MAJOR[.MINOR[.PATCH]][-PRERELEASE]`: numbers without leading zeros, and a semver prerelease
 * (dot-separated identifiers of `[0-9A-Za-z-]`). Missing parts are 0: `1.27` is 1.27.0, `v1` is
 * 1.0.0. Everything after the first `-` is a prerelease, as in semver: `1.27.3-alpine` is the
 * prerelease `alpine` of 1.27.3, ranks below `1.27.3`, and satisfies a range only when npm semver
 * admits that prerelease (the range names a prerelease of the same MAJOR.MINOR.PATCH, e.g.
 * `>=1.27.3-0`). So a plain range drops `-alpine` and `-rc.1` alike, while `newest` ranks them as
 * versions: use `exclude: ['-']` to rank releases only, or an `include` regex to pick a variant.
 * Not versions: `latest`, `stable`, `1.2.3.4`, `01.2`, `V1.2`, `vv1`, `sha-1a2b3c`, `1.27_1`.
 * A number alone is a version: a date tag `20241101` is 20241101.0.0 and outranks every 1.x
 * (`exclude: ['^\d{8}$']`).
 *
 * Version order is semver precedence (`semver.compare`), highest first. Equal versions (`1.27`,
 * `1.27.0`, `v1.27.0`) rank by the number of parts written (more first), then by listing order.
 *
 * ## Result order
 * {@link TagSelection.selected} is in version order when `semver` or `newest` is set (every
 * selected tag is then a version), else in listing order.
 *
 * @module
 */
import {
  ARTIFACT_TAG,
  type CompiledTagRules,
  compileTagRules,
  readTagVersion,
  tagFilters,
  type TagRule,
  type TagRules,
  type TagVersion,
} from "../config/tag_rules.ts";
import { isPinnedDigestTag } from "../registry/reference.ts";

// The rules as data (types, compiling, checking, the version rule) live in config/tag_rules.ts,
// which validate uses at config load; still importable from here.
export {
  checkTagRules,
  type CheckTagRulesOptions,
  type CompiledTagRules,
  compileTagRules,
  parseTagVersion,
  type TagRule,
  type TagRules,
  TagRulesError,
} from "../config/tag_rules.ts";

/** A tag the rules dropped, with the rule and a sentence for the dry run. */
export interface DroppedTag {
  /** The tag as listed. */
  tag: string;
  /** The rule that dropped it. */
  rule: TagRule;
  /** Why, e.g. `matches exclude pattern /-rc/`. */
  reason: string;
}

/** What one rule did: how many tags it kept and dropped. */
export interface TagRuleStep {
  /** The rule. */
  rule: TagRule;
  /** Tags left after it. */
  kept: number;
  /** Tags it dropped. */
  dropped: number;
}

/** The result of {@link selectTags}. */
export interface TagSelection {
  /** Distinct tags in the listing. */
  listed: number;
  /** Selected tags: version order (highest first) with `semver` or `newest`, else listing order. */
  selected: string[];
  /** Selected tags named in `mutable`, in the order of `selected`. */
  mutable: string[];
  /** Every listed tag that was not selected, in the order the rules dropped them. */
  dropped: DroppedTag[];
  /** The rules that ran, in order. */
  steps: TagRuleStep[];
}

interface Candidate {
  tag: string;
  index: number;
  version: TagVersion | null;
}

function byVersion(a: Candidate, b: Candidate): number {
  const av = a.version as TagVersion;
  const bv = b.version as TagVersion;
  return bv.version.compare(av.version) || bv.parts - av.parts || a.index - b.index;
}

/**
 * Apply the rules to a listing: include, then exclude, then semver, then newest.
 *
 * @param tags The repository's tags as listed (every page), in listing order.
 * @param rules The rules as written, or compiled once with {@link compileTagRules}.
 * @throws {TagRulesError} when `rules` is not compiled and does not compile.
 *
 * @example
 * ```ts
 * import { selectTags } from "./tag_selection.ts";
 * import assert from "node:assert/strict";
 * const listed = ["1.25.0", "1.26.1", "1.27.0-rc.1", "1.27.0", "1.27.0-alpine", "latest"];
 * const result = selectTags(listed, { exclude: ["alpine"], semver: ">=1.26", newest: 1 });
 * assert.deepEqual(result.selected, ["1.27.0"]);
 * assert.deepEqual(result.dropped.map((d) => [d.tag, d.rule]), [
 *   ["1.27.0-alpine", "exclude"],
 *   ["1.25.0", "semver"],
 *   ["1.27.0-rc.1", "semver"],
 *   ["latest", "semver"],
 *   ["1.26.1", "newest"],
 * ]);
 * assert.deepEqual(result.steps.map((s) => [s.rule, s.kept, s.dropped]), [
 *   ["exclude", 5, 1],
 *   ["semver", 2, 3],
 *   ["newest", 1, 1],
 * ]);
 * ```
 */
export function selectTags(
  tags: readonly string[],
  rules: TagRules | CompiledTagRules,
): TagSelection {
  return select(tags, isCompiled(rules) ? rules : compileTagRules(rules));
}

function isCompiled(rules: TagRules | CompiledTagRules): rules is CompiledTagRules {
  return rules.mutable instanceof Set;
}

function select(tags: readonly string[], rules: CompiledTagRules): TagSelection {
  const seen = new Set<string>();
  let current: Candidate[] = [];
  for (const tag of tags) {
    if (seen.has(tag)) continue;
    seen.add(tag);
    current.push({ tag, index: current.length, version: readTagVersion(tag) });
  }
  const listed = current.length;
  const dropped: DroppedTag[] = [];
  const steps: TagRuleStep[] = [];
  const apply = (rule: TagRule, why: (c: Candidate) => string | null) => {
    const kept: Candidate[] = [];
    for (const candidate of current) {
      const reason = why(candidate);
      if (reason === null) kept.push(candidate);
      else dropped.push({ tag: candidate.tag, rule, reason });
    }
    steps.push({ rule, kept: kept.length, dropped: current.length - kept.length });
    current = kept;
  };

  const notAnImage = (tag: string) =>
    ARTIFACT_TAG.test(tag)
      ? "a signature, attestation, SBOM or referrers tag of another manifest, not an image"
      : isPinnedDigestTag(tag)
      ? "the tag bananna-bot writes for a digest-pinned image, not an image tag of its own"
      : null;
  if (current.some(({ tag }) => notAnImage(tag) !== null)) {
    apply("artifact", ({ tag }) => notAnImage(tag));
  }
  for (const filter of tagFilters(rules)) {
    apply(filter.rule, ({ tag, version }) => filter.why(tag, version));
  }
  const newest = rules.newest;
  if (newest !== null) {
    const ranked = [...current].sort(byVersion);
    const rank = new Map(ranked.map((c, i) => [c, i + 1]));
    apply("newest", (c) => {
      const r = rank.get(c) as number;
      return r <= newest ? null : `not among the ${newest} newest (rank ${r})`;
    });
  }
  if (rules.range !== null || newest !== null) current.sort(byVersion);
  const selected = current.map((c) => c.tag);
  return {
    listed,
    selected,
    mutable: selected.filter((tag) => rules.mutable.has(tag)),
    dropped,
    steps,
  };
}
