/**
 * Cross-field rules that a schema cannot express: unknown targets, placeholders left in,
 * two sources mapped to one destination, unreadable CA files, Quay without an API token, Quay's
 * name rules, the log dir and log file (log_rules.ts), and warnings (docker engine without a
 * platform or with a bandwidth limit, insecure remote hosts, passwords written into a YAML file).
 *
 * @module
 */
import type { ConfigProblem } from "../errors.ts";
import { FileInputError, readFileCapped } from "../safe_file.ts";
import { checkLog, type Say } from "./log_rules.ts";

/** Bytes a CA file may have (a bundle of a few hundred certificates). */
const MAX_PEM_BYTES = 1024 * 1024;
import { isLoopbackHost } from "../registry/reference.ts";
import { type ResolvedConfig, SECRET_KEYS, type ValidConfig } from "./schema.ts";
import { isSecretKey, type LiteralSecret } from "./config_secrets.ts";

/** Options for {@link checkRules}. */
export interface RuleOptions {
  /** Secrets written literally in a YAML/JSON file (not from `${VAR}`). */
  literalSecrets?: LiteralSecret[];
  /** `validate --strict`: a literal secret is an error. */
  strict?: boolean;
  /**
   * Every registry name written, valid or not (a broken entry is not also an unknown target);
   * null when `registries` is not a map (targets cannot be checked).
   * @default the names in the resolved config
   */
  registryNames?: string[] | null;
}

const PLACEHOLDER =
  /YOUR_[A-Z0-9_]*|CHANGE_?ME|REPLACE_?ME|^<.*>$|^x{3,}$|^\.\.\.$|\bexample\.(com|org|net)\b|^TODO$/i;
const QUAY_NAMESPACE = /^[a-z0-9]+(?:[._-][a-z0-9]+)*$/;
const QUAY_REPOSITORY = /^(?=.{0,255}$)[a-z0-9][.a-z0-9_-]*(?:\/[a-z0-9][.a-z0-9_-]*)*$/;
const OCI_COMPONENT = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/;

function key(name: string): string {
  return /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(name) ? `.${name}` : `[${JSON.stringify(name)}]`;
}

/** Check the rules; returns problems (severity "warning" for warnings). */
export async function checkRules(
  config: ResolvedConfig,
  data: ValidConfig,
  options: RuleOptions,
): Promise<ConfigProblem[]> {
  const problems: ConfigProblem[] = [];
  const err = (path: string, message: string) => problems.push({ path, message });
  const warn = (path: string, message: string) =>
    problems.push({ path, message, severity: "warning" });
  const known = Object.keys(config.registries);
  const written = options.registryNames === undefined ? known : options.registryNames;
  await checkRegistries(config, data, { err, warn });
  checkImages(config, data, { err, warn, written });
  const literal = options.strict ? err : warn;
  for (const { path, dollarVar } of options.literalSecrets ?? []) {
    literal(
      path,
      dollarVar
        ? `taken literally as the secret (a $ without braces is not expanded): did you mean \${${dollarVar}}?`
        : `secret written literally in the config file: pass it from the environment as \${VAR}${
          options.strict ? " (validate --strict)" : ""
        }`,
    );
  }
  for (const [path, secret] of placeholders(data)) {
    err(
      path,
      secret
        ? "placeholder left in (a secret field: its value is not shown): set the real secret in the environment variable (the Secret's key) this field reads"
        : "placeholder left in: replace it with the real value",
    );
  }
  await checkLog(config.log, { err, warn });
  checkPlatforms(data, err, warn);
  checkDockerEngine(data, warn);
  return problems;
}

