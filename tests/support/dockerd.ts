/**
 * A real Docker engine for tests: Debian's `dockerd` (docker.io 20.10) run as root in a temp dir,
 * with the vfs storage driver and no networking changes on the host:
 *
 * ```
 * dockerd --config-file D/daemon.json --storage-driver=vfs --iptables=false --ip6tables=false
 *   --ip-forward=false --bridge=none --data-root D/data --exec-root D/exec
 *   -H unix://D/docker.sock --pidfile D/docker.pid
 * ```
 *
 * `--containerd` is not needed: without it dockerd 20.10 starts its own managed containerd (socket
 * under the exec root, state under the data root) and stops it on SIGTERM. The empty
 * `--config-file` keeps the host's /etc/docker/daemon.json out. Loopback registries
 * (127.0.0.0/8) are insecure registries by default, so plain-http test registries just work.
 * Pulls and pushes need no network set-up; nothing is ever run in a container.
 *
 * Starting takes a fraction of a second, stopping about a second: share one daemon per test file.
 *
 * ```ts ignore
 * await using dockerd = await startDockerd();
 * // DOCKER_HOST and a private DOCKER_CONFIG (logins never touch ~/.docker):
 * new DockerEngine({ env: { ...Deno.env.toObject(), ...dockerd.env }, ... });
 * ```
 *
 * @module
 */

/** A running test daemon. */
export interface TestDockerd extends AsyncDisposable {
  /** `unix:///tmp/bb-dockerd-XXXX/docker.sock` */
  host: string;
  /** Environment for the docker CLI: this daemon and a private, empty docker config dir. */
  env: { DOCKER_HOST: string; DOCKER_CONFIG: string };
  /** The daemon's `--data-root`. */
  dataRoot: string;
  /** The temp dir holding everything (removed on dispose). */
  dir: string;
  /** dockerd's own log (stdout and stderr), for debugging. */
  logFile: string;
  /** The dockerd process id. */
  pid: number;
  /** Run the docker CLI against this daemon (test set-up and assertions, not the engine). */
  docker(args: string[], options?: { stdin?: string }): Promise<DockerRun>;
  /** Last lines of the daemon's log. */
  logTail(lines?: number): Promise<string>;
  /** Stop the daemon and remove its dir (also done on dispose). */
  stop(): Promise<void>;
}

/** The outcome of one CLI run. */
export interface DockerRun {
  code: number;
  stdout: string;
  stderr: string;
}

const DOCKERD_CANDIDATES = ["/usr/sbin/dockerd", "/usr/bin/dockerd"];

/** The first executable called `name` on PATH, or null. */
export function which(name: string, path: string = Deno.env.get("PATH") ?? ""): string | null {
  for (const dir of path.split(":")) {
    if (!dir) continue;
    try {
      const info = Deno.statSync(`${dir}/${name}`);
      if (info.isFile && ((info.mode ?? 0o111) & 0o111) !== 0) return `${dir}/${name}`;
    } catch {
      // not here
    }
  }
  return null;
}

function dockerdBinary(): string | null {
  for (const candidate of DOCKERD_CANDIDATES) {
    try {
      if (Deno.statSync(candidate).isFile) return candidate;
    } catch {
      // not here
    }
  }
  return which("dockerd");
}

function isRoot(): boolean {
  try {
    return Deno.uid() === 0;
  } catch {
    // Without --allow-sys: ask id.
    try {
      const out = new Deno.Command("id", { args: ["-u"], stdout: "piped" }).outputSync();
      return new TextDecoder().decode(out.stdout).trim() === "0";
    } catch {
      return false;
    }
  }
}

/**
 * Can a test daemon be started here? Checks what starting needs (dockerd, the docker CLI, root);
 * tests are `ignore`d with the reason when it cannot, and fail loudly if it can but then does not
 * start.
 */
export function dockerdAvailability(): Promise<{ ok: true } | { ok: false; reason: string }> {
  if (!dockerdBinary()) {
    return Promise.resolve({
      ok: false,
      reason: "dockerd not installed (apt-get install docker.io)",
    });
  }
  if (!which("docker")) {
    return Promise.resolve({ ok: false, reason: "docker CLI not on PATH" });
  }
  if (Deno.build.os !== "linux") {
    return Promise.resolve({ ok: false, reason: `dockerd needs Linux, this is ${Deno.build.os}` });
  }
  if (!isRoot()) {
    return Promise.resolve({ ok: false, reason: "dockerd needs root and this is not root" });
  }
  return Promise.resolve({ ok: true });
}

