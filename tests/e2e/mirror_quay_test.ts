/**
 * The mirror run against Quay: the REST API is the double in tests/support (per
 * shared/registry-protocols.md §5), the registry behind it is a real docker-registry with htpasswd.
 * Also: credentials from docker's config.json and from a credential helper, missing credentials
 * without a terminal, failing targets with and without continueOnError, the run lock. Every step
 * has its own registry (and Quay double) and run dir, seeded by direct pushes where it needs tags.
 */
import assert from "node:assert/strict";
import { ROOT } from "../support/cli.ts";
import { mirror, registryTarget, startDestination, writes } from "../support/e2e_kit.ts";
import { pushTestImage, skopeoInspectRaw } from "../support/images.ts";
import { type QuayRepo, quayTarget, startQuayDouble } from "../support/quay_double.ts";
import { refusedPort, registryBinaryAvailable, startRegistry } from "../support/registry.ts";

const skip = registryBinaryAvailable() ? "" : " (ignored: docker-registry is not installed)";

/** {@link mirror} with `env` as its own argument. */
function mirrorEnv(
  dir: string,
  config: Record<string, unknown>,
  env: Record<string, string>,
  extra: string[] = [],
) {
  return mirror(dir, config, { env, extra });
}

const fast = { retryDelay: 0.02, maxRetries: 1, apiTimeout: 5, engine: "registry" };

Deno.test({
  name: `mirror into Quay: repositories created through the REST API, token checked once${skip}`,
  ignore: Boolean(skip),
  async fn(t) {
    await using src = await startRegistry();
    const app = await pushTestImage(src, "team/app:1.0", { kind: "oci-index", seed: 11 });
    const web = await pushTestImage(src, "team/web:2", { kind: "schema2", seed: 12 });
    const hand = {
      namespace: "acme",
      description: "made by hand",
      isPublic: false,
      createdBy: "admin",
    };
    /**
     * A Quay of its own for one step (the double in front of a fresh registry and a fresh run dir),
     * holding acme/web (made by hand) and whatever `repos` add.
     */
    const startQuay = async (repos: QuayRepo[] = []) => {
      const dest = await startDestination();
      const quay = startQuayDouble(dest.reg, {
        tokens: {
          "tok-creator": { user: "creator", scopes: ["repo:create", "repo:write"] },
          "tok-admin": { user: "admin", scopes: ["org:admin", "repo:admin", "repo:create"] },
        },
        orgs: { acme: { admins: ["admin"], creators: ["creator"] } },
        repos: [{ ...hand, name: "web" }, ...repos],
      });
      const config = {
        registries: { prod: quayTarget(quay, dest.reg) },
        log: { dir: "./logs" },
        operation: fast,
        images: {
          [`${src.host}/team/app:1.0`]: { targets: ["prod"], description: "The app, mirrored" },
          [`${src.host}/team/web:2`]: { targets: ["prod"] },
        },
      };
      const env = (token: string) => ({
        QUAY_TOKEN: token,
        QUAY_PASSWORD: dest.reg.password ?? "",
      });
      return {
        reg: dest.reg,
        dir: dest.dir,
        quay,
        run: (token: string) => mirrorEnv(dest.dir, config, env(token)),
        async [Symbol.asyncDispose]() {
          await quay.stop();
          await dest[Symbol.asyncDispose]();
        },
      };
    };

    await t.step("a bad API token fails once, early, with no per-image API call", async () => {
      await using q = await startQuay();
      const run = await q.run("tok-wrong");
      assert.equal(run.code, 1);
      assert.ok(run.report);
      assert.ok(
        run.report.entries.every((e) => e.status === "failed" && e.code === "LOGIN_FAILED"),
      );
      assert.deepEqual(q.quay.requests, ["GET /api/v1/user/ 401"]);
      assert.deepEqual(
        await q.reg.accessLog().then((l) => l.filter((x) => /PUT|POST/.test(x))),
        [],
      );
    });

    await t.step(
      "a creator token (403, not 404, for a missing repo) creates it and pushes",
      async () => {
        await using q = await startQuay();
        const run = await q.run("tok-creator");
        assert.equal(run.code, 0, run.stderr);
        assert.deepEqual(run.report?.entries.map((e) => [e.status, e.repo]), [[
          "pushed",
          "created",
        ], ["pushed", "exists"]]);
        assert.ok(
          q.quay.requests.includes("GET /api/v1/repository/acme/app 403"),
          q.quay.requests.join(),
        );
        assert.ok(q.quay.requests.includes("POST /api/v1/repository 201"));
        const created = q.quay.repositories().find((r) => r.name === "app");
        assert.equal(created?.description, "The app, mirrored");
        assert.equal(created?.isPublic, false);
        assert.equal((await skopeoInspectRaw(q.reg, "acme/app:1.0")).digest, app.digest);
        const log = await Deno.readTextFile(`${q.dir}/logs/bananna-bot.log`);
        assert.match(log, /\[INFO\] \[REPO_CREATED\] Repository: .*acme\/app created/);
        assert.match(log, /\[REPO_EXISTS\] Repository: .*acme\/web exists/);
      },
    );

    await t.step(
      "an admin token sees 404 for a missing repo; a re-run writes nothing",
      async () => {
        // What the creator's run leaves: acme/app created, both tags and their latest pushed.
        await using q = await startQuay([{ ...hand, name: "app", createdBy: "creator" }]);
        for (
          const [repoTag, image, kind] of [
            ["acme/app:1.0", app, { kind: "oci-index", seed: 11 }],
            ["acme/app:latest", app, { kind: "oci-index", seed: 11 }],
            ["acme/web:2", web, { kind: "schema2", seed: 12 }],
            ["acme/web:latest", web, { kind: "schema2", seed: 12 }],
          ] as const
        ) {
          assert.equal((await pushTestImage(q.reg, repoTag, kind)).digest, image.digest);
        }
        const run = await q.run("tok-admin");
        assert.equal(run.code, 0, run.stderr);
        assert.ok(run.report?.entries.every((e) => e.status === "exists"));
        assert.ok(!q.quay.requests.some((r) => r.startsWith("POST")), q.quay.requests.join());
      },
    );

    await t.step("the API token never reaches the log or the report", async () => {
      await using q = await startQuay();
      // A refused token, then a run that creates a repository and pushes.
      const runs = [await q.run("tok-wrong"), await q.run("tok-creator")];
      assert.equal(runs[1].code, 0, runs[1].stderr);
      for (const file of ["logs/bananna-bot.log", "logs/last-report.json"]) {
        const text = await Deno.readTextFile(`${q.dir}/${file}`);
        for (const secret of ["tok-creator", "tok-admin", "tok-wrong", q.reg.password ?? "?"]) {
          assert.ok(!text.includes(secret), `${file} leaks ${secret}`);
        }
      }
    });
  },
});

