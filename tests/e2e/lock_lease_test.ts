/**
 * The run lock's heartbeat with `main.ts mirror` as a subprocess: the lock of
 * a pod killed without SIGTERM (another host name, a heartbeat older than its lease) is taken
 * over with `MIRROR_LOCK_STALE` naming it; one whose heartbeat is fresh is held (`MIRROR_LOCKED`);
 * a real run's lock keeps a heartbeat that advances while a slow run is in progress; and a run
 * whose lock another pod took over logs `MIRROR_LOCK_LOST` and leaves that lock alone.
 */
import assert from "node:assert/strict";
import { stringify } from "yaml";
import { hostname } from "../../lib/mirror/run_lock.ts";
import { cliArgv, runCli } from "../support/cli.ts";
import { startFaultProxy } from "../support/fault_proxy.ts";
import { pushTestImage } from "../support/images.ts";
import { registryBinaryAvailable, startRegistry } from "../support/registry.ts";
import { registryTarget } from "../support/e2e_kit.ts";

const skip = registryBinaryAvailable() ? "" : " (ignored: docker-registry is not installed)";
const POD = "bananna-bot-29400150-x7k2q";

function podLock(renewedAgoMs: number, startedAgoMs = 20 * 60_000): string {
  return JSON.stringify({
    pid: 7,
    host: POD,
    started: new Date(Date.now() - startedAgoMs).toISOString(),
    token: "killed-pod-token",
    renewed: new Date(Date.now() - renewedAgoMs).toISOString(),
    leaseMs: 300_000,
  }) + "\n";
}

