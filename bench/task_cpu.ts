// deno-lint-ignore-file no-console
/**
 * bananna-bot's own CPU per no-op image x target task, apart from the registries': user + system
 * time of this process only (the machine is shared, so wall time says little). Three parts:
 *
 * - `http`: N manifest HEADs through the registry client (transport, token auth, retry) against a
 *   registry double in a child process (token auth: one 2 KB token per repository of 10 tags),
 *   next to the same N HEADs through fetch alone with the same headers: the difference is the
 *   client's own CPU per request.
 * - `log`: N IMAGE_ALREADY_EXISTS lines through the logger into a file, with a token per 10 lines
 *   registered as a secret (as a token-auth destination does).
 * - `plan`: buildPlan, runPlan and buildReport of N no-op tasks with a probe that finds every tag
 *   in place (no network).
 *
 * ```
 * deno run --allow-net=127.0.0.1 --allow-read --allow-write --allow-env --allow-run bench/task_cpu.ts 3000 5
 * ```
 *
 * @module
 */
import process from "node:process";
import type { ResolvedRegistry } from "../lib/config/schema.ts";
import { Secrets } from "../lib/log/redact.ts";
import { Logger } from "../lib/log/logger.ts";
import { logEvent } from "../lib/cli/mirror_output.ts";
import type { TaskResult } from "../lib/mirror/run_plan.ts";
import { parseReference } from "../lib/registry/reference.ts";
import { RegistryClient } from "../lib/registry/registry_client.ts";
import { forEachLimited } from "../lib/worker_pool.ts";
import { digest, noOpConfig, noOpPlan, noOpReport, noOpRun } from "./no_op_tasks.ts";
import { MANIFEST_ACCEPT } from "../lib/registry/manifest.ts";

const n = Number(Deno.args[0] ?? 3000);
const rounds = Number(Deno.args[1] ?? 3);
const parts = new Set((Deno.args[2] ?? "http,log,plan").split(","));
const CONCURRENCY = 16;

/** CPU (user + system) in ms of this process while `fn` runs. */
async function cpuOf(fn: () => Promise<void>): Promise<number> {
  const before = process.cpuUsage();
  await fn();
  const after = process.cpuUsage(before);
  return (after.user + after.system) / 1000;
}

/** Run jobs 0 to count - 1, `limit` at a time (the tool's own worker pool). */
function pool(count: number, limit: number, job: (i: number) => Promise<void>): Promise<void> {
  return forEachLimited(Array.from({ length: count }, (_, i) => i), job, { limit });
}

const SERVER = `
const token = "eyJ" + "x".repeat(2000);
const digest = "${digest}";
Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: ({ port }) => console.log(port) }, (req) => {
  const url = new URL(req.url);
  if (url.pathname === "/token") {
    return Response.json({ token: token + url.searchParams.get("scope"), expires_in: 3600 });
  }
  if (!req.headers.get("authorization")) {
    return new Response(null, { status: 401, headers: {
      "www-authenticate": 'Bearer realm="http://' + url.host + '/token",service="bench"',
    } });
  }
  return new Response(null, { status: 200, headers: {
    "docker-content-digest": digest,
    "content-type": "application/vnd.oci.image.manifest.v1+json",
    "content-length": "500",
  } });
});
`;

