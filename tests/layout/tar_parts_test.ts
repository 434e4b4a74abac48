/**
 * lib/layout/tar_parts.ts + tar_parts_read.ts on a generated layout whose byte offsets are
 * written out below (GNU tar's `-R` block numbers confirm them), with real tools as oracles:
 * `tar -tf`/`-xf` on the unsplit tar and on the concatenated parts, `sha256sum` for the part
 * checksums. The skopeo round trip (oci-archive:) is in tar_parts_skopeo_test.ts.
 */
import assert from "node:assert/strict";
import { parsePartSize, TarPartsError, writeParts } from "../../lib/layout/tar_parts.ts";
import { readParts } from "../../lib/layout/tar_parts_read.ts";
import { UsageError } from "../../lib/errors.ts";
import { runProcess } from "../support/process.ts";
import { PartReader } from "../../lib/layout/_part_files.ts";
import { within } from "../support/bounded.ts";

const PART = 4096;
const hex = (c: string) => c.repeat(64);
/**
 * Tar layout (512-byte blocks), part size 4096:
 *   0 oci-layout | 1024 blobs/ | 1536 blobs/sha256/ | 2048 blob 000 (0 B) | 2560 blob 111 (1 B)
 *   3584 blob 222 (4096 B: data 4096..8192 = exactly part 001) | 8192 blob 333 (12295 B: data
 *   8704..20999, parts 002-005) | 21504 blob 444 (100 B) | 22528 bananna-export.json |
 *   23552 index.json | 24576 end (1024 zero bytes) = 25600 bytes = 6 parts of 4096 + 1024.
 */
const BLOBS: [string, number][] = [
  [hex("0"), 0],
  [hex("1"), 1],
  [hex("2"), PART],
  [hex("3"), 3 * PART + 7],
  [hex("4"), 100],
];
const NAMES = [
  "oci-layout",
  "blobs/",
  "blobs/sha256/",
  ...BLOBS.map(([h]) => `blobs/sha256/${h}`),
  "bananna-export.json",
  "index.json",
];

function bytes(seed: number, size: number): Uint8Array {
  const out = new Uint8Array(size);
  let x = seed * 2654435761 + 1;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

async function makeLayout(dir: string): Promise<Map<string, Uint8Array>> {
  const files = new Map<string, Uint8Array>();
  const enc = new TextEncoder();
  files.set("oci-layout", enc.encode('{"imageLayoutVersion":"1.0.0"}'));
  BLOBS.forEach(([h, size], i) => files.set(`blobs/sha256/${h}`, bytes(i + 1, size)));
  files.set("bananna-export.json", enc.encode('{"tool":"bananna-bot"}\n'));
  files.set("index.json", enc.encode('{"schemaVersion":2,"manifests":[]}\n'));
  await Deno.mkdir(`${dir}/blobs/sha256`, { recursive: true });
  for (const [name, data] of files) await Deno.writeFile(`${dir}/${name}`, data);
  // never archived: a temp blob and a temp index of a writer that crashed
  await Deno.writeFile(`${dir}/blobs/sha256/${hex("5")}.tmp-1-ab`, bytes(9, 10));
  await Deno.writeFile(`${dir}/index.json.tmp-1-ab`, bytes(9, 10));
  return files;
}

async function sh(script: string, cwd: string) {
  const run = await runProcess("sh", ["-c", script], { cwd });
  assert.equal(run.code, 0, run.stderr);
  return run.stdout;
}

async function assertSameFiles(dir: string, files: Map<string, Uint8Array>) {
  for (const [name, data] of files) {
    assert.deepEqual(await Deno.readFile(`${dir}/${name}`), data, name);
  }
}

async function withDir(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "bb-tarparts-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("writeParts() without partSize: one tar that GNU tar lists and extracts, index.json last", async () => {
  await withDir(async (dir) => {
    const files = await makeLayout(`${dir}/layout`);
    await Deno.mkdir(`${dir}/out`);
    const result = await writeParts(`${dir}/layout`, `${dir}/out`);
    assert.equal(result.parts.length, 1);
    assert.equal(result.parts[0].name, "bananna-export.tar");
    assert.equal(result.parts[0].size, 25600);
    assert.equal(result.bytes, 25600);
    assert.deepEqual(result.entries, NAMES);
    assert.deepEqual(
      (await sh("tar -tf bananna-export.tar", `${dir}/out`)).trim().split("\n"),
      NAMES,
    );
    const blocks = (await sh("tar -tvRf bananna-export.tar", `${dir}/out`)).trim().split("\n");
    assert.deepEqual(
      blocks.map((line) => line.replace(/^block (\d+): \S+ (\S+) .* (\S+)$/, "$1 $2 $3")),
      [
        "0 0/0 oci-layout",
        "2 0/0 blobs/",
        "3 0/0 blobs/sha256/",
        `4 0/0 blobs/sha256/${hex("0")}`,
        `5 0/0 blobs/sha256/${hex("1")}`,
        `7 0/0 blobs/sha256/${hex("2")}`,
        `16 0/0 blobs/sha256/${hex("3")}`,
        `42 0/0 blobs/sha256/${hex("4")}`,
        "44 0/0 bananna-export.json",
        "46 0/0 index.json",
        "48 Block **", // GNU tar: "block 48: ** Block of NULs **"
      ],
    );
    assert.equal(
      `sha256:${(await sh("sha256sum bananna-export.tar", `${dir}/out`)).split(" ")[0]}`,
      result.parts[0].sha256,
    );
    await Deno.mkdir(`${dir}/x`);
    await sh(`tar -xf ${dir}/out/bananna-export.tar`, `${dir}/x`);
    await assertSameFiles(`${dir}/x`, files);
    assert.deepEqual([...Deno.readDirSync(`${dir}/out`)].map((e) => e.name), [
      "bananna-export.tar",
    ]);
  });
});

