/**
 * shard.ts: parsing --shard/--shards/JOB_COMPLETION_INDEX, the rendezvous split by destination
 * repository (expected owners written out), its stability when an image is added or a shard is
 * added, and the per-entry target filter.
 */
import assert from "node:assert/strict";
import type { ResolvedImage, ResolvedRepository } from "../../lib/config/schema.ts";
import { UsageError } from "../../lib/errors.ts";
import {
  destinationRepositoryKey,
  resolveShard,
  selectShard,
  shardDir,
  shardOf,
  shardReportPath,
} from "../../lib/mirror/shard.ts";

const registries = {
  quay: {
    name: "quay",
    host: "quay.example.com",
    scheme: "https" as const,
    namespace: "mirror",
    organization: "mirror",
    kind: "quay" as const,
  },
  backup: {
    name: "backup",
    host: "backup.example.com",
    scheme: "https" as const,
    namespace: "mirror",
    organization: "mirror",
    kind: "registry" as const,
  },
};

function image(repository: string, tag: string, targets = ["quay"]): ResolvedImage {
  return {
    key: `docker.io/library/${repository}:${tag}`,
    source: { registry: "docker.io", repository: `library/${repository}`, tag },
    targets,
    repository,
  };
}

/** Owners of quay.example.com/mirror/<name> with 3 shards (the split's contract: pinned). */
const OWNERS_OF_3: Record<string, number> = {
  app: 2,
  web: 2,
  cli: 2,
  db: 0,
  api: 2,
  cache: 2,
  queue: 0,
  auth: 1,
};

Deno.test("shardOf() gives each destination repository the owner written out (3 shards)", () => {
  const got = Object.fromEntries(
    Object.keys(OWNERS_OF_3).map((name) => [
      name,
      shardOf(destinationRepositoryKey(registries.quay, name), 3),
    ]),
  );
  assert.deepEqual(got, OWNERS_OF_3);
  assert.equal(destinationRepositoryKey(registries.quay, "app"), "quay.example.com/mirror/app");
  assert.equal(shardOf("anything", 1), 0);
  // The e2e test (shards_test.ts) relies on these two.
  assert.equal(shardOf("mirror.corp.test/mirror/app", 2), 0);
  assert.equal(shardOf("mirror.corp.test/mirror/web", 2), 0);
});

Deno.test("selectShard(): adding an image moves no other repository; a repository's tags stay together", () => {
  const before = Object.keys(OWNERS_OF_3).flatMap((
    name,
  ) => [image(name, "1.0"), image(name, "2.0")]);
  const after = [...before, image("search", "1.0"), image("search", "2.0")];
  const owned = (images: ResolvedImage[], index: number) =>
    selectShard({ registries }, { images, repositories: [] }, { index, count: 3 }).images
      .map((i) => `${i.repository}:${i.source.tag}`);
  assert.deepEqual(owned(before, 0), ["db:1.0", "db:2.0", "queue:1.0", "queue:2.0"]);
  assert.deepEqual(owned(before, 1), ["auth:1.0", "auth:2.0"]);
  assert.deepEqual(owned(before, 2), [
    "app:1.0",
    "app:2.0",
    "web:1.0",
    "web:2.0",
    "cli:1.0",
    "cli:2.0",
    "api:1.0",
    "api:2.0",
    "cache:1.0",
    "cache:2.0",
  ]);
  // The new repository lands in one shard (1); every other shard's list is unchanged.
  assert.deepEqual(owned(after, 0), owned(before, 0));
  assert.deepEqual(owned(after, 1), ["auth:1.0", "auth:2.0", "search:1.0", "search:2.0"]);
  assert.deepEqual(owned(after, 2), owned(before, 2));
});

Deno.test("shardOf(): going from 3 to 4 shards moves repositories only to the new shard", () => {
  for (let n = 0; n < 300; n++) {
    const key = `quay.example.com/mirror/repo-${n}`;
    const three = shardOf(key, 3);
    const four = shardOf(key, 4);
    assert.ok(four === three || four === 3, `${key}: ${three} -> ${four}`);
  }
});

