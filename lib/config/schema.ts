/**
 * The configuration schema: what the user writes ({@link Config}, `z.input`) and the validated
 * data with every default filled ({@link ValidConfig}, `z.output`). Defaults live here and only
 * here. Unknown keys are rejected, so a typo is an error in YAML and a type error in config.ts.
 *
 * `load_config.ts` turns a ValidConfig into a {@link ResolvedConfig}: references parsed, urls
 * split into scheme and host, paths made absolute.
 *
 * @module
 */
import { z } from "../zod.ts";
import type { Reference } from "../registry/reference.ts";
import {
  metricsSchema,
  notifySchema,
  openshiftSchema,
  type OpenshiftSettings,
  type ResolvedMetrics,
  type ResolvedNotify,
} from "./ops_schema.ts";

/** A string of at least one character (one instance, shared by every field that needs it). */
const nonEmpty = z.string().check(z.minLength(1));

/** A list of at least one item. */
const nonEmptyList = <T extends z.ZodMiniType>(item: T) => z.array(item).check(z.minLength(1));

const seconds = (min: number, max: number, fallback: number) =>
  z._default(z.number().check(z.gte(min), z.lte(max)), fallback);

/** An integer in `[min, max]`, `fallback` when unset. */
const integer = (min: number, max: number, fallback: number) =>
  z._default(z.number().check(z.int(), z.gte(min), z.lte(max)), fallback);

/** Connection settings shared by destination and source registries. */
/** A bandwidth limit in bytes per second: at least 1 KiB/s. */
const bytesPerSecond = z.number().check(z.int(), z.gte(1024), z.lte(1e12));

const connection = {
  /** Username for the registry (robot account `org+name` on Quay). */
  username: z.optional(nonEmpty),
  /** Password or token for the registry. Use `${VAR}` in YAML. */
  password: z.optional(nonEmpty),
  /** A PEM file with the CA(s) to trust for this registry, relative to the config file. */
  caFile: z.optional(nonEmpty),
  /** Plain http (no TLS). Loopback hosts default to http like docker does (false: TLS there too). */
  insecure: z.optional(z.boolean()),
  /**
   * Bandwidth limit for this host's blob streams, in bytes per second per direction, on top of
   * `operation.maxBytesPerSecond` (registry engine, export and import).
   */
  maxBytesPerSecond: z.optional(bytesPerSecond),
};

/**
 * Keys whose values are secrets wherever they appear: never shown in a message (validate, mirror,
 * log, report), registered for masking the moment the config is read.
 */
export const SECRET_KEYS: ReadonlySet<string> = new Set(["password", "apiToken"]);

/** One destination registry. */
export const registrySchema = z.strictObject({
  /** `host[:port]`, optionally with `http://` or `https://`. */
  url: nonEmpty,
  /** Namespace (Quay organization or user) the images go into. */
  namespace: nonEmpty,
  /** Quay organization for the REST API; defaults to `namespace`. */
  organization: z.optional(nonEmpty),
  /** `quay` (REST API for repositories) or `registry` (a plain OCI registry). */
  kind: z._default(z.enum(["quay", "registry"]), "quay"),
  /** Quay OAuth API token (Bearer) for creating repositories. */
  apiToken: z.optional(nonEmpty),
  /**
   * Quay robot account that pushes (`org+name`, or `name` in `organization`): granted `write` on
   * every repository the run creates or finds without it (needs the token's `repo:admin`
   * scope). A `username` of the form `org+name` counts as this.
   */
  robot: z.optional(nonEmpty),
  ...connection,
});

/** Connection settings for one source registry host (e.g. `docker.io`). */
export const sourceSchema = z.strictObject(connection);

/** Log settings. */
export const logSchema = z.strictObject({
  level: z._default(z.enum(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]), "INFO"),
  file: z._default(nonEmpty, "bananna-bot.log"),
  dir: z._default(nonEmpty, "logs"),
  rotationDays: integer(1, 3650, 7),
  consoleOutput: z._default(z.boolean(), true),
  keepArchives: integer(0, 10_000, 0),
  /** Seconds a run lock's heartbeat stays good (run_lock.ts); renewed every tenth of it. */
  lockLease: seconds(1, 86_400, 300),
});

/**
 * `verify`: check the source image's cosign signature before mirroring it. Only key-based
 * verification (`cosignKey`: one PEM path or several, any one suffices); keyless (Fulcio + Rekor)
 * is out of scope, so any other key is refused as unknown.
 */
