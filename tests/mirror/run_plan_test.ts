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
import { buildReport, exitStatus } from "../../lib/mirror/report.ts";
import { formatStatistics } from "../../lib/mirror/statistics.ts";
import { latestGroups, runPlan } from "../../lib/mirror/run_plan.ts";
import { HostPullGate } from "../../lib/mirror/pull_gate.ts";
import { RegistryError } from "../../lib/registry/registry_error.ts";
import { parseRetryAfter } from "../../lib/http_error.ts";

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
  }, {
    // A digest-pinned image's tag is never a candidate for latest.
    task: task(4, `a:pinned-sha256-${"e".repeat(64)}`),
    status: "pushed" as const,
    digest: "sha256:e",
    code: "IMAGE_PUSHED" as const,
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

/** A 429 as the registry client throws it when Retry-After is beyond maxRetryWait. */
function rateLimited(host: string, retryAfterMs: number | undefined): RegistryError {
  return new RegistryError("IMAGE_RATE_LIMITED", `GET http://${host}/v2/x answered 429`, {
    status: 429,
    retryAfterMs,
    host,
    retryable: false,
  });
}

Deno.test("runPlan() stops pulls from a source host after a long 429 and defers its rest", async (t) => {
  const plan = (): MirrorPlan => ({
    engine: "registry",
    tasks: [
      task(0, "hub.example/a:1"),
      task(1, "hub.example/b:1"),
      task(2, "src.example/c:1"),
      task(3, "hub.example/d:1"),
      task(4, "hub.example/e:1", "deferred"),
    ],
  });
  const gate = () => ({ gate: new HostPullGate(), retryDelayMs: 5000, maxRetries: 3 });
  const rows: { name: string; error: RegistryError; statuses: string[]; copies: string[] }[] = [
    {
      name: "Retry-After 1 h from the source: it and the host's later tasks deferred",
      error: rateLimited("hub.example", 3_600_000),
      statuses: ["pushed", "deferred", "pushed", "deferred", "deferred"],
      copies: ["a:1", "b:1", "c:1"],
    },
    {
      name: "Retry-After of 10^20 s (read as a year): deferred, the date still valid",
      error: rateLimited("hub.example", parseRetryAfter("100000000000000000000")),
      statuses: ["pushed", "deferred", "pushed", "deferred", "deferred"],
      copies: ["a:1", "b:1", "c:1"],
    },
    {
      name: "Retry-After within the retries (15 s): a failure like any other",
      error: rateLimited("hub.example", 15_000),
      statuses: ["pushed", "failed", "pushed", "pushed", "deferred"],
      copies: ["a:1", "b:1", "c:1", "d:1"],
    },
    {
      name: "no Retry-After: a failure",
      error: rateLimited("hub.example", undefined),
      statuses: ["pushed", "failed", "pushed", "pushed", "deferred"],
      copies: ["a:1", "b:1", "c:1", "d:1"],
    },
    {
      name: "the 429 came from the destination: the source is not stopped",
      error: rateLimited("q.example", 3_600_000),
      statuses: ["pushed", "failed", "pushed", "pushed", "deferred"],
      copies: ["a:1", "b:1", "c:1", "d:1"],
    },
  ];
  for (const row of rows) {
    await t.step(row.name, async () => {
      const copies: string[] = [];
      const pullGate = gate();
      const out = await runPlan(plan(), {
        engine: engine((req) => {
          if (req.source.repository === "b") throw row.error;
          return Promise.resolve();
        }, copies),
        concurrency: 1,
        continueOnError: true,
        pullGate,
      });
      assert.deepEqual(out.results.map((r) => r.status), row.statuses);
      assert.deepEqual(copies, row.copies);
      const stopped = row.statuses[1] === "deferred";
      assert.deepEqual(pullGate.gate.stoppedHosts(), stopped ? ["hub.example"] : []);
      if (stopped) {
        assert.equal(out.results[1].code, "IMAGE_DEFERRED_RATE_LIMIT");
        assert.match(
          out.results[3].error ?? "",
          /^deferred: hub\.example answered 429 asking to wait until \d{4}-.*Z, longer than the retries wait; no more pulls from it this run, the next run picks it up$/,
        );
      }
    });
  }
});

Deno.test("buildReport() counts deferred tasks, exits 0 for them and shows pulls per host", () => {
  const results = [
    {
      task: { ...task(0, "hub.example/a:1"), pulls: 2 },
      status: "pushed" as const,
      code: "IMAGE_PUSHED" as const,
      durationMs: 1,
    },
    {
      task: { ...task(1, "hub.example/b:1"), pulls: 1 },
      status: "deferred" as const,
      code: "IMAGE_DEFERRED_RATE_LIMIT" as const,
      error: "deferred: x",
      durationMs: 0,
    },
    {
      task: { ...task(2, "hub.example/c:1", "exists"), pulls: undefined },
      status: "exists" as const,
      code: "IMAGE_ALREADY_EXISTS" as const,
      durationMs: 0,
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
    secrets: new Secrets(),
    pullBudget: [{
      host: "hub.example",
      limit: 100,
      remaining: 13,
      reserve: 10,
      planned: 2,
      remainingAfter: 11,
      deferred: 1,
      windowSeconds: 21600,
      refillsAtMs: Date.UTC(2026, 10, 30, 9, 0, 0),
    }],
  });
  assert.equal(report.totals.deferred, 1);
  assert.equal(exitStatus(report), 0);
  assert.deepEqual(report.pullBudget, [{
    host: "hub.example",
    limit: 100,
    remaining: 13,
    reserve: 10,
    planned: 2,
    spent: 2,
    remainingAfter: 11,
    deferred: 1,
    refillsAt: "2026-11-30T09:00:00.000Z",
    stoppedUntil: null,
  }]);
  const lines = formatStatistics(report);
  assert.ok(lines.includes("  Deferred (budget):  1"), lines.join("\n"));
  assert.ok(
    lines.includes(
      "  Pulls hub.example:  2 spent, 11 of 100 left (reserve 10), 1 deferred; window refills by 2026-11-30T09:00:00.000Z",
    ),
    lines.join("\n"),
  );
});

Deno.test("runPlan(): tasks that copy nothing and latest do not wait for copy slots", async () => {
  const exists = (id: number, src: string) => ({
    ...task(id, src, "exists"),
    destinationDigest: `sha256:${"b".repeat(64)}`,
  });
  const plan: MirrorPlan = {
    engine: "registry",
    tasks: [task(0, "a:1"), exists(1, "b:1"), exists(2, "c:1"), exists(3, "d:1")],
  };
  let release!: () => void;
  const copying = new Promise<void>((r) => release = r);
  const order: string[] = [];
  const carried: string[] = [];
  let inLatest = 0;
  let mostInLatest = 0;
  const deadline = setTimeout(release, 5_000); // a regression ends the test instead of hanging
  try {
    const out = await runPlan(plan, {
      engine: engine(() => copying, []),
      concurrency: 1,
      continueOnError: true,
      onEvent: (event) => {
        if (event.kind === "task-done") order.push(event.result.task.source.repository);
        // The three no-op tasks are done while the copy still holds the only copy slot.
        if (order.length === 3 && !order.includes("library/a")) release();
      },
      supplyChain: (t) => {
        carried.push(t.source.repository);
        return Promise.resolve({ signatures: 0, attestations: 0, sboms: 0, referrers: 0 });
      },
      updateLatest: async (group) => {
        mostInLatest = Math.max(mostInLatest, ++inLatest);
        await new Promise((r) => setTimeout(r, 20));
        inLatest--;
        return { group, code: "IMAGE_LATEST_KEPT", message: "ok" };
      },
    });
    assert.deepEqual(order, ["library/b", "library/c", "library/d", "library/a"]);
    assert.equal(carried.length, 4, "every task at its destination carried its supply chain");
    assert.deepEqual(out.results.map((r) => r.status), ["pushed", "exists", "exists", "exists"]);
    assert.deepEqual(
      out.latest.map((l) => l.group.repository),
      ["acme/a", "acme/b", "acme/c", "acme/d"],
      "latest outcomes in group order",
    );
    assert.ok(mostInLatest > 1, "latest reconciled in several repositories at once");
  } finally {
    clearTimeout(deadline);
  }
});

Deno.test("runPlan(): without continueOnError, tasks keep one pool and config order", async () => {
  const plan: MirrorPlan = {
    engine: "registry",
    tasks: [task(0, "a:1"), task(1, "b:1"), {
      ...task(2, "c:1", "failed"),
      code: "IMAGE_NOT_FOUND",
    }],
  };
  const copies: string[] = [];
  const out = await runPlan(plan, {
    engine: engine(() => Promise.resolve(), copies),
    concurrency: 1,
    continueOnError: false,
  });
  assert.deepEqual(out.results.map((r) => r.status), ["pushed", "pushed", "failed"]);
  assert.deepEqual(copies, ["library/a:1", "library/b:1"]);
});
