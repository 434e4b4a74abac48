/**
 * Run `main.ts` as a subprocess under `/usr/bin/time -v` and report its peak RSS, to prove that a
 * hostile source (a huge or endless manifest, an endless blob) cannot grow the run's memory.
 *
 * @module
 */
import { cliArgv, type CliResult, ROOT } from "./cli.ts";
import { runProcess } from "./process.ts";

/** A CLI run with its peak resident set size and wall time. */
export interface MeasuredRun extends CliResult {
  /** Peak RSS of the deno process in MB (from `Maximum resident set size`). */
  peakRssMb: number;
  /** Wall time in ms. */
  elapsedMs: number;
}

/**
 * The `--v8-flags=...` argument of deno.json's `mirror` task in the tree at `root` (`[]`: none):
 * the flags the shipped entry points use (every task that runs main.ts, `compile` and the
 * Containerfile are checked against it in tests/deploy/manifests_test.ts). The bench runs a
 * `--baseline` tree with its own.
 */
export function shippedV8Flags(root = ROOT): string[] {
  const json = JSON.parse(Deno.readTextFileSync(`${root}/deno.json`)) as {
    tasks?: Record<string, string>;
  };
  const flag = (json.tasks?.mirror ?? "").split(/\s+/).find((a) => a.startsWith("--v8-flags="));
  return flag ? [flag] : [];
}

/** The V8 flags of this tree's shipped entry points ({@link shippedV8Flags}). */
export const SHIPPED_V8_FLAGS = shippedV8Flags()[0];

/** Is GNU time installed? */
export function gnuTimeAvailable(): boolean {
  try {
    return Deno.statSync("/usr/bin/time").isFile;
  } catch {
    return false;
  }
}

/** Run `main.ts args` under `/usr/bin/time -v` (killed after `timeoutMs`, default 60 s). */
export async function runCliMeasured(
  args: string[],
  options: {
    cwd?: string;
    env?: Record<string, string>;
    timeoutMs?: number;
    /** Run as shipped: the V8 flags of `deno task mirror`, the image and the binary. */
    shippedV8Flags?: boolean;
  } = {},
): Promise<MeasuredRun> {
  const env: Record<string, string> = { NO_COLOR: "1" };
  for (const key of ["PATH", "HOME", "DENO_DIR", "TMPDIR"]) {
    const value = Deno.env.get(key);
    if (value !== undefined) env[key] = value;
  }
  const started = performance.now();
  const argv = cliArgv(args);
  if (options.shippedV8Flags) argv.splice(2, 0, SHIPPED_V8_FLAGS);
  const result = await runProcess("/usr/bin/time", ["-v", ...argv], {
    cwd: options.cwd ?? ROOT,
    env: { ...env, ...options.env },
    clearEnv: true,
    timeoutMs: options.timeoutMs ?? 60_000,
  });
  const elapsedMs = performance.now() - started;
  const kb = /Maximum resident set size \(kbytes\): (\d+)/.exec(result.stderr);
  if (!kb) throw new Error(`no peak RSS in the output of /usr/bin/time:\n${result.stderr}`);
  return { ...result, peakRssMb: Number(kb[1]) / 1024, elapsedMs };
}
