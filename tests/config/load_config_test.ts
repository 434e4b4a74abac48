import assert from "node:assert/strict";
import { checkConfig, expandEnv, formatPath, loadConfig } from "../../lib/config/load_config.ts";
import { selectImages } from "../../lib/cli/mirror_command.ts";
import { ConfigError, type ConfigProblem } from "../../lib/errors.ts";

Deno.test("formatPath() writes paths the way validate prints them", () => {
  assert.equal(
    formatPath(["images", "nginx:1.25", "targets", 1]),
    'images["nginx:1.25"].targets[1]',
  );
  assert.equal(formatPath(["registries", "prod", "url"]), "registries.prod.url");
});

Deno.test("expandEnv() expands ${VAR}, keeps $${ literal, and reports missing variables with their path", () => {
  const problems: ConfigProblem[] = [];
  const out = expandEnv({ a: "x-${A}-y", b: ["$${NOT}", "${MISSING}"] }, { A: "1" }, [], problems);
  assert.deepEqual(out, { a: "x-1-y", b: ["${NOT}", ""] });
  assert.deepEqual(problems, [{
    path: "b[1]",
    message: "environment variable MISSING is not set (used as ${MISSING})",
  }]);
});

Deno.test("loadConfig() resolves defaults, schemes, relative paths and destination names", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${dir}/etc`);
    await Deno.writeTextFile(
      `${dir}/etc/config.yaml`,
      [
        "registries:",
        "  q: { url: quay.corp.internal, namespace: acme, apiToken: '${T}' }",
        "  local: { url: 'localhost:5000', namespace: m, kind: registry }",
        "  plain: { url: 'http://mirror.corp:5000', namespace: m, kind: registry }",
        "log: { dir: ../var/log }",
        "images:",
        "  'nginx:1.25': { targets: [q, local, plain] }",
        "  'quay.io/prometheus/node-exporter:v1.8.2': { targets: [q], repository: node-exporter-mirror }",
      ].join("\n"),
    );
    const config = await loadConfig("etc/config.yaml", { env: { T: "tok-1234" }, cwd: dir });
    assert.equal(config.registries.q.scheme, "https");
    assert.equal(config.registries.q.organization, "acme");
    assert.equal(config.registries.local.scheme, "http");
    assert.equal(config.registries.plain.scheme, "http");
    assert.equal(config.log.dir, `${dir}/etc/../var/log`);
    assert.equal(config.log.rotationDays, 7);
    assert.equal(config.operation.engine, "docker");
    assert.deepEqual(config.images.map((i) => i.repository), ["nginx", "node-exporter-mirror"]);
    assert.deepEqual(config.images[0].source, {
      registry: "docker.io",
      repository: "library/nginx",
      tag: "1.25",
    });
    assert.deepEqual(selectImages(config.images, ["quay.io/*"]).map((i) => i.repository), [
      "node-exporter-mirror",
    ]);
    assert.throws(() => selectImages(config.images, ["redis*"]), /matched no image/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadConfig() throws one ConfigError with every problem", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(
      `${dir}/c.json`,
      JSON.stringify({
        registries: { q: { url: "q.corp", namespace: "a" } },
        images: { "x:1": { targets: ["nope"] } },
        extra: 1,
      }),
    );
    await assert.rejects(() => loadConfig("c.json", { env: {}, cwd: dir }), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.match(
        e.problems.map((p) => `${p.path}: ${p.message}`).join("\n"),
        /unknown key "extra"/,
      );
      return true;
    });
    await Deno.writeTextFile(
      `${dir}/c.json`,
      JSON.stringify({
        registries: { q: { url: "q.corp", namespace: "a" } },
        images: { "x:1": { targets: ["nope"] } },
      }),
    );
    const check = await checkConfig(`${dir}/c.json`, { env: {}, cwd: "/" });
    const text = check.problems.map((p) => `${p.path}: ${p.message}`).join("\n");
    assert.match(text, /images\["x:1"\]\.targets\[0\]: unknown registry "nope" \(known: q\)/);
    assert.match(text, /registries\.q\.apiToken: missing/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
