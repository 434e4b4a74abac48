/**
 * The `scale` scenario: the growth curve of a no-op run with the task count. The `many` corpus
 * (300 tags) is mirrored into K namespaces of one token-auth destination (like Quay: a Bearer
 * token per repository scope), so a run has K x 300 image x target tasks. One untimed fill with
 * the largest K (bananna-bot fills the first namespace; the others are copies of its tree in the
 * registry's filesystem storage, read back through the API before any run), one untimed no-op
 * per K (the supply-chain memo is then warm),
 * then `runs` no-op runs per K, round-robin, with the defaults a user gets. skopeo sync is run
 * once per namespace at the largest K (it syncs into one destination prefix per call), its times
 * summed.
 *
 * The marginal cost of one more task is (median(K max) - median(K min)) / (tasks max - tasks min);
 * peak RSS is read at the largest K. Each run also records the destination registry's CPU time
 * (its process's, from /proc) and the bench process's own (the token server answers there, one
 * RS256 signature per repository scope): both share the cores with bananna-bot, so the CPU of the
 * three per extra task is what bounds the wall time per task from below.
 *
 * @module
 */
import { startRegistry, type TestRegistry } from "../tests/support/registry.ts";
import type { Corpus } from "./corpora.ts";
import type { CaseResult } from "./table.ts";
import { check, runBananna, runSkopeoSync } from "./tools.ts";
import { MANIFEST_ACCEPT } from "../lib/registry/manifest.ts";
import { forEachLimited } from "../lib/worker_pool.ts";

/** Tool name of the bananna-bot case with `tasks` tasks. */
export function scaleTool(tasks: number): string {
  return `bananna registry (${tasks} tasks)`;
}

/** Tool name of the baseline's case with `tasks` tasks (`--baseline`). */
export function scaleBaselineTool(tasks: number, short: string): string {
  return `bananna registry (${tasks} tasks, baseline ${short})`;
}

/** Tool name of the skopeo sync case with `tasks` tasks. */
export function scaleSkopeo(tasks: number): string {
  return `skopeo sync (${tasks} tasks)`;
}

const namespaces = (k: number) =>
  Array.from({ length: k }, (_, i) => `ns${String(i).padStart(2, "0")}`);

