/**
 * Image references, parsed once at the edge into plain data.
 *
 * Grammar (distribution/reference, see shared/registry-protocols.md §1):
 * ```
 * reference  := name [ ":" tag ] [ "@" digest ]
 * name       := [ domain "/" ] path
 * domain     := host [ ":" port ]     host = DNS name | IPv4 | "[" IPv6 "]"
 * path       := component ( "/" component )*
 * component  := [a-z0-9]+ ( separator [a-z0-9]+ )*
 * separator  := "." | "_" | "__" | "-"+
 * tag        := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
 * digest     := algorithm ":" hex      (sha256: 64 lowercase hex, sha512: 128)
 * ```
 * Digests from a registry (descriptors, `Docker-Content-Digest`) are data, never paths: they are
 * checked with {@link validDigest} before any use, and the registry client builds URLs only from
 * names, tags and digests that pass {@link isValidRepository}, {@link isValidTag} and
 * {@link validDigest} (so a "digest" like `a:b/../../other/repo/manifests/v1` cannot steer a
 * request into another repository).
 * Domain detection: the part before the first "/" is a domain when it contains "." or ":", is
 * "localhost", or is not all lowercase; otherwise the name is on Docker Hub (`docker.io`), where a
 * one-component path gets `library/`. No tag and no digest means `latest`.
 *
 * @module
 */

/** A parsed, normalised image reference. */
export interface Reference {
  /** Normalised domain, e.g. `docker.io`, `quay.io`, `127.0.0.1:5000`. */
  registry: string;
  /** Repository path, e.g. `library/nginx`. */
  repository: string;
  /** Tag, if given (defaults to `latest` when neither tag nor digest is given). */
  tag?: string;
  /** Digest, if given. Authoritative when both are present. */
  digest?: string;
}

/** A reference that does not follow the grammar. */
export class ReferenceError extends Error {
  /** Create the error for the given input. */
  constructor(input: string, reason: string) {
    super(`invalid image reference "${input}": ${reason}`);
    this.name = "ReferenceError";
  }
}

