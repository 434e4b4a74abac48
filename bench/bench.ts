// deno-lint-ignore-file no-console
/**
 * `deno task bench`: bananna-bot against skopeo sync, a plain docker loop and the loopback floor
 * and tag selection by a `repositories` rule against the same tags as `images`. Starts its own source and destination `docker-registry` (destination with htpasswd)
 * and a dockerd (vfs), pushes seeded corpora, measures, prints one table, writes
 * bench/results/<YYYY-MM-DD>.json.
 *
 * ```
 * deno task bench                      # full sizes (several minutes)
 * deno task bench --quick              # tiny corpora, 2 runs (development); or BENCH_QUICK=1
 * deno task bench --runs 5 --only small,many --no-docker
 * deno task bench --only small,many,airgap --no-docker --baseline main --out /tmp/ab.json
 * ```
 *
 * `--baseline REV` adds `bananna registry (baseline <short>)` next to `bananna registry` in
 * `small`, `many`, `scale`, `startup` and the air-gap bench (export and import), and next to
 * `bananna validate` in `validate`: REV unpacked from git
 * (bench/baseline.ts), run round-robin with the current tree in this invocation, both with the
 * same config (`operation.concurrency` pinned to the current default unless --concurrency is
 * given, so a changed default is not read as a change of speed); the targets gain a
 * `current / baseline` row per scenario and the results both commits.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { operationSchema } from "../lib/config/schema.ts";
import { MANIFEST_ACCEPT } from "../lib/registry/manifest.ts";
import { type PagingProxy, startPagingProxy } from "../tests/support/paging_proxy.ts";
import { startRegistry, type TestRegistry } from "../tests/support/registry.ts";
import { type Baseline, gitCommit, prepareBaseline, roundOrder } from "./baseline.ts";
import { type Corpus, FULL, pushBig, pushMany, pushSelect, pushSmall, QUICK } from "./corpora.ts";
import { processCpuMs, scaleScenario } from "./scale.ts";
import { startupScenario } from "./startup.ts";
import {
  baselineTargets,
  BW_HIGH,
  BW_LIMITED,
  type CaseResult,
  environment,
  evaluateTargets,
  formatTable,
  HEAD_FLOOR_FETCH,
  NOOP_NO_LATEST,
  NOOP_NO_SIGNATURES,
  type Sample,
  SELECT_FLOOR,
  SELECT_IMAGES,
  SELECT_RULES,
  selectTargets,
  useStatistic,
} from "./table.ts";
import {
  type BanannaOptions,
  check,
  NAMESPACE,
  runBananna,
  runDockerLoop,
  runFloor,
  runHeadFloor,
  runHeadFloorFetch,
  runListFloor,
  type RunResult,
  runSkopeoSync,
} from "./tools.ts";

const SCENARIOS = [
  "small",
  "many",
  "big",
  "bandwidth",
  "validate",
  "startup",
  "select",
  "scale",
  "airgap",
  "platforms",
] as const;

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    quick: { type: "boolean", default: Deno.env.get("BENCH_QUICK") === "1" },
    runs: { type: "string" },
    only: { type: "string", default: SCENARIOS.join(",") },
    "no-docker": { type: "boolean", default: false },
    /** `operation.concurrency` of every bananna-bot run; unset: the default a user gets. */
    concurrency: { type: "string" },
    /** More registry-engine contenders in `small` and `big`, one per concurrency (e.g. 2,4,8). */
    sweep: { type: "string" },
    /** Targets from the `median` (default) or the `min` of each contender's runs. */
    stat: { type: "string", default: "median" },
    /** `scale`: destination namespaces of the small and the large run (x the 300 tags of many). */
    "scale-k": { type: "string", default: "5,50" },
    "floor-parallel": { type: "string", default: "4" },
    out: { type: "string" },
    /** Keep the work dir (configs, bananna-bot logs, no-op request logs) for inspection. */
    keep: { type: "boolean", default: false },
    /** Size of the big layer in MiB (default 1024; 32 with --quick). */
    "big-mb": { type: "string" },
    /** Only these contenders (comma list, e.g. "bananna registry,floor (curl)"). */
    tools: { type: "string" },
    /** Write a V8 CPU profile of every bananna-bot run into this dir (bench/cpu_profile.ts reads it). */
    "cpu-prof": { type: "string" },
    /** Log every docker CLI call (subcommand, ms) of the docker contenders through a PATH shim. */
    "trace-docker": { type: "boolean", default: false },
    /** A git revision to run next to this tree (bench/baseline.ts). */
    baseline: { type: "string" },
  },
});
const sizes = { ...(flags.quick ? QUICK : FULL) };
if (flags["big-mb"]) sizes.bigBytes = Number(flags["big-mb"]) * 1024 * 1024;
const onlyTools = flags.tools?.split(",").map((t) => t.trim());
const denoFlags = flags["cpu-prof"] ? ["--cpu-prof", `--cpu-prof-dir=${flags["cpu-prof"]}`] : [];
const runs = Number(flags.runs ?? (flags.quick ? 2 : 3));
const only = new Set(flags.only.split(","));
/** With --baseline, both trees get the same concurrency: this tree's default unless given. */
const concurrency = flags.concurrency
  ? Number(flags.concurrency)
  : flags.baseline
  ? operationSchema.parse({}).concurrency
  : undefined;
