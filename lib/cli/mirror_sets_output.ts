/**
 * `--openshift-mirror-sets PATH` for `mirror` and `report --merge`: refuse it with the docker
 * engine, and after the run write the mirror sets of what landed (lib/openshift/mirror_sets.ts),
 * saying so in the log and on the terminal. Never in a dry run (a dry run writes nothing).
 *
 * @module
 */
import { errorMessage, UsageError } from "../errors.ts";
import type { Logger } from "../log/logger.ts";
import type { Report } from "../mirror/report.ts";
import type { SessionContext } from "./run_session.ts";

const OP = "Mirror";

/**
 * Refuse `--openshift-mirror-sets` with the docker engine before anything runs.
 *
 * @throws {UsageError} (exit 2) naming the config (or report) and why.
 */
export function refuseDockerMirrorSets(
  path: string | undefined,
  run: { engine: string; file: string },
): void {
  if (path === undefined || run.engine !== "docker") return;
  throw new UsageError(
    `--openshift-mirror-sets needs operation.engine: registry (engine docker in ${run.file}): the docker engine re-encodes manifests, so the digests an ImageDigestMirrorSet points at would not exist in the mirror`,
  );
}

/** Where {@link writeRunMirrorSets} reports. */
export interface MirrorSetsSinks {
  /** The run's logger (MIRROR_SETS_WRITTEN / MIRROR_SETS_FAILED), if there is one. */
  logger?: Logger;
  /** A line for the terminal. */
  line(text: string): void;
  /** An error line for the terminal (when there is no logger). */
  error(text: string): void;
}

/**
 * Write the mirror sets of `report` (its pushed and already-there entries) to `path`, or say
 * why not: a dry run writes nothing. Returns false when the file could not be written.
 */
export async function writeRunMirrorSets(
  report: Report,
  path: string,
  sinks: MirrorSetsSinks,
): Promise<boolean> {
  if (report.dryRun) {
    sinks.line(`Dry run: OpenShift mirror sets not written to ${path}`);
    return true;
  }
  try {
    // Loaded only here: most runs write no mirror sets, and it brings the YAML writer.
    const { mappingsFromEntries, writeMirrorSets } = await import("../openshift/mirror_sets.ts");
    // Names and mirrorSourcePolicy from the config's openshift.mirrorSets (kept in the report).
    const n = await writeMirrorSets(path, mappingsFromEntries(report.entries), report.mirrorSets);
    const what = `${n.digestSources} repositories by digest, ${n.tagSources} by tag`;
    sinks.logger?.info("MIRROR_SETS_WRITTEN", OP, `${path}: ${what}`);
    sinks.line(`OpenShift mirror sets: ${path} (${what})`);
    const rewritten = report.entries.filter((e) =>
      e.platforms?.sourceDigest && e.digest && e.platforms.sourceDigest !== e.digest
    );
    if (rewritten.length > 0) {
      // platformsMode: rewrite wrote new digests: a pull of the upstream digest has no mirror.
      const first = rewritten[0];
      const message = `${rewritten.length} image(s) were rewritten for some platforms ` +
        `(platformsMode: rewrite): a pull by the upstream digest (${
          first.source.replace(/@.*$/, "").replace(/:[^/:]*$/, "")
        }@${first.platforms?.sourceDigest}) ` +
        `finds nothing at the mirror, which holds ${first.digest}; the ImageDigestMirrorSet cannot map those digests`;
      sinks.logger?.warn("IMAGE_PLATFORMS_REWRITTEN", OP, message);
      sinks.line(`Warning: ${message}`);
    }
    return true;
  } catch (error) {
    const message = `Cannot write ${path}: ${errorMessage(error)}`;
    if (sinks.logger) sinks.logger.error("MIRROR_SETS_FAILED", OP, message);
    else sinks.error(`bananna-bot: [MIRROR_SETS_FAILED] ${message}`);
    return false;
  }
}

/**
 * The after-step of a mirror or import run given `--openshift-mirror-sets PATH`: write the mirror
 * sets of its report to `path` (none without the flag).
 */
export function mirrorSetsAfterStep(
  path: string | undefined,
): ((report: Report, context: SessionContext) => Promise<boolean>) | undefined {
  if (path === undefined) return undefined;
  return (report, context) =>
    writeRunMirrorSets(report, path, {
      logger: context.logger,
      line: (text) => context.terminal.line(text),
      error: (text) => context.terminal.warn(text),
    });
}
