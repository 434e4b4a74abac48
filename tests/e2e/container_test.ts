/**
 * The Containerfile, built and run for real with a test dockerd (vfs): the base is made from the
 * installed Deno binary (`--build-arg BASE=`, no registry), the build runs with `--network none`
 * (npm packages from a Deno cache in the context, as the Containerfile documents), and the image
 * runs as OpenShift's restricted SCC runs it: `--user 123456:0 --read-only --tmpfs /tmp`, the
 * config mounted read-only (once as a file, once as kubelet mounts a ConfigMap: symbolic links to
 * `..data/`), logs, state, lock and report in the volume. `validate` exits 0, a real `mirror`
 * (the image's default command) lands images with the source digests, and a re-run is a no-op.
 */
import assert from "node:assert/strict";
import { stringify } from "yaml";
import type { Report } from "../../lib/mirror/report.ts";
import { ROOT } from "../support/cli.ts";
import { importDenoBase, makeBuildContext } from "../support/container_build.ts";
import { dockerdAvailability, runDocker, startDockerd, which } from "../support/dockerd.ts";
import { headDigest, pushTestImage } from "../support/images.ts";
import { freePort, registryBinaryAvailable, startRegistry } from "../support/registry.ts";
import { registryTarget } from "../support/e2e_kit.ts";

const availability = await dockerdAvailability();
const why = !registryBinaryAvailable()
  ? " (ignored: docker-registry is not installed)"
  : !availability.ok
  ? ` (ignored: ${availability.reason})`
  : !which("git") || !which("ldd") || !which("tar")
  ? " (ignored: git, ldd or tar missing)"
  : "";

const UID = 123456;
const IMAGE = `bb-container-test:${crypto.randomUUID().slice(0, 8)}`;

/** The permission flags of `deno task mirror`, read from deno.json. */
async function mirrorTaskFlags(): Promise<string[]> {
  const json = JSON.parse(await Deno.readTextFile(`${ROOT}/deno.json`));
  return (json.tasks.mirror as string).split(/\s+/).filter((a) => a.startsWith("--allow"));
}