async function httpPart(): Promise<void> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", SERVER],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let first = "";
  while (!first.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error("the registry double did not start");
    first += value;
  }
  const port = Number(first.trim());
  const token = "Bearer eyJ" + "x".repeat(2000);
  const controller = new AbortController();
  try {
    const fetchAlone = () =>
      cpuOf(() =>
        pool(n, CONCURRENCY, async (i) => {
          const res = await fetch(
            `http://127.0.0.1:${port}/v2/ns/m${Math.floor(i / 10)}/manifests/1.${i % 10}`,
            {
              method: "HEAD",
              headers: { accept: MANIFEST_ACCEPT, authorization: token, "user-agent": "bench" },
              redirect: "manual",
              signal: controller.signal,
            },
          );
          await res.body?.cancel();
        })
      );
    const client = () =>
      cpuOf(async () => {
        const secrets = new Secrets();
        const c = new RegistryClient({ host: `127.0.0.1:${port}`, scheme: "http", secrets });
        await pool(n, CONCURRENCY, async (i) => {
          const head = await c.manifestHead(
            `ns/m${Math.floor(i / 10)}`,
            `1.${i % 10}`,
            controller.signal,
          );
          if (head?.digest !== digest) throw new Error("wrong answer");
        });
      });
    // Both unless one is asked for (`http-fetch`, `http-client`: one alone, for a CPU profile).
    const runFetch = !parts.has("http-client");
    const runClient = !parts.has("http-fetch");
    if (runFetch) await fetchAlone(); // warm-up
    if (runClient) await client();
    const a: number[] = [];
    const b: number[] = [];
    for (let r = 0; r < rounds; r++) {
      if (runFetch) a.push(await fetchAlone());
      if (runClient) b.push(await client());
    }
    if (runFetch) report("http: fetch alone", a);
    if (runClient) report("http: registry client", b);
  } finally {
    child.kill();
    await child.status;
  }
}

async function logPart(): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    const registries = {
      dst: { name: "dst", host: "dst.example", scheme: "https", kind: "registry" },
    } as unknown as Record<string, ResolvedRegistry>;
    const results: TaskResult[] = [];
    for (let i = 0; i < n; i++) {
      const source = parseReference(`src.example/many/m${Math.floor(i / 10) % 30}:1.${i % 10}`);
      results.push({
        status: "exists",
        digest,
        task: {
          id: i,
          source,
          target: "dst",
          destination: parseReference(
            `dst.example/ns${Math.floor(i / 300)}/m${Math.floor(i / 10) % 30}:1.${i % 10}`,
          ),
          comparedBy: "manifest",
        },
      } as unknown as TaskResult);
    }
    const once = async () => {
      const secrets = new Secrets();
      secrets.add("a-password");
      const logger = await Logger.open({
        settings: {
          level: "INFO",
          file: "bench.log",
          dir,
          rotationDays: 7,
          consoleOutput: false,
          keepArchives: 0,
        },
        secrets,
      });
      const cpu = await cpuOf(() => {
        for (let i = 0; i < n; i++) {
          if (i % 10 === 0) secrets.add(`eyJ${"x".repeat(2000)}${i}`);
          logEvent(logger, registries, { kind: "task-done", result: results[i] });
        }
        return Promise.resolve();
      });
      await logger.close();
      return cpu;
    };
    await once();
    const a: number[] = [];
    for (let r = 0; r < rounds; r++) a.push(await once());
    report("log: task lines", a);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function planPart(): Promise<void> {
  const k = Math.max(1, Math.round(n / 300));
  const config = noOpConfig(k);
  const once = () =>
    cpuOf(async () => {
      noOpReport(await noOpRun(await noOpPlan(config)));
    });
  await once();
  const a: number[] = [];
  for (let r = 0; r < rounds; r++) a.push(await once());
  report(`plan: plan + run + report (${k * 300} tasks)`, a, k * 300);
}

function report(what: string, cpuMs: number[], count = n): void {
  const sorted = [...cpuMs].sort((x, y) => x - y);
  const median = sorted[Math.floor(sorted.length / 2)];
  console.log(
    `${what}: ${(median * 1000 / count).toFixed(1)} µs per task (median of ${cpuMs.length}; ${
      sorted.map((ms) => ms.toFixed(0)).join(", ")
    } ms for ${count})`,
  );
}

if ([...parts].some((p) => p.startsWith("http"))) await httpPart();
if (parts.has("log")) await logPart();
if (parts.has("plan")) await planPart();
