/**
 * The architecture rules, kept by a test:
 * - a leaf (registry/, log/, credentials/, signatures/, retry, errors, http_error, worker_pool,
 *   unref_timer, safe_file, version, write_guard, zod) imports only other leaves: never mirror/, cli/, config/ or engine/;
 * - config/ and engine/ never import the run (mirror/) or the CLI; mirror/ never imports cli/;
 * - ops/ (metrics, notification) never imports the CLI or an engine;
 * - no import circle: neither between files nor between units (a folder, or a file at the lib
 *   root; the code catalogue log/codes.ts is a unit of its own, below everything, and imports
 *   nothing), so no arrow runs back up;
 * - only main.ts calls Deno.exit;
 * - no lib file has more than 400 lines of code (doc comments and blank lines do not count);
 * - no function or method is longer than 120 lines (split it into the steps it reads as);
 * - no basename appears twice in lib/;
 * - ARCHITECTURE.md's Layout block names every lib file, and only files that exist;
 * - every value (function, constant, class) a lib file exports is imported by another file (or
 *   by an example in its own docs): a value only its own file uses is not exported.
 *
 * The import graph comes from `deno info --json` on a generated root that imports every file
 * under lib/, so files main.ts does not reach are checked too, and type-only imports count.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ROOT } from "./support/cli.ts";

/** lib-relative paths (e.g. "log/logger.ts") of every file under lib/. */
async function libFiles(): Promise<string[]> {
  const found: string[] = [];
  async function walk(dir: string): Promise<void> {
    for await (const entry of Deno.readDir(`${ROOT}/lib/${dir}`)) {
      const path = dir ? `${dir}/${entry.name}` : entry.name;
      if (entry.isDirectory) await walk(path);
      else if (entry.isFile && entry.name.endsWith(".ts")) found.push(path);
    }
  }
  await walk("");
  return found.sort();
}

/** Import edges between lib files, as lib-relative paths: file -> the lib files it imports. */
type Graph = Map<string, string[]>;

async function importGraph(files: string[]): Promise<Graph> {
  const dir = await Deno.makeTempDir({ prefix: "bb-arch-" });
  try {
    const root = `${dir}/all_lib.ts`;
    await Deno.writeTextFile(
      root,
      files.map((f) => `import "file://${ROOT}/lib/${f}";\n`).join(""),
    );
    const out = await new Deno.Command("deno", {
      args: ["info", "--json", "--config", `${ROOT}/deno.json`, root],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    const info = JSON.parse(new TextDecoder().decode(out.stdout)) as {
      modules: {
        specifier: string;
        dependencies?: { code?: { specifier: string }; type?: { specifier: string } }[];
      }[];
    };
    const prefix = `file://${ROOT}/`;
    const rel = (specifier: string) =>
      specifier.startsWith(prefix) ? specifier.slice(prefix.length) : null;
    const graph: Graph = new Map();
    for (const module of info.modules) {
      const path = rel(module.specifier);
      if (!path?.startsWith("lib/")) continue;
      const targets = new Set<string>();
      for (const dep of module.dependencies ?? []) {
        for (const to of [dep.code?.specifier, dep.type?.specifier]) {
          const target = to ? rel(to) : null;
          if (target) targets.add(target);
        }
      }
      graph.set(path.slice("lib/".length), [...targets].sort());
    }
    return graph;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const LEAF_FOLDERS = ["registry/", "log/", "credentials/", "signatures/"];
const LEAF_FILES = [
  "retry.ts",
  "errors.ts",
  "http_error.ts",
  "worker_pool.ts",
  "unref_timer.ts",
  "safe_file.ts",
  "version.ts",
  "write_guard.ts",
  "zod.ts",
];

function isLeaf(path: string): boolean {
  return LEAF_FOLDERS.some((f) => path.startsWith(f)) || LEAF_FILES.includes(path);
}

/** Folders a lib folder must never import from (besides the leaf rule). */
const FORBIDDEN: Record<string, string[]> = {
  "config/": ["mirror/", "cli/", "engine/"],
  "engine/": ["mirror/", "cli/", "config/"],
  "mirror/": ["cli/"],
  "ops/": ["cli/", "engine/"],
};

/**
 * Every broken import rule in `graph` (lib-relative paths; a target outside lib/ keeps its
 * repository path, e.g. "main.ts"), one line each.
 */
function importViolations(graph: Graph): string[] {
  const found: string[] = [];
  for (const [from, targets] of graph) {
    for (const target of targets) {
      if (!target.startsWith("lib/")) {
        if (!target.startsWith("node_modules/")) {
          found.push(`lib/${from} imports ${target} (lib/ imports only lib/ and packages)`);
        }
        continue;
      }
      const to = target.slice("lib/".length);
      if (isLeaf(from) && !isLeaf(to)) {
        found.push(`lib/${from} is a leaf and imports lib/${to}, which is not a leaf`);
      }
      for (const [folder, banned] of Object.entries(FORBIDDEN)) {
        if (!from.startsWith(folder)) continue;
        for (const b of banned) {
          if (to.startsWith(b)) found.push(`lib/${from} imports lib/${to} (${folder} -> ${b})`);
        }
      }
    }
  }
  return found;
}

/** The unit of a lib file: its top folder (`registry/`), or itself at the root; the catalogue alone. */
function unitOf(path: string): string {
  if (path === CATALOGUE) return path;
  return path.includes("/") ? path.slice(0, path.indexOf("/") + 1) : path;
}

/** The code catalogue: every layer may import it, it imports no lib file. */
const CATALOGUE = "log/codes.ts";

/** The strongly connected components of more than one node (or a node importing itself). */
function circles(graph: Graph): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string) => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v) as number, low.get(w) as number));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v) as number, index.get(w) as number));
    }
    if (low.get(v) !== index.get(v)) return;
    const component: string[] = [];
    let w: string;
    do {
      w = stack.pop() as string;
      onStack.delete(w);
      component.push(w);
    } while (w !== v);
    if (component.length > 1 || graph.get(v)?.includes(v)) found.push(component.sort());
  };
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) visit(v);
  return found.sort((a, b) => a[0].localeCompare(b[0]));
}

