/**
 * The only user-facing writer besides the logger. Colour only on a terminal and never with
 * NO_COLOR; a status line redrawn in place on a terminal, nothing of it elsewhere.
 *
 * @module
 */

/** Options for {@link createTerminal}. */
export interface TerminalOptions {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  isTerminal: boolean;
  noColor: boolean;
}

/** Writes lines, warnings, errors and one status line. */
export interface Terminal {
  readonly isTerminal: boolean;
  line(text: string): void;
  warn(text: string): void;
  error(text: string): void;
  /** Redraw the status line (terminal only). */
  status(text: string): void;
  clearStatus(): void;
  color: Record<"green" | "red" | "yellow" | "bold" | "dim", (text: string) => string>;
}

/** Create a terminal writer. */
export function createTerminal(options: TerminalOptions): Terminal {
  const useColor = options.isTerminal && !options.noColor;
  const paint = (code: string) => (text: string) => useColor ? `\x1b[${code}m${text}\x1b[0m` : text;
  const color = {
    green: paint("32"),
    red: paint("31"),
    yellow: paint("33"),
    bold: paint("1"),
    dim: paint("2"),
  };
  let statusShown = false;
  const clear = () => {
    if (statusShown) {
      options.stderr("\r\x1b[2K");
      statusShown = false;
    }
  };
  return {
    isTerminal: options.isTerminal,
    color,
    line(text) {
      clear();
      options.stdout(text + "\n");
    },
    warn(text) {
      clear();
      options.stderr(color.yellow(text) + "\n");
    },
    error(text) {
      clear();
      options.stderr(color.red(text) + "\n");
    },
    status(text) {
      if (!options.isTerminal) return;
      const width = Deno.stdout.isTerminal() ? Deno.consoleSize().columns : 120;
      const shown = text.length > width - 1 ? text.slice(0, width - 2) + "…" : text;
      options.stderr(`\r\x1b[2K${color.dim(shown)}`);
      statusShown = true;
    },
    clearStatus: clear,
  };
}
