/**
 * Cross-field rules for the `repositories` section, run in the same pass as `config_rules.ts`:
 * something to mirror at all, unknown or repeated targets, a valid destination name, the tag
 * rules (`checkTagRules`, paths under `repositories["..."].tags`), two keys for one source, two
 * sources for one destination, and an image and a repository entry for the same source that
 * disagree on targets, description or destination name.
 *
 * Why an image and a repository entry may name the same source: a tag written in `images` that
 * the rules also select is one task, not two. They must then agree, since they fill one
 * destination repository: validate reports each setting that differs.
 *
 * @module
 */
import type { ConfigProblem } from "../errors.ts";
import { isValidDestinationRepository, knownTargets } from "./config_rules.ts";
import { formatPath } from "./parse_config_text.ts";
import type { ResolvedConfig, ResolvedImage, ResolvedRepository, ValidConfig } from "./schema.ts";
import type { TagRules } from "./tag_rules.ts";

/** tag_rules.ts, loaded (with the semver package) only for a config with `repositories`. */
type TagRulesModule = typeof import("./tag_rules.ts");

/** Options for {@link checkRepositoryRules}. */
export interface RepositoryRuleOptions {
  /**
   * Every registry name written, valid or not (a broken entry is not also an unknown target);
   * null when `registries` is not a map (targets cannot be checked).
   * @default the names in the resolved config
   */
  registryNames?: string[] | null;
  /**
   * Entries written in `images` and `repositories` together, valid or not (see
   * {@link countEntries}); 0 is the problem "nothing to mirror".
   * @default the entries in the resolved config
   */
  entriesWritten?: number;
}

/**
 * How many entries `images` and `repositories` hold in the config as written (before the
 * schema), so that an entry the schema rejected is not also "nothing to mirror".
 */
export function countEntries(raw: unknown): number {
  if (raw === null || typeof raw !== "object") return 0;
  let count = 0;
  for (const section of ["images", "repositories"]) {
    const value = (raw as Record<string, unknown>)[section];
    if (value !== null && typeof value === "object" && !Array.isArray(value)) {
      count += Object.keys(value).length;
    }
  }
  return count;
}

function setsEqual(a: readonly string[], b: readonly string[]): boolean {
  const left = new Set(a);
  const right = new Set(b);
  return left.size === right.size && [...left].every((x) => right.has(x));
}

function list(values: readonly string[]): string {
  return `[${values.join(", ")}]`;
}

function sourceName(source: { registry: string; repository: string }): string {
  return `${source.registry}/${source.repository}`;
}

/**
 * Check the `repositories` section against itself, the registries and `images`; returns
 * problems (severity "warning" for warnings), never throws.
 *
 * @param config The resolved config (entries whose key did not parse are absent).
 * @param data The validated (or salvaged) config, for `operation.updateLatest`.
 */
