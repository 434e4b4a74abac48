// deno-lint-ignore-file no-console
/**
 * `deno task bench:airgap`: export then import of the `small` and `big` corpora.
 * Export is compared with `skopeo copy --all` to `oci:` for the same images one after another
 * (target: within 1.2x); import, with the source registry stopped, with a direct
 * registry-to-registry mirror of the same images into a fresh registry (target: within 1.2x); peak
 * RSS of both on the 1 GiB layer (target: under 120 MB). Runs are round-robin (3 by default), each
 * cold: a fresh layout dir, a fresh destination. Writes bench/results/airgap-<date>.json.
 *
 * ```
 * deno task bench:airgap                 # full sizes
 * deno task bench:airgap --quick         # tiny corpora, 2 runs
 * deno task bench:airgap --quick --baseline main --out /tmp/airgap-ab.json
 * ```
 *
 * `--baseline REV`: the export and the import of REV (bench/baseline.ts) run too, in the same
 * rounds with the same config (each into its own layout and destination), and the results gain
 * `current / baseline` rows (`targets`, which `deno task bench --baseline` adds to its own).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { startRegistry, type TestRegistry } from "../tests/support/registry.ts";
import { type Baseline, gitCommit, prepareBaseline, roundOrder } from "./baseline.ts";
import { type Corpus, FULL, pushBig, pushSmall, QUICK } from "./corpora.ts";
import { baselineTarget, type TargetResult } from "./table.ts";
import {
  banannaConfig,
  baseEnv,
  check,
  runBananna,
  type RunResult,
  shippedV8Flags,
  timed,
} from "./tools.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    quick: { type: "boolean", default: false },
    runs: { type: "string" },
    only: { type: "string", default: "small,big" },
    "big-mb": { type: "string" },
    /** Where the results go (default bench/results/airgap-<date>.json). */
    out: { type: "string" },
    /** A git revision whose export and import run next to this tree's (bench/baseline.ts). */
    baseline: { type: "string" },
  },
});
const sizes = { ...(flags.quick ? QUICK : FULL) };
if (flags["big-mb"]) sizes.bigBytes = Number(flags["big-mb"]) * 1024 * 1024;
const runs = Number(flags.runs ?? (flags.quick ? 2 : 3));
const workDir = await Deno.makeTempDir({ prefix: "bb-bench-airgap-" });
const log = (text: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${text}`);
/** The unpacked --baseline revision, while the bench runs. */
let baseline: Baseline | undefined;

/** The rows of this tree's export and import. */
const EXPORT = "bananna export";
const IMPORT = "bananna import (source stopped)";

interface Row {
  corpus: string;
  tool: string;
  ms: number[];
  rssKb: number[];
  /** CPU time (user + system) of each run, where measured (not the skopeo loop). */
  cpuMs: number[];
}

function bananna(
  args: string[],
  options: { config: string; dest: TestRegistry; root?: string },
): Promise<RunResult> {
  const { config, dest } = options;
  return timed("deno", [
    "run",
    "--frozen",
    ...shippedV8Flags(options.root),
    "--allow-net",
    "--allow-read",
    "--allow-write",
    "--allow-env",
    "--allow-run",
    "main.ts",
    ...args,
    "--config",
    config,
    "--non-interactive",
  ], {
    workDir,
    cwd: options.root,
    env: { ...baseEnv(), BENCH_DEST_PASSWORD: dest.password ?? "" },
  });
}

async function skopeoOci(src: TestRegistry, corpus: Corpus, dir: string): Promise<RunResult> {
  const start = performance.now();
  let rssKb = 0;
  for (const image of corpus.images) {
    const ref = `${src.host}/${image.repository}:${image.tag}`;
    const out = check(
      await timed("skopeo", [
        "copy",
        "--all",
        "--src-tls-verify=false",
        `docker://${ref}`,
        `oci:${dir}:${ref}`,
      ], { workDir }),
      `skopeo copy ${ref}`,
    );
    rssKb = Math.max(rssKb, out.rssKb ?? 0);
  }
  return { ms: performance.now() - start, rssKb, code: 0, stdout: "", stderr: "" };
}

/**
 * One tree's export and import in one round: its config (own destination, own log dir), the
 * layout its export writes and its import reads, and the tree its `main.ts` runs from.
 */
interface Side {
  /** `bananna registry` for this tree, the baseline's contender name for the baseline. */
  tool: string;
  exportRow: Row;
  importRow: Row;
  root?: string;
  config: string;
  dest: TestRegistry;
  layout: string;
}

