import assert from "node:assert/strict";
import { COMMAND_OPTIONS, OPTION_NAMES, parseArgs } from "../../lib/cli/args.ts";
import { UsageError } from "../../lib/errors.ts";

Deno.test("parseArgs() reads mirror options", () => {
  assert.deepEqual(
    parseArgs([
      "mirror",
      "-c",
      "/etc/bb.yaml",
      "--dry-run",
      "--only",
      "nginx*",
      "--only",
      "x",
      "--report",
      "r.json",
      "--non-interactive",
    ]),
    {
      kind: "mirror",
      config: "/etc/bb.yaml",
      dryRun: true,
      only: ["nginx*", "x"],
      report: "r.json",
      nonInteractive: true,
    },
  );
  assert.deepEqual(parseArgs(["validate"]), { kind: "validate", config: undefined });
  assert.deepEqual(parseArgs(["mirror", "--openshift-mirror-sets", "sets.yaml"]), {
    kind: "mirror",
    config: undefined,
    dryRun: false,
    only: [],
    report: undefined,
    nonInteractive: false,
    openshiftMirrorSets: "sets.yaml",
  });
  assert.equal(
    (parseArgs(["mirror", "--metrics-file", "/var/lib/textfile/bb.prom"]) as {
      metricsFile: string;
    })
      .metricsFile,
    "/var/lib/textfile/bb.prom",
  );
});

Deno.test("parseArgs() refuses bad usage with a UsageError naming the problem", async (t) => {
  const rows: [string[], RegExp][] = [
    [["mirror", "--bogus"], /--bogus/],
    [
      ["deploy"],
      /unknown command "deploy" \(commands: mirror, validate, report, export, import, help\)/,
    ],
    [["mirorr"], /unknown command "mirorr" \(did you mean "mirror"\?\)/],
    [["help", "foo"], /unknown command "foo"/],
    [["help", "exprot"], /unknown command "exprot" \(did you mean "export"\?\)/],
    [["help", "mirror", "extra"], /unexpected argument "extra"/],
    [["mirror", "--dry-rum"], /Unknown option '--dry-rum' \(did you mean --dry-run\?\)/],
    [["validate", "--confg", "x.yaml"], /Unknown option '--confg' \(did you mean --config\?\)/],
    [
      ["validate", "--dry-run"],
      /--dry-run is not an option of validate \(it is an option of mirror, export, import\)/,
    ],
    [
      ["validate", "--metrics-file", "m.prom"],
      /--metrics-file is not an option of validate \(it is an option of mirror\)/,
    ],
    [["mirror", "--metrics-file", ""], /--metrics-file needs a path/],
    [["mirror", "extra"], /unexpected argument "extra"/],
    [["mirror", "--config"], /--config/],
    [[], /no command/],
    [["mirror", "--openshift-mirror-sets", ""], /--openshift-mirror-sets needs a path/],
    [
      ["validate", "--openshift-mirror-sets", "x"],
      /--openshift-mirror-sets is not an option of validate \(it is an option of mirror, report, import\)/,
    ],
    [["mirror", "--openshift-mirror-sets", "x", "--shards", "3"], /a shard knows only its own/],
  ];
  for (const [argv, pattern] of rows) {
    await t.step(argv.join(" ") || "(none)", () => {
      assert.throws(
        () => parseArgs(argv),
        (e: unknown) => e instanceof UsageError && pattern.test(e.message),
      );
    });
  }
});

Deno.test("parseArgs() reads mirror --shard/--shards and report --merge/--output", async (t) => {
  const mirror = parseArgs(["mirror", "--shard", "1/3", "--shards", "3"]);
  assert.equal(mirror.kind === "mirror" && mirror.shard, "1/3");
  assert.equal(mirror.kind === "mirror" && mirror.shards, "3");
  assert.deepEqual(parseArgs(["report", "--merge", "logs", "--output", "all.json"]), {
    kind: "report",
    merge: "logs",
    output: "all.json",
  });
  const help = parseArgs(["help", "report"]);
  assert.match(help.kind === "help" ? help.text : "", /report --merge DIR \[--output PATH\]/);
  const rows: [string[], RegExp][] = [
    [["report"], /report needs --merge DIR/],
    [["report", "--merge", "logs", "--config", "c.yaml"], /--config is not an option of report/],
    [["report", "--merge", "logs", "--shard", "0/2"], /--shard is not an option of report/],
    [
      ["mirror", "--merge", "logs"],
      /--merge is not an option of mirror \(it is an option of report\)/,
    ],
    [
      ["validate", "--shards", "2"],
      /--shards is not an option of validate \(it is an option of mirror\)/,
    ],
  ];
  for (const [argv, message] of rows) {
    await t.step(argv.join(" "), () => {
      assert.throws(
        () => parseArgs(argv),
        (e) => e instanceof UsageError && message.test(e.message),
      );
    });
  }
});