Deno.test("writeParts() with partSize: parts of exactly partSize (the last shorter), sha256 as sha256sum, cat | tar -t", async () => {
  await withDir(async (dir) => {
    await makeLayout(`${dir}/layout`);
    await Deno.mkdir(`${dir}/out`);
    const result = await writeParts(`${dir}/layout`, `${dir}/out`, { partSize: PART });
    assert.deepEqual(result.parts.map((p) => `${p.name} ${p.size}`), [
      "bananna-export.tar.000 4096",
      "bananna-export.tar.001 4096",
      "bananna-export.tar.002 4096",
      "bananna-export.tar.003 4096",
      "bananna-export.tar.004 4096",
      "bananna-export.tar.005 4096",
      "bananna-export.tar.006 1024",
    ]);
    const sums = await sh("sha256sum bananna-export.tar.*", `${dir}/out`);
    assert.deepEqual(
      sums.trim().split("\n").map((l) => `sha256:${l.replace(/\s+/, " ")}`),
      result.parts.map((p) => `${p.sha256} ${p.name}`),
    );
    assert.deepEqual(
      (await sh("cat bananna-export.tar.* | tar -tf -", `${dir}/out`)).trim().split("\n"),
      NAMES,
    );
    // a shorter re-write removes the stale higher parts; no temp file is left
    const again = await writeParts(`${dir}/layout`, `${dir}/out`, { partSize: 2 * PART });
    assert.equal(again.parts.length, 4);
    assert.deepEqual([...Deno.readDirSync(`${dir}/out`)].map((e) => e.name).sort(), [
      "bananna-export.tar.000",
      "bananna-export.tar.001",
      "bananna-export.tar.002",
      "bananna-export.tar.003",
    ]);
    // exclude leaves a top-level file out
    const without = await writeParts(`${dir}/layout`, `${dir}/out`, {
      exclude: ["bananna-export.json"],
    });
    assert.deepEqual(without.entries, NAMES.filter((n) => n !== "bananna-export.json"));
  });
});