Deno.test({
  name:
    `mirror credentials and failures: docker config, credential helper, missing, failing targets, lock${skip}`,
  ignore: Boolean(skip),
  async fn(t) {
    await using src = await startRegistry();
    await pushTestImage(src, "team/a:1", { kind: "oci", seed: 21 });
    await pushTestImage(src, "team/b:1", { kind: "oci", seed: 22 });
    await pushTestImage(src, "team/c:1", { kind: "oci", seed: 23 });
    const deadPort = await refusedPort();
    const images = {
      [`${src.host}/team/a:1`]: { targets: ["good"] },
      [`${src.host}/team/b:1`]: { targets: ["good"] },
    };
    /**
     * Each step's own `good` registry (htpasswd) and run dir with an empty docker config dir;
     * `auths: true` writes good's login into that config.json.
     */
    const startGood = async (auths = false) => {
      const dest = await startDestination();
      const good = dest.reg;
      await Deno.mkdir(`${dest.dir}/docker`);
      if (auths) {
        await Deno.writeTextFile(
          `${dest.dir}/docker/config.json`,
          JSON.stringify({
            auths: { [good.host]: { auth: btoa(`${good.username}:${good.password}`) } },
          }),
        );
      }
      const registries = {
        good: registryTarget(good, { namespace: "m" }),
        dead: { url: `127.0.0.1:${deadPort}`, namespace: "m", kind: "registry" },
      };
      const base = { registries, log: { dir: "./logs" }, operation: fast, images };
      const env = { DOCKER_CONFIG: `${dest.dir}/docker` };
      return Object.assign(dest, { good, base, env });
    };

    await t.step(
      "no credentials and no terminal: LOGIN_MISSING_CREDENTIALS naming the registry",
      async () => {
        await using d = await startGood();
        const run = await mirrorEnv(d.dir, d.base, d.env);
        assert.equal(run.code, 1);
        assert.match(
          run.stderr,
          new RegExp(
            `\\[LOGIN_MISSING_CREDENTIALS\\].*${
              d.good.host.replace(/\./g, "\\.")
            } needs credentials`,
          ),
        );
        assert.match(run.stderr, /docker login/);
        assert.ok(run.report?.entries.every((e) => e.code === "LOGIN_MISSING_CREDENTIALS"));
      },
    );

    await t.step("credentials from docker's config.json", async () => {
      await using d = await startGood(true);
      const run = await mirrorEnv(d.dir, {
        ...d.base,
        images: { [`${src.host}/team/a:1`]: { targets: ["good"] } },
      }, d.env);
      assert.equal(run.code, 0, run.stderr);
      assert.match(
        await Deno.readTextFile(`${d.dir}/logs/bananna-bot.log`),
        /credentials from docker-config accepted/,
      );
    });

    await t.step("credentials from a credential helper (credHelpers)", async () => {
      await using d = await startGood();
      // a:1 is there already (as a run with the docker config leaves it): exists, then pushed.
      await pushTestImage(d.good, "m/a:1", { kind: "oci", seed: 21 });
      await Deno.writeTextFile(
        `${d.dir}/docker/config.json`,
        JSON.stringify({ credHelpers: { [d.good.host]: "test" } }),
      );
      const run = await mirrorEnv(d.dir, d.base, {
        ...d.env,
        PATH: `${ROOT}/tests/testdata/bin:${Deno.env.get("PATH")}`,
        BB_HELPER_HOST: d.good.host,
        BB_HELPER_USER: d.good.username ?? "",
        BB_HELPER_SECRET: d.good.password ?? "",
      });
      assert.equal(run.code, 0, run.stderr);
      assert.deepEqual(run.report?.entries.map((e) => e.status), ["exists", "pushed"]);
      assert.match(
        await Deno.readTextFile(`${d.dir}/logs/bananna-bot.log`),
        /credentials from credential-helper accepted/,
      );
    });

    const withDead = (base: Record<string, unknown>, continueOnError: boolean) => ({
      ...base,
      operation: { ...fast, continueOnError, concurrency: 1 },
      images: {
        [`${src.host}/team/c:1`]: { targets: ["dead", "good"] },
      },
    });

    await t.step(
      "a failing target with continueOnError: the other target still gets the image",
      async () => {
        await using d = await startGood(true);
        const run = await mirrorEnv(d.dir, withDead(d.base, true), d.env);
        assert.equal(run.code, 1);
        assert.deepEqual(run.report?.entries.map((e) => [e.target, e.status]), [[
          "dead",
          "failed",
        ], ["good", "pushed"]]);
      },
    );

    await t.step(
      "a failing target without continueOnError stops the run before image work",
      async () => {
        await using d = await startGood(true);
        const run = await mirrorEnv(d.dir, withDead(d.base, false), d.env);
        assert.equal(run.code, 1);
        assert.match(run.stderr, new RegExp(`127\\.0\\.0\\.1:${deadPort}`));
        // The good target was not touched, and the report says the run stopped before its plan
        // (stopped_report.ts): no entries.
        assert.deepEqual(await writes(d.good), []);
        assert.deepEqual(run.report?.entries, []);
        // A destination that cannot be reached is the destination's code, not a source read's.
        assert.equal(run.report?.stopped?.code, "IMAGE_PUSH_FAILED");
        assert.match(
          run.report?.stopped?.message ?? "",
          new RegExp(`127\\.0\\.0\\.1:${deadPort}`),
        );
      },
    );

    await t.step("a second run while the lock is held exits 1 with MIRROR_LOCKED", async () => {
      await using d = await startGood(true);
      await Deno.mkdir(`${d.dir}/logs`, { recursive: true });
      const sleeper = new Deno.Command("sleep", { args: ["30"] }).spawn();
      try {
        await Deno.writeTextFile(
          `${d.dir}/logs/.bananna-bot.lock`,
          JSON.stringify({
            pid: sleeper.pid,
            host: (await import("../../lib/mirror/run_lock.ts")).hostname(),
            started: new Date().toISOString(),
          }),
        );
        const run = await mirrorEnv(d.dir, d.base, d.env);
        assert.equal(run.code, 1);
        assert.match(run.stderr, /\[MIRROR_LOCKED\].*pid \d+/);
      } finally {
        sleeper.kill();
        await sleeper.status;
      }
    });
  },
});
