// deno-lint-ignore-file no-console
/**
 * A results file of `deno task bench` as the Markdown tables of docs (the performance section):
 * where and what was measured, every case, every target with its ratio and verdict.
 *
 * ```
 * deno run --allow-read bench/markdown.ts bench/results/<file>.json
 * ```
 *
 * A results file of `deno task bench --baseline REV` gets one more table, before and after: each
 * scenario's median for both trees, the ratio and each round's pair (the air-gap figures from the
 * `<out>-airgap.json` it names).
 *
 * @module
 */
import { type CaseResult, formatTargetValue, stats, type TargetResult } from "./table.ts";

interface Results {
  date: string;
  /** `--baseline` with airgap: the air-gap results file. */
  airgap?: string;
  runs: number;
  settings: Record<string, unknown>;
  versions: Record<string, string>;
  machine: { nproc: number; memoryMB: number; cpu: string; loadavg: number[] };
  corpora: Record<string, { images: number; blobs: number; bytes: number }>;
  cases: CaseResult[];
  targets: TargetResult[];
}

const seconds = (ms?: number) =>
  ms === undefined ? "-" : ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(0)} ms`;

function row(cells: string[]): string {
  return `| ${cells.map((c) => c.replaceAll("|", "\\|")).join(" | ")} |`;
}

/** The Markdown of one results file. */
export function markdown(r: Results): string {
  const m = r.machine;
  const out = [
    `Measured ${r.date.slice(0, 16).replace("T", " ")} UTC, commit ${r.settings.commit}, ` +
    `${m.nproc} cores (${m.cpu}), ${m.memoryMB} MB, load average ${
      m.loadavg.map((l) => l.toFixed(1)).join(" ")
    } at the start; Deno ${r.versions.deno}, ${r.versions.skopeo}, distribution ` +
    `${r.versions.distribution.replace(/^.*?(v?\d+\.\d+\.\d+).*$/, "$1")}; ${r.runs} runs ` +
    `per contender, targets from the ${r.settings.statistic ?? "median"}.`,
    "",
    row(["scenario", "contender", "median", "min", "CPU (median)", "peak RSS", "note"]),
    row(["---", "---", "---", "---", "---", "---", "---"]),
  ];
  for (const c of r.cases) {
    const times = stats(c.samples.map((s) => s.ms));
    const rss = stats(c.samples.map((s) => s.rssKb).filter((v): v is number => v !== undefined));
    const cpu = stats(c.samples.map((s) => s.cpuMs).filter((v): v is number => v !== undefined));
    out.push(row([
      c.scenario,
      c.tool,
      seconds(times.median),
      seconds(times.min),
      seconds(cpu.median),
      rss.median === undefined ? "-" : `${(rss.median / 1024).toFixed(0)} MB`,
      c.status === "ok" ? (c.note ?? "") : `${c.status}: ${c.note ?? ""}`,
    ]));
  }
  out.push("", row(["target", "measured", "limit", "result"]), row(["---", "---", "---", "---"]));
  for (const t of r.targets) {
    if (t.status === "n/a") continue;
    const value = formatTargetValue(t);
    const limit = t.info ? "-" : `${t.direction} ${t.limit}${t.unit === "x" ? "x" : ` ${t.unit}`}`;
    const result = t.status === "PASS" ? "met" : t.status === "MISS" ? "**missed**" : t.status;
    out.push(row([t.name, value, limit, t.detail ? `${result} (${t.detail})` : result]));
  }
  return out.join("\n") + "\n";
}

/** Rows of bench/airgap.ts's results: one tree's export or import of one corpus. */
export interface AirgapRow {
  corpus: string;
  tool: string;
  ms: number[];
}

/**
 * The before-and-after table of a `--baseline` results file: per scenario, this tree's median,
 * the baseline's, `current / baseline` and each round's pair. Empty without a baseline.
 */
export function beforeAfter(r: Results, airgap: AirgapRow[] = []): string {
  const base = r.settings.baseline as { short: string } | undefined;
  if (!base) return "";
  const abRows = r.targets.filter((t) => / current \/ baseline /.test(t.name));
  if (abRows.length === 0) return "";
  const median = (values?: number[]) => values?.length ? stats(values).median : undefined;
  const out = [
    row([
      "scenario",
      `${r.settings.commit}`,
      `baseline ${base.short}`,
      "ratio",
      "per round",
      "CPU ratio",
    ]),
    row(["---", "---", "---", "---", "---", "---"]),
  ];
  for (const t of abRows) {
    const scenario = t.name.replace(/: current \/ baseline .*$/, "");
    let current: number | undefined;
    let before: number | undefined;
    const air = /^airgap (\S+) (export|import)$/.exec(scenario);
    if (air) {
      const [, corpus, step] = air;
      const mine = step === "export" ? "bananna export" : "bananna import (source stopped)";
      const theirs = `bananna ${step} (baseline ${base.short})`;
      current = median(airgap.find((a) => a.corpus === corpus && a.tool === mine)?.ms);
      before = median(airgap.find((a) => a.corpus === corpus && a.tool === theirs)?.ms);
    } else {
      const pick = (tool: string) =>
        r.cases.find((c) => c.scenario === scenario && c.tool === tool)?.samples.map((s) => s.ms);
      current = median(pick("bananna registry"));
      before = median(pick(`bananna registry (baseline ${base.short})`));
    }
    out.push(row([
      scenario,
      seconds(current),
      seconds(before),
      t.value === undefined ? "-" : `${t.value.toFixed(2)}x`,
      /per round ([^;]*)/.exec(t.detail ?? "")?.[1] ?? "-",
      /CPU ([\d.]+x)/.exec(t.detail ?? "")?.[1] ?? "-",
    ]));
  }
  return out.join("\n") + "\n";
}

if (import.meta.main) {
  const file = Deno.args[0];
  if (!file) throw new Error("usage: deno run --allow-read bench/markdown.ts RESULTS.json");
  const results: Results = JSON.parse(await Deno.readTextFile(file));
  console.log(markdown(results));
  const airgap = results.airgap
    ? JSON.parse(await Deno.readTextFile(results.airgap)).rows as AirgapRow[]
    : [];
  const ab = beforeAfter(results, airgap);
  if (ab) console.log(ab);
}
