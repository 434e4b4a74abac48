/**
 * Resolve the `repositories` section: each key parsed as a source repository (registry and
 * repository, normalised like an image reference, so `nginx` is `docker.io/library/nginx`), the
 * destination name defaulted to the last path component as for `images`. A key with a tag or a
 * digest is a problem at its path: one tag belongs in `images`.
 *
 * @module
 */
import type { ConfigProblem } from "../errors.ts";
import { parseReference } from "../registry/reference.ts";
import { formatPath } from "./parse_config_text.ts";
import type { ResolvedRepository, ValidConfig } from "./schema.ts";

/**
 * Resolve every entry of `repositories`; an entry whose key does not parse, or names a tag or a
 * digest, is left out and reported in `problems` (path `repositories["nginx:1.27"]`).
 *
 * @param repositories The section as validated by the schema (or salvaged from it).
 * @param problems Where problems are added.
 * @returns The entries that resolved, in config order.
 *
 * @example
 * ```ts
 * import { resolveRepositories } from "./resolve_repositories.ts";
 * import assert from "node:assert/strict";
 * const problems: { path: string; message: string }[] = [];
 * const [nginx] = resolveRepositories({ nginx: { targets: ["prod"], tags: { newest: 3 } } }, problems);
 * assert.deepEqual(nginx.source, { registry: "docker.io", repository: "library/nginx" });
 * assert.equal(nginx.repository, "nginx");
 * resolveRepositories({ "nginx:1.27": { targets: ["prod"], tags: {} } }, problems);
 * assert.equal(problems[0].path, 'repositories["nginx:1.27"]');
 * ```
 */
export function resolveRepositories(
  repositories: ValidConfig["repositories"],
  problems: ConfigProblem[],
): ResolvedRepository[] {
  const out: ResolvedRepository[] = [];
  for (const [key, entry] of Object.entries(repositories)) {
    const path = formatPath(["repositories", key]);
    let registry: string;
    let repository: string;
    try {
      ({ registry, repository } = parseReference(key));
    } catch (error) {
      problems.push({ path, message: error instanceof Error ? error.message : String(error) });
      continue;
    }
    const named = namedTagOrDigest(key);
    if (named !== null) {
      problems.push({
        path,
        message: `a repository key names no ${named.kind}; use images for one ${
          named.kind === "tag" ? "tag" : "image"
        } (${JSON.stringify(key)} names the ${named.kind} ${JSON.stringify(named.value)}: write ${
          JSON.stringify(named.name)
        } here and the rules in tags, or move it to images)`,
      });
      continue;
    }
    out.push({
      key,
      source: { registry, repository },
      targets: entry.targets,
      description: entry.description,
      repository: entry.repository ?? repository.split("/").pop() ?? repository,
      tags: entry.tags,
    });
  }
  return out;
}

/** The tag or digest written in a key that parsed as a reference, or null (the name alone). */
function namedTagOrDigest(
  key: string,
): { kind: "tag" | "digest"; value: string; name: string } | null {
  const at = key.indexOf("@");
  if (at >= 0) {
    const name = key.slice(0, at).replace(/:[^/:]*$/, "");
    return { kind: "digest", value: key.slice(at + 1), name };
  }
  const colon = key.indexOf(":", key.lastIndexOf("/") + 1);
  if (colon >= 0) return { kind: "tag", value: key.slice(colon + 1), name: key.slice(0, colon) };
  return null;
}
