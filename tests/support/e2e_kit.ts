/**
 * The e2e kit: run a command of `main.ts` as a subprocess with a config written to the test dir
 * and read its report ({@link runWithConfig}, {@link mirror}), read what a registry was asked to
 * write ({@link writes}), and build the config of a plain registry destination
 * ({@link registryTarget}, {@link registryConfig}). The Quay destination entry is `quayTarget()` in
 * quay_double.ts.
 *
 * ```ts ignore
 * await using src = await startRegistry();
 * await using dst = await startRegistry({ auth: "htpasswd" });
 * const run = await mirror(dir, registryConfig(dst, { [`${src.host}/team/app:1`]: { targets: ["dr"] } }), {
 *   env: { DST_PASSWORD: dst.password ?? "" },
 * });
 * assert.deepEqual(statuses(run.report), ["mirror/app:1 pushed"]);
 * ```
 *
 * @module
 */
import { stringify } from "yaml";
import type { Report } from "../../lib/mirror/report.ts";
import { type CliResult, runCli } from "./cli.ts";
import { startRegistry, type StartRegistryOptions, type TestRegistry } from "./registry.ts";

/** A CLI run with its report (null when none was written). */
export type ConfigRun = CliResult & { report: Report | null };

/** Options for {@link runWithConfig} and {@link mirror}. */
export interface RunWithConfigOptions {
  /** Environment for the run (`${VAR}` values of the config). */
  env?: Record<string, string>;
  /** More arguments after `--report PATH` (e.g. `--dry-run`). */
  extra?: string[];
  /** Kill after this many ms. @default 120000 */
  timeoutMs?: number;
  /** Deno flags before the permissions (e.g. `--preload FILE`). */
  denoFlags?: string[];
}

/**
 * Write `config` as `<dir>/config.yaml` and run `main.ts <command> --config it --non-interactive
 * --report <dir>/report.json <extra>` in `dir`; the report comes back parsed (null when none was
 * written: an earlier run's report is removed first).
 */
export async function runWithConfig(
  dir: string,
  command: string[],
  config: Record<string, unknown>,
  options: RunWithConfigOptions = {},
): Promise<ConfigRun> {
  await Deno.writeTextFile(`${dir}/config.yaml`, stringify(config));
  await Deno.remove(`${dir}/report.json`).catch(() => {});
  const run = await runCli(
    [
      ...command,
      "--config",
      `${dir}/config.yaml`,
      "--non-interactive",
      "--report",
      `${dir}/report.json`,
      ...(options.extra ?? []),
    ],
    { env: options.env, cwd: dir, timeoutMs: options.timeoutMs, denoFlags: options.denoFlags },
  );
  let report: Report | null = null;
  try {
    report = JSON.parse(await Deno.readTextFile(`${dir}/report.json`));
  } catch {
    // none written
  }
  return { ...run, report };
}

/** `main.ts mirror` with `config` (see {@link runWithConfig}). */
export function mirror(
  dir: string,
  config: Record<string, unknown>,
  options: RunWithConfigOptions = {},
): Promise<ConfigRun> {
  return runWithConfig(dir, ["mirror"], config, options);
}

/** `export`/`import` (or any command) with a config: {@link runWithConfig} with the options bag. */
export function airgapCli(
  dir: string,
  command: string[],
  options: RunWithConfigOptions & { config: Record<string, unknown> },
): Promise<ConfigRun> {
  return runWithConfig(dir, command, options.config, options);
}

/** `destination status` per report entry, the registry host cut off. */
export function statuses(report: Report | null): string[] {
  return (report?.entries ?? []).map((e) => `${e.destination.replace(/^[^/]+\//, "")} ${e.status}`);
}

/** Writes (PUT, POST, PATCH, DELETE) in a registry's access log, from line `from` on. */
export async function writes(
  reg: { accessLog(): Promise<string[]> },
  from = 0,
): Promise<string[]> {
  return (await reg.accessLog()).slice(from).filter((line) =>
    /^(PUT|POST|PATCH|DELETE) /.test(line)
  );
}

/** Options for {@link registryTarget}. */
export interface RegistryTargetOptions {
  /** @default "mirror" */
  namespace?: string;
  /**
   * Log in as `reg`'s user with this config value as the password (`true`: `${DST_PASSWORD}`).
   * @default false (no credentials in the entry)
   */
  login?: boolean | string;
  /** Any other keys of the entry (caFile, insecure, maxBytesPerSecond, ...). */
  more?: Record<string, unknown>;
}

/**
 * The `registries` entry of a plain registry destination `reg` (`{ host }` of a registry or of a
 * proxy in front of it), with `reg`'s user and a `${VAR}` password when `login` says so.
 */
export function registryTarget(
  reg: { host: string; username?: string },
  options: RegistryTargetOptions = {},
): Record<string, unknown> {
  const password = options.login === true ? "${DST_PASSWORD}" : options.login;
  return {
    url: reg.host,
    namespace: options.namespace ?? "mirror",
    kind: "registry",
    ...(password ? { username: reg.username, password } : {}),
    ...options.more,
  };
}

/**
 * A whole config with one registry target `dr` ({@link registryTarget}, logged in), a DEBUG log in `./logs`
 * and the registry engine with quick retries; `extra` replaces top-level keys.
 */
export function registryConfig(
  dst: { host: string; username?: string },
  images: Record<string, unknown>,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    registries: { dr: registryTarget(dst, { login: true }) },
    log: { dir: "./logs", level: "DEBUG" },
    operation: { engine: "registry", retryDelay: 0.05, maxRetries: 1 },
    images,
    ...extra,
  };
}

/** The env of a run whose destination `dst` has a password: `DST_PASSWORD`. */
export function dstEnv(dst: { password?: string }): Record<string, string> {
  return { DST_PASSWORD: dst.password ?? "" };
}

/** A fresh destination for one test step: a registry and a run dir, both gone on dispose. */
export interface Destination extends AsyncDisposable {
  reg: TestRegistry;
  /** The run dir (config.yaml, report.json, logs/). */
  dir: string;
  /** `DST_PASSWORD` of `reg` ({@link dstEnv}). */
  env: Record<string, string>;
}

/**
 * Start a registry (htpasswd unless `options` say otherwise) and make a run dir, so that a step
 * depends on no earlier step's pushes; seed it with `pushTestImage(dest.reg, ...)` when the step
 * needs tags already there.
 */
export async function startDestination(
  options: StartRegistryOptions = { auth: "htpasswd" },
): Promise<Destination> {
  const reg = await startRegistry(options);
  const dir = await Deno.makeTempDir({ prefix: "bb-e2e-" });
  const dispose = async () => {
    await reg.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  return { reg, dir, env: dstEnv(reg), [Symbol.asyncDispose]: dispose };
}
