/**
 * argv -> Command, with node:util parseArgs in strict mode (an unknown flag is a UsageError
 * naming it). Help texts live here.
 *
 * @module
 */
import { parseArgs as parse } from "node:util";
import { UsageError } from "../errors.ts";
import { VERSION } from "../version.ts";

/** `bananna-bot validate`. */
export interface ValidateCommand {
  kind: "validate";
  config?: string;
}

/** `bananna-bot mirror`. */
export interface MirrorCommand {
  kind: "mirror";
  config?: string;
  dryRun: boolean;
  only: string[];
  report?: string;
  nonInteractive: boolean;
  /** `--shard INDEX/COUNT` as written (checked by lib/mirror/shard.ts). */
  shard?: string;
  /** `--shards COUNT` as written (the index from JOB_COMPLETION_INDEX). */
  shards?: string;
  /** `--openshift-mirror-sets PATH`: write IDMS/ITMS YAML there after the run. */
  openshiftMirrorSets?: string;
  /** `--metrics-file PATH`: Prometheus metrics of the run (over `metrics.file`). */
  metricsFile?: string;
}

/** `bananna-bot report --merge DIR [--output PATH]`. */
export interface ReportCommand {
  kind: "report";
  /** The log dir holding the shard reports (`last-report.<index>.json`). */
  merge: string;
  /** Where to write the merged JSON report. */
  output?: string;
  /** `--openshift-mirror-sets PATH`: IDMS/ITMS of every shard's mirrored repositories. */
  openshiftMirrorSets?: string;
}

/** `bananna-bot export`: the plan's images into an OCI layout for an air gap. */
export interface ExportCommand {
  kind: "export";
  config?: string;
  /** The layout directory to write. */
  to: string;
  /** A previous export's bananna-export.json (incremental). */
  since?: string;
  /** `--part-size` as given (parsed by the command): also write the layout as split tar parts. */
  partSize?: string;
  dryRun: boolean;
  only: string[];
  report?: string;
  nonInteractive: boolean;
}

/** `bananna-bot import`: an export's images into the config's targets, with every mirror rule. */
export interface ImportCommand {
  kind: "import";
  config?: string;
  /** The export directory, or the first tar part (`bananna-export.tar.000` / `.tar`). */
  from: string;
  dryRun: boolean;
  only: string[];
  report?: string;
  nonInteractive: boolean;
  /** `--openshift-mirror-sets PATH`: write IDMS/ITMS YAML there after the import. */
  openshiftMirrorSets?: string;
}

/** A parsed command line. */
export type Command =
  | { kind: "help"; text: string }
  | { kind: "version"; text: string }
  | ValidateCommand
  | MirrorCommand
  | ReportCommand
  | ExportCommand
  | ImportCommand;

const EXIT_CODES = `Exit codes:
  0    everything mirrored (or already there; drift is reported, not fatal)
  1    at least one image failed, or the run could not start (login, lock, docker)
  2    bad configuration or bad command line
  130  interrupted (Ctrl-C / SIGTERM); the report is marked interrupted`;

const ENVIRONMENT = `Environment:
  BANANNA_BOT_CONFIG   config file when --config is not given (default ./config.ts)
  NO_COLOR             no colour on the terminal
  DOCKER_CONFIG        folder of docker's config.json (credentials, credential helpers)
  DOCKER_HOST          docker daemon for the docker engine`;

/** Top-level help. */
const MAIN_HELP =
  `bananna-bot ${VERSION}: mirror container images into private registries (Red Hat Quay first)

Usage:
  bananna-bot <command> [options]

Commands:
  mirror     mirror every image in the config (plan, copy what is new, move latest, report)
  validate   check the config and list every problem with its path
  report     combine the reports of a sharded run (report --merge DIR)
  export     write the planned images to an OCI layout directory (air gap, connected side)
  import     mirror an export's images into the targets with every rule (air gap, other side)
  help       show help for a command

Options:
  -c, --config PATH   config file: .ts, .yaml/.yml or .json (default ./config.ts)
  -h, --help          show help
  -V, --version       show the version

Examples:
  bananna-bot validate
  bananna-bot mirror --dry-run
  bananna-bot mirror --config /etc/bananna-bot/config.yaml --non-interactive

${EXIT_CODES}

${ENVIRONMENT}
`;

