/**
 * `platforms` and `platformsMode` in the config: the os/arch[/variant] form, the nearest entry
 * wins (image or repository over operation), and the docker engine refuses both.
 */
import assert from "node:assert/strict";
import { checkConfig, loadConfig } from "../../lib/config/load_config.ts";

const REGISTRY = 'registries:\n  dr: { url: "127.0.0.1:5999", namespace: m, kind: registry }\n';

async function withConfig<T>(yaml: string, use: (file: string, dir: string) => Promise<T>) {
  const dir = await Deno.makeTempDir({ prefix: "bb-platforms-" });
  try {
    await Deno.writeTextFile(`${dir}/c.yaml`, `${REGISTRY}log: { dir: ./logs }\n${yaml}`);
    return await use(`${dir}/c.yaml`, dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("platforms: the nearest entry wins; duplicates dropped; absent keeps every platform", async () => {
  const yaml = `operation: { engine: registry, platforms: [linux/amd64] }
images:
  "127.0.0.1:5998/a/b:1": { targets: [dr] }
  "127.0.0.1:5998/a/c:1": { targets: [dr], platforms: [linux/arm64/v8, linux/s390x, linux/s390x] }
repositories:
  "127.0.0.1:5998/a/d": { targets: [dr] }
  "127.0.0.1:5998/a/e": { targets: [dr], platforms: [linux/ppc64le] }
`;
  await withConfig(yaml, async (file, dir) => {
    const config = await loadConfig(file, { env: {}, cwd: dir });
    assert.deepEqual(config.images.map((i) => i.platforms), [
      ["linux/amd64"],
      ["linux/arm64/v8", "linux/s390x"],
    ]);
    assert.deepEqual(config.repositories.map((r) => r.platforms), [
      ["linux/amd64"],
      ["linux/ppc64le"],
    ]);
    assert.equal(config.operation.platformsMode, undefined);
  });
  await withConfig(
    `operation: { engine: registry }\nimages:\n  "127.0.0.1:5998/a/b:1": { targets: [dr] }\n`,
    async (file, dir) => {
      const config = await loadConfig(file, { env: {}, cwd: dir });
      assert.equal("platforms" in config.images[0], false);
    },
  );
});

Deno.test("platforms: bad input is refused with its path and a clear message", async (t) => {
  const rows: [string, string, string, RegExp][] = [
    [
      "an OS alone",
      "operation: { engine: registry, platforms: [linux] }",
      "operation.platforms[0]",
      /"linux" is not a platform: write os\/arch\[\/variant\], e\.g\. linux\/amd64/,
    ],
    [
      "an architecture alone",
      "operation: { engine: registry }",
      'images["127.0.0.1:5998/a/b:1"].platforms[0]',
      /"amd64" is not a platform/,
    ],
    [
      "arch and OS swapped",
      "operation: { engine: registry, platforms: [linux/amd64, amd64/linux] }",
      "operation.platforms[1]",
      /"amd64\/linux" is not a platform/,
    ],
    [
      "an empty list",
      "operation: { engine: registry, platforms: [] }",
      "operation.platforms",
      /an empty list mirrors nothing: list at least one platform/,
    ],
    [
      "platformsMode with the docker engine",
      "operation: { engine: docker, platform: linux/amd64, platformsMode: rewrite }",
      "operation.platformsMode",
      /platformsMode applies to the registry engine/,
    ],
    [
      "platforms with the docker engine",
      "operation: { engine: docker, platform: linux/amd64, platforms: [linux/amd64] }",
      "operation.platforms",
      /platforms needs the registry engine/,
    ],
    [
      "an unknown mode",
      "operation: { engine: registry, platforms: [linux/amd64], platformsMode: thin }",
      "operation.platformsMode",
      /sparse|rewrite/,
    ],
  ];
  for (const [name, operation, path, message] of rows) {
    await t.step(name, async () => {
      const image = name === "an architecture alone"
        ? '"127.0.0.1:5998/a/b:1": { targets: [dr], platforms: [amd64] }'
        : '"127.0.0.1:5998/a/b:1": { targets: [dr] }';
      await withConfig(`${operation}\nimages:\n  ${image}\n`, async (file, dir) => {
        const check = await checkConfig(file, { env: {}, cwd: dir });
        assert.equal(check.config, undefined);
        const found = check.problems.find((p) => p.path === path);
        assert.ok(found, `no problem at ${path}: ${JSON.stringify(check.problems)}`);
        assert.match(found.message, message);
        assert.notEqual(found.severity, "warning");
      });
    });
  }
});

Deno.test("platformsMode without any platforms is a warning, not an error", async () => {
  await withConfig(
    `operation: { engine: registry, platformsMode: rewrite }\nimages:\n  "127.0.0.1:5998/a/b:1": { targets: [dr] }\n`,
    async (file, dir) => {
      const config = await loadConfig(file, { env: {}, cwd: dir });
      assert.deepEqual(config.warnings.map((w) => [w.path, w.message]), [[
        "operation.platformsMode",
        "does nothing without platforms: every platform of every image is mirrored",
      ]]);
    },
  );
});