Deno.test("parseArgs() reads export and import, and refuses their flags elsewhere", async (t) => {
  await t.step("export", () => {
    assert.deepEqual(
      parseArgs(["export", "--to", "out", "--since", "prev/bananna-export.json", "-n"]),
      {
        kind: "export",
        to: "out",
        since: "prev/bananna-export.json",
        config: undefined,
        dryRun: true,
        only: [],
        report: undefined,
        nonInteractive: false,
      },
    );
    assert.equal(
      (parseArgs(["export", "--to", "out", "--part-size", "4G"]) as { partSize?: string }).partSize,
      "4G",
    );
  });
  await t.step("import", () => {
    assert.deepEqual(
      parseArgs([
        "import",
        "--from",
        "media/bananna-export.tar.000",
        "--openshift-mirror-sets",
        "s",
      ]),
      {
        kind: "import",
        from: "media/bananna-export.tar.000",
        openshiftMirrorSets: "s",
        config: undefined,
        dryRun: false,
        only: [],
        report: undefined,
        nonInteractive: false,
      },
    );
  });
  const refused: [string[], RegExp][] = [
    [["export"], /export needs --to DIR/],
    [["import"], /import needs --from DIR/],
    [
      ["export", "--to", "o", "--from", "x"],
      /--from is not an option of export \(it is an option of import\)/,
    ],
    [["import", "--from", "x", "--to", "o"], /--to is not an option of import/],
    [
      ["import", "--from", "x", "--since", "p"],
      /--since is not an option of import \(it is an option of export\)/,
    ],
    [
      ["import", "--from", "x", "--part-size", "4G"],
      /--part-size is not an option of import \(it is an option of export\)/,
    ],
    [
      ["export", "--to", "o", "--openshift-mirror-sets", "s"],
      /--openshift-mirror-sets is not an option of export/,
    ],
    [["export", "--to", "o", "--shard", "0/2"], /--shard is not an option of export/],
    [["mirror", "--to", "o"], /--to is not an option of mirror \(it is an option of export\)/],
    [
      ["mirror", "--part-size", "4G"],
      /--part-size is not an option of mirror \(it is an option of export\)/,
    ],
  ];
  for (const [argv, message] of refused) {
    await t.step(argv.join(" "), () => {
      assert.throws(
        () => parseArgs(argv),
        (e: unknown) => e instanceof UsageError && message.test(e.message),
      );
    });
  }
});

Deno.test("parseArgs() drops the `--` that `deno task NAME -- ARGS` passes on", () => {
  assert.deepEqual(
    parseArgs(["mirror", "--", "--dry-run"]),
    parseArgs(["mirror", "--dry-run"]),
  );
  assert.deepEqual(parseArgs(["validate", "--", "--config", "x.yaml"]), {
    kind: "validate",
    config: "x.yaml",
  });
  assert.deepEqual(parseArgs(["--", "validate"]), { kind: "validate", config: undefined });
  assert.equal(parseArgs(["export", "--", "--to", "out"]).kind, "export");
  // Only that one separator: a second `--`, or one after other flags, is still refused.
  assert.throws(() => parseArgs(["mirror", "--", "--", "--dry-run"]), UsageError);
  assert.throws(() => parseArgs(["mirror", "--dry-run", "--", "x"]), UsageError);
});

Deno.test("parseArgs() gives each command's own help, and every command's flags are parser options", () => {
  for (const [name, flags] of Object.entries(COMMAND_OPTIONS)) {
    const viaHelp = parseArgs(["help", name]);
    const viaFlag = parseArgs([name, "--help"]);
    assert.equal(viaHelp.kind, "help");
    assert.deepEqual(viaFlag, viaHelp);
    const text = viaHelp.kind === "help" ? viaHelp.text : "";
    assert.match(text, new RegExp(`^Usage: bananna-bot ${name}\\b`), name);
    for (const flag of flags) assert.ok(OPTION_NAMES.includes(`--${flag}`), flag);
  }
  const main = parseArgs(["help"]);
  assert.equal(main.kind === "help" && main.text.startsWith("bananna-bot "), true);
});

Deno.test("parseArgs() reads argv as node:util parseArgs (strict) does, without loading it", async (t) => {
  const { parseArgs: nodeParse } = await import("node:util");
  const options = {
    config: { type: "string", short: "c" },
    "dry-run": { type: "boolean", short: "n" },
    only: { type: "string", multiple: true },
    report: { type: "string" },
    "non-interactive": { type: "boolean" },
  } as const;
  const node = (args: string[]) => {
    const { values, positionals } = nodeParse({
      args,
      options,
      strict: true,
      allowPositionals: true,
    });
    const only = (values.only as string[] | undefined) ?? [];
    return {
      kind: positionals[0],
      config: values.config,
      dryRun: Boolean(values["dry-run"]),
      only,
      report: values.report,
      nonInteractive: Boolean(values["non-interactive"]),
    };
  };
  const accepted = [
    ["mirror", "--config=/etc/bb.yaml", "-n"],
    ["mirror", "-c/etc/bb.yaml", "--only", "a", "--only=b", "--only", "-"],
    ["mirror", "-nc", "bb.yaml", "--report", "r.json"],
    ["mirror", "-ncbb.yaml", "--config", "last.yaml", "--non-interactive"],
    ["-n", "mirror", "--dry-run", "--config=a=b"],
    ["mirror", "--"],
  ];
  for (const argv of accepted) {
    await t.step(argv.join(" "), () => {
      const ours = parseArgs(argv);
      assert(ours.kind === "mirror");
      const { config, dryRun, only, report, nonInteractive } = ours;
      assert.deepEqual(
        { kind: ours.kind, config, dryRun, only, report, nonInteractive },
        node(argv),
      );
    });
  }
  const refused: [string[], RegExp][] = [
    [["mirror", "--config"], /Option '-c, --config <value>' argument missing/],
    [["mirror", "--report"], /Option '--report <value>' argument missing/],
    [["mirror", "--dry-run=yes"], /Option '-n, --dry-run' does not take an argument/],
    [["mirror", "--config", "--dry-run"], /argument is ambiguous.*--config=--dry-run/],
    [["mirror", "-x"], /Unknown option '-x'/],
    [["mirror", "-nx"], /Unknown option '-x'/],
  ];
  for (const [argv, message] of refused) {
    await t.step(`${argv.join(" ")} refused`, () => {
      assert.throws(() => node(argv));
      assert.throws(
        () => parseArgs(argv),
        (e: unknown) => e instanceof UsageError && message.test(e.message),
      );
    });
  }
});
