/**
 * `bananna-bot report --merge DIR [--output PATH]`, composition only: read the shard reports,
 * merge them (lib/mirror/merge_reports.ts), print the statistics, write the merged JSON. Returns
 * the merged report's exit status (as a single run's); never calls Deno.exit.
 *
 * @module
 */
import type { ReportCommand } from "./args.ts";
import type { Io } from "./io.ts";
import { MirrorError } from "../errors.ts";
import { mergeReports, readShardReports } from "../mirror/merge_reports.ts";
import { exitStatus } from "../mirror/report.ts";
import { formatStatistics } from "../mirror/statistics.ts";
import { refuseDockerMirrorSets, writeRunMirrorSets } from "./mirror_sets_output.ts";

/**
 * Run `bananna-bot report --merge`.
 *
 * @throws {MirrorError} MIRROR_MERGE_FAILED: a shard report missing, unreadable or of another
 *   split, or the output cannot be written (exit 1).
 */
export async function runReport(cmd: ReportCommand, io: Io): Promise<number> {
  const files = await readShardReports(cmd.merge);
  const merged = mergeReports(files);
  refuseDockerMirrorSets(cmd.openshiftMirrorSets, {
    engine: merged.engine,
    file: `the shard reports in ${cmd.merge}`,
  });
  const lines = [
    `Merged ${files.length} shard report(s) from ${cmd.merge}`,
    ...formatStatistics(merged),
  ];
  io.stdout(lines.join("\n") + "\n");
  if (cmd.output) {
    try {
      await Deno.writeTextFile(cmd.output, JSON.stringify(merged, null, 2) + "\n");
    } catch (error) {
      throw new MirrorError(
        "MIRROR_MERGE_FAILED",
        `Cannot write the merged report to ${cmd.output}: ${
          error instanceof Error ? error.message : String(error)
        }`,
        { cause: error },
      );
    }
    io.stdout(`Report: ${cmd.output}\n`);
  }
  const code = exitStatus(merged);
  if (cmd.openshiftMirrorSets === undefined) return code;
  const written = await writeRunMirrorSets(merged, cmd.openshiftMirrorSets, {
    line: (text) => io.stdout(`${text}\n`),
    error: (text) => io.stderr(`${text}\n`),
  });
  return written || code !== 0 ? code : 1;
}