Deno.test("readParts() round trip: every file back byte for byte, checksums compared", async () => {
  await withDir(async (dir) => {
    const files = await makeLayout(`${dir}/layout`);
    await Deno.mkdir(`${dir}/out`);
    const { parts } = await writeParts(`${dir}/layout`, `${dir}/out`, { partSize: PART });
    const read = await readParts(`${dir}/out/bananna-export.tar.000`, `${dir}/stage`, { parts });
    assert.deepEqual(read.corruptParts, []);
    assert.deepEqual([...read.affected], []);
    assert.deepEqual(read.files, NAMES.filter((n) => !n.endsWith("/")));
    assert.deepEqual(read.parts, parts);
    await assertSameFiles(`${dir}/stage`, files);
    // no temp file left; only the layout's names
    assert.deepEqual(
      (await sh("find . -type f | sort", `${dir}/stage`)).trim().split("\n"),
      NAMES.filter((n) => !n.endsWith("/")).map((n) => `./${n}`).sort(),
    );
    // expected sums as sha256sum prints them (no "sha256:") are accepted
    const bare = parts.map((p) => ({ ...p, sha256: p.sha256.replace(/^sha256:/, "") }));
    const again = await readParts(`${dir}/out/bananna-export.tar.000`, `${dir}/stage3`, {
      parts: bare,
    });
    assert.deepEqual(again.corruptParts, []);
    assert.deepEqual(again.parts, parts);
    // without the expected list: parts found by name, nothing compared
    const found = await readParts(`${dir}/out/bananna-export.tar.000`, `${dir}/stage2`);
    assert.deepEqual(found.parts, parts);
    await assertSameFiles(`${dir}/stage2`, files);
  });
});

Deno.test("readParts() with a 1-byte corruption: exactly that part is corrupt, only the files in it are left out", async (t) => {
  await withDir(async (dir) => {
    const files = await makeLayout(`${dir}/layout`);
    await Deno.mkdir(`${dir}/out`);
    const { parts } = await writeParts(`${dir}/layout`, `${dir}/out`, { partSize: PART });
    const b = (c: string) => `blobs/sha256/${hex(c)}`;
    const cases: [string, number, string[], string[]][] = [
      // [part, offset in the part, affected (named), files missing without a name]
      // part 001 is all of blob 222's data; blob 333 starts (header) at 8192, in part 002
      ["bananna-export.tar.001", 5000 - 4096, [b("2")], []],
      // part 002 holds blob 333's header and data only; blob 222 ends exactly where it starts
      ["bananna-export.tar.002", 10000 - 8192, [b("3")], []],
      // blob 333's header (name field) in part 002: the parser fails there and picks up again
      // at the next header after part 002 (blob 444 at 21504); 333 is simply not there
      ["bananna-export.tar.002", 10, [], [b("3")]],
      // blob 222's size field in part 000: what part 000 held is affected, 222 is lost, the
      // parser picks up at blob 333's header (8192)
      ["bananna-export.tar.000", 3584 + 124 + 3, ["oci-layout", b("0"), b("1")], [b("2")]],
      // the end-of-archive zeros in part 006: every file is fine
      ["bananna-export.tar.006", 100, [], []],
    ];
    for (const [name, offset, affected, lost] of cases) {
      await t.step(`${name} at +${offset}`, async () => {
        const path = `${dir}/out/${name}`;
        const original = await Deno.readFile(path);
        const broken = original.slice();
        broken[offset] ^= 0x01;
        await Deno.writeFile(path, broken);
        try {
          const stage = `${dir}/stage-${name}`;
          const read = await readParts(`${dir}/out/bananna-export.tar.000`, stage, { parts });
          assert.deepEqual(read.corruptParts, [name]);
          assert.deepEqual([...read.affected], affected);
          const kept = NAMES.filter((n) =>
            !n.endsWith("/") && !affected.includes(n) && !lost.includes(n)
          );
          assert.deepEqual(read.files, kept);
          await assertSameFiles(stage, new Map([...files].filter(([n]) => kept.includes(n))));
          for (const n of affected) {
            await assert.rejects(Deno.stat(`${stage}/${n}`), Deno.errors.NotFound);
          }
          assert.equal((await sh("find . -name '*.tmp-*' | wc -l", stage)).trim(), "0");
        } finally {
          await Deno.writeFile(path, original);
        }
      });
    }
  });
});