/** Help of `mirror`. */
const MIRROR_HELP = `Usage: bananna-bot mirror [options]

Mirror every image of the config into its target registries. For each image and target: check
the source exists, make sure the Quay repository exists, check the destination tag, copy only what
is new (a tag holding another image is reported as drift and never overwritten), move latest when a
new tag lands, then print statistics and write a JSON report.

Options:
  -c, --config PATH      config file (default ./config.ts, or $BANANNA_BOT_CONFIG)
  -n, --dry-run          read only: print what would be done, write nothing
      --only PATTERN     only images and repositories whose key or full reference matches
                         (* is a wildcard); repeatable
      --report PATH      also write the JSON report here (always: <log dir>/last-report.json)
      --non-interactive  never prompt; missing credentials are an error (automatic without a
                         terminal, e.g. in cron)
      --shard I/N        run shard I (0 to N-1) of N: only the destination repositories this
                         shard owns; own lock, state and log in <log dir>/shard-I/, report
                         <log dir>/last-report.I.json (merge: bananna-bot report --merge)
      --shards N         the same, with I from $JOB_COMPLETION_INDEX (Kubernetes Indexed Job)
      --openshift-mirror-sets PATH
                         after the run, write an ImageDigestMirrorSet (and an ImageTagMirrorSet
                         for images named by tag) mapping every mirrored repository to its
                         mirror, for "oc apply -f PATH" (registry engine only; not written
                         in a dry run; not with --shard: give it to report --merge)
      --metrics-file PATH
                         write the run's Prometheus metrics here (over metrics.file; not in a
                         dry run)
  -h, --help             show this help

${EXIT_CODES}
`;

/** Help of `export`. */
const EXPORT_HELP = `Usage: bananna-bot export --to DIR [options]

Resolve the same plan as mirror (images, tags selected by repositories rules) and copy every
source image into an OCI image layout in DIR: every platform, exact bytes and digests, each image
named by its full source reference, its targets recorded, with its signatures, attestations, SBOMs
and referrers (operation.signatures). bananna-export.json is written last
(images, digests, blobs, sha256 of every file, the tool version). An interrupted export is
resumed by running it again (what is complete is not fetched again). Targets are not contacted.

Options:
  -c, --config PATH      config file (default ./config.ts, or $BANANNA_BOT_CONFIG)
      --to DIR           the layout directory (created when missing)
      --since FILE       a previous export's bananna-export.json: write only blobs and
                         manifests it (and the exports it built on) did not carry
      --part-size SIZE   also write the layout as a tar split into parts of SIZE
                         (bananna-export.tar.000, .001, ...; e.g. 4G, 500MiB), each with
                         its sha256 in bananna-export.json
  -n, --dry-run          read only: print what would be exported, write nothing
      --only PATTERN     only images and repositories whose key or full reference matches
      --report PATH      also write the JSON report here (always: <log dir>/last-export-report.json)
      --non-interactive  never prompt for credentials
  -h, --help             show this help

${EXIT_CODES}
`;

/** Help of `import`. */
const IMPORT_HELP = `Usage: bananna-bot import --from DIR [options]

Mirror the images of an export (bananna-bot export) into the targets of the config, with every
rule of mirror: Quay repository creation, never-overwrite (drift reported), latest, report, log,
lock, --dry-run. Every blob is verified against its sha256 while it is read; an image whose blob
is corrupt fails (IMAGE_DIGEST_MISMATCH naming the file) and nothing of it is written. The source
registries are never contacted. An interrupted import is resumed by running it again. An
incremental export needs the exports it builds on imported first.

Options:
  -c, --config PATH      config file (default ./config.ts, or $BANANNA_BOT_CONFIG)
      --from DIR|PART    the export directory (OCI layout with bananna-export.json), or
                         its first tar part (bananna-export.tar.000 or bananna-export.tar)
      --openshift-mirror-sets PATH
                         write ImageDigestMirrorSet (and ImageTagMirrorSet) YAML of what
                         landed, so the cluster pulls the upstream references from the mirror
  -n, --dry-run          read only: print what would be done, write nothing
      --only PATTERN     only images and repositories whose key or full reference matches
      --report PATH      also write the JSON report here (always: <log dir>/last-report.json)
      --non-interactive  never prompt; missing credentials are an error
  -h, --help             show this help

${EXIT_CODES}
`;

