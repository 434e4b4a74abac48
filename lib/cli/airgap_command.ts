/**
 * `bananna-bot export` and `bananna-bot import`, composition only, like mirror_command.ts: load the
 * config, check the inputs (bad ones are exit 2 before anything starts), build the run and hand it
 * to the one session (run_session.ts: lock, log, terminal, end). Export runs
 * lib/layout/export_run.ts (the mirror run into a layout, then its manifest); import runs the mirror
 * run (lib/mirror/mirror_run.ts) with the export directory as the store of every source host
 * (lib/layout/import_source.ts). Returns the exit code; never calls Deno.exit.
 *
 * @module
 */
import type { ExportCommand, ImportCommand } from "./args.ts";
import type { Io } from "./io.ts";
import { loadConfig } from "../config/load_config.ts";
import type { ResolvedConfig } from "../config/schema.ts";
import { readExportManifest } from "../layout/export_manifest.ts";
import { runExport } from "../layout/export_run.ts";
import { type ImportLocation, locateImport } from "../layout/import_parts.ts";
import { type ImportSource, openImportSource } from "../layout/import_source.ts";
import { parsePartSize } from "../layout/tar_parts.ts";
import type { Logger } from "../log/logger.ts";
import { createMirrorRun } from "../mirror/mirror_run.ts";
import { selectEntries } from "./mirror_command.ts";
import { mirrorSetsAfterStep } from "./mirror_sets_output.ts";
import { runCommand } from "./run_session.ts";

/** Run `bananna-bot export`. */
export async function runExportCommand(cmd: ExportCommand, io: Io): Promise<number> {
  // The connected side reads sources only: no destination secret, no notification or metrics.
  const config = await loadConfig(cmd.config, {
    env: io.env,
    cwd: io.cwd,
    unused: { sections: ["notify", "metrics"], secretsOf: ["registries"] },
  });
  const selected = selectEntries(config, cmd.only);
  const to = absolute(cmd.to, io.cwd);
  const since = cmd.since === undefined ? undefined : absolute(cmd.since, io.cwd);
  if (since) await readExportManifest(since); // a bad --since is exit 2 before anything starts
  const partSize = cmd.partSize === undefined ? undefined : parsePartSize(cmd.partSize);
  return await runCommand(io, {
    op: "Export",
    config,
    dryRun: cmd.dryRun,
    reportPath: cmd.report,
    // `last-report.json` is the last mirror's (import's) report, which operators and metrics read.
    lastReport: `${config.log.dir}/last-export-report.json`,
    run: (context) =>
      runExport({
        config,
        ...selected,
        dir: to,
        since,
        partSize,
        dryRun: cmd.dryRun,
        interactive: io.isTerminal && !cmd.nonInteractive,
        env: io.env,
        ...context,
      }, context.startedAt),
  });
}

/** Run `bananna-bot import`: the mirror run with the export as the store of its source hosts. */
export async function runImportCommand(cmd: ImportCommand, io: Io): Promise<number> {
  // The disconnected side never contacts a source: no source secret needed.
  const loaded = await loadConfig(cmd.config, {
    env: io.env,
    cwd: io.cwd,
    unused: { secretsOf: ["sources"] },
  });
  // A layout is read by the registry engine only (digests kept), whatever copies online.
  const config = { ...loaded, operation: { ...loaded.operation, engine: "registry" as const } };
  const selected = selectEntries(config, cmd.only);
  const location = await locateImport(absolute(cmd.from, io.cwd), {
    stagingParent: cmd.staging === undefined ? config.log.dir : absolute(cmd.staging, io.cwd),
    signal: io.signal,
  });
  await using _staging = { [Symbol.asyncDispose]: () => location.cleanup() };
  const source = await openImportSource(location.dir, {
    config,
    selected,
    manifestPath: location.manifestPath,
    lost: location.lost,
  });
  const mirrorSets = cmd.openshiftMirrorSets && absolute(cmd.openshiftMirrorSets, io.cwd);
  return await runCommand(io, {
    op: "Import",
    config,
    dryRun: cmd.dryRun,
    reportPath: cmd.report,
    // An import is the disconnected side's mirror run: its end is published as mirror's.
    publish: {},
    run: async (context) => {
      logImportStart(context.logger, { loaded, source, location });
      await using run = createMirrorRun({
        config,
        images: source.images,
        repositories: source.repositories,
        dryRun: cmd.dryRun,
        interactive: io.isTerminal && !cmd.nonInteractive,
        env: io.env,
        stores: source.stores,
        ...context,
      });
      const report = await run.execute(context.startedAt);
      if (config.openshift) report.mirrorSets = config.openshift.mirrorSets;
      return report;
    },
    after: mirrorSetsAfterStep(mirrorSets),
  });
}

/** What the import reads: the tar parts, the export, an engine it overrides, entries it lacks. */
function logImportStart(
  logger: Logger,
  input: { loaded: ResolvedConfig; source: ImportSource; location: ImportLocation },
): void {
  const { loaded, source, location } = input;
  if (location.parts) {
    const { names, corrupt } = location.parts;
    logger.log(
      corrupt.length ? "ERROR" : "INFO",
      corrupt.length ? "IMAGE_DIGEST_MISMATCH" : "SUCCESS",
      "Import",
      `${names.length} tar part(s) read from ${location.manifestPath.replace(/\/[^/]+$/, "")}${
        corrupt.length
          ? `; corrupt (sha256 differs): ${corrupt.join(", ")}: the images needing their blobs fail`
          : ", every sha256 as recorded"
      }`,
    );
  }
  const manifest = source.manifest;
  logger.info(
    "MIRROR_START",
    "Import",
    `from ${source.layout.dir}: export ${manifest.id} of ${manifest.created} (bananna-bot ${manifest.tool.version}, ${manifest.images.length} image(s)${
      manifest.since.length ? `, builds on ${manifest.since.map((s) => s.id).join(" <- ")}` : ""
    })`,
  );
  if (loaded.operation.engine !== "registry") {
    logger.warn(
      "CONFIG_WARNING",
      "Import",
      `operation.engine is ${loaded.operation.engine}; an import copies with the registry engine (digests kept), operation.signatures ${loaded.operation.signatures}`,
    );
  }
  for (const name of source.missing) {
    logger.warn("IMAGE_NOT_FOUND", "Import", `${name}: not in this export; skipped`);
  }
}

function absolute(path: string, cwd: string): string {
  return path.startsWith("/")
    ? path.replace(/\/+$/, "") || "/"
    : `${cwd}/${path}`.replace(/\/+$/, "");
}
