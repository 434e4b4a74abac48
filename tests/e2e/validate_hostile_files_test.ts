/**
 * `validate` on files from outside that are no regular file: the config itself, a registry's
 * caFile and a cosign key as a link to /dev/zero, a FIFO, or past their caps. Each is exit 2 with
 * a message naming the file, at once (each step has a deadline of its own), never a stack trace.
 * And docker's config.json as /dev/zero or a FIFO reads as an empty config at once.
 */
import assert from "node:assert/strict";
import { readDockerConfig } from "../../lib/credentials/docker_config.ts";
import { within } from "../support/bounded.ts";
import { runCli } from "../support/cli.ts";

async function plant(path: string, kind: "zero" | "fifo" | "big"): Promise<void> {
  await Deno.remove(path).catch(() => {});
  if (kind === "zero") await Deno.symlink("/dev/zero", path);
  else if (kind === "fifo") await new Deno.Command("mkfifo", { args: [path] }).output();
  else await Deno.writeTextFile(path, "#".repeat(2 * 1024 * 1024));
}

const KINDS = {
  zero: /is a character device, not a regular file/,
  fifo: /is a FIFO, not a regular file/,
  big: /more than its \d+-byte cap/,
} as const;

// Before: a link to /dev/zero was read until memory ran out, a FIFO blocked forever (both until
// the step's deadline), and the oversize CA file and key were read whole.
Deno.test("validate refuses a config, caFile or cosign key that is /dev/zero, a FIFO or oversize", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "bb-validate-hostile-" });
  try {
    const config = (extra: string) =>
      [
        "registries:",
        `  prod: { url: registry.example, namespace: platform, kind: registry${extra} }`,
        "log: { dir: ./logs }",
        'images: { "nginx:1": { targets: [prod], verify: { cosignKey: ./key.pub } } }',
      ].join("\n");
    for (const kind of ["zero", "fifo", "big"] as const) {
      for (
        const [name, file, extra] of [
          ["caFile", "ca.pem", ", caFile: ./ca.pem"],
          ["cosign key", "key.pub", ""],
          ["the config itself", "config.yaml", ""],
        ] as const
      ) {
        await t.step(`${name}: ${kind}`, () =>
          within(30_000, `${name} ${kind}`, async () => {
            for (const f of ["config.yaml", "key.pub", "ca.pem"]) {
              await Deno.remove(`${dir}/${f}`).catch(() => {});
            }
            await Deno.writeTextFile(`${dir}/config.yaml`, config(extra));
            await Deno.writeTextFile(`${dir}/key.pub`, "not a key");
            await plant(`${dir}/${file}`, kind);
            const out = await runCli(["validate", "--config", `${dir}/config.yaml`], {
              cwd: dir,
              timeoutMs: 20_000,
            });
            assert.equal(out.code, 2, out.stderr + out.stdout);
            const said = out.stderr + out.stdout;
            assert.match(said, new RegExp(file.replace(".", "\\.")));
            // The config's own check (stat first) words it its way.
            assert.match(
              said,
              file === "config.yaml" ? /is not a file|may have at most \d+ bytes/ : KINDS[kind],
            );
            assert.doesNotMatch(said, /internal error|\n\s+at /i);
          }));
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readDockerConfig(): config.json as /dev/zero, a FIFO or oversize is an empty config, at once", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "bb-docker-config-hostile-" });
  try {
    for (const kind of ["zero", "fifo", "big"] as const) {
      await t.step(kind, () =>
        within(10_000, kind, async () => {
          await plant(`${dir}/config.json`, kind);
          const read = await readDockerConfig({ DOCKER_CONFIG: dir });
          assert.deepEqual(read.auths, {});
        }));
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