export async function checkRepositoryRules(
  config: ResolvedConfig,
  data: ValidConfig,
  options: RepositoryRuleOptions = {},
): Promise<ConfigProblem[]> {
  const problems: ConfigProblem[] = [];
  const err = (path: string, message: string) => problems.push({ path, message });
  const warn = (path: string, message: string) =>
    problems.push({ path, message, severity: "warning" });
  const known = Object.keys(config.registries);
  const written = options.registryNames === undefined ? known : options.registryNames;
  const entries = options.entriesWritten ??
    config.images.length + config.repositories.length;
  if (entries === 0) {
    err(
      "images",
      "nothing to mirror: add an entry to images (one tag each) or to repositories (tags selected by rules)",
    );
  }
  // Without repositories entries nothing below applies (an image conflicts only with one).
  if (config.repositories.length === 0) return problems;
  const tagRules: TagRulesModule = await import("./tag_rules.ts");

  const sources = new Map<string, string>();
  const destinations = new Map<string, ResolvedRepository>();
  for (const entry of config.repositories) {
    const at = formatPath(["repositories", entry.key]);
    const source = sourceName(entry.source);
    const same = sources.get(source);
    if (same !== undefined) {
      err(
        at,
        `"${entry.key}" and "${same}" name the same source repository ${source}; keep one entry`,
      );
      continue;
    }
    sources.set(source, entry.key);
    for (
      const { target, index: i, registry } of knownTargets(config, entry.targets, {
        at,
        written,
        err,
      })
    ) {
      const destination = `${target}:${registry.namespace}/${entry.repository}`;
      const other = destinations.get(destination);
      if (other !== undefined) {
        err(
          `${at}.targets[${i}]`,
          `"${entry.key}" and "${other.key}" both map to ${registry.host}/${registry.namespace}/${entry.repository} in "${target}"; set repository on one of them`,
        );
      } else {
        destinations.set(destination, entry);
      }
    }
    if (!isValidDestinationRepository(entry.repository)) {
      const wrote = Object.hasOwn(data.repositories, entry.key) &&
        data.repositories[entry.key].repository !== undefined;
      err(
        `${at}${wrote ? ".repository" : ""}`,
        `"${entry.repository}" is not a valid destination repository name (lowercase letters, digits, separators . _ -)`,
      );
    }
    const tags = entry.tags;
    const updateLatest = data.operation.updateLatest;
    for (const problem of tagRules.checkTagRules(tags, { updateLatest })) {
      problems.push({ ...problem, path: `${at}.tags.${problem.path}` });
    }
    if (
      !tags.include?.length && !tags.exclude?.length && tags.semver === undefined &&
      tags.newest === undefined
    ) {
      warn(
        `${at}.tags`,
        "no tag rules: every tag the repository lists is mirrored; bound it with semver, include or newest",
      );
    }
  }

  for (const image of config.images) {
    const at = formatPath(["images", image.key]);
    const entry = config.repositories.find((r) =>
      sourceName(r.source) === sourceName(image.source)
    );
    if (entry !== undefined) checkPair(image, entry, { at, err });
    image.targets.forEach((target, i) => {
      if (!Object.hasOwn(config.registries, target)) return;
      const registry = config.registries[target];
      const other = destinations.get(`${target}:${registry.namespace}/${image.repository}`);
      if (other === undefined || other === entry) return;
      if (image.source.tag === undefined || !canSelect(tagRules, image.source.tag, other.tags)) {
        return;
      }
      err(
        `${at}.targets[${i}]`,
        `"${image.key}" and ${
          formatPath(["repositories", other.key])
        } both map to ${registry.host}/${registry.namespace}/${image.repository} in "${target}", and the rules of the latter can select the tag ${image.source.tag}; set repository on one of them`,
      );
    });
  }
  return problems;
}

/** An image and a repository entry for the same source: they must agree. */
function checkPair(
  image: ResolvedImage,
  entry: ResolvedRepository,
  context: { at: string; err: (path: string, message: string) => void },
) {
  const { at, err } = context;
  const other = formatPath(["repositories", entry.key]);
  const why =
    `an image and a repository entry for the same source fill one destination repository: write the same value in both, or drop the image and let the rules select its tag`;
  if (!setsEqual(image.targets, entry.targets)) {
    err(
      `${at}.targets`,
      `targets ${list(image.targets)} disagree with ${other}.targets ${
        list(entry.targets)
      }; ${why}`,
    );
  }
  if ((image.description ?? "") !== (entry.description ?? "")) {
    err(
      `${at}.description`,
      `description ${JSON.stringify(image.description ?? "")} disagrees with ${other}.description ${
        JSON.stringify(entry.description ?? "")
      }; ${why}`,
    );
  }
  if (image.repository !== entry.repository) {
    err(
      `${at}.repository`,
      `destination repository "${image.repository}" disagrees with ${other} ("${entry.repository}"); ${why}`,
    );
  }
}

/** Could the rules select `tag`? False when they do not compile (reported on their own). */
function canSelect(tagRules: TagRulesModule, tag: string, rules: TagRules): boolean {
  try {
    return tagRules.tagDropReason(tag, tagRules.compileTagRules(rules)) === null;
  } catch {
    return false;
  }
}
