/**
 * A timer that never keeps the process alive, for the watchdogs and the heartbeat that only
 * guard work already under way: the transport's request bounds (registry/request_watchdog.ts),
 * its blob-rate watch (registry/http_transport.ts) and the run lock's heartbeat
 * (mirror/run_lock.ts).
 *
 * Deno 2.9's global `setTimeout` and `setInterval` are Node's (`node:timers`), and the first call
 * in a process loads that part of Deno's Node layer: about 7 ms and 4 MB of RSS, measured with
 * `Deno.memoryUsage()` around the first call. A nightly no-op needs a timer only as a bound that
 * never fires, so these bounds use the timeout of `Atomics.waitAsync` on a cell of their own
 * instead: standard JavaScript, no module to load, and no pending operation that would keep the
 * process running (what `Deno.unrefTimer` gave the Node timers). Cancelling wakes the waiter
 * with `Atomics.notify`, which settles it at once. Timers a run must wait for (retry delays,
 * rate limits) stay `setTimeout`.
 *
 * @module
 */

/**
 * Call `fn` once, `ms` milliseconds from now (at the earliest), unless the returned function is
 * called first. The timer alone never keeps the process running; a non-finite `ms` never fires.
 * `fn` runs as a task of its own, never inside this call, even for 0 ms.
 *
 * @returns Cancel: `fn` is not called afterwards (calling it again, or after `fn` ran, does nothing).
 */
export function unrefTimeout(fn: () => void, ms: number): () => void {
  const cell = new Int32Array(new SharedArrayBuffer(4));
  let live = true;
  const fire = () => {
    if (!live) return;
    live = false;
    fn();
  };
  const wait = Atomics.waitAsync(cell, 0, 0, Math.max(0, ms));
  if (wait.async) {
    // "ok" is the cancel's notify; only the timeout calls fn.
    wait.value.then((outcome) => outcome === "timed-out" && fire());
  } else {
    // A timeout of 0 is decided at once ("timed-out"): fn still runs after this call returns.
    queueMicrotask(fire);
  }
  return () => {
    if (!live) return;
    live = false;
    Atomics.notify(cell, 0);
  };
}
