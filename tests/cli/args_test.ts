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
});

Deno.test("parseArgs() refuses bad usage with a UsageError naming the problem", async (t) => {
  const rows: [string[], RegExp][] = [
    [["mirror", "--bogus"], /--bogus/],
    [["deploy"], /unknown command "deploy"/],
    [["validate", "--dry-run"], /--dry-run is an option of mirror/],
    [["mirror", "extra"], /unexpected argument "extra"/],
    [["mirror", "--config"], /--config/],
    [[], /no command/],
    [["mirror", "--openshift-mirror-sets", ""], /--openshift-mirror-sets needs a path/],
    [
      ["validate", "--openshift-mirror-sets", "x"],
      /--openshift-mirror-sets is an option of mirror/,
    ],
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
