/**
 * SharedWork without a network: one run of the work per key while callers overlap, a success
 * remembered, a failure thrown to its own caller only while the next waiter does the work, forget,
 * and a waiter's abort.
 */
import assert from "node:assert/strict";
import { SharedWork } from "../../lib/engine/_shared_work.ts";

/** A work whose end the test decides. */
function gate() {
  let open!: () => void;
  let fail!: (error: Error) => void;
  const promise = new Promise<void>((resolve, reject) => {
    open = resolve;
    fail = reject;
  });
  return { promise, open, fail };
}

Deno.test("SharedWork.run() does the work once for overlapping callers and remembers it", async () => {
  const shared = new SharedWork();
  const g = gate();
  let runs = 0;
  const work = () => {
    runs++;
    return g.promise;
  };
  const calls = [shared.run("k", work), shared.run("k", work), shared.run("k", work)];
  g.open();
  assert.deepEqual(await Promise.all(calls), [true, false, false]);
  assert.equal(await shared.run("k", work), false);
  assert.equal(runs, 1);
  assert.equal(await shared.run("other", () => Promise.resolve()), true, "keys are apart");
});

Deno.test("SharedWork.run(): a failure fails its own caller only; the next waiter does the work", async () => {
  const shared = new SharedWork();
  const first = gate();
  let runs = 0;
  const failing = shared.run("k", () => {
    runs++;
    return first.promise;
  });
  const waiters = [1, 2, 3].map(() =>
    shared.run("k", () => {
      runs++;
      return Promise.resolve();
    })
  );
  first.fail(new Error("upload refused"));
  await assert.rejects(failing, /upload refused/);
  assert.deepEqual(await Promise.all(waiters), [true, false, false]);
  assert.equal(runs, 2, "one failed try, one good try");
});

Deno.test("SharedWork.forget() makes the next run do the work again", async () => {
  const shared = new SharedWork();
  let runs = 0;
  const work = () => {
    runs++;
    return Promise.resolve();
  };
  await shared.run("k", work);
  shared.forget("k");
  assert.equal(await shared.run("k", work), true);
  assert.equal(runs, 2);
});

Deno.test("SharedWork.run(): an aborted waiter stops waiting; the work goes on for its caller", async () => {
  const shared = new SharedWork();
  const g = gate();
  const owner = shared.run("k", () => g.promise);
  const controller = new AbortController();
  const waiter = shared.run("k", () => Promise.resolve(), controller.signal);
  controller.abort(new DOMException("stop", "AbortError"));
  await assert.rejects(waiter, /stop/);
  g.open();
  assert.equal(await owner, true);
  await assert.rejects(shared.run("k", () => Promise.resolve(), controller.signal), /stop/);
});
