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
    const release = go.replace(/\/go$/, "/release");
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
            release,
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
      // Both said won or locked before the winner lets go (bounded like the reads above).
      for (let i = 0; i < 2; i++) {
        while (!/ready\n\S/.test(seen[i])) {
          const { done, value } = await readers[i].read();
          if (done) break;
          seen[i] += decoder.decode(value);
        }
      }
      await Deno.writeTextFile(release, "");
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

/** A lock as another pod (another host name) wrote it. */
function otherHostLock(fields: Record<string, unknown>): string {
  return JSON.stringify({
    pid: 4242,
    host: "bananna-bot-28800000-abcde",
    started: "2026-11-29T02:30:00.000Z",
    token: "other-token",
    ...fields,
  });
}

Deno.test("acquireRunLock(): another host's lock with a fresh heartbeat is held", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // Started a day and a half ago: a long run that still beats is not stale.
    const text = otherHostLock({
      started: new Date(Date.now() - 36 * 3600_000).toISOString(),
      renewed: new Date(Date.now() - 1000).toISOString(),
      leaseMs: 60_000,
    });
    await Deno.writeTextFile(`${dir}/.bananna-bot.lock`, text);
    await assert.rejects(() => acquireRunLock(dir, { leaseMs: 60_000 }), (e: unknown) => {
      assert.ok(e instanceof MirrorError);
      assert.equal(e.code, "MIRROR_LOCKED");
      assert.match(e.message, /pid 4242 on bananna-bot-28800000-abcde/);
      return true;
    });
    assert.equal(await Deno.readTextFile(`${dir}/.bananna-bot.lock`), text);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("acquireRunLock(): another host's lock whose heartbeat is older than its lease is taken over", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // Started 10 minutes ago (far below the 24 h rule), last heartbeat 2 minutes ago, lease 1 min.
    await Deno.writeTextFile(
      `${dir}/.bananna-bot.lock`,
      otherHostLock({
        started: new Date(Date.now() - 600_000).toISOString(),
        renewed: "2026-11-29T02:31:00.000Z",
        leaseMs: 60_000,
      }),
    );
    await using lock = await acquireRunLock(dir);
    assert.match(
      lock.tookOverFrom ?? "",
      /^pid 4242 on bananna-bot-28800000-abcde, started .*, last heartbeat 2026-11-29T02:31:00.000Z$/,
    );
    const body = JSON.parse(await Deno.readTextFile(lock.path));
    assert.equal(body.pid, Deno.pid);
    assert.equal(body.leaseMs, 300_000);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("acquireRunLock(): a heartbeat lock without its own lease is judged by the reader's", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const text = otherHostLock({
      started: new Date(Date.now() - 60_000).toISOString(),
      renewed: new Date(Date.now() - 30_000).toISOString(),
    });
    await Deno.writeTextFile(`${dir}/.bananna-bot.lock`, text);
    await assert.rejects(() => acquireRunLock(dir, { leaseMs: 60_000 }), /MIRROR_LOCKED|holds/);
    await using lock = await acquireRunLock(dir, { leaseMs: 10_000 });
    assert.match(lock.tookOverFrom ?? "", /bananna-bot-28800000-abcde/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("acquireRunLock(): an old-format lock (no heartbeat) from another host keeps the 24 h rule", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const text = JSON.stringify({
      pid: 4242,
      host: "old-pod",
      started: new Date(Date.now() - 3600_000).toISOString(),
    });
    await Deno.writeTextFile(`${dir}/.bananna-bot.lock`, text);
    // An hour old, lease 1 s: still held (no heartbeat to judge by).
    await assert.rejects(() => acquireRunLock(dir, { leaseMs: 1000 }), /old-pod/);
    assert.equal(await Deno.readTextFile(`${dir}/.bananna-bot.lock`), text);
    await using lock = await acquireRunLock(dir, { staleAfterMs: 1800_000 });
    assert.match(lock.tookOverFrom ?? "", /pid 4242 on old-pod/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("acquireRunLock(): same host and a dead pid is stale at once, even with a fresh heartbeat", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const child = new Deno.Command("true").spawn();
    await child.status;
    const now = new Date().toISOString();
    await Deno.writeTextFile(
      `${dir}/.bananna-bot.lock`,
      JSON.stringify({
        pid: child.pid,
        host: hostname(),
        started: now,
        renewed: now,
        leaseMs: 3600_000,
      }),
    );
    await using lock = await acquireRunLock(dir);
    assert.match(lock.tookOverFrom ?? "", new RegExp(`pid ${child.pid}`));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("acquireRunLock(): the holder's heartbeat advances `renewed`; release stops it and removes the lock", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const lock = await acquireRunLock(dir, { leaseMs: 2000, heartbeatMs: 50 });
    const first = JSON.parse(await Deno.readTextFile(lock.path));
    assert.equal(first.renewed, first.started);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const later = JSON.parse(await Deno.readTextFile(lock.path));
    assert.equal(later.token, first.token);
    assert.equal(later.started, first.started);
    assert.ok(Date.parse(later.renewed) >= Date.parse(first.renewed) + 150, later.renewed);
    // Nothing but the lock in the dir (no temp file, no guard left between beats).
    await lock.release();
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), []);
    // Stopped: no beat puts it back.
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("acquireRunLock(): a holder whose lock was taken over says so at its next heartbeat and leaves the new lock alone", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const lock = await acquireRunLock(dir, { leaseMs: 2000, heartbeatMs: 50 });
    const events: string[] = [];
    lock.watch((event) => events.push(`${event.kind}: ${event.message}`));
    const theirs = otherHostLock({ renewed: "2026-11-30T06:00:00.000Z", leaseMs: 300_000 });
    await Deno.writeTextFile(`${lock.path}.x`, theirs);
    await Deno.rename(`${lock.path}.x`, lock.path);
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(events.length, 1, events.join("\n"));
    assert.match(
      events[0],
      /^lost: The run lock .* was taken over by pid 4242 on bananna-bot-28800000-abcde/,
    );
    await lock.release();
    assert.equal(await Deno.readTextFile(lock.path), theirs);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("acquireRunLock(): the heartbeat timer does not keep a process alive", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const module = new URL("../../lib/mirror/run_lock.ts", import.meta.url).href;
    // Takes the lock and returns without releasing it: the process must end on its own.
    const code = `import { acquireRunLock } from "${module}";
      await acquireRunLock(${JSON.stringify(dir)}, { heartbeatMs: 20 });
      console.log("taken");`;
    const child = new Deno.Command(Deno.execPath(), {
      args: ["eval", "--frozen", "--allow-all", code],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
    const out = await child.output();
    clearTimeout(timer);
    assert.equal(out.signal, null, "ended on its own, not killed after 15 s");
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    assert.equal(new TextDecoder().decode(out.stdout).trim(), "taken");
    // What a killed run leaves: the lock, with this run's heartbeat in it.
    const body = JSON.parse(await Deno.readTextFile(`${dir}/.bananna-bot.lock`));
    assert.equal(typeof body.renewed, "string");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("RunLock.verify(): passes while fresh, renews when stale, throws MIRROR_LOCK_LOST once taken", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // A heartbeat far beyond the test: only verify() renews.
    const lock = await acquireRunLock(dir, { leaseMs: 400, heartbeatMs: 60_000 });
    const path = `${dir}/.bananna-bot.lock`;
    const renewed = async () => JSON.parse(await Deno.readTextFile(path)).renewed;
    const first = await renewed();
    await lock.verify("a manifest PUT"); // fresh: nothing read or written
    assert.equal(await renewed(), first);
    await new Promise((resolve) => setTimeout(resolve, 250)); // older than half the lease
    await lock.verify("a manifest PUT");
    assert.notEqual(await renewed(), first, "renewed before the write");
    assert.equal(lock.lost, false);
    const events: string[] = [];
    lock.watch((event) => events.push(event.kind));
    // Another run took it over (this one was paused past its lease).
    const theirs = JSON.stringify({
      pid: 7,
      host: "other-pod",
      started: new Date().toISOString(),
      token: "theirs",
      renewed: new Date().toISOString(),
      leaseMs: 400,
    });
    await Deno.writeTextFile(path, theirs);
    await new Promise((resolve) => setTimeout(resolve, 250));
    for (let i = 0; i < 2; i++) {
      await assert.rejects(() => lock.verify("the report"), (e: unknown) => {
        assert.ok(e instanceof MirrorError);
        assert.equal(e.code, "MIRROR_LOCK_LOST");
        assert.match(e.message, /taken over by pid 7 on other-pod/);
        return true;
      });
    }
    assert.equal(lock.lost, true);
    assert.deepEqual(events, ["lost"]);
    await lock.release();
    assert.equal(await Deno.readTextFile(path), theirs, "their lock is left alone");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
