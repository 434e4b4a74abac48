/**
 * argv -> Command, with node:util parseArgs in strict mode (an unknown flag is a UsageError
 * naming it). The help texts live in help_text.ts.
 *
 * @module
 */
import { parseArgs as parse } from "node:util";
import { UsageError } from "../errors.ts";
import { VERSION } from "../version.ts";
import { HELPS, MAIN_HELP, MIRROR_HELP, REPORT_HELP, VALIDATE_HELP } from "./help_text.ts";

/** `bananna-bot validate`. */
export interface ValidateCommand {
  kind: "validate";
  config?: string;
  /** `--strict` (CI): a secret written literally in the config is an error, not a warning. */
  strict?: boolean;
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

const OPTIONS = {
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
  strict: { type: "boolean" },
} as const;

/**
 * `--shard -1/2` as `--shard=-1/2`: a value that starts with "-" and a digit is a (bad) value,
 * never an option, so it reaches the option's own check and its message.
 */
function joinDashValues(argv: string[]): string[] {
  const takesValue = new Set(
    Object.entries(OPTIONS).filter(([, o]) => o.type === "string").flatMap(([name, o]) =>
      "short" in o ? [`--${name}`, `-${o.short}`] : [`--${name}`]
    ),
  );
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const next = argv[i + 1];
    if (takesValue.has(argv[i]) && next !== undefined && /^-\d/.test(next)) {
      out.push(`${argv[i]}=${next}`);
      i++;
    } else out.push(argv[i]);
  }
  return out;
}

/** Parse argv into a Command. @throws {UsageError} */
export function parseArgs(argv: string[]): Command {
  let values: Record<string, string | boolean | string[] | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parse({
      args: joinDashValues(argv),
      strict: true,
      allowPositionals: true,
      options: OPTIONS,
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
  if (values.strict && command !== "validate") {
    throw new UsageError(`--strict is an option of validate, not ${command}`);
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
    return { kind: "validate", config, ...(values.strict ? { strict: true } : {}) };
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
