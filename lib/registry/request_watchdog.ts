/**
 * The time bounds of the requests in flight on one transport (http_transport.ts): the timeout on
 * silence, a metadata request's deadline and the caller's abort signal, watched with one timer
 * and one abort listener per signal for all of them.
 *
 * @module
 */
import { unrefTimeout } from "../unref_timer.ts";

/** One request in flight, as the {@link Watchdog} sees it. */
export interface Watched {
  /** When the whole exchange must be complete (performance.now() ms; Infinity: no deadline). */
  due: number;
  /** The timeout on silence, in ms. */
  limit: number;
  /** When bytes last moved (or the request started). */
  lastProgress: number;
  /** The caller's signal: its abort aborts the request. */
  outer?: AbortSignal;
  /** Ends the request on a bound: `why` is the deadline's message, or "" for silence. */
  end(why: string): void;
  /** Aborts the request with the caller's reason. */
  abort(reason: unknown): void;
  /** The message of the deadline (`end`'s `why` when it passes). */
  deadlineMessage: string;
}

/**
 * The bounds of every request in flight on one transport, with one timer and one abort listener
 * per caller signal instead of a timer and a listener per request (at 15,000 no-op tasks a run
 * makes 16,500 requests, 16 at a time). The timer is armed for the earliest moment a request
 * could pass its silence timeout or deadline; when it fires, every request is checked and it is
 * armed again for the next. With nothing in flight no timer is left armed.
 */
export class Watchdog {
  #watched = new Set<Watched>();
  /** Cancels the armed timer (undefined: none armed). */
  #timer: (() => void) | undefined;
  /** When the armed timer fires (Infinity: none armed). */
  #at = Infinity;
  /** The requests of each caller signal, which has one listener that aborts them. */
  #bySignal = new WeakMap<AbortSignal, Set<Watched>>();

  add(watch: Watched): void {
    this.#watched.add(watch);
    const outer = watch.outer;
    if (outer) {
      let set = this.#bySignal.get(outer);
      if (!set) {
        const mine = set = new Set<Watched>();
        this.#bySignal.set(outer, mine);
        outer.addEventListener("abort", () => {
          for (const w of [...mine]) {
            this.delete(w);
            w.abort(outer.reason);
          }
        }, { once: true });
      }
      set.add(watch);
    }
    this.#arm(Math.min(watch.lastProgress + watch.limit, watch.due));
  }

  delete(watch: Watched): void {
    if (!this.#watched.delete(watch)) return;
    if (watch.outer) this.#bySignal.get(watch.outer)?.delete(watch);
    if (this.#watched.size === 0 && this.#timer !== undefined) {
      this.#timer();
      this.#timer = undefined;
      this.#at = Infinity;
    }
  }

  #arm(at: number): void {
    if (at >= this.#at) return;
    this.#timer?.();
    this.#at = at;
    // A request or a body read keeps the process alive, never this timer alone.
    this.#timer = unrefTimeout(
      () => this.#check(),
      Math.max(1, Math.ceil(at - performance.now())),
    );
  }

  #check(): void {
    this.#timer = undefined;
    this.#at = Infinity;
    const now = performance.now();
    let next = Infinity;
    for (const watch of [...this.#watched]) {
      if (now >= watch.due) {
        this.delete(watch);
        watch.end(watch.deadlineMessage);
      } else if (now - watch.lastProgress >= watch.limit) {
        this.delete(watch);
        watch.end(""); // silence: the apiTimeout messages
      } else next = Math.min(next, watch.lastProgress + watch.limit, watch.due);
    }
    if (next < Infinity) this.#arm(next);
  }
}
