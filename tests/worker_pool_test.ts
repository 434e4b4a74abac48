import assert from "node:assert/strict";
import { forEachLimited } from "../lib/worker_pool.ts";

Deno.test("forEachLimited() runs every item with at most `limit` at once", async () => {
  let running = 0;
  let most = 0;
  const done: number[] = [];
  await forEachLimited([1, 2, 3, 4, 5, 6, 7], async (n) => {
    running++;
    most = Math.max(most, running);
    await new Promise((resolve) => setTimeout(resolve, 5));
    done.push(n);
    running--;
  }, { limit: 3 });
  assert.equal(most, 3);
  assert.deepEqual(done.sort(), [1, 2, 3, 4, 5, 6, 7]);
});

Deno.test("forEachLimited() takes no item once shouldStop() is true", async () => {
  const seen: number[] = [];
  await forEachLimited([1, 2, 3, 4], (n) => {
    seen.push(n);
    return Promise.resolve();
  }, { limit: 1, shouldStop: () => seen.includes(2) });
  assert.deepEqual(seen, [1, 2]);
});

Deno.test("forEachLimited() rejects with the first failure", async () => {
  await assert.rejects(
    () =>
      forEachLimited(
        [1, 2, 3],
        (n) => n === 2 ? Promise.reject(new Error("two")) : Promise.resolve(),
        {
          limit: 1,
        },
      ),
    /two/,
  );
});

Deno.test("forEachLimited() with no items resolves at once", async () => {
  await forEachLimited([], () => Promise.reject(new Error("never")), { limit: 4 });
});
