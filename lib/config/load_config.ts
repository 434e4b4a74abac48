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
import { parse as parseYaml } from "yaml";
import { ConfigError, type ConfigProblem } from "../errors.ts";
import { isLoopbackHost, parseReference } from "../registry/reference.ts";
import { checkRules } from "./config_rules.ts";
import {
  configSchema,
  type Connection,
  type ResolvedConfig,
  type ResolvedImage,
  type ResolvedRegistry,
  type ValidConfig,
} from "./schema.ts";

/** Options for {@link loadConfig} and {@link checkConfig}. */
export interface LoadConfigOptions {
  env: Record<string, string | undefined>;
  cwd: string;
}

/** The outcome of a check: the resolved config (when there are no errors) and every problem. */
export interface ConfigCheck {
  file: string;
  config?: ResolvedConfig;
  problems: ConfigProblem[];
}

/** Default config path: `$BANANNA_BOT_CONFIG`, else `./config.ts`. */
export function configPath(path: string | undefined, options: LoadConfigOptions): string {
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

/** Load and validate, returning every problem (errors and warnings). Never throws for bad input. */
export async function checkConfig(
  path: string | undefined,
  options: LoadConfigOptions,
): Promise<ConfigCheck> {
  const file = configPath(path, options);
  const raw = await readRaw(file, options);
  if ("problems" in raw) return { file, problems: raw.problems };
  const parsed = configSchema.safeParse(raw.value);
  if (!parsed.success) {
    return { file, problems: parsed.error.issues.map((issue) => issueToProblem(issue, raw.value)) };
  }
  const baseDir = file.replace(/\/[^/]*$/, "") || "/";
  const problems: ConfigProblem[] = [];
  const config = resolve(parsed.data, file, baseDir, problems);
  problems.push(...(await checkRules(config, parsed.data, { literalSecrets: raw.literalSecrets })));
  const hasErrors = problems.some((p) => p.severity !== "warning");
  return { file, config: hasErrors ? undefined : config, problems };
}

async function readRaw(
  file: string,
  options: LoadConfigOptions,
): Promise<{ value: unknown; literalSecrets: string[] } | { problems: ConfigProblem[] }> {
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
  if (/\.(ts|js|mts|mjs)$/.test(file)) {
    try {
      const url = new URL(`file://${file}`);
      const module = await import(url.href);
      if (module.default === undefined) {
        return fail(`${file} has no default export (write \`export default defineConfig({...})\`)`);
      }
      return { value: module.default, literalSecrets: [] };
    } catch (error) {
      const message = error instanceof Error ? error.message.split("\n")[0] : String(error);
      return fail(`cannot load ${file}: ${message}`);
    }
  }
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (error) {
    return fail(`cannot read ${file}: ${error instanceof Error ? error.message : error}`);
  }
  let value: unknown;
  try {
    value = /\.json$/i.test(file) ? JSON.parse(text) : parseYaml(text);
  } catch (error) {
    const message = error instanceof Error ? error.message.split("\n")[0] : String(error);
    return fail(`${/\.json$/i.test(file) ? "JSON" : "YAML"} syntax error: ${message}`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    return fail("the config must be a mapping with registries, log, operation and images");
  }
  const problems: ConfigProblem[] = [];
  const literalSecrets = findLiteralSecrets(value as Record<string, unknown>);
  const expanded = expandEnv(value, options.env, [], problems);
  return problems.length ? { problems } : { value: expanded, literalSecrets };
}

/** Paths of passwords and tokens written as plain text in a YAML/JSON file. */
function findLiteralSecrets(value: Record<string, unknown>): string[] {
  const out: string[] = [];
  for (const section of ["registries", "sources"]) {
    const entries = value[section];
    if (!entries || typeof entries !== "object") continue;
    for (const [name, entry] of Object.entries(entries as Record<string, unknown>)) {
      for (const field of ["password", "apiToken"]) {
        const secret = (entry as Record<string, unknown> | null)?.[field];
        if (
          typeof secret === "string" && !secret.includes("${") && !/YOUR_|CHANGE_?ME/i.test(secret)
        ) {
          out.push(formatPath([section, name, field]));
        }
      }
    }
  }
  return out;
}

/** Replace `${VAR}` in every string; `$${` is a literal `${`. Missing variables are problems. */
export function expandEnv(
  value: unknown,
  env: Record<string, string | undefined>,
  path: (string | number)[],
  problems: ConfigProblem[],
): unknown {
  if (typeof value === "string") {
    return value.replace(/\$?\$\{([^}]*)\}/g, (match, name: string) => {
      if (match.startsWith("$$")) return match.slice(1);
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
        problems.push({ path: formatPath(path), message: `bad variable name in "${match}"` });
        return match;
      }
      const found = env[name];
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
  if (Array.isArray(value)) return value.map((v, i) => expandEnv(v, env, [...path, i], problems));
  if (value && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, expandEnv(v, env, [...path, k], problems)]),
    );
  }
  return value;
}

