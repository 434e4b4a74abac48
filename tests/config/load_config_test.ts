import assert from "node:assert/strict";
import { checkConfig, expandEnv, loadConfig, logOpenError } from "../../lib/config/load_config.ts";
import { formatPath } from "../../lib/config/parse_config_text.ts";
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
  assert.deepEqual({ ...(out as object) }, { a: "x-1-y", b: ["${NOT}", ""] });
  assert.equal(Object.getPrototypeOf(out), null, "maps without prototypes");
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
    assert.equal(config.operation.engine, "registry", "the default engine needs no daemon");
    assert.equal(config.operation.dockerHubReserve, 10);
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

Deno.test("logOpenError(): a log that became a folder after validation is a ConfigError naming it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(
      `${dir}/c.yaml`,
      "registries:\n  r: { url: 'localhost:5000', namespace: m, kind: registry }\nimages:\n  'a/b:1': { targets: [r] }\n",
    );
    const config = await loadConfig("c.yaml", { env: {}, cwd: dir });
    await Deno.mkdir(`${config.log.dir}/${config.log.file}`, { recursive: true });
    const opened = await Deno.open(`${config.log.dir}/${config.log.file}`, {
      append: true,
      create: true,
    }).catch((error) => error);
    const error = logOpenError(config, opened);
    assert.ok(error instanceof ConfigError, String(error));
    assert.equal(error.file, `${dir}/c.yaml`);
    assert.equal(error.problems[0].path, "log");
    assert.match(
      error.problems[0].message,
      /^cannot open the log \/.*\/bananna-bot\.log: Is a directory/,
    );
    const bug = new TypeError("not a file-system error");
    assert.equal(logOpenError(config, bug), bug, "anything else keeps its stack");
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

