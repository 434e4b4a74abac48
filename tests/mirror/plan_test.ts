/**
 * `buildPlan()` over a fake probe (no network): one row per action, and what the run learned
 * before planning (a failed login, a refused Quay token) as inputs of the plan.
 */
import assert from "node:assert/strict";
import type {
  ResolvedConfig,
  ResolvedImage,
  ResolvedRegistry,
  ResolvedRepository,
} from "../../lib/config/schema.ts";
import { MirrorError } from "../../lib/errors.ts";
import { buildPlan, type PlanProbe, type RepoState } from "../../lib/mirror/plan.ts";
import { PlanPrefetch } from "../../lib/mirror/_plan_prefetch.ts";
import { MEDIA_TYPES } from "../../lib/registry/manifest.ts";
import { formatReference, parseReference, type Reference } from "../../lib/registry/reference.ts";

const dr: ResolvedRegistry = {
  name: "dr",
  host: "dst.example",
  scheme: "https",
  namespace: "m",
  organization: "m",
  kind: "registry",
};
const quay: ResolvedRegistry = {
  name: "qy",
  host: "quay.example",
  scheme: "https",
  namespace: "org",
  organization: "org",
  kind: "quay",
  apiToken: "token-value",
};

function image(source: string, targets: string[]): ResolvedImage {
  const ref = parseReference(source);
  return {
    key: source,
    source: ref,
    targets,
    repository: ref.repository.split("/").pop() as string,
  };
}

function config(
  images: ResolvedImage[],
  repositories: ResolvedRepository[] = [],
): ResolvedConfig {
  return {
    file: "test.yaml",
    registries: { dr, qy: quay },
    sources: {},
    images,
    repositories,
    operation: { engine: "registry", concurrency: 2, createReposIfNotExists: true },
  } as unknown as ResolvedConfig;
}

/** A probe over fixed digests; records every read. */
function fakeProbe(
  digests: Record<string, string>,
  repos: Record<string, RepoState> = {},
  listings: Record<string, string[] | Error> = {},
) {
  const reads: string[] = [];
  const probe: PlanProbe = {
    manifestHead(ref: Reference) {
      reads.push(`HEAD ${formatReference(ref)}`);
      const digest = digests[formatReference(ref)];
      return Promise.resolve(
        digest ? { digest, mediaType: MEDIA_TYPES.ociManifest, size: 500, rateLimit: null } : null,
      );
    },
    configDigest(ref: Reference) {
      reads.push(`CONFIG ${formatReference(ref)}`);
      return Promise.resolve(null);
    },
    repository(registry: ResolvedRegistry, name: string) {
      reads.push(`REPO ${registry.name}/${name}`);
      return Promise.resolve(repos[name] ?? "exists");
    },
    tags(repository) {
      const key = `${repository.registry}/${repository.repository}`;
      reads.push(`TAGS ${key}`);
      const listing = listings[key] ?? [];
      return listing instanceof Error ? Promise.reject(listing) : Promise.resolve(listing);
    },
  };
  return { probe, reads };
}

const A = "sha256:" + "a".repeat(64);
const B = "sha256:" + "b".repeat(64);

Deno.test("buildPlan() gives each task its action from the probe's reads", async (t) => {
  const rows: {
    name: string;
    digests: Record<string, string>;
    action: string;
    code?: string;
  }[] = [
    { name: "absent destination: push", digests: { "src.example/team/app:1": A }, action: "push" },
    {
      name: "same manifest digest: exists",
      digests: { "src.example/team/app:1": A, "dst.example/m/app:1": A },
      action: "exists",
    },
    {
      name: "another digest: drift, left untouched",
      digests: { "src.example/team/app:1": A, "dst.example/m/app:1": B },
      action: "drift",
      code: "IMAGE_TAG_DRIFT",
    },
    {
      name: "absent source: failed IMAGE_NOT_FOUND",
      digests: {},
      action: "failed",
      code: "IMAGE_NOT_FOUND",
    },
  ];
  for (const row of rows) {
    await t.step(row.name, async () => {
      const { probe } = fakeProbe(row.digests);
      const plan = await buildPlan(config([image("src.example/team/app:1", ["dr"])]), probe, {
        comparison: "manifest",
      });
      assert.equal(plan.tasks[0].action, row.action);
      assert.equal(plan.tasks[0].code, row.code);
    });
  }
});

