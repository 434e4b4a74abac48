/**
 * The `operation.signatures` and `operation.artifactTypes` rules and the effective
 * signatures mode:
 * - unset: `copy` with the registry engine, `skip` with docker (no warning);
 * - docker + `copy` written: a warning (docker pull/tag/push changes every digest, so no copied
 *   signature could ever match the mirrored image);
 * - docker + `require`: an error (a signature names the source digest, which the docker engine
 *   does not keep; verify with `verify.cosignKey` and the registry engine instead);
 * - every `artifactTypes` entry must be a media type, `type/subtype` with optional `;param=value`
 *   (RFC 6838 names, as `artifactType` is written in referrers).
 * Keyless verification stays refused by the schema (`verify.keyless`).
 *
 * @module
 */
import type { ConfigProblem } from "../errors.ts";
import type { OperationSettings } from "./schema.ts";

/** What a run does with signatures, attestations, SBOMs and referrers. */
export type SignaturesMode = "copy" | "skip" | "require";

/** RFC 6838 restricted-name, `type/subtype`, optional `; name=value` parameters. */
const NAME = "[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}";
const MEDIA_TYPE = new RegExp(
  `^${NAME}/${NAME}(?:\\s*;\\s*${NAME}=(?:[A-Za-z0-9!#$&^_.+-]+|"[^"\\\\]*"))*$`,
);

/** The mode a run uses: `operation.signatures`, else `copy` (registry engine) or `skip` (docker). */
export function effectiveSignatures(
  operation: Pick<OperationSettings, "engine" | "signatures">,
): SignaturesMode {
  return operation.signatures ?? (operation.engine === "registry" ? "copy" : "skip");
}

/** Is `value` a media type (`type/subtype[;param=value]`)? */
export function isMediaType(value: string): boolean {
  return MEDIA_TYPE.test(value);
}

/**
 * Check the rules on the operation settings as written.
 *
 * @returns Problems with their paths (severity "warning" for the docker + copy warning).
 */
export function checkSignatureRules(
  operation: Pick<OperationSettings, "engine" | "signatures" | "artifactTypes">,
): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  if (operation.engine === "docker" && operation.signatures === "copy") {
    problems.push({
      path: "operation.signatures",
      severity: "warning",
      message:
        "copy with the docker engine: docker pull/tag/push changes every digest, so a copied signature can never match the mirrored image; nothing is copied (use engine: registry to carry signatures)",
    });
  }
  if (operation.engine === "docker" && operation.signatures === "require") {
    problems.push({
      path: "operation.signatures",
      message:
        "require needs engine: registry: the docker engine changes every digest, so no signature can name the mirrored image; use engine: registry, or verify.cosignKey to check the source before docker pulls it",
    });
  }
  for (const [i, type] of (operation.artifactTypes ?? []).entries()) {
    if (!isMediaType(type)) {
      problems.push({
        path: `operation.artifactTypes[${i}]`,
        message: `${
          JSON.stringify(type.length > 80 ? `${type.slice(0, 80)}…` : type)
        } is not a media type: write type/subtype, e.g. application/vnd.dev.sigstore.bundle.v0.3+json`,
      });
    }
  }
  return problems;
}
