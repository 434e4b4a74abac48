/**
 * Results: the cases measured, the targets computed from them, the printed table and
 * the JSON written to bench/results/<date>.json.
 *
 * @module
 */
import { baselineOf } from "./baseline.ts";

/** One run of one contender. */
export interface Sample {
  ms: number;
  rssKb?: number;
  /** CPU time, user + system (see tools.ts). */
  cpuMs?: number;
  /**
   * `scale` and the cold runs: CPU time (user + system) the destination registry spent during the
   * run.
   */
  registryCpuMs?: number;
  /**
   * `scale` only: CPU time of the bench's own process during the run: the token server the
   * destination sends clients to answers there (an RS256 signature per repository scope), beside
   * reading the run's output.
   */
  harnessCpuMs?: number;
  /** Requests the run made to the source / destination registry (access-log delta). */
  srcRequests?: number;
  dstRequests?: number;
  /** Manifest GETs on the source (a no-op run should only HEAD). */
  srcManifestGets?: number;
  /** `select` only: tag-list pages the run read through the paging proxy (access checks apart). */
  tagListPages?: number;
  /** `select` only: `tags/list?n=1` requests (a login's access check), not listing pages. */
  accessChecks?: number;
  /** docker CLI calls by subcommand (with --trace-docker): count and summed wall ms. */
  dockerCalls?: Record<string, { n: number; ms: number }>;
}

/** Scenarios. */
export type Scenario =
  | "small cold"
  | "many no-op"
  | "big cold"
  | "validate"
  | "startup"
  | "select no-op"
  | "scale no-op";

/** The `many` no-op with `signatures: skip` (what carrying the supply chain costs a no-op). */
export const NOOP_NO_SIGNATURES = "bananna registry (signatures skip)";
/** The `many` no-op with `updateLatest: false` (what reconciling `latest` costs a no-op). */
export const NOOP_NO_LATEST = "bananna registry (updateLatest false)";
/** The `many` no-op's HEADs made with Deno's fetch alone (the runtime's share of a no-op). */
export const HEAD_FLOOR_FETCH = "floor (HEAD, Deno fetch)";

/** The `big` contender under a 50 MiB/s bandwidth limit. */
export const BW_LIMITED = "bananna registry (50 MiB/s)";
/** The `big` contender under a limit above what loopback moves (the limiter's own cost). */
export const BW_HIGH = "bananna registry (1 GiB/s limit)";

/** One contender in one scenario. */
export interface CaseResult {
  scenario: Scenario;
  /** `bananna registry`, `bananna docker`, `skopeo sync`, `docker loop`, `floor (curl)`, ... */
  tool: string;
  status: "ok" | "failed" | "not runnable";
  note?: string;
  samples: Sample[];
  /** Bytes moved per run (for throughput), when meaningful. */
  bytes?: number;
}

/** A target and whether it was met. */
export interface TargetResult {
  name: string;
  value?: number;
  limit: number;
  unit: "x" | "MB" | "ms" | "req/tag" | "GETs" | "pages/100 tags" | "ms/task";
  /** `<=` or `>=` the limit. */
  direction: "<=" | ">=";
  /** A ratio shown to explain the others; no limit of its own. */
  info?: boolean;
  status: "PASS" | "MISS" | "n/a" | "info";
  detail?: string;
}

/** min and median of numbers (undefined when empty). */
export function stats(values: number[]): { min?: number; median?: number } {
  if (values.length === 0) return {};
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  return { min: sorted[0], median };
}

function find(cases: CaseResult[], scenario: Scenario, tool: string): CaseResult | undefined {
  return cases.find((c) => c.scenario === scenario && c.tool === tool && c.status === "ok");
}

/**
 * The statistic targets are computed from: `median` (default), or `min` on a machine shared with
 * other work, where the fastest run of each contender is the one least disturbed (`--stat min`).
 */
let statistic: "median" | "min" = "median";

/** Compute the targets from medians (default) or minimums of the runs. */
export function useStatistic(which: "median" | "min"): void {
  statistic = which;
}

