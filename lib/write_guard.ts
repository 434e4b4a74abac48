/**
 * The one gate every write of a run passes, so that a run which lost its lock writes nothing more.
 * The writers ask {@link checkWrite} right before they write:
 * - the HTTP transport (registry/http_transport.ts), for every request that is not a GET or a
 *   HEAD: manifest and blob PUTs, tag moves (`latest`), upload sessions, the Quay API, the
 *   Pushgateway (only a notification, which changes nothing another run relies on, opts out);
 * - the whole-file writers of safe_file.ts (report, state files, metrics, mirror sets) and the
 *   layout store (export);
 * - the docker engine, before each `docker push`.
 * A new writer built on these is guarded by construction.
 *
 * A run that holds the run lock installs the lock's check (cli/run_session.ts): it passes while the
 * lock's heartbeat is fresh, re-reads the lock when it is not, and throws `MIRROR_LOCK_LOST` once
 * another run holds it (mirror/run_lock.ts). Without an installed check (a command that takes no
 * lock, a unit test) every write passes.
 *
 * @module
 */
import { errorMessage, MirrorError } from "./errors.ts";

/** Resolves when `what` may be written now; throws (MirrorError) when it may not. */
export type WriteCheck = (what: string) => Promise<void>;

let installed: WriteCheck | null = null;

/**
 * Make `check` the gate of every write in this process until the returned handle is disposed.
 *
 * @param check called before each write with a short description of it
 * @returns a handle whose dispose puts the previous gate back
 */
export function installWriteGuard(check: WriteCheck): Disposable {
  const previous = installed;
  installed = check;
  return {
    [Symbol.dispose]() {
      if (installed === check) installed = previous;
    },
  };
}

/**
 * Ask the installed gate whether `what` may be written now.
 *
 * @throws whatever the gate throws (MirrorError `MIRROR_LOCK_LOST` for a lost run lock)
 */
export function checkWrite(what: string): Promise<void> {
  return installed ? installed(what) : Promise.resolve();
}

/**
 * The message of a failed write, for a warning that lets the run go on; a lost run lock is thrown
 * on instead: it stops the run.
 */
export function unlessLockLost(error: unknown): string {
  if (error instanceof MirrorError && error.code === "MIRROR_LOCK_LOST") throw error;
  return errorMessage(error);
}
