/**
 * Orchestration rules of runPlan and buildReport, with an in-memory engine: these pin the rules
 * (continueOnError, skipped tasks, one repository creation per repository, drift found by the
 * engine's re-check). The real copies are proven in tests/e2e/mirror_test.ts.
 */
import assert from "node:assert/strict";
import type { CopyRequest, Engine } from "../../lib/engine/engine.ts";
import { MirrorError } from "../../lib/errors.ts";
import { Secrets } from "../../lib/log/redact.ts";
import type { MirrorPlan, PlanTask } from "../../lib/mirror/plan.ts";
import { parseReference } from "../../lib/registry/reference.ts";
import { buildReport, exitStatus, formatStatistics } from "../../lib/mirror/report.ts";
import { latestGroups, runPlan } from "../../lib/mirror/run_plan.ts";

function task(id: number, src: string, action: PlanTask["action"] = "push"): PlanTask {
  const source = parseReference(src);
  return {
    id,
    imageKey: src,
    target: "prod",
    source,
    destination: {
      registry: "q.example",
      repository: `acme/${source.repository.split("/").pop()}`,
      tag: source.tag,
    },
    repo: { namespace: "acme", name: source.repository.split("/").pop() ?? "", state: "missing" },
    action,
    comparedBy: "manifest",
  };
}

function engine(behaviour: (req: CopyRequest) => Promise<void>, copies: string[]): Engine {
  return {
    name: "registry",
    comparison: "manifest",
    prepare: () => Promise.resolve(),
    close: () => Promise.resolve(),
    async copy(req) {
      copies.push(`${req.source.repository}:${req.source.tag}`);
      await behaviour(req);
      return {
        status: "pushed",
        digest: `sha256:${"a".repeat(63)}${req.source.tag?.length}`,
        bytesUploaded: 10,
      };
    },
  };
}

Deno.test("runPlan() without continueOnError starts no task after a failure", async () => {
  const plan: MirrorPlan = {
    engine: "registry",
    tasks: [task(0, "a:1"), task(1, "b:1"), task(2, "c:1")],
  };
  const copies: string[] = [];
  const out = await runPlan(plan, {
    engine: engine((req) => {
      if (req.source.repository === "library/a") throw new MirrorError("IMAGE_PUSH_FAILED", "boom");
      return Promise.resolve();
    }, copies),
    concurrency: 1,
    continueOnError: false,
  });
  assert.deepEqual(out.results.map((r) => r.status), ["failed", "skipped", "skipped"]);
  assert.deepEqual(copies, ["library/a:1"]);
  assert.equal(out.results[0].code, "IMAGE_PUSH_FAILED");
});

Deno.test("runPlan() with continueOnError goes on after a failure", async () => {
  const plan: MirrorPlan = { engine: "registry", tasks: [task(0, "a:1"), task(1, "b:1")] };
  const copies: string[] = [];
  const out = await runPlan(plan, {
    engine: engine((req) => {
      if (req.source.repository === "library/a") throw new MirrorError("IMAGE_PUSH_FAILED", "boom");
      return Promise.resolve();
    }, copies),
    concurrency: 2,
    continueOnError: true,
  });
  assert.deepEqual(out.results.map((r) => r.status), ["failed", "pushed"]);
});

Deno.test("runPlan() ensures each repository once and reports drift found by the engine", async () => {
  const plan: MirrorPlan = {
    engine: "registry",
    tasks: [task(0, "a:1"), task(1, "a:2"), task(2, "a:3", "exists")],
  };
  const ensured: string[] = [];
  const out = await runPlan(plan, {
    engine: engine((req) => {
      if (req.source.tag === "2") throw new MirrorError("IMAGE_TAG_DRIFT", "holds another image");
      return Promise.resolve();
    }, []),
    concurrency: 2,
    continueOnError: true,
    ensureRepository: async (t) => {
      ensured.push(t.repo?.name ?? "");
      await new Promise((r) => setTimeout(r, 5));
      return "created";
    },
  });
  assert.deepEqual(ensured, ["a"]);
  assert.deepEqual(out.results.map((r) => r.status), ["pushed", "drift", "exists"]);
  assert.equal(out.results.filter((r) => r.repo === "created").length, 1);
});

