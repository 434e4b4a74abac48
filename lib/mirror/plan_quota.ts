/**
 * A plan step (plan.ts only; it knows tasks by the fields it reads, so it imports nothing back): the storage quota of every Quay organization the plan would push
 * into, read once per organization (`GET /api/v1/organization/<org>`, registry-protocols §5.14).
 * At or over the Reject limit, the organization's pushes fail at once with IMAGE_QUOTA_EXCEEDED
 * and the usage and limit in the message: Quay would refuse their blob uploads part-way through
 * an image. Over the Warning limit, the plan says so (the run logs one IMAGE_QUOTA_WARNING). The
 * dry run prints the same plan, so it predicts both.
 *
 * @module
 */
import type { ResolvedConfig, ResolvedRegistry } from "../config/schema.ts";
import type { Code } from "../log/codes.ts";
import type { NamespaceQuota } from "../registry/quay_client.ts";
import { formatReference, type Reference } from "../registry/reference.ts";

/** What this step reads and sets of a plan task (plan.ts's PlanTask has these fields). */
export interface QuotaTask {
  target: string;
  destination: Reference;
  action: string;
  code?: Code;
  message?: string;
}

/** What the plan found about one organization's quota. */
export interface PlannedQuota {
  /** Target registry name in the config. */
  target: string;
  /** `host/organization`. */
  namespace: string;
  quota: NamespaceQuota;
  /** `full`: at or over the Reject limit; `warning`: over the Warning limit only. */
  state: "full" | "warning";
  /** The code of the plan's one line about it. */
  code: "IMAGE_QUOTA_EXCEEDED" | "IMAGE_QUOTA_WARNING";
  /** One line naming the namespace, its usage and the limit crossed. */
  message: string;
}

/** Percent of the limit, one decimal. */
function percentOf(quota: NamespaceQuota): string {
  return `${(quota.usedBytes / quota.limitBytes * 100).toFixed(1)}%`;
}

/**
 * Read the quotas and fail the push tasks of full organizations (in place, before the plan is
 * returned). A quota that cannot be read is no finding: the registry's 403 still stops the run's
 * pushes into that namespace (run_plan.ts).
 */
export async function applyQuotas(
  tasks: QuotaTask[],
  config: ResolvedConfig,
  reads: { read?: (registry: ResolvedRegistry) => Promise<NamespaceQuota | null> | null },
): Promise<PlannedQuota[]> {
  const found: PlannedQuota[] = [];
  const targets = new Set(tasks.filter((t) => t.action === "push").map((t) => t.target));
  for (const target of targets) {
    const registry = config.registries[target];
    if (registry.kind !== "quay" || !registry.apiToken || !reads.read) continue;
    const quota = await Promise.resolve(reads.read(registry)).catch(() => null);
    if (!quota) continue;
    const namespace = `${registry.host}/${registry.organization}`;
    const usage = `${quota.usedBytes} of ${quota.limitBytes} bytes (${percentOf(quota)})`;
    const reject = quota.rejectPercent;
    const warning = quota.warningPercent;
    const used = quota.usedBytes / quota.limitBytes * 100;
    if (reject !== null && used >= reject) {
      const pushes = tasks.filter((t) => t.target === target && t.action === "push");
      const message =
        `namespace ${namespace} is over its quota: ${usage} used, pushes are refused from ${reject}%; not pushed (free space or raise the quota in Quay)`;
      for (const task of pushes) {
        task.action = "failed";
        task.code = "IMAGE_QUOTA_EXCEEDED";
        task.message = `${formatReference(task.destination)}: ${message}`;
      }
      found.push({
        target,
        namespace,
        quota,
        state: "full",
        code: "IMAGE_QUOTA_EXCEEDED",
        message: `${message}; ${pushes.length} push(es) failed at once`,
      });
    } else if (warning !== null && used >= warning) {
      found.push({
        target,
        namespace,
        quota,
        state: "warning",
        code: "IMAGE_QUOTA_WARNING",
        message:
          `namespace ${namespace} is past its quota's warning limit: ${usage} used (warning at ${warning}%${
            reject !== null ? `, pushes refused from ${reject}%` : ""
          })`,
      });
    }
  }
  return found;
}
