/**
 * The command line as a user from a clone types it: `deno task <command> ...` for every command
 * (with the `--` Deno 2 passes on), and the usage errors a typo gets (exit 2, "did you mean").
 */
import assert from "node:assert/strict";
import { COMMAND_OPTIONS } from "../../lib/cli/args.ts";
import { ROOT, runCli } from "../support/cli.ts";
import { runProcess } from "../support/process.ts";

/** `deno task NAME ARGS...` from the repository root, as a user runs it. */
export async function runTask(name: string, args: string[], env: Record<string, string> = {}) {
  const base: Record<string, string> = {};
  for (const key of ["PATH", "HOME", "DENO_DIR", "TMPDIR"]) {
    const value = Deno.env.get(key);
    if (value !== undefined) base[key] = value;
  }
  return await runProcess("deno", ["task", "--config", `${ROOT}/deno.json`, name, ...args], {
    cwd: ROOT,
    env: { ...base, NO_COLOR: "1", ...env },
    clearEnv: true,
    timeoutMs: 60_000,
  });
}

const VALID = `registries:
  prod: { url: quay.corp.internal, namespace: platform, apiToken: "\${QUAY_TOKEN}" }
images:
  nginx:1.27: { targets: [prod] }
`;

Deno.test("every command has a deno task that runs it with explicit permissions", async (t) => {
  const tasks = JSON.parse(await Deno.readTextFile(`${ROOT}/deno.json`)).tasks as Record<
    string,
    string
  >;
  for (const command of Object.keys(COMMAND_OPTIONS)) {
    await t.step(command, async () => {
      const task = tasks[command];
      assert.ok(task, `deno.json has no task "${command}"`);
      assert.match(task, new RegExp(`^deno run .* main\\.ts ${command}$`));
      assert.match(task, /--allow-read/);
      assert.doesNotMatch(task, /(^|\s)(-A|--allow-all)(\s|$)/);
      const help = await runTask(command, ["--help"]);
      assert.equal(help.code, 0, help.stderr);
      assert.match(help.stdout, new RegExp(`^Usage: bananna-bot ${command}\\b`));
    });
  }
});

Deno.test("deno task NAME -- ARGS: the `--` Deno passes on is accepted", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bb-tasks-" });
  try {
    await Deno.writeTextFile(`${dir}/x.yaml`, VALID);
    const valid = await runTask("validate", ["--", "--config", `${dir}/x.yaml`], {
      QUAY_TOKEN: "tok-123456",
    });
    assert.equal(valid.code, 0, valid.stderr);
    assert.match(valid.stdout, /valid \[CONFIG_VALID\]/);
    const help = await runTask("mirror", ["--", "--help"]);
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /^Usage: bananna-bot mirror/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an unknown command, help topic or flag is exit 2 with a did-you-mean", async (t) => {
  const rows: [string[], RegExp][] = [
    [["help", "foo"], /unknown command "foo" \(commands: mirror, validate, report, export/],
    [["help", "exprot"], /unknown command "exprot" \(did you mean "export"\?\)/],
    [["mirorr"], /unknown command "mirorr" \(did you mean "mirror"\?\)/],
    [["mirror", "--dry-rum"], /Unknown option '--dry-rum' \(did you mean --dry-run\?\)/],
    [["validate", "--dry-run"], /--dry-run is not an option of validate/],
  ];
  for (const [args, message] of rows) {
    await t.step(args.join(" "), async () => {
      const out = await runCli(args);
      assert.equal(out.code, 2, out.stdout + out.stderr);
      assert.match(out.stderr, message);
      assert.equal(out.stdout, "", "no help text on a usage error");
    });
  }
});
