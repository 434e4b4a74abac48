/**
 * Run the CLI as a subprocess with the same permissions as `deno task mirror`:
 * exit code, stdout and stderr come back separately.
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { type ProcessResult, runProcess } from "./process.ts";

/** The repository root. */
export const ROOT: string = fileURLToPath(new URL("../../", import.meta.url)).replace(/\/$/, "");

/** What a CLI run gave back. */
export type CliResult = ProcessResult;

/** Options for {@link runCli}. */
export interface RunCliOptions {
  /** Extra environment (on top of PATH, HOME, DOCKER_*). */
  env?: Record<string, string>;
  cwd?: string;
  stdin?: string;
  /** Kill after this many ms. @default 120000 */
  timeoutMs?: number;
  /** Deno flags before the permissions (e.g. `--preload FILE`). */
  denoFlags?: string[];
}

/** Permission flags of the mirror/validate tasks. */
export const CLI_PERMISSIONS = [
  "--allow-net",
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-run",
];

/** The argv that runs main.ts (for tmux and other wrappers), with `denoFlags` before the permissions. */
export function cliArgv(args: string[], denoFlags: string[] = []): string[] {
  return ["deno", "run", "--frozen", ...denoFlags, ...CLI_PERMISSIONS, `${ROOT}/main.ts`, ...args];
}

/** Run `main.ts` with `args`. */
export async function runCli(args: string[], options: RunCliOptions = {}): Promise<CliResult> {
  const base: Record<string, string> = {};
  for (const key of ["PATH", "HOME", "DENO_DIR", "TMPDIR", "DOCKER_HOST", "DOCKER_CONFIG"]) {
    const value = Deno.env.get(key);
    if (value !== undefined) base[key] = value;
  }
  const [cmd, ...rest] = cliArgv(args, options.denoFlags);
  return await runProcess(cmd, rest, {
    cwd: options.cwd ?? ROOT,
    env: { ...base, NO_COLOR: "1", ...options.env },
    clearEnv: true,
    stdin: options.stdin,
    timeoutMs: options.timeoutMs,
  });
}