async function measure(corpus: Corpus, src: TestRegistry, rows: Row[]): Promise<void> {
  const row = (tool: string) => {
    const r: Row = { corpus: corpus.name, tool, ms: [], rssKb: [], cpuMs: [] };
    rows.push(r);
    return r;
  };
  const exportRow = row(EXPORT);
  const skopeoRow = row("skopeo copy --all oci: (loop)");
  const mirrorRow = row("bananna mirror (registry)");
  const trees = [{ tool: "bananna registry", exportRow, importRow: row(IMPORT) }];
  if (baseline) {
    trees.push({
      tool: baseline.tool,
      exportRow: row(`bananna export (baseline ${baseline.short})`),
      importRow: row(`bananna import (baseline ${baseline.short})`),
    });
  }
  /** Every round's sides, in the order of `trees`. */
  const rounds: Side[][] = [];
  const add = (r: Row, out: RunResult) => {
    r.ms.push(out.ms);
    if (out.rssKb) r.rssKb.push(out.rssKb);
    if (out.cpuMs !== undefined) r.cpuMs.push(out.cpuMs);
    log(`  ${corpus.name} / ${r.tool}: ${(out.ms / 1000).toFixed(2)} s, ${out.rssKb} KiB`);
  };
  const what = (side: Side, step: string) =>
    side.root ? `${step} (baseline ${baseline?.short})` : step;
  try {
    for (let i = 0; i < runs; i++) {
      const sides: Side[] = [];
      rounds.push(sides);
      for (const [t, tree] of trees.entries()) {
        const dest = await startRegistry({ auth: "htpasswd" });
        const name = `${corpus.name}-${i}${t ? "-baseline" : ""}`;
        const side: Side = {
          ...tree,
          root: t ? baseline?.dir : undefined,
          config: `${workDir}/airgap-${name}.yaml`,
          dest,
          layout: `${workDir}/layout-${name}`,
        };
        sides.push(side);
        const logDir = await Deno.makeTempDir({ dir: workDir, prefix: "logs-" });
        await Deno.writeTextFile(
          side.config,
          banannaConfig({ src, dest, corpus, engine: "registry", concurrency: 4, logDir, workDir }),
        );
      }
      for (const side of roundOrder(sides, i, (s) => s.tool)) {
        add(
          side.exportRow,
          check(await bananna(["export", "--to", side.layout], side), what(side, "export")),
        );
      }
      add(skopeoRow, await skopeoOci(src, corpus, `${workDir}/skopeo-${corpus.name}-${i}`));
      await Deno.remove(`${workDir}/skopeo-${corpus.name}-${i}`, { recursive: true });
      const direct = await startRegistry({ auth: "htpasswd" });
      const mirrorLogs = await Deno.makeTempDir({ dir: workDir, prefix: "logs-" });
      add(
        mirrorRow,
        check(
          await runBananna({
            src,
            dest: direct,
            corpus,
            engine: "registry",
            concurrency: 4,
            logDir: mirrorLogs,
            workDir,
          }),
          "mirror",
        ),
      );
      await direct.stop();
    }
    await src.stop();
    for (const [i, sides] of rounds.entries()) {
      for (const side of roundOrder(sides, i, (s) => s.tool)) {
        add(
          side.importRow,
          check(await bananna(["import", "--from", side.layout], side), what(side, "import")),
        );
        await Deno.remove(side.layout, { recursive: true });
      }
    }
  } finally {
    for (const side of rounds.flat()) await side.dest.stop();
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
}

async function main() {
  const rows: Row[] = [];
  for (const name of flags.only.split(",")) {
    const src = await startRegistry({ auth: "none" });
    try {
      const corpus = name === "big" ? await pushBig(src, sizes) : await pushSmall(src, sizes);
      log(`${name}: ${corpus.images.length} image(s), ${(corpus.bytes / 1e6).toFixed(1)} MB`);
      await measure(corpus, src, rows);
    } finally {
      await src.stop().catch(() => {});
    }
  }
  const med = (corpus: string, tool: string) =>
    median(rows.find((r) => r.corpus === corpus && r.tool.startsWith(tool))?.ms ?? []);
  console.log("\ncorpus  tool                              median s  peak RSS MB (max)");
  for (const r of rows) {
    console.log(
      `${r.corpus.padEnd(7)} ${r.tool.padEnd(33)} ${
        (median(r.ms) / 1000).toFixed(2).padStart(8)
      }  ${(Math.max(0, ...r.rssKb) / 1024).toFixed(0).padStart(6)}`,
    );
  }
  const ratios: Record<string, number> = {};
  for (const corpus of new Set(rows.map((r) => r.corpus))) {
    ratios[`${corpus} export / skopeo`] = med(corpus, "bananna export") / med(corpus, "skopeo");
    ratios[`${corpus} import / mirror`] = med(corpus, "bananna import") /
      med(corpus, "bananna mirror");
  }
  for (const [name, ratio] of Object.entries(ratios)) console.log(`${name}: ${ratio.toFixed(2)}x`);
  const targets = baseline ? abTargets(rows, baseline) : [];
  for (const t of targets) {
    console.log(`${t.name}: ${t.value?.toFixed(2) ?? "-"}x (${t.detail ?? ""})`);
  }
  const file = flags.out ?? new URL(
    `./results/airgap-${new Date().toISOString().slice(0, 10)}.json`,
    import.meta.url,
  ).pathname;
  const commits = {
    commit: await gitCommit(),
    ...(baseline ? { baseline: { rev: baseline.rev, commit: baseline.commit } } : {}),
  };
  await Deno.writeTextFile(
    file,
    JSON.stringify({ sizes, runs, ...commits, rows, ratios, targets }, null, 2) + "\n",
  );
  log(`written ${file}`);
  await Deno.remove(workDir, { recursive: true });
}

/** `<corpus> export|import: current / baseline <short>` from the rows of both trees. */
function abTargets(rows: Row[], b: Baseline): TargetResult[] {
  const out: TargetResult[] = [];
  for (const [step, tool] of [["export", EXPORT], ["import", IMPORT]]) {
    for (const current of rows.filter((r) => r.tool === tool)) {
      const base = rows.find((r) =>
        r.corpus === current.corpus && r.tool === `bananna ${step} (baseline ${b.short})`
      );
      if (!base) continue;
      out.push(baselineTarget(
        `airgap ${current.corpus} ${step}: current / baseline ${b.short} (time)`,
        current.ms,
        base.ms,
        { current: current.cpuMs, baseline: base.cpuMs },
      ));
    }
  }
  return out;
}

if (flags.baseline) {
  baseline = await prepareBaseline(flags.baseline);
  log(`baseline ${baseline.rev}: ${baseline.commit} unpacked in ${baseline.dir}`);
}
try {
  await main();
} finally {
  await baseline?.remove();
}
