/**
 * Runs the docker CLI for the docker engine: one process per call, under a timeout, killable.
 *
 * Why a process group: the docker CLI is only a client, but it may start credential helpers. Each
 * call is spawned `detached` (setsid), so the CLI leads its own process group and a timeout or an
 * abort kills the whole group with one SIGKILL. When the CLI dies, dockerd cancels the request on
 * its side (measured with dockerd 20.10: a pull whose CLI was killed does not continue in the
 * daemon; see tests/engine/docker_engine_test.ts).
 *
 * Output is kept only as a tail (the last 64 KiB of each stream): docker's progress lines are
 * never printed and never grow memory. Stdin carries the password of `docker login`; argv never
 * holds a secret.
 *
 * @module
 */
import type { Code } from "../log/codes.ts";
import { MirrorError } from "../errors.ts";
import type { Secrets } from "../log/redact.ts";
import { checkWrite } from "../write_guard.ts";

/** The outcome of one docker call that ran to its end. */
export interface DockerRunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** What a docker failure means for a retry. */
export type DockerFailureKind = "auth" | "not-found" | "transient" | "other";

/** A docker call that failed; `retryable` says whether trying again may help. */
export class DockerError extends MirrorError {
  /** The docker subcommand and its last argument, e.g. `pull 127.0.0.1:5000/a/b:1`. */
  readonly command: string;
  /** Exit code (undefined when killed on timeout). */
  readonly exitCode?: number;
  /** docker's last lines, masked. */
  readonly detail: string;
  /** The failure class read from docker's message. */
  readonly kind: DockerFailureKind;
  /** Timeouts, network errors and 5xx may pass; auth and not-found do not. */
  readonly retryable: boolean;
  /** Create a docker error. */
  constructor(
    code: Code,
    message: string,
    details: { command: string; exitCode?: number; kind: DockerFailureKind; detail?: string },
  ) {
    super(code, message);
    this.detail = details.detail ?? message;
    this.name = "DockerError";
    this.command = details.command;
    this.exitCode = details.exitCode;
    this.kind = details.kind;
    this.retryable = details.kind === "transient";
  }
}

/** Options for {@link DockerCli}. */
export interface DockerCliOptions {
  /** @default "docker" */
  binary?: string;
  /** The complete environment of every call (DOCKER_HOST, DOCKER_CONFIG, PATH ...). */
  env: Record<string, string | undefined>;
  /** Each call is killed after this long. */
  timeoutMs: number;
  /** Told the argv of every call before it starts. */
  onDockerCall?: (args: string[]) => void;
  /** Masks docker's messages before they reach an error. */
  secrets: Secrets;
}

const TAIL_BYTES = 64 * 1024;

/** Runs docker commands; see the module doc. */
export class DockerCli {
  #options: DockerCliOptions;
  #running = new Set<number>();

  /** Create a runner. Throws RangeError for a timeout that is not a positive number. */
  constructor(options: DockerCliOptions) {
    if (!(options.timeoutMs > 0)) {
      throw new RangeError(`dockerTimeoutMs must be > 0, got ${options.timeoutMs}`);
    }
    this.#options = options;
  }