Deno.test("readParts() of bytes that are no tar is a format error naming the part", async () => {
  await withDir(async (dir) => {
    await Deno.writeFile(`${dir}/junk.tar`, bytes(7, 4096));
    await assert.rejects(
      readParts(`${dir}/junk.tar`, `${dir}/stage`),
      (e: unknown) =>
        e instanceof TarPartsError && e.problem === "format" && e.part === "junk.tar" &&
        /Cannot read the tar in part junk\.tar \(.*\): Invalid tar header/.test(e.message),
    );
  });
});

Deno.test("readParts() with a missing or truncated part fails before extracting anything, naming it", async () => {
  await withDir(async (dir) => {
    await makeLayout(`${dir}/layout`);
    await Deno.mkdir(`${dir}/out`);
    const { parts } = await writeParts(`${dir}/layout`, `${dir}/out`, { partSize: PART });
    await Deno.rename(`${dir}/out/bananna-export.tar.004`, `${dir}/004`);
    await assert.rejects(
      readParts(`${dir}/out/bananna-export.tar.000`, `${dir}/stage`, { parts }),
      (e: unknown) =>
        e instanceof TarPartsError && e.problem === "missing" &&
        e.part === "bananna-export.tar.004" &&
        /Part bananna-export\.tar\.004 missing in .*\/out \(7 expected\); nothing was extracted/
          .test(
            e.message,
          ),
    );
    await assert.rejects(Deno.stat(`${dir}/stage`), Deno.errors.NotFound);
    await Deno.rename(`${dir}/004`, `${dir}/out/bananna-export.tar.004`);
    await Deno.truncate(`${dir}/out/bananna-export.tar.003`, 4000);
    await assert.rejects(
      readParts(`${dir}/out/bananna-export.tar.000`, `${dir}/stage`, { parts }),
      (e: unknown) =>
        e instanceof TarPartsError && e.problem === "size" &&
        /Part bananna-export\.tar\.003 in .* has 4000 bytes, expected 4096/.test(e.message),
    );
    await assert.rejects(Deno.stat(`${dir}/stage`), Deno.errors.NotFound);
  });
});

Deno.test("readParts() refuses entries a layout never has (path escape, links)", async (t) => {
  await withDir(async (dir) => {
    await Deno.mkdir(`${dir}/src/blobs/sha256`, { recursive: true });
    await Deno.writeTextFile(`${dir}/src/evil`, "x");
    await Deno.symlink("/etc/passwd", `${dir}/src/link`);
    const rows: [string, RegExp][] = [
      [
        "tar -cf ../a.tar -P ../src/evil",
        /Tar entry "\.\.\/src\/evil" in part a\.tar has a name a layout never has/,
      ],
      ["tar -cf ../a.tar link", /Tar entry "link" in part a\.tar is a symlink/],
      [
        "tar -cf ../a.tar -P --transform 's,^evil,blobs/sha256/../../evil,' evil",
        /Tar entry "blobs\/sha256\/\.\.\/\.\.\/evil" in part a\.tar has a name a layout never has/,
      ],
    ];
    for (const [script, pattern] of rows) {
      await t.step(script, async () => {
        await sh(script, `${dir}/src`);
        await assert.rejects(
          readParts(`${dir}/a.tar`, `${dir}/stage`),
          (e: unknown) =>
            e instanceof TarPartsError && e.problem === "format" && pattern.test(e.message),
        );
        await assert.rejects(Deno.stat(`${dir}/evil`), Deno.errors.NotFound);
      });
    }
  });
});

