/**
 * Helpers of the air-gap tests (tests/e2e/airgap*_test.ts): run `export` / `import` with a config
 * written to the test dir, read the report, list a registry's writes.
 *
 * @module
 */
import { stringify } from "yaml";
import type { Report } from "../../lib/mirror/report.ts";
import { runCli } from "./cli.ts";
import type { TestRegistry } from "./registry.ts";

/** Write the config and run `command` with it; the report comes back parsed. */
export async function airgapCli(
  dir: string,
  command: string[],
  options: { config: Record<string, unknown>; env?: Record<string, string> },
): Promise<{ code: number; stdout: string; stderr: string; report: Report | null }> {
  await Deno.writeTextFile(`${dir}/config.yaml`, stringify(options.config));
  await Deno.remove(`${dir}/report.json`).catch(() => {});
  const run = await runCli(
    [
      ...command,
      "--config",
      `${dir}/config.yaml`,
      "--non-interactive",
      "--report",
      `${dir}/report.json`,
    ],
    { env: options.env, cwd: dir },
  );
  let report: Report | null = null;
  try {
    report = JSON.parse(await Deno.readTextFile(`${dir}/report.json`));
  } catch {
    // none written
  }
  return { ...run, report };
}

/** `destination status` per report entry, the registry host cut off. */
export function statuses(report: Report | null): string[] {
  return (report?.entries ?? []).map((e) => `${e.destination.replace(/^[^/]+\//, "")} ${e.status}`);
}

/** Writes (PUT/POST/PATCH/DELETE) in a registry's access log. */
export async function writes(reg: TestRegistry): Promise<string[]> {
  return (await reg.accessLog()).filter((line) => /\b(PUT|POST|PATCH|DELETE)\b/.test(line));
}

/** The config of these tests: one plain registry target `dr` (namespace `mirror`). */
export function airgapConfig(
  dst: TestRegistry,
  images: Record<string, unknown>,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    registries: {
      dr: {
        url: dst.host,
        namespace: "mirror",
        kind: "registry",
        username: dst.username,
        password: "${DST_PASSWORD}",
      },
    },
    log: { dir: "./logs", level: "DEBUG" },
    operation: { engine: "registry", retryDelay: 0.05, maxRetries: 1 },
    images,
    ...extra,
  };
}
