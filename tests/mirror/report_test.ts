/**
 * The JSON report written in chunks: byte for byte what `JSON.stringify(report, null, 2)` gives,
 * one entry per chunk (a 15,000-entry report is never one string), and written whole through the
 * temp file and rename of safe_file.ts.
 */
import assert from "node:assert/strict";
import { type Report, type ReportEntry, reportJsonChunks } from "../../lib/mirror/report.ts";
import { TEXT_BUFFER_BYTES, writeFileAtomic, writeText } from "../../lib/safe_file.ts";

function entry(i: number): ReportEntry {
  return {
    source: `docker.io/library/app${i}:1.${i}`,
    target: "prod",
    destination: `quay.example/mirror/app${i}:1.${i}`,
    status: i % 3 === 0 ? "failed" : "exists",
    digest: i % 3 === 0 ? null : `sha256:${String(i).padStart(64, "0")}`,
    code: i % 3 === 0 ? "IMAGE_PULL_FAILED" : "IMAGE_ALREADY_EXISTS",
    error: i % 3 === 0 ? `"quoted" \\ back\nslash, ünïcödé ✓ ${i}` : null,
    comparedBy: "manifest",
    repo: null,
    bytesUploaded: 0,
    durationMs: i,
    signatures: 0,
    attestations: 0,
    sboms: 0,
    referrers: 0,
  };
}

function report(entries: number): Report {
  return {
    tool: "bananna-bot",
    version: "0.1.0",
    engine: "registry",
    config: "/etc/bananna/config.yaml",
    dryRun: false,
    interrupted: false,
    startedAt: "2026-12-04T10:00:00.000Z",
    endedAt: "2026-12-04T10:00:05.000Z",
    totals: { pushed: 0, exists: 2, drift: 0, failed: 1, deferred: 0, planned: 0, skipped: 0 },
    entries: Array.from({ length: entries }, (_, i) => entry(i)),
    pullBudget: [],
    latest: [{
      target: "prod",
      repository: "q/m/app",
      code: "IMAGE_LATEST_KEPT",
      tag: "1",
      message: "m",
    }],
    selection: [],
    shard: { index: 1, count: 3 },
    bandwidth: {
      bytesPerSecond: 1024,
      hosts: { "q.example": 2048 },
      downloadBytes: 1,
      uploadBytes: 2,
      waitedSeconds: 0.5,
    },
  };
}

Deno.test("reportJsonChunks() is JSON.stringify(report, null, 2) + newline, one entry per chunk", () => {
  for (const n of [0, 1, 3, 50]) {
    const chunks = [...reportJsonChunks(report(n))];
    assert.equal(chunks.join(""), JSON.stringify(report(n), null, 2) + "\n", `${n} entries`);
    const longest = Math.max(...chunks.map((c) => c.length));
    assert.ok(longest < 2_000, `${n} entries: a chunk of ${longest} characters`);
  }
});

Deno.test("writeFileAtomic() writes chunks whole, through a temp file, replacing the old file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bb-report-" });
  try {
    const path = `${dir}/last-report.json`;
    await Deno.writeTextFile(path, "old");
    await writeFileAtomic(path, reportJsonChunks(report(1000)));
    assert.deepEqual(JSON.parse(await Deno.readTextFile(path)), report(1000));
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["last-report.json"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a 15,000-entry report is one JSON document, written through one buffer", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bb-report-" });
  try {
    const path = `${dir}/last-report.json`;
    const big = report(15_000);
    await writeFileAtomic(path, reportJsonChunks(big));
    const text = await Deno.readTextFile(path);
    assert.equal(text, JSON.stringify(big, null, 2) + "\n");
    assert.equal((JSON.parse(text) as Report).entries.length, 15_000);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeText(): UTF-8 in writes of at most the buffer, no character split, short writes resumed", async () => {
  // Chunks that cross the buffer's end with 2-, 3- and 4-byte characters, and one longer than it.
  const chunks = [
    "a".repeat(TEXT_BUFFER_BYTES - 1),
    "ü✓😀",
    "x😀".repeat(TEXT_BUFFER_BYTES / 2),
    "",
    "end\n",
  ];
  const expected = new TextEncoder().encode(chunks.join(""));
  // A sink taking all it is given: buffer-sized writes, each ending on a character boundary.
  const whole: Uint8Array[] = [];
  await writeText({
    write(bytes) {
      whole.push(bytes.slice());
      return Promise.resolve(bytes.length);
    },
  }, chunks);
  assert.ok(whole.length >= 3, `${whole.length} writes`);
  for (const w of whole) {
    assert.ok(w.length <= TEXT_BUFFER_BYTES, `a write of ${w.length} bytes`);
    new TextDecoder("utf-8", { fatal: true }).decode(w);
  }
  assert.deepEqual(concat(whole), expected);
  // A sink that takes part of every third write, as a file write may: the rest is written next.
  const parts: Uint8Array[] = [];
  let calls = 0;
  await writeText({
    write(bytes) {
      const take = ++calls % 3 === 0 ? Math.ceil(bytes.length / 2) : bytes.length;
      parts.push(bytes.slice(0, take));
      return Promise.resolve(take);
    },
  }, chunks);
  assert.deepEqual(concat(parts), expected);
});

function concat(parts: Uint8Array[]): Uint8Array {
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  return all;
}
