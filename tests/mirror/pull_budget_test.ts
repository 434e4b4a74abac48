/**
 * The pull budget (pure): rate-limit headers, pulls per copy, the planner's first fit in config
 * order with the reserve, the deferral sentence (pull_budget.ts), and the per-run 429 gate
 * (pull_gate.ts). Every expected value is
 * written out.
 */
import assert from "node:assert/strict";
import {
  type BudgetTask,
  describeDeferral,
  observeRateLimit,
  parseRateLimit,
  planPullBudget,
  type PullBudgetPlan,
  pullsForHead,
  pullsForImage,
  type RateLimit,
  reserveFor,
} from "../../lib/mirror/pull_budget.ts";
import { HostPullGate, shouldStopHost } from "../../lib/mirror/pull_gate.ts";

Deno.test("parseRateLimit() reads Docker Hub's headers and returns null for junk", async (t) => {
  const rows: [string, Record<string, string>, RateLimit | null][] = [
    ["Docker Hub anonymous", {
      "ratelimit-limit": "100;w=21600",
      "ratelimit-remaining": "76;w=21600",
    }, {
      limit: 100,
      remaining: 76,
      windowSeconds: 21600,
    }],
    ["free account, nothing left", {
      "ratelimit-limit": "200;w=21600",
      "ratelimit-remaining": "0;w=21600",
    }, { limit: 200, remaining: 0, windowSeconds: 21600 }],
    ["no w anywhere: window 0", { "ratelimit-limit": "100", "ratelimit-remaining": "76" }, {
      limit: 100,
      remaining: 76,
      windowSeconds: 0,
    }],
    ["w only on limit", { "ratelimit-limit": "100;w=3600", "ratelimit-remaining": "76" }, {
      limit: 100,
      remaining: 76,
      windowSeconds: 3600,
    }],
    ["remaining's w wins", {
      "ratelimit-limit": "100;w=3600",
      "ratelimit-remaining": "76;w=60",
    }, { limit: 100, remaining: 76, windowSeconds: 60 }],
    ["spaces and upper-case W", {
      "ratelimit-limit": " 100 ; W = 21600 ",
      "ratelimit-remaining": "76;w=21600",
    }, { limit: 100, remaining: 76, windowSeconds: 21600 }],
    ["IETF list form", {
      "ratelimit-limit": "100, 100;w=21600",
      "ratelimit-remaining": "76",
    }, { limit: 100, remaining: 76, windowSeconds: 21600 }],
    ["other parameters ignored", {
      "ratelimit-limit": '100;w=21600;policy="anon"',
      "ratelimit-remaining": "76;w=21600;src=ip",
    }, { limit: 100, remaining: 76, windowSeconds: 21600 }],
    ["no headers", {}, null],
    ["limit only", { "ratelimit-limit": "100;w=21600" }, null],
    ["remaining only", { "ratelimit-remaining": "76;w=21600" }, null],
    ["negative", { "ratelimit-limit": "100", "ratelimit-remaining": "-1" }, null],
    ["fraction", { "ratelimit-limit": "100", "ratelimit-remaining": "7.5" }, null],
    ["words", { "ratelimit-limit": "lots", "ratelimit-remaining": "some" }, null],
    ["empty values", { "ratelimit-limit": "", "ratelimit-remaining": "" }, null],
    ["remaining above limit", { "ratelimit-limit": "100", "ratelimit-remaining": "101" }, null],
    ["ten digits", { "ratelimit-limit": "1000000000", "ratelimit-remaining": "1" }, null],
    ["junk window", { "ratelimit-limit": "100;w=six", "ratelimit-remaining": "76" }, null],
    ["junk parameter", { "ratelimit-limit": "100;;", "ratelimit-remaining": "76" }, null],
    ["junk list item", { "ratelimit-limit": "100, x", "ratelimit-remaining": "76" }, null],
    ["huge header", {
      "ratelimit-limit": `100;${"a=1;".repeat(100)}w=1`,
      "ratelimit-remaining": "76",
    }, null],
  ];
  for (const [name, headers, expected] of rows) {
    await t.step(name, () => {
      assert.deepEqual(parseRateLimit(new Headers(headers)), expected);
    });
  }
});

Deno.test("observeRateLimit() keeps the lowest remaining seen per host", () => {
  const seen = new Map<string, RateLimit>();
  const h = (remaining: number) =>
    new Headers({
      "ratelimit-limit": "100;w=21600",
      "ratelimit-remaining": `${remaining};w=21600`,
    });
  const observe = (host: string, headers: Headers) =>
    observeRateLimit(seen, host, parseRateLimit(headers));
  observe("docker.io", h(80));
  observe("docker.io", h(82));
  observe("docker.io", new Headers());
  observe("docker.io", h(79));
  observe("quay.io", new Headers());
  assert.deepEqual([...seen], [["docker.io", { limit: 100, remaining: 79, windowSeconds: 21600 }]]);
});

