/**
 * Read a config (config.ts, YAML or JSON), expand `${VAR}` from the environment (YAML/JSON),
 * validate it with the schema and the cross-field rules, and resolve it: references parsed, urls
 * split into scheme and host, paths made absolute against the config file's folder.
 *
 * Every problem is collected with its path (`images["nginx:1.25"].targets[1]`), so `validate`
 * can list them all at once.
 *
 * @module
 */
import type { z } from "../zod.ts";
import { ConfigError, type ConfigProblem } from "../errors.ts";
import { FileInputError, readFileCapped } from "../safe_file.ts";
import { canonicalHost, isLoopbackHost, parseReference } from "../registry/reference.ts";
import { checkRules } from "./config_rules.ts";
import {
  configSecrets,
  isSecretKey,
  type RawSecrets,
  scanSecrets,
  setPasswordOrigins,
  urlUserinfo,
} from "./config_secrets.ts";
import { checkShape, formatPath, parseConfigText } from "./parse_config_text.ts";
import { issueToProblem } from "./schema_issues.ts";
import { resolveVerifyKeys } from "./verify_keys.ts";
import { checkSignatureRules, effectiveSignatures } from "./signature_rules.ts";
import { resolveOps } from "./ops_schema.ts";
import { checkRepositoryRules, countEntries } from "./repository_rules.ts";
import { resolveRepositories } from "./resolve_repositories.ts";

import {
  configSchema,
  type Connection,
  imageSchema,
  logSchema,
  operationSchema,
  registrySchema,
  repositorySchema,
  type ResolvedConfig,
  type ResolvedImage,
  type ResolvedRegistry,
  sourceSchema,
  type ValidConfig,
} from "./schema.ts";

/** The largest config file read (bytes): a config of thousands of images is well below. */
const MAX_CONFIG_BYTES = 1024 * 1024;

/** Options for {@link loadConfig} and {@link checkConfig}. */
export interface LoadConfigOptions {
  env: Record<string, string | undefined>;
  cwd: string;
  /** `validate --strict`: a secret written literally in the file is an error. */
  strict?: boolean;
  /**
   * What the command never uses: its top-level `sections` are dropped before `${VAR}`s are
   * expanded, and a missing variable in a secret field of a `secretsOf` section is left as
   * written (never sent) instead of a problem. Export talks to no destination registry (and
   * publishes nothing); import to no source.
   */
  unused?: { sections?: string[]; secretsOf?: ("registries" | "sources")[] };
}

/** The outcome of a check: the resolved config (when there are no errors) and every problem. */
export interface ConfigCheck {
  file: string;
  config?: ResolvedConfig;
  problems: ConfigProblem[];
}

