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
    manifestDigest(ref: Reference) {
      reads.push(`HEAD ${formatReference(ref)}`);
      return Promise.resolve(digests[formatReference(ref)] ?? null);
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
  assert.deepEqual(plan.tasks.map((t) => [t.action, t.code, t.message]), [
    ["failed", "LOGIN_FAILED", login.message],
    ["failed", "LOGIN_FAILED", login.message],
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
