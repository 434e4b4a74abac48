/**
 * The docs cannot drift from the code: every command line in README.md, ARCHITECTURE.md and
 * docs/*.md works from a clone (a task that exists, arguments the parser takes, no `bananna-bot`
 * that exists only after `deno task compile`), the complete configs they show pass `validate`,
 * docs/configuration.md's key table is the zod schema's keys, and docs/commands.md's synopsis and
 * each command's help name exactly the options the parser gives that command.
 */
import assert from "node:assert/strict";
import { COMMAND_OPTIONS, type CommandName, parseArgs } from "../lib/cli/args.ts";
import { configSchema } from "../lib/config/schema.ts";
import { ROOT, runCli } from "./support/cli.ts";

/** A fenced code block of a markdown file. */
interface Block {
  file: string;
  /** 1-based line of the opening fence. */
  line: number;
  lang: string;
  text: string;
}

/** Every markdown file the docs consist of, relative to the repository root. */
async function docFiles(): Promise<string[]> {
  const files = ["README.md", "ARCHITECTURE.md"];
  for await (const entry of Deno.readDir(`${ROOT}/docs`)) {
    if (entry.isFile && entry.name.endsWith(".md")) files.push(`docs/${entry.name}`);
  }
  return files.sort();
}

/** The fenced blocks of one markdown text (``` or ~~~ fences, any indentation). */
export function fencedBlocks(file: string, markdown: string): Block[] {
  const blocks: Block[] = [];
  let open: { line: number; lang: string; fence: string; lines: string[] } | undefined;
  markdown.split("\n").forEach((raw, i) => {
    const fence = /^\s*(```+|~~~+)\s*([\w-]*)/.exec(raw);
    if (!open && fence) {
      open = { line: i + 1, lang: fence[2], fence: fence[1], lines: [] };
    } else if (open && raw.trim().startsWith(open.fence) && raw.trim() === open.fence) {
      blocks.push({ file, line: open.line, lang: open.lang, text: open.lines.join("\n") });
      open = undefined;
    } else if (open) open.lines.push(raw);
  });
  return blocks;
}

/**
 * Shell words of one command text, split into simple commands at `&&`, `||`, `;` and `|`; quotes
 * ('...', "...") group, `#` at the start of a word begins a comment, `\` + newline continues.
 */
export function shellCommands(text: string): string[][] {
  const commands: string[][] = [];
  let words: string[] = [];
  let word: string | undefined;
  const end = () => {
    if (word !== undefined) words.push(word);
    word = undefined;
  };
  const flush = () => {
    end();
    if (words.length > 0) commands.push(words);
    words = [];
  };
  const src = text.replace(/\\\n/g, " ");
  for (let i = 0; i < src.length; i++) {
    const c = src[i];
    if (c === "'" || c === '"') {
      const close = src.indexOf(c, i + 1);
      if (close < 0) throw new Error(`unclosed quote in: ${text}`);
      word = (word ?? "") + src.slice(i + 1, close);
      i = close;
    } else if (c === "#" && word === undefined) {
      while (i < src.length && src[i] !== "\n") i++;
      flush();
    } else if (c === "\n" || c === ";") flush();
    else if (c === "&" && src[i + 1] === "&") (flush(), i++);
    else if (c === "|") (flush(), src[i + 1] === "|" && i++);
    else if (c === " " || c === "\t") end();
    else word = (word ?? "") + c;
  }
  flush();
  return commands;
}

/** One documented command line, with where it is written. */
interface DocCommand {
  where: string;
  words: string[];
}

/**
 * The command lines of the docs: every line of a ```sh block, the `$ ` lines of any block, and
 * inline code spans that start with `deno task ` or `bananna-bot `.
 */
export function docCommands(file: string, markdown: string): DocCommand[] {
  const found: DocCommand[] = [];
  for (const block of fencedBlocks(file, markdown)) {
    const lines = block.lang === "sh" || block.lang === "bash"
      ? [block.text]
      : block.text.split("\n").filter((l) => l.startsWith("$ ")).map((l) => l.slice(2));
    for (const text of lines) {
      for (const words of shellCommands(text)) {
        found.push({ where: `${file}:${block.line}`, words });
      }
    }
  }
  const prose = markdown.replace(/^\s*(```|~~~)[\s\S]*?^\s*\1\s*$/gm, "");
  for (const span of prose.matchAll(/`([^`\n]+)`/g)) {
    if (/^(deno task|bananna-bot) /.test(span[1])) {
      for (const words of shellCommands(span[1])) {
        found.push({ where: `${file}: ${span[0]}`, words });
      }
    }
  }
  return found;
}

type Tasks = Record<string, string>;

/** What is wrong with one documented command line, or undefined when it works from a clone. */
export function commandProblem(words: string[], tasks: Tasks): string | undefined {
  if (words[0] === "bananna-bot") {
    return "bananna-bot exists only after deno task compile: write deno task <command>";
  }
  if (words[0] === "bash" && words[1] && !words[1].startsWith("-")) {
    try {
      Deno.statSync(`${ROOT}/${words[1]}`);
    } catch {
      return `${words[1]} is not in the repository`;
    }
  }
  const main = words.findIndex((w) => w.endsWith("main.ts"));
  if (main > 0 && words.includes("run") && words[main + 1]) {
    try {
      parseArgs(words.slice(main + 1));
    } catch (error) {
      return `the argument parser refuses it: ${(error as Error).message}`;
    }
  }
  if (words[0] !== "deno" || words[1] !== "task") return undefined;
  const [name, ...rest] = words.slice(2);
  const task = tasks[name ?? ""];
  if (!task) return `no task "${name}" in deno.json (tasks: ${Object.keys(tasks).join(", ")})`;
  const command = / main\.ts (\w+)$/.exec(task)?.[1];
  if (!command) return undefined;
  try {
    parseArgs([command, ...rest]);
  } catch (error) {
    return `the argument parser refuses it: ${(error as Error).message}`;
  }
  return undefined;
}

async function readTasks(): Promise<Tasks> {
  return JSON.parse(await Deno.readTextFile(`${ROOT}/deno.json`)).tasks;
}

Deno.test("docs: every documented command line works from a clone (task exists, arguments parse)", async () => {
  const tasks = await readTasks();
  const problems: string[] = [];
  let checked = 0;
  for (const file of await docFiles()) {
    for (const { where, words } of docCommands(file, await Deno.readTextFile(`${ROOT}/${file}`))) {
      if (words[0] === "deno" && words[1] === "task") checked++;
      const problem = commandProblem(words, tasks);
      if (problem) problems.push(`${where}: ${words.join(" ")}: ${problem}`);
    }
  }
  assert.deepEqual(problems, []);
  assert.ok(checked >= 20, `only ${checked} deno task lines found: is the extraction broken?`);
});

Deno.test("docs: the checker catches a broken command line", () => {
  const tasks = { mirror: "deno run --allow-read main.ts mirror", check: "deno fmt --check" };
  const doc = [
    "Run `deno task mirror --dry-rum` first, or `bananna-bot mirror --dry-run`.",
    "```sh",
    "deno task mirror --config config.yaml --only 'a b' # a comment --bogus",
    "deno task mirror -- --dry-run && deno task check",
    "deno task export --to out",
    "bash .ci/absent",
    "oc debug job/x -- deno run --allow-read /opt/main.ts report --merge d --shard 0/2",
    "```",
    "```",
    "$ deno task mirror --shards 0 --merge x",
    "not a command line",
    "```",
  ].join("\n");
  const found = docCommands("x.md", doc).map(({ words }) =>
    `${words.join(" ")} => ${commandProblem(words, tasks) ?? "ok"}`
  );
  assert.deepEqual(found, [
    "deno task mirror --config config.yaml --only a b => ok",
    "deno task mirror -- --dry-run => ok",
    "deno task check => ok",
    'deno task export --to out => no task "export" in deno.json (tasks: mirror, check)',
    "bash .ci/absent => .ci/absent is not in the repository",
    "oc debug job/x -- deno run --allow-read /opt/main.ts report --merge d --shard 0/2 => the argument parser refuses it: --shard is not an option of report (it is an option of mirror)",
    "deno task mirror --shards 0 --merge x => the argument parser refuses it: --merge is not an option of mirror (it is an option of report)",
    "deno task mirror --dry-rum => the argument parser refuses it: Unknown option '--dry-rum' (did you mean --dry-run?)",
    "bananna-bot mirror --dry-run => bananna-bot exists only after deno task compile: write deno task <command>",
  ]);
});

/** `${VAR}` names in a text. */
function variables(text: string): string[] {
  return [...new Set([...text.matchAll(/\$\{(\w+)\}/g)].map((m) => m[1]))];
}

Deno.test("docs: every complete config the docs show passes validate", async (t) => {
  let shown = 0;
  for (const file of await docFiles()) {
    const markdown = await Deno.readTextFile(`${ROOT}/${file}`);
    for (const block of fencedBlocks(file, markdown)) {
      if (block.lang !== "yaml" || !/^registries:/m.test(block.text)) continue;
      if (!/^(images|repositories):/m.test(block.text)) continue;
      shown++;
      await t.step(`${file}:${block.line}`, async () => {
        const dir = await Deno.makeTempDir({ prefix: "bb-docs-" });
        try {
          await Deno.writeTextFile(`${dir}/config.yaml`, block.text);
          const env = Object.fromEntries(variables(block.text).map((v) => [v, `${v}-v4lue-9`]));
          const out = await runCli(["validate", "--config", "config.yaml"], { cwd: dir, env });
          assert.equal(out.code, 0, out.stdout + out.stderr);
        } finally {
          await Deno.remove(dir, { recursive: true });
        }
      });
    }
  }
  assert.ok(shown >= 2, `only ${shown} complete configs found in the docs`);
});

/** Schema key paths: records as `*`; sections (objects) and leaves told apart. */
export function schemaKeys(): { leaves: Set<string>; sections: Set<string> } {
  const leaves = new Set<string>();
  const sections = new Set<string>();
  // deno-lint-ignore no-explicit-any
  function walk(schema: any, path: string): void {
    const def = schema._zod.def;
    if (["optional", "default", "nullable", "prefault", "readonly", "catch"].includes(def.type)) {
      return walk(def.innerType, path);
    }
    if (def.type === "pipe") return walk(def.in, path);
    if (def.type === "never") return; // a key that exists only to be refused with a message
    if (def.type === "object") {
      if (path) sections.add(path);
      for (const [key, value] of Object.entries(def.shape)) {
        walk(value, path ? `${path}.${key}` : key);
      }
      return;
    }
    if (def.type === "record" && def.valueType._zod.def.type === "object") {
      sections.add(path);
      return walk(def.valueType, `${path}.*`);
    }
    leaves.add(path);
  }
  walk(configSchema, "");
  return { leaves, sections };
}

/**
 * The keys of the first column of a key table: `a.<name>.b` is `a.*.b`, `a["<x>"].b` is `a.*.b`,
 * `a.b` / `c` is `a.b` and `a.c`, a trailing `.*` stands for every key below.
 */
export function tableKeys(markdown: string): string[] {
  const start = markdown.search(/^\| key +\|/m);
  assert.ok(start >= 0, "a table whose first column is `key`");
  const keys: string[] = [];
  for (const row of markdown.slice(start).split("\n").slice(2)) {
    if (!row.startsWith("|")) break;
    let previous = "";
    for (const part of row.split("|")[1].split(" / ")) {
      const name = /`([^`]+)`/.exec(part)?.[1];
      if (!name) continue;
      const path = name.replace(/\["<[^>]+>"\]/g, ".*").replace(/<[^>]+>/g, "*");
      const full = path.includes(".") || !previous
        ? path
        : `${previous.slice(0, previous.lastIndexOf(".") + 1)}${path}`;
      keys.push(full);
      previous = full;
    }
  }
  return keys;
}

/** What the key table gets wrong against the schema. */
export function keyTableProblems(
  documented: string[],
  schema: { leaves: Set<string>; sections: Set<string> },
): string[] {
  const problems: string[] = [];
  const covers = (doc: string, key: string) =>
    doc === key || (doc.endsWith(".*") && key.startsWith(doc.slice(0, -1)));
  for (const doc of documented) {
    const exists = schema.leaves.has(doc) || schema.sections.has(doc) ||
      (doc.endsWith(".*") && schema.sections.has(doc.slice(0, -2)));
    if (!exists) problems.push(`documented but not in the schema: ${doc}`);
  }
  for (const key of schema.leaves) {
    if (!documented.some((doc) => covers(doc, key))) problems.push(`not documented: ${key}`);
  }
  return problems;
}

Deno.test("docs: configuration.md's key table is the schema's keys, no more, no less", async () => {
  const markdown = await Deno.readTextFile(`${ROOT}/docs/configuration.md`);
  assert.deepEqual(keyTableProblems(tableKeys(markdown), schemaKeys()), []);
});

Deno.test("docs: the key table check catches a missing and an invented key", () => {
  const table = [
    "| key | default | meaning |",
    "| --- | --- | --- |",
    "| `log.level` / `fil` | x | y |",
    '| `images["<source>"].targets` | x | y |',
    "| `sources.<host>.*` | x | y |",
    "",
  ].join("\n");
  assert.deepEqual(tableKeys(table), ["log.level", "log.fil", "images.*.targets", "sources.*.*"]);
  const schema = {
    leaves: new Set(["log.level", "log.file", "images.*.targets", "sources.*.username"]),
    sections: new Set(["log", "images.*", "sources.*"]),
  };
  assert.deepEqual(keyTableProblems(tableKeys(table), schema), [
    "documented but not in the schema: log.fil",
    "not documented: log.file",
  ]);
});

/** The options each command's lines name in a synopsis block (`deno task CMD ...` + indented lines). */
export function synopsisOptions(block: string): Map<string, Set<string>> {
  const options = new Map<string, Set<string>>();
  let current: Set<string> | undefined;
  for (const line of block.split("\n")) {
    const head = /^deno task (\w+)\b/.exec(line);
    if (head) {
      current = head[1] === head[1].toUpperCase() ? undefined : new Set();
      if (current) options.set(head[1], current);
    } else if (!/^\s/.test(line)) current = undefined;
    for (const flag of line.matchAll(/--([a-z][a-z-]*)/g)) current?.add(flag[1]);
  }
  return options;
}

function sameOptions(where: string, got: Map<string, Set<string>>): string[] {
  const problems: string[] = [];
  for (const [name, want] of Object.entries(COMMAND_OPTIONS)) {
    const have = got.get(name);
    if (!have) {
      problems.push(`${where}: no line for ${name}`);
      continue;
    }
    for (const o of want) if (!have.has(o)) problems.push(`${where}: ${name} lacks --${o}`);
    for (const o of have) {
      if (o !== "help" && !(want as readonly string[]).includes(o)) {
        problems.push(`${where}: ${name} has --${o}, which the parser does not take`);
      }
    }
  }
  for (const name of got.keys()) {
    if (!(name in COMMAND_OPTIONS)) problems.push(`${where}: ${name} is not a command`);
  }
  return problems;
}

Deno.test("docs: the synopsis in docs/commands.md names exactly each command's options", async () => {
  const markdown = await Deno.readTextFile(`${ROOT}/docs/commands.md`);
  const section = markdown.slice(markdown.indexOf("\n## Command line\n"));
  const block = fencedBlocks("docs/commands.md", section)[0];
  assert.ok(block, "docs/commands.md has a synopsis block under ## Command line");
  assert.deepEqual(sameOptions("synopsis", synopsisOptions(block.text)), []);
  // The check itself: an option the parser does not take, and one it takes that is missing.
  const broken = block.text.replace("[--strict]", "[--strikt]");
  assert.deepEqual(sameOptions("synopsis", synopsisOptions(broken)), [
    "synopsis: validate lacks --strict",
    "synopsis: validate has --strikt, which the parser does not take",
  ]);
});

Deno.test("each command's help lists exactly the options the parser gives it", () => {
  const problems: string[] = [];
  for (const name of Object.keys(COMMAND_OPTIONS) as CommandName[]) {
    const help = parseArgs([name, "--help"]);
    const text = help.kind === "help" ? help.text : "";
    const options = text.slice(text.indexOf("\nOptions:"), text.indexOf("\nExit codes:"));
    const listed = [...options.matchAll(/^\s+(?:-\w, )?--([a-z-]+)/gm)].map((m) => m[1]);
    const want: readonly string[] = [...COMMAND_OPTIONS[name], "help"];
    for (const o of want) if (!listed.includes(o)) problems.push(`${name} --help lacks --${o}`);
    for (const o of listed) if (!want.includes(o)) problems.push(`${name} --help lists --${o}`);
  }
  assert.deepEqual(problems, []);
});

Deno.test("mirror --help lists every exit code of the table in docs/commands.md", async () => {
  const markdown = await Deno.readTextFile(`${ROOT}/docs/commands.md`);
  const documented = [...markdown.matchAll(/^\| (\d+) +\|/gm)].map((m) => m[1]);
  assert.ok(documented.length >= 4, `only ${documented.length} exit codes found in the table`);
  const help = parseArgs(["mirror", "--help"]);
  const text = help.kind === "help" ? help.text : "";
  const codes = text.slice(text.indexOf("\nExit codes:"));
  const listed = [...codes.matchAll(/^ {2}(\d+) /gm)].map((m) => m[1]);
  assert.deepEqual(documented.filter((c) => !listed.includes(c)), []);
});

/** Every file under `dir` (relative to the root) whose name ends with one of `extensions`. */
async function filesUnder(dir: string, extensions: string[]): Promise<string[]> {
  const found: string[] = [];
  for await (const entry of Deno.readDir(`${ROOT}/${dir}`)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) found.push(...await filesUnder(path, extensions));
    else if (extensions.some((e) => entry.name.endsWith(e))) found.push(path);
  }
  return found;
}

/** Lines citing an internal issue number, or (docs only) a file outside the repository. */
export function outsideReferences(file: string, text: string, doc: boolean): string[] {
  const found: string[] = [];
  text.split("\n").forEach((line, i) => {
    const issue = /\bissues? #?\d+/i.test(line) || /(^|[\s(])#\d+\b/.test(line);
    const outside = doc &&
      (/\]\(\.\.\/\.\.\//.test(line) || /(\.\.\/)?shared\/[\w-]+\.md/.test(line));
    if (issue || outside) found.push(`${file}:${i + 1}: ${line.trim()}`);
  });
  return found;
}

Deno.test("docs and code comments cite no issue numbers; docs name no file outside the repository", async () => {
  const found: string[] = [];
  for (const file of await docFiles()) {
    found.push(...outsideReferences(file, await Deno.readTextFile(`${ROOT}/${file}`), true));
  }
  const code = ["main.ts", "config.ts"];
  for (const dir of ["lib", "tests", "bench", "examples", "deploy"]) {
    code.push(...await filesUnder(dir, [".ts", ".yaml"]));
  }
  for (const file of code.filter((f) => !f.startsWith("tests/testdata/"))) {
    found.push(...outsideReferences(file, await Deno.readTextFile(`${ROOT}/${file}`), false));
  }
  assert.deepEqual(found, []);
  // The check itself (the cited number is built here, so this file passes its own check).
  const cited = `see (iss${"ue"} 13)`;
  assert.deepEqual(
    outsideReferences("x.md", `${cited}\nformat: ../shared/registry-protocols.md\nfine`, true),
    [`x.md:1: ${cited}`, "x.md:2: format: ../shared/registry-protocols.md"],
  );
});
