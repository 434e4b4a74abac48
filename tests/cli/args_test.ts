import assert from "node:assert/strict";
import { parseArgs } from "../../lib/cli/args.ts";
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
    [["deploy"], /unknown command "deploy"/],
    [["validate", "--dry-run"], /--dry-run is an option of mirror/],
    [["validate", "--metrics-file", "m.prom"], /--metrics-file is an option of mirror/],
    [["mirror", "--metrics-file", ""], /--metrics-file needs a path/],
    [["mirror", "extra"], /unexpected argument "extra"/],
    [["mirror", "--config"], /--config/],
    [[], /no command/],
    [["mirror", "--openshift-mirror-sets", ""], /--openshift-mirror-sets needs a path/],
    [
      ["validate", "--openshift-mirror-sets", "x"],
      /--openshift-mirror-sets is an option of mirror/,
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
    [["mirror", "--merge", "logs"], /--merge is an option of report, not mirror/],
    [["validate", "--shards", "2"], /--shards is an option of mirror, not validate/],
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
    [["export", "--to", "o", "--from", "x"], /--from is not an option of export/],
    [["import", "--from", "x", "--to", "o"], /--to is not an option of import/],
    [["import", "--from", "x", "--since", "p"], /--since is an option of export, not import/],
    [["import", "--from", "x", "--part-size", "4G"], /--part-size is an option of export/],
    [
      ["export", "--to", "o", "--openshift-mirror-sets", "s"],
      /--openshift-mirror-sets is not an option of export/,
    ],
    [["export", "--to", "o", "--shard", "0/2"], /--shard is not an option of export/],
    [["mirror", "--to", "o"], /--to is an option of export\/import, not mirror/],
    [["mirror", "--part-size", "4G"], /--part-size is an option of export\/import, not mirror/],
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
