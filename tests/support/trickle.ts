/**
 * Bodies of a slow or silent peer, for the tests of deadlines: {@link trickleBody} sends one byte
 * every few milliseconds (never silent long enough for a timeout on silence, never done), and
 * {@link silentAnswer} accepts a request and never answers. Both stop when the client goes away
 * (or the test's signal aborts), and a trickle ends by itself after `maxBytes`, so a regressed
 * deadline fails its test's own deadline instead of hanging CI.
 *
 * @module
 */

/** One `byte` every `pauseMs` ms, at most `maxBytes` of them; stops when cancelled. */
export function trickleBody(
  pauseMs: number,
  options: { byte?: string; maxBytes?: number; onByte?: () => void } = {},
): ReadableStream<Uint8Array> {
  const byte = new TextEncoder().encode(options.byte ?? " ");
  const maxBytes = options.maxBytes ?? 300;
  let sent = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      return new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          if (sent >= maxBytes) {
            controller.close();
          } else {
            sent++;
            options.onByte?.();
            controller.enqueue(byte.slice());
          }
          resolve();
        }, pauseMs);
      });
    },
    cancel() {
      clearTimeout(timer);
    },
  }, { highWaterMark: 0 });
}

/**
 * An answer that never comes: resolves (with a 504, which no client should ever see) only when
 * `signal` aborts, i.e. when the test stops its server.
 */
export function silentAnswer(signal: AbortSignal): Promise<Response> {
  return new Promise((resolve) => {
    const done = () => resolve(new Response(null, { status: 504 }));
    if (signal.aborted) done();
    else signal.addEventListener("abort", done, { once: true });
  });
}
