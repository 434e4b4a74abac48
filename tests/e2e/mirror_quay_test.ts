/**
 * The mirror run against Quay: the REST API is the double in tests/support (per
 * shared/registry-protocols.md §5), the registry behind it is a real docker-registry with htpasswd.
 * Also: credentials from docker's config.json and from a credential helper, missing credentials
 * without a terminal, failing targets with and without continueOnError, the run lock.
 */
import assert from "node:assert/strict";
import { ROOT } from "../support/cli.ts";
import { mirror, registryTarget } from "../support/e2e_kit.ts";
import { pushTestImage, skopeoInspectRaw } from "../support/images.ts";
import { quayTarget, startQuayDouble } from "../support/quay_double.ts";
import { freePort, registryBinaryAvailable, startRegistry } from "../support/registry.ts";

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
    await using reg = await startRegistry({ auth: "htpasswd" });
    await using quay = startQuayDouble(reg, {
      tokens: {
        "tok-creator": { user: "creator", scopes: ["repo:create", "repo:write"] },
        "tok-admin": { user: "admin", scopes: ["org:admin", "repo:admin", "repo:create"] },
      },
      orgs: { acme: { admins: ["admin"], creators: ["creator"] } },
      repos: [{
        namespace: "acme",
        name: "web",
        description: "made by hand",
        isPublic: false,
        createdBy: "admin",
      }],
    });
    const dir = await Deno.makeTempDir({ prefix: "bb-quay-" });
    const app = await pushTestImage(src, "team/app:1.0", { kind: "oci-index", seed: 11 });
    await pushTestImage(src, "team/web:2", { kind: "schema2", seed: 12 });
    const config = {
      registries: {
        prod: quayTarget(quay, reg),
      },
      log: { dir: "./logs" },
      operation: fast,
      images: {
        [`${src.host}/team/app:1.0`]: { targets: ["prod"], description: "The app, mirrored" },
        [`${src.host}/team/web:2`]: { targets: ["prod"] },
      },
    };
    const env = (token: string) => ({ QUAY_TOKEN: token, QUAY_PASSWORD: reg.password ?? "" });
    try {
      await t.step("a bad API token fails once, early, with no per-image API call", async () => {
        const run = await mirrorEnv(dir, config, env("tok-wrong"));
        assert.equal(run.code, 1);
        assert.ok(run.report);
        assert.ok(
          run.report.entries.every((e) => e.status === "failed" && e.code === "LOGIN_FAILED"),
        );
        assert.deepEqual(quay.requests, ["GET /api/v1/user/ 401"]);
        assert.deepEqual(
          await reg.accessLog().then((l) => l.filter((x) => /PUT|POST/.test(x))),
          [],
        );
      });

      await t.step(
        "a creator token (403, not 404, for a missing repo) creates it and pushes",
        async () => {
          quay.requests.length = 0;
          const run = await mirrorEnv(dir, config, env("tok-creator"));
          assert.equal(run.code, 0, run.stderr);
          assert.deepEqual(run.report?.entries.map((e) => [e.status, e.repo]), [[
            "pushed",
            "created",
          ], ["pushed", "exists"]]);
          assert.ok(
            quay.requests.includes("GET /api/v1/repository/acme/app 403"),
            quay.requests.join(),
          );
          assert.ok(quay.requests.includes("POST /api/v1/repository 201"));
          const created = quay.repositories().find((r) => r.name === "app");
          assert.equal(created?.description, "The app, mirrored");
          assert.equal(created?.isPublic, false);
          assert.equal((await skopeoInspectRaw(reg, "acme/app:1.0")).digest, app.digest);
          const log = await Deno.readTextFile(`${dir}/logs/bananna-bot.log`);
          assert.match(log, /\[INFO\] \[REPO_CREATED\] Repository: .*acme\/app created/);
          assert.match(log, /\[REPO_EXISTS\] Repository: .*acme\/web exists/);
        },
      );

      await t.step(
        "an admin token sees 404 for a missing repo; a re-run writes nothing",
        async () => {
          quay.requests.length = 0;
          const run = await mirrorEnv(dir, config, env("tok-admin"));
          assert.equal(run.code, 0, run.stderr);
          assert.ok(run.report?.entries.every((e) => e.status === "exists"));
          assert.ok(!quay.requests.some((r) => r.startsWith("POST")), quay.requests.join());
        },
      );

      await t.step("the API token never reaches the log or the report", async () => {
        for (const file of ["logs/bananna-bot.log", "logs/last-report.json"]) {
          const text = await Deno.readTextFile(`${dir}/${file}`);
          for (const secret of ["tok-creator", "tok-admin", "tok-wrong", reg.password ?? "?"]) {
            assert.ok(!text.includes(secret), `${file} leaks ${secret}`);
          }
        }
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    `mirror credentials and failures: docker config, credential helper, missing, failing targets, lock${skip}`,
  ignore: Boolean(skip),
  async fn(t) {
    await using src = await startRegistry();
    await using good = await startRegistry({ auth: "htpasswd" });
    const dir = await Deno.makeTempDir({ prefix: "bb-cred-" });
    await Deno.mkdir(`${dir}/docker`);
    await pushTestImage(src, "team/a:1", { kind: "oci", seed: 21 });
    await pushTestImage(src, "team/b:1", { kind: "oci", seed: 22 });
    const deadPort = freePort();
    const registries = {
      good: registryTarget(good, { namespace: "m" }),
      dead: { url: `127.0.0.1:${deadPort}`, namespace: "m", kind: "registry" },
    };
    const images = {
      [`${src.host}/team/a:1`]: { targets: ["good"] },
      [`${src.host}/team/b:1`]: { targets: ["good"] },
    };
    const base = { registries, log: { dir: "./logs" }, operation: fast, images };
    const env = { DOCKER_CONFIG: `${dir}/docker` };
    try {
      await t.step(
        "no credentials and no terminal: LOGIN_MISSING_CREDENTIALS naming the registry",
        async () => {
          const run = await mirrorEnv(dir, base, env);
          assert.equal(run.code, 1);
          assert.match(
            run.stderr,
            new RegExp(
              `\\[LOGIN_MISSING_CREDENTIALS\\].*${
                good.host.replace(/\./g, "\\.")
              } needs credentials`,
            ),
          );
          assert.match(run.stderr, /docker login/);
          assert.ok(run.report?.entries.every((e) => e.code === "LOGIN_MISSING_CREDENTIALS"));
        },
      );

      await t.step("credentials from docker's config.json", async () => {
        await Deno.writeTextFile(
          `${dir}/docker/config.json`,
          JSON.stringify({
            auths: { [good.host]: { auth: btoa(`${good.username}:${good.password}`) } },
          }),
        );
        const run = await mirrorEnv(dir, {
          ...base,
          images: { [`${src.host}/team/a:1`]: { targets: ["good"] } },
        }, env);
        assert.equal(run.code, 0, run.stderr);
        assert.match(
          await Deno.readTextFile(`${dir}/logs/bananna-bot.log`),
          /credentials from docker-config accepted/,
        );
      });

      await t.step("credentials from a credential helper (credHelpers)", async () => {
        await Deno.writeTextFile(
          `${dir}/docker/config.json`,
          JSON.stringify({ credHelpers: { [good.host]: "test" } }),
        );
        const run = await mirrorEnv(dir, base, {
          ...env,
          PATH: `${ROOT}/tests/testdata/bin:${Deno.env.get("PATH")}`,
          BB_HELPER_HOST: good.host,
          BB_HELPER_USER: good.username ?? "",
          BB_HELPER_SECRET: good.password ?? "",
        });
        assert.equal(run.code, 0, run.stderr);
        assert.deepEqual(run.report?.entries.map((e) => e.status), ["exists", "pushed"]);
        assert.match(
          await Deno.readTextFile(`${dir}/logs/bananna-bot.log`),
          /credentials from credential-helper accepted/,
        );
      });

      await Deno.writeTextFile(
        `${dir}/docker/config.json`,
        JSON.stringify({
          auths: { [good.host]: { auth: btoa(`${good.username}:${good.password}`) } },
        }),
      );
      await pushTestImage(src, "team/c:1", { kind: "oci", seed: 23 });
      const withDead = (continueOnError: boolean) => ({
        ...base,
        operation: { ...fast, continueOnError, concurrency: 1 },
        images: {
          [`${src.host}/team/c:1`]: { targets: ["dead", "good"] },
        },
      });

      await t.step(
        "a failing target with continueOnError: the other target still gets the image",
        async () => {
          const run = await mirrorEnv(dir, withDead(true), env);
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
          await pushTestImage(src, "team/c:1", { kind: "oci", seed: 24 });
          const run = await mirrorEnv(dir, withDead(false), env);
          assert.equal(run.code, 1);
          assert.match(run.stderr, new RegExp(`127\\.0\\.0\\.1:${deadPort}`));
          // The good target was not touched: it still holds the first image (no drift check ran).
          // The report says the run stopped before its plan (stopped_report.ts): no entries.
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
        await Deno.mkdir(`${dir}/logs`, { recursive: true });
        const sleeper = new Deno.Command("sleep", { args: ["30"] }).spawn();
        try {
          await Deno.writeTextFile(
            `${dir}/logs/.bananna-bot.lock`,
            JSON.stringify({
              pid: sleeper.pid,
              host: (await import("../../lib/mirror/run_lock.ts")).hostname(),
              started: new Date().toISOString(),
            }),
          );
          const run = await mirrorEnv(dir, base, env);
          assert.equal(run.code, 1);
          assert.match(run.stderr, /\[MIRROR_LOCKED\].*pid \d+/);
        } finally {
          sleeper.kill();
          await sleeper.status;
          await Deno.remove(`${dir}/logs/.bananna-bot.lock`).catch(() => {});
        }
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