Deno.test("buildPlan() fails the tasks of a host whose login failed, without reading it", async () => {
  const { probe, reads } = fakeProbe({ "src.example/team/app:1": A, "src.example/team/b:1": A });
  const login = new MirrorError("LOGIN_FAILED", "dst.example refused the credentials from config");
  const plan = await buildPlan(
    config([image("src.example/team/app:1", ["dr"]), image("src.example/team/b:1", ["dr"])]),
    probe,
    { comparison: "manifest", brokenHosts: new Map([["dst.example", login]]) },
  );
  // Marked, so the log says it once per registry (the login step's line), not once per image.
  const message = `not attempted, login to dst.example failed: ${login.message}`;
  assert.deepEqual(plan.tasks.map((t) => [t.action, t.code, t.message, t.loginFailed]), [
    ["failed", "LOGIN_FAILED", message, "dst.example"],
    ["failed", "LOGIN_FAILED", message, "dst.example"],
  ]);
  assert.ok(!reads.some((r) => r.includes("dst.example")), reads.join("\n"));
});

Deno.test("buildPlan() fails a refused Quay target's tasks and asks Quay nothing", async () => {
  const { probe, reads } = fakeProbe({ "src.example/team/app:1": A });
  const token = new MirrorError("LOGIN_FAILED", "quay.example refused the API token");
  const plan = await buildPlan(
    config([
      image("src.example/team/app:1", ["qy", "dr"]),
      image("src.example/team/gone:1", ["qy"]),
    ]),
    probe,
    { comparison: "manifest", brokenTargets: new Map([["qy", token]]) },
  );
  assert.deepEqual(plan.tasks.map((t) => [t.target, t.action, t.code]), [
    ["qy", "failed", "LOGIN_FAILED"],
    ["dr", "push", undefined],
    // A task that fails on its own keeps its own reason.
    ["qy", "failed", "IMAGE_NOT_FOUND"],
  ]);
  assert.equal(plan.tasks[0].repo?.state, "unknown");
  assert.ok(!reads.some((r) => r.startsWith("REPO")), reads.join("\n"));
});

/** A probe where hub.example sends Docker Hub's headers; other hosts send none. */
function budgetProbe(
  sources: Record<string, { mediaType: string; size: number; digest?: string }>,
  remaining: Record<string, number>,
): PlanProbe {
  return {
    manifestHead(ref: Reference) {
      const source = sources[formatReference(ref)];
      if (!source) return Promise.resolve(null);
      const left = remaining[formatReference(ref)];
      return Promise.resolve({
        digest: A,
        ...source,
        rateLimit: left === undefined
          ? null
          : { limit: 100, remaining: left, windowSeconds: 21600 },
      });
    },
    configDigest: () => Promise.resolve(null),
    repository: () => Promise.resolve("exists" as RepoState),
    tags: () => Promise.resolve([]),
  };
}

