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