  /**
   * Run `docker ...args` to its end and return its exit code and output tails.
   *
   * @throws {MirrorError} DOCKER_NOT_AVAILABLE when the binary is missing.
   * @throws {DockerError} DOCKER_TIMEOUT when the call outlived the timeout (its group was killed).
   * @throws the signal's reason when `signal` aborted (the process group was killed).
   * @throws {MirrorError} MIRROR_LOCK_LOST from the write guard before a `push`.
   */
  async run(
    args: string[],
    options: { stdin?: string; signal?: AbortSignal } = {},
  ): Promise<DockerRunResult> {
    const { signal } = options;
    signal?.throwIfAborted();
    // A push writes to a registry: the run's write guard first (lib/write_guard.ts).
    if (args[0] === "push") await checkWrite(`docker ${args.join(" ")}`);
    const binary = this.#options.binary ?? "docker";
    this.#options.onDockerCall?.([...args]);
    const env: Record<string, string> = {};
    for (const [key, value] of Object.entries(this.#options.env)) {
      if (value !== undefined) env[key] = value;
    }
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(binary, {
        args,
        env,
        clearEnv: true,
        detached: true,
        stdin: options.stdin === undefined ? "null" : "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        throw new MirrorError(
          "DOCKER_NOT_AVAILABLE",
          `The docker CLI ("${binary}") is not installed or not on PATH. Install docker ` +
            `(apt-get install docker.io), or use operation.engine: registry (no docker needed)`,
          { cause: error },
        );
      }
      throw error;
    }
    const pid = child.pid;
    this.#running.add(pid);
    let timedOut = false;
    const kill = () => killGroup(child);
    const timer = setTimeout(() => {
      timedOut = true;
      kill();
    }, this.#options.timeoutMs);
    signal?.addEventListener("abort", kill, { once: true });
    try {
      const feed = options.stdin === undefined
        ? Promise.resolve()
        : feedStdin(child, options.stdin);
      const out = tail(child.stdout);
      const err = tail(child.stderr);
      const status = await child.status;
      // The process is gone; its pipes end now unless a descendant that left the group holds
      // them: give them a moment, then stop reading.
      const grace = setTimeout(() => {
        out.cancel();
        err.cancel();
      }, 2000);
      const [stdout, stderr] = await Promise.all([out.text, err.text, feed]);
      clearTimeout(grace);
      if (timedOut) {
        throw new DockerError(
          "DOCKER_TIMEOUT",
          `docker ${describe(args)} ran past dockerTimeout (${
            this.#options.timeoutMs / 1000
          } s) and was killed`,
          { command: describe(args), kind: "transient" },
        );
      }
      signal?.throwIfAborted();
      return { code: status.code, stdout, stderr };
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener("abort", kill);
      this.#running.delete(pid);
    }
  }

  /** Like {@link run}, but a non-zero exit throws a {@link DockerError} (DOCKER_COMMAND_FAILED). */
  async checked(
    args: string[],
    options: { stdin?: string; signal?: AbortSignal } = {},
  ): Promise<DockerRunResult> {
    const result = await this.run(args, options);
    if (result.code !== 0) throw this.failure(args, result);
    return result;
  }

  /** The error for a call that exited non-zero: docker's last lines, masked, and their class. */
  failure(
    args: string[],
    result: DockerRunResult,
    code: Code = "DOCKER_COMMAND_FAILED",
  ): DockerError {
    const text = this.message(result);
    return new DockerError(
      code,
      `docker ${describe(args)} exited ${result.code}: ${text}`,
      {
        command: describe(args),
        exitCode: result.code,
        kind: classifyDockerFailure(text),
        detail: text,
      },
    );
  }

  /** docker's last lines of stderr (stdout when stderr is empty), masked. */
  message(result: DockerRunResult): string {
    return lastLines(this.#options.secrets.mask(result.stderr.trim() || result.stdout));
  }

  /** Pids of docker processes running now (for tests and diagnostics). */
  get running(): number[] {
    return [...this.#running];
  }
}

/** Kill the process group the CLI leads (setsid), falling back to the process alone. */
function killGroup(child: Deno.ChildProcess): void {
  try {
    Deno.kill(-child.pid, "SIGKILL");
  } catch {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
}

async function feedStdin(child: Deno.ChildProcess, text: string): Promise<void> {
  const writer = child.stdin.getWriter();
  try {
    await writer.write(new TextEncoder().encode(text));
    await writer.close();
  } catch {
    // docker exited before reading stdin; its exit code and stderr tell why.
  }
}

/** Read a stream to its end (or until cancelled), keeping only its last {@link TAIL_BYTES}. */
function tail(stream: ReadableStream<Uint8Array>): { text: Promise<string>; cancel(): void } {
  const reader = stream.getReader();
  const read = async () => {
    const chunks: Uint8Array[] = [];
    let size = 0;
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        chunks.push(value);
        size += value.length;
        while (size - chunks[0].length >= TAIL_BYTES) {
          size -= (chunks.shift() as Uint8Array).length;
        }
      }
    } catch {
      // cancelled: keep what was read
    }
    const all = new Uint8Array(size);
    let offset = 0;
    for (const chunk of chunks) {
      all.set(chunk, offset);
      offset += chunk.length;
    }
    return new TextDecoder().decode(all.subarray(Math.max(0, size - TAIL_BYTES)));
  };
  return { text: read(), cancel: () => void reader.cancel().catch(() => {}) };
}

/** `pull 127.0.0.1:5000/a/b:1`: the subcommand and its last argument (never stdin). */
function describe(args: string[]): string {
  return args.length > 1 ? `${args[0]} ${args[args.length - 1]}` : args[0] ?? "";
}

/** The last `count` non-empty lines of `text`, joined with " | ". */
export function lastLines(text: string, count = 3): string {
  const lines = text.split("\n").map((l) => l.trim()).filter((l) => l !== "");
  return lines.slice(-count).join(" | ") || "no message";
}

/**
 * Classify docker's error text: credentials refused, image absent, or a failure that may pass
 * (network, 5xx, 429, timeouts). Anything else is `other` and is not retried.
 */
export function classifyDockerFailure(text: string): DockerFailureKind {
  if (
    /unauthorized|authentication required|denied|no basic auth credentials|\b401\b|\b403\b|forbidden/i
      .test(text)
  ) return "auth";
  if (/not found|manifest unknown|name unknown|no such image|does not exist|\b404\b/i.test(text)) {
    return "not-found";
  }
  if (
    /timeout|timed out|connection reset|connection refused|broken pipe|\bEOF\b|i\/o timeout|TLS handshake|\b50[0-9]\b|too many requests|\b429\b|service unavailable|bad gateway|temporar/i
      .test(text)
  ) return "transient";
  return "other";
}
