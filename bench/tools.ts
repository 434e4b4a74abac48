/**
 * The contenders, each run as a subprocess under `/usr/bin/time -v` (wall time measured here,
 * peak RSS read from time's "Maximum resident set size"):
 * bananna-bot (`main.ts mirror` with a generated YAML config), `skopeo sync --src yaml`, a plain
 * `docker pull/tag/push` loop, and the floor (the corpus's unique blobs moved with curl).
 *
 * Passwords never go to argv: bananna-bot reads `${BENCH_DEST_PASSWORD}`, skopeo an auth file,
 * docker `login --password-stdin`, curl a netrc file.
 *
 * @module
 */
import { MANIFEST_ACCEPT } from "../lib/registry/manifest.ts";
import type { TestRegistry } from "../tests/support/registry.ts";
import { shippedV8Flags } from "../tests/support/hostile_run.ts";
import { type Corpus, tagsByRepository } from "./corpora.ts";

export { shippedV8Flags };

/** Destination namespace every contender writes into (`<dest>/mirror/<last path component>`). */
export const NAMESPACE = "mirror";

/** One finished subprocess. */
export interface RunResult {
  ms: number;
  /** Peak RSS in KiB (from /usr/bin/time -v). */
  rssKb?: number;
  /**
   * CPU time (user + system, ms, from /usr/bin/time -v): what a CPU-bound run such as `validate`
   * takes on an idle machine, when the shared machine stretches wall times.
   */
  cpuMs?: number;
  code: number;
  stdout: string;
  stderr: string;
}

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

