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
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { startRegistry, type TestRegistry } from "../tests/support/registry.ts";
import { type Corpus, FULL, pushBig, pushSmall, QUICK } from "./corpora.ts";
import { banannaConfig, baseEnv, check, runBananna, type RunResult, timed } from "./tools.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    quick: { type: "boolean", default: false },
    runs: { type: "string" },
    only: { type: "string", default: "small,big" },
    "big-mb": { type: "string" },
  },
});
const sizes = { ...(flags.quick ? QUICK : FULL) };
if (flags["big-mb"]) sizes.bigBytes = Number(flags["big-mb"]) * 1024 * 1024;
const runs = Number(flags.runs ?? (flags.quick ? 2 : 3));
const workDir = await Deno.makeTempDir({ prefix: "bb-bench-airgap-" });
const log = (text: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${text}`);

interface Row {
  corpus: string;
  tool: string;
  ms: number[];
  rssKb: number[];
}

function bananna(
  args: string[],
  options: { config: string; dest: TestRegistry },
): Promise<RunResult> {
  const { config, dest } = options;
  return timed("deno", [
    "run",
    "--frozen",
    "--v8-flags=--max-semi-space-size=1",
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

async function measure(corpus: Corpus, src: TestRegistry, rows: Row[]): Promise<void> {
  const row = (tool: string) => {
    const r: Row = { corpus: corpus.name, tool, ms: [], rssKb: [] };
    rows.push(r);
    return r;
  };
  const exportRow = row("bananna export");
  const skopeoRow = row("skopeo copy --all oci: (loop)");
  const mirrorRow = row("bananna mirror (registry)");
  const importRow = row("bananna import (source stopped)");
  const layouts: string[] = [];
  const dests: TestRegistry[] = [];
  const add = (r: Row, out: RunResult) => {
    r.ms.push(out.ms);
    if (out.rssKb) r.rssKb.push(out.rssKb);
    log(`  ${corpus.name} / ${r.tool}: ${(out.ms / 1000).toFixed(2)} s, ${out.rssKb} KiB`);
  };
  try {
    for (let i = 0; i < runs; i++) {
      const dest = await startRegistry({ auth: "htpasswd" });
      dests.push(dest);
      const logDir = await Deno.makeTempDir({ dir: workDir, prefix: "logs-" });
      const config = `${workDir}/airgap-${corpus.name}-${i}.yaml`;
      await Deno.writeTextFile(
        config,
        banannaConfig({ src, dest, corpus, engine: "registry", concurrency: 4, logDir, workDir }),
      );
      const layout = `${workDir}/layout-${corpus.name}-${i}`;
      layouts.push(layout);
      add(exportRow, check(await bananna(["export", "--to", layout], { config, dest }), "export"));
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
    for (let i = 0; i < runs; i++) {
      const config = `${workDir}/airgap-${corpus.name}-${i}.yaml`;
      add(
        importRow,
        check(
          await bananna(["import", "--from", layouts[i]], { config, dest: dests[i] }),
          "import",
        ),
      );
      await Deno.remove(layouts[i], { recursive: true });
    }
  } finally {
    for (const d of dests) await d.stop();
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
  const file = new URL(
    `./results/airgap-${new Date().toISOString().slice(0, 10)}.json`,
    import.meta.url,
  );
  await Deno.writeTextFile(file, JSON.stringify({ sizes, runs, rows, ratios }, null, 2) + "\n");
  log(`written ${file.pathname}`);
  await Deno.remove(workDir, { recursive: true });
}

await main();
