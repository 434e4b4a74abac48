/**
 * The log location's rules for validate (and every command's config check): the log dir must be
 * a writable folder or creatable, and a log file already there a plain file the run can append to
 * (a symbolic link there is a warning: the run refuses it as MIRROR_UNSAFE_PATH). Nothing is
 * written or created but a probe file, removed at once.
 *
 * @module
 */

/** Where a rule reports: an error, or a warning (config_rules.ts's rules take it too). */
export interface Say {
  err: (path: string, message: string) => void;
  warn: (path: string, message: string) => void;
}

/** Check `log.dir` and then `log.file`. */
export async function checkLog(log: { dir: string; file: string }, say: Say): Promise<void> {
  await checkLogDir(log.dir, say.err);
  await checkLogFile(log, say);
}

/**
 * The log dir must be a writable folder, or creatable: a missing dir and missing parents are
 * created by the run (like `mkdir -p`), so the nearest existing ancestor must be a writable
 * folder. Writability is tried, not read from mode bits (root passes those): a probe file is
 * created and removed at once.
 */
async function checkLogDir(dir: string, err: (path: string, message: string) => void) {
  const at = "log.dir";
  let current = dir;
  for (let i = 0; i < 4096; i++) {
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(current);
    } catch (error) {
      const parent = current.replace(/\/+[^/]*\/*$/, "") || "/";
      const missing = error instanceof Deno.errors.NotFound ||
        error instanceof Deno.errors.NotADirectory;
      if (missing && parent !== current) {
        current = parent;
        continue;
      }
      if (error instanceof Deno.errors.NotCapable) return;
      err(at, `cannot use ${dir} as the log dir: ${reason(error)}`);
      return;
    }
    if (!info.isDirectory) {
      err(
        at,
        current === dir
          ? `${dir} is not a folder: log.dir must name a folder for the log, the lock and the reports`
          : `cannot create the log dir ${dir}: ${current} is a file, not a folder`,
      );
      return;
    }
    try {
      await Deno.remove(await Deno.makeTempFile({ dir: current, prefix: ".bananna-bot-probe-" }));
    } catch (error) {
      if (error instanceof Deno.errors.NotCapable) return;
      err(
        at,
        current === dir
          ? `the log dir ${dir} is not writable: ${reason(error)}`
          : `cannot create the log dir ${dir}: ${current} is not writable: ${reason(error)}`,
      );
    }
    return;
  }
}

/**
 * The log file, where it exists already, must be a file the run can append to; a symbolic link
 * there is a warning (the run refuses it as MIRROR_UNSAFE_PATH). Opened for appending and closed
 * at once: nothing is written or created. A missing or unreachable file is log.dir's concern.
 */
async function checkLogFile(log: { dir: string; file: string }, say: Say): Promise<void> {
  const { err, warn } = say;
  const at = "log.file";
  const path = `${log.dir}/${log.file}`;
  const info = await Deno.lstat(path).catch(() => null);
  if (!info) return;
  if (info.isSymlink) {
    // Not a config mistake but a planted link: the run refuses it with its own code.
    warn(
      at,
      `${path} is a symbolic link: the run will refuse to write through it (MIRROR_UNSAFE_PATH)`,
    );
  } else if (!info.isFile) {
    err(
      at,
      `${path} is ${
        info.isDirectory ? "a folder" : "not a regular file"
      }: log.file must name the log file in log.dir`,
    );
  } else {
    try {
      (await Deno.open(path, { append: true })).close();
    } catch (error) {
      if (!(error instanceof Deno.errors.NotCapable)) {
        err(at, `cannot append to the log ${path}: ${reason(error)}`);
      }
    }
  }
}

function reason(error: unknown): string {
  if (error instanceof Deno.errors.PermissionDenied) return "permission denied";
  return error instanceof Error
    ? error.message.replace(/\s*\(os error \d+\).*$/, "")
    : String(error);
}
