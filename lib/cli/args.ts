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
  /** `--openshift-mirror-sets PATH`: write IDMS/ITMS YAML there after the run. */
  openshiftMirrorSets?: string;
}

/** A parsed command line. */
export type Command =
  | { kind: "help"; text: string }
  | { kind: "version"; text: string }
  | ValidateCommand
  | MirrorCommand;

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
      --openshift-mirror-sets PATH
                         after the run, write an ImageDigestMirrorSet (and an ImageTagMirrorSet
                         for images named by tag) mapping every mirrored repository to its
                         mirror, for "oc apply -f PATH" (registry engine only; not written
                         in a dry run)
  -h, --help             show this help

${EXIT_CODES}
`;

/** Help of `validate`. */
const VALIDATE_HELP = `Usage: bananna-bot validate [options]

Check the config: schema, unknown keys, image references, target names, placeholders, duplicate
destinations, CA files, Quay tokens. Prints every problem with its path and exits 2, or a short
summary and exits 0. Makes no network request.

Options:
  -c, --config PATH   config file (default ./config.ts, or $BANANNA_BOT_CONFIG)
  -h, --help          show this help
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
        "openshift-mirror-sets": { type: "string" },
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
      text: topic === "mirror" ? MIRROR_HELP : topic === "validate" ? VALIDATE_HELP : MAIN_HELP,
    };
  }
  if (command === undefined) {
    if (values.help) return { kind: "help", text: MAIN_HELP };
    throw new UsageError("no command given (mirror or validate)");
  }
  if (command !== "mirror" && command !== "validate") {
    throw new UsageError(`unknown command "${command}" (commands: mirror, validate, help)`);
  }
  if (rest.length > 0) throw new UsageError(`unexpected argument "${rest[0]}"`);
  if (values.help) {
    return { kind: "help", text: command === "mirror" ? MIRROR_HELP : VALIDATE_HELP };
  }
  const config = values.config as string | undefined;
  if (config === "") throw new UsageError("--config needs a path");
  if (command === "validate") {
    const mirrorFlags = ["dry-run", "only", "report", "non-interactive", "openshift-mirror-sets"];
    for (const flag of mirrorFlags) {
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
    ...mirrorSetsFlag(values["openshift-mirror-sets"]),
  };
}

function mirrorSetsFlag(value: unknown): { openshiftMirrorSets?: string } {
  if (value === undefined) return {};
  if (value === "") throw new UsageError("--openshift-mirror-sets needs a path");
  return { openshiftMirrorSets: value as string };
}