const verifySchema = z.strictObject({
  cosignKey: z.union([nonEmpty, nonEmptyList(nonEmpty)], {
    error: "give the path of a cosign public key (or a list of paths)",
  }),
  keyless: z.optional(z.never({
    error:
      "keyless verification (Fulcio certificate + Rekor bundle) is out of scope; verify with cosignKey: path/to/cosign.pub",
  })),
});

/** OS names a platform may start with (GOOS values, as image indexes write them). */
const PLATFORM_OS = new Set([
  "aix",
  "android",
  "darwin",
  "dragonfly",
  "freebsd",
  "illumos",
  "ios",
  "js",
  "linux",
  "netbsd",
  "openbsd",
  "plan9",
  "solaris",
  "wasip1",
  "windows",
]);

/**
 * One platform of a multi-arch image in the image spec's `os/arch[/variant]` form
 * (`linux/amd64`, `linux/arm64/v8`): an OS it knows first, then an architecture.
 */
const platformSchema = z.string().check(z.refine(
  (value) =>
    /^[a-z0-9_]+\/[a-z0-9_]+(\/[a-z0-9_.]+)?$/.test(value) && PLATFORM_OS.has(value.split("/")[0]),
  {
    error: (issue) =>
      `${
        JSON.stringify(issue.input)
      } is not a platform: write os/arch[/variant], e.g. linux/amd64 or linux/arm64/v8`,
  },
));

/**
 * `platforms`: the platforms of a multi-arch image to mirror (registry engine); at least one.
 * A single-platform image is mirrored as it is.
 */
const platformsSchema = z.array(platformSchema, {
  error: "give a list of platforms, e.g. [linux/amd64]",
}).check(z.minLength(1, {
  error:
    "an empty list mirrors nothing: list at least one platform, e.g. [linux/amd64], or remove platforms to keep every platform",
}));

/** Operation settings. */
export const operationSchema = z.strictObject({
  /**
   * `registry` (default): daemonless copy that keeps digests and carries signatures. `docker`:
   * pull, tag and push through a docker daemon (the original tool's behaviour); needs the docker
   * CLI and a daemon that answers.
   */
  engine: z._default(z.enum(["docker", "registry"]), "registry"),
  continueOnError: z._default(z.boolean(), true),
  createReposIfNotExists: z._default(z.boolean(), true),
  cleanupLocalImages: z._default(z.boolean(), false),
  /** Seconds one docker command may run before it is killed. */
  dockerTimeout: seconds(1, 86_400, 600),
  /** Seconds one HTTP request (Quay API, registry metadata, a blob stream) may stay silent. */
  apiTimeout: seconds(1, 3_600, 30),
  /**
   * Seconds one metadata request (manifest, tag-list page, referrers, token, Quay API, webhook:
   * anything but a blob stream) may take in all, body included, however steadily it trickles.
   * 60: a 4 MiB manifest needs 70 KB/s, the same floor as `minBlobRate`. 0: no deadline.
   */
  requestDeadline: seconds(0, 3_600, 60),
  /**
   * Bytes per second a blob stream must move, measured over each `blobRateGrace` window after
   * the first (the grace). 64 KiB/s (512 kbit/s): slower than any working registry link, fast
   * enough that a trickling source cannot hold the run (and its lock) for hours. 0: no minimum.
   */
  minBlobRate: integer(0, 1024 * 1024 * 1024, 64 * 1024),
  /** Seconds of grace before `minBlobRate` applies, and the window it is measured over. */
  blobRateGrace: seconds(1, 3_600, 30),
  maxRetries: integer(0, 20, 3),
  /** Seconds before the first retry (doubles each time, with jitter). */
  retryDelay: seconds(0, 3_600, 5),
  /**
   * Seconds one wait for a registry's `Retry-After` may last. A registry that asks for longer
   * fails that request with IMAGE_RATE_LIMITED (the wanted wait in the message) instead of
   * parking the run.
   */
  maxRetryWait: seconds(1, 86_400, 300),
  /**
   * Bytes a manifest (or another metadata body: tag list, token answer) may have. Only raising
   * the 4 MiB default is allowed, as distribution and containers/image cap manifests at 4 MiB.
   */
  maxManifestBytes: integer(4 * 1024 * 1024, 256 * 1024 * 1024, 4 * 1024 * 1024),
  /**
   * Docker Hub pull budget: pulls (manifest GETs) to keep in hand per rate-limited source host.
   * Capped at 10% of the host's `ratelimit-limit` (so a 10-pull anonymous limit keeps 1, not
   * all 10); see lib/mirror/pull_budget.ts.
   */
  dockerHubReserve: integer(0, 100_000, 10),
  /**
   * Bandwidth limit of the whole process, in bytes per second per direction: every blob
   * download together, and every blob upload together, whatever the concurrency (registry
   * engine, export and import; lib/registry/bandwidth.ts).
   */
  maxBytesPerSecond: z.optional(bytesPerSecond),
  /**
   * Images mirrored at once (each with up to 4 blobs at once); no-op tasks and `latest` read at 4x
   * this. 4, as oc-mirror's parallel images: docs "Performance" has the measurements.
   */
  concurrency: integer(1, 64, 4),
  /** Move `latest` to the highest mirrored tag when a new tag lands. */
  updateLatest: z._default(z.boolean(), true),
  /** Docker engine: the platform to pull, e.g. `linux/amd64`. */
  platform: z.optional(
    z.string().check(z.regex(/^[a-z0-9_]+\/[a-z0-9_]+(\/[a-z0-9_.]+)?$/, {
      message: "platform must look like os/arch[/variant], e.g. linux/amd64",
    })),
  ),
  /**
   * Registry engine: mirror only these platforms of a multi-arch image (every entry without its
   * own `platforms`). Unset: every platform.
   */
  platforms: z.optional(platformsSchema),
  /**
   * With `platforms`: `sparse` (default) pushes the index unchanged with only the selected
   * children, keeping its digest (the destination must accept an index with missing children);
   * `rewrite` writes a new index holding only the selected platforms (a new digest).
   */
  platformsMode: z.optional(z.enum(["sparse", "rewrite"])),
  /** Signature verification for every entry without its own `verify`. */
  verify: z.optional(verifySchema),
  /**
   * Supply chain: `copy` carries cosign `.sig`/`.att`/`.sbom` tags and OCI referrers with every
   * copied manifest (the registry engine's default), `skip` leaves them, `require` also refuses
   * an image that carries no signature. Unset: `copy` with the registry engine, `skip` with docker.
   */
  signatures: z.optional(z.enum(["copy", "skip", "require"])),
  /** Referrers copied only when their `artifactType` is in this list (unset: every type). */
  artifactTypes: z.optional(nonEmptyList(nonEmpty)),
});

