/**
 * argv -> Command, parsed strictly as node:util parseArgs does (an unknown flag is a UsageError
 * naming it) by {@link parse}. The help texts live in help_text.ts.
 *
 * @module
 */
import { closest, UsageError } from "../errors.ts";
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
  /** `--staging DIR`: where tar parts are extracted (default: the log dir). */
  staging?: string;
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
  staging: { type: "string" },
} as const;

/**
 * Every command and the options it takes (besides --help and --version, which every command
 * takes). An option given to a command that does not list it is a usage error; the synopsis in
 * docs/commands.md and each command's help are checked against this table.
 */
export const COMMAND_OPTIONS = {
  mirror: [
    "config",
    "dry-run",
    "only",
    "report",
    "non-interactive",
    "shard",
    "shards",
    "openshift-mirror-sets",
    "metrics-file",
  ],
  validate: ["config", "strict"],
  report: ["merge", "output", "openshift-mirror-sets"],
  export: ["config", "to", "since", "part-size", "dry-run", "only", "report", "non-interactive"],
  import: [
    "config",
    "from",
    "dry-run",
    "only",
    "report",
    "non-interactive",
    "openshift-mirror-sets",
    "staging",
  ],
} as const satisfies Record<string, readonly (keyof typeof OPTIONS)[]>;

/** One option of {@link OPTIONS}. */
interface OptionSpec {
  type: "string" | "boolean";
  short?: string;
  multiple?: boolean;
}

/** Each option's value as parsed: a string, `true`, or every string of a `multiple` option. */
type OptionValues = Record<string, string | boolean | string[] | undefined>;

/**
 * Strict argv parsing with node:util parseArgs' rules (strict, positionals allowed): `--name`,
 * `--name=value`, `-c value`, `-cvalue`, grouped booleans `-nV`, `--` ending the options; an
 * unknown option, a string option without its value (or with an option-like one: write
 * `--name=-x`) or a boolean given a value is an error. Not node:util itself: it is the first
 * `node:` module of a run and brings part of Deno's Node layer, about 10 ms on every command.
 *
 * @throws {UsageError}
 */
function parse(args: string[], options: Record<string, OptionSpec>): {
  values: OptionValues;
  positionals: string[];
} {
  const values: OptionValues = Object.create(null);
  const positionals: string[] = [];
  const shorts = new Map(
    Object.entries(options).flatMap(([n, o]) => o.short ? [[o.short, n]] : []),
  );
  const label = (name: string) =>
    options[name].short ? `-${options[name].short}, --${name}` : `--${name}`;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--") {
      positionals.push(...args.slice(i + 1));
      break;
    }
    if (arg.length < 2 || !arg.startsWith("-")) {
      positionals.push(arg);
      continue;
    }
    // Each option in this word: `--name[=value]`, or `-abc` as -a -b -c, where a string option
    // takes the rest of the word as its value.
    const found: { raw: string; name?: string; inline?: string }[] = [];
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      const raw = eq === -1 ? arg : arg.slice(0, eq);
      const name = Object.hasOwn(options, raw.slice(2)) ? raw.slice(2) : undefined;
      found.push({ raw, name, inline: eq === -1 ? undefined : arg.slice(eq + 1) });
    } else {
      for (let j = 1; j < arg.length; j++) {
        const name = shorts.get(arg[j]);
        const rest = arg.slice(j + 1);
        if (name && options[name].type === "string" && rest) {
          found.push({ raw: `-${arg[j]}`, name, inline: rest });
          break;
        }
        found.push({ raw: `-${arg[j]}`, name });
      }
    }
    for (const { raw, name, inline } of found) {
      if (name === undefined) throw new UsageError(`Unknown option '${raw}'`);
      const option = options[name];
      if (option.type === "boolean") {
        if (inline !== undefined) {
          throw new UsageError(`Option '${label(name)}' does not take an argument`);
        }
        values[name] = true;
        continue;
      }
      let value = inline;
      if (value === undefined) {
        value = args[i + 1];
        if (value === undefined) {
          throw new UsageError(`Option '${label(name)} <value>' argument missing`);
        }
        if (value.length > 1 && value.startsWith("-")) {
          throw new UsageError(
            `Option '${raw}' argument is ambiguous: "${value}" is an option; for a value that starts with "-" write --${name}=${value}`,
          );
        }
        i++;
      }
      if (option.multiple) values[name] = [...(values[name] as string[] | undefined) ?? [], value];
      else values[name] = value;
    }
  }
  return { values, positionals };
}

