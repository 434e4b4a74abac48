/**
 * lib/safe_file.ts's reader of files from outside: only a regular file (a link to one is fine),
 * never a device, FIFO or directory (also behind a link), never more than the cap, JSON checked
 * with a schema; every refusal a FileInputError naming the file. Each hostile case runs within a
 * deadline of its own, so a reader that blocks on a FIFO or reads /dev/zero forever fails.
 */
import assert from "node:assert/strict";
import { z } from "../lib/zod.ts";
import { MirrorError } from "../lib/errors.ts";
import {
  FileInputError,
  readFileCapped,
  readJsonFile,
  SafeDir,
  writeFileAtomic,
} from "../lib/safe_file.ts";
import { installWriteGuard } from "../lib/write_guard.ts";
import { within } from "./support/bounded.ts";

const what = "a test file";

async function refused(fn: () => Promise<unknown>, pattern: RegExp, missing = false) {
  await assert.rejects(fn, (e: unknown) => {
    assert.ok(e instanceof FileInputError, String(e));
    assert.match(e.message, pattern);
    assert.equal(e.missing, missing);
    return true;
  });
}

Deno.test("readFileCapped() reads only a regular file under its cap", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "bb-safe-read-" });
  try {
    await Deno.writeTextFile(`${dir}/ok.json`, '{"a":1}');
    await Deno.symlink(`${dir}/ok.json`, `${dir}/link.json`);
    await Deno.symlink("/dev/zero", `${dir}/zero.json`);
    await Deno.mkdir(`${dir}/sub`);
    await new Deno.Command("mkfifo", { args: [`${dir}/fifo.json`] }).output();
    await Deno.writeFile(`${dir}/big.json`, new Uint8Array(1025));
    await t.step("a regular file, and a link to one", async () => {
      for (const name of ["ok.json", "link.json"]) {
        const bytes = await readFileCapped(`${dir}/${name}`, { what, maxBytes: 1024 });
        assert.equal(new TextDecoder().decode(bytes), '{"a":1}');
      }
      const exact = await readFileCapped(`${dir}/big.json`, { what, maxBytes: 1025 });
      assert.equal(exact.length, 1025);
    });
    const rows: [string, string, RegExp, boolean][] = [
      ["missing", "none.json", /none\.json does not exist \(a test file\)/, true],
      [
        "a link to /dev/zero",
        "zero.json",
        /zero\.json \(a test file\) is a character device/,
        false,
      ],
      ["/dev/zero itself", "/dev/zero", /\/dev\/zero \(a test file\) is a character device/, false],
      ["a FIFO", "fifo.json", /fifo\.json \(a test file\) is a FIFO, not a regular file/, false],
      ["a directory", "sub", /sub \(a test file\) is a directory/, false],
      [
        "one byte over the cap",
        "big.json",
        /big\.json \(a test file\) has 1025 bytes or more, more than its 1024-byte cap/,
        false,
      ],
    ];
    for (const [name, file, pattern, missing] of rows) {
      await t.step(name, () =>
        within(5_000, name, () =>
          refused(
            () =>
              readFileCapped(file.startsWith("/") ? file : `${dir}/${file}`, {
                what,
                maxBytes: 1024,
              }),
            pattern,
            missing,
          )));
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readJsonFile() parses into the schema's type, naming the file and the field", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "bb-safe-json-" });
  const schema = z.object({
    count: z.number().check(z.int(), z.nonnegative()),
    names: z.array(z.string()),
  });
  try {
    const rows: [string, string, RegExp | { count: number; names: string[] }][] = [
      ["valid", '{"count":2,"names":["a"]}', { count: 2, names: ["a"] }],
      ["not JSON", "{", /x\.json is not JSON \(a test file was expected\)/],
      ["not UTF-8", "\xff", /x\.json is not JSON/],
      ["a negative count", '{"count":-1,"names":[]}', /x\.json is not a test file: count: /],
      ["a fraction", '{"count":1.5,"names":[]}', /x\.json is not a test file: count: /],
      ["a string count", '{"count":"7","names":[]}', /x\.json is not a test file: count: /],
      ["a null entry", '{"count":1,"names":[null]}', /x\.json is not a test file: names\.0: /],
    ];
    for (const [name, text, expected] of rows) {
      await t.step(name, async () => {
        const bytes = name === "not UTF-8"
          ? new Uint8Array([0x7b, 0xff, 0x7d])
          : new TextEncoder().encode(text);
        await Deno.writeFile(`${dir}/x.json`, bytes);
        const read = () => readJsonFile(`${dir}/x.json`, schema, { what, maxBytes: 1024 });
        if (expected instanceof RegExp) await refused(read, expected);
        else assert.deepEqual(await read(), expected);
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("SafeDir: the root resolved once, a link on the way refused, files written whole", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "bb-safe-dir-" });
  try {
    await Deno.mkdir(`${dir}/real`);
    await Deno.mkdir(`${dir}/elsewhere`);
    await Deno.symlink(`${dir}/real`, `${dir}/root-link`);
    await t.step("a root that is a link is resolved once and used", async () => {
      const safe = await SafeDir.create(`${dir}/root-link`, "a test tree");
      assert.equal(safe.root, await Deno.realPath(`${dir}/real`));
      await safe.writeFile("a/b", "f.json", "{}");
      assert.equal(await Deno.readTextFile(`${dir}/real/a/b/f.json`), "{}");
      assert.deepEqual([...Deno.readDirSync(`${dir}/real/a/b`)].map((e) => e.name), ["f.json"]);
    });
    for (const linked of ["a", "a/b"]) {
      await t.step(`${linked} is a link`, async () => {
        await Deno.remove(`${dir}/real/a`, { recursive: true });
        await Deno.mkdir(`${dir}/real/a`);
        if (linked === "a") await Deno.remove(`${dir}/real/a`);
        await Deno.symlink(`${dir}/elsewhere`, `${dir}/real/${linked}`);
        const safe = await SafeDir.create(`${dir}/real`, "a test tree");
        await assert.rejects(
          () => safe.writeFile("a/b", "f.json", "{}"),
          (e: unknown) =>
            e instanceof MirrorError && e.code === "MIRROR_UNSAFE_PATH" &&
            e.message.includes(`real/${linked} (in a test tree) is a symbolic link`),
        );
        assert.deepEqual([...Deno.readDirSync(`${dir}/elsewhere`)], []);
      });
    }
    await t.step("a file where a directory should be, and '..'", async () => {
      await Deno.remove(`${dir}/real/a`, { recursive: true });
      await Deno.writeTextFile(`${dir}/real/a`, "");
      const safe = await SafeDir.create(`${dir}/real`, "a test tree");
      await assert.rejects(() => safe.dir("a/b"), /real\/a \(in a test tree\) is not a directory/);
      await assert.rejects(() => safe.dir("../x"), /is not a plain name/);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("whole-file writes in lib/ go through writeFileAtomic: a rename only in the streamed writers", async () => {
  // Each of these streams its file (hashing or gzipping as it goes), fsyncs it and renames it
  // into place itself; every other file is written whole by writeFileAtomic.
  const streamed = new Set([
    "lib/safe_file.ts",
    "lib/log/rotation.ts", // the gzipped archive
    "lib/layout/oci_layout.ts", // a blob, verified while streaming
    "lib/layout/_part_files.ts", // a tar part, hashed while written
    "lib/layout/tar_parts_read.ts", // a checked part moved into staging
  ]);
  const found: string[] = [];
  const walk = async (dir: string) => {
    for await (const entry of Deno.readDir(dir)) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory) await walk(path);
      else if (path.endsWith(".ts") && !streamed.has(path)) {
        const text = await Deno.readTextFile(path);
        if (/Deno\.rename(Sync)?\(/.test(text)) found.push(path);
      }
    }
  };
  await walk("lib");
  assert.deepEqual(found, [], "rename-based writes outside writeFileAtomic");
});

Deno.test("writeFileAtomic() asks the write guard, except for the run lock's own file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bb-atomic-guard-" });
  try {
    using _guard = installWriteGuard((what) =>
      Promise.reject(new MirrorError("MIRROR_LOCK_LOST", `refused ${what}`))
    );
    await assert.rejects(
      () => writeFileAtomic(`${dir}/report.json`, "{}"),
      (e: unknown) => e instanceof MirrorError && e.code === "MIRROR_LOCK_LOST",
    );
    await writeFileAtomic(`${dir}/run.lock`, "lock\n", { guarded: false });
    assert.equal(await Deno.readTextFile(`${dir}/run.lock`), "lock\n");
    const names = [...Deno.readDirSync(dir)].map((e) => e.name);
    assert.deepEqual(names, ["run.lock"], "no report, no temp file left");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
