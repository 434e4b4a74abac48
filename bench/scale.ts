/**
 * The `scale` scenario: the growth curve of a no-op run with the task count. The `many` corpus
 * (300 tags) is mirrored into K namespaces of one token-auth destination (like Quay: a Bearer
 * token per repository scope), so a run has K x 300 image x target tasks. One untimed fill with
 * the largest K (bananna-bot fills the first namespace; the others get its blobs by
 * cross-repository mount and its manifests by PUT, which takes minutes instead of an hour), one
 * untimed no-op per K (the supply-chain memo is then warm),
 * then `runs` no-op runs per K, round-robin, with the defaults a user gets. skopeo sync is run
 * once per namespace at the largest K (it syncs into one destination prefix per call), its times
 * summed.
 *
 * The marginal cost of one more task is (median(K max) - median(K min)) / (tasks max - tasks min);
 * peak RSS is read at the largest K.
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
}): Promise<CaseResult[]> {
  const { src, corpus, workDir, log, denoFlags } = options;
  const ks = [...new Set(options.ks)].sort((a, b) => a - b);
  const maxK = ks[ks.length - 1];
  const per = corpus.images.length;
  await using dest = await startRegistry({ auth: "token" });
  const cases = ks.map((k): CaseResult => ({
    scenario: "scale no-op",
    tool: scaleTool(k * per),
    status: "ok",
    samples: [],
  }));
  const logDirs = new Map<number, string>();
  const run = (k: number, concurrency?: number) =>
    runBananna({
      src,
      dest,
      corpus,
      engine: "registry",
      concurrency,
      updateLatest: "default",
      namespaces: namespaces(k),
      logDir: logDirs.get(k) ?? `${workDir}/scale-fill`,
      workDir,
      denoFlags,
    });
  try {
    for (const k of ks) {
      logDirs.set(k, await Deno.makeTempDir({ dir: workDir, prefix: `scale-${k}-` }));
    }
    log(`scale: filling ${maxK} namespaces x ${per} tags (token auth)`);
    // The first namespace by bananna-bot, the others by mount + manifest PUT (minutes, not an hour).
    const started = performance.now();
    check(await run(1, 8), `scale fill (${per} tasks)`);
    await fillByMount(src, dest, corpus, namespaces(maxK));
    log(`  scale fill: ${((performance.now() - started) / 1000).toFixed(1)} s`);
    for (const k of ks) check(await run(k), `scale warm-up no-op (${k * per} tasks)`);
    for (let i = 0; i < options.runs; i++) {
      for (const [j, k] of ks.entries()) {
        const out = check(await run(k), `scale no-op (${k * per} tasks)`);
        cases[j].samples.push({ ms: out.ms, rssKb: out.rssKb, cpuMs: out.cpuMs });
        log(
          `  scale no-op ${k * per} tasks run ${i + 1}: ${(out.ms / 1000).toFixed(2)} s, ${
            ((out.rssKb ?? 0) / 1024).toFixed(0)
          } MB`,
        );
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
 * Copy what the first namespace holds into the others on the token-auth destination: each
 * repository's blobs mounted from `namespaces[0]`, each tag's manifest PUT (bytes from the source).
 */
async function fillByMount(
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
  const repos = [...new Set(corpus.images.map((i) => i.repository))];
  const manifests = new Map<string, { type: string; body: Uint8Array }>();
  for (const image of corpus.images) {
    const res = await fetch(`${src.url}/v2/${image.repository}/manifests/${image.tag}`, {
      headers: { accept: MANIFEST_ACCEPT },
    });
    if (!res.ok) throw new Error(`GET ${image.repository}:${image.tag} -> ${res.status}`);
    manifests.set(`${image.repository}:${image.tag}`, {
      type: res.headers.get("content-type") ?? "",
      body: new Uint8Array(await res.arrayBuffer()),
    });
  }
  const [first, ...rest] = namespaces;
  const work = rest.flatMap((namespace) => repos.map((repository) => ({ namespace, repository })));
  await forEachLimited(work, async ({ namespace, repository }) => {
    const name = repository.split("/").pop();
    const url = new URL(realm);
    url.searchParams.set("service", service);
    url.searchParams.append("scope", `repository:${namespace}/${name}:pull,push`);
    url.searchParams.append("scope", `repository:${first}/${name}:pull`);
    const tokenRes = await fetch(url, { headers: { authorization: basic } });
    if (!tokenRes.ok) throw new Error(`token for ${namespace}/${name}: ${tokenRes.status}`);
    const { token } = await tokenRes.json() as { token: string };
    const auth = { authorization: `Bearer ${token}` };
    for (const blob of corpus.blobs.filter((b) => b.repository === repository)) {
      const res = await fetch(
        `${dest.url}/v2/${namespace}/${name}/blobs/uploads/?mount=${blob.digest}&from=${first}/${name}`,
        { method: "POST", headers: auth },
      );
      await res.body?.cancel();
      if (res.status !== 201) {
        throw new Error(`mount ${blob.digest} into ${namespace}/${name}: ${res.status}`);
      }
    }
    for (const image of corpus.images.filter((i) => i.repository === repository)) {
      const m = manifests.get(`${repository}:${image.tag}`) as { type: string; body: Uint8Array };
      const res = await fetch(`${dest.url}/v2/${namespace}/${name}/manifests/${image.tag}`, {
        method: "PUT",
        headers: { ...auth, "content-type": m.type },
        body: m.body as Uint8Array<ArrayBuffer>,
      });
      await res.body?.cancel();
      if (res.status !== 201) {
        throw new Error(`PUT ${namespace}/${name}:${image.tag}: ${res.status}`);
      }
    }
  }, { limit: 8 });
}
