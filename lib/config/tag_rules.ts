/**
 * The tag rules of a `repositories` entry as data: the version rule for tags, compiling the rules
 * (regexes, range) and checking them for validate, and the per-tag filters (include, exclude,
 * semver, not-a-version) that `lib/mirror/tag_selection.ts` applies to a listing before `newest`.
 *
 * Why here and not in tag_selection.ts: validate checks the rules at config load, and config/
 * imports only leaves, never mirror/. So the pure rule checking lives in config/ (like the schema)
 * and the selection in mirror/ imports it, in the direction data flows. The filters live here too,
 * so that "a mutable tag the rules can never select" is decided by the very code that selects,
 * with the same reasons. Rule semantics and the version rule: see the module doc of
 * `lib/mirror/tag_selection.ts` and docs/configuration.md "Selecting tags".
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
export type TagRule =
  | "artifact"
  | "include"
  | "exclude"
  | "semver"
  | "not-a-version"
  | "newest";

/**
 * Tags that name an artifact of another manifest, not an image: cosign's `sha256-<hex>.sig`,
 * `.att`, `.sbom` and the OCI referrers fallback tag `sha256-<hex>`. Selection never picks them
 * (rule `artifact`); signatures travel with their image instead.
 */
export const ARTIFACT_TAG = /^sha(?:256-[0-9a-f]{64}|512-[0-9a-f]{128})(?:\.(?:sig|att|sbom))?$/;

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
export interface TagVersion {
  /** The version, missing parts filled with 0. */
  version: semver.SemVer;
  /** Numeric parts written: `1` is 1, `1.27` is 2, `1.27.3` is 3. */
  parts: number;
}

/**
 * Read a tag as a version by the version rule, or null when it is not one.
 *
 * @example
 * ```ts
 * import { readTagVersion } from "./tag_rules.ts";
 * import assert from "node:assert/strict";
 * assert.equal(readTagVersion("v1.27")?.version.version, "1.27.0");
 * assert.equal(readTagVersion("v1.27")?.parts, 2);
 * assert.equal(readTagVersion("latest"), null);
 * ```
 */
export function readTagVersion(tag: string): TagVersion | null {
  const match = VERSION_TAG.exec(tag);
  if (!match) return null;
  const [, major, minor, patch, pre] = match;
  const text = `${major}.${minor ?? 0}.${patch ?? 0}${pre === undefined ? "" : `-${pre}`}`;
  const version = semver.parse(text);
  if (version === null) return null;
  return { version, parts: patch !== undefined ? 3 : minor !== undefined ? 2 : 1 };
}

/**
 * The version a tag stands for by the version rule, as a semver string (`1.27` gives `1.27.0`),
 * or null when the tag is not a version.
 *
 * @example
 * ```ts
 * import { parseTagVersion } from "./tag_rules.ts";
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
 * Compile the rules once (regexes, range) for use with `selectTags`.
 *
 * @throws {TagRulesError} when a regex does not compile, the range does not parse or `newest`
 * is not an integer >= 1 (validate reports these first, with {@link checkTagRules}).
 */
export function compileTagRules(rules: TagRules): CompiledTagRules {
  const { compiled, problems } = compile(rules);
  if (compiled === null) throw new TagRulesError(problems);
  return compiled;
}

/** One per-tag rule: its name and why it drops a tag (null: the tag passes). */
export interface TagFilter {
  /** The rule. */
  rule: TagRule;
  /** Why the rule drops the tag, as the dry run prints it, or null when the tag passes. */
  why(tag: string, version: TagVersion | null): string | null;
}

function slashed(patterns: readonly RegExp[]): string {
  return patterns.map(String).join(", ");
}

/**
 * The rules that judge each tag on its own, in order: include, exclude, semver, and (with
 * `newest` but no `semver`) not-a-version. Rules not written are left out. `newest` ranks the
 * tags that pass all of these and is not among them.
 */
export function tagFilters(rules: CompiledTagRules): TagFilter[] {
  const filters: TagFilter[] = [];
  if (rules.include.length > 0) {
    filters.push({
      rule: "include",
      why: (tag) =>
        rules.include.some((re) => re.test(tag))
          ? null
          : `matches no include pattern (${slashed(rules.include)})`,
    });
  }
  if (rules.exclude.length > 0) {
    filters.push({
      rule: "exclude",
      why: (tag) => {
        const hit = rules.exclude.find((re) => re.test(tag));
        return hit === undefined ? null : `matches exclude pattern ${hit}`;
      },
    });
  }
  const range = rules.range;
  if (range !== null) {
    filters.push({
      rule: "semver",
      why: (_tag, version) => {
        if (version === null) return "not a version; a semver range selects versions only";
        const v = version.version;
        if (range.test(v)) return null;
        const outside = `version ${v.version} is outside ${JSON.stringify(range.raw)}`;
        if (
          v.prerelease.length > 0 && semver.satisfies(v, range.raw, { includePrerelease: true })
        ) {
          return `${outside}: a prerelease, which a range admits only where it names a prerelease of ${v.major}.${v.minor}.${v.patch}`;
        }
        return outside;
      },
    });
  }
  const newest = rules.newest;
  if (newest !== null && range === null) {
    filters.push({
      rule: "not-a-version",
      why: (_tag, version) =>
        version === null ? `not a version; newest ${newest} ranks versions only` : null,
    });
  }
  return filters;
}

/**
 * The first rule that drops `tag` on its own (include, exclude, semver, not-a-version), with its
 * reason, or null when the rules could select it (`newest` still ranks it against the listing).
 *
 * @example
 * ```ts
 * import { compileTagRules, tagDropReason } from "./tag_rules.ts";
 * import assert from "node:assert/strict";
 * const rules = compileTagRules({ exclude: ["-rc"], semver: "^1.27" });
 * assert.equal(tagDropReason("1.27.3", rules), null);
 * assert.equal(tagDropReason("1.28.0-rc.1", rules)?.rule, "exclude");
 * ```
 */
export function tagDropReason(
  tag: string,
  rules: CompiledTagRules,
): { rule: TagRule; reason: string } | null {
  const version = readTagVersion(tag);
  for (const filter of tagFilters(rules)) {
    const reason = filter.why(tag, version);
    if (reason !== null) return { rule: filter.rule, reason };
  }
  return null;
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
      const dropped = tagDropReason(tag, compiled);
      if (dropped !== null) {
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
