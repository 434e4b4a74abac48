import type { Secrets } from "../log/redact.ts";

/** What a command needs from the outside world, passed in so tests can capture it. */
export interface Io {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** Is stdout (and stdin, for prompts) a terminal? */
  isTerminal: boolean;
  env: Record<string, string | undefined>;
  cwd: string;
  /** Aborted on SIGINT / SIGTERM. */
  signal: AbortSignal;
  /** This process's secrets: a command registers what it reads; errors are masked with it. */
  secrets: Secrets;
}