const HELPS: Record<string, string> = { export: EXPORT_HELP, import: IMPORT_HELP };

/** Help of `validate`. */
const VALIDATE_HELP = `Usage: bananna-bot validate [options]

Check the config: schema, unknown keys, image references, target names, placeholders, duplicate
destinations, CA files, Quay tokens. Prints every problem with its path and exits 2, or a short
summary and exits 0. Makes no network request.

Options:
  -c, --config PATH   config file (default ./config.ts, or $BANANNA_BOT_CONFIG)
  -h, --help          show this help
`;

/** Help of `report`. */
const REPORT_HELP = `Usage: bananna-bot report --merge DIR [--output PATH]

Combine the reports of a sharded run (last-report.<index>.json in DIR, the log dir) into one
report with the totals and the exit code of a single run. Every shard's report must be there
(each records how many shards the run had); a missing one is an error (exit 1).

Options:
      --merge DIR     the log dir holding the shard reports
      --output PATH   write the merged JSON report here
      --openshift-mirror-sets PATH
                      write the OpenShift mirror sets of every shard's mirrored
                      repositories (as mirror --openshift-mirror-sets does for one run)
  -h, --help          show this help

Exit codes:
  0    every shard's images mirrored (or already there; drift is not fatal)
  1    a failed image in any shard, or a shard report missing or unreadable
  2    bad command line
  130  a shard was interrupted
`;

/** Parse argv into a Command. @throws {UsageError} */
export function parseArgs(argv: string[]): Command {
  let values: Record<string, string | boolean | string[] | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parse({
      args: argv,
      strict: true,
      allowPositionals: true,
      options: {
        config: { type: "string", short: "c" },
        help: { type: "boolean", short: "h" },
        version: { type: "boolean", short: "V" },
        "dry-run": { type: "boolean", short: "n" },
        only: { type: "string", multiple: true },
        report: { type: "string" },
        "non-interactive": { type: "boolean" },
        shard: { type: "string" },
        shards: { type: "string" },
        merge: { type: "string" },
        output: { type: "string" },
        "openshift-mirror-sets": { type: "string" },
        "metrics-file": { type: "string" },
        to: { type: "string" },
        from: { type: "string" },
        since: { type: "string" },
        "part-size": { type: "string" },
      },
    }));
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new UsageError(message.replace(/\. To specify a positional argument.*$/s, ""));
  }
  const [command, ...rest] = positionals;
  if (values.version) return { kind: "version", text: `bananna-bot ${VERSION}` };
  if (command === "help") {
    const topic = rest[0];
    return {
      kind: "help",
      text: topic === "mirror"
        ? MIRROR_HELP
        : topic === "validate"
        ? VALIDATE_HELP
        : topic === "report"
        ? REPORT_HELP
        : HELPS[topic ?? ""] ?? MAIN_HELP,
    };
  }
  if (command === undefined) {
    if (values.help) return { kind: "help", text: MAIN_HELP };
    throw new UsageError("no command given (mirror, validate or report)");
  }
  if (command === "export" || command === "import") return airgapCommand(command, rest, values);
  for (const flag of ["to", "from", "since", "part-size"]) {
    if (values[flag] !== undefined) {
      throw new UsageError(`--${flag} is an option of export/import, not ${command ?? "this"}`);
    }
  }
  if (command !== "mirror" && command !== "validate" && command !== "report") {
    throw new UsageError(
      `unknown command "${command}" (commands: mirror, validate, report, export, import, help)`,
    );
  }
  if (rest.length > 0) throw new UsageError(`unexpected argument "${rest[0]}"`);
  if (values.help) {
    const text = { mirror: MIRROR_HELP, validate: VALIDATE_HELP, report: REPORT_HELP }[command];
    return { kind: "help", text };
  }
  if (command === "report") return reportCommand(values);
  for (const flag of ["merge", "output"]) {
    if (values[flag] !== undefined) {
      throw new UsageError(`--${flag} is an option of report, not ${command}`);
    }
  }
  const config = values.config as string | undefined;
  if (config === "") throw new UsageError("--config needs a path");
  if (command === "validate") {
    const mirrorFlags = ["dry-run", "only", "report", "non-interactive", "shard", "shards"];
    for (const flag of [...mirrorFlags, "metrics-file", "openshift-mirror-sets"]) {
      if (values[flag] !== undefined) {
        throw new UsageError(`--${flag} is an option of mirror, not validate`);
      }
    }
    return { kind: "validate", config };
  }
  return {
    kind: "mirror",
    config,
    dryRun: Boolean(values["dry-run"]),
    only: (values.only as string[] | undefined) ?? [],
    report: values.report as string | undefined,
    nonInteractive: Boolean(values["non-interactive"]),
    ...(values.shard !== undefined ? { shard: values.shard as string } : {}),
    ...(values.shards !== undefined ? { shards: values.shards as string } : {}),
    ...mirrorSetsFlag(values["openshift-mirror-sets"], values.shard ?? values.shards),
    ...metricsFileOption(values["metrics-file"]),
  };
}

