/**
 * One contender for the run lock, as its own process (the lock is per process): prints `ready`,
 * waits until the file `go` exists (so that two contenders start their takeover within a
 * millisecond of each other), tries `acquireRunLock(dir)`, prints `won` or `locked`, holds a won
 * lock until the file `release` exists (at most 20 s: on a loaded machine the other contender may
 * take long to try, and must find the lock still held), then releases it.
 *
 * Usage: `deno run --allow-read --allow-write --allow-run --allow-env lock_contender.ts <dir> <go> <release>`
 *
 * @module
 */
import { MirrorError } from "../../lib/errors.ts";
import { acquireRunLock } from "../../lib/mirror/run_lock.ts";

function say(text: string): void {
  Deno.stdout.writeSync(new TextEncoder().encode(text + "\n"));
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

if (import.meta.main) {
  const [dir, go, release] = Deno.args;
  say("ready");
  const deadline = Date.now() + 10_000;
  while (!exists(go) && Date.now() < deadline) {
    // spin: the go file appears for both contenders at once
  }
  try {
    const lock = await acquireRunLock(dir);
    say(`won ${lock.tookOverFrom ?? ""}`);
    const until = Date.now() + 20_000;
    while (!exists(release) && Date.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await lock.release();
  } catch (error) {
    if (!(error instanceof MirrorError) || error.code !== "MIRROR_LOCKED") throw error;
    say(`locked ${error.message}`);
  }
}
