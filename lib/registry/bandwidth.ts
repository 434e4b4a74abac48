/**
 * The bandwidth limit (`operation.maxBytesPerSecond`, and `maxBytesPerSecond` on a registry or
 * source entry): token buckets that every blob stream of the process draws from, so the limit
 * holds for the whole process however many copies and blobs run at once (a per-worker limit
 * multiplies by the worker count; Harbor's replication `speed` is one).
 *
 * Directions: one bucket for what comes in (blob GETs) and one for what goes out (blob uploads),
 * each at the limit, like the two directions of a full-duplex link. A blob copied from one
 * registry to another streams through once: its bytes are counted once coming in and once going
 * out, so the copy moves at the limit (not at half of it). An export only downloads and an
 * import only uploads; each is held to the limit too.
 *
 * A host's own limit is a second pair of buckets for that host only: a stream to or from it waits
 * for both its host's bucket and the process's. Manifests, tag lists and tokens are not counted
 * (kilobytes, and a no-op run must not wait for them).
 *
 * The bucket lets a debt build up: a chunk takes its bytes at once and its stream waits until the
 * bucket is back at zero, so concurrent streams queue in order and together never pass the rate,
 * and a chunk larger than the burst still passes. Streams are cut into slices of at most
 * {@link SLICE_BYTES} so one large chunk does not pass as a burst.
 *
 * @module
 */

/** Time as the buckets see it (a fake one in the unit tests). */
export interface Clock {
  /** Milliseconds, monotonic. */
  now(): number;
  /** Wait `ms`; rejects with `signal.reason` when the signal aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/** The real clock: performance.now() and setTimeout. */
const realClock: Clock = {
  now: () => performance.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const onAbort = () => {
        clearTimeout(timer);
        reject(signal?.reason);
      };
      const timer = setTimeout(() => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      }, ms);
      signal?.addEventListener("abort", onAbort, { once: true });
    }),
};

/** Largest piece of a stream that passes at once. */
export const SLICE_BYTES = 64 * 1024;

/**
 * One token bucket: `bytesPerSecond`, bursts of at most one second's worth. A second, not less:
 * a stream that was held up (a late timer, a busy CPU, a slow peer) may catch up within it, so the
 * average stays at the limit; with a tenth of a second, a 1 GiB copy at 50 MiB/s on a loaded
 * machine took 28 s instead of 21 s.
 */
export class TokenBucket {
  /** The rate. */
  readonly bytesPerSecond: number;
  #burst: number;
  #tokens: number;
  #last: number;
  #clock: Clock;
  /** Bytes that passed (or are waiting to). */
  bytes = 0;

  /** A full bucket. */
  constructor(bytesPerSecond: number, options: { clock?: Clock; burstBytes?: number } = {}) {
    if (!(bytesPerSecond > 0)) throw new RangeError(`bytesPerSecond must be > 0`);
    this.bytesPerSecond = bytesPerSecond;
    this.#clock = options.clock ?? realClock;
    this.#burst = options.burstBytes ?? Math.max(SLICE_BYTES, bytesPerSecond);
    this.#tokens = this.#burst;
    this.#last = this.#clock.now();
  }