function median(c: CaseResult | undefined, pick: (s: Sample) => number | undefined) {
  if (!c) return undefined;
  return stats(c.samples.map(pick).filter((v): v is number => v !== undefined))[statistic];
}

const ms = (s: Sample) => s.ms;

function target(
  name: string,
  value: number | undefined,
  spec: Omit<TargetResult, "name" | "value" | "status">,
): TargetResult {
  if (value === undefined || !Number.isFinite(value)) return { name, ...spec, status: "n/a" };
  if (spec.info) return { name, value, ...spec, status: "info" };
  const pass = spec.direction === "<=" ? value <= spec.limit : value >= spec.limit;
  return { name, value, ...spec, status: pass ? "PASS" : "MISS" };
}

function ratio(a?: number, b?: number): number | undefined {
  return a === undefined || b === undefined || b === 0 ? undefined : a / b;
}

/** What {@link evaluateTargets} needs besides the cases. */
export interface TargetOptions {
  /** The bandwidth limit of {@link BW_LIMITED}, bytes per second. */
  limit: number;
  /** Bytes of the `big` corpus (what the limited run moves). */
  bigBytes?: number;
  /** The machine's cores (the `scale` CPU bound shares them). */
  cores?: number;
}

/** The performance targets, from medians of one invocation (ratios within it). */
export function evaluateTargets(
  cases: CaseResult[],
  tagsInMany: number,
  options: TargetOptions = { limit: 0 },
): TargetResult[] {
  const t: TargetResult[] = [];
  const small = (tool: string) => median(find(cases, "small cold", tool), ms);
  t.push(
    target(
      "small cold: registry engine (defaults) / skopeo sync",
      ratio(small("bananna registry"), small("skopeo sync")),
      { limit: 0.6, unit: "x", direction: "<=" },
    ),
  );
  for (const c of cases) {
    const n = /^bananna registry \(concurrency (\d+)\)$/.exec(c.tool)?.[1];
    if (!n || c.status !== "ok" || (c.scenario !== "small cold" && c.scenario !== "big cold")) {
      continue;
    }
    const scenario = c.scenario;
    const skopeo = median(find(cases, scenario, "skopeo sync"), ms);
    t.push(
      target(
        `${scenario}: registry engine at concurrency ${n} / skopeo sync`,
        ratio(median(c, ms), skopeo),
        {
          limit: Infinity,
          unit: "x",
          direction: "<=",
          info: true,
        },
      ),
    );
  }
  t.push(
    target(
      "small cold: registry engine / floor (curl), for reference",
      ratio(small("bananna registry"), small("floor (curl)")),
      { limit: Infinity, unit: "x", direction: "<=", info: true },
    ),
  );
  const smallDst = (tool: string) =>
    median(find(cases, "small cold", tool), (s) => s.registryCpuMs);
  const dstCpu = smallDst("bananna registry");
  t.push(
    target(
      "small cold: destination registry CPU, registry engine (defaults)",
      dstCpu,
      { limit: Infinity, unit: "ms", direction: "<=", info: true },
    ),
  );
  t.push(
    target(
      "small cold: destination registry CPU, registry engine / skopeo sync",
      ratio(dstCpu, smallDst("skopeo sync")),
      { limit: Infinity, unit: "x", direction: "<=", info: true },
    ),
  );
  t.push(
    target(
      "small cold: docker engine / docker loop",
      ratio(small("bananna docker"), small("docker loop")),
      { limit: 1.0, unit: "x", direction: "<=" },
    ),
  );
  const many = (tool: string) => find(cases, "many no-op", tool);
  const registry = many("bananna registry");
  t.push(
    target(
      "many no-op: registry engine (defaults) / skopeo sync",
      ratio(median(registry, ms), median(many("skopeo sync"), ms)),
      { limit: 0.35, unit: "x", direction: "<=" },
    ),
  );
  t.push(
    target(
      "many no-op: registry engine (defaults) / floor (HEAD, curl)",
      ratio(median(registry, ms), median(many("floor (HEAD)"), ms)),
      { limit: 1.3, unit: "x", direction: "<=" },
    ),
  );
  const fetchFloor = many(HEAD_FLOOR_FETCH);
  t.push(
    target(
      "many no-op: the same HEADs with Deno's fetch alone / floor (HEAD, curl), for reference",
      ratio(median(fetchFloor, ms), median(many("floor (HEAD)"), ms)),
      { limit: Infinity, unit: "x", direction: "<=", info: true },
    ),
  );
  t.push(
    target(
      "many no-op: registry engine (defaults) / the same HEADs with Deno's fetch alone, for reference",
      ratio(median(registry, ms), median(fetchFloor, ms)),
      { limit: Infinity, unit: "x", direction: "<=", info: true },
    ),
  );
  t.push(
    target(
      "many no-op: docker engine / skopeo sync, for reference",
      ratio(median(many("bananna docker"), ms), median(many("skopeo sync"), ms)),
      { limit: Infinity, unit: "x", direction: "<=", info: true },
    ),
  );
  for (const tool of [NOOP_NO_SIGNATURES, NOOP_NO_LATEST]) {
    t.push(
      target(
        `many no-op: ${tool.replace("bananna registry ", "")} / defaults, for reference`,
        ratio(median(many(tool), ms), median(registry, ms)),
        { limit: Infinity, unit: "x", direction: "<=", info: true },
      ),
    );
  }
  const dst = median(registry, (s) => s.dstRequests);
  t.push(
    target(
      "many no-op: registry engine destination requests per tag",
      dst === undefined || tagsInMany === 0 ? undefined : dst / tagsInMany,
      { limit: Infinity, unit: "req/tag", direction: "<=", info: true },
    ),
  );
  t.push(
    target(
      "many no-op: registry engine manifest GETs on the source",
      median(registry, (s) => s.srcManifestGets),
      { limit: 0, unit: "GETs", direction: "<=" },
    ),
  );
  const big = find(cases, "big cold", "bananna registry");
  const rss = median(big, (s) => s.rssKb);
  t.push(
    target("big cold: registry engine peak RSS", rss === undefined ? undefined : rss / 1024, {
      limit: 100,
      unit: "MB",
      direction: "<=",
    }),
  );
  t.push(
    target(
      "big cold: registry engine / skopeo sync (time)",
      ratio(median(big, ms), median(find(cases, "big cold", "skopeo sync"), ms)),
      { limit: 1.05, unit: "x", direction: "<=" },
    ),
  );
  t.push(
    target(
      "big cold: registry engine / floor (curl) (time), for reference",
      ratio(median(big, ms), median(find(cases, "big cold", "floor (curl)"), ms)),
      { limit: Infinity, unit: "x", direction: "<=", info: true },
    ),
  );
  const limited = find(cases, "big cold", BW_LIMITED);
  const expected = options.bigBytes && options.limit
    ? (options.bigBytes / options.limit) * 1000
    : undefined;
  const off = ratio(median(limited, ms), expected);
  t.push(
    target(
      "bandwidth: 1 GiB at 50 MiB/s, |time / (bytes / limit) - 1|",
      off === undefined ? undefined : Math.abs(off - 1),
      { limit: 0.1, unit: "x", direction: "<=" },
    ),
  );
  t.push(
    target(
      "bandwidth: a limit that does not bind (1 GiB/s) / no limit (time)",
      ratio(median(find(cases, "big cold", BW_HIGH), ms), median(big, ms)),
      { limit: 1.05, unit: "x", direction: "<=" },
    ),
  );
  t.push(
    target(
      "validate (300 images) wall time",
      median(find(cases, "validate", "bananna validate"), ms),
      {
        limit: 120,
        unit: "ms",
        direction: "<=",
      },
    ),
  );
  t.push(
    target(
      "validate (300 images) CPU time (user + system), for a loaded machine",
      median(find(cases, "validate", "bananna validate"), (s) => s.cpuMs),
      { limit: Infinity, unit: "ms", direction: "<=", info: true },
    ),
  );
  t.push(
    target(
      "no-op run: time before its first request",
      median(find(cases, "startup", "bananna registry"), ms),
      { limit: 150, unit: "ms", direction: "<=" },
    ),
  );
  t.push(...scaleTargets(cases, options.cores));
  return t;
}