Deno.test("writeParts() and readParts() stop on abort and leave no temp file", async () => {
  await withDir(async (dir) => {
    await Deno.mkdir(`${dir}/layout/blobs/sha256`, { recursive: true });
    await Deno.writeTextFile(`${dir}/layout/oci-layout`, '{"imageLayoutVersion":"1.0.0"}');
    await Deno.writeTextFile(`${dir}/layout/index.json`, '{"schemaVersion":2,"manifests":[]}');
    await Deno.writeFile(`${dir}/layout/blobs/sha256/${hex("a")}`, bytes(3, 48 * 1024 * 1024));
    const stop = new Error("stop");
    const write = new AbortController();
    const writing = writeParts(`${dir}/layout`, `${dir}/layout`, {
      partSize: 1024 * 1024,
      signal: write.signal,
    });
    setTimeout(() => write.abort(stop), 20);
    await assert.rejects(writing, (e: unknown) => e === stop);
    assert.equal((await sh("find . -name '*.tmp-*' | wc -l", `${dir}/layout`)).trim(), "0");
    // written into the layout dir itself: the parts are not archived into themselves
    const { parts, entries } = await writeParts(`${dir}/layout`, `${dir}/layout`, {
      partSize: 1024 * 1024,
    });
    assert.deepEqual(entries, [
      "oci-layout",
      "blobs/",
      "blobs/sha256/",
      `blobs/sha256/${hex("a")}`,
      "index.json",
    ]);
    const read = new AbortController();
    const reading = readParts(`${dir}/layout/${parts[0].name}`, `${dir}/stage`, {
      parts,
      signal: read.signal,
    });
    setTimeout(() => read.abort(stop), 20);
    await assert.rejects(reading, (e: unknown) => e === stop);
    assert.equal((await sh("find . -name '*.tmp-*' | wc -l", dir)).trim(), "0");
  });
});

Deno.test("writeParts() refuses what is no layout, links and bad part sizes, naming them", async (t) => {
  await withDir(async (dir) => {
    await makeLayout(`${dir}/layout`);
    await Deno.mkdir(`${dir}/out`);
    await t.step("index.json missing", async () => {
      await Deno.rename(`${dir}/layout/index.json`, `${dir}/index.json`);
      await assert.rejects(
        writeParts(`${dir}/layout`, `${dir}/out`),
        (e: unknown) =>
          e instanceof TarPartsError && e.problem === "layout" && e.part === "index.json" &&
          /\/layout\/index\.json is missing: not an OCI image layout/.test(e.message),
      );
      await Deno.rename(`${dir}/index.json`, `${dir}/layout/index.json`);
    });
    await t.step("a blob that is a symbolic link", async () => {
      const link = `${dir}/layout/blobs/sha256/${hex("9")}`;
      await Deno.symlink("/etc/hostname", link);
      await assert.rejects(
        writeParts(`${dir}/layout`, `${dir}/out`),
        (e: unknown) =>
          e instanceof TarPartsError && e.part === `blobs/sha256/${hex("9")}` &&
          /is not a regular file \(a link\?\): refused/.test(e.message),
      );
      await Deno.remove(link);
    });
    await t.step("a part size below 1024 bytes", async () => {
      await assert.rejects(
        writeParts(`${dir}/layout`, `${dir}/out`, { partSize: 100 }),
        (e: unknown) => e instanceof RangeError && /part size 100 must be/.test(e.message),
      );
    });
    assert.deepEqual([...Deno.readDirSync(`${dir}/out`)], []);
  });
});

Deno.test("writeParts()/readParts() round trip a sha512 blob (a PAX name past 100 bytes)", async () => {
  await withDir(async (dir) => {
    await makeLayout(`${dir}/layout`);
    await Deno.mkdir(`${dir}/layout/blobs/sha512`);
    const name = `blobs/sha512/${"c".repeat(128)}`;
    await Deno.writeFile(`${dir}/layout/${name}`, bytes(8, 700));
    await Deno.mkdir(`${dir}/out`);
    const { parts, entries } = await writeParts(`${dir}/layout`, `${dir}/out`, { partSize: PART });
    assert.ok(entries.includes(name));
    assert.match(await sh("cat bananna-export.tar.* | tar -tf -", `${dir}/out`), new RegExp(name));
    const read = await readParts(`${dir}/out/${parts[0].name}`, `${dir}/stage`, { parts });
    assert.ok(read.files.includes(name));
    assert.deepEqual(await Deno.readFile(`${dir}/stage/${name}`), bytes(8, 700));
  });
});

