/**
 * Prompts in a real pseudo-terminal (tmux): `main.ts mirror` asks for the credentials a registry
 * needs, the typed password is never echoed, a refused password is logged (LOGIN_FAILED, WARNING,
 * attempt n of 3) and asked again, and the password shows up in no log, no report and no process
 * argv.
 */
import assert from "node:assert/strict";
import { stringify } from "yaml";
import { cliArgv } from "../support/cli.ts";
import { pushTestImage } from "../support/images.ts";
import { registryBinaryAvailable, startRegistry } from "../support/registry.ts";
import { hasTmux, startInTmux, tmux, waitFor } from "../support/tmux.ts";
import { registryTarget } from "../support/e2e_kit.ts";

const why = !registryBinaryAvailable()
  ? " (ignored: docker-registry is not installed)"
  : !hasTmux()
  ? " (ignored: tmux is not installed)"
  : "";

/** argv of every process on the machine (to prove the password is in none). */
async function allCmdlines(): Promise<string> {
  const out = await new Deno.Command("ps", { args: ["-eo", "args"], stdout: "piped" }).output();
  return new TextDecoder().decode(out.stdout);
}

Deno.test({
  name:
    `mirror prompts for missing credentials in a terminal: hidden, re-asked, never leaked${why}`,
  ignore: Boolean(why),
  async fn() {
    await using src = await startRegistry();
    await using dst = await startRegistry({ auth: "htpasswd" });
    await pushTestImage(src, "team/app:1", { kind: "oci", seed: 31 });
    const dir = await Deno.makeTempDir({ prefix: "bb-prompt-" });
    await Deno.mkdir(`${dir}/docker`);
    const password = dst.password ?? "";
    const wrong = "wrong-password-typed-1";
    await Deno.writeTextFile(
      `${dir}/config.yaml`,
      stringify({
        registries: { dr: registryTarget(dst, { namespace: "m" }) },
        log: { dir: "./logs" },
        operation: { engine: "registry", retryDelay: 0.02, maxRetries: 1 },
        images: { [`${src.host}/team/app:1`]: { targets: ["dr"] } },
      }),
    );
    const session = await startInTmux(
      dir,
      cliArgv(["mirror", "--config", "config.yaml", "--report", "report.json"]),
      [`DOCKER_CONFIG=${dir}/docker`, "NO_COLOR=1"],
    );
    try {
      await waitFor(session, /Username for 127\.0\.0\.1:\d+/);
      await tmux("send-keys", "-t", session, dst.username ?? "", "Enter");
      await waitFor(session, /Password for/);
      await tmux("send-keys", "-t", session, "-l", wrong);
      await tmux("send-keys", "-t", session, "Enter");
      await waitFor(session, /refused these credentials; try again/);

      await tmux("send-keys", "-t", session, dst.username ?? "", "Enter");
      await waitFor(session, /Password for[\s\S]*Password for/);
      await tmux("send-keys", "-t", session, "-l", password);
      const argvDuring = await allCmdlines();
      await tmux("send-keys", "-t", session, "Enter");
      const screen = await waitFor(session, /EXIT=\d+/);
      assert.match(screen, /EXIT=0/, screen);
      assert.match(screen, /IMAGE_PUSHED/);
      for (const secret of [password, wrong]) {
        assert.ok(!screen.includes(secret), `the screen shows a typed password:\n${screen}`);
        assert.ok(!argvDuring.includes(secret), "a password is in a process argv");
        for (const file of ["logs/bananna-bot.log", "report.json", "logs/last-report.json"]) {
          assert.ok(
            !(await Deno.readTextFile(`${dir}/${file}`)).includes(secret),
            `${file} leaks a password`,
          );
        }
      }
      const log = await Deno.readTextFile(`${dir}/logs/bananna-bot.log`);
      assert.match(log, /credentials from prompt accepted/);
      // The audit trail: the refused attempt is logged (host, attempt, never the password)
      // before the accepted one.
      const refused = new RegExp(
        `\\[WARNING\\] \\[LOGIN_FAILED\\] Login: ${
          dst.host.replaceAll(".", "\\.")
        } refused the credentials typed at the prompt for user "${dst.username}" \\(attempt 1 of 3\\)`,
      );
      assert.match(log, refused);
      assert.ok(
        log.search(refused) < log.indexOf("credentials from prompt accepted"),
        "the refusal is logged before the accepted login",
      );
      assert.equal(log.match(/LOGIN_FAILED/g)?.length, 1, "one refusal, one line");
    } finally {
      await tmux("kill-session", "-t", session);
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: `mirror never prompts without a terminal: it fails fast instead of hanging${why}`,
  ignore: Boolean(why),
  async fn() {
    await using dst = await startRegistry({ auth: "htpasswd" });
    const dir = await Deno.makeTempDir({ prefix: "bb-noprompt-" });
    await Deno.mkdir(`${dir}/docker`);
    await Deno.writeTextFile(
      `${dir}/config.yaml`,
      stringify({
        registries: { dr: registryTarget(dst, { namespace: "m" }) },
        log: { dir: "./logs" },
        operation: { engine: "registry" },
        images: { [`${dst.host}/x/y:1`]: { targets: ["dr"] } },
      }),
    );
    try {
      const started = Date.now();
      const [cmd, ...args] = cliArgv(["mirror", "--config", "config.yaml"]);
      const out = await new Deno.Command(cmd, {
        args,
        cwd: dir,
        env: { DOCKER_CONFIG: `${dir}/docker`, NO_COLOR: "1" },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(out.code, 1);
      assert.match(new TextDecoder().decode(out.stderr), /LOGIN_MISSING_CREDENTIALS/);
      assert.ok(Date.now() - started < 20_000, "took too long: it must not wait for input");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