/**
 * The growth curve: marginal ms per task between the smallest and largest K, RSS, skopeo, and the
 * CPU per extra task of each process on the machine's cores (bananna-bot, the destination registry,
 * the token server): their sum over the cores bounds the wall time per task from below, whatever
 * the concurrency, so the marginal cost is also shown as a ratio to that bound.
 */
function scaleTargets(cases: CaseResult[], cores?: number): TargetResult[] {
  const runs = cases
    .filter((c) => c.scenario === "scale no-op" && c.status === "ok")
    .map((c) => ({ c, tasks: Number(/\((\d+) tasks\)/.exec(c.tool)?.[1] ?? NaN) }))
    .filter((r) => r.c.tool.startsWith("bananna") && Number.isFinite(r.tasks))
    .sort((a, b) => a.tasks - b.tasks);
  if (runs.length < 2) return [];
  const lo = runs[0];
  const hi = runs[runs.length - 1];
  const loMs = median(lo.c, ms);
  const hiMs = median(hi.c, ms);
  const marginal = loMs === undefined || hiMs === undefined
    ? undefined
    : (hiMs - loMs) / (hi.tasks - lo.tasks);
  const rss = median(hi.c, (s) => s.rssKb);
  /** CPU ms per extra task between the two Ks, from the medians of `of`. */
  const perTask = (of: (s: Sample) => number | undefined) => {
    const a = median(lo.c, of);
    const b = median(hi.c, of);
    return a === undefined || b === undefined ? undefined : (b - a) / (hi.tasks - lo.tasks);
  };
  const skopeo = find(cases, "scale no-op", `skopeo sync (${hi.tasks} tasks)`);
  const ours = perTask((s) => s.cpuMs);
  const registry = perTask((s) => s.registryCpuMs);
  const tokens = perTask((s) => s.harnessCpuMs);
  const bound = ours === undefined || registry === undefined || tokens === undefined || !cores
    ? undefined
    : (ours + registry + tokens) / cores;
  const info = (unit: TargetResult["unit"]) => ({
    limit: Infinity,
    unit,
    direction: "<=" as const,
    info: true,
  });
  return [
    target(`scale: marginal cost of a no-op task, ${lo.tasks} to ${hi.tasks}`, marginal, {
      limit: 1,
      unit: "ms/task",
      direction: "<=",
    }),
    target(`scale: peak RSS at ${hi.tasks} tasks`, rss === undefined ? undefined : rss / 1024, {
      limit: 100,
      unit: "MB",
      direction: "<=",
    }),
    target(`scale: CPU per extra task, bananna-bot (user + system)`, ours, info("ms/task")),
    target(`scale: CPU per extra task, the destination registry`, registry, info("ms/task")),
    target(`scale: CPU per extra task, the bench process (token server)`, tokens, info("ms/task")),
    target(
      `scale: CPU bound per extra task (the three over ${cores} cores)`,
      bound,
      info("ms/task"),
    ),
    target(`scale: marginal cost / CPU bound`, ratio(marginal, bound), info("x")),
    target(
      `scale: registry engine / skopeo sync at ${hi.tasks} tasks`,
      ratio(hiMs, median(skopeo, ms)),
      info("x"),
    ),
  ];
}