Deno.test("buildPlan() defers the pushes the source's pull budget has no room for", async () => {
  const single = { mediaType: MEDIA_TYPES.ociManifest, size: 500 };
  const index = { mediaType: MEDIA_TYPES.ociIndex, size: 1520 };
  const probe = budgetProbe({
    "hub.example/library/a:1": single,
    "hub.example/library/b:1": index,
    "hub.example/library/c:1": single,
    "src.example/team/d:1": single,
  }, {
    // The lowest remaining seen wins, whatever the order the HEADs answered in.
    "hub.example/library/a:1": 14,
    "hub.example/library/b:1": 12,
    "hub.example/library/c:1": 13,
  });
  const images = [
    image("hub.example/library/a:1", ["dr"]),
    image("hub.example/library/b:1", ["dr"]),
    image("hub.example/library/c:1", ["dr"]),
    image("src.example/team/d:1", ["dr"]),
  ];
  const cfg = config(images);
  cfg.operation.dockerHubReserve = 10;
  const nowMs = Date.UTC(2026, 10, 30, 3, 0, 0);
  const plan = await buildPlan(cfg, probe, { comparison: "manifest", nowMs });
  assert.deepEqual(plan.tasks.map((t) => [t.action, t.pulls, t.code]), [
    ["push", 1, undefined],
    // An index of 1520 bytes has at most 10 children: 11 pulls with the registry engine.
    ["deferred", 11, "IMAGE_DEFERRED_RATE_LIMIT"],
    ["push", 1, undefined],
    ["push", 1, undefined],
  ]);
  assert.equal(
    plan.tasks[1].message,
    "deferred: needs 11 pulls from hub.example, 1 left after the reserve of 10; the window " +
      "(21600 s) has refilled by 2026-11-30T09:00:00.000Z, the next run picks it up",
  );
  assert.deepEqual(plan.pullBudget, [{
    host: "hub.example",
    limit: 100,
    remaining: 12,
    reserve: 10,
    planned: 2,
    remainingAfter: 10,
    deferred: 1,
    windowSeconds: 21600,
    refillsAtMs: Date.UTC(2026, 10, 30, 9, 0, 0),
  }]);

  // The docker engine pulls one platform: an index costs 2 and fits in 12 - 10 with nothing else.
  const docker = config([image("hub.example/library/b:1", ["dr"])]);
  docker.operation.engine = "docker";
  docker.operation.dockerHubReserve = 10;
  const one = await buildPlan(docker, probe, { comparison: "manifest", nowMs });
  assert.deepEqual(one.tasks.map((t) => [t.action, t.pulls]), [["push", 2]]);
  assert.equal(one.pullBudget?.[0].planned, 2);
});

Deno.test("buildPlan() without rate-limit headers defers nothing and has no pull budget", async () => {
  const probe = budgetProbe({
    "src.example/team/d:1": { mediaType: MEDIA_TYPES.ociIndex, size: 9000 },
  }, {});
  const plan = await buildPlan(config([image("src.example/team/d:1", ["dr"])]), probe, {
    comparison: "manifest",
  });
  assert.deepEqual(plan.tasks.map((t) => t.action), ["push"]);
  assert.deepEqual(plan.pullBudget, []);
});

Deno.test("buildPlan() takes the plan's own config GETs (docker engine) off the pull budget", async () => {
  const single = { mediaType: MEDIA_TYPES.dockerManifest, size: 500 };
  const probe = budgetProbe({
    "hub.example/library/a:1": single,
    "dst.example/m/a:1": { ...single, digest: B },
    "hub.example/library/c:1": single,
    "hub.example/library/e:1": single,
  }, { "hub.example/library/a:1": 12, "hub.example/library/c:1": 12 });
  const cfg = config([
    image("hub.example/library/a:1", ["dr"]),
    image("hub.example/library/c:1", ["dr"]),
    image("hub.example/library/e:1", ["dr"]),
  ]);
  cfg.operation.engine = "docker";
  cfg.operation.dockerHubReserve = 10;
  const plan = await buildPlan(cfg, probe, { comparison: "config", nowMs: 0 });
  // a: the manifests differ, so the plan GETs a's manifest for its config digest (1 pull): 12 - 1
  // - reserve 10 leaves room for c only.
  assert.deepEqual(plan.tasks.map((t) => t.action), ["drift", "push", "deferred"]);
  assert.equal(plan.pullBudget?.[0].remaining, 11);
  assert.equal(plan.pullBudget?.[0].planned, 1);
});

function repository(key: string, targets: string[], tags: ResolvedRepository["tags"]) {
  const ref = parseReference(key);
  return {
    key,
    source: { registry: ref.registry, repository: ref.repository },
    targets,
    repository: ref.repository.split("/").pop() as string,
    tags,
  } as ResolvedRepository;
}

