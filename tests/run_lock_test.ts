import assert from "node:assert/strict";
import { MirrorError } from "../lib/errors.ts";
import { acquireRunLock, hostname } from "../lib/run_lock.ts";

Deno.test("acquireRunLock() refuses a second run while the first holds the lock", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const first = await acquireRunLock(dir);
    await assert.rejects(() => acquireRunLock(dir), (e: unknown) => {
      assert.ok(e instanceof MirrorError);
      assert.equal(e.code, "MIRROR_LOCKED");
      assert.match(e.message, new RegExp(`pid ${Deno.pid}`));
      return true;
    });
    await first.release();
    const again = await acquireRunLock(dir);
    assert.equal(again.tookOverFrom, undefined);
    await again.release();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("acquireRunLock() takes over a lock whose process is gone, and says so", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // A real process that has exited: its pid is free.
    const child = new Deno.Command("true").spawn();
    await child.status;
    await Deno.writeTextFile(
      `${dir}/.bananna-bot.lock`,
      JSON.stringify({ pid: child.pid, host: hostname(), started: new Date().toISOString() }),
    );
    await using lock = await acquireRunLock(dir);
    assert.match(lock.tookOverFrom ?? "", new RegExp(`pid ${child.pid}`));
    const body = JSON.parse(await Deno.readTextFile(lock.path));
    assert.equal(body.pid, Deno.pid);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("acquireRunLock() takes over a lock older than staleAfterMs", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(
      `${dir}/.bananna-bot.lock`,
      JSON.stringify({ pid: Deno.pid, host: hostname(), started: "2020-01-01T00:00:00Z" }),
    );
    await using lock = await acquireRunLock(dir, { staleAfterMs: 1000 });
    assert.match(lock.tookOverFrom ?? "", /2020-01-01/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