const COMPONENT = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const DOMAIN_PART = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$/;
const IPV6 = /^\[[0-9a-fA-F:.]+\]$/;
const DIGEST_ALGORITHM = /^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*$/;
/** The registered OCI digest algorithms and their hex lengths (image-spec descriptor.md). */
const DIGEST_HEX_LENGTH: Record<string, number> = { sha256: 64, sha512: 128 };
const DIGEST = /^(?:sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;

/** The Docker Hub name and the host its API answers on. */
const DOCKER_HUB = "docker.io";
/** The host Docker Hub's registry API lives on. */
const DOCKER_HUB_API = "registry-1.docker.io";
/** Docker Hub's legacy index name (references and docker's config.json key use it). */
export const DOCKER_HUB_INDEX = "index.docker.io";
/** Every name of Docker Hub; this module is the only place that knows them. */
const DOCKER_HUB_ALIASES: ReadonlySet<string> = new Set([
  DOCKER_HUB,
  DOCKER_HUB_INDEX,
  DOCKER_HUB_API,
]);

/**
 * Is `host` one of Docker Hub's names (docker.io, index.docker.io, registry-1.docker.io)?
 *
 * @example
 * ```ts
 * import { isDockerHub } from "./reference.ts";
 * import assert from "node:assert/strict";
 * assert.equal(isDockerHub("registry-1.docker.io"), true);
 * assert.equal(isDockerHub("quay.io"), false);
 * ```
 */
export function isDockerHub(host: string): boolean {
  return DOCKER_HUB_ALIASES.has(host);
}

/**
 * A registry host as the config and references name it: any of Docker Hub's names becomes
 * `docker.io`, any other host is returned as it is.
 *
 * @example
 * ```ts
 * import { canonicalHost } from "./reference.ts";
 * import assert from "node:assert/strict";
 * assert.equal(canonicalHost("index.docker.io"), "docker.io");
 * assert.equal(canonicalHost("127.0.0.1:5000"), "127.0.0.1:5000");
 * ```
 */
export function canonicalHost(host: string): string {
  return isDockerHub(host) ? DOCKER_HUB : host;
}

/**
 * Parse and normalise an image reference.
 *
 * @example
 * ```ts
 * import { parseReference } from "./reference.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual(parseReference("nginx:1.25"), {
 *   registry: "docker.io", repository: "library/nginx", tag: "1.25",
 * });
 * ```
 * @throws {ReferenceError} when the input does not follow the grammar.
 */
export function parseReference(input: string): Reference {
  if (input.length === 0) throw new ReferenceError(input, "empty");
  if (input !== input.trim()) throw new ReferenceError(input, "leading or trailing spaces");
  let rest = input;
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    validateDigest(input, digest);
  }
  // The tag is after the last ":" that comes after the last "/".
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf("/");
  const colon = rest.indexOf(":", lastSlash + 1);
  if (colon >= 0) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) {
      throw new ReferenceError(
        input,
        `tag "${tag}" must be 1-128 of [A-Za-z0-9_.-] and not start with "." or "-"`,
      );
    }
  }
  if (rest.length === 0) throw new ReferenceError(input, "missing repository name");
  let registry = DOCKER_HUB;
  let path = rest;
  const slash = rest.indexOf("/");
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    if (
      first === "localhost" || first.includes(".") || first.includes(":") ||
      first !== first.toLowerCase()
    ) {
      registry = first === DOCKER_HUB_INDEX ? DOCKER_HUB : first;
      path = rest.slice(slash + 1);
      validateDomain(input, registry);
    }
  }
  if (/^[a-f0-9]{64}$/.test(path)) {
    throw new ReferenceError(input, "cannot specify 64-byte hexadecimal strings");
  }
  if (path !== path.toLowerCase()) {
    throw new ReferenceError(input, "repository name must be lowercase");
  }
  for (const component of path.split("/")) {
    if (!COMPONENT.test(component)) {
      throw new ReferenceError(
        input,
        component === ""
          ? "empty path component"
          : `path component "${component}" must be lowercase letters and digits, separated by ".", "_", "__" or "-"`,
      );
    }
  }
  if (path.length > 255) {
    throw new ReferenceError(input, "repository name longer than 255 characters");
  }
  if (registry === DOCKER_HUB && !path.includes("/")) path = `library/${path}`;
  const ref: Reference = { registry, repository: path };
  if (tag !== undefined) ref.tag = tag;
  if (digest !== undefined) ref.digest = digest;
  if (tag === undefined && digest === undefined) ref.tag = "latest";
  return ref;
}

function validateDomain(input: string, domain: string): void {
  let host = domain;
  const portMatch = /^(.*):(\d+)$/.exec(domain);
  if (portMatch) {
    host = portMatch[1];
    const port = Number(portMatch[2]);
    if (port < 1 || port > 65535) throw new ReferenceError(input, `port ${port} out of range`);
  } else if (domain.includes(":") && !IPV6.test(domain)) {
    throw new ReferenceError(input, `domain "${domain}" has a bad port`);
  }
  if (IPV6.test(host)) return;
  for (const part of host.split(".")) {
    if (!DOMAIN_PART.test(part)) throw new ReferenceError(input, `bad domain "${domain}"`);
  }
}

function validateDigest(input: string, digest: string): void {
  const sep = digest.indexOf(":");
  if (sep <= 0) throw new ReferenceError(input, `digest "${digest}" must be algorithm:hex`);
  const algorithm = digest.slice(0, sep);
  const hex = digest.slice(sep + 1);
  if (!DIGEST_ALGORITHM.test(algorithm)) {
    throw new ReferenceError(input, `bad digest algorithm "${algorithm}"`);
  }
  const wanted = DIGEST_HEX_LENGTH[algorithm];
  if (wanted === undefined) {
    throw new ReferenceError(input, `unsupported digest algorithm "${algorithm}"`);
  }
  if (!new RegExp(`^[a-f0-9]{${wanted}}$`).test(hex)) {
    throw new ReferenceError(
      input,
      `${algorithm} digest must be ${wanted} lowercase hex characters`,
    );
  }
}

/** Is `value` a valid tag? */
export function isValidTag(value: unknown): value is string {
  return typeof value === "string" && TAG.test(value);
}

