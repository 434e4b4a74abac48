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
// @ts-types="@types/semver"
import * as semver from "semver";
import type { ConfigProblem } from "../errors.ts";
import { isValidTag } from "../registry/reference.ts";

/** The `tags` rules of one source repository, as written in the config. */
export interface TagRules {
  /** Regexes; a tag must match at least one (an empty list is no rule). */
  include?: string[];
  /** Regexes; a tag matching any is dropped. */
  exclude?: string[];
  /** An npm semver range; only versions inside it are kept. */
  semver?: string;
  /** Keep the N highest versions (an integer >= 1). */
  newest?: number;
  /** Destination tags that follow upstream when it moves them (selects nothing by itself). */
  mutable?: string[];
}

/** A rule of the selection, in the order they apply. */
export type TagRule = "include" | "exclude" | "semver" | "not-a-version" | "newest";

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

/** Rules ready to apply: regexes compiled, range parsed. Made by {@link compileTagRules}. */
export interface CompiledTagRules {
  /** Compiled `include` patterns (empty: no include rule). */
  readonly include: readonly RegExp[];
  /** Compiled `exclude` patterns. */
  readonly exclude: readonly RegExp[];
  /** The parsed `semver` range, or null. */
  readonly range: semver.Range | null;
  /** `newest`, or null. */
  readonly newest: number | null;
  /** `mutable`. */
  readonly mutable: ReadonlySet<string>;
}

/** Rules that do not compile. Carries the problems, with paths relative to `tags`. */
export class TagRulesError extends Error {
  /** The problems, e.g. `{ path: "include[1]", message: ... }`. */
  readonly problems: ConfigProblem[];
  /** Create the error from its problems. */
  constructor(problems: ConfigProblem[]) {
    super(
      `invalid tag rules: ${problems.map((p) => `${p.path}: ${p.message}`).join("; ")}`,
    );
    this.name = "TagRulesError";
    this.problems = problems;
  }
}

/** Options for {@link checkTagRules}. */
export interface CheckTagRulesOptions {
  /** `operation.updateLatest`: when on, `latest` cannot be mutable. */
  updateLatest: boolean;
}

const VERSION_TAG = /^v?(0|[1-9]\d*)(?:\.(0|[1-9]\d*))?(?:\.(0|[1-9]\d*))?(?:-(.+))?$/;

/** A tag read as a version, with the number of numeric parts written (1 to 3). */
interface TagVersion {
  version: semver.SemVer;
  parts: number;
}

function readTagVersion(tag: string): TagVersion | null {
  const match = VERSION_TAG.exec(tag);
  if (!match) return null;
  const [, major, minor, patch, pre] = match;
  const text = `${major}.${minor ?? 0}.${patch ?? 0}${pre === undefined ? "" : `-${pre}`}`;
  const version = semver.parse(text);
  if (version === null) return null;
  return { version, parts: patch !== undefined ? 3 : minor !== undefined ? 2 : 1 };
}

/**
 * The version a tag stands for by the rule in the module doc, as a semver string (`1.27` gives
 * `1.27.0`), or null when the tag is not a version.
 *
 * @example
 * ```ts
 * import { parseTagVersion } from "./tag_selection.ts";
 * import assert from "node:assert/strict";
 * assert.equal(parseTagVersion("v1.27"), "1.27.0");
 * assert.equal(parseTagVersion("1.27.3-alpine"), "1.27.3-alpine");
 * assert.equal(parseTagVersion("latest"), null);
 * ```
 */
export function parseTagVersion(tag: string): string | null {
  return readTagVersion(tag)?.version.version ?? null;
}

function compile(
  rules: TagRules,
): { compiled: CompiledTagRules | null; problems: ConfigProblem[] } {
  const problems: ConfigProblem[] = [];
  const patterns = (field: "include" | "exclude") =>
    (rules[field] ?? []).flatMap((pattern, i) => {
      try {
        return [new RegExp(pattern)];
      } catch (error) {
        const why = error instanceof Error ? error.message : String(error);
        problems.push({
          path: `${field}[${i}]`,
          message: `${field} pattern ${JSON.stringify(pattern)} is not a valid regex: ${why}`,
        });
        return [];
      }
    });
  const include = patterns("include");
  const exclude = patterns("exclude");
  let range: semver.Range | null = null;
  if (rules.semver !== undefined) {
    if (semver.validRange(rules.semver) === null) {
      problems.push({
        path: "semver",
        message: `semver range ${
          JSON.stringify(rules.semver)
        } does not parse (npm semver range syntax, e.g. ">=1.25.0 <2" or "1.27.x")`,
      });
    } else {
      range = new semver.Range(rules.semver);
    }
  }
  const newest = rules.newest ?? null;
  if (newest !== null && !(Number.isInteger(newest) && newest >= 1)) {
    problems.push({ path: "newest", message: `newest must be an integer >= 1, got ${newest}` });
  }
  if (problems.length > 0) return { compiled: null, problems };
  const mutable = new Set(rules.mutable ?? []);
  return { compiled: { include, exclude, range, newest, mutable }, problems };
}

