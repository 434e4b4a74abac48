/**
 * What tests/e2e/container_test.ts needs to build the Containerfile with no registry and no
 * network:
 *
 * - a base image made from the Deno binary running the tests (`Deno.execPath()`) plus the shared
 *   libraries `ldd` lists for it, and `sh`, `mkdir`, `chmod`, `chgrp` (with theirs) for the
 *   Containerfile's RUN step: a rootfs folder, `tar`, `docker import`;
 * - a build context that is a checkout of the repository (`git ls-files`: tracked and untracked,
 *   not ignored, so uncommitted work is built too) plus a Deno cache holding the npm packages at
 *   `.deno-dir/npm`, copied from this machine's DENO_DIR: the Containerfile's documented way to
 *   build offline (`deno install --frozen` finds every package there).
 *
 * @module
 */
import { dirname } from "node:path";
import { ROOT } from "./cli.ts";
import { runProcess } from "./process.ts";

/** Programs the Containerfile's RUN step uses besides deno. */
const TOOLS = ["sh", "mkdir", "chmod", "chgrp"];

async function output(cmd: string, args: string[], cwd?: string): Promise<string> {
  const out = await runProcess(cmd, args, { cwd });
  if (out.code !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${out.stderr || out.stdout}`);
  return out.stdout;
}

/** Absolute path of a program on PATH. */
async function programPath(name: string): Promise<string> {
  return (await output("sh", ["-c", `command -v ${name}`])).trim();
}

/** The shared libraries `ldd` lists for `binary` (absolute paths only). */
export async function sharedLibraries(binary: string): Promise<string[]> {
  const text = await output("ldd", [binary]);
  return [...text.matchAll(/(\/\S+)/g)].map((m) => m[1]);
}

async function copyInto(root: string, path: string, at: string = path): Promise<void> {
  const target = `${root}${at}`;
  await Deno.mkdir(dirname(target), { recursive: true });
  await Deno.copyFile(path, target); // follows symbolic links: the rootfs holds real files
  await Deno.chmod(target, (await Deno.stat(path)).mode ?? 0o755);
}

/**
 * Make `<work>/rootfs` from the running Deno binary (as /usr/bin/deno) and the tools, tar it, and
 * `docker import` it as `tag`.
 */
export async function importDenoBase(
  docker: (args: string[]) => Promise<{ code: number; stdout: string; stderr: string }>,
  options: { work: string; tag: string },
): Promise<void> {
  const root = `${options.work}/rootfs`;
  await Deno.mkdir(`${root}/tmp`, { recursive: true });
  await Deno.chmod(`${root}/tmp`, 0o1777);
  await Deno.mkdir(`${root}/usr/bin`, { recursive: true });
  await Deno.symlink("usr/bin", `${root}/bin`); // merged /usr: /bin/sh for RUN
  const deno = Deno.execPath();
  await Deno.copyFile(deno, `${root}/usr/bin/deno`);
  await Deno.chmod(`${root}/usr/bin/deno`, 0o755);
  const files = new Set<string>(await sharedLibraries(deno));
  for (const tool of TOOLS) {
    const path = await programPath(tool);
    await copyInto(root, path, path.replace(/^\/bin\//, "/usr/bin/"));
    if (!/^\/(usr\/)?bin\/[^/]+$/.test(path)) throw new Error(`${tool} is at ${path}`);
    for (const lib of await sharedLibraries(path)) files.add(lib);
  }
  for (const file of files) await copyInto(root, file);
  const tar = `${options.work}/rootfs.tar`;
  await output("tar", ["-C", root, "-cf", tar, "."]);
  const imported = await docker([
    "import",
    "--change",
    "ENV PATH=/usr/local/bin:/usr/bin:/bin",
    tar,
    options.tag,
  ]);
  if (imported.code !== 0) throw new Error(`docker import: ${imported.stderr}`);
  await Deno.remove(root, { recursive: true });
  await Deno.remove(tar);
}

/** This machine's Deno cache folder, as `deno info` reports it. */
async function denoDir(): Promise<string> {
  const info = JSON.parse(await output(Deno.execPath(), ["info", "--json"]));
  return info.denoDir as string;
}

/**
 * `<work>/context`: the repository's files (`git ls-files -co --exclude-standard`) and
 * `.deno-dir/npm` from this machine's Deno cache. Returns the folder.
 */
export async function makeBuildContext(work: string): Promise<string> {
  const context = `${work}/context`;
  const listed = await output("git", ["ls-files", "-co", "--exclude-standard", "-z"], ROOT);
  for (const file of listed.split("\0").filter(Boolean)) {
    let info: Deno.FileInfo;
    try {
      info = await Deno.lstat(`${ROOT}/${file}`);
    } catch {
      continue; // deleted in the work tree, still in the index
    }
    if (!info.isFile) continue;
    await Deno.mkdir(dirname(`${context}/${file}`), { recursive: true });
    await Deno.copyFile(`${ROOT}/${file}`, `${context}/${file}`);
  }
  await Deno.mkdir(`${context}/.deno-dir`, { recursive: true });
  await output("cp", ["-a", `${await denoDir()}/npm`, `${context}/.deno-dir/npm`]);
  return context;
}
