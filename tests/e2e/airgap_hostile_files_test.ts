/**
 * Files from outside given to `import --from` and `export --since`, as subprocesses: the export's
 * `bananna-export.json`, the layout's `index.json` and `oci-layout` as a link to /dev/zero, a FIFO,
 * or past their caps. Each is refused with exit 2 and a message naming the file, never read
 * forever and never a stack trace; each step runs within a deadline of its own. A manifest just
 * under its cap is parsed and refused under 120 MB peak RSS. An export where nothing can be
 * exported still ends with its report, its exit code and a valid (empty) layout.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { stringify } from "yaml";
import { within } from "../support/bounded.ts";
import { runCli } from "../support/cli.ts";
import { gnuTimeAvailable, runCliMeasured } from "../support/hostile_run.ts";
import { airgapCli, statuses } from "../support/e2e_kit.ts";
import { pushTestImage } from "../support/images.ts";
import { registryBinaryAvailable, startRegistry } from "../support/registry.ts";

const MiB = 1024 * 1024;
const skip = registryBinaryAvailable() ? "" : " (ignored: docker-registry is not installed)";

function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

/** A complete-looking export with no image: oci-layout, index.json and its manifest. */
async function writeExport(dir: string): Promise<void> {
  await Deno.mkdir(`${dir}/blobs/sha256`, { recursive: true });
  const layout = new TextEncoder().encode('{"imageLayoutVersion":"1.0.0"}');
  const index = new TextEncoder().encode('{"schemaVersion":2,"manifests":[]}');
  await Deno.writeFile(`${dir}/oci-layout`, layout);
  await Deno.writeFile(`${dir}/index.json`, index);
  await Deno.writeTextFile(
    `${dir}/bananna-export.json`,
    JSON.stringify({
      format: "bananna-export/1",
      id: "test",
      tool: { name: "bananna-bot", version: "0" },
      created: "2026-12-04T00:00:00Z",
      images: [],
      blobs: [],
      inherited: [],
      since: [],
      files: [
        { path: "oci-layout", sha256: sha256(layout), size: layout.length },
        { path: "index.json", sha256: sha256(index), size: index.length },
      ],
      parts: null,
    }),
  );
}

async function mkfifo(path: string): Promise<void> {
  await Deno.remove(path).catch(() => {});
  const out = await new Deno.Command("mkfifo", { args: [path] }).output();
  assert.equal(out.code, 0);
}

async function zeroLink(path: string): Promise<void> {
  await Deno.remove(path).catch(() => {});
  await Deno.symlink("/dev/zero", path);
}