/**
 * Compile the rules once (regexes, range) for use with {@link selectTags}.
 *
 * @throws {TagRulesError} when a regex does not compile, the range does not parse or `newest`
 * is not an integer >= 1 (validate reports these first, with {@link checkTagRules}).
 */
export function compileTagRules(rules: TagRules): CompiledTagRules {
  const { compiled, problems } = compile(rules);
  if (compiled === null) throw new TagRulesError(problems);
  return compiled;
}

/**
 * Everything wrong with a repository's tag rules, for validate; paths are relative to `tags`
 * (`include[1]`, `semver`, `newest`, `mutable[0]`). Checks that the regexes compile, the range
 * parses, `newest` is an integer >= 1, `latest` is not mutable while `updateLatest` is on, and
 * every `mutable` entry is a valid tag that the rules could select (it passes include, exclude,
 * semver and, with `newest`, is a version).
 */
export function checkTagRules(rules: TagRules, options: CheckTagRulesOptions): ConfigProblem[] {
  const { compiled, problems } = compile(rules);
  (rules.mutable ?? []).forEach((tag, i) => {
    const path = `mutable[${i}]`;
    if (!isValidTag(tag)) {
      problems.push({
        path,
        message: `mutable entry ${
          JSON.stringify(tag)
        } is not a valid tag ([A-Za-z0-9_][A-Za-z0-9_.-]{0,127})`,
      });
    } else if (tag === "latest" && options.updateLatest) {
      problems.push({
        path,
        message:
          `"latest" cannot be mutable while operation.updateLatest is on (latest already moves to the highest mirrored version); remove it or set updateLatest: false`,
      });
    } else if (compiled !== null) {
      const dropped = select([tag], compiled).dropped[0];
      if (dropped !== undefined) {
        problems.push({
          path,
          message: `mutable tag ${
            JSON.stringify(tag)
          } can never be selected by these rules (${dropped.rule}: ${dropped.reason})`,
        });
      }
    }
  });
  return problems;
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

function slashed(patterns: readonly RegExp[]): string {
  return patterns.map(String).join(", ");
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

  if (rules.include.length > 0) {
    apply(
      "include",
      ({ tag }) =>
        rules.include.some((re) => re.test(tag))
          ? null
          : `matches no include pattern (${slashed(rules.include)})`,
    );
  }
  if (rules.exclude.length > 0) {
    apply("exclude", ({ tag }) => {
      const hit = rules.exclude.find((re) => re.test(tag));
      return hit === undefined ? null : `matches exclude pattern ${hit}`;
    });
  }
  const range = rules.range;
  if (range !== null) {
    apply("semver", ({ version }) => {
      if (version === null) return "not a version; a semver range selects versions only";
      const v = version.version;
      if (range.test(v)) return null;
      const outside = `version ${v.version} is outside ${JSON.stringify(range.raw)}`;
      if (v.prerelease.length > 0 && semver.satisfies(v, range.raw, { includePrerelease: true })) {
        return `${outside}: a prerelease, which a range admits only where it names a prerelease of ${v.major}.${v.minor}.${v.patch}`;
      }
      return outside;
    });
  }
  const newest = rules.newest;
  if (newest !== null) {
    if (range === null) {
      apply(
        "not-a-version",
        ({ version }) =>
          version === null ? `not a version; newest ${newest} ranks versions only` : null,
      );
    }
    const ranked = [...current].sort(byVersion);
    const rank = new Map(ranked.map((c, i) => [c, i + 1]));
    apply("newest", (c) => {
      const r = rank.get(c) as number;
      return r <= newest ? null : `not among the ${newest} newest (rank ${r})`;
    });
  }
  if (range !== null || newest !== null) current.sort(byVersion);
  const selected = current.map((c) => c.tag);
  return {
    listed,
    selected,
    mutable: selected.filter((tag) => rules.mutable.has(tag)),
    dropped,
    steps,
  };
}