Deno.test("buildPlan() lists a repository once and plans one task per selected tag x target", async () => {
  const { probe, reads } = fakeProbe(
    {
      "src.example/team/app:1.0.0": A,
      "src.example/team/app:1.1.0": A,
      "src.example/team/app:1.2.0": A,
      "dst.example/m/app:1.1.0": B,
      "dst.example/m/app:1.2.0": B,
    },
    {},
    { "src.example/team/app": ["0.9.0", "1.0.0", "1.1.0", "1.2.0", "1.2.0-rc.1", "latest"] },
  );
  const plan = await buildPlan(
    config([image("src.example/team/app:1.0.0", ["dr"])], [
      repository("src.example/team/app", ["dr"], { semver: ">=1", mutable: ["1.2.0"] }),
      repository("src.example/team/app", ["dr"], { newest: 1 }),
    ]),
    probe,
    { comparison: "manifest" },
  );
  assert.equal(reads.filter((r) => r.startsWith("TAGS")).length, 1);
  // The explicit image 1.0.0 and the selected 1.0.0 are one task; 1.2.0 is mutable.
  assert.deepEqual(plan.tasks.map((t) => [formatReference(t.destination), t.action, t.code]), [
    ["dst.example/m/app:1.0.0", "push", undefined],
    ["dst.example/m/app:1.2.0", "push", "IMAGE_TAG_UPDATED"],
    ["dst.example/m/app:1.1.0", "drift", "IMAGE_TAG_DRIFT"],
  ]);
  assert.equal(plan.tasks[1].replaceDigest, B);
  assert.deepEqual(plan.selections?.map((s) => s.selection?.selected), [
    ["1.2.0", "1.1.0", "1.0.0"],
    ["1.2.0"],
  ]);
});

Deno.test("buildPlan() makes a repository whose listing fails one failed task per target", async () => {
  const { probe } = fakeProbe({}, {}, {
    "src.example/team/gone": [],
    "src.example/team/loop": new MirrorError("IMAGE_MANIFEST_INVALID", "never ends"),
  });
  const plan = await buildPlan(
    config([], [
      repository("src.example/team/gone", ["dr", "qy"], {}),
      repository("src.example/team/loop", ["dr"], {}),
    ]),
    probe,
    { comparison: "manifest" },
  );
  assert.deepEqual(plan.tasks.map((t) => [formatReference(t.destination), t.action, t.code]), [
    ["dst.example/m/gone", "failed", "IMAGE_NOT_FOUND"],
    ["quay.example/org/gone", "failed", "IMAGE_NOT_FOUND"],
    ["dst.example/m/loop", "failed", "IMAGE_MANIFEST_INVALID"],
  ]);
  assert.match(
    plan.tasks[2].message ?? "",
    /Cannot list the tags of src.example\/team\/loop: never ends/,
  );
});

Deno.test("buildPlan() with budgetShare plans with the shard's share of the pull budget", async () => {
  const single = { mediaType: MEDIA_TYPES.ociManifest, size: 500 };
  const refs = ["hub.example/library/a:1", "hub.example/library/b:1", "hub.example/library/c:1"];
  const probe = budgetProbe(
    Object.fromEntries(refs.map((r) => [r, single])),
    Object.fromEntries(refs.map((r) => [r, 16])),
  );
  const cfg = config(refs.map((r) => image(r, ["dr"])));
  cfg.operation.dockerHubReserve = 10;
  const nowMs = Date.UTC(2026, 10, 30, 3, 0, 0);
  // Alone: 16 - 10 = 6 pulls for 3.
  const alone = await buildPlan(cfg, probe, { comparison: "manifest", nowMs });
  assert.deepEqual(alone.tasks.map((t) => t.action), ["push", "push", "push"]);
  // One of 3 shards: 10 + floor(6 / 3) = 12 left for it, 2 pulls after the reserve.
  const shard = await buildPlan(cfg, probe, { comparison: "manifest", nowMs, budgetShare: 3 });
  assert.deepEqual(shard.tasks.map((t) => t.action), ["push", "push", "deferred"]);
  assert.deepEqual(
    shard.pullBudget?.map((b) => [b.remaining, b.planned, b.deferred]),
    [[12, 2, 1]],
  );
});

Deno.test("buildPlan() reads a task's source and destination at once; the source's failure wins", async () => {
  const { probe } = fakeProbe({ "src.example/team/app:1": A, "dst.example/m/app:1": A });
  let inFlight = 0;
  let most = 0;
  const slow: PlanProbe = {
    ...probe,
    async manifestHead(ref, signal) {
      most = Math.max(most, ++inFlight);
      await new Promise((r) => setTimeout(r, 20));
      inFlight--;
      if (ref.repository === "team/broken") {
        throw new MirrorError("IMAGE_PULL_FAILED", "source down");
      }
      if (ref.repository === "m/broken") throw new MirrorError("REPO_ACCESS_DENIED", "no");
      return await probe.manifestHead(ref, signal);
    },
  };
  const plan = await buildPlan(config([image("src.example/team/app:1", ["dr"])]), slow, {
    comparison: "manifest",
    concurrency: 1,
  });
  assert.equal(plan.tasks[0].action, "exists");
  assert.equal(most, 2, "one task: its two HEADs in flight together");
  const broken = await buildPlan(config([image("src.example/team/broken:1", ["dr"])]), slow, {
    comparison: "manifest",
  });
  assert.equal(broken.tasks[0].action, "failed");
  assert.equal(broken.tasks[0].code, "IMAGE_PULL_FAILED", "the source's error, as before");
});