/** The unpacked --baseline revision, while the bench runs (see the end of this file). */
let baseline: Baseline | undefined;
if (flags.stat !== "median" && flags.stat !== "min") throw new Error("--stat is median or min");
useStatistic(flags.stat);
const sweep = flags.sweep ? flags.sweep.split(",").map(Number) : [];
/** The bandwidth contenders of `big` (limited, and a limit too high to bind). */
const LIMIT = 50 * 1024 * 1024;
const HIGH_LIMIT = 1024 * 1024 * 1024;
const floorParallel = Number(flags["floor-parallel"]);

const cases: CaseResult[] = [];
const workDir = await Deno.makeTempDir({ prefix: "bb-bench-" });
const log = (text: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${text}`);

/** A destination registry that can be replaced by an empty one (the wipe before a cold run). */
class Destination {
  reg?: TestRegistry;
  async fresh(): Promise<TestRegistry> {
    await this.reg?.stop();
    this.reg = await startRegistry({ auth: "htpasswd" });
    return this.reg;
  }
  async stop() {
    await this.reg?.stop();
  }
}

/**
 * Every request the registry answered, `METHOD URI STATUS`, in log order. `accessLog()` of
 * tests/support/registry.ts lists the "response completed" lines only; distribution logs a 401
 * challenge as "error authorizing context" instead, so those are added here as `... 401`.
 */
async function requestLog(reg: TestRegistry): Promise<string[]> {
  const text = await Deno.readTextFile(`${reg.dir}/registry.log`).catch(() => "");
  const field = (line: string, name: string) =>
    new RegExp(`${name}=("(?:[^"\\\\]|\\\\.)*"|\\S+)`).exec(line)?.[1]?.replace(/^"|"$/g, "");
  const out: string[] = [];
  for (const line of text.split("\n")) {
    const completed = line.includes('msg="response completed');
    if (!completed && !line.includes('msg="error authorizing context')) continue;
    const status = completed ? field(line, "http.response.status") : "401";
    out.push(`${field(line, "http.request.method")} ${field(line, "http.request.uri")} ${status}`);
  }
  return out;
}

async function logLength(reg: TestRegistry): Promise<number> {
  return (await requestLog(reg)).length;
}

/** Requests since `from` lines of the log (the registry logs after responding). */
async function requestsSince(reg: TestRegistry, from: number): Promise<string[]> {
  await new Promise((r) => setTimeout(r, 200));
  return (await requestLog(reg)).slice(from);
}

