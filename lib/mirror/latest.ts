/**
 * Where `latest` should point: the highest of the tags the config mirrors into a repository, in
 * version order when every tag parses as a version (`1.25`, `v1.8.2`, `3.9-rc1`), else in config
 * order (the last one listed wins). `latest` never moves to a lower version than the one it
 * points at now. Pure.
 *
 * @module
 */

/** A parsed version: numeric parts and an optional pre-release suffix. */
interface Version {
  parts: number[];
  pre?: string;
}

const VERSION = /^v?(\d+(?:\.\d+)*)(?:[-+]([0-9A-Za-z.-]+))?$/;

/** Parse a tag as a version, or return null. */
export function parseVersion(tag: string): Version | null {
  const match = VERSION.exec(tag);
  if (!match) return null;
  const version: Version = { parts: match[1].split(".").map(Number) };
  if (match[2] !== undefined) version.pre = match[2];
  return version;
}

/**
 * Compare two versions: negative when a < b. A pre-release sorts below its release; pre-releases
 * compare by semver precedence (identifier by identifier, numbers numerically: `rc.10` > `rc.9`),
 * as tag selection ranks them (config/tag_rules.ts), so `latest` and `newest` agree.
 */
export function compareVersions(a: Version, b: Version): number {
  const length = Math.max(a.parts.length, b.parts.length);
  for (let i = 0; i < length; i++) {
    const diff = (a.parts[i] ?? 0) - (b.parts[i] ?? 0);
    if (diff !== 0) return diff;
  }
  if (a.pre === b.pre) return 0;
  if (a.pre === undefined) return 1;
  if (b.pre === undefined) return -1;
  return comparePrerelease(a.pre.split("."), b.pre.split("."));
}

/** Semver 2.0.0 precedence of pre-release identifiers (numeric < alphanumeric, then ASCII). */
function comparePrerelease(a: string[], b: string[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const [x, y] = [a[i], b[i]];
    if (x === y) continue;
    const [xn, yn] = [/^\d+$/.test(x), /^\d+$/.test(y)];
    if (xn && yn) return Number(x) - Number(y);
    if (xn !== yn) return xn ? -1 : 1;
    return x < y ? -1 : 1;
  }
  return a.length - b.length;
}

/** Input for {@link chooseLatest}. */
export interface LatestChoice {
  /** Tags the config mirrors into the repository and that now hold the mirrored image, config order. */
  candidates: string[];
  /** The tag `latest` points at now (same digest), if known; null if latest is absent or unknown. */
  current: string | null;
}

/** The decision: move to `tag`, or keep with a reason. */
export type LatestDecision =
  | { action: "move"; tag: string; order: "version" | "config" }
  | { action: "keep"; reason: string };

/**
 * Decide where `latest` goes.
 *
 * @example
 * ```ts
 * import { chooseLatest } from "./latest.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual(chooseLatest({ candidates: ["1.9", "1.10"], current: null }), {
 *   action: "move", tag: "1.10", order: "version",
 * });
 * ```
 */
export function chooseLatest(choice: LatestChoice): LatestDecision {
  const candidates = choice.candidates.filter((tag) => tag !== "latest");
  if (candidates.length === 0) return { action: "keep", reason: "no mirrored tag to point at" };
  const versions = candidates.map(parseVersion);
  const byVersion = versions.every((v) => v !== null);
  let best = candidates[candidates.length - 1];
  if (byVersion) {
    let bestVersion = versions[0] as Version;
    best = candidates[0];
    for (let i = 1; i < candidates.length; i++) {
      const v = versions[i] as Version;
      if (compareVersions(v, bestVersion) > 0) {
        best = candidates[i];
        bestVersion = v;
      }
    }
  }
  const order = byVersion ? "version" : "config";
  if (choice.current === null) return { action: "move", tag: best, order };
  if (choice.current === best) {
    return { action: "keep", reason: `latest already points at ${best}` };
  }
  const current = parseVersion(choice.current);
  const bestVersion = parseVersion(best);
  if (byVersion && current && bestVersion && compareVersions(bestVersion, current) < 0) {
    return {
      action: "keep",
      reason: `latest points at ${choice.current}, higher than ${best}; never moved backwards`,
    };
  }
  if (!byVersion) {
    const currentIndex = candidates.indexOf(choice.current);
    if (currentIndex > candidates.indexOf(best)) {
      return {
        action: "keep",
        reason: `latest points at ${choice.current}, later in config order`,
      };
    }
  }
  return { action: "move", tag: best, order };
}
