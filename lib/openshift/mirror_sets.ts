/**
 * OpenShift mirror sets: which upstream repository a cluster may pull from which mirror.
 *
 * {@link mirrorSetsYaml} writes a multi-document YAML (shared/registry-protocols.md §10.1/§10.2):
 * an `ImageDigestMirrorSet` (apiVersion `config.openshift.io/v1`) mapping every mirrored source
 * repository, and, when at least one image was mirrored by tag, an `ImageTagMirrorSet` for those.
 * An entry is one repository: `source` is the upstream repository as pod specs name it (Docker Hub
 * always as `docker.io/library/x`, see lib/registry/reference.ts), `mirrors` the destination
 * repositories it was copied to (merged over every target, first-seen order, no duplicates).
 * Entries are sorted by source, so the same images give the same bytes.
 *
 * Why the registry engine only: the node asks the mirror for `<mirror>@<same digest>`; the docker
 * engine re-encodes manifests, so the digest would not be there (§10.1).
 *
 * @module
 */
import { stringify } from "yaml";
import { canonicalHost, isValidRepository, parseReference } from "../registry/reference.ts";
import { writeFileAtomic } from "../safe_file.ts";

/** One source repository mirrored to one destination repository. */
export interface MirrorMapping {
  /** Upstream repository, `host[:port]/path` (no tag, no digest), e.g. `docker.io/library/nginx`. */
  source: string;
  /** Destination repository, `host[:port]/path`, e.g. `quay.example/mirror/nginx`. */
  mirror: string;
  /** The image was named by tag (not by digest only): it also goes into the ImageTagMirrorSet. */
  byTag: boolean;
}

/** `mirrorSourcePolicy` of every entry (unset means AllowContactingSource). */
export type MirrorSourcePolicy = "AllowContactingSource" | "NeverContactSource";

/** Options for {@link mirrorSetsYaml}. */
export interface MirrorSetsOptions {
  /**
   * Prefix of the objects' names: `<name>-digest-mirrors` and `<name>-tag-mirrors` (lowercase
   * letters, digits, `-` and `.`, as Kubernetes names).
   * @default "bananna"
   */
  name?: string;
  /** Written on every entry when given; left out otherwise (= AllowContactingSource). */
  sourcePolicy?: MirrorSourcePolicy;
}

/** One `imageDigestMirrors[]` / `imageTagMirrors[]` entry. */
export interface MirrorSetEntry {
  source: string;
  mirrors: string[];
  mirrorSourcePolicy?: MirrorSourcePolicy;
}

const HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::[0-9]+)?$/;
const NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

/**
 * The mirror sets of `mappings` as multi-document YAML (`---` before each document).
 *
 * @example
 * ```ts
 * import { mirrorSetsYaml } from "./mirror_sets.ts";
 * import assert from "node:assert/strict";
 * const yaml = mirrorSetsYaml([
 *   { source: "docker.io/library/nginx", mirror: "quay.example/hub/nginx", byTag: false },
 * ]);
 * assert.match(yaml, /kind: ImageDigestMirrorSet/);
 * assert.doesNotMatch(yaml, /ImageTagMirrorSet/);
 * ```
 * @throws {RangeError} on a malformed repository name or object name (the value is named).
 */
export function mirrorSetsYaml(
  mappings: readonly MirrorMapping[],
  options: MirrorSetsOptions = {},
): string {
  const name = options.name ?? "bananna";
  if (!NAME.test(name) || name.length > 230) {
    throw new RangeError(
      `mirror set name "${name}" is not a Kubernetes name (lowercase letters, digits, "-", ".")`,
    );
  }
  const digest = mirrorEntries(mappings, options.sourcePolicy);
  const tag = mirrorEntries(mappings.filter((m) => m.byTag), options.sourcePolicy);
  const documents: Record<string, unknown>[] = [{
    apiVersion: "config.openshift.io/v1",
    kind: "ImageDigestMirrorSet",
    metadata: { name: `${name}-digest-mirrors` },
    spec: { imageDigestMirrors: digest },
  }];
  if (tag.length > 0) {
    documents.push({
      apiVersion: "config.openshift.io/v1",
      kind: "ImageTagMirrorSet",
      metadata: { name: `${name}-tag-mirrors` },
      spec: { imageTagMirrors: tag },
    });
  }
  return documents.map((d) => `---\n${stringify(d, { lineWidth: 0 })}`).join("");
}