/**
 * Is `value` a digest of the OCI grammar: `sha256:` and 64 lowercase hex, or `sha512:` and 128?
 * The one check for every digest that comes from a registry.
 *
 * @example
 * ```ts
 * import { validDigest } from "./reference.ts";
 * import assert from "node:assert/strict";
 * assert.equal(validDigest(`sha256:${"a".repeat(64)}`), true);
 * assert.equal(validDigest("a:b/../../other/repo/manifests/v1"), false);
 * ```
 */
export function validDigest(value: unknown): value is string {
  return typeof value === "string" && DIGEST.test(value);
}

/**
 * Is `value` a repository path of the grammar (components joined by "/", at most 255 characters,
 * no domain)?
 */
export function isValidRepository(value: unknown): value is string {
  return typeof value === "string" && value.length > 0 && value.length <= 255 &&
    value.split("/").every((component) => COMPONENT.test(component));
}

/**
 * Format a reference in full form: `registry/repository[:tag][@digest]`.
 *
 * @example
 * ```ts
 * import { formatReference, parseReference } from "./reference.ts";
 * import assert from "node:assert/strict";
 * assert.equal(formatReference(parseReference("nginx")), "docker.io/library/nginx:latest");
 * ```
 */
export function formatReference(ref: Reference): string {
  return `${ref.registry}/${ref.repository}${ref.tag !== undefined ? `:${ref.tag}` : ""}${
    ref.digest !== undefined ? `@${ref.digest}` : ""
  }`;
}

/** The prefix of {@link pinnedDigestTag}: no cosign tag, referrers fallback tag or version starts so. */
const PINNED_PREFIX = "pinned-";
const PINNED_TAG = /^pinned-(?:sha256-[a-f0-9]{64}|sha512-[a-f0-9]{114})$/;

/**
 * The tag a digest-pinned image (`name@sha256:...`) is written under, so that every manifest the
 * mirror writes is reachable by a tag: Quay expires a top-level manifest pushed by digest alone
 * after an hour, and `garbage-collect --delete-untagged` removes it from distribution. It is
 * `pinned-<algorithm>-<hex>`: the same on every run (a re-run finds it and writes nothing), a
 * valid tag of at most 128 characters (a sha512 keeps its first 114 hex digits, 456 bits), and
 * distinct from cosign's `sha256-<hex>.sig/.att/.sbom` and the referrers fallback tag
 * `sha256-<hex>`. Tag rules, `latest` and the tag listing of a mirror never pick it
 * ({@link isPinnedDigestTag}).
 *
 * @example
 * ```ts
 * import { pinnedDigestTag } from "./reference.ts";
 * import assert from "node:assert/strict";
 * assert.equal(pinnedDigestTag(`sha256:${"ab".repeat(32)}`), `pinned-sha256-${"ab".repeat(32)}`);
 * assert.equal(pinnedDigestTag(`sha512:${"c".repeat(128)}`).length, 128);
 * ```
 * @throws {RangeError} when `digest` is not a valid digest.
 */
export function pinnedDigestTag(digest: string): string {
  if (!validDigest(digest)) throw new RangeError(`not a digest: ${JSON.stringify(digest)}`);
  return `${PINNED_PREFIX}${digest.replace(":", "-")}`.slice(0, 128);
}

/** Is `tag` a {@link pinnedDigestTag}? */
export function isPinnedDigestTag(tag: string): boolean {
  return PINNED_TAG.test(tag);
}

/** The tag or digest to address a manifest by (digest wins). */
export function manifestRef(ref: Reference): string {
  return ref.digest ?? ref.tag ?? "latest";
}

/** The host to send API requests to (`docker.io` -> `registry-1.docker.io`). */
export function apiHost(registry: string): string {
  return registry === DOCKER_HUB ? DOCKER_HUB_API : registry;
}

/** Is this host on the loopback (localhost, 127.0.0.0/8, ::1)? Such hosts default to plain http. */
export function isLoopbackHost(hostWithPort: string): boolean {
  const host = hostWithPort.startsWith("[")
    ? hostWithPort.slice(1, hostWithPort.indexOf("]"))
    : hostWithPort.replace(/:\d+$/, "");
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}
