/**
 * The one worker pool of bananna-bot (tasks of a plan, probes while planning, blobs of an image):
 * at most `limit` calls of `fn` at once, items taken in order. No queue object, no events: a
 * caller that needs to stop early says so through `shouldStop`, checked before each item.
 *
 * @module
 */

/** Options for {@link forEachLimited}. */
export interface ForEachLimitedOptions {
  /** Calls at once (at least one worker runs). */
  limit: number;
  /** Checked before each item is taken: true leaves the rest untouched. @default () => false */
  shouldStop?: () => boolean;
}

/**
 * Run `fn` over `items` with at most `options.limit` calls at once. Resolves when every worker
 * has finished; rejects with the first rejection of `fn` (the worker that saw it stops, the
 * others finish the item they hold and go on taking items, as before).
 *
 * @example
 * ```ts
 * import { forEachLimited } from "./worker_pool.ts";
 * import assert from "node:assert/strict";
 * const seen: number[] = [];
 * await forEachLimited([1, 2, 3], async (n) => { seen.push(n); }, { limit: 2 });
 * assert.deepEqual(seen, [1, 2, 3]);
 * ```
 *
 * @param items what to work on, in order
 * @param fn the work for one item
 * @param options the limit and an optional stop check
 */
export async function forEachLimited<T>(
  items: readonly T[],
  fn: (item: T) => Promise<void>,
  options: ForEachLimitedOptions,
): Promise<void> {
  const shouldStop = options.shouldStop ?? (() => false);
  let next = 0;
  const workers = Array.from(
    { length: Math.max(1, Math.min(options.limit, items.length)) },
    async () => {
      while (next < items.length && !shouldStop()) await fn(items[next++]);
    },
  );
  await Promise.all(workers);
}
