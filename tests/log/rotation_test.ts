import assert from "node:assert/strict";
import { listArchives, rotateIfDue } from "../../lib/log/rotation.ts";

const DAY = 86_400_000;

async function sh(cmd: string, args: string[]): Promise<{ ok: boolean; out: string }> {
  const r = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  return { ok: r.success, out: new TextDecoder().decode(r.stdout) };
}

async function withDir(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "bb-rot-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function clockAt(start: number) {
  const clock = { now: start, fn: () => new Date(clock.now) };
  return clock;
}

const opts = (dir: string, clock: () => Date, extra = {}) => ({
  dir,
  file: "bananna-bot.log",
  rotationDays: 7,
  keepArchives: 0,
  clock,
  ...extra,
});

Deno.test("rotateIfDue() writes the marker on the first run and rotates nothing", () =>
  withDir(async (dir) => {
    const clock = clockAt(Date.UTC(2025, 9, 4, 4, 30, 15));
    await Deno.writeTextFile(`${dir}/bananna-bot.log`, "line\n");
    const result = await rotateIfDue(opts(dir, clock.fn));
    assert.deepEqual(result, { rotated: false, deleted: [] });
    assert.equal(
      (await Deno.readTextFile(`${dir}/.last_rotation`)).trim(),
      "2025-10-04T04:30:15.000Z",
    );
    assert.equal(await Deno.readTextFile(`${dir}/bananna-bot.log`), "line\n");
  }));

Deno.test("rotateIfDue() archives after rotationDays: real gzip -t and zcat agree", () =>
  withDir(async (dir) => {
    const clock = clockAt(Date.UTC(2025, 9, 4, 4, 30, 15));
    await rotateIfDue(opts(dir, clock.fn));
    const content = Array.from(
      { length: 2000 },
      (_, i) => `2025-10-04 04:30:15 [INFO] [SUCCESS] Op: line ${i}\n`,
    )
      .join("");
    await Deno.writeTextFile(`${dir}/bananna-bot.log`, content);
    clock.now += 6 * DAY;
    assert.equal((await rotateIfDue(opts(dir, clock.fn))).rotated, false);
    clock.now += 1 * DAY;
    const result = await rotateIfDue(opts(dir, clock.fn));
    assert.equal(result.rotated, true);
    assert.match(result.archive ?? "", /\/bananna-bot_\d{8}_\d{6}\.log\.gz$/);
    assert.ok((await sh("gzip", ["-t", result.archive ?? ""])).ok, "gzip -t");
    assert.equal((await sh("zcat", [result.archive ?? ""])).out, content);
    assert.equal(await Deno.readTextFile(`${dir}/bananna-bot.log`), "");
    assert.equal(
      (await Deno.readTextFile(`${dir}/.last_rotation`)).trim(),
      new Date(clock.now).toISOString(),
    );
  }));

Deno.test("rotateIfDue() keeps only keepArchives archives, deleting the oldest", () =>
  withDir(async (dir) => {
    const clock = clockAt(Date.UTC(2025, 0, 1));
    await rotateIfDue(opts(dir, clock.fn));
    const made: string[] = [];
    for (let i = 0; i < 4; i++) {
      await Deno.writeTextFile(`${dir}/bananna-bot.log`, `period ${i}\n`);
      clock.now += 8 * DAY;
      const r = await rotateIfDue(opts(dir, clock.fn, { keepArchives: 2 }));
      made.push(r.archive ?? "");
    }
    assert.deepEqual(await listArchives(dir, "bananna-bot.log"), made.slice(2));
    assert.equal((await sh("zcat", [made[3]])).out, "period 3\n");
  }));

Deno.test("rotateIfDue() after a crash right after the archive rename: one archive, no lost line", () =>
  withDir(async (dir) => {
    const clock = clockAt(Date.UTC(2025, 0, 1));
    await rotateIfDue(opts(dir, clock.fn));
    await Deno.writeTextFile(`${dir}/bananna-bot.log`, "precious\n");
    await Deno.writeTextFile(`${dir}/bananna-bot_20240101_000000.log.gz.tmp`, "half-written");
    clock.now += 8 * DAY;
    await assert.rejects(() =>
      rotateIfDue(opts(dir, clock.fn, {
        afterStep: (step: string) => {
          if (step === "archived") throw new Error("crash after the archive rename");
        },
      }))
    );
    // The log is intact and a complete archive exists.
    assert.equal(await Deno.readTextFile(`${dir}/bananna-bot.log`), "precious\n");
    const [archive] = await listArchives(dir, "bananna-bot.log");
    assert.equal((await sh("zcat", [archive])).out, "precious\n");
    // A line logged before the next start (a run refused the lock may append one).
    await Deno.writeTextFile(`${dir}/bananna-bot.log`, "after the crash\n", { append: true });
    // The next start finishes that rotation: no second archive, the archived line cut, the new kept.
    clock.now += 1000;
    const again = await rotateIfDue(opts(dir, clock.fn));
    assert.equal(again.rotated, true);
    assert.equal(again.resumed, true);
    assert.equal(again.archive, archive);
    assert.deepEqual(await listArchives(dir, "bananna-bot.log"), [archive]);
    assert.ok((await sh("gzip", ["-t", archive])).ok, "gzip -t");
    assert.equal((await sh("zcat", [archive])).out, "precious\n");
    assert.equal(await Deno.readTextFile(`${dir}/bananna-bot.log`), "after the crash\n");
    const names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assert.ok(!names.some((n) => n.endsWith(".tmp") || n === ".rotation.lock"), names.join());
    // The period restarts at the interrupted rotation: nothing more is due.
    assert.equal((await rotateIfDue(opts(dir, clock.fn))).rotated, false);
    assert.deepEqual(await listArchives(dir, "bananna-bot.log"), [archive]);
  }));