/** checkConfig() on a JSON config written to a temp dir; the problems as `path: message` lines. */
async function problemsOf(config: unknown, env: Record<string, string> = {}): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "bb-config-" });
  try {
    await Deno.writeTextFile(`${dir}/c.json`, JSON.stringify(config));
    const check = await checkConfig(`${dir}/c.json`, { env, cwd: dir });
    return check.problems.map((p) => `${p.severity ?? "error"}: ${p.path}: ${p.message}`).join(
      "\n",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** A valid config (registry engine, no Quay token needed) to break one piece at a time. */
function goodConfig(): Record<string, Record<string, unknown>> {
  return {
    registries: { dst: { url: "mirror.corp.internal", namespace: "m", kind: "registry" } },
    sources: { "ghcr.io": { username: "bot", password: "${GHCR_TOKEN}" } },
    log: { dir: "./logs" },
    operation: { engine: "registry" },
    images: { "nginx:1.25": { targets: ["dst"] } },
  };
}

Deno.test("checkConfig() rejects an unknown key in every section, naming the section's path", async (t) => {
  const env = { GHCR_TOKEN: "ghcr-token-1" };
  assert.doesNotMatch(await problemsOf(goodConfig(), env), /^error/m, "the base config is valid");
  const rows: [string, (c: ReturnType<typeof goodConfig>) => void, RegExp][] = [
    ["top level", (c) => (c.extra = {}), /^error: : unknown key "extra"/m],
    [
      "a registries entry",
      (c) => ((c.registries.dst as Record<string, unknown>).urll = "x"),
      /^error: registries\.dst: unknown key "urll" \(did you mean "url"\?\)/m,
    ],
    [
      "a sources entry",
      (c) => ((c.sources["ghcr.io"] as Record<string, unknown>).usrname = "x"),
      /^error: sources\["ghcr\.io"\]: unknown key "usrname" \(did you mean "username"\?\)/m,
    ],
    [
      "an images entry",
      (c) => ((c.images["nginx:1.25"] as Record<string, unknown>).target = ["dst"]),
      /^error: images\["nginx:1\.25"\]: unknown key "target" \(did you mean "targets"\?\)/m,
    ],
    ["log", (c) => (c.log.dirr = "x"), /^error: log: unknown key "dirr" \(did you mean "dir"\?\)/m],
    [
      "operation",
      (c) => (c.operation.concurency = 2),
      /^error: operation: unknown key "concurency" \(did you mean "concurrency"\?\)/m,
    ],
  ];
  for (const [section, breakIt, pattern] of rows) {
    await t.step(section, async () => {
      const config = goodConfig();
      breakIt(config);
      assert.match(await problemsOf(config, env), pattern);
    });
  }
});

Deno.test("checkConfig() reports a typo, an unknown target, a bad reference and a placeholder in one pass", async () => {
  const config = goodConfig();
  (config.registries.dst as Record<string, unknown>).namspace = "m";
  config.registries.ph = { url: "quay.example.com", namespace: "YOUR_ORG", kind: "registry" };
  config.images = {
    "nginx:1.25": { targets: ["dst", "drr"] },
    "Bad/Ref:1": { targets: ["dst"] },
    "redis:7": { targets: ["ph"] },
  };
  const text = await problemsOf(config, { GHCR_TOKEN: "ghcr-token-1" });
  assert.match(text, /registries\.dst: unknown key "namspace" \(did you mean "namespace"\?\)/);
  assert.match(text, /images\["nginx:1\.25"\]\.targets\[1\]: unknown registry "drr" \(known: /);
  assert.match(text, /images\["Bad\/Ref:1"\]: invalid image reference/);
  assert.match(text, /registries\.ph\.url: placeholder "quay\.example\.com" left in/);
  assert.match(text, /registries\.ph\.namespace: placeholder "YOUR_ORG" left in/);
});

Deno.test("checkConfig() looks names up without prototypes: Object.prototype keys are plain names", async (t) => {
  await t.step("targets: [constructor] is an unknown registry", async () => {
    const config = goodConfig();
    config.images = { "nginx:1.25": { targets: ["constructor"] } };
    assert.match(
      await problemsOf(config, { GHCR_TOKEN: "ghcr-token-1" }),
      /^error: images\["nginx:1\.25"\]\.targets\[0\]: unknown registry "constructor" \(known: dst\)/m,
    );
  });
  for (const name of ["toString", "hasOwnProperty", "constructor", "valueOf"]) {
    await t.step(`"${name}" as a registry name, a source host and an image key works`, async () => {
      const config = goodConfig();
      config.registries = {
        [name]: { url: "mirror.corp.internal", namespace: "m", kind: "registry" },
      };
      config.sources = { [name]: { username: "u", password: "${GHCR_TOKEN}" } };
      config.images = { [`${name.toLowerCase()}:1`]: { targets: [name] } };
      const dir = await Deno.makeTempDir({ prefix: "bb-config-" });
      try {
        await Deno.writeTextFile(`${dir}/c.json`, JSON.stringify(config));
        const loaded = await loadConfig(`${dir}/c.json`, {
          env: { GHCR_TOKEN: "t-123" },
          cwd: dir,
        });
        assert.ok(Object.hasOwn(loaded.registries, name));
        assert.equal(loaded.registries[name].host, "mirror.corp.internal");
        assert.deepEqual(loaded.images[0].targets, [name]);
        assert.equal(Object.hasOwn(loaded.registries, "toLocaleString"), false);
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    });
  }
  await t.step('"__proto__" as a name is an error with its path', async () => {
    const text = JSON.stringify(goodConfig()).replace('"dst":', '"__proto__":');
    const dir = await Deno.makeTempDir({ prefix: "bb-config-" });
    try {
      await Deno.writeTextFile(`${dir}/c.json`, text);
      const check = await checkConfig(`${dir}/c.json`, { env: { GHCR_TOKEN: "t-1" }, cwd: dir });
      assert.match(
        check.problems.map((p) => `${p.path}: ${p.message}`).join("\n"),
        /registries\.__proto__: the name "__proto__" cannot be used/,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
});

Deno.test("checkConfig() finds duplicate YAML keys with their path, in one pass over a large map", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bb-config-" });
  try {
    const images = Array.from({ length: 20_000 }, (_, i) => `  "n${i}:1": { targets: [dst] }`);
    images.push('  "n7:1": { targets: [dst] }');
    await Deno.writeTextFile(
      `${dir}/c.yaml`,
      `registries:\n  dst: { url: m.corp.internal, namespace: m, kind: registry }\nimages:\n${
        images.join("\n")
      }\n`,
    );
    const check = await checkConfig(`${dir}/c.yaml`, { env: {}, cwd: dir });
    assert.deepEqual(check.problems, [{ path: 'images["n7:1"]', message: 'duplicate key "n7:1"' }]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("checkConfig() counts YAML nesting, not brackets in quotes or comments", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bb-config-" });
  const brackets = "[".repeat(40);
  try {
    await Deno.writeTextFile(
      `${dir}/c.yaml`,
      [
        `# ${brackets}`,
        "registries:",
        "  dst: { url: m.corp.internal, namespace: m, kind: registry }",
        "operation: { engine: registry }",
        "images:",
        `  "nginx:1": { targets: [dst], description: "${brackets} it's \\" ${brackets}" }`,
        `  "redis:7": { targets: [dst], description: '${brackets} it''s' } # ${brackets}`,
      ].join("\n"),
    );
    const check = await checkConfig(`${dir}/c.yaml`, { env: {}, cwd: dir });
    assert.deepEqual(check.problems.filter((p) => p.severity !== "warning"), []);
    await Deno.writeTextFile(`${dir}/d.yaml`, `images:\n  ${"- ".repeat(40)}x\n`);
    const deep = await checkConfig(`${dir}/d.yaml`, { env: {}, cwd: dir });
    assert.match(deep.problems[0].message, /nested too deeply at line 2, column \d+/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("checkConfig() takes operation.dockerHubReserve as an integer >= 0", async (t) => {
  const rows: [unknown, RegExp | null][] = [
    [0, null],
    [25, null],
    [-1, /^error: operation\.dockerHubReserve: .*>=0/m],
    [1.5, /^error: operation\.dockerHubReserve: .*expected int/m],
    ["10", /^error: operation\.dockerHubReserve: .*number/m],
  ];
  for (const [value, expected] of rows) {
    await t.step(JSON.stringify(value), async () => {
      const config = goodConfig();
      config.operation.dockerHubReserve = value;
      const problems = await problemsOf(config, { GHCR_TOKEN: "t" });
      if (expected) assert.match(problems, expected);
      else assert.equal(problems, "");
    });
  }
});

Deno.test("checkConfig() takes log.lockLease as seconds from 1 to a day", async (t) => {
  const rows: [unknown, RegExp | null][] = [
    [1, null],
    [300, null],
    [0.5, /^error: log\.lockLease: .*>=1/m],
    [86_401, /^error: log\.lockLease: .*<=86400/m],
    ["300", /^error: log\.lockLease: .*number/m],
  ];
  for (const [value, expected] of rows) {
    await t.step(JSON.stringify(value), async () => {
      const config = goodConfig();
      config.log = { ...(config.log ?? {}), lockLease: value };
      const problems = await problemsOf(config, { GHCR_TOKEN: "t" });
      if (expected) assert.match(problems, expected);
      else assert.equal(problems, "");
    });
  }
});

Deno.test("checkConfig() takes maxBytesPerSecond on operation, registries and sources; warns with docker", async (t) => {
  const rows: [unknown, RegExp | null][] = [
    [1024, null],
    [50 * 1024 * 1024, null],
    [1000, /^error: operation\.maxBytesPerSecond: .*>=1024/m],
    [1.5e6 + 0.5, /^error: operation\.maxBytesPerSecond: .*expected int/m],
    ["50MB", /^error: operation\.maxBytesPerSecond: .*number/m],
  ];
  for (const [value, expected] of rows) {
    await t.step(JSON.stringify(value), async () => {
      const config = goodConfig();
      config.operation.maxBytesPerSecond = value;
      const problems = await problemsOf(config, { GHCR_TOKEN: "t" });
      if (expected) assert.match(problems, expected);
      else assert.equal(problems, "");
    });
  }
  await t.step("per registry and source entry; the docker engine warns for each", async () => {
    const config = goodConfig();
    (config.registries.dst as Record<string, unknown>).maxBytesPerSecond = 2048;
    (config.sources["ghcr.io"] as Record<string, unknown>).maxBytesPerSecond = 4096;
    assert.equal(await problemsOf(config, { GHCR_TOKEN: "t" }), "");
    config.operation = { engine: "docker", platform: "linux/amd64", maxBytesPerSecond: 4096 };
    const problems = await problemsOf(config, { GHCR_TOKEN: "t" });
    for (const path of ["operation", "registries.dst", 'sources["ghcr.io"]']) {
      assert.ok(
        problems.includes(`warning: ${path}.maxBytesPerSecond: the docker engine moves layers`),
        problems,
      );
    }
  });
});

Deno.test("checkConfig(): the pushing robot of a Quay target (robot, or an org+name username)", async (t) => {
  const quay = (extra: Record<string, unknown>) => ({
    ...goodConfig(),
    registries: {
      q: {
        url: "quay.corp.internal",
        namespace: "acme",
        kind: "quay",
        apiToken: "${QUAY_TOKEN}",
        ...extra,
      },
    },
    images: { "nginx:1.25": { targets: ["q"] } },
  });
  const env = { QUAY_TOKEN: "t", GHCR_TOKEN: "g", ROBOT: "r" };
  const robotOf = async (config: unknown) => {
    const dir = await Deno.makeTempDir({ prefix: "bb-config-" });
    try {
      await Deno.writeTextFile(`${dir}/c.json`, JSON.stringify(config));
      const check = await checkConfig(`${dir}/c.json`, { env, cwd: dir });
      return check.config?.registries.q.robot;
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  };
  await t.step("robot: a short name is in the organization", async () => {
    assert.equal(await robotOf(quay({ robot: "mirror" })), "acme+mirror");
    assert.equal(await robotOf(quay({ robot: "acme+mirror" })), "acme+mirror");
  });
  await t.step("a username org+name is the robot; a plain username is not", async () => {
    assert.equal(
      await robotOf(quay({ username: "acme+push", password: "${ROBOT}" })),
      "acme+push",
    );
    assert.equal(await robotOf(quay({ username: "alice", password: "${ROBOT}" })), undefined);
    // Another organization's robot (or a user name with "+") is only a login here.
    assert.equal(await robotOf(quay({ username: "other+x", password: "${ROBOT}" })), undefined);
  });
  await t.step("errors: another organization's robot, no API token, a plain registry", async () => {
    assert.match(
      await problemsOf(quay({ robot: "other+mirror" }), env),
      /error: registries\.q\.robot: "other\+mirror" is not a robot of acme/,
    );
    const noToken = quay({ robot: "mirror" });
    delete (noToken.registries.q as Record<string, unknown>).apiToken;
    assert.match(
      await problemsOf({
        ...noToken,
        operation: { engine: "registry", createReposIfNotExists: false },
      }, env),
      /error: registries\.q\.apiToken: missing: granting robot acme\+mirror write on each repository needs an API token with repo:admin/,
    );
    assert.match(
      await problemsOf({
        ...goodConfig(),
        registries: { dst: { url: "m.corp", namespace: "m", kind: "registry", robot: "x" } },
      }, env),
      /error: registries\.dst\.robot: a robot account is a Quay concept/,
    );
  });
});

Deno.test("checkConfig() gives the same config for plain YAML and for YAML only the yaml package reads", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const plain = [
      "registries:",
      "  q: { url: quay.corp.internal, namespace: acme, apiToken: '${T}' }",
      "images:",
      "  'nginx:1.25':",
      "    targets: [q]",
      "    description: web server",
      "  'redis:7':",
      "    targets: [q]",
      "    description: cache",
    ];
    // The same config with an anchor, an alias, a block scalar and an escape: not plain.
    const rich = [
      "registries:",
      "  q: { url: quay.corp.internal, namespace: acme, apiToken: '${T}' }",
      "images:",
      "  'nginx:1.25':",
      "    targets: &all [q]",
      "    description: >-",
      "      web server",
      "  'redis:7':",
      "    targets: *all",
      '    description: "cach\\u0065"',
    ];
    await Deno.writeTextFile(`${dir}/plain.yaml`, plain.join("\n") + "\n");
    await Deno.writeTextFile(`${dir}/rich.yaml`, rich.join("\n") + "\n");
    const options = { env: { T: "tok-1234" }, cwd: dir };
    const a = await checkConfig("plain.yaml", options);
    const b = await checkConfig("rich.yaml", options);
    assert.deepEqual(a.problems, []);
    assert.deepEqual(b.problems, []);
    assert.deepEqual({ ...b.config, file: "" }, { ...a.config, file: "" });
    // A syntax error in either kind still names its line (the yaml package reports it).
    await Deno.writeTextFile(`${dir}/bad.yaml`, plain.join("\n") + "\n  'x:1': a: b\n");
    const bad = await checkConfig("bad.yaml", options);
    assert.match(bad.problems[0].message, /^YAML syntax error: .* at line 10, column \d+$/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