  /** How long `bytes` must wait from now (taking them); 0 when they may pass at once. */
  reserve(bytes: number): number {
    const now = this.#clock.now();
    const refill = ((now - this.#last) * this.bytesPerSecond) / 1000;
    this.#tokens = Math.min(this.#burst, this.#tokens + refill) - bytes;
    this.#last = now;
    this.bytes += bytes;
    return this.#tokens >= 0 ? 0 : (-this.#tokens * 1000) / this.bytesPerSecond;
  }
}

/** The buckets one stream draws from: the process's and its host's, for one direction. */
export class Throttle {
  #buckets: TokenBucket[];
  #clock: Clock;
  #onWait?: (ms: number) => void;

  /** No bucket: nothing is held back. `onWait` is told each wait. */
  constructor(buckets: TokenBucket[], clock: Clock = realClock, onWait?: (ms: number) => void) {
    this.#buckets = buckets;
    this.#clock = clock;
    this.#onWait = onWait;
  }

  /** Is any limit set? */
  get limited(): boolean {
    return this.#buckets.length > 0;
  }

  /** Wait until `bytes` may pass every bucket. */
  async take(bytes: number, signal?: AbortSignal): Promise<void> {
    let wait = 0;
    for (const bucket of this.#buckets) wait = Math.max(wait, bucket.reserve(bytes));
    if (wait <= 0) return;
    this.#onWait?.(wait);
    await this.#clock.sleep(wait, signal);
  }

  /** `stream` held to the limits (the same stream when there are none). */
  pipe(stream: ReadableStream<Uint8Array>, signal?: AbortSignal): ReadableStream<Uint8Array> {
    if (!this.limited) return stream;
    return stream.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform: async (chunk, controller) => {
          for (let at = 0; at < chunk.length; at += SLICE_BYTES) {
            const slice = chunk.subarray(at, at + SLICE_BYTES);
            await this.take(slice.length, signal);
            controller.enqueue(slice);
          }
        },
      }),
    );
  }
}

/** The limits of one run, per direction. */
export interface BandwidthUsage {
  /** The process limit, or null when only hosts are limited. */
  bytesPerSecond: number | null;
  /** Per limited host. */
  hosts: Record<string, number>;
  /** Blob bytes read / written under a limit. */
  downloadBytes: number;
  uploadBytes: number;
  /** Seconds streams waited for the limits, summed over streams and directions. */
  waitedSeconds: number;
}

/** Every bucket of a run: the process pair and one pair per limited host. */
export class Bandwidth {
  #clock: Clock;
  #process: { in: TokenBucket; out: TokenBucket } | null;
  #hosts = new Map<string, { in: TokenBucket; out: TokenBucket }>();
  #waitedMs = 0;

  /**
   * @param bytesPerSecond the process limit (undefined: none)
   * @param hostLimits per-host limits, by `host[:port]`
   */
  constructor(
    bytesPerSecond: number | undefined,
    hostLimits: Record<string, number> = {},
    clock: Clock = realClock,
  ) {
    this.#clock = clock;
    const pair = (rate: number) => ({
      in: new TokenBucket(rate, { clock }),
      out: new TokenBucket(rate, { clock }),
    });
    this.#process = bytesPerSecond ? pair(bytesPerSecond) : null;
    for (const [host, rate] of Object.entries(hostLimits)) this.#hosts.set(host, pair(rate));
  }

  /** Is anything limited? */
  get limited(): boolean {
    return this.#process !== null || this.#hosts.size > 0;
  }

  /** The throttle of one direction of `host`'s blob streams. */
  throttle(host: string, direction: "download" | "upload"): Throttle {
    const key = direction === "download" ? "in" : "out";
    const buckets: TokenBucket[] = [];
    if (this.#process) buckets.push(this.#process[key]);
    const own = this.#hosts.get(host);
    if (own) buckets.push(own[key]);
    return new Throttle(buckets, this.#clock, (ms) => this.#waitedMs += ms);
  }

  /** What the limits let through and held back (null when nothing is limited). */
  usage(): BandwidthUsage | null {
    if (!this.limited) return null;
    // The process buckets see every limited byte; without them, add up the hosts'.
    const counted = this.#process ? [this.#process] : [...this.#hosts.values()];
    const sum = (pick: (p: { in: TokenBucket; out: TokenBucket }) => number) =>
      counted.reduce((n, p) => n + pick(p), 0);
    return {
      bytesPerSecond: this.#process?.in.bytesPerSecond ?? null,
      hosts: Object.fromEntries([...this.#hosts].map(([h, p]) => [h, p.in.bytesPerSecond])),
      downloadBytes: sum((p) => p.in.bytes),
      uploadBytes: sum((p) => p.out.bytes),
      waitedSeconds: Math.round(this.#waitedMs) / 1000,
    };
  }
}
