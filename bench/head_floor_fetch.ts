// deno-lint-ignore-file no-console
/**
 * The `many` no-op's HEAD floor made with Deno's `fetch` instead of curl: the same HEADs (every
 * source tag, and every destination tag with the destination's Basic credentials), `parallel` at a
 * time per registry, both registries at once, and nothing else. It imports nothing from lib/, so
 * its time is Deno's start-up and fetch alone: what any tool written for this runtime pays for
 * these requests before it does anything of its own.
 *
 * ```
 * ACCEPT=... BENCH_DEST_USER=... BENCH_DEST_PASSWORD=... \
 *   deno run --allow-net --allow-read --allow-env bench/head_floor_fetch.ts <parallel> <source list> <destination list>
 * ```
 *
 * Each list holds one URL per line. The password comes from the environment, never from argv.
 * Exits 1 (naming the URL) when a HEAD does not answer 200 with a `Docker-Content-Digest`.
 *
 * @module
 */

const [parallelArg, sourceList, destinationList] = Deno.args;
const parallel = Number(parallelArg);
if (!Number.isInteger(parallel) || parallel < 1 || !sourceList || !destinationList) {
  throw new Error("usage: head_floor_fetch.ts <parallel> <source list> <destination list>");
}
const accept = Deno.env.get("ACCEPT") ?? "";
const user = Deno.env.get("BENCH_DEST_USER") ?? "";
const password = Deno.env.get("BENCH_DEST_PASSWORD") ?? "";

const urls = async (file: string) =>
  (await Deno.readTextFile(file)).split("\n").filter((line) => line !== "");

/** HEAD each URL, `parallel` at a time. */
async function heads(list: string[], headers: Record<string, string>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < list.length) {
      const url = list[next++];
      const res = await fetch(url, { method: "HEAD", headers });
      await res.body?.cancel();
      if (res.status !== 200 || !res.headers.get("docker-content-digest")) {
        throw new Error(`HEAD ${url}: ${res.status}`);
      }
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
}

try {
  await Promise.all([
    heads(await urls(sourceList), { accept }),
    heads(await urls(destinationList), {
      accept,
      authorization: `Basic ${btoa(`${user}:${password}`)}`,
    }),
  ]);
} catch (error) {
  console.error(error instanceof Error ? error.message : String(error));
  Deno.exit(1);
}