/**
 * A/B of one scenario (`--baseline`): the current tree's time over the baseline's, from the
 * statistic of each side's runs, with the ratio of each round's pair (run i of both, which ran one
 * after the other) as the detail: the pairs show how far the noise of the machine reaches. With
 * CPU times (user + system), their ratio too: the load stretches it far less than wall time; and
 * the destination registry's CPU where the scenario measured it (cold runs, `scale`).
 */
export function baselineTarget(
  name: string,
  current: number[],
  baseline: number[],
  cpu?: { current: number[]; baseline: number[] },
  registryCpu?: { current: number[]; baseline: number[] },
): TargetResult {
  const value = ratio(stats(current)[statistic], stats(baseline)[statistic]);
  const pairs = current.slice(0, baseline.length).map((c, i) => c / baseline[i]);
  const medians = (of?: { current: number[]; baseline: number[] }) =>
    of?.current.length && of.baseline.length
      ? ratio(stats(of.current).median, stats(of.baseline).median)
      : undefined;
  const cpuRatio = medians(cpu);
  const registryRatio = medians(registryCpu);
  const detail = [
    ...(pairs.length ? [`per round ${pairs.map((p) => p.toFixed(2)).join(", ")}`] : []),
    ...(cpuRatio === undefined ? [] : [`CPU ${cpuRatio.toFixed(2)}x`]),
    ...(registryRatio === undefined ? [] : [
      `destination registry CPU ${registryRatio.toFixed(2)}x`,
    ]),
  ].join("; ");
  return {
    ...target(name, value, { limit: Infinity, unit: "x", direction: "<=", info: true }),
    ...(detail ? { detail } : {}),
  };
}