Deno.test("readParts() refuses an expected part name that is not a plain file name", async () => {
  await withDir(async (dir) => {
    await assert.rejects(
      readParts(`${dir}/a.tar`, `${dir}/stage`, {
        parts: [{ name: "../a.tar", size: 1024, sha256: "" }],
      }),
      (e: unknown) =>
        e instanceof TarPartsError && e.problem === "format" &&
        /Part name "\.\.\/a\.tar" is not a file name/.test(e.message),
    );
    await assert.rejects(Deno.stat(`${dir}/stage`), Deno.errors.NotFound);
  });
});

Deno.test("readParts(): a file system error in the staging dir is thrown as it is, not as a corrupt archive", async () => {
  await withDir(async (dir) => {
    await makeLayout(`${dir}/layout`);
    await Deno.mkdir(`${dir}/out`);
    const { parts } = await writeParts(`${dir}/layout`, `${dir}/out`, { partSize: PART });
    // corrupt part 002 so that resynchronising would be possible, and block blobs/ in the stage
    const path = `${dir}/out/bananna-export.tar.002`;
    const broken = await Deno.readFile(path);
    broken[10] ^= 1;
    await Deno.writeFile(path, broken);
    await Deno.mkdir(`${dir}/stage`);
    await Deno.writeTextFile(`${dir}/stage/blobs`, "not a directory");
    await assert.rejects(
      readParts(`${dir}/out/bananna-export.tar.000`, `${dir}/stage`, { parts }),
      (e: unknown) =>
        !(e instanceof TarPartsError) && e instanceof Error && /blobs/.test(e.message),
    );
  });
});

Deno.test("parsePartSize() reads bytes and units; refuses the rest naming the value", async (t) => {
  const good: [string | number, number][] = [
    ["4GiB", 4 * 1024 ** 3],
    ["500MiB", 500 * 1024 ** 2],
    ["1G", 1_000_000_000],
    ["4g", 4_000_000_000],
    ["1.5Gi", 1.5 * 1024 ** 3],
    ["2048", 2048],
    [1048576, 1048576],
    ["10 KB", 10_000],
    ["1TiB", 1024 ** 4],
  ];
  for (const [input, expected] of good) {
    await t.step(`${input}`, () => assert.equal(parsePartSize(input), expected));
  }
  const bad: [string | number, RegExp][] = [
    ["", /--part-size "" is not a size/],
    ["4 GiBs", /--part-size "4 GiBs" is not a size/],
    ["-1G", /is not a size/],
    ["1e9", /is not a size/],
    ["100", /--part-size "100" is 100 bytes: a part holds 1024 bytes at least/],
    [0, /is 0 bytes/],
    ["99999999TiB", /is too large/],
  ];
  for (const [input, pattern] of bad) {
    await t.step(`refuses ${JSON.stringify(input)}`, () => {
      assert.throws(
        () => parsePartSize(input),
        (e: unknown) => e instanceof UsageError && pattern.test(e.message),
      );
    });
  }
});

// Before: hashUpTo read a part until its end, so a part swapped for a link to /dev/zero after its
// size was checked was hashed until the step's deadline.
Deno.test("PartReader.hashUpTo(): a part that became /dev/zero after its size check stops at once", async () => {
  await within(10_000, "a part swapped for /dev/zero", async () => {
    const dir = await Deno.makeTempDir({ prefix: "bb-part-zero-" });
    try {
      await Deno.symlink("/dev/zero", `${dir}/bananna-export.tar.000`);
      const reader = new PartReader(dir, [{
        name: "bananna-export.tar.000",
        size: 1024,
        sha256: `sha256:${"0".repeat(64)}`,
      }], { onHashed: () => Promise.resolve() });
      await assert.rejects(
        () => reader.hashUpTo(0),
        /Part bananna-export\.tar\.000 changed while being read \(\d+ bytes or more, expected 1024\)/,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
});
