/**
 * `main.ts validate` as a subprocess: every invalid kind gives exit 2 and a path-precise message
 * (no stack trace); valid YAML/JSON/ts give exit 0 and a summary; the shipped config.ts says what
 * to fill in. Plus --help, --version and usage errors.
 */
import assert from "node:assert/strict";
import { ROOT, runCli } from "../support/cli.ts";

const ENV = { QUAY_TOKEN: "tok-123456", QUAY_PASSWORD: "pw-123456", HUB_TOKEN: "hub-123456" };
const GOOD_REGISTRY =
  '  prod: { url: quay.corp.internal, namespace: platform, apiToken: "${QUAY_TOKEN}" }';

async function validate(yaml: string, env: Record<string, string> = ENV, name = "config.yaml") {
  const dir = await Deno.makeTempDir({ prefix: "bb-validate-" });
  try {
    await Deno.writeTextFile(`${dir}/${name}`, yaml);
    return await runCli(["validate", "--config", `${dir}/${name}`], { env, cwd: dir });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function config(registries: string, images: string, extra = ""): string {
  return `registries:\n${registries}\n${extra}\nimages:\n${images}\n`;
}

Deno.test("validate rejects each kind of bad config with exit 2 and the path of the problem", async (t) => {
  const rows: [string, string, RegExp][] = [
    [
      "unknown target",
      config(GOOD_REGISTRY, '  "nginx:1.25": { targets: [prod, drr] }'),
      /images\["nginx:1\.25"\]\.targets\[1\]: unknown registry "drr" \(known: prod\)/,
    ],
    [
      "unknown key with a suggestion",
      config(
        GOOD_REGISTRY,
        '  "nginx:1.25": { targets: [prod] }',
        "operation: { continueOnErorr: true }",
      ),
      /operation: unknown key "continueOnErorr" \(did you mean "continueOnError"\?\)/,
    ],
    [
      "malformed image reference",
      config(GOOD_REGISTRY, '  "Nginx:1.25": { targets: [prod] }'),
      /images\["Nginx:1\.25"\]: invalid image reference "Nginx:1\.25": repository name must be lowercase/,
    ],
    [
      "placeholder token",
      config(
        "  prod: { url: quay.corp.internal, namespace: platform, apiToken: YOUR_TOKEN_HERE }",
        '  "nginx:1": { targets: [prod] }',
      ),
      /registries\.prod\.apiToken: placeholder/,
    ],
    [
      "bad url",
      config(
        "  prod: { url: 'https://quay.corp.internal/v2/path', namespace: p1, apiToken: x-1234 }",
        '  "nginx:1": { targets: [prod] }',
      ),
      /registries\.prod\.url: bad url/,
    ],
    [
      "out-of-range number",
      config(GOOD_REGISTRY, '  "nginx:1": { targets: [prod] }', "operation: { concurrency: 0 }"),
      /operation\.concurrency: .*(>=|at least|too small).*got 0/i,
    ],
    [
      "two sources to one destination",
      config(
        GOOD_REGISTRY,
        '  "nginx:1": { targets: [prod] }\n  "bitnami/nginx:1": { targets: [prod] }',
      ),
      /images\["bitnami\/nginx:1"\]\.targets\[0\]: "bitnami\/nginx:1" and "nginx:1" both map to quay\.corp\.internal\/platform\/nginx:1/,
    ],
    [
      "unreadable caFile",
      config(
        "  prod: { url: quay.corp.internal, namespace: platform, apiToken: x-1234, caFile: ./missing-ca.pem }",
        '  "nginx:1": { targets: [prod] }',
      ),
      /registries\.prod\.caFile: cannot read CA file .*missing-ca\.pem: no such file/,
    ],
    [
      "quay without apiToken while repository creation is on",
      config(
        "  prod: { url: quay.corp.internal, namespace: platform }",
        '  "nginx:1": { targets: [prod] }',
      ),
      /registries\.prod\.apiToken: missing: a Quay registry needs an OAuth API token/,
    ],
    [
      "missing environment variable",
      config(
        GOOD_REGISTRY.replace("QUAY_TOKEN", "NOT_SET_ANYWHERE"),
        '  "nginx:1": { targets: [prod] }',
      ),
      /registries\.prod\.apiToken: environment variable NOT_SET_ANYWHERE is not set/,
    ],
    [
      "missing required key",
      config(
        "  prod: { namespace: platform, apiToken: x-1234 }",
        '  "nginx:1": { targets: [prod] }',
      ),
      /registries\.prod\.url: missing/,
    ],
    ["YAML syntax error", "registries: [unclosed", /YAML syntax error/],
  ];
  for (const [name, yaml, pattern] of rows) {
    await t.step(name, async () => {
      const run = await validate(yaml);
      assert.equal(run.code, 2, run.stdout + run.stderr);
      assert.match(run.stderr, pattern);
      assert.match(run.stderr, /\[CONFIG_INVALID\]/);
      assert.doesNotMatch(run.stderr + run.stdout, /^\s+at /m, "no stack trace");
    });
  }
});

Deno.test("validate accepts good YAML and JSON, resolving ${VAR} and relative paths", async (t) => {
  await t.step("YAML", async () => {
    const run = await runCli(["validate", "--config", `${ROOT}/tests/testdata/config/valid.yaml`], {
      env: ENV,
    });
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /valid \[CONFIG_VALID\]/);
    assert.match(
      run.stdout,
      /registry prod: quay https:\/\/quay\.prod\.internal namespace platform/,
    );
    assert.match(
      run.stdout,
      /3 image\(s\), 4 image x target, engine registry, logs in .*tests\/testdata\/config\/logs/,
    );
    assert.ok(!run.stdout.includes("pw-123456") && !run.stderr.includes("pw-123456"));
  });
  await t.step("JSON, from another working directory", async () => {
    const run = await runCli(["validate", "-c", `${ROOT}/tests/testdata/config/valid.json`], {
      cwd: "/tmp",
    });
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /registry local: registry http:\/\/127\.0\.0\.1:5000/);
  });
  await t.step(
    "warnings do not fail: docker engine without platform, literal password",
    async () => {
      const run = await validate(
        config(
          "  prod: { url: quay.corp.internal, namespace: platform, apiToken: literal-token-1 }",
          '  "nginx:1": { targets: [prod] }',
        ),
      );
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stderr, /warning: operation\.platform: docker engine without a platform/);
      assert.match(run.stderr, /warning: registries\.prod\.apiToken: secret written literally/);
    },
  );
});

