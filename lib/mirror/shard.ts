/**
 * Sharded runs (`--shard INDEX/COUNT`, or `--shards COUNT` with `JOB_COMPLETION_INDEX` from a
 * Kubernetes Indexed Job): COUNT processes split one config so that no two of them ever touch the
 * same destination repository.
 *
 * ## The split
 * The unit is the destination repository, `<registry host>/<namespace>/<repository>` (the
 * target's host and namespace, the entry's `repository`), so every tag of a repository and its
 * `latest` belong to one shard. An image (or `repositories` entry) with several targets keeps, in
 * each shard, only the targets whose destination repository is that shard's; an entry left with
 * no target is not in the shard at all. The key names the repository, not the target's name in
 * the config: renaming a target moves nothing.
 *
 * The owner is chosen by rendezvous hashing (highest random weight): each shard `i` scores a
 * repository with the first 48 bits of `sha256("<i>\n<key>")` and the highest score owns it
 * (ties to the lower index). A repository's owner depends only on its own key and COUNT, so
 * adding or removing an image never moves another repository; changing COUNT from N to N+1
 * moves only the repositories the new shard wins (about 1/(N+1) of them), where `hash mod N`
 * would move most of them.
 *
 * ## When
 * The split is applied right after the config is loaded (like `--only`), before any login or
 * read: a shard never lists, HEADs or pulls for another shard's repositories, so it spends no
 * other shard's pull budget. (A source listed by a `repositories` entry whose targets fall in
 * two shards is listed by both: a tag listing is not a pull.)
 *
 * ## Files
 * A shard keeps its lock, state, log and log rotation in `<log dir>/shard-<INDEX>/` (the same
 * names as an unsharded run inside it), and writes its report to
 * `<log dir>/last-report.<INDEX>.json` for `bananna-bot report --merge <log dir>`. So N shards on
 * one log dir (one PVC) never wait for each other and never interleave a log line.
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { ResolvedConfig, ResolvedImage, ResolvedRepository } from "../config/schema.ts";
import { UsageError } from "../errors.ts";

/** One shard of a split: `index` in `[0, count)`. */
export interface Shard {
  index: number;
  count: number;
}

/** What the command line and the environment say about sharding. */
export interface ShardInputs {
  /** `--shard INDEX/COUNT` as written. */
  shard?: string;
  /** `--shards COUNT` as written (the index comes from `JOB_COMPLETION_INDEX`). */
  shards?: string;
  /** The environment (`JOB_COMPLETION_INDEX`). */
  env: Record<string, string | undefined>;
}

const COUNT_MAX = 1000;

/**
 * The shard this run is, or null for an unsharded run.
 *
 * - `--shard INDEX/COUNT` wins (with `--shards`, the counts must agree);
 * - else `--shards COUNT` takes the index from `JOB_COMPLETION_INDEX`;
 * - `JOB_COMPLETION_INDEX` without either is refused: every pod of the Indexed Job would mirror
 *   everything.
 *
 * @throws {UsageError} a malformed or out-of-range value (exit 2), naming it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { resolveShard } from "./shard.ts";
 *
 * assert.deepEqual(resolveShard({ shard: "1/3", env: {} }), { index: 1, count: 3 });
 * assert.deepEqual(
 *   resolveShard({ shards: "3", env: { JOB_COMPLETION_INDEX: "2" } }),
 *   { index: 2, count: 3 },
 * );
 * assert.equal(resolveShard({ env: {} }), null);
 * ```
 */
export function resolveShard(inputs: ShardInputs): Shard | null {
  const jobIndex = inputs.env.JOB_COMPLETION_INDEX;
  const count = inputs.shards === undefined
    ? undefined
    : parseCount(inputs.shards, "--shards COUNT");
  if (inputs.shard !== undefined) {
    const match = /^(\d+)\/(\d+)$/.exec(inputs.shard.trim());
    if (!match) {
      throw new UsageError(
        `--shard "${inputs.shard}": expected INDEX/COUNT, e.g. --shard 0/3 (INDEX from 0 to COUNT-1)`,
      );
    }
    const shard = checked(Number(match[1]), parseCount(match[2], "--shard INDEX/COUNT"), "--shard");
    if (count !== undefined && count !== shard.count) {
      throw new UsageError(
        `--shard ${inputs.shard} and --shards ${inputs.shards} disagree on the number of shards`,
      );
    }
    return shard;
  }
  if (count !== undefined) {
    if (jobIndex === undefined || jobIndex.trim() === "") {
      throw new UsageError(
        `--shards ${inputs.shards} needs the shard index: JOB_COMPLETION_INDEX is not set (a Kubernetes Indexed Job sets it), or give --shard INDEX/COUNT`,
      );
    }
    if (!/^\d+$/.test(jobIndex.trim())) {
      throw new UsageError(`JOB_COMPLETION_INDEX "${jobIndex}" is not a shard index (0, 1, ...)`);
    }
    return checked(Number(jobIndex), count, "JOB_COMPLETION_INDEX");
  }
  if (jobIndex !== undefined && jobIndex.trim() !== "") {
    throw new UsageError(
      `JOB_COMPLETION_INDEX is set (${jobIndex}: an Indexed Job) but neither --shards COUNT nor --shard INDEX/COUNT is given: every pod would mirror everything; add --shards with the Job's completions`,
    );
  }
  return null;
}