Deno.test({
  name:
    `run lock heartbeat: a killed pod's lock is taken over, a live one held, a run's heartbeat advances${skip}`,
  ignore: Boolean(skip),
  async fn(t) {
    await using src = await startRegistry();
    await using dst = await startRegistry();
    await pushTestImage(src, "team/app:1", { kind: "oci", seed: 81 });
    await pushTestImage(src, "team/web:1", { kind: "oci", seed: 82 });
    const dir = await Deno.makeTempDir({ prefix: "bb-lease-" });
    const lockPath = `${dir}/logs/.bananna-bot.lock`;
    const config = (host: string, log: Record<string, unknown> = {}, namespace = "m") =>
      stringify({
        registries: { dr: registryTarget(dst, { namespace }) },
        log: { dir: "./logs", ...log },
        operation: { engine: "registry", concurrency: 1, updateLatest: false },
        images: {
          [`${host}/team/app:1`]: { targets: ["dr"] },
          [`${host}/team/web:1`]: { targets: ["dr"] },
        },
      });
    const mirror = () =>
      runCli(["mirror", "--config", "config.yaml", "--non-interactive"], {
        cwd: dir,
        env: { HOSTNAME: hostname() },
        timeoutMs: 60_000,
      });
    const log = () => Deno.readTextFile(`${dir}/logs/bananna-bot.log`);
    try {
      await Deno.mkdir(`${dir}/logs`, { recursive: true });
      await Deno.writeTextFile(`${dir}/config.yaml`, config(src.host));

      await t.step("a pod's lock with a fresh heartbeat is held: MIRROR_LOCKED", async () => {
        // A run of 30 h that still beats: held (the 24 h rule is for locks without a heartbeat).
        const held = podLock(10_000, 30 * 3600_000);
        await Deno.writeTextFile(lockPath, held);
        const run = await mirror();
        assert.equal(run.code, 1, run.stdout + run.stderr);
        assert.match(await log(), new RegExp(`\\[MIRROR_LOCKED\\] .*pid 7 on ${POD}`));
        assert.equal(await Deno.readTextFile(lockPath), held);
      });

      await t.step("a killed pod's lock (heartbeat 6 min old) is taken over", async () => {
        await Deno.writeTextFile(lockPath, podLock(6 * 60_000));
        const run = await mirror();
        assert.equal(run.code, 0, run.stdout + run.stderr);
        assert.match(
          await log(),
          new RegExp(`\\[MIRROR_LOCK_STALE\\] .*Took over a stale lock from pid 7 on ${POD}`),
        );
        await assert.rejects(() => Deno.stat(lockPath), Deno.errors.NotFound);
      });

      const heartbeat = async (argv: string[], namespace: string) => {
        // Every blob GET takes 700 ms (into a new namespace: all copied): the run lasts seconds.
        await using slow = startFaultProxy(src, [
          { method: "GET", path: /\/blobs\//, times: 1000, fault: { kind: "delay", ms: 700 } },
        ]);
        await Deno.writeTextFile(
          `${dir}/config.yaml`,
          config(slow.host, { lockLease: 1 }, namespace),
        );
        const [cmd, ...args] = cliArgv(argv);
        const child = new Deno.Command(cmd, {
          args,
          cwd: dir,
          env: { HOSTNAME: hostname(), NO_COLOR: "1" },
          stdout: "piped",
          stderr: "piped",
        }).spawn();
        const read = async () => {
          const deadline = Date.now() + 20_000;
          while (Date.now() < deadline) {
            try {
              return JSON.parse(await Deno.readTextFile(lockPath));
            } catch {
              await new Promise((resolve) => setTimeout(resolve, 20));
            }
          }
          throw new Error("no lock file");
        };
        const first = await read();
        await new Promise((resolve) => setTimeout(resolve, 600));
        const later = await read();
        const out = await child.output();
        const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
        assert.equal(out.code, 0, text);
        assert.equal(slow.injected.delay >= 2, true, "the run was slow");
        assert.equal(first.leaseMs, 1000);
        assert.equal(later.token, first.token);
        assert.equal(later.host, hostname());
        assert.ok(
          Date.parse(later.renewed) - Date.parse(first.renewed) >= 300,
          `${first.renewed} -> ${later.renewed}`,
        );
        assert.doesNotMatch(await log(), /MIRROR_LOCK_LOST/);
        await assert.rejects(() => Deno.stat(lockPath), Deno.errors.NotFound);
      };
      await t.step("a real run's heartbeat advances while it runs (lease 1 s)", async () => {
        await heartbeat(["mirror", "--config", "config.yaml", "--non-interactive"], "fresh");
      });
      await t.step("export holds the same heartbeat lock (run_session.ts)", async () => {
        await heartbeat(
          ["export", "--config", "config.yaml", "--to", "export", "--non-interactive"],
          "export",
        );
      });

      await t.step(
        "a run whose lock was taken over logs MIRROR_LOCK_LOST and leaves it",
        async () => {
          await using slow = startFaultProxy(src, [
            { method: "GET", path: /\/blobs\//, times: 1000, fault: { kind: "delay", ms: 700 } },
          ]);
          await Deno.writeTextFile(
            `${dir}/config.yaml`,
            config(slow.host, { lockLease: 1 }, "lost"),
          );
          const [cmd, ...args] = cliArgv([
            "mirror",
            "--config",
            "config.yaml",
            "--non-interactive",
          ]);
          const child = new Deno.Command(cmd, {
            args,
            cwd: dir,
            env: { HOSTNAME: hostname(), NO_COLOR: "1" },
            stdout: "piped",
            stderr: "piped",
          }).spawn();
          const deadline = Date.now() + 20_000;
          while (!(await Deno.stat(lockPath).then(() => true, () => false))) {
            assert.ok(Date.now() < deadline, "no lock file");
            await new Promise((resolve) => setTimeout(resolve, 20));
          }
          // Another pod took it over (as if this run had stalled past its lease).
          const theirs = podLock(0);
          await Deno.writeTextFile(`${lockPath}.new`, theirs);
          await Deno.rename(`${lockPath}.new`, lockPath);
          const out = await child.output();
          const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
          // It stops at once with its own exit code (the paused-run test below shows it writes
          // nothing more).
          assert.equal(out.code, 3, text);
          assert.match(
            await log(),
            new RegExp(`\\[MIRROR_LOCK_LOST\\] .*taken over by pid 7 on ${POD}`),
          );
          assert.equal(await Deno.readTextFile(lockPath), theirs, "the new owner's lock is left");
          await Deno.remove(lockPath);
        },
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    `a run paused past its lease (SIGSTOP) loses the lock to the next run: resumed, it writes nothing and exits 3${skip}`,
  ignore: Boolean(skip),
  async fn() {
    const outer = AbortSignal.timeout(90_000);
    await using src = await startRegistry();
    await using dst = await startRegistry();
    const names = ["app", "web", "api", "db"];
    for (const [i, name] of names.entries()) {
      await pushTestImage(src, `team/${name}:1`, { kind: "oci", seed: 90 + i });
    }
    // Every source blob GET waits 300 ms: run A lasts seconds.
    await using slow = startFaultProxy(src, [
      { method: "GET", path: /\/blobs\//, times: 1000, fault: { kind: "delay", ms: 300 } },
    ]);
    const dir = await Deno.makeTempDir({ prefix: "bb-paused-" });
    const lockPath = `${dir}/logs/.bananna-bot.lock`;
    const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
    await Deno.writeTextFile(
      `${dir}/config.yaml`,
      stringify({
        registries: { dr: registryTarget(dst, { namespace: "m" }) },
        log: { dir: "./logs", lockLease: 1 },
        operation: { engine: "registry", concurrency: 1, updateLatest: true },
        images: Object.fromEntries(
          names.map((name) => [`${slow.host}/team/${name}:1`, { targets: ["dr"] }]),
        ),
      }),
    );
    const writes = (lines: string[]) =>
      lines.filter((line) => /^(PUT|POST|PATCH|DELETE) /.test(line));
    const [cmd, ...args] = cliArgv(["mirror", "--config", "config.yaml", "--non-interactive"]);
    const a = new Deno.Command(cmd, {
      args,
      cwd: dir,
      env: { HOSTNAME: hostname(), NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const killA = () => {
      try {
        a.kill("SIGKILL");
      } catch { /* ended */ }
    };
    outer.addEventListener("abort", killA);
    try {
      // A is under way: its first image is at the destination.
      const started = Date.now();
      while (!(await dst.accessLog()).some((l) => /^PUT \/v2\/.*\/manifests\/.* 201$/.test(l))) {
        assert.ok(Date.now() - started < 30_000, `run A pushed nothing: ${await dst.accessLog()}`);
        await sleep(20);
      }
      // Pause A (never inside a heartbeat, while it holds the takeover guard for a few ms).
      for (let tries = 0;; tries++) {
        a.kill("SIGSTOP");
        await sleep(50);
        if (!(await Deno.stat(`${lockPath}.takeover`).then(() => true, () => false))) break;
        assert.ok(tries < 20, "A always held the takeover guard");
        a.kill("SIGCONT");
        await sleep(30);
      }
      // Past its lease of 1 s, run B takes the lock over and mirrors the first image again.
      await sleep(1_500);
      const b = await runCli(
        ["mirror", "--config", "config.yaml", "--non-interactive", "--only", "*team/app:1"],
        { cwd: dir, env: { HOSTNAME: hostname() }, timeoutMs: 60_000 },
      );
      assert.equal(b.code, 0, b.stdout + b.stderr);
      const log = await Deno.readTextFile(`${dir}/logs/bananna-bot.log`);
      assert.match(log, /\[MIRROR_LOCK_STALE\] .*Took over a stale lock from pid/);
      const holdersReport = await Deno.readTextFile(`${dir}/logs/last-report.json`);
      await sleep(300); // the registry logs B's last requests
      const before = (await dst.accessLog()).length;

      a.kill("SIGCONT");
      const out = await a.output();
      const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
      const after = (await dst.accessLog()).slice(before);
      // The gate and the request are not one step: a request that passed the gate right before
      // SIGSTOP goes out when A resumes (seen once: the three upload sessions A had just opened
      // for its second image). An upload session stores nothing; every later write asks the gate
      // again and is refused, so no blob, manifest or tag lands.
      const inFlight = (line: string) => /^POST \/v2\/\S+\/blobs\/uploads\/\S* 202$/.test(line);
      assert.deepEqual(
        writes(after).filter((line) => / 2\d\d$/.test(line) && !inFlight(line)),
        [],
        `A wrote after it resumed:\n${after.join("\n")}\n${text}`,
      );
      // At most one image's blobs (two layers and a config) were in flight.
      assert.ok(writes(after).filter(inFlight).length <= 3, after.join("\n"));
      assert.equal(out.code, 3, text);
      assert.equal(
        await Deno.readTextFile(`${dir}/logs/last-report.json`),
        holdersReport,
        "A left the holder's report",
      );
      const aLog = (await Deno.readTextFile(`${dir}/logs/bananna-bot.log`)).slice(log.length);
      assert.match(aLog, /\[MIRROR_LOCK_LOST\] .*wrote nothing more .* exits 3/);
      assert.doesNotMatch(aLog, /MIRROR_COMPLETE|MIRROR_FAILED/);
      await assert.rejects(() => Deno.stat(lockPath), Deno.errors.NotFound, "A made no lock");
    } finally {
      outer.removeEventListener("abort", killA);
      killA();
      await a.status;
      await Deno.remove(dir, { recursive: true });
    }
  },
});
