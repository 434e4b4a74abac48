/**
 * Run a program to completion with optional stdin and a kill timeout; exit code, stdout and stderr
 * come back separately (for the CLI runner and the fixtures' openssl/htpasswd calls).
 *
 * @module
 */

/** What a process gave back. */
export interface ProcessResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Options for {@link runProcess}. */
export interface RunProcessOptions {
  cwd?: string;
  env?: Record<string, string>;
  /** Start from an empty environment (only `env`). */
  clearEnv?: boolean;
  stdin?: string;
  /** SIGKILL after this many ms. @default 120000 */
  timeoutMs?: number;
}

/** Run `cmd args...` and wait for it. */
export async function runProcess(
  cmd: string,
  args: string[],
  options: RunProcessOptions = {},
): Promise<ProcessResult> {
  const child = new Deno.Command(cmd, {
    args,
    cwd: options.cwd,
    env: options.env,
    clearEnv: options.clearEnv,
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(options.stdin));
    await writer.close();
  }
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }, options.timeoutMs ?? 120_000);
  try {
    const out = await child.output();
    return {
      code: out.code,
      stdout: new TextDecoder().decode(out.stdout),
      stderr: new TextDecoder().decode(out.stderr),
    };
  } finally {
    clearTimeout(timer);
  }
}