/** Run `cmd` under `/usr/bin/time -v`; wall time is measured around the child. */
export async function timed(
  cmd: string,
  args: string[],
  options: { env?: Record<string, string>; cwd?: string; workDir: string },
): Promise<RunResult> {
  const timeFile = `${options.workDir}/time-${crypto.randomUUID()}.txt`;
  const start = performance.now();
  const out = await new Deno.Command("/usr/bin/time", {
    args: ["-v", "-o", timeFile, cmd, ...args],
    env: options.env,
    cwd: options.cwd ?? ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const ms = performance.now() - start;
  const time = await Deno.readTextFile(timeFile).catch(() => "");
  await Deno.remove(timeFile).catch(() => {});
  const rss = /Maximum resident set size \(kbytes\): (\d+)/.exec(time);
  const seconds = (label: string) =>
    Number(new RegExp(`${label} time \\(seconds\\): ([\\d.]+)`).exec(time)?.[1] ?? NaN);
  const cpu = (seconds("User") + seconds("System")) * 1000;
  return {
    ms,
    rssKb: rss ? Number(rss[1]) : undefined,
    cpuMs: Number.isFinite(cpu) ? cpu : undefined,
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

/** Throw with the output tail when a run failed. */
export function check(result: RunResult, what: string): RunResult {
  if (result.code !== 0) {
    const tail = (result.stdout + "\n" + result.stderr).trim().split("\n").slice(-15).join("\n");
    throw new Error(`${what} exited ${result.code}:\n${tail}`);
  }
  return result;
}

/** Options for a bananna-bot run. */
export interface BanannaOptions {
  src: TestRegistry;
  dest: TestRegistry;
  corpus: Corpus;
  engine: "registry" | "docker";
  /** `operation.concurrency`; undefined: the default a user gets (not written). */
  concurrency?: number;
  /** `operation.updateLatest`; undefined: the default (true, not written). @default false */
  updateLatest?: boolean | "default";
  /** `operation.signatures`, when set (unset: `copy` with the registry engine). */
  signatures?: "copy" | "skip";
  /** `operation.maxBytesPerSecond`, when set. */
  maxBytesPerSecond?: number;
  /**
   * Destination namespaces: one `registries` entry per namespace on the destination, every image
   * targeting all of them (K namespaces x the corpus's tags = tasks). @default [NAMESPACE]
   */
  namespaces?: string[];
  /** Log dir (also holds the mirror state file): fresh for a cold run, kept for a re-run. */
  logDir: string;
  workDir: string;
  /** Extra environment (DOCKER_HOST, DOCKER_CONFIG for the docker engine). */
  env?: Record<string, string>;
  /** Extra deno flags, e.g. `--cpu-prof`. */
  denoFlags?: string[];
  /** The tree whose `main.ts` runs (an unpacked `--baseline`, bench/baseline.ts). @default this tree */
  root?: string;
  /**
   * Name the corpus's tags by its `selection` rule (a `repositories` entry) instead of listing
   * them as `images` (the `select` corpus only).
   */
  rules?: boolean;
}

/** The YAML config bananna-bot gets for a corpus. */
export function banannaConfig(options: BanannaOptions): string {
  const namespaces = options.namespaces ?? [NAMESPACE];
  const names = namespaces.map((_, i) => (i === 0 ? "bench" : `bench${i}`));
  const lines = ["version: 1", "registries:"];
  namespaces.forEach((namespace, i) => {
    lines.push(
      `  ${names[i]}:`,
      `    url: http://${options.dest.host}`,
      `    namespace: ${namespace}`,
      "    kind: registry",
      `    username: ${options.dest.username}`,
      "    password: ${BENCH_DEST_PASSWORD}",
    );
  });
  lines.push("operation:", `  engine: ${options.engine}`);
  if (options.concurrency !== undefined) lines.push(`  concurrency: ${options.concurrency}`);
  const latest = options.updateLatest ?? false;
  if (latest !== "default") lines.push(`  updateLatest: ${latest}`);
  if (options.signatures) lines.push(`  signatures: ${options.signatures}`);
  if (options.maxBytesPerSecond) lines.push(`  maxBytesPerSecond: ${options.maxBytesPerSecond}`);
  lines.push("  retryDelay: 1", "log:", `  dir: ${options.logDir}`);
  const targets = `    targets: [${names.join(", ")}]`;
  const selection = options.corpus.selection;
  if (options.rules) {
    if (!selection) throw new Error(`corpus ${options.corpus.name} has no selection rule`);
    lines.push(
      "repositories:",
      `  "${options.src.host}/${selection.repository}":`,
      targets,
      `    tags: { semver: "${selection.semver}" }`,
    );
    return lines.join("\n") + "\n";
  }
  lines.push("images:");
  for (const image of options.corpus.images) {
    lines.push(`  "${options.src.host}/${image.repository}:${image.tag}":`, targets);
  }
  return lines.join("\n") + "\n";
}

/** Write the config and run `main.ts mirror` once. */
export async function runBananna(options: BanannaOptions): Promise<RunResult> {
  const file = `${options.workDir}/bananna-${options.corpus.name}-${options.engine}${
    options.rules ? "-rules" : ""
  }-${options.namespaces?.length ?? 1}.yaml`;
  await Deno.writeTextFile(file, banannaConfig(options));
  return await timed("deno", [
    "run",
    "--frozen",
    // As `deno task mirror` and the compiled binary run it (that tree's deno.json).
    ...shippedV8Flags(options.root),
    "--allow-net",
    "--allow-read",
    "--allow-write",
    "--allow-env",
    "--allow-run",
    ...(options.denoFlags ?? []),
    "main.ts",
    "mirror",
    "--config",
    file,
    "--non-interactive",
  ], {
    workDir: options.workDir,
    cwd: options.root,
    env: { ...baseEnv(), ...options.env, BENCH_DEST_PASSWORD: options.dest.password ?? "" },
  });
}

/** A small environment: PATH, HOME, DENO_DIR (so deno finds its cache). */
export function baseEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const key of ["PATH", "HOME", "DENO_DIR", "XDG_CACHE_HOME", "TMPDIR"]) {
    const value = Deno.env.get(key);
    if (value !== undefined) env[key] = value;
  }
  env.NO_COLOR = "1";
  return env;
}

/** A docker-style auth file for `reg` (skopeo --dest-authfile, DOCKER_CONFIG/config.json). */
export async function writeAuthFile(reg: TestRegistry, file: string): Promise<void> {
  const auth = btoa(`${reg.username}:${reg.password}`);
  await Deno.writeTextFile(file, JSON.stringify({ auths: { [reg.host]: { auth } } }));
  await Deno.chmod(file, 0o600);
}

/** `skopeo sync --all --preserve-digests --src yaml --dest docker`: one process for the corpus. */
export async function runSkopeoSync(
  options: {
    src: TestRegistry;
    dest: TestRegistry;
    corpus: Corpus;
    workDir: string;
    /** Destination namespace. @default NAMESPACE */
    namespace?: string;
  },
): Promise<RunResult> {
  const { src, dest, corpus, workDir } = options;
  const yaml = [`${src.host}:`, "  tls-verify: false", "  images:"];
  for (const [repository, tags] of tagsByRepository(corpus)) {
    yaml.push(`    ${repository}: [${tags.map((t) => `"${t}"`).join(", ")}]`);
  }
  const yamlFile = `${workDir}/skopeo-${corpus.name}.yaml`;
  await Deno.writeTextFile(yamlFile, yaml.join("\n") + "\n");
  const authFile = `${workDir}/skopeo-auth.json`;
  await writeAuthFile(dest, authFile);
  return await timed("skopeo", [
    "sync",
    "--all",
    "--preserve-digests",
    "--src",
    "yaml",
    "--dest",
    "docker",
    "--dest-tls-verify=false",
    "--dest-authfile",
    authFile,
    yamlFile,
    `${dest.host}/${options.namespace ?? NAMESPACE}`,
  ], { workDir, env: { ...baseEnv(), TMPDIR: workDir } });
}

/** A plain sequential `docker login; for each tag: pull, tag, push` loop in bash. */
export async function runDockerLoop(
  options: {
    src: TestRegistry;
    dest: TestRegistry;
    corpus: Corpus;
    workDir: string;
    dockerEnv: Record<string, string>;
  },
): Promise<RunResult> {
  const { src, dest, corpus, workDir } = options;
  const script = [
    "set -euo pipefail",
    `printf '%s' "$BENCH_DEST_PASSWORD" | docker login -u '${dest.username}' --password-stdin ${dest.host} >/dev/null`,
  ];
  for (const image of corpus.images) {
    const from = `${src.host}/${image.repository}:${image.tag}`;
    const to = `${dest.host}/${NAMESPACE}/${image.repository.split("/").pop()}:${image.tag}`;
    script.push(`docker pull -q ${from} >/dev/null`, `docker tag ${from} ${to}`);
    script.push(`docker push -q ${to} >/dev/null`);
  }
  const file = `${workDir}/docker-loop-${corpus.name}.sh`;
  await Deno.writeTextFile(file, script.join("\n") + "\n");
  return await timed("bash", [file], {
    workDir,
    env: { ...baseEnv(), ...options.dockerEnv, BENCH_DEST_PASSWORD: dest.password ?? "" },
  });
}

/** What a floor needs: both registries, the corpus, a work dir, and how many at once. */
export interface FloorOptions {
  src: TestRegistry;
  dest: TestRegistry;
  corpus: Corpus;
  workDir: string;
  parallel: number;
}

/**
 * The floor: every unique blob of the corpus moved with curl, `parallel` at a time (xargs -P):
 * POST an upload into the destination, then `curl GET source | curl -T - PUT location&digest=`.
 * Manifests are not moved (they are a few KB).
 */
export async function runFloor(
  options: FloorOptions,
): Promise<RunResult> {
  const { src, dest, corpus, workDir } = options;
  const netrc = `${workDir}/netrc`;
  await Deno.writeTextFile(
    netrc,
    `machine 127.0.0.1 login ${dest.username} password ${dest.password}\n`,
  );
  await Deno.chmod(netrc, 0o600);
  const list = `${workDir}/floor-${corpus.name}.txt`;
  await Deno.writeTextFile(
    list,
    corpus.blobs.map((b) =>
      `${b.repository} ${b.digest} ${NAMESPACE}/${b.repository.split("/").pop()}\n`
    ).join(""),
  );
  const script = `set -euo pipefail
copy() {
  set -euo pipefail
  local loc
  loc=$(curl -sSf --netrc-file "$NETRC" -X POST -o /dev/null -w '%header{location}' \\
    "$DST/v2/$3/blobs/uploads/")
  case "$loc" in http*) ;; *) loc="$DST$loc" ;; esac
  curl -sSf "$SRC/v2/$1/blobs/$2" |
    curl -sSf --netrc-file "$NETRC" -T - -o /dev/null "$loc&digest=$2"
}
export -f copy
xargs -P "$PARALLEL" -n 3 bash -c 'copy "$@"' _ < "$LIST"
`;
  const file = `${workDir}/floor.sh`;
  await Deno.writeTextFile(file, script);
  return await timed("bash", [file], {
    workDir,
    env: {
      ...baseEnv(),
      NETRC: netrc,
      SRC: src.url,
      DST: dest.url,
      LIST: list,
      PARALLEL: String(options.parallel),
    },
  });
}

/**
 * The no-op floor: the reads a no-op re-run cannot skip (a HEAD of every source tag and every
 * destination tag, with the destination's Basic credentials), made by two `curl --parallel`
 * processes at once. What is left of a tool's no-op time above this is the tool's own.
 */
export async function runHeadFloor(
  options: FloorOptions,
): Promise<RunResult> {
  const { dest, workDir } = options;
  const heads = headFloorUrls(options);
  const srcList = `${workDir}/head-floor-src.txt`;
  const dstList = `${workDir}/head-floor-dst.txt`;
  await Deno.writeTextFile(srcList, heads.source.map((url) => `url = "${url}"\n`).join(""));
  await Deno.writeTextFile(
    dstList,
    `user = "${dest.username}:${dest.password}"\n` +
      heads.destination.map((url) => `url = "${url}"\n`).join(""),
  );
  const curl = `curl -sSf --head --parallel --parallel-max "$PARALLEL" -H "Accept: $ACCEPT"`;
  const script = `set -euo pipefail
${curl} -K "$SRC_LIST" >/dev/null & a=$!
${curl} -K "$DST_LIST" >/dev/null & b=$!
wait $a; wait $b
`;
  const file = `${workDir}/head-floor.sh`;
  await Deno.writeTextFile(file, script);
  return await timed("bash", [file], {
    workDir,
    env: {
      ...baseEnv(),
      ACCEPT: MANIFEST_ACCEPT,
      SRC_LIST: srcList,
      DST_LIST: dstList,
      PARALLEL: String(options.parallel),
    },
  });
}

/**
 * The same HEADs as {@link runHeadFloor}, made with Deno's fetch (bench/head_floor_fetch.ts, this
 * tree's V8 flags): the runtime's own share of a no-op, with nothing of bananna-bot's around it.
 */
export async function runHeadFloorFetch(options: FloorOptions): Promise<RunResult> {
  const { dest, workDir } = options;
  const heads = headFloorUrls(options);
  const srcList = `${workDir}/head-floor-fetch-src.txt`;
  const dstList = `${workDir}/head-floor-fetch-dst.txt`;
  await Deno.writeTextFile(srcList, heads.source.join("\n") + "\n");
  await Deno.writeTextFile(dstList, heads.destination.join("\n") + "\n");
  return await timed("deno", [
    "run",
    "--frozen",
    ...shippedV8Flags(),
    `--allow-net=${options.src.host},${dest.host}`,
    `--allow-read=${workDir}`,
    "--allow-env=ACCEPT,BENCH_DEST_USER,BENCH_DEST_PASSWORD",
    "bench/head_floor_fetch.ts",
    String(options.parallel),
    srcList,
    dstList,
  ], {
    workDir,
    env: {
      ...baseEnv(),
      ACCEPT: MANIFEST_ACCEPT,
      BENCH_DEST_USER: dest.username ?? "",
      BENCH_DEST_PASSWORD: dest.password ?? "",
    },
  });
}

/** The manifest URLs of the HEAD floors: each source tag, and where each landed in `dest`. */
function headFloorUrls(options: FloorOptions): { source: string[]; destination: string[] } {
  const { src, dest, corpus } = options;
  return {
    source: corpus.images.map((i) => `${src.url}/v2/${i.repository}/manifests/${i.tag}`),
    destination: corpus.images.map((i) =>
      `${dest.url}/v2/${NAMESPACE}/${i.repository.split("/").pop()}/manifests/${i.tag}`
    ),
  };
}

/**
 * The listing floor of the `select` no-op: the tag list's pages (`paths`, as the client asks for
 * them: `?n=1000`, then each `Link: rel="next"`) read one after another by one curl process on one
 * connection. What a `repositories` no-op must do before it knows what to HEAD.
 */
export async function runListFloor(
  options: { src: TestRegistry; paths: string[]; workDir: string },
): Promise<RunResult> {
  const list = `${options.workDir}/list-floor.txt`;
  await Deno.writeTextFile(
    list,
    options.paths.map((p) => `url = "${options.src.url}${p}"\noutput = "/dev/null"\n`).join(""),
  );
  return await timed("curl", ["-sSf", "-K", list], {
    workDir: options.workDir,
    env: baseEnv(),
  });
}