// Before: a link to /dev/zero was read (or hashed) until the test's deadline killed the run, a
// FIFO blocked the open, and an oversize manifest was read whole.
Deno.test("import --from and export --since refuse /dev/zero, FIFOs and oversize files with exit 2", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "bb-hostile-files-" });
  try {
    await Deno.writeTextFile(
      `${dir}/config.yaml`,
      stringify({
        registries: { dr: { url: "127.0.0.1:9", namespace: "mirror", kind: "registry" } },
        log: { dir: "./logs" },
        operation: { engine: "registry", maxRetries: 0 },
        images: { "127.0.0.1:9/team/app:1": { targets: ["dr"] } },
      }),
    );
    const exp = `${dir}/export`;
    const big = `${dir}/big.json`;
    await Deno.writeTextFile(big, `{"pad":"${"x".repeat(5 * MiB)}"}`);
    const rows: [string, () => Promise<void>, string[], RegExp][] = [
      [
        "import: bananna-export.json is a link to /dev/zero",
        async () => {
          await writeExport(exp);
          await zeroLink(`${exp}/bananna-export.json`);
        },
        ["import", "--from", exp],
        /export\/bananna-export\.json \(an export's bananna-export\.json\) is a character device/,
      ],
      [
        "import: bananna-export.json is a FIFO",
        async () => {
          await writeExport(exp);
          await mkfifo(`${exp}/bananna-export.json`);
        },
        ["import", "--from", exp],
        /export\/bananna-export\.json \(an export's bananna-export\.json\) is a FIFO/,
      ],
      [
        "import: bananna-export.json of 5 MiB",
        async () => {
          await writeExport(exp);
          await Deno.copyFile(big, `${exp}/bananna-export.json`);
        },
        ["import", "--from", exp],
        /bananna-export\.json\) has \d+ bytes or more, more than its 4194304-byte cap/,
      ],
      [
        "import: index.json is a link to /dev/zero",
        async () => {
          await writeExport(exp);
          await zeroLink(`${exp}/index.json`);
        },
        ["import", "--from", exp],
        /export\/index\.json \(the layout's index\.json\) is a character device/,
      ],
      [
        "import: oci-layout is a link to /dev/zero (no bananna-export.json)",
        async () => {
          await writeExport(exp);
          await Deno.remove(`${exp}/bananna-export.json`);
          await zeroLink(`${exp}/oci-layout`);
        },
        ["import", "--from", exp],
        /export\/oci-layout \(an OCI layout's \{"imageLayoutVersion": \.\.\.\}\) is a character device/,
      ],
      [
        "import: index.json is a FIFO (no bananna-export.json)",
        async () => {
          await writeExport(exp);
          await Deno.remove(`${exp}/bananna-export.json`);
          await mkfifo(`${exp}/index.json`);
        },
        ["import", "--from", exp],
        /export\/index\.json \(an OCI image index \(a layout's index\.json\)\) is a FIFO/,
      ],
      [
        "export --since /dev/zero",
        () => Promise.resolve(),
        ["export", "--to", `${dir}/out`, "--since", "/dev/zero"],
        /\/dev\/zero \(an export's bananna-export\.json\) is a character device/,
      ],
      [
        "export --since a link to /dev/zero",
        () => zeroLink(`${dir}/prev.json`),
        ["export", "--to", `${dir}/out`, "--since", `${dir}/prev.json`],
        /prev\.json \(an export's bananna-export\.json\) is a character device/,
      ],
      [
        "export --since a FIFO",
        () => mkfifo(`${dir}/prev.json`),
        ["export", "--to", `${dir}/out`, "--since", `${dir}/prev.json`],
        /prev\.json \(an export's bananna-export\.json\) is a FIFO/,
      ],
      [
        "export --since a 5 MiB file",
        () => Promise.resolve(),
        ["export", "--to", `${dir}/out`, "--since", big],
        /big\.json \(an export's bananna-export\.json\) has \d+ bytes or more, more than its 4194304-byte cap/,
      ],
    ];
    for (const [name, setup, args, message] of rows) {
      await t.step(name, () =>
        within(40_000, name, async () => {
          await Deno.remove(exp, { recursive: true }).catch(() => {});
          await setup();
          const out = await runCli(
            [...args, "--config", `${dir}/config.yaml`, "--non-interactive"],
            { cwd: dir, timeoutMs: 30_000 },
          );
          assert.equal(out.code, 2, out.stderr + out.stdout);
          assert.match(out.stderr, message);
          assert.doesNotMatch(out.stderr, /\n\s+at |internal error/i);
        }));
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name:
    "import: a bananna-export.json just under its cap is parsed and refused under 120 MB peak RSS (as shipped)",
  ignore: !gnuTimeAvailable(),
  fn: () =>
    within(60_000, "a 16 MiB manifest", async () => {
      const dir = await Deno.makeTempDir({ prefix: "bb-hostile-manifest-" });
      try {
        await Deno.writeTextFile(
          `${dir}/config.yaml`,
          stringify({
            registries: { dr: { url: "127.0.0.1:9", namespace: "mirror", kind: "registry" } },
            log: { dir: "./logs" },
            images: { "127.0.0.1:9/team/app:1": { targets: ["dr"] } },
          }),
        );
        await writeExport(`${dir}/export`);
        const entries = Array.from({ length: 18_000 }, (_, i) => ({
          digest: `sha256:${i.toString(16).padStart(64, "0")}`,
          size: "not a number",
          repositories: ["x".repeat(100)],
        }));
        const text = JSON.stringify({ format: "bananna-export/1", blobs: entries });
        assert.ok(text.length < 4 * MiB && text.length > 3.8 * MiB, String(text.length));
        await Deno.writeTextFile(`${dir}/export/bananna-export.json`, text);
        const run = await runCliMeasured(
          [
            "import",
            "--from",
            `${dir}/export`,
            "--config",
            `${dir}/config.yaml`,
            "--non-interactive",
          ],
          { cwd: dir, timeoutMs: 50_000, shippedV8Flags: true },
        );
        assert.equal(run.code, 2, run.stderr);
        assert.match(run.stderr, /bananna-export\.json is not a bananna-export\/1 manifest/);
        assert.ok(run.peakRssMb < 120, `peak RSS ${run.peakRssMb.toFixed(1)} MB`);
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    }),
});

// Before: "internal error: No such file or directory: open .../index.json" (the layout had no
// index.json, since no image was written), no report, exit 1 for the wrong reason.
Deno.test({
  name: `export where nothing can be exported: a report, exit 1, a valid empty layout${skip}`,
  ignore: Boolean(skip),
  fn: () =>
    within(60_000, "an export of nothing", async () => {
      await using src = await startRegistry({ auth: "none" });
      const dir = await Deno.makeTempDir({ prefix: "bb-export-nothing-" });
      try {
        const out = await airgapCli(dir, ["export", "--to", `${dir}/out`], {
          config: {
            registries: { dr: { url: "127.0.0.1:9", namespace: "mirror", kind: "registry" } },
            log: { dir: "./logs" },
            operation: { engine: "registry", retryDelay: 0.05, maxRetries: 1 },
            images: {
              [`${src.host}/team/none:1`]: { targets: ["dr"] },
              [`${src.host}/team/gone:2`]: { targets: ["dr"] },
            },
          },
        });
        assert.equal(out.code, 1, out.stderr + out.stdout);
        assert.doesNotMatch(out.stderr + out.stdout, /internal error|No such file/i);
        assert.deepEqual(statuses(out.report).sort(), [
          `export/${src.host}/team/gone:2 failed`,
          `export/${src.host}/team/none:1 failed`,
        ]);
        const index = JSON.parse(await Deno.readTextFile(`${dir}/out/index.json`));
        assert.deepEqual(index.manifests, []);
        const manifest = JSON.parse(await Deno.readTextFile(`${dir}/out/bananna-export.json`));
        assert.deepEqual(manifest.images, []);
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    }),
});

// Before: with blobs/ or blobs/sha256/ a link, every blob landed in the link's target and the
// export reported success (exit 0).
Deno.test({
  name:
    `export refuses a layout whose blobs/ or blobs/sha256/ is a link; nothing lands in its target${skip}`,
  ignore: Boolean(skip),
  async fn(t) {
    await using src = await startRegistry({ auth: "none" });
    await pushTestImage(src, "team/app:1", { kind: "oci", seed: 71 });
    for (const linked of ["blobs", "blobs/sha256"]) {
      await t.step(`${linked} is a link`, () =>
        within(60_000, linked, async () => {
          const dir = await Deno.makeTempDir({ prefix: "bb-export-link-" });
          try {
            const elsewhere = `${dir}/elsewhere`;
            await Deno.mkdir(elsewhere);
            await Deno.mkdir(`${dir}/out/blobs`, { recursive: true });
            if (linked === "blobs") await Deno.remove(`${dir}/out/blobs`);
            await Deno.symlink(elsewhere, `${dir}/out/${linked}`);
            const out = await airgapCli(dir, ["export", "--to", `${dir}/out`], {
              config: {
                registries: { dr: { url: "127.0.0.1:9", namespace: "mirror", kind: "registry" } },
                log: { dir: "./logs" },
                operation: { engine: "registry", retryDelay: 0.05, maxRetries: 1 },
                images: { [`${src.host}/team/app:1`]: { targets: ["dr"] } },
              },
            });
            assert.equal(out.code, 1, out.stderr + out.stdout);
            assert.match(
              out.stderr + out.stdout,
              new RegExp(
                `MIRROR_UNSAFE_PATH.*out/${linked} \\(in the layout .*\\) is a symbolic link`,
              ),
            );
            assert.doesNotMatch(out.stderr, /internal error|\n\s+at /i);
            const landed = [...Deno.readDirSync(elsewhere)].map((e) => e.name);
            assert.deepEqual(landed, [], "nothing written through the link");
          } finally {
            await Deno.remove(dir, { recursive: true });
          }
        }));
    }
  },
});
