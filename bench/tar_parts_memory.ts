/**
 * Memory and speed of lib/layout/tar_parts*.ts on one big blob: a layout with a single random
 * blob (default 1 GiB) is written as a tar (unsplit, then in parts) and read back, each step a
 * subprocess under `/usr/bin/time -v` with the same V8 flags as `deno task mirror`; peak RSS, wall
 * time and throughput are printed, with `sha256sum` of the blob as the floor (every step hashes
 * every byte once).
 *
 * ```
 * deno run --frozen --allow-read --allow-write --allow-run --allow-env bench/tar_parts_memory.ts [SIZE] [PART]
 * ```
 * SIZE and PART take part sizes (`1GiB`, `256MiB`); defaults 1GiB and 256MiB.
 *
 * @module
 */
// deno-lint-ignore-file no-console
import { createCipheriv } from "node:crypto";
import { parsePartSize, writeParts } from "../lib/layout/tar_parts.ts";
import { readParts } from "../lib/layout/tar_parts_read.ts";
import { check, shippedV8Flags, timed } from "./tools.ts";

const SELF = new URL(import.meta.url).pathname;
const DENO = [
  "run",
  "--frozen",
  ...shippedV8Flags(),
  "--allow-read",
  "--allow-write",
];

async function child(args: string[]): Promise<void> {
  const [op, from, to, part] = args;
  const partSize = part ? Number(part) : undefined;
  if (op === "write") {
    const { parts } = await writeParts(from, to, { partSize });
    await Deno.writeTextFile(`${to}/parts.json`, JSON.stringify(parts));
  } else {
    const parts = JSON.parse(await Deno.readTextFile(`${from}/parts.json`));
    const read = await readParts(`${from}/${parts[0].name}`, to, { parts });
    if (read.corruptParts.length > 0 || read.files.length !== 3) {
      throw new Error(`read back ${read.files.length} files, corrupt ${read.corruptParts}`);
    }
  }
}

/** A layout with one random blob of `size` bytes (AES-CTR of zeros, written in 1 MiB chunks). */
async function makeLayout(dir: string, size: number): Promise<void> {
  await Deno.mkdir(`${dir}/blobs/sha256`, { recursive: true });
  await Deno.writeTextFile(`${dir}/oci-layout`, '{"imageLayoutVersion":"1.0.0"}');
  await Deno.writeTextFile(`${dir}/index.json`, '{"schemaVersion":2,"manifests":[]}');
  const cipher = createCipheriv("aes-128-ctr", new Uint8Array(16), new Uint8Array(16));
  const file = await Deno.open(`${dir}/blobs/sha256/${"b".repeat(64)}`, {
    write: true,
    create: true,
    truncate: true,
  });
  const zeros = new Uint8Array(1 << 20);
  for (let left = size; left > 0; left -= zeros.length) {
    const chunk = cipher.update(zeros.subarray(0, Math.min(left, zeros.length)));
    let offset = 0;
    while (offset < chunk.length) offset += await file.write(chunk.subarray(offset));
  }
  file.close();
}

async function main(args: string[]): Promise<void> {
  if (args[0] === "--child") return await child(args.slice(1));
  const size = parsePartSize(args[0] ?? "1GiB");
  const part = parsePartSize(args[1] ?? "256MiB");
  const work = await Deno.makeTempDir({ prefix: "bb-tar-bench-" });
  try {
    await makeLayout(`${work}/layout`, size);
    const rows: string[][] = [];
    const row = (what: string, result: { ms: number; rssKb?: number }) =>
      rows.push([
        what,
        (result.ms / 1000).toFixed(1),
        (size / 2 ** 20 / (result.ms / 1000)).toFixed(0),
        result.rssKb ? (result.rssKb / 1024).toFixed(0) : "?",
      ]);
    const floor = check(
      await timed("sha256sum", [`${work}/layout/blobs/sha256/${"b".repeat(64)}`], {
        workDir: work,
      }),
      "sha256sum",
    );
    row("sha256sum of the blob (floor)", floor);
    for (
      const [name, partSize] of [["unsplit", ""], [`parts of ${args[1] ?? "256MiB"}`, String(part)]]
    ) {
      await Deno.mkdir(`${work}/out-${name}`);
      const write = await timed(
        "deno",
        [...DENO, SELF, "--child", "write", `${work}/layout`, `${work}/out-${name}`, partSize],
        { workDir: work },
      );
      row(`writeParts, ${name}`, check(write, `write ${name}`));
      const read = await timed(
        "deno",
        [...DENO, SELF, "--child", "read", `${work}/out-${name}`, `${work}/stage-${name}`],
        { workDir: work },
      );
      row(`readParts, ${name}`, check(read, `read ${name}`));
      await Deno.remove(`${work}/stage-${name}`, { recursive: true });
      await Deno.remove(`${work}/out-${name}`, { recursive: true });
    }
    console.log(`tar parts, one ${args[0] ?? "1GiB"} blob (${size} bytes)`);
    console.log(["step", "wall s", "MiB/s", "peak RSS MiB"].join(" | "));
    for (const r of rows) console.log(r.join(" | "));
  } finally {
    await Deno.remove(work, { recursive: true });
  }
}

if (import.meta.main) await main(Deno.args);
