// deno-lint-ignore-file no-console
/**
 * bananna-bot entry point: argv -> command -> exit code. The only place that calls Deno.exit.
 * Expected failures print one clear message (no stack); anything else is a bug and shows its
 * stack with BANANNA_BOT_DEBUG=1.
 *
 * @module
 */
import { type Command, COMMAND_OPTIONS, parseArgs } from "./lib/cli/args.ts";
import type { Io } from "./lib/cli/io.ts";
import { ConfigError, MirrorError, UsageError } from "./lib/errors.ts";
import { Secrets } from "./lib/log/redact.ts";

/** Run the CLI; returns the exit code. */
export async function main(args: string[], io: Io): Promise<number> {
  let command: Command;
  try {
    command = parseArgs(args);
  } catch (error) {
    if (error instanceof UsageError) {
      // Subcommands only: the program is `deno task`, the binary or the container's entrypoint.
      const asked = Object.hasOwn(COMMAND_OPTIONS, args[0] ?? "") ? `${args[0]} --help` : "--help";
      io.stderr(`bananna-bot: ${error.message}\n"${asked}" shows the usage.\n`);
      return 2;
    }
    throw error;
  }
  try {
    switch (command.kind) {
      case "help":
        io.stdout(command.text);
        return 0;
      case "version":
        io.stdout(command.text + "\n");
        return 0;
      case "validate": {
        const { runValidate } = await import("./lib/cli/validate_command.ts");
        return await runValidate(command, io);
      }
      case "mirror": {
        const { runMirror } = await import("./lib/cli/mirror_command.ts");
        return await runMirror(command, io);
      }
      case "export": {
        const { runExportCommand } = await import("./lib/cli/airgap_command.ts");
        return await runExportCommand(command, io);
      }
      case "import": {
        const { runImportCommand } = await import("./lib/cli/airgap_command.ts");
        return await runImportCommand(command, io);
      }
      case "report": {
        const { runReport } = await import("./lib/cli/report_command.ts");
        return await runReport(command, io);
      }
    }
  } catch (error) {
    return report(error, io);
  }
}

function report(error: unknown, io: Io): number {
  const say = (text: string) => io.stderr(io.secrets.mask(text) + "\n");
  if (io.signal.aborted) {
    say("bananna-bot: interrupted");
    return 130;
  }
  if (error instanceof UsageError) {
    say(`bananna-bot: ${error.message} (see --help)`);
    return 2;
  }
  if (error instanceof ConfigError) {
    for (const p of error.problems) say(`error: ${p.path ? `${p.path}: ` : ""}${p.message}`);
    // A config that was read (its problems have paths) gets the validate command to run.
    const hint = error.problems.some((p) => p.path)
      ? `; "validate --config ${error.file}" lists them with any warnings`
      : "";
    say(`${error.file}: ${error.problems.length} problem(s)${hint} [CONFIG_INVALID]`);
    return 2;
  }
  if (error instanceof MirrorError) {
    say(`bananna-bot: [${error.code}] ${error.message}`);
    return 1;
  }
  if (error instanceof Deno.errors.NotCapable) {
    const flag = /--allow-[a-z]+/.exec(error.message)?.[0] ?? "the missing --allow-* flag";
    say(`bananna-bot: missing permission: ${error.message.split("\n")[0]} (run with ${flag})`);
    return 2;
  }
  say(`bananna-bot: internal error: ${error instanceof Error ? error.message : String(error)}`);
  if (io.env.BANANNA_BOT_DEBUG) say(error instanceof Error ? error.stack ?? "" : "");
  else say("(run with BANANNA_BOT_DEBUG=1 for the stack, and report it)");
  return 1;
}

if (import.meta.main) {
  const controller = new AbortController();
  let interrupts = 0;
  const onSignal = () => {
    interrupts++;
    if (interrupts > 1) Deno.exit(130);
    controller.abort(new Error("interrupted"));
  };
  Deno.addSignalListener("SIGINT", onSignal);
  if (Deno.build.os !== "windows") Deno.addSignalListener("SIGTERM", onSignal);
  const encoder = new TextEncoder();
  const write = (file: typeof Deno.stdout) => (text: string) => {
    const bytes = encoder.encode(text);
    let offset = 0;
    while (offset < bytes.length) offset += file.writeSync(bytes.subarray(offset));
  };
  let env: Record<string, string | undefined>;
  try {
    env = Deno.env.toObject();
  } catch {
    console.error("bananna-bot: missing permission to read the environment (run with --allow-env)");
    Deno.exit(2);
  }
  const code = await main(Deno.args, {
    stdout: write(Deno.stdout),
    stderr: write(Deno.stderr),
    isTerminal: Deno.stdout.isTerminal(),
    env,
    cwd: Deno.cwd(),
    signal: controller.signal,
    secrets: new Secrets(),
  });
  Deno.exit(controller.signal.aborted ? 130 : code);
}