/** HEAD every tag of the corpus in `dest`; with `sameDigest`, the digest must equal the source's. */
async function verify(src: TestRegistry, dest: TestRegistry, corpus: Corpus, sameDigest: boolean) {
  const auth = `Basic ${btoa(`${dest.username}:${dest.password}`)}`;
  const accept = MANIFEST_ACCEPT;
  const problems: string[] = [];
  for (const image of corpus.images) {
    const repo = `${NAMESPACE}/${image.repository.split("/").pop()}`;
    const d = await fetch(`${dest.url}/v2/${repo}/manifests/${image.tag}`, {
      method: "HEAD",
      headers: { accept, authorization: auth },
    });
    if (d.status !== 200) {
      problems.push(`${repo}:${image.tag} missing (${d.status})`);
      continue;
    }
    if (!sameDigest) continue;
    const s = await fetch(`${src.url}/v2/${image.repository}/manifests/${image.tag}`, {
      method: "HEAD",
      headers: { accept },
    });
    if (s.headers.get("docker-content-digest") !== d.headers.get("docker-content-digest")) {
      problems.push(`${repo}:${image.tag} digest differs from the source`);
    }
  }
  if (problems.length) {
    throw new Error(`destination check failed: ${problems.slice(0, 5).join("; ")}`);
  }
}

/** A contender in a scenario: how to run it once, and whether the result keeps digests. */
interface Contender {
  tool: string;
  docker?: boolean;
  sameDigest: boolean;
  run(dest: TestRegistry, logDir: string, dockerEnv: Record<string, string>): Promise<RunResult>;
  /** The first mirror of a no-op case, when `run` cannot fill the destination itself. */
  fill?(dest: TestRegistry, logDir: string): Promise<RunResult>;
}

interface Docker {
  env: { DOCKER_HOST: string; DOCKER_CONFIG: string };
  prune(): Promise<void>;
  stop(): Promise<void>;
}

async function startDocker(): Promise<Docker | string> {
  if (flags["no-docker"]) return "--no-docker";
  try {
    const { startDockerd, dockerdAvailability } = await import("../tests/support/dockerd.ts");
    const availability = await dockerdAvailability();
    if (!availability.ok) return availability.reason;
    const d = await startDockerd();
    return {
      env: d.env,
      prune: async () => {
        const out = await d.docker(["image", "prune", "-a", "-f"]);
        if (out.code !== 0) throw new Error(`docker image prune: ${out.stderr}`);
      },
      // dockerd.ts's stop() lists /proc to find a lingering containerd, which Deno allows only
      // with --allow-all; dockerd itself is already stopped by then, so finish the clean-up here.
      stop: async () => {
        await d.stop().catch(async () => {
          await new Deno.Command("rm", { args: ["-rf", d.dir] }).output();
        });
      },
    };
  } catch (error) {
    return `dockerd did not start: ${error instanceof Error ? error.message : error}`;
  }
}

/**
 * A private DOCKER_CONFIG per run, so no login carries over. With --trace-docker, a `docker`
 * shim first on PATH appends `<subcommand> <ms>` per call to `$BENCH_DOCKER_TRACE`.
 */
async function dockerEnvFor(docker: Docker): Promise<Record<string, string>> {
  const dir = await Deno.makeTempDir({ dir: workDir, prefix: "docker-config-" });
  await Deno.writeTextFile(`${dir}/config.json`, "{}\n");
  const env: Record<string, string> = { DOCKER_HOST: docker.env.DOCKER_HOST, DOCKER_CONFIG: dir };
  if (flags["trace-docker"]) {
    const shim = `${workDir}/docker-shim`;
    await Deno.mkdir(shim, { recursive: true });
    const real =
      (await new Deno.Command("sh", { args: ["-c", "command -v docker"], stdout: "piped" })
        .output()).stdout;
    await Deno.writeTextFile(
      `${shim}/docker`,
      `#!/bin/bash\ns=$(date +%s%N)\n${new TextDecoder().decode(real).trim()} "$@"\nrc=$?\n` +
        `echo "$1 $(( ($(date +%s%N) - s) / 1000000 ))" >> "$BENCH_DOCKER_TRACE"\nexit $rc\n`,
    );
    await Deno.chmod(`${shim}/docker`, 0o755);
    env.PATH = `${shim}:${Deno.env.get("PATH")}`;
    env.BENCH_DOCKER_TRACE = `${dir}/trace.txt`;
  }
  return env;
}

