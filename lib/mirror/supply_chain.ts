/**
 * The run's supply-chain step (`operation.signatures`): with `copy` (the registry engine's default)
 * or `require`, every image at its destination after the copy, or found there by the plan, gets its
 * cosign `.sig`/`.att`/`.sbom` tags and OCI referrers carried by the engine
 * (`RegistryEngine.carrySupplyChain`, lib/engine/_supply_chain.ts), filtered by
 * `operation.artifactTypes`. `skip`, and the docker engine (digests change), carry nothing.
 *
 * An image for which nothing was found (no signature, attestation, SBOM or referrer) is still
 * mirrored (refusing it is `require`'s verification). With `copy` that is normal for most public
 * images: one `IMAGE_UNSIGNED` line per run gives the count ({@link unsignedSummary}), the report's
 * entries the detail (all four counts 0); with `require`, a WARNING per image.
 *
 * @module
 */
import type { OperationSettings } from "../config/schema.ts";
import type { Engine, EngineEvent, PlatformOutcome, SupplyChainCounts } from "../engine/engine.ts";
import { formatReference } from "../registry/reference.ts";
import type { MirrorPlan, PlanTask } from "./plan.ts";
import type { TaskResult } from "./run_plan.ts";

/**
 * The tags the plan listed (`repositories` entries), by source `registry/repository`, so the
 * supply-chain step does not list those repositories again.
 */
export function listedTags(plan: MirrorPlan): Map<string, readonly string[]> {
  const out = new Map<string, readonly string[]>();
  for (const selection of plan.selections ?? []) {
    const { registry, repository } = selection.repository.source;
    if (selection.listed.length > 0) out.set(`${registry}/${repository}`, selection.listed);
  }
  return out;
}

/** What `operation.signatures` means for this run's engine. */
export function signaturesMode(
  operation: Pick<OperationSettings, "engine" | "signatures">,
): "copy" | "skip" | "require" {
  return operation.signatures ?? (operation.engine === "registry" ? "copy" : "skip");
}

/**
 * The run_plan.ts `supplyChain` step for this run, or undefined when nothing is carried (`skip`,
 * or an engine that cannot keep digests).
 *
 * @param engine the run's engine
 * @param options the operation settings, where the step's events go, and the plan's tag lists
 */
export function supplyChainStep(
  engine: Engine,
  options: {
    operation: Pick<OperationSettings, "engine" | "signatures" | "artifactTypes">;
    emit: (task: PlanTask, event: EngineEvent) => void;
    /** Tags the plan listed, by source `registry/repository` (`repositories` entries). */
    listed?: ReadonlyMap<string, readonly string[]>;
  },
):
  | ((
    task: PlanTask,
    digest: string,
    signal?: AbortSignal,
    platforms?: PlatformOutcome,
  ) => Promise<SupplyChainCounts>)
  | undefined {
  const carry = engine.carrySupplyChain?.bind(engine);
  if (!carry || signaturesMode(options.operation) === "skip") return undefined;
  return async (task, digest, signal, platforms) => {
    const emit = (event: EngineEvent) => options.emit(task, event);
    const counts = await carry({
      source: task.source,
      destination: task.destination,
      digest,
      mediaType: digest === task.sourceDigest ? task.sourceMediaType : undefined,
      // Some platforms: the kept children's, and the index's own unless it was rewritten (its
      // signatures name the source digest, which the destination does not hold).
      ...(platforms
        ? {
          subjects: digest === platforms.sourceDigest
            ? [digest, ...platforms.children]
            : platforms.children,
        }
        : {}),
      artifactTypes: options.operation.artifactTypes,
      sourceTags: options.listed?.get(`${task.source.registry}/${task.source.repository}`),
      signal,
      onEvent: emit,
    });
    const required = signaturesMode(options.operation) === "require";
    if (
      required && counts.signatures + counts.attestations + counts.sboms + counts.referrers === 0
    ) {
      emit({
        kind: "step",
        code: "IMAGE_UNSIGNED",
        message: `${formatReference(task.source)} (${digest}) carries no signature, attestation, ` +
          `SBOM or referrer: nothing to carry to ${formatReference(task.destination)}`,
      });
    }
    return counts;
  };
}

/**
 * The run's one `IMAGE_UNSIGNED` line with `signatures: copy`: how many images at their destination
 * carry nothing to carry (the report's entries name them), or null when none (or not `copy`).
 */
export function unsignedSummary(
  results: readonly TaskResult[],
  operation: Pick<OperationSettings, "engine" | "signatures">,
): string | null {
  if (signaturesMode(operation) !== "copy") return null;
  const bare = results.filter((r) =>
    r.carried &&
    r.carried.signatures + r.carried.attestations + r.carried.sboms + r.carried.referrers === 0
  );
  if (bare.length === 0) return null;
  return `${bare.length} of ${results.length} image x target carry no signature, attestation, ` +
    "SBOM or referrer (signatures: copy mirrors them anyway; the report's entries show which: all " +
    "four counts 0)";
}