/**
 * The A/B rows of a `--baseline` invocation: for every scenario holding a baseline contender
 * (`bananna registry (baseline <short>)`, bench/baseline.ts) and `bananna registry`,
 * `<scenario>: current / baseline <short> (time)`.
 */
export function baselineTargets(cases: CaseResult[]): TargetResult[] {
  const out: TargetResult[] = [];
  for (const c of cases) {
    const short = baselineOf(c.tool);
    if (!short || c.status !== "ok") continue;
    // The registry-engine run; in `validate`, the scenario's one other contender.
    const current = find(cases, c.scenario, "bananna registry") ??
      cases.find((x) => x.scenario === c.scenario && baselineOf(x.tool) === undefined);
    if (!current) continue;
    const cpu = (samples: Sample[], of: (s: Sample) => number | undefined = (s) => s.cpuMs) =>
      samples.map(of).filter((v): v is number => v !== undefined);
    const registry = (s: Sample) => s.registryCpuMs;
    out.push(baselineTarget(
      `${c.scenario}: current / baseline ${short} (time)`,
      current.samples.map(ms),
      c.samples.map(ms),
      { current: cpu(current.samples), baseline: cpu(c.samples) },
      {
        current: cpu(current.samples, registry),
        baseline: cpu(c.samples, registry),
      },
    ));
  }
  return out;
}

/** Tool names of the two `select no-op` contenders. */
export const SELECT_RULES = "bananna registry (rules)";
/** The explicit-`images` contender of `select no-op`. */
export const SELECT_IMAGES = "bananna registry (images)";
/** The reference of `select no-op`: the tag list's pages read with curl, nothing else. */
export const SELECT_FLOOR = "floor (listing, curl)";

/**
 * The tag-selection targets: listing pages per 100 tags listed, source manifest GETs
 * and the no-op time of the `repositories` rule against the same tags written as `images`.
 */
export function selectTargets(cases: CaseResult[], listed: number): TargetResult[] {
  const rules = find(cases, "select no-op", SELECT_RULES);
  const images = find(cases, "select no-op", SELECT_IMAGES);
  const floor = find(cases, "select no-op", SELECT_FLOOR);
  const pages = median(rules, (s) => s.tagListPages);
  return [
    target(
      "select: <= 1 listing page per 100 tags",
      pages === undefined || listed === 0 ? undefined : pages / (listed / 100),
      { limit: 1, unit: "pages/100 tags", direction: "<=" },
    ),
    target("select: 0 source manifest GETs", median(rules, (s) => s.srcManifestGets), {
      limit: 0,
      unit: "GETs",
      direction: "<=",
    }),
    target(
      "select no-op <= 1.1x explicit no-op",
      ratio(median(rules, ms), median(images, ms)),
      { limit: 1.1, unit: "x", direction: "<=" },
    ),
    target(
      "select: listing floor / explicit no-op, for reference",
      ratio(median(floor, ms), median(images, ms)),
      { limit: Infinity, unit: "x", direction: "<=", info: true },
    ),
  ];
}

