/**
 * `--baseline REV` of `deno task bench` and `deno task bench:airgap`: an earlier revision of
 * bananna-bot, unpacked with `git archive` into a temporary directory (no worktree is registered
 * in the repository, so a crash leaves at most a directory in the temp dir), its dependencies
 * installed from its own deno.lock, run as one more contender next to the current tree in the same
 * invocation, round-robin, so load on the machine hits both alike.
 *
 * @module
 */

/** An unpacked earlier revision. */
export interface Baseline {
  /** The revision as given (`dd5f253`, `HEAD~3`, `main`). */
  rev: string;
  /** The full commit hash it resolved to. */
  commit: string;
  /** The short hash shown in tool names. */
  short: string;
  /** The unpacked tree (`main.ts` is run from here). */
  dir: string;
  /** The contender name of its registry-engine mirror: `bananna registry (baseline <short>)`. */
  tool: string;
  /** Remove the unpacked tree (idempotent). */
  remove(): Promise<void>;
}

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

/** The contender name of a baseline's registry-engine mirror. */
export function baselineTool(short: string): string {
  return `bananna registry (baseline ${short})`;
}

/** The short hash in a baseline contender's name, or undefined for any other contender. */
export function baselineOf(tool: string): string | undefined {
  return /^bananna registry \(baseline ([0-9a-f]+)\)$/.exec(tool)?.[1];
}

async function run(
  cmd: string,
  args: string[],
  cwd: string,
  stdin?: "piped",
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(cmd, { args, cwd, stdout: "piped", stderr: "piped", stdin })
    .output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

/**
 * Resolve `rev` in this repository, unpack it into a temporary directory and run
 * `deno install --frozen` there. Throws a message naming the revision when any step fails (the
 * directory is removed then). The caller removes it with `remove()` in a `finally`; a SIGINT
 * removes it too.
 */
export async function prepareBaseline(rev: string): Promise<Baseline> {
  const resolved = await run("git", ["rev-parse", "--verify", "--quiet", `${rev}^{commit}`], ROOT);
  const commit = resolved.stdout.trim();
  if (resolved.code !== 0 || !/^[0-9a-f]{40}$/.test(commit)) {
    throw new Error(`--baseline ${rev}: not a commit of ${ROOT}`);
  }
  const short = commit.slice(0, 7);
  const dir = await Deno.makeTempDir({ prefix: `bb-baseline-${short}-` });
  let removed = false;
  const onSignal = () => {
    try {
      Deno.removeSync(dir, { recursive: true });
    } catch { /* already gone */ }
    Deno.exit(130);
  };
  Deno.addSignalListener("SIGINT", onSignal);
  const remove = async () => {
    if (removed) return;
    removed = true;
    Deno.removeSignalListener("SIGINT", onSignal);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  try {
    // git archive | tar -x, without a shell: the revision is never interpolated into a command.
    const archive = new Deno.Command("git", {
      args: ["archive", "--format=tar", commit],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const tar = new Deno.Command("tar", {
      args: ["-x", "-C", dir],
      stdin: "piped",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const [, archived, untarred, why] = await Promise.all([
      archive.stdout.pipeTo(tar.stdin),
      archive.status,
      tar.status,
      Promise.all([archive.stderr, tar.stderr].map((s) => new Response(s).text())),
    ]);
    if (!archived.success || !untarred.success) {
      throw new Error(`--baseline ${rev}: git archive ${short} failed: ${why.join(" ").trim()}`);
    }
    await Deno.stat(`${dir}/main.ts`).catch(() => {
      throw new Error(`--baseline ${rev}: ${short} has no main.ts`);
    });
    const install = await run(Deno.execPath(), ["install", "--frozen"], dir);
    if (install.code !== 0) {
      throw new Error(
        `--baseline ${rev}: deno install --frozen in ${short} failed: ${
          install.stderr.trim().split("\n").slice(-5).join(" | ")
        }`,
      );
    }
    // One untimed start, so the first timed run of the baseline does not pay for transpiling a
    // tree Deno has not seen (this tree's is cached by earlier runs).
    const warm = await run(Deno.execPath(), [
      "run",
      "--frozen",
      "--allow-env",
      "--allow-read",
      "main.ts",
      "--help",
    ], dir);
    if (warm.code !== 0) {
      throw new Error(
        `--baseline ${rev}: main.ts --help in ${short} exited ${warm.code}: ${
          warm.stderr.trim().split("\n").slice(-3).join(" | ")
        }`,
      );
    }
  } catch (error) {
    await remove();
    throw error;
  }
  return { rev, commit, short, dir, tool: baselineTool(short), remove };
}

/** The commit measured (with `-dirty` when lib/, main.ts or bench/ have changes), or "unknown". */
export async function gitCommit(): Promise<string> {
  const git = (args: string[]) =>
    new Deno.Command("git", { args, cwd: ROOT, stdout: "piped", stderr: "null" }).output()
      .then((o) => new TextDecoder().decode(o.stdout).trim()).catch(() => "");
  const head = await git(["rev-parse", "--short", "HEAD"]);
  // Results files written by this very run are not changes to what is measured.
  const dirty = await git([
    "status",
    "--porcelain",
    "--",
    "lib",
    "main.ts",
    "bench",
    ":!bench/results",
  ]);
  return head ? `${head}${dirty ? "-dirty" : ""}` : "unknown";
}

/**
 * The order of one round: `items` as they are, except that on odd rounds `bananna registry` and
 * the baseline contender trade places, so neither always runs right after the other (a run
 * warms the registry and the page cache for the next, or finds the load the previous left).
 */
export function roundOrder<T>(items: T[], round: number, tool: (item: T) => string): T[] {
  const out = [...items];
  if (round % 2 === 0) return out;
  const a = out.findIndex((item) => tool(item) === "bananna registry");
  const b = out.findIndex((item) => baselineOf(tool(item)) !== undefined);
  if (a >= 0 && b >= 0) [out[a], out[b]] = [out[b], out[a]];
  return out;
}
