/**
 * The A/B parts of the bench (`deno task bench --baseline REV`): the `current / baseline` rows,
 * the order of a round, and unpacking a revision (a real `git archive` of this repository).
 *
 * @module
 */
import assert from "node:assert/strict";
import { baselineOf, baselineTool, prepareBaseline, roundOrder } from "../../bench/baseline.ts";
import { beforeAfter } from "../../bench/markdown.ts";
import { baselineTarget, baselineTargets, type CaseResult } from "../../bench/table.ts";
import { ROOT } from "../support/cli.ts";

const samples = (...ms: number[]) => ms.map((v) => ({ ms: v }));

Deno.test("baselineTarget: current over baseline from the medians, each round's pair as the detail", () => {
  const t = baselineTarget("small cold: current / baseline abc1234 (time)", [110, 90, 100], [
    100,
    100,
    80,
  ]);
  assert.equal(t.value, 1);
  assert.equal(t.status, "info");
  assert.equal(t.unit, "x");
  assert.equal(t.detail, "per round 1.10, 0.90, 1.25");
  const withCpu = baselineTarget("x", [100], [100], { current: [90], baseline: [100] }, {
    current: [3000],
    baseline: [4000],
  });
  assert.equal(withCpu.detail, "per round 1.00; CPU 0.90x; destination registry CPU 0.75x");
  const slower = baselineTarget("x", [200, 220, 210], [100, 110, 105]);
  assert.equal(slower.value, 2);
  assert.equal(baselineTarget("none", [], [100]).status, "n/a");
});

Deno.test("baselineTargets: one row per scenario holding both trees, none for a failed baseline", () => {
  const tool = baselineTool("dd5f253");
  const cases: CaseResult[] = [
    { scenario: "small cold", tool: "bananna registry", status: "ok", samples: samples(300, 330) },
    { scenario: "small cold", tool, status: "ok", samples: samples(200, 220) },
    { scenario: "small cold", tool: "skopeo sync", status: "ok", samples: samples(400, 400) },
    { scenario: "many no-op", tool: "bananna registry", status: "ok", samples: samples(50, 60) },
    { scenario: "many no-op", tool, status: "failed", samples: samples(10) },
    { scenario: "big cold", tool: "bananna registry", status: "ok", samples: samples(9) },
    // validate's contender is `bananna validate`, not the registry engine.
    { scenario: "validate", tool: "bananna validate", status: "ok", samples: samples(90, 110) },
    { scenario: "validate", tool, status: "ok", samples: samples(200, 200) },
  ];
  const rows = baselineTargets(cases);
  assert.deepEqual(rows.map((r) => [r.name, r.value]), [
    ["small cold: current / baseline dd5f253 (time)", 1.5],
    ["validate: current / baseline dd5f253 (time)", 0.5],
  ]);
  assert.deepEqual(baselineTargets(cases.filter((c) => c.tool !== tool)), []);
});

Deno.test("baselineOf names only a baseline contender", () => {
  assert.equal(baselineOf(baselineTool("0123abc")), "0123abc");
  assert.equal(baselineOf("bananna registry"), undefined);
  assert.equal(baselineOf("bananna registry (concurrency 8)"), undefined);
});

Deno.test("roundOrder: current and baseline trade places on odd rounds, the rest stays", () => {
  const tools = ["bananna registry", "skopeo sync", baselineTool("abc1234"), "floor (curl)"];
  const id = (t: string) => t;
  assert.deepEqual(roundOrder(tools, 0, id), tools);
  assert.deepEqual(roundOrder(tools, 1, id), [
    baselineTool("abc1234"),
    "skopeo sync",
    "bananna registry",
    "floor (curl)",
  ]);
  assert.deepEqual(roundOrder(tools, 2, id), tools);
  // Without a baseline nothing moves.
  assert.deepEqual(roundOrder(["bananna registry", "skopeo sync"], 1, id), [
    "bananna registry",
    "skopeo sync",
  ]);
});

Deno.test({
  name: "prepareBaseline unpacks a revision that runs, and removes it; a bad revision is refused",
  sanitizeResources: false,
  fn: async () => {
    const head = new TextDecoder().decode(
      (await new Deno.Command("git", { args: ["rev-parse", "HEAD"], cwd: ROOT, stdout: "piped" })
        .output()).stdout,
    ).trim();
    const b = await prepareBaseline("HEAD");
    try {
      assert.equal(b.commit, head);
      assert.equal(b.short, head.slice(0, 7));
      assert.equal(b.tool, `bananna registry (baseline ${head.slice(0, 7)})`);
      assert.ok(!b.dir.startsWith(ROOT), b.dir);
      assert.equal(
        await Deno.readTextFile(`${b.dir}/main.ts`),
        new TextDecoder().decode(
          (await new Deno.Command("git", {
            args: ["show", `${head}:main.ts`],
            cwd: ROOT,
            stdout: "piped",
          }).output()).stdout,
        ),
      );
    } finally {
      await b.remove();
    }
    await assert.rejects(Deno.stat(b.dir), Deno.errors.NotFound);
    await b.remove(); // idempotent
    await assert.rejects(
      prepareBaseline("no-such-revision-xyz"),
      /--baseline no-such-revision-xyz: not a commit/,
    );
  },
});

Deno.test("beforeAfter: a table row per current / baseline row, air-gap medians from its rows", () => {
  const tool = baselineTool("dd5f253");
  const cases: CaseResult[] = [
    {
      scenario: "small cold",
      tool: "bananna registry",
      status: "ok",
      samples: [{ ms: 3000, cpuMs: 900 }, { ms: 5000, cpuMs: 1100 }],
    },
    {
      scenario: "small cold",
      tool,
      status: "ok",
      samples: [{ ms: 4000, cpuMs: 800 }, { ms: 6000, cpuMs: 1200 }],
    },
  ];
  const results = {
    date: "2026-12-04T13:00:00Z",
    runs: 2,
    settings: {
      commit: "abcdef0",
      baseline: { rev: "dd5f253", commit: "dd5f253x", short: "dd5f253" },
    },
    versions: {},
    machine: { nproc: 2, memoryMB: 1, cpu: "x", loadavg: [1, 1, 1] },
    corpora: {},
    cases,
    targets: [
      ...baselineTargets(cases),
      baselineTarget("airgap big import: current / baseline dd5f253 (time)", [2000], [1000]),
    ],
  };
  const airgap = [
    { corpus: "big", tool: "bananna import (source stopped)", ms: [2000] },
    { corpus: "big", tool: "bananna import (baseline dd5f253)", ms: [1000] },
  ];
  assert.deepEqual(beforeAfter(results, airgap).trim().split("\n"), [
    "| scenario | abcdef0 | baseline dd5f253 | ratio | per round | CPU ratio |",
    "| --- | --- | --- | --- | --- | --- |",
    "| small cold | 4.00 s | 5.00 s | 0.80x | 0.75, 0.83 | 1.00x |",
    "| airgap big import | 2.00 s | 1.00 s | 2.00x | 2.00 | - |",
  ]);
  assert.equal(beforeAfter({ ...results, settings: { commit: "abcdef0" } }), "");
});