/** One image to mirror. */
export const imageSchema = z.strictObject({
  /** Names of entries in `registries`. */
  targets: nonEmptyList(nonEmpty),
  /** Description for the Quay repository when it is created. */
  description: z.optional(z.string()),
  /** Destination repository name (default: last path component of the source). */
  repository: z.optional(nonEmpty),
  /** Signature verification for this image (overrides `operation.verify`). */
  verify: z.optional(verifySchema),
  /** Platforms of a multi-arch image to mirror (overrides `operation.platforms`). */
  platforms: z.optional(platformsSchema),
});

/**
 * The `tags` rules of a `repositories` entry. Only the shapes are checked here; that the regexes
 * compile, the range parses, `newest` is an integer >= 1 and each `mutable` tag can be selected
 * is checked by `tag_rules.ts` (`checkTagRules`), with the same paths.
 */
export const tagRulesSchema = z.strictObject({
  /** Regexes (JavaScript syntax, anchored only as written); a tag must match at least one. */
  include: z.optional(z.array(z.string())),
  /** Regexes; a tag matching any of them is dropped. */
  exclude: z.optional(z.array(z.string())),
  /** An npm semver range, e.g. `">=1.25.0 <2"`; only versions inside it are kept. */
  semver: z.optional(z.string()),
  /** Then keep the N highest versions (an integer >= 1). */
  newest: z.optional(z.number()),
  /** Destination tags that follow upstream when it moves them (opt-in; selects nothing). */
  mutable: z.optional(z.array(z.string())),
});

/** One source repository whose tags are chosen by rules (the key names no tag). */
export const repositorySchema = z.strictObject({
  /** Names of entries in `registries`. */
  targets: nonEmptyList(nonEmpty),
  /** Description for the Quay repository when it is created. */
  description: z.optional(z.string()),
  /** Destination repository name (default: last path component of the source). */
  repository: z.optional(nonEmpty),
  /** Which listed tags are mirrored; no rules: every listed tag. */
  tags: z._default(tagRulesSchema, {}),
  /** Signature verification for these tags (overrides `operation.verify`). */
  verify: z.optional(verifySchema),
  /** Platforms of multi-arch images to mirror (overrides `operation.platforms`). */
  platforms: z.optional(platformsSchema),
});