function mirrorSetsFlag(value: unknown, shard?: unknown): { openshiftMirrorSets?: string } {
  if (value === undefined) return {};
  if (value === "") throw new UsageError("--openshift-mirror-sets needs a path");
  if (shard !== undefined) {
    throw new UsageError(
      "--openshift-mirror-sets with --shard/--shards: a shard knows only its own repositories; give it to report --merge",
    );
  }
  return { openshiftMirrorSets: value as string };
}

/** `report --merge DIR [--output PATH]`: no mirror or validate option. */
function reportCommand(
  values: Record<string, string | boolean | string[] | undefined>,
): ReportCommand {
  for (
    const flag of [
      "config",
      "dry-run",
      "only",
      "report",
      "non-interactive",
      "shard",
      "shards",
      "metrics-file",
    ]
  ) {
    if (values[flag] !== undefined) throw new UsageError(`--${flag} is not an option of report`);
  }
  const merge = values.merge as string | undefined;
  if (!merge) throw new UsageError("report needs --merge DIR (the log dir of the shard reports)");
  const output = values.output as string | undefined;
  if (output === "") throw new UsageError("--output needs a path");
  return { kind: "report", merge, output, ...mirrorSetsFlag(values["openshift-mirror-sets"]) };
}

/** `--metrics-file PATH` (an empty path is a usage error). */
function metricsFileOption(value: unknown): { metricsFile?: string } {
  if (value === undefined) return {};
  if (value === "") throw new UsageError("--metrics-file needs a path");
  return { metricsFile: value as string };
}

/** `export` and `import`: their own flags, the shared ones as for mirror. */
function airgapCommand(
  command: "export" | "import",
  rest: string[],
  values: Record<string, string | boolean | string[] | undefined>,
): Command {
  if (values.help) return { kind: "help", text: HELPS[command] };
  if (rest.length > 0) throw new UsageError(`unexpected argument "${rest[0]}"`);
  const refused = ["shard", "shards", "merge", "output", "metrics-file"];
  if (command === "export") refused.push("openshift-mirror-sets");
  for (const flag of refused) {
    if (values[flag] !== undefined) {
      throw new UsageError(`--${flag} is not an option of ${command}`);
    }
  }
  const config = values.config as string | undefined;
  if (config === "") throw new UsageError("--config needs a path");
  const common = {
    config,
    dryRun: Boolean(values["dry-run"]),
    only: (values.only as string[] | undefined) ?? [],
    report: values.report as string | undefined,
    nonInteractive: Boolean(values["non-interactive"]),
  };
  const wrong = command === "export" ? "from" : "to";
  if (values[wrong] !== undefined) {
    throw new UsageError(`--${wrong} is not an option of ${command} (see ${command} --help)`);
  }
  if (command === "export") {
    const to = values.to as string | undefined;
    if (!to) throw new UsageError("export needs --to DIR (the layout directory to write)");
    const since = values.since as string | undefined;
    if (since === "") throw new UsageError("--since needs a path (a bananna-export.json)");
    const partSize = values["part-size"] as string | undefined;
    return {
      kind: "export",
      to,
      since,
      ...(partSize !== undefined ? { partSize } : {}),
      ...common,
    };
  }
  for (const flag of ["since", "part-size"]) {
    if (values[flag] !== undefined) {
      throw new UsageError(`--${flag} is an option of export, not import`);
    }
  }
  const from = values.from as string | undefined;
  if (!from) {
    throw new UsageError("import needs --from DIR (an export directory or its first part)");
  }
  return { kind: "import", from, ...mirrorSetsFlag(values["openshift-mirror-sets"]), ...common };
}
