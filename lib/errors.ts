/**
 * Error classes. Messages follow std's style: they say what was being done and what went wrong,
 * name the thing (image, registry, config path) and never contain a secret (callers mask text
 * with `lib/log/redact.ts` before it gets here when it may hold one).
 *
 * - {@link MirrorError}: an expected failure with a catalogue code (exit 1 at the top).
 * - {@link UsageError}: bad command line (exit 2, help shown).
 * - {@link ConfigError}: bad configuration (exit 2), one or more problems with their paths.
 * Anything else is a bug and keeps its stack.
 *
 * @module
 */
import type { Code } from "./log/codes.ts";

/** An expected failure that carries a code from the catalogue. */
export class MirrorError extends Error {
  /** The catalogue code. */
  readonly code: Code;
  /** Create an error with a code, a message and an optional cause. */
  constructor(code: Code, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "MirrorError";
    this.code = code;
  }
}

/** A bad command line. main.ts prints the message and the help, and exits 2. */
export class UsageError extends Error {
  /** Create a usage error. */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** One problem in a configuration, with the path of the offending value. */
export interface ConfigProblem {
  /** e.g. `images["nginx:1.25"].targets[1]` (empty for the file as a whole). */
  path: string;
  /** What is wrong and, where it helps, what to do. */
  message: string;
  /** Warnings do not fail validation. */
  severity?: "error" | "warning";
}

/** A configuration that cannot be used. Exit 2. */
export class ConfigError extends Error {
  /** The problems found, each with its path. */
  readonly problems: ConfigProblem[];
  /** The config file (or "config.ts") the problems belong to. */
  readonly file: string;
  /** Create a config error from its problems. */
  constructor(file: string, problems: ConfigProblem[]) {
    super(
      `${file}: ${problems.length} problem(s)\n` +
        problems.map((p) => `  ${p.path ? `${p.path}: ` : ""}${p.message}`).join("\n"),
    );
    this.name = "ConfigError";
    this.file = file;
    this.problems = problems;
  }
}

/** The message of any thrown value, without a stack. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * The candidate nearest to `word` by edit distance, when it is near enough to be a typo: the
 * did-you-mean of a usage error (an unknown command or flag) and of a config problem (an unknown
 * key). Here, in a leaf, so that parsing argv loads nothing of the config schema.
 */
export function closest(word: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestScore = Infinity;
  for (const c of candidates) {
    const d = distance(word.toLowerCase(), c.toLowerCase());
    if (d < bestScore) {
      bestScore = d;
      best = c;
    }
  }
  return bestScore <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length];
}