/** The name of a command that runs (not help). */
export type CommandName = keyof typeof COMMAND_OPTIONS;

/** Every option as written on the command line (`--config`, ...), for the parser's users. */
export const OPTION_NAMES: string[] = Object.keys(OPTIONS).map((name) => `--${name}`);

const HELP_OF: Record<CommandName, string> = {
  mirror: MIRROR_HELP,
  validate: VALIDATE_HELP,
  report: REPORT_HELP,
  export: HELPS.export,
  import: HELPS.import,
};

/** `word` as a command name, or a UsageError with the commands and the nearest one. */
function commandName(word: string): CommandName {
  if (Object.hasOwn(COMMAND_OPTIONS, word)) return word as CommandName;
  const names = [...Object.keys(COMMAND_OPTIONS), "help"];
  const near = closest(word, names);
  throw new UsageError(
    `unknown command "${word}"${near ? ` (did you mean "${near}"?)` : ""} (commands: ${
      names.join(", ")
    })`,
  );
}

/** node's "Unknown option '--x'" with the nearest option, when one is near. */
function unknownOption(message: string): string {
  const option = /^Unknown option '(--[^']+)'/.exec(message)?.[1];
  const near = option ? closest(option, OPTION_NAMES) : undefined;
  return near ? `${message} (did you mean ${near}?)` : message;
}

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

/**
 * `deno task mirror -- --dry-run` runs `main.ts mirror -- --dry-run`: Deno 2 passes the `--` on.
 * No command takes positional arguments after its name, so a `--` first or right after the command
 * is that separator and is dropped.
 */
function dropTaskSeparator(argv: string[]): string[] {
  if (argv[0] === "--") return argv.slice(1);
  if (argv[1] === "--" && !argv[0].startsWith("-")) return [argv[0], ...argv.slice(2)];
  return argv;
}

/** Parse argv into a Command. @throws {UsageError} */
export function parseArgs(argv: string[]): Command {
  let values: OptionValues;
  let positionals: string[];
  try {
    ({ values, positionals } = parse(joinDashValues(dropTaskSeparator(argv)), OPTIONS));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    throw new UsageError(unknownOption(error.message));
  }
  const [command, ...rest] = positionals;
  if (values.version) return { kind: "version", text: `bananna-bot ${VERSION}` };
  if (command === "help") {
    if (rest.length > 1) throw new UsageError(`unexpected argument "${rest[1]}"`);
    return {
      kind: "help",
      text: rest[0] === undefined ? MAIN_HELP : HELP_OF[commandName(rest[0])],
    };
  }
  if (command === undefined) {
    if (values.help) return { kind: "help", text: MAIN_HELP };
    throw new UsageError("no command given (mirror, validate, report, export or import)");
  }
  const name = commandName(command);
  if (rest.length > 0) throw new UsageError(`unexpected argument "${rest[0]}"`);
  const takes: readonly string[] = COMMAND_OPTIONS[name];
  for (const [flag, value] of Object.entries(values)) {
    if (value === undefined || flag === "help" || takes.includes(flag)) continue;
    const owners = Object.entries(COMMAND_OPTIONS).filter(([, o]) =>
      (o as readonly string[]).includes(flag)
    ).map(([c]) => c);
    throw new UsageError(
      `--${flag} is not an option of ${name} (it is an option of ${owners.join(", ")})`,
    );
  }
  if (values.help) return { kind: "help", text: HELP_OF[name] };
  if (name === "export" || name === "import") return airgapCommand(name, values);
  if (name === "report") return reportCommand(values);
  const config = values.config as string | undefined;
  if (config === "") throw new UsageError("--config needs a path");
  if (name === "validate") {
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
  values: Record<string, string | boolean | string[] | undefined>,
): Command {
  const config = values.config as string | undefined;
  if (config === "") throw new UsageError("--config needs a path");
  const common = {
    config,
    dryRun: Boolean(values["dry-run"]),
    only: (values.only as string[] | undefined) ?? [],
    report: values.report as string | undefined,
    nonInteractive: Boolean(values["non-interactive"]),
  };
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
  const from = values.from as string | undefined;
  if (!from) {
    throw new UsageError("import needs --from DIR (an export directory or its first part)");
  }
  const staging = values.staging as string | undefined;
  if (staging === "") throw new UsageError("--staging needs a directory");
  return {
    kind: "import",
    from,
    ...mirrorSetsFlag(values["openshift-mirror-sets"]),
    ...(staging !== undefined ? { staging } : {}),
    ...common,
  };
}
