/**
 * `main.ts mirror` and the log location: missing parents of `log.dir` are created (like
 * `mkdir -p`); a log file that cannot be opened (`log.file` names a folder) is exit 2 naming the
 * setting, before the run starts, not an internal error. (The other log dir and log file
 * problems are validate errors too: tests/e2e/validate_test.ts.)
 */
import assert from "node:assert/strict";
import { runCli } from "../support/cli.ts";

/** A config whose only registry is a closed loopback port: the run fails after the log opens. */
function configWithLog(log: string): string {
  return [
    "registries:",
    '  prod: { url: "127.0.0.1:1", namespace: m, kind: registry }',
    `log: ${log}`,
    "operation: { engine: registry, maxRetries: 0, apiTimeout: 2 }",
    "images:",
    '  "127.0.0.1:1/a/b:1": { targets: [prod] }',
  ].join("\n");
}

Deno.test("mirror creates the missing parents of log.dir and logs there", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bb-logdir-" });
  try {
    await Deno.writeTextFile(`${dir}/c.yaml`, configWithLog("{ dir: ./a/b/c }"));
    const check = await runCli(["validate", "-c", "c.yaml"], { cwd: dir });
    assert.equal(check.code, 0, check.stderr);
    assert.equal(await Deno.stat(`${dir}/a`).catch(() => null), null, "validate creates nothing");
    const run = await runCli(["mirror", "--non-interactive", "-c", "c.yaml"], {
      cwd: dir,
      timeoutMs: 30_000,
    });
    assert.notEqual(run.code, 2, run.stderr);
    assert.match(await Deno.readTextFile(`${dir}/a/b/c/bananna-bot.log`), /starting up/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("mirror with a log it cannot open is exit 2 naming log, no internal error", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bb-logdir-" });
  try {
    await Deno.mkdir(`${dir}/logs/sub`, { recursive: true });
    await Deno.writeTextFile(`${dir}/c.yaml`, configWithLog("{ dir: ./logs, file: sub }"));
    const run = await runCli(["mirror", "--non-interactive", "-c", "c.yaml"], {
      cwd: dir,
      timeoutMs: 30_000,
    });
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /error: log\.file: \/.*\/logs\/sub is a folder/);
    assert.match(
      run.stderr,
      /\/c\.yaml: 1 problem\(s\); "validate --config \/\S+\/c\.yaml" lists them.*\[CONFIG_INVALID\]/,
    );
    assert.doesNotMatch(run.stderr, /internal error|^\s+at /m);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
