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
import { noOpConfig, noOpPlan, noOpReport, noOpRun } from "./no_op_tasks.ts";

const config = noOpConfig(Number(Deno.args[0] ?? 50));
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with --v8-flags=--expose-gc");
const heap = () => (gc(), Deno.memoryUsage().heapUsed);
const m0 = heap();
const plan = await noOpPlan(config);
const m1 = heap();
const out = await noOpRun(plan);
const m2 = heap();
const report = noOpReport(out);
const m3 = heap();
const n = report.entries.length;
const per = (bytes: number) => `${(bytes / n).toFixed(0)} B`;
console.log(
  `${n} tasks, per task: plan ${per(m1 - m0)}, results ${per(m2 - m1)}, report entries ${
    per(m3 - m2)
  }; together ${((m3 - m0) / 1e6).toFixed(1)} MB live`,
);
