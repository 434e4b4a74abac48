/**
 * The no-op run without a network that bench/task_memory.ts and bench/task_cpu.ts measure: K
 * targets x the `many` corpus's 300 images (30 repositories of 10 tags), a fake probe that finds
 * every tag in place, an engine that is never asked to copy, and the report of the results.
 *
 * @module
 */
import type { ResolvedConfig, ResolvedImage, ResolvedRegistry } from "../lib/config/schema.ts";
import { Secrets } from "../lib/log/redact.ts";
import { buildPlan, type MirrorPlan, type PlanProbe } from "../lib/mirror/plan.ts";
import { buildReport, type Report } from "../lib/mirror/report.ts";
import { type RunOutcome, runPlan } from "../lib/mirror/run_plan.ts";
import { parseReference } from "../lib/registry/reference.ts";

/** The config of `k` targets x 300 images, as the config loader would resolve it. */
export function noOpConfig(k: number): ResolvedConfig {
  const registries: Record<string, ResolvedRegistry> = {};
  for (let i = 0; i < k; i++) {
    registries[`b${i}`] = {
      name: `b${i}`,
      host: "dst.example",
      scheme: "https",
      namespace: `ns${i}`,
      organization: `ns${i}`,
      kind: "registry",
    } as ResolvedRegistry;
  }
  const images: ResolvedImage[] = [];
  for (let r = 0; r < 30; r++) {
    for (let t = 0; t < 10; t++) {
      const key = `src.example/many/m${r}:1.${t}`;
      images.push({
        key,
        source: parseReference(key),
        targets: Object.keys(registries),
        repository: `m${r}`,
      } as ResolvedImage);
    }
  }
  return {
    file: "bench.yaml",
    registries,
    sources: {},
    images,
    repositories: [],
    operation: {
      engine: "registry",
      concurrency: 4,
      createReposIfNotExists: false,
      dockerHubReserve: 10,
    },
  } as unknown as ResolvedConfig;
}

/** The digest every tag of the no-op has, at the source and the destination. */
export const digest = `sha256:${"a".repeat(64)}`;

/** A probe that finds every tag already at the destination, at one digest. */
const probe: PlanProbe = {
  manifestHead: () =>
    Promise.resolve({
      digest,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      size: 500,
      rateLimit: null,
    }),
  configDigest: () => Promise.resolve(null),
  repository: () => Promise.resolve("exists"),
  tags: () => Promise.resolve([]),
};

/** The plan of `config` with the probe above: every task `exists`. */
export function noOpPlan(config: ResolvedConfig): Promise<MirrorPlan> {
  return buildPlan(config, probe, { comparison: "manifest" });
}

/** Run the plan with an engine that copies nothing (every task is already there). */
export function noOpRun(plan: MirrorPlan): Promise<RunOutcome> {
  return runPlan(plan, {
    engine: {
      name: "registry",
      comparison: "manifest",
      prepare: () => Promise.resolve(),
      close: () => Promise.resolve(),
      copy: () => Promise.reject(new Error("a no-op copies nothing")),
    },
    concurrency: 4,
    continueOnError: true,
    supplyChain: () => Promise.resolve({ signatures: 0, attestations: 0, sboms: 0, referrers: 0 }),
  });
}

/** The run's report. */
export function noOpReport(out: RunOutcome): Report {
  return buildReport(out.results, {
    version: "bench",
    engine: "registry",
    config: "bench.yaml",
    dryRun: false,
    interrupted: false,
    startedAt: new Date(),
    endedAt: new Date(),
    latest: out.latest,
    secrets: new Secrets(),
  });
}
