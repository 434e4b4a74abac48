/**
 * A Quay robot that pushes, against the Quay double (shared/registry-protocols.md §5.10, §5.14):
 * a repository created through the API belongs to the token's user alone, so the run grants the
 * robot `write` on every repository it creates or finds without the grant (before the login
 * step and the plan read them with the robot's credentials: Quay answers a robot without a role
 * 401 even for a HEAD; the double's `web` exists without a grant). A token without
 * `repo:admin` is one clear error at login time (the scope and the Quay screen named), not one
 * per image. Every request the double sees says User-Agent bananna-bot/<version>. Every step has
 * its own double, registry and run dir, seeded by direct pushes where it needs tags there.
 */
import assert from "node:assert/strict";
import { VERSION } from "../../lib/version.ts";
import { runCli } from "../support/cli.ts";
import { headDigest, pushTestImage } from "../support/images.ts";
import { type QuayRepo, startQuayDouble } from "../support/quay_double.ts";
import { registryBinaryAvailable, startRegistry } from "../support/registry.ts";
import { mirror, startDestination } from "../support/e2e_kit.ts";

const skip = registryBinaryAvailable() ? "" : " (ignored: docker-registry is not installed)";

Deno.test({
  name:
    `robot push account: granted write on the repositories the token creates; a token without repo:admin fails once at login${skip}`,
  ignore: Boolean(skip),
  async fn(t) {
    await using src = await startRegistry();
    const app = await pushTestImage(src, "team/app:1.0", { kind: "oci", seed: 51 });
    const web = await pushTestImage(src, "team/web:2", { kind: "schema2", seed: 52 });
    const hand = { namespace: "acme", isPublic: false, createdBy: "creator" };
    /**
     * A Quay of its own for one step: the double in front of a fresh registry, and a run dir.
     * It holds acme/web made by hand without a grant or, `granted`, what a granting run leaves:
     * acme/web and acme/app, both with the robot's write.
     */
    const startQuay = async (granted = false) => {
      const grant = granted ? { permissions: { "acme+mirror": "write" as const } } : {};
      const repos: QuayRepo[] = [{ ...hand, name: "web", description: "by hand", ...grant }];
      if (granted) repos.push({ ...hand, name: "app", description: null, ...grant });
      const dest = await startDestination();
      const reg = dest.reg;
      const quay = startQuayDouble(reg, {
        tokens: {
          "tok-no-admin": { user: "creator", scopes: ["repo:create", "repo:write"] },
          "tok-admin": { user: "creator", scopes: ["repo:create", "repo:write", "repo:admin"] },
        },
        orgs: { acme: { creators: ["creator"] } },
        robots: { "acme+mirror": "robot-secret" },
        repos,
      });
      const config = {
        registries: {
          prod: {
            url: quay.host,
            namespace: "acme",
            kind: "quay",
            apiToken: "${QUAY_TOKEN}",
            username: "acme+mirror",
            password: "${ROBOT_TOKEN}",
          },
        },
        log: { dir: "./logs" },
        operation: { retryDelay: 0.02, maxRetries: 1, apiTimeout: 5, engine: "registry" },
        images: {
          [`${src.host}/team/app:1.0`]: { targets: ["prod"] },
          [`${src.host}/team/web:2`]: { targets: ["prod"] },
        },
      };
      return {
        reg,
        quay,
        dir: dest.dir,
        config,
        grants: () => quay.requests.filter((r) => r.includes("/permissions/user/")),
        run: (token: string) => mirror(dest.dir, config, { env: env(token) }),
        async [Symbol.asyncDispose]() {
          await quay.stop();
          await dest[Symbol.asyncDispose]();
        },
      };
    };
    const env = (token: string) => ({ QUAY_TOKEN: token, ROBOT_TOKEN: "robot-secret" });

    await t.step("validate says what each scope of the token is for", async () => {
      await using q = await startQuay();
      await Deno.writeTextFile(`${q.dir}/config.json`, JSON.stringify(q.config));
      const run = await runCli(["validate", "--config", `${q.dir}/config.json`], {
        env: env("tok-admin"),
      });
      assert.equal(run.code, 0, run.stderr);
      assert.match(
        run.stdout,
        /registry prod: quay .* namespace acme, pushes as robot acme\+mirror/,
      );
      assert.match(
        run.stdout,
        /API token scope repo:create \(create a missing repository; or org:admin\)/,
      );
      assert.match(
        run.stdout,
        /API token scope repo:admin \(grant robot acme\+mirror write on each repository\)/,
      );
    });

    await t.step("a token without repo:admin: one error at login, no image work", async () => {
      await using q = await startQuay();
      const run = await q.run("tok-no-admin");
      assert.equal(run.code, 1);
      assert.deepEqual(run.report?.entries.map((e) => [e.status, e.code]), [
        ["failed", "REPO_ACCESS_DENIED"],
        ["failed", "REPO_ACCESS_DENIED"],
      ]);
      assert.deepEqual(q.grants(), [
        "GET /api/v1/repository/acme/app/permissions/user/acme+mirror 403",
      ]);
      const log = await Deno.readTextFile(`${q.dir}/logs/bananna-bot.log`);
      const lines = log.split("\n").filter((l) => l.includes("[REPO_ACCESS_DENIED] Quay API"));
      assert.equal(lines.length, 1, log);
      assert.match(lines[0], /needs the repo:admin scope/);
      assert.match(lines[0], /"Administer Repositories".*Applications/);
      assert.deepEqual(
        (await q.reg.accessLog()).filter((l) => /^(PUT|POST|PATCH) /.test(l)),
        [],
      );
    });

    await t.step("with repo:admin the robot is granted write and pushes", async () => {
      await using q = await startQuay();
      const run = await q.run("tok-admin");
      assert.equal(run.code, 0, run.stderr);
      assert.deepEqual(run.report?.entries.map((e) => e.status), ["pushed", "pushed"]);
      assert.equal(await headDigest(q.reg, "acme/app:1.0"), app.digest);
      assert.equal(await headDigest(q.reg, "acme/web:2"), web.digest);
      for (const name of ["app", "web"]) {
        const repo = q.quay.repositories().find((r) => r.name === name);
        assert.equal(repo?.permissions?.["acme+mirror"], "write", name);
      }
      assert.equal(q.quay.repositories().find((r) => r.name === "app")?.createdBy, "creator");
      assert.deepEqual(q.quay.refused, [], "the robot was never refused a read or a write");
      const log = await Deno.readTextFile(`${q.dir}/logs/bananna-bot.log`);
      assert.match(
        log,
        /\[REPO_ROBOT_GRANTED\] Quay API: .*\/acme\/app: robot acme\+mirror granted write/,
      );
      assert.match(
        log,
        /\[REPO_ROBOT_GRANTED\] Quay API: .*\/acme\/web: robot acme\+mirror granted write/,
      );
    });

    await t.step("a re-run reads the grants and writes none", async () => {
      // What the granting run leaves: both repositories with the robot's write, both tags and
      // their latest pushed straight into the registry.
      await using q = await startQuay(true);
      for (
        const [repoTag, image, kind] of [
          ["acme/app:1.0", app, { kind: "oci", seed: 51 }],
          ["acme/app:latest", app, { kind: "oci", seed: 51 }],
          ["acme/web:2", web, { kind: "schema2", seed: 52 }],
          ["acme/web:latest", web, { kind: "schema2", seed: 52 }],
        ] as const
      ) {
        assert.equal((await pushTestImage(q.reg, repoTag, kind)).digest, image.digest);
      }
      const run = await q.run("tok-admin");
      assert.equal(run.code, 0, run.stderr);
      assert.deepEqual(run.report?.entries.map((e) => e.status), ["exists", "exists"]);
      assert.ok(
        q.grants().length > 0 && q.grants().every((r) => r.startsWith("GET ")),
        q.grants().join(),
      );
    });

    await t.step("every request said User-Agent bananna-bot/<version>", async () => {
      await using q = await startQuay();
      // A refused token, then a granting, pushing run: every kind of request the run makes.
      await q.run("tok-no-admin");
      assert.equal((await q.run("tok-admin")).code, 0);
      assert.ok(q.quay.userAgents.length > 10);
      assert.deepEqual(
        [...new Set(q.quay.userAgents)],
        [`bananna-bot/${VERSION}`],
      );
    });
  },
});