Deno.test("pullsForImage() counts one GET per image and per child copied, by engine", async (t) => {
  const rows: [string, "registry" | "docker", number, number][] = [
    ["registry engine, single image", "registry", 0, 1],
    ["registry engine, index of 2", "registry", 2, 3],
    ["registry engine, index of 7", "registry", 7, 8],
    ["docker engine, single image", "docker", 0, 1],
    ["docker engine, index of 2", "docker", 2, 2],
    ["docker engine, index of 7", "docker", 7, 2],
  ];
  for (const [name, engine, children, expected] of rows) {
    await t.step(name, () => assert.equal(pullsForImage({ engine, children }), expected));
  }
});

const HUB = "docker.io";
const GHCR = "ghcr.io";
const T0 = Date.UTC(2026, 10, 30, 3, 0, 0);

function hub(remaining: number, limit = 100, windowSeconds = 21600): [string, RateLimit] {
  return [HUB, { limit, remaining, windowSeconds }];
}

function tasks(...list: [string, Record<string, number>][]): BudgetTask[] {
  return list.map(([id, pulls]) => ({ id, pulls }));
}

Deno.test("planPullBudget() runs what fits in config order and defers the rest", async (t) => {
  const rows: {
    name: string;
    tasks: BudgetTask[];
    limits: [string, RateLimit][];
    reserve?: number;
    expected: PullBudgetPlan;
  }[] = [
    {
      name: "everything fits",
      tasks: tasks(["a", { [HUB]: 3 }], ["b", { [HUB]: 5 }]),
      limits: [hub(76)],
      expected: {
        run: ["a", "b"],
        deferred: [],
        hosts: [{
          host: HUB,
          limit: 100,
          remaining: 76,
          reserve: 10,
          planned: 8,
          remainingAfter: 68,
          deferred: 0,
          windowSeconds: 21600,
          refillsAtMs: Date.UTC(2026, 10, 30, 9, 0, 0),
        }],
      },
    },
    {
      name: "exactly the budget minus the reserve fits",
      tasks: tasks(["a", { [HUB]: 10 }], ["b", { [HUB]: 10 }]),
      limits: [hub(30)],
      expected: {
        run: ["a", "b"],
        deferred: [],
        hosts: [{
          host: HUB,
          limit: 100,
          remaining: 30,
          reserve: 10,
          planned: 20,
          remainingAfter: 10,
          deferred: 0,
          windowSeconds: 21600,
          refillsAtMs: Date.UTC(2026, 10, 30, 9, 0, 0),
        }],
      },
    },
    {
      name: "one over is deferred; a later smaller one still fits (first fit)",
      tasks: tasks(
        ["a", { [HUB]: 5 }],
        ["b", { [HUB]: 8 }],
        ["c", { [HUB]: 2 }],
        ["d", { [HUB]: 1 }],
      ),
      limits: [hub(18)],
      expected: {
        run: ["a", "c", "d"],
        deferred: [{ id: "b", host: HUB, reason: "budget", needed: 8, available: 3 }],
        hosts: [{
          host: HUB,
          limit: 100,
          remaining: 18,
          reserve: 10,
          planned: 8,
          remainingAfter: 10,
          deferred: 1,
          windowSeconds: 21600,
          refillsAtMs: Date.UTC(2026, 10, 30, 9, 0, 0),
        }],
      },
    },
    {
      name: "remaining below the reserve: every pulling task deferred, no-ops run",
      tasks: tasks(["a", { [HUB]: 1 }], ["noop", { [HUB]: 0 }], ["b", { [HUB]: 2 }]),
      limits: [hub(4)],
      expected: {
        run: ["noop"],
        deferred: [
          { id: "a", host: HUB, reason: "budget", needed: 1, available: 0 },
          { id: "b", host: HUB, reason: "budget", needed: 2, available: 0 },
        ],
        hosts: [{
          host: HUB,
          limit: 100,
          remaining: 4,
          reserve: 10,
          planned: 0,
          remainingAfter: 4,
          deferred: 2,
          windowSeconds: 21600,
          refillsAtMs: Date.UTC(2026, 10, 30, 9, 0, 0),
        }],
      },
    },
    {
      name: "reserve 0 spends the last pull",
      tasks: tasks(["a", { [HUB]: 2 }], ["b", { [HUB]: 1 }], ["c", { [HUB]: 1 }]),
      limits: [hub(3)],
      reserve: 0,
      expected: {
        run: ["a", "b"],
        deferred: [{ id: "c", host: HUB, reason: "budget", needed: 1, available: 0 }],
        hosts: [{
          host: HUB,
          limit: 100,
          remaining: 3,
          reserve: 0,
          planned: 3,
          remainingAfter: 0,
          deferred: 1,
          windowSeconds: 21600,
          refillsAtMs: Date.UTC(2026, 10, 30, 9, 0, 0),
        }],
      },
    },
    {
      name: "a task bigger than a whole window is deferred with reason window",
      tasks: tasks(["huge", { [HUB]: 91 }], ["a", { [HUB]: 90 }]),
      limits: [hub(100)],
      expected: {
        run: ["a"],
        deferred: [{ id: "huge", host: HUB, reason: "window", needed: 91, available: 90 }],
        hosts: [{
          host: HUB,
          limit: 100,
          remaining: 100,
          reserve: 10,
          planned: 90,
          remainingAfter: 10,
          deferred: 1,
          windowSeconds: 21600,
          refillsAtMs: Date.UTC(2026, 10, 30, 9, 0, 0),
        }],
      },
    },
    {
      name: "hosts without a rate limit are unlimited and not listed",
      tasks: tasks(["g", { [GHCR]: 500 }], ["a", { [HUB]: 2 }], ["b", { [HUB]: 1 }]),
      limits: [hub(12)],
      expected: {
        run: ["g", "a"],
        deferred: [{ id: "b", host: HUB, reason: "budget", needed: 1, available: 0 }],
        hosts: [{
          host: HUB,
          limit: 100,
          remaining: 12,
          reserve: 10,
          planned: 2,
          remainingAfter: 10,
          deferred: 1,
          windowSeconds: 21600,
          refillsAtMs: Date.UTC(2026, 10, 30, 9, 0, 0),
        }],
      },
    },
    {
      name: "two limited hosts: a task fits on both or spends nothing",
      tasks: tasks(
        ["both", { [HUB]: 1, [GHCR]: 5 }],
        ["ghcr", { [GHCR]: 1 }],
        ["hub", { [HUB]: 1 }],
      ),
      limits: [hub(20), [GHCR, { limit: 5000, remaining: 14, windowSeconds: 0 }]],
      expected: {
        run: ["ghcr", "hub"],
        deferred: [{ id: "both", host: GHCR, reason: "budget", needed: 5, available: 4 }],
        hosts: [
          {
            host: HUB,
            limit: 100,
            remaining: 20,
            reserve: 10,
            planned: 1,
            remainingAfter: 19,
            deferred: 0,
            windowSeconds: 21600,
            refillsAtMs: Date.UTC(2026, 10, 30, 9, 0, 0),
          },
          {
            host: GHCR,
            limit: 5000,
            remaining: 14,
            reserve: 10,
            planned: 1,
            remainingAfter: 13,
            deferred: 1,
            windowSeconds: 0,
            refillsAtMs: null,
          },
        ],
      },
    },
    {
      name: "no tasks",
      tasks: [],
      limits: [hub(50)],
      expected: { run: [], deferred: [], hosts: [] },
    },
  ];
  for (const row of rows) {
    await t.step(row.name, () => {
      const plan = planPullBudget(row.tasks, {
        limits: new Map(row.limits),
        reserve: row.reserve,
        nowMs: T0,
      });
      assert.deepEqual(plan, row.expected);
    });
  }
});

