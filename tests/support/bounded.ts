/**
 * Bounds for the tests of bounds. A test that feeds hostile input (an endless body, a looping
 * listing, /dev/zero) proves a cap or a deadline of the tool; when that cap regresses, the test
 * must fail, not hang CI or eat the machine's memory. So every hostile test server streams at most
 * {@link HOSTILE_BYTES_CEILING} bytes (then errors the body), and every hostile step runs
 * {@link within} a deadline of its own.
 *
 * ```ts ignore
 * await t.step("an endless manifest", () =>
 *   within(10_000, "an endless manifest", async (signal) => {
 *     await rejectsWith(() => client.manifestGet("team/app", "big", signal), "IMAGE_MANIFEST_TOO_LARGE");
 *   }));
 * ```
 *
 * @module
 */

/**
 * The most bytes a hostile server in tests/support streams for one "endless" body. Far above
 * every cap under test (manifests 4 MiB, tag-list pages, referrers, token answers 1 MiB), far
 * below what would hurt the machine: a client whose cap regressed gets this much, then an error.
 */
export const HOSTILE_BYTES_CEILING = 128 * 1024 * 1024;

/**
 * A body that repeats `chunk` until {@link HOSTILE_BYTES_CEILING}, then errors: "endless" for every
 * cap under test, finite for a client that has none. `onBytes` counts what was handed out.
 */
export function endlessBody(
  chunk: Uint8Array,
  onBytes: (n: number) => void = () => {},
): ReadableStream<Uint8Array> {
  let sent = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent >= HOSTILE_BYTES_CEILING) {
        controller.error(
          new Error("hostile test server: ceiling reached (a client cap regressed?)"),
        );
        return;
      }
      sent += chunk.length;
      onBytes(chunk.length);
      controller.enqueue(chunk.slice());
    },
  }, { highWaterMark: 0 });
}

/**
 * Run `fn` with a deadline: its signal aborts after `ms`, and the returned promise rejects then
 * even when `fn` ignores the signal, so a regressed bound fails the step instead of hanging.
 */
export async function within<T>(
  ms: number,
  what: string,
  fn: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const controller = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const error = new Error(`${what}: did not end within ${ms} ms (a bound regressed?)`);
      controller.abort(error);
      reject(error);
    }, ms);
  });
  try {
    return await Promise.race([fn(controller.signal), expired]);
  } finally {
    clearTimeout(timer);
  }
}
