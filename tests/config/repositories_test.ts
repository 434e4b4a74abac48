/**
 * The `repositories` section: resolution (key parsed as a source repository, destination name
 * defaulted as for images, tag rules kept as written) and its validation, each bad input with its
 * path. Expected values are written out.
 */
import assert from "node:assert/strict";
import { checkConfig } from "../../lib/config/load_config.ts";
import { type Config, defineConfig, type ResolvedRepository } from "../../lib/config/schema.ts";
import type { ConfigProblem } from "../../lib/errors.ts";

const REGISTRIES = [
  "registries:",
  "  prod: { url: 'localhost:5000', namespace: mirror, kind: registry }",
  "  dr: { url: '127.0.0.1:5001', namespace: mirror, kind: registry }",
  "operation: { engine: registry }",
].join("\n");

async function check(yaml: string) {
  const dir = await Deno.makeTempDir({ prefix: "bb-repositories-" });
  try {
    await Deno.writeTextFile(`${dir}/config.yaml`, `${REGISTRIES}\n${yaml}\n`);
    return await checkConfig("config.yaml", { env: {}, cwd: dir });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function errors(problems: ConfigProblem[]): ConfigProblem[] {
  return problems.filter((p) => p.severity !== "warning");
}

Deno.test("checkConfig() resolves a repositories section", async (t) => {
  const rows: [string, string, ResolvedRepository[]][] = [
    [
      "a full entry beside images",
      [
        "images:",
        "  'nginx:1.27': { targets: [prod, dr], description: NGINX, repository: web }",
        "repositories:",
        "  docker.io/library/nginx:",
        "    targets: [prod, dr]",
        "    description: NGINX",
        "    repository: web",
        "    tags:",
        "      semver: '>=1.25.0 <2'",
        "      include: ['^\\d+\\.\\d+\\.\\d+$']",
        "      exclude: ['-rc', alpine]",
        "      newest: 5",
        "      mutable: ['1.27.3']",
      ].join("\n"),
      [{
        key: "docker.io/library/nginx",
        source: { registry: "docker.io", repository: "library/nginx" },
        targets: ["prod", "dr"],
        description: "NGINX",
        repository: "web",
        tags: {
          semver: ">=1.25.0 <2",
          include: ["^\\d+\\.\\d+\\.\\d+$"],
          exclude: ["-rc", "alpine"],
          newest: 5,
          mutable: ["1.27.3"],
        },
      }],
    ],
    [
      "repositories alone, short names, default destination names",
      [
        "repositories:",
        "  nginx: { targets: [prod], tags: { newest: 3 } }",
        "  quay.io/prometheus/node-exporter: { targets: [dr], tags: { semver: ^1 } }",
        "  'localhost:5000/team/tool': { targets: [prod], tags: { include: ['^v'] } }",
      ].join("\n"),
      [
        {
          key: "nginx",
          source: { registry: "docker.io", repository: "library/nginx" },
          targets: ["prod"],
          description: undefined,
          repository: "nginx",
          tags: { newest: 3 },
        },
        {
          key: "quay.io/prometheus/node-exporter",
          source: { registry: "quay.io", repository: "prometheus/node-exporter" },
          targets: ["dr"],
          description: undefined,
          repository: "node-exporter",
          tags: { semver: "^1" },
        },
        {
          key: "localhost:5000/team/tool",
          source: { registry: "localhost:5000", repository: "team/tool" },
          targets: ["prod"],
          description: undefined,
          repository: "tool",
          tags: { include: ["^v"] },
        },
      ],
    ],
  ];
  for (const [name, yaml, expected] of rows) {
    await t.step(name, async () => {
      const result = await check(yaml);
      assert.deepEqual(errors(result.problems), []);
      assert.deepEqual(result.config?.repositories, expected);
    });
  }
});

Deno.test("checkConfig() keeps repositories empty and images as before without the section", async () => {
  const result = await check("images:\n  'nginx:1.27': { targets: [prod] }");
  assert.deepEqual(result.problems, []);
  assert.deepEqual(result.config?.repositories, []);
  assert.equal(result.config?.images.length, 1);
});

Deno.test("checkConfig() reports each bad repositories entry with its path", async (t) => {
  const rows: [string, string, { path: string; message: RegExp }[]][] = [
    [
      "an invalid regex",
      "repositories:\n  nginx: { targets: [prod], tags: { include: ['^1', '(unclosed'] } }",
      [{
        path: "repositories.nginx.tags.include[1]",
        message: /^include pattern "\(unclosed" is not a valid regex: /,
      }],
    ],
    [
      "an unparsable range",
      "repositories:\n  nginx: { targets: [prod], tags: { semver: '>=banana' } }",
      [{
        path: "repositories.nginx.tags.semver",
        message: /^semver range ">=banana" does not parse \(npm semver range syntax/,
      }],
    ],
    [
      "newest: 0",
      "repositories:\n  nginx: { targets: [prod], tags: { newest: 0 } }",
      [{
        path: "repositories.nginx.tags.newest",
        message: /^newest must be an integer >= 1, got 0$/,
      }],
    ],
    [
      "newest not a number",
      "repositories:\n  nginx: { targets: [prod], tags: { newest: five } }",
      [{ path: "repositories.nginx.tags.newest", message: /expected number.*got "five"/ }],
    ],
    [
      "a key with a tag",
      "repositories:\n  'nginx:1.27': { targets: [prod], tags: { newest: 1 } }",
      [{
        path: 'repositories["nginx:1.27"]',
        message:
          /^a repository key names no tag; use images for one tag \("nginx:1\.27" names the tag "1\.27": write "nginx" here/,
      }],
    ],
    [
      "a key with a digest",
      `repositories:\n  'nginx@sha256:${"a".repeat(64)}': { targets: [prod], tags: { newest: 1 } }`,
      [{
        path: `repositories["nginx@sha256:${"a".repeat(64)}"]`,
        message: /^a repository key names no digest; use images for one image/,
      }],
    ],
    [
      "a key that is no reference",
      "repositories:\n  'Nginx': { targets: [prod], tags: { newest: 1 } }",
      [{
        path: "repositories.Nginx",
        message: /^invalid image reference "Nginx": repository name must be lowercase$/,
      }],
    ],
    [
      "an unknown target",
      "repositories:\n  nginx: { targets: [prod, drr], tags: { newest: 1 } }",
      [{
        path: "repositories.nginx.targets[1]",
        message: /^unknown registry "drr" \(known: prod, dr\)$/,
      }],
    ],
    [
      "no targets",
      "repositories:\n  nginx: { targets: [], tags: { newest: 1 } }",
      [{ path: "repositories.nginx.targets", message: /too small|>=1/i }],
    ],
    [
      "an unknown key in tags, with a suggestion",
      "repositories:\n  nginx: { targets: [prod], tags: { newset: 1 } }",
      [{
        path: "repositories.nginx.tags",
        message: /^unknown key "newset" \(did you mean "newest"\?\); known keys: include, exclude/,
      }],
    ],
    [
      "latest in mutable with updateLatest on",
      "repositories:\n  nginx: { targets: [prod], tags: { newest: 2, mutable: [latest] } }",
      [{
        path: "repositories.nginx.tags.mutable[0]",
        message: /^"latest" cannot be mutable while operation\.updateLatest is on/,
      }],
    ],
    [
      "a mutable entry the rules can never select",
      "repositories:\n  nginx: { targets: [prod], tags: { exclude: ['^1\\.26'], mutable: ['1.26'] } }",
      [{
        path: "repositories.nginx.tags.mutable[0]",
        message:
          /^mutable tag "1\.26" can never be selected by these rules \(exclude: matches exclude pattern \/\^1\\\.26\/\)$/,
      }],
    ],
    [
      "an image and a repository entry that disagree",
      [
        "images:",
        "  'nginx:1.27': { targets: [prod], description: web server }",
        "repositories:",
        "  docker.io/library/nginx: { targets: [prod, dr], description: NGINX, tags: { newest: 2 } }",
      ].join("\n"),
      [
        {
          path: 'images["nginx:1.27"].targets',
          message:
            /^targets \[prod\] disagree with repositories\["docker\.io\/library\/nginx"\]\.targets \[prod, dr\]; an image and a repository entry for the same source/,
        },
        {
          path: 'images["nginx:1.27"].description',
          message:
            /^description "web server" disagrees with repositories\["docker\.io\/library\/nginx"\]\.description "NGINX"; /,
        },
      ],
    ],
    [
      "an image and a repository entry with different destination names",
      [
        "images:",
        "  'nginx:1.27': { targets: [prod], repository: web }",
        "repositories:",
        "  nginx: { targets: [prod], tags: { newest: 2 } }",
      ].join("\n"),
      [{
        path: 'images["nginx:1.27"].repository',
        message: /^destination repository "web" disagrees with repositories\.nginx \("nginx"\); /,
      }],
    ],
    [
      "another source whose tag the rules can select, into the same destination",
      [
        "images:",
        "  'bitnami/nginx:1.27.3': { targets: [dr] }",
        "repositories:",
        "  nginx: { targets: [prod, dr], tags: { semver: ^1.27 } }",
      ].join("\n"),
      [{
        path: 'images["bitnami/nginx:1.27.3"].targets[0]',
        message:
          /^"bitnami\/nginx:1\.27\.3" and repositories\.nginx both map to 127\.0\.0\.1:5001\/mirror\/nginx in "dr", and the rules of the latter can select the tag 1\.27\.3; set repository on one of them$/,
      }],
    ],
    [
      "two keys for one source",
      [
        "repositories:",
        "  nginx: { targets: [prod], tags: { newest: 1 } }",
        "  docker.io/library/nginx: { targets: [dr], tags: { newest: 1 } }",
      ].join("\n"),
      [{
        path: 'repositories["docker.io/library/nginx"]',
        message:
          /^"docker\.io\/library\/nginx" and "nginx" name the same source repository docker\.io\/library\/nginx; keep one entry$/,
      }],
    ],
    [
      "two sources into one destination repository",
      [
        "repositories:",
        "  nginx: { targets: [prod], tags: { newest: 1 } }",
        "  bitnami/nginx: { targets: [prod], tags: { newest: 1 } }",
      ].join("\n"),
      [{
        path: 'repositories["bitnami/nginx"].targets[0]',
        message:
          /^"bitnami\/nginx" and "nginx" both map to localhost:5000\/mirror\/nginx in "prod"; set repository on one of them$/,
      }],
    ],
    [
      "nothing to mirror",
      "images: {}\nrepositories: {}",
      [{
        path: "images",
        message: /^nothing to mirror: add an entry to images .* or to repositories/,
      }],
    ],
  ];
  for (const [name, yaml, expected] of rows) {
    await t.step(name, async () => {
      const result = await check(yaml);
      const found = errors(result.problems);
      assert.equal(result.config, undefined);
      assert.deepEqual(
        found.map((p) => p.path),
        expected.map((e) => e.path),
        JSON.stringify(found, null, 2),
      );
      found.forEach((p, i) => assert.match(p.message, expected[i].message));
    });
  }
});

Deno.test("checkConfig() allows an image and a repository entry that agree, and warns on an entry without rules", async () => {
  const result = await check(
    [
      "images:",
      "  'nginx:1.27': { targets: [prod, dr], description: NGINX }",
      "  'bitnami/nginx:1.26-debian': { targets: [dr] }",
      "repositories:",
      "  docker.io/library/nginx: { targets: [dr, prod], description: NGINX, tags: { semver: ^1.27 } }",
      "  quay.io/prometheus/node-exporter: { targets: [prod] }",
    ].join("\n"),
  );
  assert.deepEqual(result.problems, [{
    path: 'repositories["quay.io/prometheus/node-exporter"].tags',
    message:
      "no tag rules: every tag the repository lists is mirrored; bound it with semver, include or newest",
    severity: "warning",
  }]);
  assert.equal(result.config?.repositories.length, 2);
});

Deno.test("defineConfig() types repositories without images (checked by deno check)", () => {
  const config: Config = defineConfig({
    registries: { prod: { url: "localhost:5000", namespace: "mirror", kind: "registry" } },
    repositories: {
      "docker.io/library/nginx": {
        targets: ["prod"],
        tags: { semver: ">=1.25.0 <2", exclude: ["-rc"], newest: 5, mutable: ["1.27"] },
      },
    },
  });
  defineConfig({
    registries: {},
    repositories: {
      // @ts-expect-error: a typo in the tag rules is a type error in config.ts
      nginx: { targets: ["prod"], tags: { newset: 5 } },
    },
  });
  assert.equal(Object.keys(config.repositories ?? {}).length, 1);
});