Deno.test("rotateIfDue() after a crash between the cut and the marker: new lines are not archived or cut", () =>
  withDir(async (dir) => {
    const clock = clockAt(Date.UTC(2025, 0, 1));
    await rotateIfDue(opts(dir, clock.fn));
    await Deno.writeTextFile(`${dir}/bananna-bot.log`, "old period\n");
    clock.now += 8 * DAY;
    await assert.rejects(() =>
      rotateIfDue(opts(dir, clock.fn, {
        afterStep: (step: string) => {
          if (step === "truncated") throw new Error("crash after the cut");
        },
      }))
    );
    await Deno.writeTextFile(`${dir}/bananna-bot.log`, "new period, longer than the old\n", {
      append: true,
    });
    clock.now += 1000;
    await rotateIfDue(opts(dir, clock.fn));
    const archives = await listArchives(dir, "bananna-bot.log");
    assert.equal(archives.length, 1);
    assert.equal((await sh("zcat", [archives[0]])).out, "old period\n");
    assert.equal(
      await Deno.readTextFile(`${dir}/bananna-bot.log`),
      "new period, longer than the old\n",
    );
  }));

Deno.test("rotateIfDue() after a crash before the archive rename: rotates afresh, one archive", () =>
  withDir(async (dir) => {
    const clock = clockAt(Date.UTC(2025, 0, 1));
    await rotateIfDue(opts(dir, clock.fn));
    await Deno.writeTextFile(`${dir}/bananna-bot.log`, "precious\n");
    clock.now += 8 * DAY;
    await assert.rejects(() =>
      rotateIfDue(opts(dir, clock.fn, {
        afterStep: (step: string) => {
          if (step === "pending") throw new Error("crash before the archive");
        },
      }))
    );
    assert.deepEqual(await listArchives(dir, "bananna-bot.log"), []);
    clock.now += 1000;
    const again = await rotateIfDue(opts(dir, clock.fn));
    assert.equal(again.rotated, true);
    assert.equal((await sh("zcat", [again.archive ?? ""])).out, "precious\n");
    assert.equal((await listArchives(dir, "bananna-bot.log")).length, 1);
    assert.equal(await Deno.readTextFile(`${dir}/bananna-bot.log`), "");
  }));

Deno.test("rotateIfDue() keeps a line another process appends while the archive is written", () =>
  withDir(async (dir) => {
    const clock = clockAt(Date.UTC(2025, 0, 1));
    await rotateIfDue(opts(dir, clock.fn));
    await Deno.writeTextFile(`${dir}/bananna-bot.log`, "archived\n");
    clock.now += 8 * DAY;
    const result = await rotateIfDue(opts(dir, clock.fn, {
      afterStep: (step: string) => {
        if (step === "archived") {
          Deno.writeTextFileSync(`${dir}/bananna-bot.log`, "meanwhile\n", { append: true });
        }
      },
    }));
    assert.equal((await sh("zcat", [result.archive ?? ""])).out, "archived\n");
    assert.equal(await Deno.readTextFile(`${dir}/bananna-bot.log`), "meanwhile\n");
  }));

Deno.test("rotateIfDue() never follows a symbolic link planted at the log, the marker or a temp", () =>
  withDir(async (dir) => {
    const outside = await Deno.makeTempFile();
    try {
      await Deno.writeTextFile(outside, "outside\n");
      const clock = clockAt(Date.UTC(2025, 0, 1));
      await Deno.symlink(outside, `${dir}/.last_rotation.tmp-${Deno.pid}`);
      await rotateIfDue(opts(dir, clock.fn));
      assert.equal(await Deno.readTextFile(outside), "outside\n");
      await Deno.writeTextFile(`${dir}/bananna-bot.log`, "line\n");
      clock.now += 8 * DAY;
      await Deno.symlink(outside, `${dir}/${stampedTemp(clock.now)}`);
      const result = await rotateIfDue(opts(dir, clock.fn));
      assert.equal(result.rotated, true);
      assert.equal(await Deno.readTextFile(outside), "outside\n");
      // A link as the log itself is refused, not archived or truncated.
      await Deno.remove(`${dir}/bananna-bot.log`);
      await Deno.symlink(outside, `${dir}/bananna-bot.log`);
      clock.now += 8 * DAY;
      await assert.rejects(() => rotateIfDue(opts(dir, clock.fn)), /symbolic link/);
      assert.equal(await Deno.readTextFile(outside), "outside\n");
    } finally {
      await Deno.remove(outside);
    }
  }));

/** The temp name the archive of a rotation at `ms` is first written to. */
function stampedTemp(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, "0");
  return `bananna-bot_${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}_${p(d.getHours())}${
    p(d.getMinutes())
  }${p(d.getSeconds())}.log.gz.tmp`;
}

Deno.test("rotateIfDue() called twice at once rotates exactly once", () =>
  withDir(async (dir) => {
    const clock = clockAt(Date.UTC(2025, 0, 1));
    await rotateIfDue(opts(dir, clock.fn));
    await Deno.writeTextFile(`${dir}/bananna-bot.log`, "x".repeat(200_000));
    clock.now += 8 * DAY;
    const results = await Promise.all([
      rotateIfDue(opts(dir, clock.fn)),
      rotateIfDue(opts(dir, clock.fn)),
    ]);
    assert.equal(results.filter((r) => r.rotated).length, 1);
    assert.equal((await listArchives(dir, "bananna-bot.log")).length, 1);
  }));