/** Run the scenario; one case per K, and skopeo's at the largest. */
export async function scaleScenario(options: {
  src: TestRegistry;
  corpus: Corpus;
  ks: number[];
  runs: number;
  workDir: string;
  log: (text: string) => void;
  denoFlags: string[];
  /** `--baseline`: its tree runs each K too, alternating with this one, in the same registries. */
  baseline?: { dir: string; short: string };
  /** `operation.concurrency` of the timed runs (pinned with `--baseline`); unset: the default. */
  concurrency?: number;
}): Promise<CaseResult[]> {
  const { src, corpus, workDir, log, denoFlags } = options;
  const ks = [...new Set(options.ks)].sort((a, b) => a - b);
  const maxK = ks[ks.length - 1];
  const per = corpus.images.length;
  await using dest = await startRegistry({ auth: "token" });
  const { baseline } = options;
  const trees = baseline ? [undefined, baseline.dir] : [undefined];
  // This tree's cases (one per K), then the baseline's (one per K), in that order.
  const cases = trees.flatMap((root) =>
    ks.map((k): CaseResult => ({
      scenario: "scale no-op",
      tool: root && baseline ? scaleBaselineTool(k * per, baseline.short) : scaleTool(k * per),
      status: "ok",
      samples: [],
    }))
  );
  const logDirs = new Map<string, string>();
  const run = (k: number, concurrency?: number, root?: string) =>
    runBananna({
      src,
      dest,
      corpus,
      engine: "registry",
      concurrency,
      updateLatest: "default",
      namespaces: namespaces(k),
      logDir: logDirs.get(`${root}|${k}`) ?? `${workDir}/scale-fill`,
      workDir,
      denoFlags,
      root,
    });
  try {
    for (const root of trees) {
      for (const k of ks) {
        logDirs.set(
          `${root}|${k}`,
          await Deno.makeTempDir({ dir: workDir, prefix: `scale-${k}-` }),
        );
      }
    }
    log(`scale: filling ${maxK} namespaces x ${per} tags (token auth)`);
    // The first namespace by bananna-bot, the others as copies of its storage tree (seconds).
    const started = performance.now();
    check(await run(1, 8), `scale fill (${per} tasks)`);
    await fillByCopy(dest, namespaces(maxK));
    await verifyFill(src, dest, corpus, namespaces(maxK));
    log(`  scale fill: ${((performance.now() - started) / 1000).toFixed(1)} s`);
    for (const root of trees) {
      for (const k of ks) {
        check(await run(k, options.concurrency, root), `scale warm-up (${k * per} tasks)`);
      }
    }
    for (let i = 0; i < options.runs; i++) {
      for (const [j, k] of ks.entries()) {
        // This tree and the baseline alternate, the first of each pair swapped every round.
        const order = i % 2 === 0 ? trees : [...trees].reverse();
        for (const root of order) {
          const which = trees.indexOf(root) * ks.length + j;
          const before = await processCpuMs(dest.pid);
          const harnessBefore = await processCpuMs(Deno.pid);
          const out = check(await run(k, options.concurrency, root), `${cases[which].tool}`);
          const registryCpuMs = await processCpuMs(dest.pid) - before;
          const harnessCpuMs = await processCpuMs(Deno.pid) - harnessBefore;
          await checkReport(logDirs.get(`${root}|${k}`) as string, k * per);
          cases[which].samples.push({
            ms: out.ms,
            rssKb: out.rssKb,
            cpuMs: out.cpuMs,
            registryCpuMs,
            harnessCpuMs,
          });
          log(
            `  scale no-op ${cases[which].tool} run ${i + 1}: ${(out.ms / 1000).toFixed(2)} s, ${
              ((out.rssKb ?? 0) / 1024).toFixed(0)
            } MB, CPU ${((out.cpuMs ?? 0) / 1000).toFixed(2)} s, registry CPU ${
              (registryCpuMs / 1000).toFixed(2)
            } s, token server CPU ${(harnessCpuMs / 1000).toFixed(2)} s`,
          );
        }
      }
    }
  } catch (error) {
    for (const c of cases) {
      c.status = "failed";
      c.note = error instanceof Error
        ? error.message.split("\n").slice(0, 4).join(" | ")
        : String(error);
    }
    return cases;
  }
  const skopeo: CaseResult = {
    scenario: "scale no-op",
    tool: scaleSkopeo(maxK * per),
    status: "ok",
    samples: [],
    note: `${maxK} skopeo sync calls (one per namespace), times summed; 1 run`,
  };
  cases.push(skopeo);
  try {
    let ms = 0;
    let rssKb = 0;
    for (const namespace of namespaces(maxK)) {
      const out = check(await runSkopeoSync({ src, dest, corpus, workDir, namespace }), "skopeo");
      ms += out.ms;
      rssKb = Math.max(rssKb, out.rssKb ?? 0);
    }
    skopeo.samples.push({ ms, rssKb });
    log(`  scale skopeo sync ${maxK * per} tasks: ${(ms / 1000).toFixed(1)} s`);
  } catch (error) {
    skopeo.status = "failed";
    skopeo.note = error instanceof Error ? error.message.split("\n")[0] : String(error);
  }
  return cases;
}

/**
 * CPU time (user + system) of a process so far, in ms, from /proc (clock ticks of 10 ms, the
 * USER_HZ of Linux on x86 and arm). Read by `cat`: Deno lets only --allow-all read /proc itself.
 */