function parseCount(text: string, what: string): number {
  if (!/^\d+$/.test(text.trim())) {
    throw new UsageError(`${what}: "${text}" is not a number of shards (1 to ${COUNT_MAX})`);
  }
  const count = Number(text);
  if (count < 1 || count > COUNT_MAX) {
    throw new UsageError(`${what}: the number of shards must be 1 to ${COUNT_MAX}, not ${text}`);
  }
  return count;
}

function checked(index: number, count: number, what: string): Shard {
  if (!(index < count)) {
    throw new UsageError(
      `${what}: shard index ${index} is out of range for ${count} shard(s) (0 to ${count - 1})`,
    );
  }
  return { index, count };
}

/**
 * The shard that owns a destination repository key (rendezvous hashing; see the module doc).
 *
 * @param key `<registry host>/<namespace>/<repository>`, see {@link destinationRepositoryKey}.
 * @param count Number of shards (at least 1).
 * @returns The owning index in `[0, count)`.
 */
export function shardOf(key: string, count: number): number {
  let best = 0;
  let bestScore = -1;
  for (let index = 0; index < count; index++) {
    const digest = createHash("sha256").update(`${index}\n${key}`).digest();
    const score = digest.readUIntBE(0, 6);
    if (score > bestScore) {
      best = index;
      bestScore = score;
    }
  }
  return best;
}

/**
 * The key a destination repository is sharded by: the target's host and namespace and the
 * entry's repository name, e.g. `quay.example.com/mirror/nginx`.
 */
export function destinationRepositoryKey(
  registry: { host: string; namespace: string },
  repository: string,
): string {
  return `${registry.host}/${registry.namespace}/${repository}`;
}

/**
 * Keep this shard's part of the entries: each entry keeps the targets whose destination
 * repository the shard owns; an entry left without targets is dropped. Order is kept.
 *
 * @param config The registries (host, namespace per target name).
 * @param entries The images and repositories entries (after `--only`).
 * @param shard This run's shard.
 */
export function selectShard(
  config: Pick<ResolvedConfig, "registries">,
  entries: { images: ResolvedImage[]; repositories: ResolvedRepository[] },
  shard: Shard,
): { images: ResolvedImage[]; repositories: ResolvedRepository[] } {
  // One hash per destination repository (its tags share it): ~30 us per key and shard.
  const owners = new Map<string, number>();
  const ownerOf = (key: string) => {
    let owner = owners.get(key);
    if (owner === undefined) owners.set(key, owner = shardOf(key, shard.count));
    return owner;
  };
  function mine<T extends { targets: string[]; repository: string }>(entry: T): T | null {
    const targets = entry.targets.filter((name) =>
      ownerOf(destinationRepositoryKey(config.registries[name], entry.repository)) === shard.index
    );
    if (targets.length === 0) return null;
    return targets.length === entry.targets.length ? entry : { ...entry, targets };
  }
  return {
    images: entries.images.map(mine).filter((e): e is ResolvedImage => e !== null),
    repositories: entries.repositories.map(mine).filter((e): e is ResolvedRepository => e !== null),
  };
}

/** Where a shard keeps its lock, state, log and rotation: `<log dir>/shard-<index>`. */
export function shardDir(logDir: string, shard: Shard): string {
  return `${logDir}/shard-${shard.index}`;
}

/** A shard's report in the log dir: `<log dir>/last-report.<index>.json`. */
export function shardReportPath(logDir: string, shard: Shard): string {
  return `${logDir}/last-report.${shard.index}.json`;
}

/** The log line of a shard's start: what it owns out of the whole selection. */
export function shardLine(
  shard: Shard,
  all: { images: ResolvedImage[]; repositories: ResolvedRepository[] },
  mine: { images: ResolvedImage[]; repositories: ResolvedRepository[] },
): string {
  const pairs = (entries: { targets: string[] }[]) =>
    entries.reduce((n, e) => n + e.targets.length, 0);
  return `Shard ${shard.index} of ${shard.count} (0-based): ${pairs(mine.images)} of ${
    pairs(all.images)
  } image x target, ${pairs(mine.repositories)} of ${
    pairs(all.repositories)
  } repository x target; the other shards do the rest`;
}