/** Run the docker CLI with `env`, collect its output. */
export async function runDocker(
  args: string[],
  options: { env: Record<string, string>; stdin?: string },
): Promise<DockerRun> {
  const child = new Deno.Command("docker", {
    args,
    env: options.env,
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(options.stdin));
    await writer.close();
  }
  const out = await child.output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

/** One line of `ps`. */
export interface ProcessInfo {
  pid: number;
  /** `ps` state letters; Z = zombie (dead, not yet reaped). */
  state: string;
  /** The command line, arguments separated by spaces. */
  args: string;
}

/**
 * Live processes, from `ps` (Deno asks for --allow-all to list /proc; --allow-run is enough for
 * ps). Zombies are left out.
 */
export async function listProcesses(): Promise<ProcessInfo[]> {
  const out = await new Deno.Command("ps", {
    args: ["-eww", "-o", "pid=,stat=,args="],
    stdout: "piped",
    stderr: "null",
  }).output();
  const list: ProcessInfo[] = [];
  for (const line of new TextDecoder().decode(out.stdout).split("\n")) {
    const m = /^\s*(\d+)\s+(\S+)\s+(.*)$/.exec(line);
    if (m && !m[2].startsWith("Z") && Number(m[1]) !== Deno.pid) {
      list.push({ pid: Number(m[1]), state: m[2], args: m[3] });
    }
  }
  return list;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * The mount points at or below `dir` in this mount namespace (/proc/self/mountinfo, field 5,
 * octal escapes decoded), in mount order.
 */
export async function mountsUnder(dir: string): Promise<string[]> {
  // Read through cat: Deno asks for --allow-all to read /proc/self itself.
  const out = await new Deno.Command("cat", { args: ["/proc/self/mountinfo"], stdout: "piped" })
    .output();
  const text = new TextDecoder().decode(out.stdout);
  return text.split("\n").map((line) => line.split(" ")[4])
    .filter((p): p is string => Boolean(p))
    .map((p) => p.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8))))
    .filter((p) => p === dir || p.startsWith(`${dir}/`));
}

/** Start a daemon in a fresh temp dir and wait until `docker info` answers. */
export async function startDockerd(
  options: { startTimeoutMs?: number } = {},
): Promise<TestDockerd> {
  const availability = await dockerdAvailability();
  if (!availability.ok) throw new Error(`Cannot start dockerd: ${availability.reason}`);
  const binary = dockerdBinary() as string;
  // Short path: the containerd socket under the exec root must fit in 108 bytes.
  const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "bb-dockerd-" });
  const dataRoot = `${dir}/data`;
  const execRoot = `${dir}/exec`;
  const configDir = `${dir}/config`;
  const socket = `${dir}/docker.sock`;
  const logFile = `${dir}/dockerd.log`;
  await Deno.mkdir(configDir);
  await Deno.writeTextFile(`${dir}/daemon.json`, "{}\n");
  await Deno.writeTextFile(`${configDir}/config.json`, "{}\n");
  const host = `unix://${socket}`;
  const env = { DOCKER_HOST: host, DOCKER_CONFIG: configDir };
  const cliEnv = { ...Deno.env.toObject(), ...env };
  // sh only redirects both streams to the log file, then execs dockerd (same pid): no pipes held.
  const child = new Deno.Command("sh", {
    args: [
      "-c",
      'exec "$0" "$@" >"$BB_DOCKERD_LOG" 2>&1',
      binary,
      `--config-file=${dir}/daemon.json`,
      "--storage-driver=vfs",
      "--iptables=false",
      "--ip6tables=false",
      "--ip-forward=false",
      "--bridge=none",
      `--data-root=${dataRoot}`,
      `--exec-root=${execRoot}`,
      `--host=${host}`,
      `--pidfile=${dir}/docker.pid`,
    ],
    env: { ...Deno.env.toObject(), BB_DOCKERD_LOG: logFile },
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  const logTail = async (lines = 30) =>
    (await Deno.readTextFile(logFile).catch(() => "")).trimEnd().split("\n").slice(-lines).join(
      "\n",
    );

  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    if (!exited) {
      try {
        child.kill("SIGTERM");
      } catch {
        // already gone
      }
      const killer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch {
          // already gone
        }
      }, 15_000);
      await status;
      clearTimeout(killer);
    } else {
      await status;
    }
    // The managed containerd normally stops with dockerd; after a SIGKILL it may linger.
    for (let i = 0; i < 50; i++) {
      const left = (await listProcesses()).filter((p) => p.args.includes(dir));
      if (left.length === 0) break;
      if (i === 20) {
        for (const p of left) {
          try {
            Deno.kill(p.pid, "SIGKILL");
          } catch {
            // gone
          }
        }
      }
      await sleep(100);
    }
    // dockerd bind-mounts its default network namespace at <exec-root>/netns/default and leaves
    // it mounted on exit: unmount everything under the temp dir (deepest first) before removing.
    for (const mountPoint of (await mountsUnder(dir)).reverse()) {
      await new Deno.Command("umount", { args: ["-l", mountPoint], stderr: "null" }).output();
    }
    await Deno.remove(dir, { recursive: true }).catch(async () => {
      await new Deno.Command("rm", { args: ["-rf", dir] }).output();
    });
  };

  const deadline = Date.now() + (options.startTimeoutMs ?? 30_000);
  let lastError = "";
  for (;;) {
    if (exited) {
      const tail = await logTail();
      await stop();
      throw new Error(`dockerd exited during start-up:\n${tail}`);
    }
    const result = await runDocker(["info", "--format", "{{.ServerVersion}}"], { env: cliEnv });
    if (result.code === 0 && result.stdout.trim()) break;
    lastError = result.stderr.trim();
    if (Date.now() > deadline) {
      const tail = await logTail();
      await stop();
      throw new Error(`dockerd did not answer in time (${lastError}):\n${tail}`);
    }
    await sleep(100);
  }

  return {
    host,
    env,
    dataRoot,
    dir,
    logFile,
    pid: child.pid,
    docker: (args, opts = {}) => runDocker(args, { env: cliEnv, stdin: opts.stdin }),
    logTail,
    stop,
    [Symbol.asyncDispose]: stop,
  };
}
