// deno-lint-ignore-file no-console
/**
 * `deno task bench:platforms` (also `deno task bench --only platforms`): a corpus of 4-platform
 * images (linux/amd64, arm64, ppc64le, s390x) mirrored with the registry engine
 *
 * - whole (no `platforms`) into distribution 2.8,
 * - `platforms: [linux/amd64]` sparse into distribution behind tests/support/sparse_registry.ts
 *   (a registry that keeps sparse indexes, as Quay with FEATURE_SPARSE_INDEX),
 * - `platforms: [linux/amd64]` rewrite into distribution 2.8,
 *
 * each cold (a fresh destination per run, round-robin), then twice as a no-op (the first fills the
 * memo). Reported per contender: median wall time, bytes uploaded (the report's `bytesUploaded`),
 * and for the second no-op the wall time and the requests the destination received (the first
 * no-op's requests too). Targets: bytes and time of one platform
 * close to a quarter of the whole copy; the no-op cost close to the whole copy's. Writes
 * bench/results/platforms-<date>.json.
 *
 * ```
 * deno task bench:platforms            # 8 images, 2 layers of 2 MiB per platform, 3 runs
 * deno task bench:platforms --quick    # 3 images, 256 KiB layers, 2 runs
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { pushTestImage } from "../tests/support/images.ts";
import { startRegistry, type TestRegistry } from "../tests/support/registry.ts";
import { type SparseRegistry, startSparseRegistry } from "../tests/support/sparse_registry.ts";
import { baseEnv, check, type RunResult, shippedV8Flags, timed } from "./tools.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    quick: { type: "boolean", default: false },
    runs: { type: "string" },
  },
});
const images = flags.quick ? 3 : 8;
const layerSize = flags.quick ? 256 * 1024 : 2 * 1024 * 1024;
const runs = Number(flags.runs ?? (flags.quick ? 2 : 3));
const ARCHITECTURES = ["amd64", "arm64", "ppc64le", "s390x"];
const workDir = await Deno.makeTempDir({ prefix: "bb-bench-platforms-" });
const log = (text: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${text}`);

type Mode = "whole" | "sparse" | "rewrite";
const MODES: Mode[] = ["whole", "sparse", "rewrite"];

interface Row {
  contender: string;
  coldMs: number[];
  bytes: number[];
  noopMs: number[];
  noopRequests: number[];
  firstNoopRequests: number[];
}

/** A fresh destination: distribution, behind the sparse proxy for `sparse`. */
async function destination(mode: Mode): Promise<{
  host: string;
  requests: () => Promise<number>;
  stop: () => Promise<void>;
}> {
  const reg: TestRegistry = await startRegistry();
  if (mode !== "sparse") {
    return {
      host: reg.host,
      requests: async () => (await reg.accessLog()).length,
      stop: () => reg.stop(),
    };
  }
  const proxy: SparseRegistry = startSparseRegistry(reg);
  return {
    host: proxy.host,
    requests: () => Promise.resolve(proxy.requests()),
    stop: async () => {
      await proxy.stop();
      await reg.stop();
    },
  };
}

function config(src: TestRegistry, host: string, mode: Mode, logDir: string): string {
  const operation: Record<string, unknown> = {
    engine: "registry",
    concurrency: 4,
    updateLatest: false,
    retryDelay: 1,
  };
  if (mode !== "whole") {
    operation.platforms = ["linux/amd64"];
    operation.platformsMode = mode;
  }
  const entries: Record<string, unknown> = {};
  for (let i = 0; i < images; i++) entries[`${src.host}/corpus/app${i}:1`] = { targets: ["dst"] };
  // JSON is YAML: the config loader reads it as such.
  return JSON.stringify({
    registries: { dst: { url: `http://${host}`, namespace: "bench", kind: "registry" } },
    operation,
    log: { dir: logDir },
    images: entries,
  });
}

async function mirror(file: string, report: string): Promise<RunResult & { bytes: number }> {
  const out = check(
    await timed("deno", [
      "run",
      "--frozen",
      ...shippedV8Flags(),
      "--allow-net",
      "--allow-read",
      "--allow-write",
      "--allow-env",
      "--allow-run",
      "main.ts",
      "mirror",
      "--config",
      file,
      "--non-interactive",
      "--report",
      report,
    ], { workDir, env: baseEnv() }),
    `mirror ${file}`,
  );
  const entries = JSON.parse(await Deno.readTextFile(report)).entries as {
    status: string;
    bytesUploaded: number;
  }[];
  const failed = entries.filter((e) => e.status === "failed");
  if (failed.length) throw new Error(`${file}: ${failed.length} failed`);
  return { ...out, bytes: entries.reduce((n, e) => n + e.bytesUploaded, 0) };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
}