export async function processCpuMs(pid: number): Promise<number> {
  const out = await new Deno.Command("cat", { args: [`/proc/${pid}/stat`], stderr: "null" })
    .output();
  if (!out.success) throw new Error(`cannot read the CPU time of process ${pid}`);
  const stat = new TextDecoder().decode(out.stdout);
  // Fields after the command name (which may hold spaces) close with ") ".
  const fields = stat.slice(stat.lastIndexOf(") ") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/**
 * The run's report is one JSON document with an entry per task, every one `exists`: the run was
 * the no-op it is timed as, and the report of the largest K was written whole.
 */
async function checkReport(logDir: string, tasks: number): Promise<void> {
  const report = JSON.parse(await Deno.readTextFile(`${logDir}/last-report.json`)) as {
    entries: unknown[];
    totals: { exists: number };
  };
  if (report.entries.length !== tasks || report.totals.exists !== tasks) {
    throw new Error(
      `scale report: ${report.entries.length} entries, ${report.totals.exists} exists; ${tasks} expected`,
    );
  }
}

/**
 * Copy what the first namespace holds into the others on the token-auth destination, in the
 * registry's filesystem storage: a repository there is a tree of link files (tags, revisions,
 * layers) naming blobs that are stored once for the whole registry, so a copy of the tree is the
 * same repository under another name. distribution 2.8 keeps no cache in this configuration
 * (no `storage.cache`), so it serves the copies at once; {@link verifyFill} reads them back.
 */
async function fillByCopy(dest: TestRegistry, namespaces: string[]): Promise<void> {
  const root = `${dest.dataDir}/docker/registry/v2/repositories`;
  const [first, ...rest] = namespaces;
  await Deno.stat(`${root}/${first}`);
  await forEachLimited(rest, async (namespace) => {
    await Deno.remove(`${root}/${namespace}`, { recursive: true }).catch((error) => {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    });
    const out = await new Deno.Command("cp", {
      args: ["-R", `${root}/${first}`, `${root}/${namespace}`],
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!out.success) {
      throw new Error(`cp into ${namespace}: ${new TextDecoder().decode(out.stderr)}`);
    }
  }, { limit: 2 });
}

/**
 * Read the filled state back through the registry's API, so a wrong fill cannot pass as a no-op:
 * in every namespace, every repository's tag listing holds the corpus's tags (and `latest`), and a
 * manifest HEAD of one tag per repository answers with the digest the source has.
 */
async function verifyFill(
  src: TestRegistry,
  dest: TestRegistry,
  corpus: Corpus,
  namespaces: string[],
): Promise<void> {
  const challenge = await fetch(`${dest.url}/v2/`);
  await challenge.body?.cancel();
  const header = challenge.headers.get("www-authenticate") ?? "";
  const realm = /realm="([^"]+)"/.exec(header)?.[1];
  const service = /service="([^"]+)"/.exec(header)?.[1];
  if (!realm || !service) throw new Error(`no Bearer challenge from ${dest.host}: ${header}`);
  const basic = `Basic ${btoa(`${dest.username}:${dest.password}`)}`;
  const byRepository = new Map<string, string[]>();
  for (const image of corpus.images) {
    byRepository.set(image.repository, [...byRepository.get(image.repository) ?? [], image.tag]);
  }
  const digests = new Map<string, string>();
  for (const [repository, tags] of byRepository) {
    const res = await fetch(`${src.url}/v2/${repository}/manifests/${tags[0]}`, {
      method: "HEAD",
      headers: { accept: MANIFEST_ACCEPT },
    });
    await res.body?.cancel();
    const digest = res.headers.get("docker-content-digest");
    if (!res.ok || !digest) throw new Error(`HEAD ${repository}:${tags[0]} -> ${res.status}`);
    digests.set(repository, digest);
  }
  await forEachLimited(namespaces, async (namespace) => {
    const url = new URL(realm);
    url.searchParams.set("service", service);
    for (const repository of byRepository.keys()) {
      url.searchParams.append(
        "scope",
        `repository:${namespace}/${repository.split("/").pop()}:pull`,
      );
    }
    const tokenRes = await fetch(url, { headers: { authorization: basic } });
    if (!tokenRes.ok) throw new Error(`token for ${namespace}: ${tokenRes.status}`);
    const { token } = await tokenRes.json() as { token: string };
    const auth = { authorization: `Bearer ${token}` };
    for (const [repository, tags] of byRepository) {
      const name = `${namespace}/${repository.split("/").pop()}`;
      const list = await fetch(`${dest.url}/v2/${name}/tags/list`, { headers: auth });
      if (!list.ok) throw new Error(`scale fill: GET ${name} tags -> ${list.status}`);
      const listed = new Set(((await list.json()) as { tags?: string[] }).tags ?? []);
      const missing = [...tags, "latest"].filter((tag) => !listed.has(tag));
      if (missing.length > 0) {
        throw new Error(`scale fill: ${name} lacks ${missing.slice(0, 3).join(", ")}`);
      }
      const head = await fetch(`${dest.url}/v2/${name}/manifests/${tags[0]}`, {
        method: "HEAD",
        headers: { ...auth, accept: MANIFEST_ACCEPT },
      });
      await head.body?.cancel();
      const digest = head.headers.get("docker-content-digest");
      if (!head.ok || digest !== digests.get(repository)) {
        throw new Error(`scale fill: HEAD ${name}:${tags[0]} -> ${head.status} ${digest}`);
      }
    }
  }, { limit: 4 });
}