/** Each registry: placeholders, namespace grammar, Quay's API token, credentials, http, CA files. */
async function checkRegistries(config: ResolvedConfig, data: ValidConfig, say: Say): Promise<void> {
  const { err, warn } = say;
  for (const [name, raw] of Object.entries(data.registries)) {
    const at = `registries${key(name)}`;
    const fields: [string, string | undefined][] = [
      ["url", raw.url],
      ["namespace", raw.namespace],
      ["organization", raw.organization],
      ["apiToken", raw.apiToken],
      ["username", raw.username],
      ["password", raw.password],
    ];
    for (const [field, value] of fields) {
      if (value !== undefined && PLACEHOLDER.test(value)) {
        err(
          `${at}.${field}`,
          `${
            SECRET_KEYS.has(field)
              ? "placeholder left in (a secret field: its value is not shown)"
              : `placeholder "${value}" left in`
          }: ${fillHint(field)}`,
        );
      }
    }
    const registry = config.registries[name];
    if (registry.kind === "quay") {
      if (
        !PLACEHOLDER.test(registry.namespace) &&
        (!QUAY_NAMESPACE.test(registry.namespace) || registry.namespace.length < 2)
      ) {
        err(
          `${at}.namespace`,
          `"${registry.namespace}" is not a valid Quay namespace (lowercase letters, digits, . _ -; 2-255 characters)`,
        );
      }
      if (data.operation.createReposIfNotExists && !raw.apiToken) {
        err(
          `${at}.apiToken`,
          "missing: a Quay registry needs an OAuth API token (repo:create) to create repositories; set apiToken (\${QUAY_TOKEN} in YAML), or set operation.createReposIfNotExists: false",
        );
      }
      if (raw.robot && !registry.robot?.startsWith(`${registry.organization}+`)) {
        err(`${at}.robot`, `"${raw.robot}" is not a robot of ${registry.organization}`);
      } else if (registry.robot && !raw.apiToken) {
        err(
          `${at}.apiToken`,
          `missing: granting robot ${registry.robot} write on each repository needs an API token with repo:admin`,
        );
      }
    } else if (!registry.namespace.split("/").every((c) => OCI_COMPONENT.test(c))) {
      err(`${at}.namespace`, `"${registry.namespace}" is not a valid repository path component`);
    } else if (raw.robot) {
      err(`${at}.robot`, "a robot account is a Quay concept: set kind: quay, or drop robot");
    }
    if (raw.username && !raw.password) err(`${at}.password`, "username is set but password is not");
    if (raw.password && !raw.username) err(`${at}.username`, "password is set but username is not");
    if (registry.scheme === "http" && !isLoopbackHost(registry.host)) {
      warn(
        `${at}.insecure`,
        `${registry.host} is reached over plain http: credentials and images travel unencrypted`,
      );
    }
    if (registry.caFile) await checkReadable(registry.caFile, `${at}.caFile`, err);
  }
  for (const [host, source] of Object.entries(config.sources)) {
    if (source.caFile) await checkReadable(source.caFile, `sources${key(host)}.caFile`, err);
  }
}

/** Each image: known targets, one source per destination, a valid repository, digest and latest. */
function checkImages(
  config: ResolvedConfig,
  data: ValidConfig,
  say: Say & { written: string[] | null },
): void {
  const { err, warn, written } = say;
  const destinations = new Map<string, string>();
  for (const image of config.images) {
    const at = `images${key(image.key)}`;
    for (
      const { target, index: i, registry } of knownTargets(config, image.targets, {
        at,
        written,
        err,
      })
    ) {
      const ref = image.source.tag ?? image.source.digest;
      const destination = `${target}:${registry.namespace}/${image.repository}:${ref}`;
      const other = destinations.get(destination);
      if (other) {
        err(
          `${at}.targets[${i}]`,
          `"${image.key}" and "${other}" both map to ${registry.host}/${registry.namespace}/${image.repository}:${ref} in "${target}"; set repository on one of them`,
        );
      } else {
        destinations.set(destination, image.key);
      }
    }
    const repository = image.repository;
    if (!isValidDestinationRepository(repository)) {
      err(
        `${at}${
          Object.hasOwn(data.images, image.key) && data.images[image.key].repository
            ? ".repository"
            : ""
        }`,
        `"${repository}" is not a valid destination repository name (lowercase letters, digits, separators . _ -)`,
      );
    }
    if (image.source.tag === undefined && data.operation.updateLatest) {
      warn(
        at,
        "pinned by digest only: written under the tag pinned-<algorithm>-<hex> (a manifest without a tag expires on Quay), which latest never points at",
      );
    }
    if (image.source.tag === "latest") {
      warn(
        at,
        "mirrors the tag latest: when upstream moves it, the run reports drift instead of following",
      );
    }
  }
}

