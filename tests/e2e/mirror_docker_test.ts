/**
 * `main.ts mirror` with `engine: docker` through a real Docker engine (dockerd with vfs storage,
 * started by the test) into real registries: first run pushes (same config digest as the source,
 * compared by config), cleanup removes what the run pulled, the no-op re-run pulls nothing and
 * makes no manifest GET on the source (HEAD only), docker never sees the password in argv, and
 * the cleanup is logged (IMAGE_CLEANUP).
 */
import assert from "node:assert/strict";
import { stringify } from "yaml";
import type { Report } from "../../lib/mirror/report.ts";
import { runCli } from "../support/cli.ts";
import { dockerdAvailability, startDockerd } from "../support/dockerd.ts";
import { pushTestImage, skopeoInspectRaw } from "../support/images.ts";
import { registryBinaryAvailable, startRegistry } from "../support/registry.ts";
import { registryTarget } from "../support/e2e_kit.ts";

const availability = await dockerdAvailability();
const why = !registryBinaryAvailable()
  ? " (ignored: docker-registry is not installed)"
  : availability.ok
  ? ""
  : ` (ignored: ${availability.reason})`;

Deno.test({
  name: `mirror with the docker engine through a real dockerd${why}`,
  ignore: Boolean(why),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    await using dockerd = await startDockerd();
    await using src = await startRegistry();
    await using dst = await startRegistry({ auth: "htpasswd" });
    const single = await pushTestImage(src, "team/app:1.0", { kind: "schema2", seed: 81 });
    const multi = await pushTestImage(src, "team/multi:2", { kind: "oci-index", seed: 82 });
    const dir = await Deno.makeTempDir({ prefix: "bb-docker-" });
    await Deno.writeTextFile(
      `${dir}/config.yaml`,
      stringify({
        registries: {
          dr: registryTarget(dst, { namespace: "m", login: true }),
        },
        log: { dir: "./logs" },
        operation: {
          engine: "docker",
          platform: "linux/arm64",
          cleanupLocalImages: true,
          dockerTimeout: 120,
          retryDelay: 0.1,
          maxRetries: 1,
        },
        images: {
          [`${src.host}/team/app:1.0`]: { targets: ["dr"] },
          [`${src.host}/team/multi:2`]: { targets: ["dr"] },
        },
      }),
    );
    // docker's argv is recorded by a wrapper on PATH: a password must never be in it.
    await Deno.mkdir(`${dir}/bin`);
    const realDocker = new TextDecoder().decode(
      (await new Deno.Command("sh", { args: ["-c", "command -v docker"], stdout: "piped" })
        .output()).stdout,
    ).trim();
    await Deno.writeTextFile(
      `${dir}/bin/docker`,
      `#!/bin/sh\nprintf '%s\\n' "$*" >> ${dir}/docker-argv.log\nexec ${realDocker} "$@"\n`,
    );
    await Deno.chmod(`${dir}/bin/docker`, 0o755);
    const env = {
      ...dockerd.env,
      DST_PASSWORD: dst.password ?? "",
      PATH: `${dir}/bin:${Deno.env.get("PATH")}`,
    };
    const run = async () => {
      const out = await runCli([
        "mirror",
        "--config",
        "config.yaml",
        "--non-interactive",
        "--report",
        "report.json",
      ], {
        cwd: dir,
        env,
        timeoutMs: 300_000,
      });
      const report: Report = JSON.parse(await Deno.readTextFile(`${dir}/report.json`));
      return { ...out, report };
    };
    try {
      await t.step(
        "first run: docker login, pull, tag, push; same image (config digest) at the destination",
        async () => {
          const first = await run();
          assert.equal(first.code, 0, first.stdout + first.stderr + (await dockerd.logTail(20)));
          assert.deepEqual(first.report.entries.map((e) => [e.status, e.comparedBy]), [[
            "pushed",
            "config",
          ], [
            "pushed",
            "config",
          ]]);
          const pushed = (await skopeoInspectRaw(dst, "m/app:1.0")).manifest as {
            config: { digest: string };
          };
          assert.equal(pushed.config.digest, single.configDigest);
          const arm = multi.children?.find((c) => c.platform === "linux/arm64");
          const pushedMulti = (await skopeoInspectRaw(dst, "m/multi:2")).manifest as {
            config: { digest: string };
          };
          assert.equal(
            pushedMulti.config.digest,
            arm?.configDigest,
            "the configured platform was mirrored",
          );
          const argv = await Deno.readTextFile(`${dir}/docker-argv.log`);
          assert.equal(
            argv.match(/^login --username \S+ --password-stdin/gm)?.length,
            1,
            "docker logged in once, before the first push",
          );
          assert.match(argv, /^pull --platform linux\/arm64 /m);
          assert.match(argv, /^push /m);
          assert.ok(!argv.includes(dst.password ?? "?"), "the password reached docker's argv");
          const images = await dockerd.docker(["images", "--format", "{{.Repository}}:{{.Tag}}"]);
          assert.equal(images.stdout.trim(), "", `cleanupLocalImages left: ${images.stdout}`);
          // The engine-wide cleanup event reaches the log (makeEngine once dropped it).
          const log = await Deno.readTextFile(`${dir}/logs/bananna-bot.log`);
          assert.match(log, /IMAGE_CLEANUP.*removed \d+ local image reference\(s\)/);
        },
      );

      await t.step("second run: nothing pulled, no manifest GET on the source", async () => {
        await Deno.writeTextFile(`${dir}/docker-argv.log`, "");
        const sourceBefore = (await src.accessLog()).length;
        const second = await run();
        assert.equal(second.code, 0, second.stderr);
        assert.ok(second.report.entries.every((e) => e.status === "exists"));
        const argv = await Deno.readTextFile(`${dir}/docker-argv.log`);
        assert.doesNotMatch(argv, /^pull /m);
        assert.doesNotMatch(argv, /^login /m, "nothing to copy: docker is not even logged in");
        const sourceRequests = (await src.accessLog()).slice(sourceBefore);
        assert.deepEqual(
          sourceRequests.filter((l) => /^GET \/v2\/team\/[^ ]+\/(manifests|blobs)\//.test(l)),
          [],
          sourceRequests.join("\n"),
        );
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
