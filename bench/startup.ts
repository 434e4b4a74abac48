/**
 * Start-up scenarios:
 *
 * - `validate`: `main.ts validate` on a 300-image config (the `many` corpus's names: 30
 *   repositories x 10 tags), after one warm-up run; wall time and peak RSS.
 * - `startup`: a mirror run with the same 300 images and the defaults a user gets, its source and
 *   destination behind recording proxies: the time from spawning the process to its first request
 *   (whichever host it goes to). What happens after does not matter here (the images need not
 *   exist), so the run's exit code is not checked. Each spawn waits for the previous run's tail to
 *   settle ({@link SETTLE_MS}).
 *
 * @module
 */
import { startHookProxy } from "../tests/support/hook_proxy.ts";
import { startRegistry, type TestRegistry } from "../tests/support/registry.ts";
import { baselineTool } from "./baseline.ts";
import type { Corpus, CorpusSizes } from "./corpora.ts";
import type { CaseResult } from "./table.ts";
import { banannaConfig, baseEnv, check, shippedV8Flags, timed } from "./tools.ts";

/** The `many` corpus's 300 names, without pushing anything. */
function names(sizes: CorpusSizes): Corpus {
  const images: Corpus["images"] = [];
  for (let r = 0; r < sizes.manyRepos; r++) {
    for (let t = 0; t < sizes.manyTagsPerRepo; t++) {
      images.push({
        repository: `many/m${String(r).padStart(2, "0")}`,
        tag: `1.${t}`,
        kind: "schema2",
      });
    }
  }
  return { name: "many", images, blobs: [], bytes: 0 };
}

/** The pause before each start-up spawn (see where it is used). */
const SETTLE_MS = 1500;

const PERMISSIONS = ["--allow-net", "--allow-read", "--allow-write", "--allow-env", "--allow-run"];

/** Run the start-up scenarios named in `only` (`validate`, `startup`). */
export async function startupScenario(options: {
  src: TestRegistry;
  sizes: CorpusSizes;
  workDir: string;
  runs: number;
  log: (text: string) => void;
  only: ReadonlySet<string>;
  /** `--baseline`: the unpacked earlier tree, run round-robin next to this one (bench/baseline.ts). */
  baseline?: { dir: string; short: string };
}): Promise<CaseResult[]> {
  const { src, sizes, workDir, log, only, baseline } = options;
  const corpus = names(sizes);
  const out: CaseResult[] = [];
  const count = Math.max(options.runs, 5);
  /** This tree (cwd: the repository) and the baseline's, in turn; on odd rounds the baseline first. */
  const sides = (result: CaseResult) => {
    const base: CaseResult | undefined = baseline && {
      ...result,
      tool: baselineTool(baseline.short),
      samples: [],
    };
    if (base) out.push(base);
    return (round: number) => {
      const both = [{ result, cwd: undefined as string | undefined }];
      if (base) both.push({ result: base, cwd: baseline?.dir });
      return round % 2 === 0 ? both : both.reverse();
    };
  };
  if (only.has("validate")) {
    const result: CaseResult = {
      scenario: "validate",
      tool: "bananna validate",
      status: "ok",
      samples: [],
      note: `${corpus.images.length} images`,
    };
    out.push(result);
    const order = sides(result);
    try {
      const file = `${workDir}/validate.yaml`;
      const fake = { host: "127.0.0.1:1", username: "mirror", password: "x" } as TestRegistry;
      await Deno.writeTextFile(
        file,
        banannaConfig({
          src,
          dest: fake,
          corpus,
          engine: "registry",
          updateLatest: "default",
          logDir: `${workDir}/validate-logs`,
          workDir,
        }),
      );
      const validate = (cwd?: string) =>
        timed(
          "deno",
          // As `deno task validate` runs it: with the mirror's V8 flags (one code cache for both).
          [
            "run",
            "--frozen",
            ...shippedV8Flags(cwd),
            ...PERMISSIONS,
            "main.ts",
            "validate",
            "--config",
            file,
          ],
          {
            workDir,
            cwd,
            env: { ...baseEnv(), BENCH_DEST_PASSWORD: "validate-only" },
          },
        );
      for (const side of order(0)) check(await validate(side.cwd), "validate (warm-up)");
      for (let i = 0; i < count; i++) {
        for (const side of order(i)) {
          const run = check(await validate(side.cwd), side.result.tool);
          side.result.samples.push({ ms: run.ms, rssKb: run.rssKb, cpuMs: run.cpuMs });
        }
      }
      for (const side of order(0)) {
        log(
          `  validate (${side.result.tool}): ${
            side.result.samples.map((s) => s.ms.toFixed(0)).join(", ")
          } ms`,
        );
      }
    } catch (error) {
      result.status = "failed";
      result.note = error instanceof Error ? error.message.split("\n")[0] : String(error);
    }
  }
  if (only.has("startup")) {
    const result: CaseResult = {
      scenario: "startup",
      tool: "bananna registry",
      status: "ok",
      samples: [],
      note: `time to the first request, ${corpus.images.length} images, defaults`,
    };
    out.push(result);
    const order = sides(result);
    await using dest = await startRegistry({ auth: "htpasswd" });
    let first = Infinity;
    const seen = () => {
      first = Math.min(first, performance.now());
    };
    await using srcProxy = startHookProxy(src, seen);
    await using dstProxy = startHookProxy(dest, seen);
    const through = (reg: TestRegistry, proxy: { host: string; url: string }) => ({
      ...reg,
      host: proxy.host,
      url: proxy.url,
    });
    try {
      const file = `${workDir}/startup.yaml`;
      await Deno.writeTextFile(
        file,
        banannaConfig({
          src: through(src, srcProxy),
          dest: through(dest, dstProxy),
          corpus,
          engine: "registry",
          updateLatest: "default",
          logDir: `${workDir}/startup-logs`,
          workDir,
        }),
      );
      const mirror = (cwd?: string) =>
        timed("deno", [
          "run",
          "--frozen",
          ...shippedV8Flags(cwd),
          ...PERMISSIONS,
          "main.ts",
          "mirror",
          "--config",
          file,
          "--non-interactive",
        ], { workDir, cwd, env: { ...baseEnv(), BENCH_DEST_PASSWORD: dest.password ?? "" } });
      for (const side of order(0)) await mirror(side.cwd); // warm-up
      for (let i = 0; i < count; i++) {
        for (const side of order(i)) {
          // Each spawn starts on a settled machine: right after the previous run (a whole mirror
          // of 300 images through two registries and two proxies) their tail still holds the
          // cores and lengthens the next start-up (median 277 vs 205 ms in one A/B).
          await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
          first = Infinity;
          const started = performance.now();
          const run = await mirror(side.cwd);
          if (!Number.isFinite(first)) throw new Error(`no request seen (exit ${run.code})`);
          side.result.samples.push({ ms: first - started, rssKb: run.rssKb });
        }
      }
      for (const side of order(0)) {
        log(
          `  startup (${side.result.tool}): first request after ${
            side.result.samples.map((s) => s.ms.toFixed(0)).join(", ")
          } ms`,
        );
      }
    } catch (error) {
      result.status = "failed";
      result.note = error instanceof Error ? error.message.split("\n")[0] : String(error);
    }
  }
  return out;
}
