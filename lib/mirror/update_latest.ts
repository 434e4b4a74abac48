/**
 * Move `latest` in one destination repository by the rule in latest.ts, copying by manifest
 * (GET the chosen tag's manifest from the destination, PUT the same bytes as `latest`): no
 * re-pull from the source, and the digest is the tag's digest whatever engine pushed it.
 *
 * What `latest` points at now is found by digest: first among the mirrored tags, then among the
 * repository's other version tags higher than the candidate (so latest never moves backwards
 * even when the higher tag has left the config). When the plan read `latest` already
 * (`group.seen`, _plan_prefetch.ts) and it points at the chosen tag, it is kept without another
 * request; every other case, and every write, rests on a HEAD made here.
 *
 * @module
 */
import { chooseLatest, compareVersions, parseVersion } from "./latest.ts";
import { errorMessage, MirrorError } from "../errors.ts";
import type { RegistryClient } from "../registry/registry_client.ts";
import { RegistryError } from "../registry/registry_error.ts";
import type { LatestGroup, LatestOutcome } from "./run_plan.ts";

/** Options for {@link updateLatest}. */
export interface UpdateLatestOptions {
  /** Decide only; write nothing. */
  dryRun?: boolean;
  signal?: AbortSignal;
  /** At most this many extra tags are looked at to find what latest points at. @default 20 */
  maxProbes?: number;
}

/** Decide and (unless dry run) move `latest` for one repository. */
export async function updateLatest(
  client: RegistryClient,
  group: LatestGroup,
  options: UpdateLatestOptions = {},
): Promise<LatestOutcome> {
  const { signal } = options;
  const kept = keptAsSeen(group);
  if (kept) return kept;
  const head = await client.manifestHead(group.repository, "latest", signal);
  let current: string | null = null;
  if (head) {
    current = group.candidates.find((c) => c.digest === head.digest)?.tag ?? null;
    if (current === null) current = await findTagWithDigest(client, group, head.digest, options);
  }
  let decision = chooseLatest({ candidates: group.candidates.map((c) => c.tag), current });
  const where = `${group.registry}/${group.repository}`;
  if (decision.action === "move" && head) {
    const chosen = decision.tag;
    if (group.candidates.find((c) => c.tag === chosen)?.digest === head.digest) {
      // Two mirrored tags hold the same image: latest already is the chosen one. Reconciled on
      // every run, so this must not write.
      decision = { action: "keep", reason: `latest already points at ${chosen}` };
    }
  }
  if (decision.action === "keep") {
    return {
      group,
      code: "IMAGE_LATEST_KEPT",
      message: `${where}:latest kept: ${decision.reason}`,
    };
  }
  const order = decision.order === "version" ? "highest version" : "last in config order";
  if (options.dryRun) {
    return {
      group,
      code: "IMAGE_PLANNED",
      tag: decision.tag,
      message: `would move ${where}:latest to ${decision.tag} (${order})`,
    };
  }
  const manifest = await client.manifestGet(group.repository, decision.tag, signal);
  if (!manifest) {
    throw new MirrorError(
      "IMAGE_NOT_FOUND",
      `Cannot move ${where}:latest: ${decision.tag} vanished from the destination`,
    );
  }
  try {
    await client.manifestPut(group.repository, "latest", manifest, signal);
  } catch (error) {
    if (error instanceof RegistryError && error.status === 409) {
      return {
        group,
        code: "IMAGE_TAG_IMMUTABLE",
        message: `${where}:latest is immutable; not moved to ${decision.tag} (${
          errorMessage(error)
        })`,
      };
    }
    throw error;
  }
  return {
    group,
    code: "IMAGE_LATEST_UPDATED",
    tag: decision.tag,
    message: `${where}:latest -> ${decision.tag} (${order}, ${manifest.digest})`,
  };
}

/**
 * The outcome when what the plan saw of `latest` (`group.seen`) already points at the tag the rule
 * chooses: kept without a request. Anything else (absent, unknown, to move) is decided on a fresh
 * HEAD, so a write never rests on the plan's read.
 */
function keptAsSeen(group: LatestGroup): LatestOutcome | null {
  if (!group.seen) return null;
  const current = group.candidates.find((c) => c.digest === group.seen)?.tag;
  if (current === undefined) return null;
  const decision = chooseLatest({ candidates: group.candidates.map((c) => c.tag), current });
  const chosen = decision.action === "move" ? decision.tag : current;
  // Two mirrored tags may hold one image: latest already is the chosen one.
  if (group.candidates.find((c) => c.tag === chosen)?.digest !== group.seen) return null;
  const reason = decision.action === "keep"
    ? decision.reason
    : `latest already points at ${chosen}`;
  return {
    group,
    code: "IMAGE_LATEST_KEPT",
    message: `${group.registry}/${group.repository}:latest kept: ${reason}`,
  };
}

async function findTagWithDigest(
  client: RegistryClient,
  group: LatestGroup,
  digest: string,
  options: UpdateLatestOptions,
): Promise<string | null> {
  const versions = group.candidates.map((c) => parseVersion(c.tag));
  if (versions.some((v) => v === null)) return null;
  let tags: string[];
  try {
    tags = await client.tagList(group.repository, options.signal);
  } catch {
    return null;
  }
  const lowest = versions.reduce((a, b) => (a && b && compareVersions(a, b) <= 0 ? a : b));
  const higher = tags
    .filter((tag) => tag !== "latest" && !group.candidates.some((c) => c.tag === tag))
    .map((tag) => ({ tag, version: parseVersion(tag) }))
    .filter((t) => t.version !== null && lowest && compareVersions(t.version, lowest) > 0)
    .slice(0, options.maxProbes ?? 20);
  for (const { tag } of higher) {
    const found = await client.manifestHead(group.repository, tag, options.signal);
    if (found?.digest === digest) return tag;
  }
  return null;
}