Deno.test("planPullBudget() refuses a bad reserve or pull count with the value", async (t) => {
  const rows: [string, BudgetTask[], number, RegExp][] = [
    ["negative reserve", [], -1, /reserve must be a non-negative integer, got -1/],
    ["fractional reserve", [], 2.5, /got 2\.5/],
    ["negative pulls", tasks(["a", { [HUB]: -2 }]), 10, /task a: pulls on docker\.io .* got -2/],
    ["NaN pulls", tasks(["a", { [HUB]: NaN }]), 10, /got NaN/],
  ];
  for (const [name, list, reserve, message] of rows) {
    await t.step(name, () => {
      assert.throws(
        () => planPullBudget(list, { limits: new Map([hub(50)]), reserve }),
        (e: unknown) => e instanceof RangeError && message.test(e.message),
      );
    });
  }
});

Deno.test("describeDeferral() says what is missing and when the window refills", async (t) => {
  const host = {
    host: HUB,
    limit: 100,
    remaining: 12,
    reserve: 10,
    planned: 0,
    remainingAfter: 12,
    deferred: 1,
    windowSeconds: 21600,
    refillsAtMs: Date.UTC(2026, 10, 30, 9, 0, 0),
  };
  const rows: [string, Parameters<typeof describeDeferral>, string][] = [
    [
      "budget, window known",
      [{ id: "a", host: HUB, reason: "budget", needed: 5, available: 2 }, host],
      "deferred: needs 5 pulls from docker.io, 2 left after the reserve of 10; the window " +
      "(21600 s) has refilled by 2026-11-30T09:00:00.000Z, the next run picks it up",
    ],
    [
      "budget, window not said",
      [{ id: "a", host: HUB, reason: "budget", needed: 5, available: 0 }, {
        ...host,
        windowSeconds: 0,
        refillsAtMs: null,
      }],
      "deferred: needs 5 pulls from docker.io, 0 left after the reserve of 10; the registry did " +
      "not say when its window refills, the next run picks it up",
    ],
    [
      "window",
      [{ id: "a", host: HUB, reason: "window", needed: 120, available: 2 }, host],
      "needs 120 pulls from docker.io, more than a whole window allows (ratelimit-limit 100 " +
      "minus the reserve of 10): no run copies it under this limit; log in for a higher one, or " +
      "make it need fewer (platforms)",
    ],
  ];
  for (const [name, args, expected] of rows) {
    await t.step(name, () => assert.equal(describeDeferral(...args), expected));
  }
});