/** `["images", "nginx:1.25", "targets", 1]` -> `images["nginx:1.25"].targets[1]`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const part of path) {
    if (typeof part === "number") out += `[${part}]`;
    else if (/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(String(part))) {
      out += out ? `.${String(part)}` : String(part);
    } else out += `[${JSON.stringify(String(part))}]`;
  }
  return out;
}

const KNOWN_KEYS: Record<string, string[]> = {
  top: ["version", "registries", "sources", "log", "operation", "images"],
  registry: [
    "url",
    "namespace",
    "organization",
    "kind",
    "apiToken",
    "username",
    "password",
    "caFile",
    "insecure",
  ],
  source: ["username", "password", "caFile", "insecure"],
  log: ["level", "file", "dir", "rotationDays", "consoleOutput", "keepArchives"],
  operation: [
    "engine",
    "continueOnError",
    "createReposIfNotExists",
    "cleanupLocalImages",
    "dockerTimeout",
    "apiTimeout",
    "maxRetries",
    "retryDelay",
    "concurrency",
    "updateLatest",
    "platform",
  ],
  image: ["targets", "description", "repository"],
};

function sectionOf(path: readonly PropertyKey[]): string {
  if (path.length === 0) return "top";
  if (path[0] === "registries" && path.length === 2) return "registry";
  if (path[0] === "sources" && path.length === 2) return "source";
  if (path[0] === "images" && path.length === 2) return "image";
  if (path.length === 1 && (path[0] === "log" || path[0] === "operation")) return String(path[0]);
  return "";
}

function closest(word: string, candidates: string[]): string | undefined {
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

interface Issue {
  code: string;
  path: PropertyKey[];
  message: string;
  keys?: string[];
  expected?: string;
  values?: unknown[];
}

function issueToProblem(issue: Issue, raw: unknown): ConfigProblem {
  if (issue.code === "unrecognized_keys" && issue.keys) {
    const known = KNOWN_KEYS[sectionOf(issue.path)] ?? [];
    const parts = issue.keys.map((key) => {
      const hint = closest(key, known);
      return `unknown key "${key}"${hint ? ` (did you mean "${hint}"?)` : ""}`;
    });
    return {
      path: formatPath(issue.path),
      message: `${parts.join("; ")}${known.length ? `; known keys: ${known.join(", ")}` : ""}`,
    };
  }
  let actual: unknown = raw;
  for (const part of issue.path) {
    actual = (actual as Record<PropertyKey, unknown> | undefined)?.[part];
  }
  if (actual === undefined && issue.code === "invalid_type") {
    return {
      path: formatPath(issue.path),
      message: `missing (required, ${issue.expected ?? "a value"})`,
    };
  }
  const shown = typeof actual === "string"
    ? JSON.stringify(actual)
    : JSON.stringify(actual) ?? String(actual);
  return { path: formatPath(issue.path), message: `${issue.message} (got ${shown})` };
}

const URL_FORM = /^(?:(https?):\/\/)?([^/?#\s]+)\/?$/;

function parseUrl(
  url: string,
  insecure: boolean | undefined,
  path: string,
  problems: ConfigProblem[],
): { host: string; scheme: "http" | "https" } {
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
  const registries: Record<string, ResolvedRegistry> = {};
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
      namespace: r.namespace,
      organization: r.organization ?? r.namespace,
      kind: r.kind,
      apiToken: r.apiToken,
    };
  }
  const sources: Record<string, Connection> = {};
  for (const [host, s] of Object.entries(data.sources)) {
    const normal = host === "index.docker.io" || host === "registry-1.docker.io"
      ? "docker.io"
      : host;
    sources[normal] = {
      host: normal,
      scheme: s.insecure || isLoopbackHost(normal) ? "http" : "https",
      caFile: s.caFile ? absolute(s.caFile, baseDir) : undefined,
      username: s.username,
      password: s.password,
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
    operation: data.operation,
    images,
  };
}
