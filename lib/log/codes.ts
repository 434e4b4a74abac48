/**
 * The one catalogue of codes. Every log line, every {@link MirrorError} and every report entry
 * carries one of these. The level is the default level the logger uses for the code.
 *
 * @module
 */

/** Log levels, lowest first. */
export const LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] as const;
/** A log level name. */
export type Level = typeof LEVELS[number];

/** The code catalogue: code -> default level and a one-line meaning (shown in docs/metrics.md). */
export const CODES = {
  SUCCESS: { level: "INFO", meaning: "an operation finished as planned" },

  CONFIG_VALID: { level: "INFO", meaning: "the configuration passed validation" },
  CONFIG_INVALID: { level: "ERROR", meaning: "the configuration has problems (each one listed)" },
  CONFIG_NOT_FOUND: { level: "ERROR", meaning: "the configuration file does not exist" },
  CONFIG_WARNING: { level: "WARNING", meaning: "the configuration works but something looks off" },

  LOGIN_SUCCESS: { level: "INFO", meaning: "credentials accepted by a registry" },
  LOGIN_FAILED: { level: "ERROR", meaning: "a registry refused the credentials" },
  LOGIN_MISSING_CREDENTIALS: {
    level: "ERROR",
    meaning: "a registry needs credentials and none were found (no terminal to ask)",
  },
  LOGIN_RATE_LIMITED: { level: "WARNING", meaning: "the registry rate-limited us (429)" },

  IMAGE_NOT_FOUND: { level: "ERROR", meaning: "the source image or tag does not exist" },
  IMAGE_PULLED: { level: "INFO", meaning: "docker pulled the source image" },
  IMAGE_TAGGED: { level: "INFO", meaning: "docker tagged the image for a destination" },
  IMAGE_PUSHED: { level: "INFO", meaning: "the image was copied to the destination" },
  IMAGE_ALREADY_EXISTS: {
    level: "INFO",
    meaning: "the destination tag already holds the same image; nothing written",
  },
  IMAGE_SPARSE_REFUSED: {
    level: "ERROR",
    meaning:
      "the destination refuses an index whose children are not all there (platforms, sparse); nothing tagged",
  },
  IMAGE_PLATFORM_ABSENT: {
    level: "ERROR",
    meaning: "the source index has none of the wanted platforms",
  },
  IMAGE_PLATFORMS_REWRITTEN: {
    level: "WARNING",
    meaning:
      "platformsMode rewrite wrote a new index of the kept platforms: a new digest, the index's signatures not carried",
  },
  IMAGE_PLATFORMS_ADDED: {
    level: "INFO",
    meaning: "platforms now wanted were added to an index already mirrored; the tag unchanged",
  },
  IMAGE_TAG_DRIFT: {
    level: "WARNING",
    meaning: "the destination tag holds a different image; reported, not touched",
  },
  IMAGE_TAG_UPDATED: {
    level: "INFO",
    meaning: "a mutable tag upstream moved was copied again (both digests)",
  },
  IMAGE_PULL_FAILED: {
    level: "ERROR",
    meaning: "the source failed: unreachable, TLS, or an error answer to a read",
  },
  IMAGE_PUSH_FAILED: {
    level: "ERROR",
    meaning: "the destination failed: unreachable, TLS, or an error answer to a read or a write",
  },
  IMAGE_DIGEST_MISMATCH: {
    level: "ERROR",
    meaning: "bytes received do not match their digest",
  },
  IMAGE_UNSUPPORTED: {
    level: "ERROR",
    meaning: "the manifest type cannot be copied (e.g. schema1)",
  },
  IMAGE_MANIFEST_INVALID: {
    level: "ERROR",
    meaning: "a manifest, descriptor or digest from a registry is malformed; nothing written",
  },
  IMAGE_REFERRER_INVALID: {
    level: "ERROR",
    meaning: "a referrers list (API answer or fallback tag) is malformed",
  },
  IMAGE_MANIFEST_TOO_LARGE: {
    level: "ERROR",
    meaning: "a manifest (or other metadata body) passed its size cap; reading stopped there",
  },
  IMAGE_RATE_LIMITED: { level: "ERROR", meaning: "the registry kept answering 429" },
  IMAGE_QUOTA_EXCEEDED: {
    level: "ERROR",
    meaning: "the destination namespace's storage quota is full; no more pushes into it this run",
  },
  IMAGE_QUOTA_WARNING: {
    level: "WARNING",
    meaning: "the destination namespace is past its quota's warning limit",
  },
  IMAGE_DEFERRED_RATE_LIMIT: {
    level: "WARNING",
    meaning: "deferred: the source's pull budget is spent; the next run copies it",
  },
  IMAGE_RATE_LIMIT_TOO_SMALL: {
    level: "ERROR",
    meaning:
      "a whole rate-limit window cannot carry the image (limit 0 included): no run copies it",
  },
  IMAGE_LATEST_UPDATED: { level: "INFO", meaning: "latest now points at the newest mirrored tag" },
  IMAGE_LATEST_KEPT: {
    level: "INFO",
    meaning: "latest was left alone (already newest, or would move backwards)",
  },
  IMAGE_TAG_IMMUTABLE: {
    level: "WARNING",
    meaning: "the registry refused to move an immutable tag",
  },
  IMAGE_CLEANUP: { level: "INFO", meaning: "local docker images from this run were removed" },
  IMAGE_PLANNED: { level: "INFO", meaning: "dry run: what would be done" },
  IMAGE_SIGNATURE_INVALID: {
    level: "ERROR",
    meaning: "no valid signature by a trusted key names this digest",
  },
  IMAGE_UNSIGNED: { level: "WARNING", meaning: "the image carries no signature" },
  IMAGE_SIGNATURE_COPIED: {
    level: "INFO",
    meaning: "a cosign .sig/.att/.sbom tag was carried (same digest)",
  },
  IMAGE_REFERRER_COPIED: {
    level: "INFO",
    meaning: "a referrer was carried by digest, or a fallback index kept",
  },

  REPO_EXISTS: { level: "INFO", meaning: "the Quay repository already exists" },
  REPO_CREATED: { level: "INFO", meaning: "the Quay repository was created" },
  REPO_ROBOT_GRANTED: {
    level: "INFO",
    meaning: "the pushing Quay robot was granted write on a repository",
  },
  REPO_CREATE_FAILED: { level: "ERROR", meaning: "Quay refused to create the repository" },
  REPO_ACCESS_DENIED: { level: "ERROR", meaning: "the Quay API token lacks a permission" },
  REPO_API_ERROR: { level: "ERROR", meaning: "the Quay API failed (network, 5xx, timeout)" },

  DOCKER_NOT_AVAILABLE: {
    level: "ERROR",
    meaning: "the docker CLI is missing or its daemon does not answer",
  },
  DOCKER_COMMAND_FAILED: { level: "ERROR", meaning: "a docker command exited non-zero" },
  DOCKER_TIMEOUT: {
    level: "ERROR",
    meaning: "a docker command ran past dockerTimeout and was killed",
  },

  MIRROR_START: { level: "INFO", meaning: "a mirror run started" },
  MIRROR_COMPLETE: { level: "INFO", meaning: "a mirror run finished (statistics follow)" },
  MIRROR_FAILED: { level: "ERROR", meaning: "a mirror run finished with failures" },
  MIRROR_INTERRUPTED: {
    level: "WARNING",
    meaning: "a mirror run was interrupted (Ctrl-C, SIGTERM)",
  },
  MIRROR_LOCKED: { level: "ERROR", meaning: "another run holds the lock" },
  MIRROR_LOCK_STALE: { level: "WARNING", meaning: "a stale lock from a dead run was taken over" },
  MIRROR_LOCK_LOST: {
    level: "ERROR",
    meaning: "another run took over this run's lock (paused past its lease): it stops, exit 3",
  },
  MIRROR_RETRY: {
    level: "WARNING",
    meaning: "a request failed in a way that can pass; tried again after a wait",
  },
  MIRROR_LOG_ROTATED: { level: "INFO", meaning: "the log was archived and started afresh" },
  MIRROR_UNSAFE_PATH: {
    level: "ERROR",
    meaning: "a file in the log dir is a symbolic link; refused, not followed",
  },
  MIRROR_LAYOUT_WRITTEN: {
    level: "INFO",
    meaning: "an export finished its OCI layout and wrote bananna-export.json last",
  },
  IMAGE_PREDECESSOR_MISSING: {
    level: "ERROR",
    meaning: "an incremental export lacks a blob an earlier export carried",
  },

  MIRROR_MERGE_FAILED: {
    level: "ERROR",
    meaning: "report --merge: a shard report is missing, unreadable or mismatched",
  },
  MIRROR_INTERNAL_ERROR: { level: "CRITICAL", meaning: "a bug: please report it with the log" },
  MIRROR_METRICS_FAILED: {
    level: "WARNING",
    meaning: "the metrics file or the Pushgateway push failed; the run's outcome is unchanged",
  },
  MIRROR_NOTIFY_FAILED: {
    level: "WARNING",
    meaning: "the run's webhook notification failed; the run's outcome is unchanged",
  },

  // OpenShift mirror sets (--openshift-mirror-sets).
  MIRROR_SETS_WRITTEN: {
    level: "INFO",
    meaning: "the ImageDigestMirrorSet (and ImageTagMirrorSet) YAML was written",
  },
  MIRROR_SETS_FAILED: { level: "ERROR", meaning: "the OpenShift mirror sets could not be written" },
} as const satisfies Record<string, { level: Level; meaning: string }>;

/** A code from the catalogue. */
export type Code = keyof typeof CODES;