/**
 * Entries merged per source repository: mirrors in first-seen order without duplicates, entries
 * sorted by source.
 *
 * @throws {RangeError} on a malformed source or mirror.
 */
function mirrorEntries(
  mappings: readonly MirrorMapping[],
  sourcePolicy?: MirrorSourcePolicy,
): MirrorSetEntry[] {
  const bySource = new Map<string, string[]>();
  for (const m of mappings) {
    const source = canonicalRepository(m.source, "source");
    const mirror = canonicalRepository(m.mirror, "mirror");
    if (source === mirror) continue;
    const mirrors = bySource.get(source) ?? [];
    if (!mirrors.includes(mirror)) mirrors.push(mirror);
    bySource.set(source, mirrors);
  }
  return [...bySource.keys()].sort().map((source) => ({
    source,
    mirrors: bySource.get(source) ?? [],
    ...(sourcePolicy ? { mirrorSourcePolicy: sourcePolicy } : {}),
  }));
}

/**
 * Mappings from a run's report entries (plain data: `source` and `destination` full references
 * and the status): every `pushed` or `exists` entry maps the source repository to the destination
 * repository; `byTag` when the source reference has a tag and no digest.
 *
 * @example
 * ```ts
 * import { mappingsFromEntries } from "./mirror_sets.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual(
 *   mappingsFromEntries([{
 *     source: "docker.io/library/nginx:1.25",
 *     destination: "quay.example/hub/nginx:1.25",
 *     status: "pushed",
 *   }]),
 *   [{ source: "docker.io/library/nginx", mirror: "quay.example/hub/nginx", byTag: true }],
 * );
 * ```
 */
export function mappingsFromEntries(
  entries: readonly { source: string; destination: string; status: string }[],
): MirrorMapping[] {
  const out: MirrorMapping[] = [];
  for (const entry of entries) {
    if (entry.status !== "pushed" && entry.status !== "exists") continue;
    const source = parseReference(entry.source);
    const destination = parseReference(entry.destination);
    out.push({
      source: `${source.registry}/${source.repository}`,
      mirror: `${destination.registry}/${destination.repository}`,
      byTag: source.tag !== undefined && source.digest === undefined,
    });
  }
  return out;
}

/**
 * Write {@link mirrorSetsYaml} of `mappings` to `path` whole (a temp file beside it, then a
 * rename: a reader never sees half a file, a link at `path` is replaced, not followed).
 *
 * @returns how many source repositories each set maps.
 * @throws {RangeError} on a malformed mapping or name; the file system's error when the write fails.
 */
export async function writeMirrorSets(
  path: string,
  mappings: readonly MirrorMapping[],
  options: MirrorSetsOptions = {},
): Promise<{ digestSources: number; tagSources: number }> {
  const yaml = mirrorSetsYaml(mappings, options);
  await writeFileAtomic(path, yaml);
  return {
    digestSources: mirrorEntries(mappings).length,
    tagSources: mirrorEntries(mappings.filter((m) => m.byTag)).length,
  };
}

/** `host[:port]/path`, Docker Hub's names as docker.io (a one-component path gets library/). */
function canonicalRepository(value: string, what: "source" | "mirror"): string {
  const slash = value.indexOf("/");
  const host = slash > 0 ? value.slice(0, slash) : "";
  const path = slash > 0 ? value.slice(slash + 1) : "";
  const isHost = HOST.test(host) && (/[.:]/.test(host) || host === "localhost");
  if (!isHost || !isValidRepository(path)) {
    throw new RangeError(
      `mirror set ${what} "${value}" is not a repository of the form host[:port]/path`,
    );
  }
  const canonical = canonicalHost(host);
  const repo = canonical === "docker.io" && !path.includes("/") ? `library/${path}` : path;
  return `${canonical}/${repo}`;
}
