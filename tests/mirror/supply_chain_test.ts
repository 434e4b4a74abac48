/**
 * The run's supply-chain step (lib/mirror/supply_chain.ts) and its place in runPlan and the report,
 * with in-memory engines: which engine and mode carry anything, IMAGE_UNSIGNED, tasks the plan
 * found `exists` synced too, a failure of the step failing the task clearly. The real copies are
 * proven in tests/e2e/signatures_copy_test.ts and signatures_referrers_test.ts.
 */
import assert from "node:assert/strict";
import type {
  Engine,
  EngineEvent,
  SupplyChainCounts,
  SupplyChainRequest,
} from "../../lib/engine/engine.ts";
import { MirrorError } from "../../lib/errors.ts";
import { Secrets } from "../../lib/log/redact.ts";
import type { MirrorPlan, PlanTask } from "../../lib/mirror/plan.ts";
import { buildReport } from "../../lib/mirror/report.ts";
import { formatStatistics } from "../../lib/mirror/statistics.ts";
import { runPlan, type TaskResult } from "../../lib/mirror/run_plan.ts";
import { signaturesMode, supplyChainStep, unsignedSummary } from "../../lib/mirror/supply_chain.ts";
import { parseReference } from "../../lib/registry/reference.ts";

const DIGEST = `sha256:${"b".repeat(64)}`;

function task(id: number, action: PlanTask["action"]): PlanTask {
  return {
    id,
    imageKey: `src.example/team/app:${id}`,
    target: "prod",
    source: parseReference(`src.example/team/app:${id}`),
    destination: { registry: "dst.example", repository: "mirror/app", tag: String(id) },
    repo: null,
    action,
    comparedBy: "manifest",
    destinationDigest: action === "exists" || action === "drift" ? DIGEST : undefined,
    message: action === "drift" ? "holds another image" : undefined,
  };
}

function engine(
  carry?: (request: SupplyChainRequest) => Promise<SupplyChainCounts>,
  name: Engine["name"] = "registry",
): Engine {
  return {
    name,
    comparison: "manifest",
    prepare: () => Promise.resolve(),
    close: () => Promise.resolve(),
    copy: () => Promise.resolve({ status: "pushed", digest: DIGEST, bytesUploaded: 1 }),
    ...(carry ? { carrySupplyChain: carry } : {}),
  };
}

const NONE: SupplyChainCounts = { signatures: 0, attestations: 0, sboms: 0, referrers: 0 };
const SOME: SupplyChainCounts = { signatures: 2, attestations: 1, sboms: 0, referrers: 3 };

Deno.test("signaturesMode(): unset is copy with the registry engine, skip with docker", () => {
  assert.equal(signaturesMode({ engine: "registry", signatures: undefined }), "copy");
  assert.equal(signaturesMode({ engine: "docker", signatures: undefined }), "skip");
  assert.equal(signaturesMode({ engine: "registry", signatures: "skip" }), "skip");
  assert.equal(signaturesMode({ engine: "registry", signatures: "require" }), "require");
});

Deno.test("supplyChainStep(): nothing for skip or an engine that cannot carry (docker)", () => {
  const carry = () => Promise.resolve(SOME);
  const emit = () => {};
  assert.equal(
    supplyChainStep(engine(carry), { operation: { engine: "registry", signatures: "skip" }, emit }),
    undefined,
  );
  assert.equal(
    supplyChainStep(engine(undefined, "docker"), {
      operation: { engine: "docker", signatures: "copy" },
      emit,
    }),
    undefined,
  );
  assert.equal(
    typeof supplyChainStep(engine(carry), { operation: { engine: "registry" }, emit }),
    "function",
  );
});

Deno.test("supplyChainStep(): passes the repositories and artifactTypes; IMAGE_UNSIGNED only when nothing was found", async () => {
  const asked: SupplyChainRequest[] = [];
  const answers = [NONE, SOME];
  const events: [number, EngineEvent][] = [];
  const step = supplyChainStep(
    engine((request) => {
      asked.push(request);
      return Promise.resolve(answers[asked.length - 1]);
    }),
    {
      operation: { engine: "registry", signatures: "copy", artifactTypes: ["text/spdx+json"] },
      emit: (t, event) => events.push([t.id, event]),
      listed: new Map([["src.example/team/app", ["1", "sha256-x.sig"]]]),
    },
  );
  assert.ok(step);
  assert.deepEqual(await step(task(0, "push"), DIGEST), NONE);
  assert.deepEqual(await step(task(1, "exists"), DIGEST), SOME);
  assert.deepEqual(
    asked.map((
      r,
    ) => [r.source.repository, r.destination.repository, r.digest, r.artifactTypes, r.sourceTags]),
    [
      ["team/app", "mirror/app", DIGEST, ["text/spdx+json"], ["1", "sha256-x.sig"]],
      ["team/app", "mirror/app", DIGEST, ["text/spdx+json"], ["1", "sha256-x.sig"]],
    ],
  );
  // copy: no line per image (the run's one summary line: unsignedSummary).
  assert.deepEqual(events, []);
});

