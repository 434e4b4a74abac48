// deno-lint-ignore-file no-console
/**
 * Live heap per image x target task of a no-op, without a network: the plan (a fake probe that
 * finds every tag in place), the run's results and the report entries, for K targets x 300
 * images. What grows with the task count in bananna-bot's own data, apart from the HTTP traffic
 * and the V8 heap's slack that the `scale` scenario's peak RSS also holds.
 *
 * ```
 * deno run --allow-read --allow-env --v8-flags=--expose-gc bench/task_memory.ts 50   # 15,000 tasks
 * ```
 *
 * @module
 */
import type { ResolvedConfig, ResolvedImage, ResolvedRegistry } from "../lib/config/schema.ts";
import { Secrets } from "../lib/log/redact.ts";
import { buildPlan, type PlanProbe } from "../lib/mirror/plan.ts";
import { buildReport } from "../lib/mirror/report.ts";
import { runPlan } from "../lib/mirror/run_plan.ts";
import { parseReference } from "../lib/registry/reference.ts";

const k = Number(Deno.args[0] ?? 50);
const registries: Record<string, ResolvedRegistry> = {};
for (let i = 0; i < k; i++) {
  registries[`b${i}`] = {
    name: `b${i}`,
    host: "dst.example",
    scheme: "https",
    namespace: `ns${i}`,
    organization: `ns${i}`,
    kind: "registry",
  };
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
    });
  }
}
const config = {
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
const digest = `sha256:${"a".repeat(64)}`;
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
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with --v8-flags=--expose-gc");
const heap = () => (gc(), Deno.memoryUsage().heapUsed);
const m0 = heap();
const plan = await buildPlan(config, probe, { comparison: "manifest" });
const m1 = heap();
const out = await runPlan(plan, {
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
const m2 = heap();
const report = buildReport(out.results, {
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
const m3 = heap();
const n = report.entries.length;
const per = (bytes: number) => `${(bytes / n).toFixed(0)} B`;
console.log(
  `${n} tasks, per task: plan ${per(m1 - m0)}, results ${per(m2 - m1)}, report entries ${
    per(m3 - m2)
  }; together ${((m3 - m0) / 1e6).toFixed(1)} MB live`,
);
