/**
 * The bandwidth limit's buckets on a fake clock: the rate holds for the whole process across
 * concurrent streams, a host's own limit adds to it, each direction has its own bucket, a chunk
 * larger than the burst still passes, and an abort ends a wait.
 */
import assert from "node:assert/strict";
import {
  Bandwidth,
  type Clock,
  SLICE_BYTES,
  Throttle,
  TokenBucket,
} from "../../lib/registry/bandwidth.ts";

/** Time that moves only when told: {@link FakeClock.runUntil} jumps to the next timer. */
class FakeClock implements Clock {
  t = 0;
  #timers: { at: number; resolve: () => void }[] = [];
  now(): number {
    return this.t;
  }
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const timer = { at: this.t + ms, resolve };
      this.#timers.push(timer);
      signal?.addEventListener("abort", () => {
        this.#timers = this.#timers.filter((x) => x !== timer);
        reject(signal.reason);
      }, { once: true });
    });
  }
  /** Let `work` run, jumping to the next timer whenever it waits; bounded in steps. */
  async runUntil<T>(work: Promise<T>): Promise<T> {
    let finished = false;
    const done = work.finally(() => finished = true);
    for (let step = 0; step < 100_000 && !finished; step++) {
      await new Promise((r) => setTimeout(r, 0));
      if (finished || this.#timers.length === 0) continue;
      this.#timers.sort((a, b) => a.at - b.at);
      const next = this.#timers.shift() as { at: number; resolve: () => void };
      this.t = Math.max(this.t, next.at);
      next.resolve();
    }
    assert.ok(finished, "work did not finish within the step bound");
    return await done;
  }
}

/** A stream of `bytes` zero bytes in chunks of `chunk`. */
function source(bytes: number, chunk: number): ReadableStream<Uint8Array> {
  let left = bytes;
  return new ReadableStream({
    pull(controller) {
      if (left <= 0) return controller.close();
      const n = Math.min(chunk, left);
      left -= n;
      controller.enqueue(new Uint8Array(n));
    },
  });
}

async function drain(stream: ReadableStream<Uint8Array>): Promise<number> {
  let n = 0;
  for await (const chunk of stream) n += chunk.length;
  return n;
}

const MiB = 1024 * 1024;

Deno.test("bucket: a burst passes at once, then bytes wait for the rate", () => {
  const clock = new FakeClock();
  const bucket = new TokenBucket(1000, { clock, burstBytes: 100 });
  assert.equal(bucket.reserve(100), 0);
  assert.equal(bucket.reserve(500), 500, "500 bytes at 1000 B/s: 500 ms");
  assert.equal(bucket.reserve(500), 1000, "the debt queues: the next 500 wait behind");
  clock.t = 1000;
  assert.equal(bucket.reserve(0), 0, "after 1 s the debt is paid");
  clock.t = 60_000;
  assert.equal(bucket.reserve(100), 0, "idle time refills up to the burst only");
  assert.equal(bucket.reserve(1), 1, "and no further");
});

Deno.test("throttle: one stream of 4 MiB at 1 MiB/s takes 4 s less the burst", async () => {
  const clock = new FakeClock();
  const bw = new Bandwidth(MiB, {}, clock);
  const moved = await clock.runUntil(
    drain(bw.throttle("a", "download").pipe(source(4 * MiB, MiB))),
  );
  assert.equal(moved, 4 * MiB);
  // Burst: one second's worth; each slice waits until the debt it adds is paid.
  const expected = 4000 - 1000;
  assert.ok(Math.abs(clock.t - expected) < 1, `took ${clock.t} ms, expected ${expected}`);
  const usage = bw.usage();
  assert.equal(usage?.downloadBytes, 4 * MiB);
  assert.equal(usage?.uploadBytes, 0);
  assert.equal(usage?.bytesPerSecond, MiB);
});