Deno.test("selectShard(): an entry keeps only the targets whose repository the shard owns", () => {
  // cli: quay.example.com/mirror/cli -> 2 of 3; backup.example.com/mirror/cli -> 1 of 3.
  assert.equal(shardOf("quay.example.com/mirror/cli", 3), 2);
  assert.equal(shardOf("backup.example.com/mirror/cli", 3), 1);
  const both = image("cli", "1.0", ["quay", "backup"]);
  const repo: ResolvedRepository = {
    key: "docker.io/library/cli",
    source: { registry: "docker.io", repository: "library/cli" },
    targets: ["quay", "backup"],
    repository: "cli",
    tags: {} as ResolvedRepository["tags"],
  };
  const pick = (index: number) =>
    selectShard({ registries }, { images: [both], repositories: [repo] }, { index, count: 3 });
  assert.deepEqual(pick(0), { images: [], repositories: [] });
  assert.deepEqual(pick(1).images.map((i) => i.targets), [["backup"]]);
  assert.deepEqual(pick(1).repositories.map((r) => r.targets), [["backup"]]);
  assert.deepEqual(pick(2).images.map((i) => i.targets), [["quay"]]);
  assert.deepEqual(pick(2).repositories.map((r) => r.targets), [["quay"]]);
});

Deno.test("resolveShard() reads --shard, --shards with JOB_COMPLETION_INDEX, and refuses bad input", async (t) => {
  assert.equal(resolveShard({ env: {} }), null);
  assert.deepEqual(resolveShard({ shard: "0/1", env: {} }), { index: 0, count: 1 });
  assert.deepEqual(resolveShard({ shard: "2/3", shards: "3", env: {} }), { index: 2, count: 3 });
  assert.deepEqual(
    resolveShard({ shard: "1/3", env: { JOB_COMPLETION_INDEX: "0" } }),
    { index: 1, count: 3 },
  );
  assert.deepEqual(
    resolveShard({ shards: "4", env: { JOB_COMPLETION_INDEX: "3" } }),
    { index: 3, count: 4 },
  );
  const bad: [string, Parameters<typeof resolveShard>[0], RegExp][] = [
    ["--shard 3/3", { shard: "3/3", env: {} }, /--shard: shard index 3 is out of range for 3/],
    ["--shard x", { shard: "x", env: {} }, /--shard "x": expected INDEX\/COUNT/],
    ["--shard 1/0", { shard: "1/0", env: {} }, /number of shards must be 1 to 1000, not 0/],
    ["--shard -1/3", { shard: "-1/3", env: {} }, /expected INDEX\/COUNT/],
    ["--shards 0", { shards: "0", env: { JOB_COMPLETION_INDEX: "0" } }, /must be 1 to 1000, not 0/],
    ["--shards x", { shards: "x", env: {} }, /--shards COUNT: "x" is not a number/],
    ["--shards 2 without index", { shards: "2", env: {} }, /JOB_COMPLETION_INDEX is not set/],
    [
      "JOB_COMPLETION_INDEX out of range",
      { shards: "2", env: { JOB_COMPLETION_INDEX: "2" } },
      /JOB_COMPLETION_INDEX: shard index 2 is out of range for 2/,
    ],
    [
      "JOB_COMPLETION_INDEX not a number",
      { shards: "2", env: { JOB_COMPLETION_INDEX: "a" } },
      /JOB_COMPLETION_INDEX "a" is not a shard index/,
    ],
    [
      "JOB_COMPLETION_INDEX without --shards",
      { env: { JOB_COMPLETION_INDEX: "1" } },
      /JOB_COMPLETION_INDEX is set .* neither --shards COUNT nor --shard/,
    ],
    [
      "--shard and --shards disagree",
      { shard: "1/3", shards: "4", env: {} },
      /disagree on the number of shards/,
    ],
  ];
  for (const [name, inputs, message] of bad) {
    await t.step(name, () => {
      assert.throws(
        () => resolveShard(inputs),
        (e) => e instanceof UsageError && message.test(e.message),
      );
    });
  }
});

Deno.test("shardDir() and shardReportPath() name a shard's files", () => {
  assert.equal(shardDir("/var/lib/bb", { index: 2, count: 3 }), "/var/lib/bb/shard-2");
  assert.equal(
    shardReportPath("/var/lib/bb", { index: 2, count: 3 }),
    "/var/lib/bb/last-report.2.json",
  );
});