/** Default config path: `$BANANNA_BOT_CONFIG`, else `./config.ts`. */
function configPath(path: string | undefined, options: LoadConfigOptions): string {
  const chosen = path ?? options.env.BANANNA_BOT_CONFIG ?? "config.ts";
  return chosen.startsWith("/") ? chosen : `${options.cwd}/${chosen}`.replace(/\/\.\//g, "/");
}

/** Load, validate and resolve; throws ConfigError with every error (warnings are returned). */
export async function loadConfig(
  path: string | undefined,
  options: LoadConfigOptions,
): Promise<ResolvedConfig & { warnings: ConfigProblem[] }> {
  const check = await checkConfig(path, options);
  const errors = check.problems.filter((p) => p.severity !== "warning");
  if (errors.length > 0 || !check.config) throw new ConfigError(check.file, errors);
  return { ...check.config, warnings: check.problems.filter((p) => p.severity === "warning") };
}

/**
 * The ConfigError for a log that cannot be opened although validation passed (the dir changed
 * since, or `log.file` names a folder): exit 2 naming the setting, not an internal error.
 * Anything but a file-system error is returned as it is (a bug keeps its stack).
 */
export function logOpenError(config: ResolvedConfig, error: unknown): unknown {
  const isFsError = !(error instanceof Deno.errors.NotCapable) &&
    Object.values(Deno.errors).some((kind) => error instanceof kind);
  if (!isFsError) return error;
  const why = (error as Error).message.replace(/\s*\(os error \d+\)/, "");
  return new ConfigError(config.file, [{
    path: "log",
    message: `cannot open the log ${config.log.dir}/${config.log.file}: ${why}`,
  }]);
}

/**
 * Load and validate, returning every problem (errors and warnings) in one pass: the cross-field
 * rules run on whatever part of the config parsed, so a typo does not hide an unknown target.
 * Secrets (values under secret keys, userinfo in urls) never appear in a problem. Never throws
 * for bad input.
 */
export async function checkConfig(
  path: string | undefined,
  options: LoadConfigOptions,
): Promise<ConfigCheck> {
  const file = configPath(path, options);
  const raw = await readRaw(file, options);
  if ("problems" in raw) return { file, problems: raw.problems };
  const masker = configSecrets(raw.value);
  const problems: ConfigProblem[] = [];
  const parsed = configSchema.safeParse(raw.value);
  let data: ValidConfig;
  let registryNames: string[] | null;
  if (parsed.success) {
    data = parsed.data;
    registryNames = Object.keys(data.registries);
  } else {
    problems.push(
      ...parsed.error.issues.map((issue) => issueToProblem(issue, { raw: raw.value, masker })),
    );
    ({ data, registryNames } = salvage(raw.value as Record<string, unknown>));
  }
  const baseDir = file.replace(/\/[^/]*$/, "") || "/";
  const config = setPasswordOrigins(resolve(data, file, baseDir, problems), raw.origins);
  problems.push(...await resolveVerifyKeys(config, { data, baseDir }));
  problems.push(
    ...(await checkRules(config, data, {
      literalSecrets: raw.literalSecrets,
      registryNames,
      strict: options.strict,
    })),
    ...await checkRepositoryRules(config, data, {
      registryNames,
      entriesWritten: countEntries(raw.value),
    }),
    ...checkSignatureRules(data.operation),
  );
  const hasErrors = !parsed.success || problems.some((p) => p.severity !== "warning");
  return {
    file,
    config: hasErrors ? undefined : config,
    problems: problems.map((p) => ({
      ...p,
      path: masker.mask(p.path),
      message: masker.mask(p.message),
    })),
  };
}

/**
 * The parts of a config that failed the schema, kept where they can be: each registry, source
 * and image entry and the log and operation sections on their own, each field that is valid on
 * its own. `registryNames` lists every registry name written (null when `registries` is not a
 * map), so that a broken registry entry is not also reported as an unknown target.
 */
function salvage(raw: Record<string, unknown>): {
  data: ValidConfig;
  registryNames: string[] | null;
} {
  const entries = <T extends z.ZodMiniObject>(value: unknown, schema: T) => {
    const out: Record<string, z.output<T>> = Object.create(null);
    if (!isPlainObject(value)) return out;
    for (const [name, entry] of Object.entries(value)) {
      const kept = salvageObject(schema, entry);
      if (kept !== undefined) out[name] = kept;
    }
    return out;
  };
  return {
    data: {
      version: 1,
      registries: entries(raw.registries, registrySchema),
      sources: entries(raw.sources, sourceSchema),
      log: salvageObject(logSchema, raw.log ?? {}) ?? logSchema.parse({}),
      operation: salvageObject(operationSchema, raw.operation ?? {}) ?? operationSchema.parse({}),
      images: entries(raw.images, imageSchema),
      repositories: entries(raw.repositories, repositorySchema),
    },
    registryNames: isPlainObject(raw.registries) ? Object.keys(raw.registries) : null,
  };
}

/** The object made of the fields of `value` that are valid on their own, if that is valid. */
function salvageObject<T extends z.ZodMiniObject>(
  schema: T,
  value: unknown,
): z.output<T> | undefined {
  if (!isPlainObject(value)) return undefined;
  const kept: Record<string, unknown> = Object.create(null);
  for (const [key, field] of Object.entries(value)) {
    const fieldSchema = Object.hasOwn(schema.shape, key) ? schema.shape[key] : undefined;
    if (fieldSchema && (fieldSchema as z.ZodMiniType).safeParse(field).success) kept[key] = field;
  }
  const result = schema.safeParse(kept);
  return result.success ? result.data : undefined;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

async function readRaw(
  file: string,
  options: LoadConfigOptions,
): Promise<({ value: unknown } & RawSecrets) | { problems: ConfigProblem[] }> {
  const fail = (message: string) => ({ problems: [{ path: "", message }] });
  let stat: Deno.FileInfo;
  try {
    stat = await Deno.stat(file);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      return fail(
        `config file not found: ${file} (pass --config PATH or set BANANNA_BOT_CONFIG; YAML, JSON or a config.ts)`,
      );
    }
    if (error instanceof Deno.errors.PermissionDenied) {
      return fail(`cannot read ${file}: permission denied`);
    }
    throw error;
  }
  if (!stat.isFile) return fail(`${file} is not a file`);
  if (stat.size > MAX_CONFIG_BYTES) return fail(tooLarge(file, stat.size));
  if (/\.(ts|js|mts|mjs)$/.test(file)) {
    let value: unknown;
    try {
      const url = new URL(`file://${file}`);
      const module = await import(url.href);
      if (module.default === undefined) {
        return fail(`${file} has no default export (write \`export default defineConfig({...})\`)`);
      }
      value = module.default;
    } catch (error) {
      const message = error instanceof Error ? error.message.split("\n")[0] : String(error);
      return fail(`cannot load ${file}: ${message}`);
    }
    const shape = checkShape(value);
    return shape.length ? { problems: shape } : { value, literalSecrets: [] };
  }
  let text: string;
  try {
    // The one reader of files from outside: swapped for a FIFO or grown since stat is refused.
    const bytes = await readFileCapped(file, { what: "the config", maxBytes: MAX_CONFIG_BYTES });
    text = new TextDecoder().decode(bytes);
  } catch (error) {
    if (error instanceof FileInputError) return fail(error.message);
    return fail(`cannot read ${file}: ${error instanceof Error ? error.message : error}`);
  }
  const isJson = /\.json$/i.test(file);
  const parsed = await parseConfigText(text, { isJson });
  if ("problems" in parsed) return parsed;
  const value = parsed.value;
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    return fail("the config must be a mapping with registries, log, operation and images");
  }
  const shape = checkShape(value);
  if (shape.length) return { problems: shape };
  const problems: ConfigProblem[] = [];
  const secrets = scanSecrets(value as Record<string, unknown>);
  const { sections = [], secretsOf = [] } = options.unused ?? {};
  for (const section of sections) delete (value as Record<string, unknown>)[section];
  const keep = (path: (string | number)[]) =>
    secretsOf.includes(path[0] as "sources") && path.length === 3 && isSecretKey(String(path[2]));
  const expanded = expandEnv(value, options.env, [], problems, keep);
  return problems.length ? { problems } : { value: expanded, ...secrets };
}

