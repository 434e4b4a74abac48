import assert from "node:assert/strict";
import { MirrorError } from "../../lib/errors.ts";
import { acquireRunLock, hostname } from "../../lib/mirror/run_lock.ts";

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

Deno.test("acquireRunLock(): two processes taking over one stale lock, exactly one wins (10 trials)", async () => {
  const contender = new URL("../support/lock_contender.ts", import.meta.url).pathname;
  const dead = new Deno.Command("true").spawn();
  await dead.status;
  const failures: string[] = [];
  for (let trial = 0; trial < 10; trial++) {
    const dir = await Deno.makeTempDir({ prefix: "bb-lock-" });
    const go = `${await Deno.makeTempDir({ prefix: "bb-go-" })}/go`;
    try {
      await Deno.writeTextFile(
        `${dir}/.bananna-bot.lock`,
        JSON.stringify({ pid: dead.pid, host: hostname(), started: new Date().toISOString() }),
      );
      const children = [0, 1].map(() =>
        new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "--frozen",
            "--allow-read",
            "--allow-write",
            "--allow-run",
            "--allow-env",
            contender,
            dir,
            go,
            "300",
          ],
          env: { HOSTNAME: hostname() },
          stdout: "piped",
          stderr: "piped",
        }).spawn()
      );
      const readers = children.map((c) => c.stdout.getReader());
      const decoder = new TextDecoder();
      const seen = ["", ""];
      // Both print "ready" (bounded: each read returns or the child ends), then go.
      for (let i = 0; i < 2; i++) {
        while (!seen[i].includes("ready\n")) {
          const { done, value } = await readers[i].read();
          if (done) break;
          seen[i] += decoder.decode(value);
        }
      }
      await Deno.writeTextFile(go, "");
      const outputs = await Promise.all(children.map(async (child, i) => {
        for (;;) {
          const { done, value } = await readers[i].read();
          if (done) break;
          seen[i] += decoder.decode(value);
        }
        const status = await child.status;
        const stderr = await new Response(child.stderr).text();
        assert.ok(status.success, stderr);
        return seen[i].replace("ready\n", "").trim();
      }));
      const winners = outputs.filter((o) => o.startsWith("won")).length;
      if (winners !== 1) failures.push(`trial ${trial}: ${outputs.join(" / ")}`);
      // The winner released its lock; nothing else (temp, guard) is left behind.
      const names = [...Deno.readDirSync(dir)].map((e) => e.name);
      assert.deepEqual(names, [], `trial ${trial}: left ${names.join()}`);
    } finally {
      await Deno.remove(dir, { recursive: true });
      await Deno.remove(go.replace(/\/go$/, ""), { recursive: true });
    }
  }
  assert.deepEqual(failures, [], "exactly one winner in every trial");
});

Deno.test("acquireRunLock() refuses a symbolic link planted as the lock, and never writes its target", async () => {
  const dir = await Deno.makeTempDir();
  const outside = await Deno.makeTempFile();
  try {
    await Deno.writeTextFile(outside, "outside\n");
    await Deno.symlink(outside, `${dir}/.bananna-bot.lock`);
    await assert.rejects(() => acquireRunLock(dir), (e: unknown) => {
      assert.ok(e instanceof MirrorError);
      assert.equal(e.code, "MIRROR_UNSAFE_PATH");
      assert.ok(e.message.includes(`${dir}/.bananna-bot.lock`), e.message);
      return true;
    });
    assert.equal(await Deno.readTextFile(outside), "outside\n");
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(outside);
  }
});
