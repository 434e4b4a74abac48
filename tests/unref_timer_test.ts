import assert from "node:assert/strict";
import { unrefTimeout } from "../lib/unref_timer.ts";
import { ROOT } from "./support/cli.ts";
import { runProcess } from "./support/process.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

Deno.test("unrefTimeout() calls fn once, no sooner than ms", async () => {
  const started = performance.now();
  const calls: number[] = [];
  unrefTimeout(() => calls.push(performance.now() - started), 40);
  await sleep(200);
  assert.equal(calls.length, 1);
  assert.ok(calls[0] >= 39, `fired after ${calls[0]} ms`);
});

Deno.test("unrefTimeout(): cancel before the time means fn never runs; cancel again or after is harmless", async () => {
  let calls = 0;
  const cancel = unrefTimeout(() => calls++, 20);
  cancel();
  cancel();
  const fired = unrefTimeout(() => calls += 10, 10);
  await sleep(120);
  fired();
  assert.equal(calls, 10);
});

Deno.test("unrefTimeout(): 0 ms runs fn after the call returns, not inside it", async () => {
  let calls = 0;
  unrefTimeout(() => calls++, 0);
  assert.equal(calls, 0);
  await sleep(10);
  assert.equal(calls, 1);
});

Deno.test("unrefTimeout() fires while the process waits on a socket (what the request watchdog needs)", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of listener) accepted.push(conn); // accept, never answer
  })().catch(() => {});
  const abort = new AbortController();
  const started = performance.now();
  unrefTimeout(() => abort.abort(new Error("deadline")), 100);
  await assert.rejects(
    fetch(`http://127.0.0.1:${listener.addr.port}/`, { signal: abort.signal }),
    /deadline/,
  );
  const took = performance.now() - started;
  assert.ok(took >= 99 && took < 5000, `aborted after ${took} ms`);
  for (const conn of accepted) conn.close();
  listener.close();
  await accepting;
});

Deno.test("unrefTimeout(): an armed timer alone does not keep the process running", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bb-unref-" });
  try {
    await Deno.writeTextFile(
      `${dir}/arm.ts`,
      [
        `import { unrefTimeout } from "${ROOT}/lib/unref_timer.ts";`,
        `unrefTimeout(() => console.log("fired"), 60_000);`,
        `console.log("armed");`,
      ].join("\n"),
    );
    // A timer that kept the process alive would hold it for a minute: the run is killed at 30 s.
    const run = await runProcess("deno", ["run", "--no-config", `${dir}/arm.ts`], {
      timeoutMs: 30_000,
    });
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, "armed\n");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