/** The whole configuration. */
export const configSchema = z.strictObject({
  /** Config format version. */
  version: z._default(z.literal(1), 1),
  registries: z.record(nonEmpty, registrySchema),
  sources: z._default(z.record(nonEmpty, sourceSchema), {}),
  log: z._default(logSchema, logSchema.parse({})),
  operation: z._default(operationSchema, operationSchema.parse({})),
  /** Single tags (or digests) to mirror. Optional when `repositories` has an entry. */
  images: z._default(z.record(nonEmpty, imageSchema), {}),
  /** Source repositories whose tags are selected by rules. Optional when `images` has one. */
  repositories: z._default(z.record(nonEmpty, repositorySchema), {}),
  /** Prometheus metrics of every run: a text file and/or a Pushgateway (ops_schema.ts). */
  metrics: z.optional(metricsSchema),
  /** One webhook notification per run (ops_schema.ts). */
  notify: z.optional(notifySchema),
  /** What `--openshift-mirror-sets` writes: object names, mirrorSourcePolicy (ops_schema.ts). */
  openshift: z.optional(openshiftSchema),
});

/** What the user writes (optional fields optional). */
export type Config = z.input<typeof configSchema>;
/** Validated config with defaults filled, before references and paths are resolved. */
export type ValidConfig = z.output<typeof configSchema>;
/** Log settings with defaults. */
export type LogSettings = z.output<typeof logSchema>;
/** Operation settings with defaults. */
export type OperationSettings = z.output<typeof operationSchema>;

/**
 * Type the config object in config.ts: a typo is a type error in the editor and in
 * `deno task check`.
 */
export function defineConfig(config: Config): Config {
  return config;
}

/** How to reach one registry host: scheme, TLS and credentials as written in the config. */
export interface Connection {
  /** `host[:port]` as used in references (`docker.io`, `quay.example.com`, `127.0.0.1:5000`). */
  host: string;
  /** `https` unless `insecure`, an explicit `http://` url, or a loopback host. */
  scheme: "http" | "https";
  /** Absolute path of a PEM CA bundle, if configured. */
  caFile?: string;
  username?: string;
  password?: string;
  /** Where the password came from, for messages (never the value): `${VAR} (path)`. */
  passwordFrom?: string;
  /** This host's bandwidth limit for blob streams, bytes per second per direction. */
  maxBytesPerSecond?: number;
}

/** A destination registry, resolved. */
export interface ResolvedRegistry extends Connection {
  /** The key in `registries`. */
  name: string;
  namespace: string;
  /** Quay organization for the REST API (defaults to namespace). */
  organization: string;
  kind: "quay" | "registry";
  apiToken?: string;
  /** Quay robot to grant `write` on every repository (`org+name`): `robot`, or an `org+name` username. */
  robot?: string;
}

/** One image to mirror, resolved. */
export interface ResolvedImage {
  /** The key as written in the config (used in messages and `--only`). */
  key: string;
  /** The parsed source reference. */
  source: Reference;
  /** Names of the target registries. */
  targets: string[];
  description?: string;
  /** Destination repository name inside the target namespace. */
  repository: string;
  /** Absolute paths of the cosign public keys the source must be signed with; absent/empty: none. */
  verifyKeys?: string[];
  /** The platforms to mirror (the entry's own, else `operation.platforms`); absent: all. */
  platforms?: string[];
}

/** The `tags` rules of a repository, as written (checked by `checkTagRules`). */
export type TagRulesSettings = z.output<typeof tagRulesSchema>;

/** One source repository whose tags are selected by rules, resolved. */
export interface ResolvedRepository {
  /** The key as written in the config (used in messages and `--only`). */
  key: string;
  /** The parsed source repository: registry and repository, never a tag or digest. */
  source: Omit<Reference, "tag" | "digest">;
  /** Names of the target registries. */
  targets: string[];
  description?: string;
  /** Destination repository name inside the target namespace. */
  repository: string;
  /** The tag rules as written (`{}`: every listed tag). */
  tags: TagRulesSettings;
  /** Absolute paths of the cosign public keys the source must be signed with; absent/empty: none. */
  verifyKeys?: string[];
  /** The platforms to mirror (the entry's own, else `operation.platforms`); absent: all. */
  platforms?: string[];
}

/** A config ready to run: every default filled, every reference parsed, every path absolute. */
export interface ResolvedConfig {
  /** The config file path as given (for messages). */
  file: string;
  registries: Record<string, ResolvedRegistry>;
  /** Source connections by host (`docker.io`, `ghcr.io`, ...). */
  sources: Record<string, Connection>;
  /** Log settings; `dir` is absolute. */
  log: LogSettings;
  operation: OperationSettings;
  images: ResolvedImage[];
  /** Source repositories whose tags are selected by rules (empty when none are configured). */
  repositories: ResolvedRepository[];
  /** `metrics`, when configured (paths absolute). */
  metrics?: ResolvedMetrics;
  /** `notify`, when configured. */
  notify?: ResolvedNotify;
  /** `openshift`, when configured. */
  openshift?: OpenshiftSettings;
}