async function main() {
  const src = await startRegistry();
  const rows = new Map<Mode, Row>(MODES.map((m) => [m, {
    contender: m === "whole" ? "every platform" : `linux/amd64 ${m}`,
    coldMs: [],
    bytes: [],
    noopMs: [],
    noopRequests: [],
    firstNoopRequests: [],
  }]));
  try {
    let corpusBytes = 0;
    for (let i = 0; i < images; i++) {
      const pushed = await pushTestImage(src, `corpus/app${i}:1`, {
        kind: "oci-index",
        seed: 900 + i,
        layerSize,
        architectures: ARCHITECTURES,
      });
      corpusBytes += pushed.bytes;
    }
    log(
      `corpus: ${images} images x ${ARCHITECTURES.length} platforms, ${
        (corpusBytes / 1e6).toFixed(1)
      } MB of blobs`,
    );
    for (let run = 0; run < runs; run++) {
      for (const mode of MODES) {
        const dst = await destination(mode);
        try {
          const logDir = await Deno.makeTempDir({ dir: workDir, prefix: "logs-" });
          const file = `${workDir}/${mode}-${run}.yaml`;
          await Deno.writeTextFile(file, config(src, dst.host, mode, logDir));
          const row = rows.get(mode) as Row;
          const cold = await mirror(file, `${workDir}/${mode}-${run}-cold.json`);
          row.coldMs.push(cold.ms);
          row.bytes.push(cold.bytes);
          // The first no-op fills the memo (what the tool learns once); the second is the cost a
          // scheduled run pays from then on: both counted, the second timed.
          const first = await dst.requests();
          await mirror(file, `${workDir}/${mode}-${run}-noop1.json`);
          const before = await dst.requests();
          row.firstNoopRequests.push(before - first);
          const noop = await mirror(file, `${workDir}/${mode}-${run}-noop.json`);
          if (noop.bytes !== 0) throw new Error(`${mode}: the no-op uploaded ${noop.bytes} bytes`);
          row.noopMs.push(noop.ms);
          row.noopRequests.push((await dst.requests()) - before);
          log(
            `  run ${run + 1} ${row.contender}: cold ${(cold.ms / 1000).toFixed(2)} s, ${
              (cold.bytes / 1e6).toFixed(1)
            } MB; no-op ${(noop.ms / 1000).toFixed(2)} s, ${
              row.noopRequests.at(-1)
            } requests (first ${row.firstNoopRequests.at(-1)})`,
          );
        } finally {
          await dst.stop();
        }
      }
    }
  } finally {
    await src.stop();
  }
  const whole = rows.get("whole") as Row;
  const summary = [...rows.values()].map((r) => ({
    contender: r.contender,
    coldSeconds: median(r.coldMs) / 1000,
    bytesUploaded: median(r.bytes),
    bytesVsWhole: median(r.bytes) / median(whole.bytes),
    timeVsWhole: median(r.coldMs) / median(whole.coldMs),
    noopSeconds: median(r.noopMs) / 1000,
    noopVsWhole: median(r.noopMs) / median(whole.noopMs),
    noopRequests: median(r.noopRequests),
    firstNoopRequests: median(r.firstNoopRequests),
  }));
  console.log(
    "\ncontender                cold s   MB up  bytes/whole  time/whole  no-op s  no-op/whole  no-op requests (first)",
  );
  for (const s of summary) {
    console.log(
      `${s.contender.padEnd(24)} ${s.coldSeconds.toFixed(2).padStart(6)} ${
        (s.bytesUploaded / 1e6).toFixed(1).padStart(7)
      } ${s.bytesVsWhole.toFixed(2).padStart(12)} ${s.timeVsWhole.toFixed(2).padStart(11)} ${
        s.noopSeconds.toFixed(2).padStart(8)
      } ${s.noopVsWhole.toFixed(2).padStart(12)} ${
        String(s.noopRequests).padStart(15)
      } (${s.firstNoopRequests})`,
    );
  }
  const file = new URL(
    `./results/platforms-${new Date().toISOString().slice(0, 10)}.json`,
    import.meta.url,
  );
  const rowsOut = [...rows.values()];
  await Deno.writeTextFile(
    file,
    JSON.stringify(
      { images, layerSize, platforms: ARCHITECTURES, runs, summary, rows: rowsOut },
      null,
      2,
    ) +
      "\n",
  );
  log(`written ${file.pathname}`);
  await Deno.remove(workDir, { recursive: true });
}

await main();