Deno.test("throttle: a chunk larger than the burst passes in slices, held to the rate", async () => {
  const clock = new FakeClock();
  const bw = new Bandwidth(MiB, {}, clock);
  const sizes: number[] = [];
  const stream = bw.throttle("a", "upload").pipe(source(8 * MiB, 8 * MiB));
  const read = (async () => {
    for await (const chunk of stream) sizes.push(chunk.length);
  })();
  await clock.runUntil(read);
  assert.equal(sizes.length, (8 * MiB) / SLICE_BYTES);
  assert.ok(sizes.every((n) => n === SLICE_BYTES));
  assert.ok(Math.abs(clock.t - 7000) < 1, `8 MiB in one chunk took ${clock.t} ms`);
});

Deno.test("throttle: four concurrent streams share one process limit (not one each)", async () => {
  const clock = new FakeClock();
  const bw = new Bandwidth(MiB, {}, clock);
  const streams = ["a", "b", "a", "c"].map((host) =>
    drain(bw.throttle(host, "download").pipe(source(2 * MiB, 256 * 1024)))
  );
  const moved = await clock.runUntil(Promise.all(streams));
  assert.deepEqual(moved, [2 * MiB, 2 * MiB, 2 * MiB, 2 * MiB]);
  // 8 MiB at 1 MiB/s together, less the 1 s burst: about 7 s, whatever the stream count.
  assert.ok(clock.t >= 6800 && clock.t <= 7000, `4 streams took ${clock.t} ms`);
  assert.ok((bw.usage()?.waitedSeconds ?? 0) > 6.8 * 2, "each stream waited its turn");
});

Deno.test("throttle: download and upload each have their own bucket at the limit", async () => {
  const clock = new FakeClock();
  const bw = new Bandwidth(MiB, {}, clock);
  // A copy: the download stream piped through the upload throttle, as a blob passes once.
  const copy = bw.throttle("dst", "upload").pipe(
    bw.throttle("src", "download").pipe(source(4 * MiB, MiB)),
  );
  assert.equal(await clock.runUntil(drain(copy)), 4 * MiB);
  assert.ok(clock.t >= 2800 && clock.t <= 3000, `a 4 MiB copy took ${clock.t} ms, not ~7 s`);
  const usage = bw.usage();
  assert.equal(usage?.downloadBytes, 4 * MiB);
  assert.equal(usage?.uploadBytes, 4 * MiB);
});

Deno.test("throttle: a host's own limit holds its streams; other hosts only the process's", async () => {
  const clock = new FakeClock();
  const bw = new Bandwidth(4 * MiB, { slow: MiB }, clock);
  const slow = drain(bw.throttle("slow", "download").pipe(source(3 * MiB, MiB)));
  const fast = drain(bw.throttle("fast", "download").pipe(source(6 * MiB, MiB)));
  let fastAt = -1;
  const fastDone = fast.then((n) => (fastAt = clock.t, n));
  await clock.runUntil(Promise.all([slow, fastDone]));
  // Process 4 MiB/s shared with the slow stream: 9 MiB less the 4 MiB burst, about 1.25 s.
  assert.ok(fastAt <= 1300, `the other host's 6 MiB took ${fastAt} ms (process limit 4 MiB/s)`);
  assert.ok(clock.t >= 1900, `the slow host's 3 MiB at 1 MiB/s (1 MiB burst) took ${clock.t} ms`);
  assert.deepEqual(bw.usage()?.hosts, { slow: MiB });
});

Deno.test("throttle: no limit is the stream itself; an abort ends a wait", async () => {
  const none = new Bandwidth(undefined, {}, new FakeClock());
  assert.equal(none.limited, false);
  assert.equal(none.usage(), null);
  const raw = source(10, 10);
  assert.equal(none.throttle("a", "upload").pipe(raw), raw);

  const clock = new FakeClock();
  const throttle = new Throttle([new TokenBucket(1000, { clock, burstBytes: 1 })], clock);
  const controller = new AbortController();
  const waiting = throttle.take(10_000, controller.signal);
  controller.abort(new Error("stop"));
  await assert.rejects(waiting, /stop/);
});
