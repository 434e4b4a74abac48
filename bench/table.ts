/**
 * Results: the cases measured, the targets from issue 6 computed from them, the printed table and
 * the JSON written to bench/results/<date>.json.
 *
 * @module
 */

/** One run of one contender. */
export interface Sample {
  ms: number;
  rssKb?: number;
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
export type Scenario = "small cold" | "many no-op" | "big cold" | "validate" | "select no-op";

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
  unit: "x" | "MB" | "ms" | "req/tag" | "GETs" | "pages/100 tags";
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

function median(c: CaseResult | undefined, pick: (s: Sample) => number | undefined) {
  if (!c) return undefined;
  return stats(c.samples.map(pick).filter((v): v is number => v !== undefined)).median;
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

/** The targets of issue 6, from medians of one invocation. */
export function evaluateTargets(cases: CaseResult[], tagsInMany: number): TargetResult[] {
  const t: TargetResult[] = [];
  const small = (tool: string) => median(find(cases, "small cold", tool), ms);
  t.push(
    target(
      "small cold: registry engine / skopeo sync",
      ratio(small("bananna registry"), small("skopeo sync")),
      { limit: 0.7, unit: "x", direction: "<=" },
    ),
  );
  t.push(
    target(
      "small cold: registry engine / floor",
      ratio(small("bananna registry"), small("floor (curl)")),
      { limit: 1.5, unit: "x", direction: "<=" },
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
  for (const engine of ["registry", "docker"]) {
    const c = many(`bananna ${engine}`);
    t.push(
      target(
        `many no-op: ${engine} engine / skopeo sync`,
        ratio(median(c, ms), median(many("skopeo sync"), ms)),
        { limit: 0.1, unit: "x", direction: "<=" },
      ),
    );
    t.push(
      target(
        `many no-op: ${engine} engine / floor (HEAD), for reference`,
        ratio(median(c, ms), median(many("floor (HEAD)"), ms)),
        { limit: Infinity, unit: "x", direction: "<=", info: true },
      ),
    );
    const dst = median(c, (s) => s.dstRequests);
    t.push(
      target(
        `many no-op: ${engine} engine destination requests per tag`,
        dst === undefined ? undefined : dst / tagsInMany,
        { limit: 1, unit: "req/tag", direction: "<=" },
      ),
    );
    t.push(
      target(
        `many no-op: ${engine} engine manifest GETs on the source`,
        median(c, (s) => s.srcManifestGets),
        { limit: 0, unit: "GETs", direction: "<=" },
      ),
    );
  }
  const big = find(cases, "big cold", "bananna registry");
  const rss = median(big, (s) => s.rssKb);
  t.push(
    target("big cold: registry engine peak RSS", rss === undefined ? undefined : rss / 1024, {
      limit: 120,
      unit: "MB",
      direction: "<=",
    }),
  );
  const floor = find(cases, "big cold", "floor (curl)");
  t.push(
    target(
      "big cold: registry engine throughput / floor",
      ratio(median(floor, ms), median(big, ms)),
      { limit: 0.8, unit: "x", direction: ">=" },
    ),
  );
  t.push(
    target("validate wall time", median(find(cases, "validate", "bananna validate"), ms), {
      limit: 300,
      unit: "ms",
      direction: "<=",
    }),
  );
  return t;
}

/** Tool names of the two `select no-op` contenders. */
export const SELECT_RULES = "bananna registry (rules)";
/** The explicit-`images` contender of `select no-op`. */
export const SELECT_IMAGES = "bananna registry (images)";
/** The reference of `select no-op`: the tag list's pages read with curl, nothing else. */
export const SELECT_FLOOR = "floor (listing, curl)";

/**
 * The tag-selection targets of issue 12: listing pages per 100 tags listed, source manifest GETs
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
  const targetRows = [["target", "value", "limit", "result"]];
  for (const t of targets) {
    const value = t.value === undefined
      ? "-"
      : t.unit === "x"
      ? `${t.value.toFixed(2)}x`
      : `${
        t.value.toFixed(t.unit === "GETs" || t.unit === "MB" || t.unit === "ms" ? 0 : 2)
      } ${t.unit}`;
    targetRows.push([
      t.name,
      value,
      t.info ? "-" : `${t.direction} ${t.limit}${t.unit === "x" ? "x" : " " + t.unit}`,
      t.status,
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
  const cpuinfo = await Deno.readTextFile("/proc/cpuinfo").catch(() => "");
  const meminfo = await Deno.readTextFile("/proc/meminfo").catch(() => "");
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
