/**
 * The `scale` rows of the bench table: the marginal wall time per task, and beside it the CPU
 * per extra task of bananna-bot, the destination registry and the token server (which share the
 * cores), their sum over the cores, and the marginal cost's ratio to that bound.
 *
 * @module
 */
import assert from "node:assert/strict";
import { type CaseResult, evaluateTargets } from "../../bench/table.ts";

Deno.test("scale targets: marginal wall time, and the CPU per extra task of each side from the medians", () => {
  const cases: CaseResult[] = [
    {
      scenario: "scale no-op",
      tool: "bananna registry (1500 tasks)",
      status: "ok",
      samples: [
        { ms: 4000, cpuMs: 1200, registryCpuMs: 2700, harnessCpuMs: 500 },
        { ms: 4400, cpuMs: 1400, registryCpuMs: 2900, harnessCpuMs: 700 },
      ],
    },
    {
      scenario: "scale no-op",
      tool: "bananna registry (15000 tasks)",
      status: "ok",
      samples: [
        { ms: 31200, rssKb: 150 * 1024, cpuMs: 8050, registryCpuMs: 26800, harnessCpuMs: 3400 },
        { ms: 31400, rssKb: 148 * 1024, cpuMs: 8250, registryCpuMs: 27000, harnessCpuMs: 3600 },
      ],
    },
  ];
  const rows = new Map(evaluateTargets(cases, 300, { limit: 0, cores: 2 }).map((t) => [t.name, t]));
  const marginal = rows.get("scale: marginal cost of a no-op task, 1500 to 15000");
  assert.equal(marginal?.value, (31300 - 4200) / 13500);
  assert.equal(marginal?.status, "MISS");
  const ours = rows.get("scale: CPU per extra task, bananna-bot (user + system)");
  assert.equal(ours?.value, (8150 - 1300) / 13500);
  assert.equal(ours?.status, "info");
  assert.equal(ours?.unit, "ms/task");
  const registry = rows.get("scale: CPU per extra task, the destination registry");
  assert.equal(registry?.value, (26900 - 2800) / 13500);
  assert.equal(registry?.status, "info");
  const tokens = rows.get("scale: CPU per extra task, the bench process (token server)");
  assert.equal(tokens?.value, (3500 - 600) / 13500);
  // The three share 2 cores: (6850 + 24100 + 2900) / 13500 / 2 ms per task at the least.
  const bound = rows.get("scale: CPU bound per extra task (the three over 2 cores)");
  assert.equal(bound?.value, (6850 + 24100 + 2900) / 13500 / 2);
  assert.equal(bound?.status, "info");
  const toBound = rows.get("scale: marginal cost / CPU bound");
  assert.equal(toBound?.value, ((31300 - 4200) / 13500) / ((6850 + 24100 + 2900) / 13500 / 2));
  assert.equal(toBound?.unit, "x");
  // A run without the registry's CPU (an older results file) gives n/a, not a number.
  for (const c of cases) for (const s of c.samples) delete s.registryCpuMs;
  const older = evaluateTargets(cases, 300, { limit: 0, cores: 2 });
  assert.equal(older.find((t) => t.name.includes("destination registry"))?.status, "n/a");
  assert.equal(older.find((t) => t.name.includes("CPU bound"))?.status, "n/a");
});
