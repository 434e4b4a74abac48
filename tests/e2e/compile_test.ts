/**
 * `deno task compile` builds ./bananna-bot, and the binary takes its config at run time.
 * `deno compile` downloads its runtime (denort) unless DENORT_BIN points at one; where neither is
 * possible the test is reported as ignored, with that reason in its name.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../../", import.meta.url));
const denort = Deno.env.get("DENORT_BIN");
const reason = denort ? "" : " (ignored: DENORT_BIN is not set; deno compile must download denort)";

Deno.test({
  name: `deno task compile builds a binary that reads a YAML config at run time${reason}`,
  ignore: !denort,
  async fn() {
    const out = await Deno.makeTempDir();
    try {
      const binary = `${out}/bananna-bot`;
      const compile = await new Deno.Command("deno", {
        args: [
          "compile",
          "--frozen",
          "--allow-net",
          "--allow-read",
          "--allow-write",
          "--allow-env",
          "--allow-run",
          "--include",
          "config.ts",
          "--output",
          binary,
          "main.ts",
        ],
        cwd: root,
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.ok(compile.success, new TextDecoder().decode(compile.stderr));
      const version = await new Deno.Command(binary, { args: ["--version"], stdout: "piped" })
        .output();
      const { version: expected } = JSON.parse(await Deno.readTextFile(`${root}/deno.json`));
      assert.match(
        new TextDecoder().decode(version.stdout),
        new RegExp(expected.replace(/\./g, "\\.")),
      );
      const config = `${out}/config.yaml`;
      await Deno.writeTextFile(
        config,
        [
          "registries:",
          "  local: { url: 127.0.0.1:5000, namespace: mirror, kind: registry }",
          "log: { dir: ./logs }",
          "operation: { engine: registry }",
          "images:",
          '  "busybox:1.36": { targets: [local] }',
        ].join("\n"),
      );
      const validate = await new Deno.Command(binary, {
        args: ["validate", "--config", config],
        cwd: out,
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(validate.code, 0, new TextDecoder().decode(validate.stderr));
    } finally {
      await Deno.remove(out, { recursive: true });
    }
  },
});
