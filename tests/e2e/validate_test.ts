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
    [
      "YAML syntax error",
      "registries: [unclosed",
      /YAML syntax error: .* at line \d+, column \d+$/m,
    ],
    [
      "a platform without its architecture",
      config(
        GOOD_REGISTRY,
        '  "nginx:1": { targets: [prod], platforms: [linux] }',
        "operation: { engine: registry }",
      ),
      /images\["nginx:1"\]\.platforms\[0\]: "linux" is not a platform: write os\/arch\[\/variant\]/,
    ],
    [
      "platformsMode with the docker engine",
      config(
        GOOD_REGISTRY,
        '  "nginx:1": { targets: [prod] }',
        "operation: { engine: docker, platform: linux/amd64, platformsMode: rewrite }",
      ),
      /operation\.platformsMode: platformsMode applies to the registry engine/,
    ],
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

function repositories(entries: string, images = ""): string {
  return `registries:\n${GOOD_REGISTRY}\noperation: { engine: registry }\n${
    images ? `images:\n${images}\n` : ""
  }repositories:\n${entries}\n`;
}

Deno.test("validate rejects each kind of bad repositories entry with exit 2 and its path", async (t) => {
  const rows: [string, string, RegExp][] = [
    [
      "an invalid regex",
      repositories("  nginx: { targets: [prod], tags: { exclude: ['-rc', '[alpine'] } }"),
      /error: repositories\.nginx\.tags\.exclude\[1\]: exclude pattern "\[alpine" is not a valid regex/,
    ],
    [
      "an unparsable range",
      repositories("  nginx: { targets: [prod], tags: { semver: '>=1.25 <<2' } }"),
      /error: repositories\.nginx\.tags\.semver: semver range ">=1\.25 <<2" does not parse/,
    ],
    [
      "newest: 0",
      repositories("  nginx: { targets: [prod], tags: { newest: 0 } }"),
      /error: repositories\.nginx\.tags\.newest: newest must be an integer >= 1, got 0/,
    ],
    [
      "a key with a tag",
      repositories('  "nginx:1.27": { targets: [prod], tags: { newest: 1 } }'),
      /error: repositories\["nginx:1\.27"\]: a repository key names no tag; use images for one tag/,
    ],
    [
      "an unknown target",
      repositories("  nginx: { targets: [prod, drr], tags: { newest: 1 } }"),
      /error: repositories\.nginx\.targets\[1\]: unknown registry "drr" \(known: prod\)/,
    ],
    [
      "latest in mutable while updateLatest is on",
      repositories("  nginx: { targets: [prod], tags: { newest: 1, mutable: [latest] } }"),
      /error: repositories\.nginx\.tags\.mutable\[0\]: "latest" cannot be mutable while operation\.updateLatest is on/,
    ],
    [
      "a mutable entry the rules can never select",
      repositories("  nginx: { targets: [prod], tags: { semver: ^1.27, mutable: [mainline] } }"),
      /error: repositories\.nginx\.tags\.mutable\[0\]: mutable tag "mainline" can never be selected by these rules \(semver: not a version/,
    ],
    [
      "an image and a repository entry that disagree",
      repositories(
        "  docker.io/library/nginx: { targets: [prod], description: NGINX, tags: { newest: 1 } }",
        '  "nginx:1.27": { targets: [prod], description: Web }',
      ),
      /error: images\["nginx:1\.27"\]\.description: description "Web" disagrees with repositories\["docker\.io\/library\/nginx"\]\.description "NGINX"/,
    ],
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
  await t.step("a valid repositories section without images is exit 0", async () => {
    const run = await validate(
      repositories("  nginx: { targets: [prod], tags: { semver: '>=1.25.0 <2', newest: 5 } }"),
    );
    assert.equal(run.code, 0, run.stderr);
    assert.match(
      run.stdout,
      /repository docker\.io\/library\/nginx -> nginx in prod: tags selected by rules/,
    );
  });
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
          "operation: { engine: docker }",
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
  // mirror says the same; validate has nothing to add about a file that is not there.
  const mirror = await runCli(["mirror", "--non-interactive"], {
    cwd: "/tmp",
    env: { BANANNA_BOT_CONFIG: "/nonexistent/bb.yaml" },
  });
  assert.equal(mirror.code, 2);
  assert.match(mirror.stderr, /config file not found: \/nonexistent\/bb\.yaml/);
  assert.match(mirror.stderr, /^\/nonexistent\/bb\.yaml: 1 problem\(s\) \[CONFIG_INVALID\]$/m);
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
  await t.step("--help names the deno task form a clone runs", async () => {
    const run = await runCli(["--help"]);
    assert.match(run.stdout, /^ {2}deno task <command> \[options\] +\(from a clone/m);
  });
  await t.step("an unknown flag is exit 2 naming the flag", async () => {
    const run = await runCli(["mirror", "--dry-runn"]);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /--dry-runn/);
    // The subcommand's help, typeable after `deno task`, the binary or the container alike.
    assert.match(run.stderr, /^"mirror --help" shows the usage\.$/m);
    const unknown = await runCli(["mirrror"]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown command "mirrror".*\n"--help" shows the usage\.$/m);
  });
  await t.step("no command is exit 2", async () => {
    const run = await runCli([]);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /no command given/);
  });
});

/** Everything a run left: stdout, stderr and every file under `dir` (log, report, state). */
async function everything(dir: string, run: { stdout: string; stderr: string }): Promise<string> {
  let text = run.stdout + run.stderr;
  const walk = async (path: string) => {
    for await (const entry of Deno.readDir(path)) {
      const full = `${path}/${entry.name}`;
      if (entry.isDirectory) await walk(full);
      else if (entry.isFile) text += await Deno.readTextFile(full);
    }
  };
  await walk(dir);
  return text;
}

/** `validate` and then `mirror --dry-run` on one config in a temp dir; both results. */
async function validateAndMirror(
  yaml: string,
  env: Record<string, string>,
  inspect: (
    command: string,
    run: { code: number; stdout: string; stderr: string },
    dir: string,
  ) => Promise<void>,
): Promise<void> {
  for (const command of [["validate"], ["mirror", "--dry-run", "--non-interactive"]]) {
    const dir = await Deno.makeTempDir({ prefix: "bb-secret-" });
    try {
      await Deno.writeTextFile(`${dir}/config.yaml`, yaml);
      const run = await runCli([...command, "--config", `${dir}/config.yaml`], {
        env,
        cwd: dir,
        timeoutMs: 30_000,
      });
      await inspect(command[0], run, dir);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }
}

Deno.test("a secret in a config never shows: validate and mirror, stdout, stderr, log and report", async (t) => {
  const secret = "s3cret-Pw-8472";
  const rows: [string, string, RegExp][] = [
    [
      "a ${VAR} password when registries is written as a list",
      'registries:\n  - { url: quay.corp.internal, namespace: p, username: u, password: "${PW}" }\nimages:\n  "nginx:1": { targets: [prod] }\n',
      /registries: .*expected record/,
    ],
    [
      "a ${VAR} password under a typo'd key in a wrong-typed entry",
      'registries:\n  prod: [{ url: quay.corp.internal, passwd: "${PW}" }]\nimages:\n  "nginx:1": { targets: [prod] }\n',
      /registries\.prod: /,
    ],
    [
      "a password of the wrong type",
      `registries:\n  prod: { url: quay.corp.internal, namespace: p, kind: registry, username: u, password: { v: "\${PW}" } }\nimages:\n  "nginx:1": { targets: [prod] }\n`,
      /registries\.prod\.password: .*\(got \*\*\*\)/,
    ],
    [
      "user:password in a url with a scheme",
      `registries:\n  prod: { url: "https://bob:\${PW}@quay.corp.internal", namespace: p, kind: registry }\nimages:\n  "nginx:1": { targets: [prod] }\n`,
      /registries\.prod\.url: credentials in the url \("https:\/\/\*\*\*@quay\.corp\.internal"\): .*registries\.prod\.username .*registries\.prod\.password/,
    ],
    [
      "user:password in a url without a scheme",
      `registries:\n  prod: { url: "bob:\${PW}@quay.corp.internal:8443", namespace: p, kind: registry }\nimages:\n  "nginx:1": { targets: [prod] }\n`,
      /registries\.prod\.url: credentials in the url \("\*\*\*@quay\.corp\.internal:8443"\)/,
    ],
    [
      "a token alone as the url's userinfo",
      `registries:\n  prod: { url: "https://\${PW}@quay.corp.internal", namespace: p, kind: registry }\nimages:\n  "nginx:1": { targets: [prod] }\n`,
      /registries\.prod\.url: credentials in the url/,
    ],
    [
      "an apiToken next to another error in the same entry",
      `registries:\n  prod: { url: quay.corp.internal, namespace: p, apiToken: "\${PW}", kind: nope }\nimages:\n  "nginx:1": { targets: [prod] }\n`,
      /registries\.prod\.kind: /,
    ],
  ];
  for (const [name, yaml, pattern] of rows) {
    await t.step(name, async () => {
      await validateAndMirror(
        yaml,
        { PW: secret },
        async (command, run, dir) => {
          assert.equal(run.code, 2, `${command}: ${run.stdout}${run.stderr}`);
          assert.match(run.stderr, pattern, command);
          assert.match(run.stderr, /\[CONFIG_INVALID\]/);
          assert.doesNotMatch(run.stderr, /^\s+at |internal error/m, "no stack trace");
          const all = await everything(dir, run);
          assert.ok(!all.includes(secret), `${command} shows the secret:\n${all}`);
          assert.ok(!all.includes(btoa(`bob:${secret}`)));
        },
      );
    });
  }
});

Deno.test("a password outside Latin-1 is accepted by validate and masked in its messages", async () => {
  const secret = "пароль-€-密码-1";
  const good = await validate(
    config(
      '  prod: { url: quay.corp.internal, namespace: platform, apiToken: "${QUAY_TOKEN}", username: u, password: "${PW}" }',
      '  "nginx:1.25": { targets: [prod] }',
    ),
    { ...ENV, PW: secret },
  );
  assert.equal(good.code, 0, good.stderr);
  assert.match(good.stdout, /valid \[CONFIG_VALID\]/);
  assert.ok(!(good.stdout + good.stderr).includes(secret));
  await validateAndMirror(
    'registries:\n  - { url: quay.corp.internal, namespace: p, username: u, password: "${PW}" }\nimages:\n  "nginx:1": { targets: [prod] }\n',
    { PW: secret },
    async (command, run, dir) => {
      assert.equal(run.code, 2, `${command}: ${run.stdout}${run.stderr}`);
      assert.ok(!(await everything(dir, run)).includes(secret), run.stderr);
    },
  );
});

/**
 * A folder nobody can write to, made honestly: mode bits for a user; for root (which passes mode
 * bits) the immutable attribute (`chattr +i`), cleared again by `release`. Null when neither works.
 */
/** `chattr FLAG path`: did it work? (Not every file system has the immutable flag.) */
async function chattr(flag: string, path: string): Promise<boolean> {
  const run = new Deno.Command("chattr", { args: [flag, path], stdout: "null", stderr: "null" });
  return (await run.output().catch(() => ({ success: false }))).success;
}

/** Make `path` a file nobody may append to (chmod for a user, chattr +i for root); its undo. */
async function readOnlyFile(path: string): Promise<(() => Promise<void>) | null> {
  await Deno.writeTextFile(path, "");
  if (Deno.uid() !== 0) {
    await Deno.chmod(path, 0o400);
    return () => Deno.chmod(path, 0o600);
  }
  if (!(await chattr("+i", path))) return null;
  return async () => void (await chattr("-i", path));
}

async function readOnlyDir(
  scratch: string,
): Promise<{ path: string; release: () => Promise<void> } | null> {
  const path = `${scratch}/ro`;
  if (Deno.uid() !== 0) {
    await Deno.mkdir(path, { mode: 0o500 });
    return { path, release: () => Deno.chmod(path, 0o700) };
  }
  await Deno.mkdir(path);
  if (!(await chattr("+i", path))) return null;
  return { path, release: async () => void (await chattr("-i", path)) };
}

Deno.test("bad input is exit 2 with the config path and the offending path, fast, never an internal error", async (t) => {
  const registry = "  prod: { url: quay.corp.internal, namespace: platform, kind: registry }";
  const image = '  "nginx:1.25": { targets: [prod] }';
  const rows: {
    name: string;
    file?: string;
    text: (
      dir: string,
      cleanup: (fn: () => Promise<void>) => void,
    ) => string | Uint8Array | Promise<string | Uint8Array | null>;
    pattern: RegExp;
  }[] = [
    {
      name: "YAML nested 100k levels",
      text: () => config(registry, image, `extra: ${"[".repeat(100_000)}${"]".repeat(100_000)}`),
      pattern:
        /error: nested too deeply at line 3, column \d+: a config may nest at most 32 levels/,
    },
    {
      name: "JSON nested 100k levels",
      file: "config.json",
      text: () =>
        `{"registries": {}, "images": {"a:1": {"targets": ${"[".repeat(100_000)}${
          "]".repeat(100_000)
        }}}}`,
      pattern: /error: images\["a:1"\]\.targets(\[0\]){29}: nested too deeply/,
    },
    {
      name: "YAML nested 40 levels by indentation",
      text: () =>
        config(
          registry,
          image,
          `operation:\n${
            Array.from({ length: 40 }, (_, i) => `${"  ".repeat(i + 1)}k${i}:`).join("\n")
          } 1`,
        ),
      pattern:
        /error: operation\.k0\.k1\.k2\.k3.*\.k30: nested too deeply: a config may nest at most 32 levels/,
    },
    {
      name: "a 50 MB config",
      text: () => {
        const line = new TextEncoder().encode('  "nginx:1.25": { targets: [prod] }\n');
        const bytes = new Uint8Array(50 * 1024 * 1024);
        for (let i = 0; i + line.length <= bytes.length; i += line.length) bytes.set(line, i);
        return bytes;
      },
      pattern:
        /config\.yaml is 52428800 bytes; a config file may have at most 1048576 bytes \(1 MiB\)/,
    },
    {
      name: "targets: [constructor]",
      text: () => config(registry, '  "nginx:1.25": { targets: [constructor] }'),
      pattern:
        /error: images\["nginx:1\.25"\]\.targets\[0\]: unknown registry "constructor" \(known: prod\)/,
    },
    {
      name: "a log dir that is a file",
      text: async (dir) => {
        await Deno.writeTextFile(`${dir}/logfile`, "");
        return config(registry, image, "log: { dir: ./logfile }");
      },
      pattern: /error: log\.dir: \/.*\/logfile is not a folder/,
    },
    {
      name: "a log dir whose parent is a file",
      text: async (dir) => {
        await Deno.writeTextFile(`${dir}/logfile`, "");
        return config(registry, image, "log: { dir: ./logfile/a/b }");
      },
      pattern:
        /error: log\.dir: cannot create the log dir \/.*\/logfile\/a\/b: \/.*\/logfile is a file, not a folder/,
    },
    {
      name: "a log file that is a folder",
      text: async (dir) => {
        await Deno.mkdir(`${dir}/logs/sub`, { recursive: true });
        return config(registry, image, "log: { dir: ./logs, file: sub }");
      },
      pattern: /error: log\.file: \/.*\/logs\/sub is a folder: log\.file must name the log file/,
    },
    {
      name: "a log file that cannot be written",
      text: async (dir, cleanup) => {
        await Deno.mkdir(`${dir}/logs`);
        const ro = await readOnlyFile(`${dir}/logs/x.log`);
        if (ro === null) return null;
        cleanup(ro);
        return config(registry, image, "log: { dir: ./logs, file: x.log }");
      },
      pattern: /error: log\.file: cannot append to the log \/.*\/logs\/x\.log: permission denied/,
    },
    {
      name: "a log dir that cannot be written",
      text: async (dir, cleanup) => {
        const ro = await readOnlyDir(dir);
        if (ro === null) return null;
        cleanup(ro.release);
        return config(registry, image, `log: { dir: "${ro.path}/bb-logs" }`);
      },
      pattern: /error: log\.dir: cannot create the log dir \/.*bb-logs: \/.* is not writable/,
    },
  ];
  // Whether this machine can make a folder nobody writes to (chattr needs a file system with it).
  const probe = await Deno.makeTempDir({ prefix: "bb-roprobe-" });
  const readOnly = await readOnlyDir(probe);
  await readOnly?.release();
  await Deno.remove(probe, { recursive: true });
  for (const row of rows) {
    const ignore = row.name.includes("cannot be written") && readOnly === null;
    // (chattr +i works on a file wherever it works on a folder.)
    await t.step({
      name: `${row.name}${ignore ? " (ignored: no way to make a read-only folder here)" : ""}`,
      ignore,
      fn: async () => {
        for (const command of [["validate"], ["mirror", "--dry-run", "--non-interactive"]]) {
          const dir = await Deno.makeTempDir({ prefix: "bb-badinput-" });
          const cleanups: (() => Promise<void>)[] = [];
          try {
            const file = `${dir}/${row.file ?? "config.yaml"}`;
            const content = await row.text(dir, (fn) => cleanups.push(fn));
            if (content === null) throw new Error("no read-only folder could be made");
            if (typeof content === "string") await Deno.writeTextFile(file, content);
            else await Deno.writeFile(file, content);
            const started = Date.now();
            const run = await runCli([...command, "--config", file], {
              cwd: dir,
              timeoutMs: 30_000,
            });
            const ms = Date.now() - started;
            assert.equal(run.code, 2, `${command[0]}: ${run.stdout}${run.stderr}`);
            assert.match(run.stderr, row.pattern, command[0]);
            assert.ok(run.stderr.includes(`${file}:`), `${command[0]} names the config file`);
            assert.match(run.stderr, /\[CONFIG_INVALID\]/);
            assert.doesNotMatch(run.stderr, /^\s+at |internal error/m, "no stack trace");
            assert.ok(ms < 10_000, `${command[0]} took ${ms} ms`);
          } finally {
            for (const fn of cleanups) await fn();
            await Deno.remove(dir, { recursive: true });
          }
        }
      },
    });
  }
});

Deno.test("validate prints every problem in one run: a typo'd key, an unknown target, a bad reference and a placeholder", async () => {
  const run = await validate(
    config(
      [
        '  prod: { url: quay.corp.internal, namespace: platform, apiToken: "${QUAY_TOKEN}", pasword: x }',
        '  ph: { url: quay.example.com, namespace: YOUR_ORGANIZATION, apiToken: "${QUAY_TOKEN}" }',
      ].join("\n"),
      [
        '  "nginx:1.25": { targets: [prod, drr] }',
        '  "Nginx:1.26": { targets: [prod] }',
        '  "redis:7": { targets: [ph] }',
      ].join("\n"),
    ),
  );
  assert.equal(run.code, 2, run.stdout + run.stderr);
  assert.match(
    run.stderr,
    /error: registries\.prod: unknown key "pasword" \(did you mean "password"\?\)/,
  );
  assert.match(run.stderr, /error: images\["nginx:1\.25"\]\.targets\[1\]: unknown registry "drr"/);
  assert.match(run.stderr, /error: images\["Nginx:1\.26"\]: invalid image reference "Nginx:1\.26"/);
  assert.match(run.stderr, /error: registries\.ph\.url: placeholder "quay\.example\.com" left in/);
  assert.match(run.stderr, /config\.yaml: 5 error\(s\).*\[CONFIG_INVALID\]/);
});