Deno.test("buildPlan() with PlanPrefetch reads latest where an image exists and the tags of each source once", async () => {
  const { probe, reads } = fakeProbe(
    {
      "src.example/team/app:1": A,
      "src.example/team/app:2": A,
      "dst.example/m/app:1": A,
      "dst.example/m/app:latest": B,
      "src.example/team/web:1": A,
      "src.example/team/sel:1": A,
      "dst.example/m/sel:1": A,
    },
    {},
    {
      "src.example/team/app": ["1", "2", "sha256-x.sig"],
      "src.example/team/web": new Error("down"),
    },
  );
  const images = [
    image("src.example/team/app:1", ["dr"]),
    image("src.example/team/app:2", ["dr"]),
    image("src.example/team/web:1", ["dr"]),
    image("src.example/team/sel:1", ["dr"]),
    image("src.example/team/gone:1", ["dr"]),
  ];
  // `sel` stands for a `repositories` entry: the plan lists its source itself.
  const prefetch = new PlanPrefetch(
    probe,
    { latest: true, sourceTags: true },
    new Set(["src.example/team/sel:1"]),
  );
  const plan = await buildPlan(config(images), probe, {
    comparison: "manifest",
    beside: (task) => prefetch.read(task),
  });
  assert.deepEqual(plan.tasks.map((t) => t.action), [
    "exists",
    "push",
    "push",
    "exists",
    "failed",
  ]);
  // latest where an image exists (app; sel: absent), once per repository; not in web (only a
  // push: the run reads it after the push) nor gone (failed). A failed listing is left out (the
  // run lists again) and fails no task; a failed task lists nothing.
  assert.deepEqual([...prefetch.latestSeen].sort(), [
    ["dst.example/m/app", B],
    ["dst.example/m/sel", null],
  ]);
  assert.deepEqual([...prefetch.sourceTags], [["src.example/team/app", [
    "1",
    "2",
    "sha256-x.sig",
  ]]]);
  const count = (read: string) => reads.filter((r) => r === read).length;
  assert.equal(count("HEAD dst.example/m/app:latest"), 1);
  assert.equal(count("TAGS src.example/team/app"), 1);
  assert.equal(count("TAGS src.example/team/web"), 1);
  assert.deepEqual(reads.filter((r) => /sel|gone/.test(r) && /TAGS|latest/.test(r)), [
    "HEAD dst.example/m/sel:latest",
  ]);
  // Off: none of these reads.
  const off = fakeProbe({ "src.example/team/app:1": A });
  const none = new PlanPrefetch(off.probe, {}, new Set());
  await buildPlan(config(images.slice(0, 1)), off.probe, {
    comparison: "manifest",
    beside: (task) => none.read(task),
  });
  assert.deepEqual(off.reads, ["HEAD dst.example/m/app:1", "HEAD src.example/team/app:1"]);
});

Deno.test("PlanPrefetch reads nothing on a host whose login failed", async () => {
  const { probe, reads } = fakeProbe({ "src.example/team/app:1": A, "dst.example/m/app:1": A });
  const login = new MirrorError("LOGIN_FAILED", "dst.example refused the credentials from config");
  const prefetch = new PlanPrefetch(probe, { latest: true, sourceTags: true }, new Set());
  const plan = await buildPlan(config([image("src.example/team/app:1", ["dr"])]), probe, {
    comparison: "manifest",
    brokenHosts: new Map([["dst.example", login]]),
    beside: (task) => prefetch.read(task),
  });
  assert.equal(plan.tasks[0].action, "failed");
  assert.deepEqual(reads.filter((r) => r.includes("dst.example")), []);
  assert.deepEqual(reads.filter((r) => r.startsWith("TAGS")), []);
});