/** `{ subcommand: { n, ms } }` from a docker trace file (see dockerEnvFor). */
async function dockerTrace(env: Record<string, string>) {
  if (!env.BENCH_DOCKER_TRACE) return undefined;
  const text = await Deno.readTextFile(env.BENCH_DOCKER_TRACE).catch(() => "");
  await Deno.remove(env.BENCH_DOCKER_TRACE).catch(() => {});
  const out: Record<string, { n: number; ms: number }> = {};
  for (const line of text.trim().split("\n").filter(Boolean)) {
    const [cmd, ms] = line.split(" ");
    out[cmd] ??= { n: 0, ms: 0 };
    out[cmd].n++;
    out[cmd].ms += Number(ms);
  }
  return out;
}

function caseFor(scenario: CaseResult["scenario"], tool: string, bytes?: number): CaseResult {
  const c: CaseResult = { scenario, tool, status: "ok", samples: [], bytes };
  cases.push(c);
  return c;
}

function fail(c: CaseResult, error: unknown) {
  c.status = "failed";
  c.note = (error instanceof Error ? error.message : String(error)).split("\n").slice(0, 6).join(
    " | ",
  );
  log(`  ${c.scenario} / ${c.tool} FAILED: ${c.note}`);
}

/** Cold runs, interleaved round-robin so drift in machine load hits every contender alike. */
async function cold(
  scenario: CaseResult["scenario"],
  src: TestRegistry,
  corpus: Corpus,
  contenders: Contender[],
  docker: Docker | string,
  count: number,
) {
  const dest = new Destination();
  const rows = contenders.map((c) => ({ c, result: caseFor(scenario, c.tool, corpus.bytes) }));
  try {
    for (let i = 0; i < count; i++) {
      for (const { c, result } of roundOrder(rows, i, (r) => r.c.tool)) {
        if (result.status !== "ok") continue;
        if (c.docker && typeof docker === "string") {
          result.status = "not runnable";
          result.note = docker;
          continue;
        }
        try {
          const reg = await dest.fresh();
          let env: Record<string, string> = {};
          if (c.docker && typeof docker !== "string") {
            await docker.prune();
            env = await dockerEnvFor(docker);
          }
          const logDir = await Deno.makeTempDir({ dir: workDir, prefix: "logs-" });
          const srcFrom = await logLength(src);
          const dstFrom = await logLength(reg);
          const dstCpuFrom = await processCpuMs(reg.pid);
          const out = check(await c.run(reg, logDir, env), c.tool);
          const srcLog = await requestsSince(src, srcFrom);
          const dstLog = await requestsSince(reg, dstFrom);
          const registryCpuMs = await processCpuMs(reg.pid) - dstCpuFrom;
          if (i === 0 && c.tool !== "floor (curl)") await verify(src, reg, corpus, c.sameDigest);
          const dockerCalls = await dockerTrace(env);
          result.samples.push({
            ms: out.ms,
            rssKb: out.rssKb,
            cpuMs: out.cpuMs,
            registryCpuMs,
            srcRequests: srcLog.length,
            dstRequests: dstLog.length,
            dockerCalls,
          });
          log(
            `  ${scenario} / ${c.tool} run ${i + 1}: ${(out.ms / 1000).toFixed(2)} s${
              dockerCalls ? ` docker calls ${JSON.stringify(dockerCalls)}` : ""
            }`,
          );
        } catch (error) {
          fail(result, error);
        }
      }
    }
  } finally {
    await dest.stop();
  }
}

/**
 * No-op re-runs: each contender gets its own destination, mirrors once, then re-runs. With
 * `paging`, the paging proxy the contenders read the source through: its tag-list requests are
 * counted per run (`?n=1` is a login's access check, anything else a listing page).
 */
