/**
 * `buildPlan()` over a fake probe (no network): one row per action, and what the run learned
 * before planning (a failed login, a refused Quay token) as inputs of the plan.
 */
import assert from "node:assert/strict";
import type { ResolvedConfig, ResolvedImage, ResolvedRegistry } from "../../lib/config/schema.ts";
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

function config(images: ResolvedImage[]): ResolvedConfig {
  return {
    file: "test.yaml",
    registries: { dr, qy: quay },
    sources: {},
    images,
    operation: { engine: "registry", concurrency: 2, createReposIfNotExists: true },
  } as unknown as ResolvedConfig;
}

/** A probe over fixed digests; records every read. */
function fakeProbe(digests: Record<string, string>, repos: Record<string, RepoState> = {}) {
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