Deno.test({
  name:
    `Containerfile: offline build, then validate and mirror as UID ${UID}:0 on a read-only root${why}`,
  ignore: Boolean(why),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    await using dockerd = await startDockerd();
    await using src = await startRegistry();
    await using dst = await startRegistry({ auth: "htpasswd" });
    const work = await Deno.makeTempDir({ dir: "/tmp", prefix: "bb-container-" });
    const docker = (args: string[], env: Record<string, string> = {}) =>
      runDocker(args, { env: { ...Deno.env.toObject(), ...dockerd.env, ...env } });
    // The run's volume: owned by root, writable by group 0 (as OpenShift's fsGroup makes a PVC).
    const data = `${work}/data`;
    await Deno.mkdir(data);
    await Deno.chmod(data, 0o775);
    const run = (
      args: string[],
      options: { volume?: boolean; readOnly?: boolean; env?: Record<string, string> } = {},
    ) =>
      docker([
        "run",
        "--rm",
        "--user",
        `${UID}:0`,
        ...(options.readOnly === false ? [] : ["--read-only"]),
        "--tmpfs",
        "/tmp",
        "--network",
        "host",
        ...(options.volume === false ? [] : ["-v", `${data}:/var/lib/bananna-bot`]),
        ...Object.keys(options.env ?? {}).flatMap((name) => ["-e", name]),
        ...args,
      ], options.env);
    try {
      await t.step("build with --network none from a base made of the installed deno", async () => {
        await importDenoBase(docker, { work, tag: "bb-deno-base:test" });
        const context = await makeBuildContext(work);
        const started = Date.now();
        const build = await docker([
          "build",
          "--network",
          "none",
          "-f",
          "Containerfile",
          "--build-arg",
          "BASE=bb-deno-base:test",
          "-t",
          IMAGE,
          context,
        ]);
        assert.equal(build.code, 0, build.stdout + build.stderr);
        // deno-lint-ignore no-console
        console.log(`    build: ${((Date.now() - started) / 1000).toFixed(1)} s`);
        const inspect = await docker(["image", "inspect", IMAGE, "--format", "{{json .Config}}"]);
        const config = JSON.parse(inspect.stdout);
        assert.equal(config.User, "1001");
        assert.deepEqual(config.Cmd, [
          "mirror",
          "--config",
          "/etc/bananna-bot/config.yaml",
          "--non-interactive",
        ]);
        const entrypoint: string[] = config.Entrypoint;
        assert.deepEqual(entrypoint.slice(0, 4), ["deno", "run", "--frozen", "--cached-only"]);
        assert.equal(entrypoint.at(-1), "/opt/bananna-bot/main.ts");
        assert.deepEqual(
          entrypoint.filter((a) => a.startsWith("--allow") || a === "-A"),
          await mirrorTaskFlags(),
          "the entrypoint has the permissions of deno task mirror",
        );
        // The context's tests/ and .git stay out (.dockerignore).
        const listing = await docker([
          "run",
          "--rm",
          "--entrypoint",
          "deno",
          IMAGE,
          "eval",
          "console.log([...Deno.readDirSync('/opt/bananna-bot')].map((e) => e.name).sort().join(' '))",
        ]);
        assert.equal(listing.code, 0, listing.stderr);
        assert.doesNotMatch(listing.stdout, /\btests\b|\.git\b|\bbench\b/);
        assert.match(listing.stdout, /\.deno-dir .*lib .*main\.ts/);
      });

      await t.step("the root filesystem really is read-only for the run", async () => {
        const write = await run([
          "--entrypoint",
          "deno",
          IMAGE,
          "eval",
          "Deno.writeTextFileSync('/opt/bananna-bot/.deno-dir/x', 'x')",
        ]);
        assert.notEqual(write.code, 0);
        assert.match(write.stderr, /Read-only file system/);
      });

      await t.step(
        "validate: the config mounted as a file, exit 0, nothing on stderr",
        async () => {
          await Deno.writeTextFile(
            `${work}/config.yaml`,
            stringify({
              registries: { dr: registryTarget(dst, { namespace: "m" }) },
              log: { dir: "/var/lib/bananna-bot" },
              operation: { engine: "registry" },
              images: { [`${src.host}/team/app:1.0`]: { targets: ["dr"] } },
            }),
          );
          const out = await run([
            "-v",
            `${work}/config.yaml:/etc/bananna-bot/config.yaml:ro`,
            IMAGE,
            "validate",
          ]);
          assert.equal(out.code, 0, out.stdout + out.stderr);
          assert.match(out.stdout, /config\.yaml: valid \[CONFIG_VALID\]/);
          assert.match(out.stdout, /logs in \/var\/lib\/bananna-bot/);
          assert.equal(
            out.stderr,
            "",
            "deno wrote nothing (no cache, no update check) to complain",
          );
        },
      );

      await t.step(
        "no volume, writable root: the image's /var/lib/bananna-bot is group-0 writable",
        async () => {
          const out = await run([
            "-v",
            `${work}/config.yaml:/etc/bananna-bot/config.yaml:ro`,
            IMAGE,
            "validate",
          ], { volume: false, readOnly: false });
          assert.equal(out.code, 0, out.stdout + out.stderr);
        },
      );

      await t.step("a log.dir outside the volume is a clear exit 2", async () => {
        await Deno.writeTextFile(
          `${work}/no-dir.yaml`,
          stringify({
            registries: { dr: registryTarget(dst, { namespace: "m" }) },
            operation: { engine: "registry" },
            images: { [`${src.host}/team/app:1.0`]: { targets: ["dr"] } },
          }),
        );
        const out = await run([
          "-v",
          `${work}/no-dir.yaml:/etc/bananna-bot/config.yaml:ro`,
          IMAGE,
          "validate",
        ]);
        assert.equal(out.code, 2, out.stdout + out.stderr);
        assert.match(
          out.stderr,
          /log\.dir: cannot create the log dir \/etc\/bananna-bot\/logs: \/etc\/bananna-bot is not writable/,
        );
      });

      const single = await pushTestImage(src, "team/app:1.0", { kind: "schema2", seed: 151 });
      const multi = await pushTestImage(src, "team/multi:2", { kind: "oci-index", seed: 152 });
      // A ConfigMap as kubelet mounts it: config.yaml -> ..data/config.yaml, ..data -> ..<stamp>.
      const configMap = `${work}/configmap`;
      await Deno.mkdir(`${configMap}/..2026_11_30_00_00_00.000000001`, { recursive: true });
      await Deno.writeTextFile(
        `${configMap}/..2026_11_30_00_00_00.000000001/config.yaml`,
        stringify({
          registries: {
            dr: registryTarget(dst, { namespace: "m", login: true }),
          },
          log: { dir: "/var/lib/bananna-bot" },
          operation: { engine: "registry", retryDelay: 0.1, maxRetries: 1 },
          images: {
            [`${src.host}/team/app:1.0`]: { targets: ["dr"] },
            [`${src.host}/team/multi:2`]: { targets: ["dr"] },
          },
        }),
      );
      await Deno.symlink("..2026_11_30_00_00_00.000000001", `${configMap}/..data`);
      await Deno.symlink("..data/config.yaml", `${configMap}/config.yaml`);
      const mirror = () =>
        run(["-v", `${configMap}:/etc/bananna-bot:ro`, "-e", "HOME=/nonexistent", IMAGE], {
          env: { DST_PASSWORD: dst.password ?? "" },
        });
      const report = async (): Promise<Report> =>
        JSON.parse(await Deno.readTextFile(`${data}/last-report.json`));

      await t.step("mirror (the default command): source digests at the destination", async () => {
        const out = await mirror();
        assert.equal(out.code, 0, out.stdout + out.stderr);
        assert.deepEqual((await report()).entries.map((e) => [e.destination, e.status]), [
          [`${dst.host}/m/app:1.0`, "pushed"],
          [`${dst.host}/m/multi:2`, "pushed"],
        ]);
        assert.equal(await headDigest(dst, "m/app:1.0"), single.digest);
        assert.equal(await headDigest(dst, "m/multi:2"), multi.digest);
        assert.ok(!out.stdout.includes(dst.password ?? "?"), "the password reached the output");
        for (const name of ["last-report.json", "bananna-bot.log", ".last_rotation"]) {
          const info = await Deno.stat(`${data}/${name}`);
          assert.deepEqual([info.uid, info.gid], [UID, 0], name);
        }
        const log = await Deno.readTextFile(`${data}/bananna-bot.log`);
        assert.match(log, /\[MIRROR_COMPLETE\] Mirror: 2 pushed/);
        assert.ok(!log.includes(dst.password ?? "?"), "the password reached the log");
      });

      await t.step("a second run is a no-op: the lock was released, nothing written", async () => {
        const out = await mirror();
        assert.equal(out.code, 0, out.stdout + out.stderr);
        assert.deepEqual((await report()).entries.map((e) => e.status), ["exists", "exists"]);
      });

      await t.step(
        "SIGTERM (docker stop, as Kubernetes stops a pod): exit 130 at once, lock released",
        async () => {
          // A source nobody listens on: the run sits in its retry waits until it is stopped.
          const gone = `127.0.0.1:${freePort()}`;
          await Deno.writeTextFile(
            `${work}/slow.yaml`,
            stringify({
              registries: { dr: registryTarget(dst, { namespace: "m" }) },
              log: { dir: "/var/lib/bananna-bot" },
              operation: { engine: "registry", retryDelay: 30, maxRetries: 3 },
              images: { [`${gone}/team/app:1.0`]: { targets: ["dr"] } },
            }),
          );
          const name = `bb-sigterm-${crypto.randomUUID().slice(0, 8)}`;
          const started = await docker([
            "run",
            "-d",
            "--name",
            name,
            "--user",
            `${UID}:0`,
            "--read-only",
            "--tmpfs",
            "/tmp",
            "--network",
            "host",
            "-v",
            `${data}:/var/lib/bananna-bot`,
            "-v",
            `${work}/slow.yaml:/etc/bananna-bot/config.yaml:ro`,
            IMAGE,
          ]);
          assert.equal(started.code, 0, started.stderr);
          try {
            // Wait until the run is in its first retry wait (the log says so).
            const deadline = Date.now() + 60_000;
            for (;;) {
              const log = await Deno.readTextFile(`${data}/bananna-bot.log`).catch(() => "");
              if (log.includes(gone) && log.includes("MIRROR_RETRY")) break;
              assert.ok(Date.now() < deadline, "the run never reached its retry wait");
              await new Promise((resolve) => setTimeout(resolve, 200));
            }
            const stopped = Date.now();
            await docker(["stop", "-t", "30", name]);
            const seconds = (Date.now() - stopped) / 1000;
            const state = await docker(["inspect", name, "--format", "{{.State.ExitCode}}"]);
            assert.equal(state.stdout.trim(), "130");
            assert.ok(seconds < 25, `stopped after ${seconds} s: SIGTERM was not handled`);
            // Stopped while logging in, before the plan: the run says so on stderr (`oc logs`)
            // and in a report marked interrupted on the volume (stopped_report.ts).
            const logs = await docker(["logs", name]);
            assert.match(logs.stderr, /^bananna-bot: interrupted$/m, logs.stdout + logs.stderr);
            const last = JSON.parse(await Deno.readTextFile(`${data}/last-report.json`));
            assert.equal(last.interrupted, true);
            assert.equal(last.stopped.code, "MIRROR_INTERRUPTED");
            await assert.rejects(Deno.stat(`${data}/.bananna-bot.lock`), Deno.errors.NotFound);
          } finally {
            await docker(["rm", "-f", name]);
          }
        },
      );
    } finally {
      await docker(["image", "rm", "-f", IMAGE, "bb-deno-base:test"]);
      await new Deno.Command("rm", { args: ["-rf", work] }).output();
    }
  },
});
