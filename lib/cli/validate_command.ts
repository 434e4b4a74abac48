/**
 * `bananna-bot validate`: load and check the config, print every problem with its path (errors
 * and warnings), or a short summary. Makes no network request; with `engine: docker` it asks the
 * local docker daemon `docker version` and warns when none answers. Returns 0 or 2.
 *
 * @module
 */
import type { ValidateCommand } from "./args.ts";
import type { Io } from "./io.ts";
import { createTerminal } from "./terminal.ts";
import { checkConfig } from "../config/load_config.ts";
import type { ConfigProblem } from "../errors.ts";
import { MirrorError } from "../errors.ts";
import { Secrets } from "../log/redact.ts";

/** Run `validate`. */
export async function runValidate(cmd: ValidateCommand, io: Io): Promise<number> {
  const terminal = createTerminal({
    stdout: io.stdout,
    stderr: io.stderr,
    isTerminal: io.isTerminal,
    noColor: Boolean(io.env.NO_COLOR),
  });
  const check = await checkConfig(cmd.config, { env: io.env, cwd: io.cwd, strict: cmd.strict });
  if (check.config?.operation.engine === "docker") {
    const problem = await dockerDaemonProblem(io.env, check.config.operation.dockerTimeout);
    if (problem) check.problems.push(problem);
  }
  const errors = check.problems.filter((p) => p.severity !== "warning");
  const warnings = check.problems.filter((p) => p.severity === "warning");
  for (const p of errors) terminal.error(`error: ${p.path ? `${p.path}: ` : ""}${p.message}`);
  for (const p of warnings) terminal.warn(`warning: ${p.path ? `${p.path}: ` : ""}${p.message}`);
  if (errors.length > 0 || !check.config) {
    terminal.error(
      `${check.file}: ${errors.length} error(s)${
        warnings.length ? `, ${warnings.length} warning(s)` : ""
      } [CONFIG_INVALID]`,
    );
    return 2;
  }
  const config = check.config;
  const pairs = config.images.reduce((n, i) => n + i.targets.length, 0);
  terminal.line(`${check.file}: valid [CONFIG_VALID]`);
  for (const r of Object.values(config.registries)) {
    terminal.line(
      `  registry ${r.name}: ${r.kind} ${r.scheme}://${r.host} namespace ${r.namespace}${
        r.robot ? `, pushes as robot ${r.robot}` : ""
      }`,
    );
    // Loaded for a Quay target only: quay_repositories.ts brings the HTTP transport.
    const scopes = r.kind === "quay" && r.apiToken
      ? (await import("../mirror/quay_repositories.ts")).requiredScopes(
        r,
        config.operation.createReposIfNotExists,
      )
      : [];
    for (const scope of scopes) terminal.line(`    API token scope ${scope}`);
  }
  terminal.line(
    `  ${config.images.length} image(s), ${pairs} image x target, engine ${config.operation.engine}, logs in ${config.log.dir}`,
  );
  for (const r of config.repositories) {
    terminal.line(
      `  repository ${r.source.registry}/${r.source.repository} -> ${r.repository} in ${
        r.targets.join(", ")
      }: tags selected by rules when the run lists them`,
    );
  }
  return 0;
}

/**
 * `engine: docker` needs a daemon that answers: a warning (not an error, the run may happen on
 * another machine) saying so, or null. At most 10 s.
 */
async function dockerDaemonProblem(
  env: Record<string, string | undefined>,
  dockerTimeout: number,
): Promise<ConfigProblem | null> {
  const { DockerEngine } = await import("../engine/docker_engine.ts");
  const engine = new DockerEngine({
    clientFor: () => {
      throw new Error("validate copies nothing");
    },
    dockerTimeoutMs: Math.min(dockerTimeout, 10) * 1000,
    maxRetries: 0,
    retryDelayMs: 0,
    cleanupLocalImages: false,
    env,
    secrets: new Secrets(),
  });
  try {
    await engine.prepare();
    return null;
  } catch (error) {
    if (!(error instanceof MirrorError)) throw error;
    return {
      path: "operation.engine",
      severity: "warning",
      message: `engine docker, but a run here would fail [${error.code}]: ${error.message}`,
    };
  } finally {
    await engine.close();
  }
}