Deno.test("runPlan() stops on abort and marks the rest skipped", async () => {
  const controller = new AbortController();
  const plan: MirrorPlan = { engine: "registry", tasks: [task(0, "a:1"), task(1, "b:1")] };
  const out = await runPlan(plan, {
    engine: engine(() => {
      controller.abort();
      return Promise.reject(new Error("aborted"));
    }, []),
    concurrency: 1,
    continueOnError: true,
    signal: controller.signal,
  });
  assert.equal(out.interrupted, true);
  assert.deepEqual(out.results.map((r) => [r.status, r.code]), [
    ["failed", "MIRROR_INTERRUPTED"],
    ["skipped", "MIRROR_INTERRUPTED"],
  ]);
});

Deno.test("latestGroups() picks every repository holding a mirrored tag, candidates in config order", () => {
  const results = [
    {
      task: task(0, "a:2.0"),
      status: "exists" as const,
      digest: "sha256:2",
      code: "IMAGE_ALREADY_EXISTS" as const,
      durationMs: 0,
    },
    {
      task: task(1, "a:1.5"),
      status: "pushed" as const,
      digest: "sha256:1",
      code: "IMAGE_PUSHED" as const,
      durationMs: 0,
    },
    {
      task: task(2, "b:1"),
      status: "exists" as const,
      digest: "sha256:b",
      code: "IMAGE_ALREADY_EXISTS" as const,
      durationMs: 0,
    },
  ];
  const groups = latestGroups([...results, {
    task: task(3, "c:1"),
    status: "drift" as const,
    digest: "sha256:c",
    code: "IMAGE_TAG_DRIFT" as const,
    durationMs: 0,
  }]);
  // b got no new tag but is still reconciled (a crash may have left its latest behind); c holds
  // no mirrored tag (drift only): nothing to point at.
  assert.deepEqual(groups.map((g) => g.repository), ["acme/a", "acme/b"]);
  assert.deepEqual(groups[0].candidates, [{ tag: "2.0", digest: "sha256:2" }, {
    tag: "1.5",
    digest: "sha256:1",
  }]);
  assert.deepEqual(groups[1].candidates, [{ tag: "1", digest: "sha256:b" }]);
});

Deno.test("buildReport() masks secrets, counts statuses and sets the exit status", () => {
  const secrets = new Secrets();
  secrets.add("hunter2-password");
  const results = [
    {
      task: task(0, "a:1"),
      status: "pushed" as const,
      digest: "sha256:x",
      code: "IMAGE_PUSHED" as const,
      durationMs: 3,
    },
    {
      task: task(1, "b:1"),
      status: "failed" as const,
      code: "LOGIN_FAILED" as const,
      error: "login with hunter2-password refused",
      durationMs: 1,
    },
  ];
  const report = buildReport(results, {
    version: "0.1.0",
    engine: "registry",
    config: "c.yaml",
    dryRun: false,
    interrupted: false,
    startedAt: new Date(0),
    endedAt: new Date(1500),
    latest: [],
    secrets,
  });
  assert.equal(report.totals.pushed, 1);
  assert.equal(report.totals.failed, 1);
  assert.equal(report.entries[1].error, "login with *** refused");
  assert.equal(report.entries[0].destination, "q.example/acme/a:1");
  assert.equal(exitStatus(report), 1);
  assert.ok(!JSON.stringify(report).includes("hunter2"));
  assert.ok(formatStatistics(report).some((l) => /Failed:\s+1/.test(l)));
  assert.equal(exitStatus({ ...report, interrupted: true }), 130);
});
