/**
 * A real terminal for tests: tmux sessions (a pty), their screen, and typing into them.
 *
 * @module
 */

/** Whether tmux can run here. */
export function hasTmux(): boolean {
  try {
    return new Deno.Command("tmux", { args: ["-V"], stdout: "null", stderr: "null" }).outputSync()
      .success;
  } catch {
    return false;
  }
}

/** Run a tmux command; its stdout. */
export async function tmux(...args: string[]): Promise<string> {
  const out = await new Deno.Command("tmux", { args, stdout: "piped", stderr: "piped" }).output();
  return new TextDecoder().decode(out.stdout);
}

/** The screen (and 200 lines of scrollback); with `escapes`, colours and attributes as SGR codes. */
export async function screenOf(session: string, escapes = false): Promise<string> {
  return await tmux(
    "capture-pane",
    "-p",
    "-J",
    ...(escapes ? ["-e"] : []),
    "-S",
    "-200",
    "-t",
    session,
  );
}

/** Poll the screen until `pattern` shows (or throw with the screen after `timeoutMs`). */
export async function waitFor(
  session: string,
  pattern: RegExp,
  timeoutMs = 30_000,
  intervalMs = 100,
): Promise<string> {
  const end = Date.now() + timeoutMs;
  let screen = "";
  while (Date.now() < end) {
    screen = await screenOf(session);
    if (pattern.test(screen)) return screen;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`timed out waiting for ${pattern} on the screen:\n${screen}`);
}

/**
 * Start `argv` in `dir` in a new detached 200x50 session, with `env` (`NAME=value`, or `-u NAME`
 * pairs to unset). The shell prints `EXIT=<code>` when it ends and keeps the screen a minute.
 * Returns the session name.
 */
export async function startInTmux(
  dir: string,
  argv: string[],
  env: string[] = [],
): Promise<string> {
  const session = `bb-tmux-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  const command = [
    "cd",
    shellQuote(dir),
    "&&",
    "env",
    ...env.map(shellQuote),
    ...argv.map(shellQuote),
    "; echo EXIT=$?; sleep 60",
  ].join(" ");
  await tmux("new-session", "-d", "-s", session, "-x", "200", "-y", "50", command);
  return session;
}

/** Quote for sh. */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