Deno.test("validate on the shipped config.ts explains what to fill in", async () => {
  const run = await runCli(["validate"], { cwd: ROOT, env: {} });
  assert.equal(run.code, 2);
  assert.match(run.stderr, /registries\.prod\.url: placeholder "quay\.example\.com" left in/);
  assert.match(run.stderr, /registries\.prod\.namespace: placeholder "YOUR_ORGANIZATION"/);
  assert.match(
    run.stderr,
    /registries\.prod\.apiToken: placeholder left in \(a secret field: its value is not shown\): create an OAuth token/,
  );
});

Deno.test("validate honours BANANNA_BOT_CONFIG and names a missing file", async () => {
  const run = await runCli(["validate"], {
    cwd: "/tmp",
    env: { BANANNA_BOT_CONFIG: "/nonexistent/bb.yaml" },
  });
  assert.equal(run.code, 2);
  assert.match(run.stderr, /config file not found: \/nonexistent\/bb\.yaml \(pass --config PATH/);
});

Deno.test("--help, --version and usage errors", async (t) => {
  const { version } = JSON.parse(await Deno.readTextFile(`${ROOT}/deno.json`));
  await t.step("--version matches deno.json", async () => {
    const run = await runCli(["--version"]);
    assert.equal(run.code, 0);
    assert.equal(run.stdout.trim(), `bananna-bot ${version}`);
  });
  for (const args of [["--help"], ["mirror", "--help"], ["validate", "-h"], ["help", "mirror"]]) {
    await t.step(args.join(" "), async () => {
      const run = await runCli(args);
      assert.equal(run.code, 0);
      assert.match(run.stdout, /Usage:\s+bananna-bot/);
      assert.match(run.stdout, /Exit codes:|--config/);
    });
  }
  await t.step("an unknown flag is exit 2 naming the flag", async () => {
    const run = await runCli(["mirror", "--dry-runn"]);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /--dry-runn/);
  });
  await t.step("no command is exit 2", async () => {
    const run = await runCli([]);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /no command given/);
  });
});
