/**
 * `bananna-bot mirror`, composition only: load the config, select the entries (and a shard's),
 * build the run (lib/mirror/mirror_run.ts) and hand it to the one session (run_session.ts: lock,
 * log, terminal, end). Every rule of the run itself is in lib/mirror/. Returns the exit code;
 * never calls Deno.exit.
 *
 * @module
 */
import type { MirrorCommand } from "./args.ts";
import type { Io } from "./io.ts";
import { loadConfig } from "../config/load_config.ts";
import type { ResolvedImage, ResolvedRepository } from "../config/schema.ts";
import { UsageError } from "../errors.ts";
import { createMirrorRun } from "../mirror/mirror_run.ts";
import type { Shard } from "../mirror/shard.ts";
import { formatReference } from "../registry/reference.ts";
import { runCommand } from "./run_session.ts";
import { mirrorSetsAfterStep, refuseDockerMirrorSets } from "./mirror_sets_output.ts";

/** Run `bananna-bot mirror`. */
export async function runMirror(cmd: MirrorCommand, io: Io): Promise<number> {
  // shard.ts only when one of its three inputs is given (without them there is no shard, and
  // nothing to refuse): its rendezvous hash brings node:crypto and part of Deno's Node layer.
  const sharding =
    cmd.shard === undefined && cmd.shards === undefined && io.env.JOB_COMPLETION_INDEX === undefined
      ? null
      : await import("../mirror/shard.ts");
  const shard: Shard | null =
    sharding?.resolveShard({ shard: cmd.shard, shards: cmd.shards, env: io.env }) ?? null;
  const loaded = await loadConfig(cmd.config, { env: io.env, cwd: io.cwd });
  refuseDockerMirrorSets(cmd.openshiftMirrorSets, {
    engine: loaded.operation.engine,
    file: loaded.file,
  });
  const selected = selectEntries(loaded, cmd.only);
  // A shard: only its destination repositories, before any read; its own lock, state and log.
  const { images, repositories } = sharding && shard
    ? sharding.selectShard(loaded, selected, shard)
    : selected;
  const config = sharding && shard
    ? { ...loaded, log: { ...loaded.log, dir: sharding.shardDir(loaded.log.dir, shard) } }
    : loaded;
  const mirrorSets = cmd.openshiftMirrorSets;
  return await runCommand(io, {
    op: "Mirror",
    config,
    dryRun: cmd.dryRun,
    reportPath: cmd.report,
    lastReport: sharding && shard ? sharding.shardReportPath(loaded.log.dir, shard) : undefined,
    // A shard's dir is made inside the log dir: never followed through a planted link.
    refuseLink: shard ? "a shard's log dir" : undefined,
    shard,
    publish: { metricsFile: cmd.metricsFile && absolutePath(cmd.metricsFile, io.cwd) },
    run: async (context) => {
      if (sharding && shard) {
        context.logger.info(
          "MIRROR_START",
          "Mirror",
          sharding.shardLine(shard, selected, { images, repositories }),
        );
      }
      await using run = createMirrorRun({
        config,
        images,
        repositories,
        dryRun: cmd.dryRun,
        interactive: io.isTerminal && !cmd.nonInteractive,
        env: io.env,
        shard,
        ...context,
      });
      const report = await run.execute(context.startedAt);
      if (config.openshift) report.mirrorSets = config.openshift.mirrorSets;
      return report;
    },
    after: mirrorSetsAfterStep(mirrorSets),
  });
}

/** `--only` patterns: `*` matches any run of characters; matched against key and full reference. */
export function selectImages(images: ResolvedImage[], patterns: string[]): ResolvedImage[] {
  return selectEntries({ images, repositories: [] }, patterns).images;
}

/**
 * `--only` over images and `repositories` entries: an entry is kept when a pattern matches its
 * key or its full source reference (`docker.io/library/nginx`).
 *
 * @throws {UsageError} when the patterns match nothing (exit 2).
 */
export function selectEntries(
  config: { images: ResolvedImage[]; repositories: ResolvedRepository[] },
  patterns: string[],
): { images: ResolvedImage[]; repositories: ResolvedRepository[] } {
  if (patterns.length === 0) return { images: config.images, repositories: config.repositories };
  const regexes = patterns.map((p) =>
    new RegExp(`^${p.split("*").map((s) => s.replace(/[.+?^${}()|[\]\\]/g, "\\$&")).join(".*")}$`)
  );
  const matches = (entry: { key: string; source: ResolvedRepository["source"] }) =>
    regexes.some((r) => r.test(entry.key) || r.test(formatReference(entry.source)));
  const images = config.images.filter(matches);
  const repositories = config.repositories.filter(matches);
  if (images.length === 0 && repositories.length === 0) {
    const keys = config.repositories.map((r) => r.key);
    throw new UsageError(
      `--only ${patterns.join(", ")} matched no image (images: ${
        config.images.map((i) => i.key).join(", ")
      }${keys.length ? `; repositories: ${keys.join(", ")}` : ""})`,
    );
  }
  return { images, repositories };
}

function absolutePath(path: string, cwd: string): string {
  return path.startsWith("/") ? path : `${cwd}/${path}`;
}