async function noop(
  target: { scenario: "many no-op" | "select no-op"; src: TestRegistry; paging?: PagingProxy },
  corpus: Corpus,
  contenders: Contender[],
  docker: Docker | string,
) {
  const { scenario, src, paging } = target;
  const label = scenario.replace(" no-op", "");
  const prepared: {
    c: Contender;
    result: CaseResult;
    reg: TestRegistry;
    logDir: string;
    env: Record<string, string>;
  }[] = [];
  try {
    for (const c of contenders) {
      const result = caseFor(scenario, c.tool);
      if (c.docker && typeof docker === "string") {
        result.status = "not runnable";
        result.note = docker;
        continue;
      }
      const reg = await startRegistry({ auth: "htpasswd" });
      const logDir = await Deno.makeTempDir({ dir: workDir, prefix: "logs-" });
      const env = c.docker && typeof docker !== "string" ? await dockerEnvFor(docker) : {};
      prepared.push({ c, result, reg, logDir, env });
      try {
        const first = check(
          await (c.fill ?? c.run)(reg, logDir, env),
          `${c.tool} (first mirror)`,
        );
        await verify(src, reg, corpus, c.sameDigest);
        result.note = `first mirror ${(first.ms / 1000).toFixed(2)} s`;
        log(`  ${label} / ${c.tool} first mirror: ${(first.ms / 1000).toFixed(2)} s`);
      } catch (error) {
        fail(result, error);
      }
    }
    for (let i = 0; i < runs; i++) {
      for (const { c, result, reg, logDir, env } of roundOrder(prepared, i, (p) => p.c.tool)) {
        if (result.status !== "ok") continue;
        try {
          const srcFrom = await logLength(src);
          const dstFrom = await logLength(reg);
          const pagingFrom = paging?.tagListRequests.length ?? 0;
          const out = check(await c.run(reg, logDir, env), c.tool);
          const srcLog = await requestsSince(src, srcFrom);
          const dstLog = await requestsSince(reg, dstFrom);
          const lists = paging?.tagListRequests.slice(pagingFrom) ?? [];
          const checks = lists.filter((l) => /[?&]n=1(&|$)/.test(l)).length;
          const sample: Sample = {
            ms: out.ms,
            rssKb: out.rssKb,
            cpuMs: out.cpuMs,
            srcRequests: srcLog.length,
            dstRequests: dstLog.length,
            srcManifestGets: srcLog.filter((l) => /^GET \S+\/manifests\//.test(l)).length,
            ...(paging ? { tagListPages: lists.length - checks, accessChecks: checks } : {}),
          };
          result.samples.push(sample);
          if (i === 0) {
            await Deno.writeTextFile(
              `${workDir}/noop-${label}-${c.tool.replace(/\W+/g, "-")}.log`,
              [
                ...lists.map((l) => `list ${l}`),
                ...srcLog.map((l) => `src ${l}`),
                ...dstLog.map((l) => `dst ${l}`),
              ].join("\n") + "\n",
            );
          }
          const pages = paging
            ? `, ${sample.tagListPages} listing pages + ${sample.accessChecks} access checks`
            : "";
          log(
            `  ${scenario} / ${c.tool} run ${i + 1}: ${
              (out.ms / 1000).toFixed(2)
            } s, src ${sample.srcRequests} req (${sample.srcManifestGets} manifest GETs)${pages}, dst ${sample.dstRequests} req`,
          );
        } catch (error) {
          fail(result, error);
        }
      }
    }
  } finally {
    for (const p of prepared) await p.reg.stop();
  }
}

function contenders(src: TestRegistry, corpus: Corpus, which: string[]): Contender[] {
  /** A registry-engine run with the defaults a user gets, but for `settings`. */
  const registryRun =
    (settings: Partial<BanannaOptions> = {}): NonNullable<Contender["fill"]> => (dest, logDir) =>
      runBananna({
        src,
        dest,
        corpus,
        engine: "registry",
        concurrency,
        updateLatest: "default",
        logDir,
        workDir,
        denoFlags,
        ...settings,
      });
  const all: Contender[] = [
    { tool: "bananna registry", sameDigest: true, run: registryRun() },
    ...(baseline ? [baseline] : []).map((b): Contender => ({
      tool: b.tool,
      sameDigest: true,
      run: registryRun({ root: b.dir }),
    })),
    ...sweep.map((n): Contender => ({
      tool: `bananna registry (concurrency ${n})`,
      sameDigest: true,
      run: registryRun({ concurrency: n }),
    })),
    ...([
      [NOOP_NO_SIGNATURES, { signatures: "skip" }],
      [NOOP_NO_LATEST, { updateLatest: false }],
    ] as const).map(([tool, settings]): Contender => ({
      tool,
      sameDigest: true,
      run: registryRun(settings),
    })),
    ...([[LIMIT, BW_LIMITED], [HIGH_LIMIT, BW_HIGH]] as const).map(([limit, tool]): Contender => ({
      tool,
      sameDigest: true,
      run: registryRun({ maxBytesPerSecond: limit }),
    })),
    {
      tool: "bananna docker",
      docker: true,
      sameDigest: false,
      run: (dest, logDir, env) =>
        runBananna({
          src,
          dest,
          corpus,
          engine: "docker",
          concurrency,
          updateLatest: "default",
          logDir,
          workDir,
          env,
          denoFlags,
        }),
    },
    {
      tool: "skopeo sync",
      sameDigest: true,
      run: (dest) => runSkopeoSync({ src, dest, corpus, workDir }),
    },
    {
      tool: "docker loop",
      docker: true,
      sameDigest: false,
      run: (dest, _logDir, env) => runDockerLoop({ src, dest, corpus, workDir, dockerEnv: env }),
    },
    {
      // No-op only: the HEADs no tool can skip, with a destination filled by the registry engine.
      tool: "floor (HEAD)",
      sameDigest: true,
      fill: registryRun({ denoFlags: [] }),
      run: (dest) => runHeadFloor({ src, dest, corpus, workDir, parallel: 16 }),
    },
    {
      // The same HEADs with Deno's fetch: what this runtime alone costs a no-op.
      tool: HEAD_FLOOR_FETCH,
      sameDigest: true,
      fill: registryRun({ denoFlags: [] }),
      run: (dest) => runHeadFloorFetch({ src, dest, corpus, workDir, parallel: 16 }),
    },
    {
      tool: "floor (curl)",
      sameDigest: false,
      run: (dest) =>
        runFloor({
          src,
          dest,
          corpus,
          workDir,
          parallel: corpus.name === "big" ? 1 : floorParallel,
        }),
    },
  ];
  const swept = sweep.map((n) => `bananna registry (concurrency ${n})`);
  return all.filter((c) =>
    (which.includes(c.tool) || (which.includes("bananna registry") && swept.includes(c.tool))) &&
    !(c.docker && flags["no-docker"]) &&
    (!onlyTools || onlyTools.includes(c.tool))
  );
}

async function main(): Promise<string> {
  log(`bench: ${flags.quick ? "QUICK" : "full"} sizes, ${runs} runs, work dir ${workDir}`);
  const env = await environment();
  await using src = await startRegistry();
  const needsDocker = only.has("small") || only.has("many");
  const docker = needsDocker ? await startDocker() : "not needed";
  if (typeof docker === "string") log(`docker cases not runnable: ${docker}`);
  const corpora: Record<string, { images: number; blobs: number; bytes: number }> = {};
  let manyCorpus: Corpus | undefined;
  try {
    if (only.has("validate") || only.has("startup")) {
      cases.push(
        ...await startupScenario({
          src,
          sizes,
          workDir,
          runs,
          log,
          only,
          baseline: baseline && { dir: baseline.dir, short: baseline.short },
        }),
      );
    }
    if (only.has("small")) {
      log("pushing corpus small");
      const small = await pushSmall(src, sizes);
      corpora.small = {
        images: small.images.length,
        blobs: small.blobs.length,
        bytes: small.bytes,
      };
      log(
        `small: ${small.images.length} tags, ${small.blobs.length} blobs, ${
          (small.bytes / 1e6).toFixed(1)
        } MB`,
      );
      await cold(
        "small cold",
        src,
        small,
        contenders(src, small, [
          "bananna registry",
          ...(baseline ? [baseline.tool] : []),
          "bananna docker",
          "skopeo sync",
          "docker loop",
          "floor (curl)",
        ]),
        docker,
        runs,
      );
    }
    if (only.has("many")) {
      log("pushing corpus many");
      const many = manyCorpus = await pushMany(src, sizes);
      corpora.many = { images: many.images.length, blobs: many.blobs.length, bytes: many.bytes };
      await noop(
        { scenario: "many no-op", src },
        many,
        contenders(src, many, [
          "bananna registry",
          ...(baseline ? [baseline.tool] : []),
          NOOP_NO_SIGNATURES,
          NOOP_NO_LATEST,
          "bananna docker",
          "skopeo sync",
          "floor (HEAD)",
          HEAD_FLOOR_FETCH,
        ]),
        docker,
      );
    }
    if (typeof docker !== "string") await docker.stop();
    if (only.has("select")) {
      log("pushing corpus select");
      const select = await pushSelect(src, sizes);
      corpora.select = {
        images: select.images.length,
        blobs: select.blobs.length,
        bytes: select.bytes,
      };
      await selectNoop(src, select);
    }
    if (only.has("big") || only.has("bandwidth")) {
      log("pushing corpus big");
      const big = await pushBig(src, sizes);
      corpora.big = { images: 1, blobs: big.blobs.length, bytes: big.bytes };
      const which = [
        ...(only.has("big") ? ["bananna registry", "skopeo sync", "floor (curl)"] : []),
        ...(only.has("bandwidth") ? ["bananna registry", BW_LIMITED, BW_HIGH] : []),
      ];
      await cold(
        "big cold",
        src,
        big,
        contenders(src, big, [...new Set(which)]),
        "not needed",
        runs,
      );
    }
    if (only.has("scale")) {
      const many = manyCorpus ?? await pushMany(src, sizes);
      const ks = flags["scale-k"].split(",").map(Number);
      cases.push(
        ...await scaleScenario({
          src,
          corpus: many,
          ks,
          runs,
          workDir,
          log,
          denoFlags,
          baseline: baseline && { dir: baseline.dir, short: baseline.short },
          concurrency,
        }),
      );
    }
  } finally {
    if (typeof docker !== "string") await docker.stop();
  }
  const manyTags = corpora.many?.images ?? 0;
  const targets = [
    ...evaluateTargets(cases, manyTags, {
      limit: LIMIT,
      bigBytes: corpora.big?.bytes,
      cores: navigator.hardwareConcurrency,
    }),
    ...(only.has("select") ? selectTargets(cases, sizes.selectTags) : []),
    ...baselineTargets(cases),
  ];
  console.log("\n" + formatTable(cases, targets));
  const date = new Date().toISOString().slice(0, 10);
  const out = flags.out ??
    new URL(`./results/${date}${flags.quick ? "-quick" : ""}.json`, import.meta.url).pathname;
  await Deno.mkdir(out.replace(/\/[^/]+$/, ""), { recursive: true });
  await Deno.writeTextFile(
    out,
    JSON.stringify(
      {
        date: new Date().toISOString(),
        quick: flags.quick,
        runs,
        settings: {
          concurrency: concurrency ?? "default (operation.concurrency not written)",
          sweep,
          statistic: flags.stat,
          floorParallel,
          updateLatest: "default (true) for bananna-bot registry/docker; false for select",
          commit: await gitCommit(),
          ...(baseline
            ? { baseline: { rev: baseline.rev, commit: baseline.commit, short: baseline.short } }
            : {}),
        },
        ...env,
        corpora,
        cases,
        targets,
      },
      null,
      2,
    ) + "\n",
  );
  log(`results written to ${out}`);
  if (flags.keep) log(`work dir kept: ${workDir}`);
  else await Deno.remove(workDir, { recursive: true }).catch(() => {});
  return out;
}

/**
 * The `select` no-op: the registry engine reads the source through a paging proxy (pages of at
 * most 100 tags, as registries that paginate answer; Debian's distribution 2.8.2 sends every tag
 * at once), once with the `repositories` rule and once with the same tags written as `images`;
 * the listing floor (every page read with curl) shows what the listing alone costs.
 */
async function selectNoop(src: TestRegistry, corpus: Corpus) {
  await using paging = startPagingProxy(src, { pageSize: 100 });
  // bananna-bot sees the proxy as the source; verify() and the request counts use the registry.
  const through: TestRegistry = { ...src, host: paging.host, url: paging.url };
  const run = (rules: boolean) => (dest: TestRegistry, logDir: string) =>
    runBananna({
      src: through,
      dest,
      corpus,
      engine: "registry",
      concurrency,
      logDir,
      workDir,
      denoFlags,
      rules,
    });
  const paths = await pagePaths(paging, corpus.selection?.repository ?? "");
  const all: Contender[] = [
    { tool: SELECT_RULES, sameDigest: true, run: run(true) },
    { tool: SELECT_IMAGES, sameDigest: true, run: run(false) },
    {
      // Reference only: the listing alone (curl), with a destination filled by the rule's run.
      tool: SELECT_FLOOR,
      sameDigest: true,
      fill: run(true),
      run: () => runListFloor({ src: through, paths, workDir }),
    },
  ];
  const which = all.filter((c) => !onlyTools || onlyTools.includes(c.tool));
  await noop({ scenario: "select no-op", src, paging }, corpus, which, "not needed");
  for (const c of cases) {
    if (c.scenario !== "select no-op" || c.status !== "ok" || !c.samples.length) continue;
    const pages = c.samples.map((s) => `${s.tagListPages}+${s.accessChecks}`).join(", ");
    c.note = `${c.note}; tag-list pages+access checks per run: ${pages}; ` +
      `${corpus.selection?.listed} tags listed, ${corpus.images.length} selected`;
  }
}

/** The tag-list pages a client following Link reads from `paging`, read once (untimed). */
async function pagePaths(paging: PagingProxy, repository: string): Promise<string[]> {
  const paths: string[] = [];
  let next: string | null = `/v2/${repository}/tags/list?n=1000`;
  while (next) {
    paths.push(next);
    const res: Response = await fetch(`${paging.url}${next}`);
    await res.body?.cancel();
    if (!res.ok) throw new Error(`GET ${next} -> ${res.status}`);
    next = /<([^>]+)>/.exec(res.headers.get("link") ?? "")?.[1] ?? null;
  }
  return paths;
}

if (flags.baseline) {
  baseline = await prepareBaseline(flags.baseline);
  log(`baseline ${baseline.rev}: ${baseline.commit} unpacked in ${baseline.dir}`);
}
try {
  const out = await main();
  if (only.has("airgap")) await airgap(out);
  if (only.has("platforms")) await platforms();
} finally {
  await baseline?.remove();
}

/** Run bench/<script> in its own process with the common flags (`--quick`, `--runs`) and `extra`. */
async function benchScript(script: string, what: string, extra: string[] = []) {
  const args = [
    "run",
    "--frozen",
    "--allow-net",
    "--allow-read",
    "--allow-write",
    "--allow-env",
    "--allow-run",
    "--allow-sys",
    new URL(`./${script}`, import.meta.url).pathname,
    ...(flags.quick ? ["--quick"] : []),
    ...(flags.runs ? ["--runs", flags.runs] : []),
    ...extra,
  ];
  log(`${what} (bench/${script})`);
  const { code } = await new Deno.Command(Deno.execPath(), { args }).spawn().status;
  if (code !== 0) log(`${what.split(":")[0]}: bench/${script} exited ${code}`);
}

/**
 * One platform of a 4-platform corpus against every platform: bench/platforms.ts (also
 * `deno task bench:platforms`) in its own process, after the others (writes platforms-<date>.json).
 */
async function platforms() {
  await benchScript("platforms.ts", "platforms: one platform of four");
}

/**
 * The export/import figures: bench/airgap.ts (also `deno task bench:airgap`) in its own
 * process, after the others (it starts its own registries and writes airgap-<date>.json, or
 * `<--out>-airgap.json`). With --baseline, its `current / baseline` rows join this run's targets
 * in `out`.
 */
async function airgap(out: string) {
  const airgapOut = flags.out || baseline ? out.replace(/\.json$/, "") + "-airgap.json" : undefined;
  await benchScript("airgap.ts", "airgap: export/import", [
    ...(flags["big-mb"] ? ["--big-mb", flags["big-mb"]] : []),
    ...(airgapOut ? ["--out", airgapOut] : []),
    ...(baseline ? ["--baseline", baseline.commit] : []),
  ]);
  if (!baseline || !airgapOut) return;
  const rows = await Deno.readTextFile(airgapOut).then((t) => JSON.parse(t).targets, () => []);
  if (!Array.isArray(rows) || rows.length === 0) return;
  const results = JSON.parse(await Deno.readTextFile(out));
  results.targets.push(...rows);
  results.airgap = airgapOut;
  await Deno.writeTextFile(out, JSON.stringify(results, null, 2) + "\n");
  console.log("\n" + formatTable([], rows).split("\n").slice(2).join("\n"));
  log(`airgap's ${rows.length} current / baseline rows added to ${out}`);
}