/**
 * Every import circle of `graph` (lib-relative paths, targets as "lib/..."), between files and
 * between units, one line each, naming its members.
 */
function circleViolations(graph: Graph): string[] {
  const files: Graph = new Map();
  const units: Graph = new Map();
  for (const [from, targets] of graph) {
    const inLib = targets.filter((t) => t.startsWith("lib/")).map((t) => t.slice("lib/".length));
    files.set(from, inLib);
    const unit = unitOf(from);
    const seen = new Set(units.get(unit) ?? []);
    for (const to of inLib) if (unitOf(to) !== unit) seen.add(unitOf(to));
    units.set(unit, [...seen]);
  }
  return [
    ...circles(files).map((c) => `import circle between files: ${c.join(" <-> ")}`),
    ...circles(units).map((c) =>
      `import circle between units (an arrow back up): ${c.join(" <-> ")}`
    ),
    ...(files.get(CATALOGUE) ?? []).map((to) => `lib/${CATALOGUE} imports lib/${to}`),
  ];
}

/** Lines (outside comments) that call Deno.exit, as "path:line". */
function exitCalls(path: string, text: string): string[] {
  return text.split("\n").flatMap((line, i) => {
    const code = line.trimStart();
    if (code.startsWith("*") || code.startsWith("//") || code.startsWith("/*")) return [];
    return /\bDeno\s*\.\s*exit\s*\(/.test(code) ? [`${path}:${i + 1}`] : [];
  });
}

function duplicateBasenames(files: string[]): string[] {
  const seen = new Map<string, string[]>();
  for (const f of files) {
    const base = f.slice(f.lastIndexOf("/") + 1);
    seen.set(base, [...(seen.get(base) ?? []), f]);
  }
  return [...seen.values()].filter((paths) => paths.length > 1).map((paths) => paths.join(", "));
}

Deno.test("architecture: import rules hold for every lib file", async () => {
  const files = await libFiles();
  const graph = await importGraph(files);
  assert.deepEqual([...graph.keys()].sort(), files, "deno info saw every file under lib/");
  assert.deepEqual(importViolations(graph), []);
  assert.deepEqual(circleViolations(graph), []);
});

Deno.test("architecture: the circle checker reports file and unit circles", () => {
  const graph: Graph = new Map([
    ["mirror/plan.ts", ["lib/mirror/_plan_budget.ts", "lib/errors.ts"]],
    ["mirror/_plan_budget.ts", ["lib/mirror/plan.ts"]],
    ["errors.ts", ["lib/log/codes.ts"]],
    ["log/codes.ts", []],
    ["log/logger.ts", ["lib/log/codes.ts", "lib/safe_file.ts"]],
    ["safe_file.ts", ["lib/errors.ts"]],
    ["registry/registry_client.ts", ["lib/credentials/credential.ts"]],
    ["credentials/credential.ts", []],
    ["credentials/docker_config.ts", ["lib/registry/reference.ts"]],
    ["registry/reference.ts", ["node_modules/x.js"]],
  ]);
  assert.deepEqual(circleViolations(graph), [
    "import circle between files: mirror/_plan_budget.ts <-> mirror/plan.ts",
    "import circle between units (an arrow back up): credentials/ <-> registry/",
  ]);
  // The catalogue is a unit of its own: log/ -> safe_file -> errors -> log/codes.ts is no circle,
  // but the catalogue importing anything is one arrow too many.
  graph.set("log/codes.ts", ["lib/log/redact.ts"]);
  graph.set("log/redact.ts", []);
  assert.deepEqual(circleViolations(graph).slice(2), [
    "import circle between units (an arrow back up): errors.ts <-> log/ <-> log/codes.ts <-> safe_file.ts",
    "lib/log/codes.ts imports lib/log/redact.ts",
  ]);
});

Deno.test("architecture: the import checker reports a leaf importing the run or the CLI", () => {
  const graph: Graph = new Map([
    ["registry/registry_client.ts", ["lib/errors.ts", "lib/mirror/plan.ts"]],
    ["log/logger.ts", ["lib/config/schema.ts", "node_modules/x.js"]],
    ["retry.ts", ["lib/cli/io.ts"]],
    ["config/load_config.ts", ["lib/engine/engine.ts", "lib/registry/reference.ts"]],
    ["mirror/plan.ts", ["lib/cli/terminal.ts", "lib/config/schema.ts"]],
    ["cli/mirror_command.ts", ["lib/mirror/mirror_run.ts", "main.ts"]],
  ]);
  assert.deepEqual(importViolations(graph), [
    "lib/registry/registry_client.ts is a leaf and imports lib/mirror/plan.ts, which is not a leaf",
    "lib/log/logger.ts is a leaf and imports lib/config/schema.ts, which is not a leaf",
    "lib/retry.ts is a leaf and imports lib/cli/io.ts, which is not a leaf",
    "lib/config/load_config.ts imports lib/engine/engine.ts (config/ -> engine/)",
    "lib/mirror/plan.ts imports lib/cli/terminal.ts (mirror/ -> cli/)",
    "lib/cli/mirror_command.ts imports main.ts (lib/ imports only lib/ and packages)",
  ]);
});

Deno.test("architecture: only main.ts calls Deno.exit", async () => {
  const calls: string[] = [];
  for (const f of await libFiles()) {
    calls.push(...exitCalls(`lib/${f}`, await Deno.readTextFile(`${ROOT}/lib/${f}`)));
  }
  calls.push(...exitCalls("config.ts", await Deno.readTextFile(`${ROOT}/config.ts`)));
  assert.deepEqual(calls, []);
  assert.notDeepEqual(exitCalls("main.ts", await Deno.readTextFile(`${ROOT}/main.ts`)), []);
  assert.deepEqual(
    exitCalls("x.ts", "/** Deno.exit(1) in a doc */\n// Deno.exit(2)\n  if (x) Deno.exit(3);\n"),
    ["x.ts:3"],
  );
});

/** Lines of code: not blank, not a comment line (`//`, `/*`, ` *`), as deno fmt lays them out. */
function codeLines(text: string): number {
  return text.split("\n").filter((line) => {
    const code = line.trim();
    return code !== "" && !code.startsWith("//") && !code.startsWith("/*") &&
      !code.startsWith("*");
  }).length;
}

/** Declarations that open a body: functions, arrow consts, methods (deno fmt layout). */
const DECLARATION = [
  /^(\s*)(?:export\s+)?(?:default\s+)?(?:async\s+)?function\b/,
  /^(\s*)(?:export\s+)?(?:const|let)\s+[\w$]+\s*(?::[^=]+)?=\s*(?:async\s*)?(?:\(|[\w$]+\s*=>)/,
  /^(\s+)(?:(?:public|private|protected|static|async|get|set|override)\s+)*\*?(?:#?[A-Za-z_$][\w$]*|\[Symbol\.\w+\])\s*(?:<[^>]*>)?\(/,
];
const NOT_A_DECLARATION =
  /^\s*(?:if|for|while|switch|catch|return|await|throw|new|typeof|void|yield|else|do|try|super|delete)\b/;

/**
 * Functions and methods longer than `max` lines, as "path:line name: n lines". A declaration's
 * signature ends at the first line ending in `) {`, `): T {` or `=> {`; its body ends at the first
 * line that starts with `}` at the declaration's indentation (deno fmt lays code out so).
 */
function longFunctions(path: string, text: string, max: number): string[] {
  const lines = text.split("\n");
  const found: string[] = [];
  for (const [i, line] of lines.entries()) {
    const code = line.trimStart();
    if (code.startsWith("*") || code.startsWith("//") || code.startsWith("/*")) continue;
    if (NOT_A_DECLARATION.test(line)) continue;
    const indent = DECLARATION.map((r) => line.match(r)).find(Boolean)?.[1];
    if (indent === undefined) continue;
    let j = i;
    while (j < lines.length && !/[{;]$/.test(lines[j].trimEnd())) j++;
    if (!/(?:\)|=>)(?:\s*:[^{}]*)?\s*\{$|=>\s*\{$/.test(lines[j]?.trimEnd() ?? "")) continue;
    let k = j + 1;
    while (k < lines.length && !(lines[k].startsWith(`${indent}}`))) k++;
    const length = k - i + 1;
    const name = code
      .replace(
        /^(?:(?:export|default|async|static|private|get|set|function|const|let)\s+|\*\s*)*/,
        "",
      )
      .match(/^(#?[\w$]+|\[Symbol\.\w+\])/)?.[1];
    if (length > max) found.push(`${path}:${i + 1} ${name}: ${length} lines`);
  }
  return found;
}

Deno.test("architecture: no function or method is longer than 120 lines", async () => {
  const over: string[] = [];
  for (const f of await libFiles()) {
    over.push(...longFunctions(`lib/${f}`, await Deno.readTextFile(`${ROOT}/lib/${f}`), 120));
  }
  assert.deepEqual(over, []);
  const body = (n: number, indent: string) => Array(n).fill(`${indent}  step();`);
  const sample = [
    "/** Doc. */",
    "export async function buildPlan(", // line 2: 8 lines
    "  config: Config,",
    "): Promise<Plan> {",
    ...body(4, ""),
    "}",
    "class Run {",
    "  async #copy(task: Task): Promise<void> {", // line 11: 4 lines
    ...body(2, "  "),
    "  }",
    "  helper = () => 1;",
    "}",
    "const one = async (task: Task) => {", // line 17: 7 lines
    ...body(5, ""),
    "};",
    "if (ready) {", // not a function
    ...body(9, ""),
    "}",
  ].join("\n");
  assert.deepEqual(longFunctions("x.ts", sample, 6), [
    "x.ts:2 buildPlan: 8 lines",
    "x.ts:17 one: 7 lines",
  ]);
  assert.deepEqual(longFunctions("x.ts", sample, 3), [
    "x.ts:2 buildPlan: 8 lines",
    "x.ts:11 #copy: 4 lines",
    "x.ts:17 one: 7 lines",
  ]);
});

Deno.test("architecture: no lib file has more than 400 lines of code", async () => {
  const over: string[] = [];
  for (const f of await libFiles()) {
    const lines = codeLines(await Deno.readTextFile(`${ROOT}/lib/${f}`));
    if (lines > 400) over.push(`lib/${f}: ${lines} lines of code`);
  }
  assert.deepEqual(over, []);
  assert.equal(codeLines("/**\n * Doc.\n */\nconst a = 1; // why\n\n  // note\nf(a);\n"), 2);
});

Deno.test("architecture: no basename appears twice in lib/", async () => {
  assert.deepEqual(duplicateBasenames(await libFiles()), []);
  assert.deepEqual(duplicateBasenames(["a/x.ts", "b/x.ts", "y.ts"]), ["a/x.ts, b/x.ts"]);
});

Deno.test("architecture: ARCHITECTURE.md's Layout block names every lib file and no other", async () => {
  const doc = await Deno.readTextFile(`${ROOT}/ARCHITECTURE.md`);
  assert.ok(doc.includes("\n## Layout\n"), "ARCHITECTURE.md has a Layout section");
  const section = doc.slice(doc.indexOf("\n## Layout\n"));
  const start = section.indexOf("\n```\n") + 5;
  const block = section.slice(start, section.indexOf("\n```", start));
  const named = [...block.matchAll(/^lib\/(\S+\.ts)\s/gm)].map((m) => m[1]).sort();
  assert.deepEqual(named, await libFiles());
});

// ---- exports nothing imports ---------------------------------------------------------------------

/** A lib file's exported values (functions, constants, classes, enums), by name. */
const EXPORTED_VALUE =
  /^export\s+(?:declare\s+)?(?:abstract\s+)?(?:async\s+)?(?:function\*?|const|let|class|enum)\s+([A-Za-z_$][\w$]*)/gm;
/** `import { a, type b as c } from "x"` and `export { a } from "x"`. */
const STATIC_IMPORT = /(?:import|export)\s+(?:type\s+)?\{([^{}]*)\}\s*from\s*["']([^"']+)["']/g;
/** `const { a, b: c } = await import("x")`. */
const DYNAMIC_DESTRUCTURED = /\{([^{}]*)\}\s*=\s*await\s+import\(\s*["']([^"']+)["']\s*\)/g;
/** `import * as ns from "x"`, `await import("x")`, `typeof import("x")`: names used as `.name`. */
const WHOLE_MODULE =
  /import\s+\*\s+as\s+\w+\s+from\s*["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g;

/** `to` resolved against the file `from` (both repository-relative); null for a package. */
function resolveImport(from: string, to: string): string | null {
  if (!to.startsWith(".")) return null;
  const parts = from.split("/").slice(0, -1);
  for (const part of to.split("/")) {
    if (part === "..") parts.pop();
    else if (part !== ".") parts.push(part);
  }
  return parts.join("/");
}

/**
 * Exported values of lib/ files that no file imports (an `@example` importing from its own file
 * counts): each as `lib/x.ts: name`. `sources` maps repository-relative paths (lib/, tests/,
 * bench/, examples/, main.ts, config.ts) to their text.
 */
function unusedExports(sources: Map<string, string>): string[] {
  const exported = new Map<string, string[]>();
  for (const [path, text] of sources) {
    if (!path.startsWith("lib/")) continue;
    exported.set(path, [...text.matchAll(EXPORTED_VALUE)].map((m) => m[1]));
  }
  const imported = new Set<string>();
  for (const [path, text] of sources) {
    for (const m of [...text.matchAll(STATIC_IMPORT), ...text.matchAll(DYNAMIC_DESTRUCTURED)]) {
      const target = resolveImport(path, m[2]);
      if (!target) continue;
      for (const item of m[1].split(",")) {
        const name = item.trim().replace(/^type\s+/, "").split(/\s+as\s+|:/)[0].trim();
        if (name) imported.add(`${target}: ${name}`);
      }
    }
    for (const m of text.matchAll(WHOLE_MODULE)) {
      const target = resolveImport(path, m[1] ?? m[2]);
      for (const name of (target && exported.get(target)) || []) {
        if (new RegExp(`\\.${name.replace(/\$/g, "\\$")}\\b`).test(text)) {
          imported.add(`${target}: ${name}`);
        }
      }
    }
  }
  return [...exported].flatMap(([path, names]) =>
    names.map((name) => `${path}: ${name}`).filter((key) => !imported.has(key))
  ).sort();
}

/** Every .ts file of the repository that may import from lib/ (no node_modules). */
async function importingSources(): Promise<Map<string, string>> {
  const sources = new Map<string, string>();
  async function walk(dir: string): Promise<void> {
    for await (const entry of Deno.readDir(`${ROOT}/${dir}`)) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory && entry.name !== "node_modules") await walk(path);
      else if (entry.isFile && entry.name.endsWith(".ts")) {
        sources.set(path, await Deno.readTextFile(`${ROOT}/${path}`));
      }
    }
  }
  for (const dir of ["lib", "tests", "bench", "examples"]) await walk(dir);
  for (const file of ["main.ts", "config.ts"]) {
    sources.set(file, await Deno.readTextFile(`${ROOT}/${file}`));
  }
  return sources;
}

Deno.test("architecture: every value a lib file exports is imported somewhere", async () => {
  assert.deepEqual(
    unusedExports(await importingSources()),
    [],
    "drop the export of a value only its own file uses, and remove one nothing uses",
  );
});

Deno.test("architecture: the export checker reports a value nothing imports", () => {
  const sources = new Map([
    ["lib/a.ts", "export const USED = 1;\nexport function planted() {}\nexport const LAZY = 2;\n"],
    [
      "lib/b.ts",
      '/** ```ts\n * import { SELF } from "./b.ts";\n * ``` */\nexport const SELF = 3;\n',
    ],
    ["lib/c.ts", "export const DYN = 4;\nexport const VIA_NS = 5;\nexport interface Shape {}\n"],
    [
      "main.ts",
      'import { type USED as U } from "./lib/a.ts";\nconst { LAZY } = await import("./lib/a.ts");\n',
    ],
    ["tests/t.ts", 'const c = await import("../lib/c.ts");\nc.VIA_NS;\n'],
  ]);
  assert.deepEqual(unusedExports(sources), ["lib/a.ts: planted", "lib/c.ts: DYN"]);
});