function fmtMs(v?: number): string {
  if (v === undefined) return "-";
  return v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${v.toFixed(0)} ms`;
}

function pad(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd()).join("\n");
}

/**
 * A target's value as the tables print it: two decimals (whole numbers for MB, ms and GETs), and
 * more where that rounding would land on the limit and hide which side of it the value is on
 * (0.3528x against 0.35x prints 0.353x, not a missed 0.35x).
 */
export function formatTargetValue(t: TargetResult): string {
  if (t.value === undefined) return "-";
  let digits = t.unit === "GETs" || t.unit === "MB" || t.unit === "ms" ? 0 : 2;
  while (
    !t.info && digits < 6 && t.value !== t.limit && Number(t.value.toFixed(digits)) === t.limit
  ) digits++;
  const text = t.value.toFixed(digits);
  return t.unit === "x" ? `${text}x` : `${text} ${t.unit}`;
}

/** The table printed at the end of a run. */
export function formatTable(cases: CaseResult[], targets: TargetResult[]): string {
  const rows = [[
    "scenario",
    "tool",
    "runs",
    "min",
    "median",
    "peak RSS",
    "MB/s",
    "src req",
    "dst req",
    "note",
  ]];
  for (const c of cases) {
    const { min, median: med } = stats(c.samples.map(ms));
    const rss = stats(c.samples.map((s) => s.rssKb).filter((v): v is number => v !== undefined));
    const pick = (f: (s: Sample) => number | undefined) => {
      const m = stats(c.samples.map(f).filter((v): v is number => v !== undefined)).median;
      return m === undefined ? "-" : String(m);
    };
    rows.push([
      c.scenario,
      c.tool,
      String(c.samples.length),
      fmtMs(min),
      fmtMs(med),
      rss.median === undefined ? "-" : `${(rss.median / 1024).toFixed(0)} MB`,
      c.bytes && med ? (c.bytes / 1e6 / (med / 1000)).toFixed(0) : "-",
      pick((s) => s.srcRequests),
      pick((s) => s.dstRequests),
      c.status === "ok" ? (c.note ?? "") : `${c.status.toUpperCase()}: ${c.note ?? ""}`,
    ]);
  }
  const targetRows = [["target", "value", "limit", "result", "detail"]];
  for (const t of targets) {
    targetRows.push([
      t.name,
      formatTargetValue(t),
      t.info ? "-" : `${t.direction} ${t.limit}${t.unit === "x" ? "x" : " " + t.unit}`,
      t.status,
      t.detail ?? "",
    ]);
  }
  return `${pad(rows)}\n\n${pad(targetRows)}`;
}

/** Versions of everything measured, and the machine. */
export async function environment(): Promise<Record<string, unknown>> {
  const cmd = async (bin: string, args: string[]) => {
    try {
      const out = await new Deno.Command(bin, { args, stdout: "piped", stderr: "piped" }).output();
      return new TextDecoder().decode(out.stdout).trim().split("\n")[0];
    } catch {
      return "not installed";
    }
  };
  // Deno lets only --allow-all read /proc; grep (--allow-run) may.
  const cpuinfo = await cmd("grep", ["-m1", "model name", "/proc/cpuinfo"]);
  const meminfo = await cmd("grep", ["-m1", "MemTotal", "/proc/meminfo"]);
  const memKb = Number(/MemTotal:\s+(\d+)/.exec(meminfo)?.[1] ?? 0);
  return {
    versions: {
      deno: Deno.version.deno,
      skopeo: await cmd("skopeo", ["--version"]),
      docker: await cmd("docker", ["--version"]),
      distribution: await cmd("/usr/bin/docker-registry", ["--version"]),
      curl: await cmd("curl", ["--version"]),
    },
    machine: {
      nproc: navigator.hardwareConcurrency,
      memoryMB: Math.round(memKb / 1024),
      cpu: /model name\s*:\s*(.*)/.exec(cpuinfo)?.[1] ?? "unknown",
      kernel: Deno.osRelease(),
      loadavg: Deno.loadavg(),
    },
  };
}