function tooLarge(file: string, size: number): string {
  return `${file} is ${size} bytes; a config file may have at most ${MAX_CONFIG_BYTES} bytes (1 MiB)`;
}

/** Replace `${VAR}` in every string; `$${` is a literal `${`. Missing variables are problems. */
export function expandEnv(
  value: unknown,
  env: Record<string, string | undefined>,
  path: (string | number)[],
  problems: ConfigProblem[],
  /** A missing variable here is kept as written, not a problem (a secret the command never sends). */
  keepMissing?: (path: (string | number)[]) => boolean,
): unknown {
  if (typeof value === "string") {
    return value.replace(/\$?\$\{([^}]*)\}/g, (match, name: string) => {
      if (match.startsWith("$$")) return match.slice(1);
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
        problems.push({ path: formatPath(path), message: `bad variable name in "${match}"` });
        return match;
      }
      const found = env[name];
      if (found === undefined && keepMissing?.(path)) return match;
      if (found === undefined) {
        problems.push({
          path: formatPath(path),
          message: `environment variable ${name} is not set (used as \${${name}})`,
        });
        return "";
      }
      return found;
    });
  }
  if (Array.isArray(value)) {
    return value.map((v, i) => expandEnv(v, env, [...path, i], problems, keepMissing));
  }
  if (value && typeof value === "object") {
    // No prototype: a name such as "constructor" or "toString" is only ever its own entry.
    const out: Record<string, unknown> = Object.create(null);
    for (const [k, v] of Object.entries(value)) {
      out[k] = expandEnv(v, env, [...path, k], problems, keepMissing);
    }
    return out;
  }
  return value;
}