/** The docker engine: one platform, and no bandwidth limit (dockerd moves the layers). */
function checkDockerEngine(data: ValidConfig, warn: Say["warn"]): void {
  if (data.operation.engine === "docker" && !data.operation.platform) {
    warn(
      "operation.platform",
      "docker engine without a platform: multi-arch images are mirrored for the docker daemon's platform only (the registry engine keeps all of them)",
    );
  }
  if (data.operation.engine === "docker") {
    const limited = [
      ...(data.operation.maxBytesPerSecond ? ["operation.maxBytesPerSecond"] : []),
      ...Object.entries(data.registries).filter(([, r]) => r.maxBytesPerSecond)
        .map(([name]) => `registries${key(name)}.maxBytesPerSecond`),
      ...Object.entries(data.sources).filter(([, s]) => s.maxBytesPerSecond)
        .map(([host]) => `sources${key(host)}.maxBytesPerSecond`),
    ];
    for (const path of limited) {
      warn(
        path,
        "the docker engine moves layers inside dockerd, which this limit cannot hold back: it applies to the registry engine (and export/import) only",
      );
    }
  }
}

/**
 * `platforms` and `platformsMode` are the registry engine's: the docker engine pulls one platform
 * (`operation.platform`) and writes a new digest anyway. `platformsMode` without any `platforms`
 * does nothing (a warning).
 */
function checkPlatforms(
  data: ValidConfig,
  err: (path: string, message: string) => void,
  warn: (path: string, message: string) => void,
): void {
  const withPlatforms = [
    ...(data.operation.platforms ? ["operation.platforms"] : []),
    ...Object.entries(data.images).filter(([, e]) => e.platforms).map(([k]) =>
      `images${key(k)}.platforms`
    ),
    ...Object.entries(data.repositories).filter(([, e]) => e.platforms).map(([k]) =>
      `repositories${key(k)}.platforms`
    ),
  ];
  if (data.operation.engine === "docker") {
    if (data.operation.platformsMode) {
      err(
        "operation.platformsMode",
        "platformsMode applies to the registry engine (engine: registry); the docker engine pulls the one operation.platform and always writes a new digest",
      );
    }
    for (const path of withPlatforms) {
      err(
        path,
        "platforms needs the registry engine (engine: registry); the docker engine mirrors the one operation.platform",
      );
    }
    return;
  }
  if (data.operation.platformsMode && withPlatforms.length === 0) {
    warn(
      "operation.platformsMode",
      "does nothing without platforms: every platform of every image is mirrored",
    );
  }
}

/** A placeholder token (not a sample host: `example.com` is a fine webhook in a test). */
const PLACEHOLDER_TOKEN = /YOUR_[A-Z0-9_]*|CHANGE_?ME|REPLACE_?ME|^<.*>$|^x{3,}$|^\.\.\.$|^TODO$/i;

/**
 * Placeholders anywhere outside `registries` (checked field by field above) after `${VAR}`s were
 * expanded: a Secret shipped with `HUB_TOKEN: CHANGE_ME` shows here as `sources["docker.io"]`'s
 * password. Paths with whether the value is a secret (not shown).
 */
