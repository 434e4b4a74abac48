/**
 * Schema issues as config problems: zod's issues become `path: message` lines, and an unknown key
 * gets a did-you-mean from the keys the schema itself knows at that place (no hand-kept list).
 *
 * @module
 */
import { closest, type ConfigProblem } from "../errors.ts";
import type { Secrets } from "../log/redact.ts";
import { isSecretKey, showValue } from "./config_secrets.ts";
import { formatPath } from "./parse_config_text.ts";
import { metricsSchema, notifySchema } from "./ops_schema.ts";
import {
  configSchema,
  imageSchema,
  logSchema,
  operationSchema,
  registrySchema,
  repositorySchema,
  sourceSchema,
  tagRulesSchema,
} from "./schema.ts";

/** Known keys per section, read from the schema (the one place they live). */
const KNOWN_KEYS: Record<string, string[]> = {
  top: Object.keys(configSchema.shape),
  registry: Object.keys(registrySchema.shape),
  source: Object.keys(sourceSchema.shape),
  log: Object.keys(logSchema.shape),
  operation: Object.keys(operationSchema.shape),
  image: Object.keys(imageSchema.shape),
  repository: Object.keys(repositorySchema.shape),
  tags: Object.keys(tagRulesSchema.shape),
  metrics: Object.keys(metricsSchema.shape),
  notify: Object.keys(notifySchema.shape),
};

function sectionOf(path: readonly PropertyKey[]): string {
  if (path.length === 0) return "top";
  if (path[0] === "registries" && path.length === 2) return "registry";
  if (path[0] === "sources" && path.length === 2) return "source";
  if (path[0] === "images" && path.length === 2) return "image";
  if (path[0] === "repositories" && path.length === 2) return "repository";
  if (path[0] === "repositories" && path.length === 3 && path[2] === "tags") return "tags";
  if (path.length === 1 && (path[0] === "log" || path[0] === "operation")) return String(path[0]);
  if (path.length === 1 && (path[0] === "metrics" || path[0] === "notify")) return String(path[0]);
  return "";
}

/** The parts of a zod issue this module reads. */
export interface SchemaIssue {
  code: string;
  path: PropertyKey[];
  message: string;
  keys?: string[];
  expected?: string;
  values?: unknown[];
}

/**
 * One schema issue as a path-precise problem: an unknown key gets a did-you-mean from the keys the
 * schema knows at that place, a missing field says what it needs, any other value is quoted back
 * masked (a secret key's value never is).
 *
 * @param issue a zod issue
 * @param context the raw config (to quote the value) and the secrets to mask
 * @returns the problem, its path formatted as in the config
 */
export function issueToProblem(
  issue: SchemaIssue,
  context: { raw: unknown; masker: Secrets },
): ConfigProblem {
  const { raw, masker } = context;
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
  // A value under a secret key at any depth (a notify header's value) is secret too.
  const isSecret = issue.path.some((part) => typeof part === "string" && isSecretKey(part));
  return {
    path: formatPath(issue.path),
    message: `${issue.message} (got ${isSecret ? "***" : showValue(actual, masker)})`,
  };
}