const URL_FORM = /^(?:(https?):\/\/)?([^/?#\s]+)\/?$/;

function parseUrl(
  url: string,
  insecure: boolean | undefined,
  path: string,
  problems: ConfigProblem[],
): { host: string; scheme: "http" | "https" } {
  const userinfo = urlUserinfo(url, true);
  if (userinfo !== undefined) {
    const field = path.replace(/\.url$/, "");
    problems.push({
      path,
      message: `credentials in the url ("${
        url.replace(`${userinfo}@`, "***@")
      }"): write the url without them and put the user in ${field}.username and the password in ${field}.password, passed from the environment (YAML: password: \${REGISTRY_PASSWORD})`,
    });
    const host = url.slice(url.indexOf(`${userinfo}@`) + userinfo.length + 1).replace(/\/.*$/, "");
    return { host, scheme: /^http:/i.test(url.trim()) || insecure ? "http" : "https" };
  }
  const match = URL_FORM.exec(url.trim());
  if (!match) {
    problems.push({
      path,
      message: `bad url "${url}": write host[:port], optionally with http:// or https:// (no path)`,
    });
    return { host: url, scheme: "https" };
  }
  const host = match[2];
  try {
    if (parseReference(`${host}/x`).registry !== host) throw new Error("not a host");
  } catch {
    problems.push({ path, message: `bad url "${url}": "${host}" is not a valid host[:port]` });
  }
  if (match[1] === "https" && insecure) {
    problems.push({ path, message: `url says https:// but insecure is true; choose one` });
  }
  const scheme = match[1] === "http" || insecure || (!match[1] && isLoopbackHost(host))
    ? "http"
    : "https";
  return { host, scheme };
}

function absolute(path: string, baseDir: string): string {
  return path.startsWith("/") ? path : `${baseDir}/${path}`.replace(/\/\.\//g, "/");
}

function resolve(
  data: ValidConfig,
  file: string,
  baseDir: string,
  problems: ConfigProblem[],
): ResolvedConfig {
  // Maps without prototypes: a name like "constructor" is found only when it was written.
  const registries: Record<string, ResolvedRegistry> = Object.create(null);
  for (const [name, r] of Object.entries(data.registries)) {
    const { host, scheme } = parseUrl(
      r.url,
      r.insecure,
      formatPath(["registries", name, "url"]),
      problems,
    );
    registries[name] = {
      name,
      host,
      scheme,
      caFile: r.caFile ? absolute(r.caFile, baseDir) : undefined,
      username: r.username,
      password: r.password,
      maxBytesPerSecond: r.maxBytesPerSecond,
      namespace: r.namespace,
      organization: r.organization ?? r.namespace,
      kind: r.kind,
      apiToken: r.apiToken,
      // A Quay username `org+name` of this organization is the robot that pushes.
      robot: r.robot
        ? r.robot.includes("+") ? r.robot : `${r.organization ?? r.namespace}+${r.robot}`
        : r.kind === "quay" && r.username?.startsWith(`${r.organization ?? r.namespace}+`)
        ? r.username
        : undefined,
    };
  }
  const sources: Record<string, Connection> = Object.create(null);
  for (const [host, s] of Object.entries(data.sources)) {
    const normal = canonicalHost(host);
    sources[normal] = {
      host: normal,
      scheme: (s.insecure ?? isLoopbackHost(normal)) ? "http" : "https",
      caFile: s.caFile ? absolute(s.caFile, baseDir) : undefined,
      username: s.username,
      password: s.password,
      maxBytesPerSecond: s.maxBytesPerSecond,
    };
  }
  const images: ResolvedImage[] = [];
  for (const [key, image] of Object.entries(data.images)) {
    try {
      const source = parseReference(key);
      images.push({
        key,
        source,
        targets: image.targets,
        description: image.description,
        repository: image.repository ?? source.repository.split("/").pop() ?? source.repository,
        // The nearest platforms win: the entry's own, else operation.platforms.
        ...platformsOf(image.platforms ?? data.operation.platforms),
      });
    } catch (error) {
      problems.push({
        path: formatPath(["images", key]),
        message: error instanceof Error ? error.message : String(error),
      });
    }
  }
  return {
    file,
    registries,
    sources,
    log: { ...data.log, dir: absolute(data.log.dir, baseDir) },
    // signatures: the effective mode (unset: copy with the registry engine, skip with docker).
    operation: { ...data.operation, signatures: effectiveSignatures(data.operation) },
    images,
    repositories: resolveRepositories(data.repositories, problems).map((repository) => ({
      ...repository,
      ...platformsOf(data.repositories[repository.key].platforms ?? data.operation.platforms),
    })),
    ...resolveOps(data, baseDir, problems),
    openshift: data.openshift,
  };
}

/** `{ platforms }` without duplicates, or nothing when every platform is kept. */
function platformsOf(platforms: string[] | undefined): { platforms?: string[] } {
  return platforms ? { platforms: [...new Set(platforms)] } : {};
}
