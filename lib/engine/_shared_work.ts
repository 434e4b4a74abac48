/**
 * Work shared by the copies of one run, keyed by what it makes exist (a blob or a child manifest
 * in one repository of one destination registry).
 *
 * Why: tags of one image, or images sharing base layers, copied into one repository at once each
 * uploaded the same blobs at the same time. A registry that rewrites a blob's repository link on
 * every upload (distribution truncates the link file, then writes it) then answers another copy's
 * manifest PUT with MANIFEST_BLOB_UNKNOWN now and then (3 runs of 6 at concurrency 8). Done once
 * per key, there is nothing to race, and each blob crosses the wire once per repository.
 *
 * Rules: the first caller of a key does the work; callers that come while it runs wait for it and
 * reuse its outcome. A success is remembered for the rest of the run (until {@link SharedWork.forget});
 * a failure is not: the next waiter does the work itself, so one copy's failed upload (or its abort)
 * fails that copy only. Each caller does the work at most once per call.
 *
 * @module
 */

/** One run's shared work. */
export class SharedWork {
  #running = new Map<string, Promise<void>>();
  #done = new Set<string>();

  /**
   * Make sure the work for `key` has been done: do it, wait for the caller doing it, or return at
   * once when it was done earlier in the run.
   *
   * @param key what the work makes exist, e.g. `blob 127.0.0.1:5000/mirror/app@sha256:...`
   * @param work does it; its failure is thrown to this caller only
   * @param signal stops the waiting (the work of another caller goes on for that caller)
   * @returns true when this call did the work, false when it reused another's
   * @throws the work's own failure, or `signal.reason` on abort
   */
  async run(key: string, work: () => Promise<void>, signal?: AbortSignal): Promise<boolean> {
    for (;;) {
      signal?.throwIfAborted();
      if (this.#done.has(key)) return false;
      const running = this.#running.get(key);
      if (!running) break;
      // Another caller's try: its failure is not ours; look again once it ended.
      await settled(running, signal);
    }
    const attempt = work().then(() => {
      this.#done.add(key);
    }).finally(() => {
      this.#running.delete(key);
    });
    this.#running.set(key, attempt);
    await attempt;
    return true;
  }

  /** Forget that `key` was done (the registry lost it): the next {@link run} does the work again. */
  forget(key: string): void {
    this.#done.delete(key);
  }
}

/** Wait until `promise` settles (either way), or throw `signal.reason` when the signal aborts. */
function settled(promise: Promise<void>, signal?: AbortSignal): Promise<void> {
  const ended = promise.then(() => {}, () => {});
  if (!signal) return ended;
  return new Promise<void>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    ended.then(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    });
  });
}
