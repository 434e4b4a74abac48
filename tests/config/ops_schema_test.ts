import assert from "node:assert/strict";
import { checkConfig, loadConfig } from "../../lib/config/load_config.ts";

const BASE = [
  "registries:",
  "  dr: { url: 'localhost:5000', namespace: m, kind: registry }",
  "images:",
  "  'nginx:1.25': { targets: [dr] }",
];

async function withConfig<T>(lines: string[], fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "bb-ops-schema-" });
  try {
    await Deno.mkdir(`${dir}/etc`);
    await Deno.writeTextFile(`${dir}/etc/config.yaml`, [...BASE, ...lines].join("\n"));
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("metrics and notify: defaults, relative paths, ${VAR} in a header", async () => {
  await withConfig(
    [
      "metrics: { file: ../textfile/bb.prom, pushgateway: 'https://pgw.corp:9091/push' }",
      "notify:",
      "  webhook: https://hooks.example.com/services/T0/B0/xyz",
      "  headers: { Authorization: 'Bearer ${HOOK_TOKEN}' }",
    ],
    async (dir) => {
      const config = await loadConfig("etc/config.yaml", {
        env: { HOOK_TOKEN: "t-123" },
        cwd: dir,
      });
      assert.deepEqual({ ...config.metrics }, {
        file: `${dir}/etc/../textfile/bb.prom`,
        pushgateway: "https://pgw.corp:9091/push",
        job: "bananna_bot",
        caFile: undefined,
        deadline: 30,
      });
      assert.deepEqual(config.notify?.on, ["failure", "drift"]);
      assert.equal(config.notify?.deadline, 30);
      assert.equal(config.notify?.format, "json");
      assert.deepEqual({ ...config.notify?.headers }, { Authorization: "Bearer t-123" });
    },
  );
  await withConfig([], async (dir) => {
    const config = await loadConfig("etc/config.yaml", { env: {}, cwd: dir });
    assert.equal(config.metrics, undefined);
    assert.equal(config.notify, undefined);
  });
});

Deno.test("metrics and notify: each bad value is a problem at its path, secrets not shown", async () => {
  await withConfig(
    [
      "metrics: { file: x.prom, pushgatway: 'http://p:9091', job: 'a/b' }",
      "notify:",
      "  webhook: 'ftp://hooks.example.com/T0/B0/secret-path-1'",
      "  on: [always, failure]",
      "  format: teams",
      '  headers: { "Bad Header": v, X-Key: "key-value-9f8e\\nInjected: 1" }',
    ],
    async (dir) => {
      const check = await checkConfig("etc/config.yaml", { env: {}, cwd: dir });
      assert.equal(check.config, undefined);
      const lines = check.problems.map((p) => `${p.path}: ${p.message}`);
      const at = (path: string) => lines.filter((l) => l.startsWith(`${path}: `));
      assert.match(at("metrics")[0], /unknown key "pushgatway" \(did you mean "pushgateway"\?\)/);
      assert.match(at("metrics.job")[0], /job may hold letters, digits, _ \. : - only/);
      assert.match(
        at("notify.webhook")[0],
        /webhook must be an absolute http:\/\/ or https:\/\/ url/,
      );
      assert.match(at("notify.on")[0], /always stands alone/);
      assert.match(at("notify.format")[0], /json|slack/);
      assert.match(at('notify.headers["Bad Header"]')[0], /not a valid HTTP header name/);
      assert.match(at('notify.headers["X-Key"]')[0], /a header value is one line \(got \*\*\*\)/);
      const all = lines.join("\n");
      assert.ok(!all.includes("secret-path-1"), all);
      assert.ok(!all.includes("key-value-9f8e"), all);
    },
  );
});

Deno.test("notify: headers to a plain http webhook beyond loopback are a warning", async () => {
  const lines = (webhook: string) => [
    "notify:",
    `  webhook: '${webhook}'`,
    "  headers: { Authorization: 'Bearer t-123' }",
  ];
  await withConfig(lines("http://hooks.corp.example/x"), async (dir) => {
    const check = await checkConfig("etc/config.yaml", { env: {}, cwd: dir });
    assert.ok(check.config, "a warning does not stop the run");
    assert.deepEqual(check.problems.filter((p) => p.path === "notify.webhook"), [{
      path: "notify.webhook",
      message:
        "plain http:// beyond loopback: the notification and its headers (a token) travel in clear text; use https://",
      severity: "warning",
    }]);
  });
  for (const webhook of ["https://hooks.corp.example/x", "http://127.0.0.1:8080/x"]) {
    await withConfig(lines(webhook), async (dir) => {
      const check = await checkConfig("etc/config.yaml", { env: {}, cwd: dir });
      assert.deepEqual(check.problems.filter((p) => p.path === "notify.webhook"), [], webhook);
    });
  }
});