Deno.test("shouldStopHost() stops on a Retry-After beyond retryDelay * maxRetries", async (t) => {
  const rows: [string, number | undefined, number, number, boolean][] = [
    ["no Retry-After", undefined, 5000, 3, false],
    ["shorter than the retries", 10_000, 5000, 3, false],
    ["exactly the retries", 15_000, 5000, 3, false],
    ["one ms beyond", 15_001, 5000, 3, true],
    ["an hour", 3_600_000, 5000, 3, true],
    ["maxRetries 0: any wait stops", 1, 5000, 0, true],
    ["maxRetries 0, Retry-After 0", 0, 5000, 0, false],
    ["NaN", NaN, 5000, 3, false],
  ];
  for (const [name, retryAfterMs, retryDelayMs, maxRetries, expected] of rows) {
    await t.step(name, () => {
      assert.equal(shouldStopHost(retryAfterMs, { retryDelayMs, maxRetries }), expected);
    });
  }
});

Deno.test("HostPullGate stops a host for the rest of the run and keeps the later time", async (t) => {
  const rows: [string, [string, number][], Record<string, number | null>, string[]][] = [
    ["nothing stopped", [], { [HUB]: null }, []],
    ["one host", [[HUB, 5000]], { [HUB]: 5000, [GHCR]: null }, [HUB]],
    ["the later time wins", [[HUB, 9000], [HUB, 5000]], { [HUB]: 9000 }, [HUB]],
    ["a time in the past still stops", [[HUB, 0]], { [HUB]: 0 }, [HUB]],
    ["two hosts, sorted", [[HUB, 1], [GHCR, 2]], { [HUB]: 1, [GHCR]: 2 }, [HUB, GHCR]],
  ];
  for (const [name, stops, until, hosts] of rows) {
    await t.step(name, () => {
      const gate = new HostPullGate();
      for (const [host, ms] of stops) gate.stop(host, ms);
      for (const [host, ms] of Object.entries(until)) {
        assert.equal(gate.isStopped(host), ms !== null, host);
        assert.equal(gate.stoppedUntil(host), ms, host);
      }
      assert.deepEqual(gate.stoppedHosts(), hosts);
    });
  }
});

Deno.test("planPullBudget() caps the reserve at 10% of a small limit (an anonymous 10/hour)", () => {
  const plan = planPullBudget(tasks(["a", { [HUB]: 4 }], ["b", { [HUB]: 6 }]), {
    limits: new Map([hub(10, 10, 3600)]),
    reserve: 10,
    nowMs: 0,
  });
  assert.deepEqual(plan.run, ["a"]);
  assert.deepEqual(plan.deferred, [
    { id: "b", host: HUB, reason: "budget", needed: 6, available: 5 },
  ]);
  assert.equal(plan.hosts[0].reserve, 1);
  assert.equal(plan.hosts[0].remainingAfter, 6);
  assert.equal(reserveFor(10, 5), 0);
  assert.equal(reserveFor(10, 200), 10);
});

Deno.test("pullsForHead(): with platforms, two children per wanted platform at most", () => {
  const index = { mediaType: "application/vnd.oci.image.index.v1+json", size: 150 * 10 };
  // Without platforms: the bound from the index size (10 children) + the index.
  assert.equal(pullsForHead(index, "registry"), 11);
  // linux/amd64: its child and its attestation manifest + the index.
  assert.equal(pullsForHead(index, "registry", 1), 3);
  assert.equal(pullsForHead(index, "registry", 2), 5);
  // Never more than the size bound.
  assert.equal(pullsForHead(index, "registry", 8), 11);
  // A single image is one pull whatever the platforms.
  const image = { mediaType: "application/vnd.oci.image.manifest.v1+json", size: 1000 };
  assert.equal(pullsForHead(image, "registry", 1), 1);
});