function placeholders(data: ValidConfig): [string, boolean][] {
  const out: [string, boolean][] = [];
  const walk = (value: unknown, path: string, secret: boolean) => {
    if (typeof value === "string") {
      if (PLACEHOLDER_TOKEN.test(value)) out.push([path, secret]);
    } else if (Array.isArray(value)) {
      value.forEach((v, i) => walk(v, `${path}[${i}]`, secret));
    } else if (value !== null && typeof value === "object") {
      for (const [k, v] of Object.entries(value)) {
        walk(v, `${path}${key(k)}`, secret || isSecretKey(k));
      }
    }
  };
  for (const section of ["sources", "notify", "metrics"] as const) {
    walk(data[section], section, false);
  }
  return out;
}

/** Is `name` valid as a destination repository (OCI path components and Quay's rule)? */
export function isValidDestinationRepository(name: string): boolean {
  return name.split("/").every((c) => OCI_COMPONENT.test(c)) && QUAY_REPOSITORY.test(name);
}

function fillHint(field: string): string {
  switch (field) {
    case "url":
      return "put your registry's host[:port] here, e.g. quay.apps.ocp.internal";
    case "namespace":
    case "organization":
      return "put the Quay organization (or user) that receives the images";
    case "apiToken":
      return 'create an OAuth token in Quay (Organization -> Applications -> Generate Token, with repo:create) and pass it from the environment (config.ts: Deno.env.get("QUAY_TOKEN"); YAML: ${QUAY_TOKEN})';
    case "username":
      return "use a robot account, e.g. myorg+mirror";
    default:
      return 'pass the secret from the environment (config.ts: Deno.env.get("QUAY_PASSWORD"); YAML: ${QUAY_PASSWORD})';
  }
}

async function checkReadable(
  path: string,
  at: string,
  err: (path: string, message: string) => void,
) {
  try {
    const bytes = await readFileCapped(path, { what: "a CA file", maxBytes: MAX_PEM_BYTES });
    const text = new TextDecoder().decode(bytes);
    if (!text.includes("-----BEGIN CERTIFICATE-----")) err(at, `${path} holds no PEM certificate`);
  } catch (error) {
    if (error instanceof FileInputError && !error.missing) return err(at, error.message);
    const why = error instanceof Deno.errors.NotFound || error instanceof FileInputError
      ? "no such file"
      : error instanceof Deno.errors.PermissionDenied
      ? "permission denied"
      : error instanceof Error
      ? error.message
      : String(error);
    err(at, `cannot read CA file ${path}: ${why}`);
  }
}

/** What {@link knownTargets} reports with. */
export interface TargetCheck {
  /** The entry's path, e.g. `images["nginx:1.25"]`. */
  at: string;
  /** Every registry name written, valid or not; null when `registries` is not a map. */
  written: string[] | null;
  /** Records one problem. */
  err: (path: string, message: string) => void;
}

/**
 * The targets of one `images` or `repositories` entry that name a registry, with their index;
 * an unknown target (unless its registry entry was written and has problems of its own) and a
 * target listed twice are reported through `check.err`.
 *
 * @param config the resolved config (its registries)
 * @param targets the entry's targets as written
 * @param check where to report, and which names were written
 * @returns the known targets with their index and registry
 */
export function knownTargets(
  config: ResolvedConfig,
  targets: string[],
  check: TargetCheck,
): { target: string; index: number; registry: ResolvedConfig["registries"][string] }[] {
  const { at, written, err } = check;
  const known = Object.keys(config.registries);
  const found = [];
  for (const [index, target] of targets.entries()) {
    if (Object.hasOwn(config.registries, target)) {
      found.push({ target, index, registry: config.registries[target] });
    } else if (written !== null && !written.includes(target)) {
      // A registry whose entry has errors of its own, or no registries map at all: said already.
      err(
        `${at}.targets[${index}]`,
        `unknown registry "${target}" (known: ${known.join(", ") || "none"})`,
      );
    }
  }
  if (new Set(targets).size !== targets.length) err(`${at}.targets`, "a target is listed twice");
  return found;
}