Deno.test("supplyChainStep() with signatures: require warns per image that carries nothing", async () => {
  const events: [number, EngineEvent][] = [];
  const step = supplyChainStep(engine(() => Promise.resolve(NONE)), {
    operation: { engine: "registry", signatures: "require" },
    emit: (t, event) => events.push([t.id, event]),
  });
  assert.ok(step);
  await step(task(0, "push"), DIGEST);
  assert.deepEqual(events, [[0, {
    kind: "step",
    code: "IMAGE_UNSIGNED",
    message:
      `src.example/team/app:0 (${DIGEST}) carries no signature, attestation, SBOM or referrer: nothing to carry to dst.example/mirror/app:0`,
  }]]);
});

Deno.test("unsignedSummary(): one line with the count under copy; none under skip or require", () => {
  const result = (id: number, carried?: typeof NONE) =>
    ({ task: task(id, "push"), status: "pushed", carried }) as unknown as TaskResult;
  const results = [
    ...Array.from({ length: 8 }, (_, i) => result(i, NONE)),
    result(8, SOME),
    result(9), // failed before its supply chain: not counted
  ];
  assert.equal(
    unsignedSummary(results, { engine: "registry", signatures: "copy" }),
    "8 of 10 image x target carry no signature, attestation, SBOM or referrer (signatures: copy mirrors them anyway; the report's entries show which: all four counts 0)",
  );
  assert.equal(unsignedSummary(results, { engine: "registry", signatures: "require" }), null);
  assert.equal(unsignedSummary(results, { engine: "registry", signatures: "skip" }), null);
  assert.equal(unsignedSummary([result(0, SOME)], { engine: "registry" }), null);
});

Deno.test("runPlan(): pushed and plan-`exists` tasks are synced; drift and failed are not; a failing step fails its task clearly", async () => {
  const plan: MirrorPlan = {
    engine: "registry",
    tasks: [
      task(0, "push"),
      task(1, "exists"),
      task(2, "drift"),
      task(3, "failed"),
      task(4, "exists"),
    ],
  };
  const synced: string[] = [];
  const out = await runPlan(plan, {
    engine: engine(),
    concurrency: 1,
    continueOnError: true,
    supplyChain: (t, digest) => {
      synced.push(`${t.id} ${digest}`);
      if (t.id === 4) {
        return Promise.reject(
          new MirrorError("IMAGE_REFERRER_INVALID", "dst.example/mirror/app: not an index"),
        );
      }
      return Promise.resolve(SOME);
    },
  });
  // Which tasks, not in which order: no-op tasks run beside the copies.
  assert.deepEqual(synced.sort(), [`0 ${DIGEST}`, `1 ${DIGEST}`, `4 ${DIGEST}`]);
  assert.deepEqual(
    out.results.map((r) => [r.status, r.code, r.carried ?? null]),
    [
      ["pushed", "IMAGE_PUSHED", SOME],
      ["exists", "IMAGE_ALREADY_EXISTS", SOME],
      ["drift", "IMAGE_TAG_DRIFT", null],
      ["failed", "IMAGE_PULL_FAILED", null],
      ["failed", "IMAGE_REFERRER_INVALID", null],
    ],
  );
  assert.equal(
    out.results[4].error,
    `the image is mirrored (${DIGEST}) but its signatures were not carried: dst.example/mirror/app: not an index`,
  );
  assert.equal(out.results[4].digest, DIGEST);

  const report = buildReport(out.results, {
    version: "0.0.0",
    engine: "registry",
    config: "/c.yaml",
    dryRun: false,
    interrupted: false,
    startedAt: new Date(0),
    endedAt: new Date(1000),
    latest: [],
    secrets: new Secrets(),
  });
  assert.deepEqual(
    report.entries.map((e) => [e.signatures, e.attestations, e.sboms, e.referrers]),
    [[2, 1, 0, 3], [2, 1, 0, 3], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]],
  );
  assert.ok(
    formatStatistics(report).includes(
      "  Supply chain:       4 signatures, 2 attestations, 0 SBOMs, 6 referrers",
    ),
  );
});

Deno.test("formatStatistics(): no supply-chain line when nothing was carried", () => {
  const report = buildReport([], {
    version: "0.0.0",
    engine: "docker",
    config: "/c.yaml",
    dryRun: false,
    interrupted: false,
    startedAt: new Date(0),
    endedAt: new Date(1000),
    latest: [],
    secrets: new Secrets(),
  });
  assert.equal(formatStatistics(report).some((l) => l.includes("Supply chain")), false);
});
