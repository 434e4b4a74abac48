import assert from "node:assert/strict";
import { parseDocument } from "yaml";
import { MAX_PLAIN_DEPTH, readPlainYaml } from "../../lib/config/plain_yaml.ts";
import { ROOT } from "../support/cli.ts";

/** What the `yaml` package makes of `text` as the config loader calls it; null on an error. */
function viaYaml(text: string): { value: unknown } | null {
  const doc = parseDocument(text, { uniqueKeys: false });
  if (doc.errors.length > 0) return null;
  return { value: doc.toJS({ maxAliasCount: 100 }) };
}

/** The reader either declines `text` or gives exactly what `yaml` gives. */
function assertAgrees(text: string): boolean {
  const fast = readPlainYaml(text);
  if (fast === undefined) return false;
  const slow = viaYaml(text);
  assert.ok(slow, `read text that yaml rejects:\n${text}`);
  assert.deepEqual(fast, slow.value, `differs from yaml on:\n${text}`);
  return true;
}

const ACCEPTED: [string, string][] = [
  ["maps, lists and scalars", "a: 1\nb:\n  c: [x, 'y', \"z\"]\n  d:\n    - 1.5\n    - true\n"],
  ["a sequence at its key's indentation", "targets:\n- prod\n- dr\nnext: x\n"],
  ["comments and blank lines", "# head\na: x # tail\n\n  # indented comment\nb: 'q' # c\n"],
  ["a # inside a plain scalar", "a: x#y\nb: http://h:5000/p\n"],
  ["keys with colons and @", '"nginx:1.27":\n  targets: [a]\nghcr.io/t@sha256:ab:\n  x: 1\n'],
  [
    "core schema scalars",
    "a: ~\nb: null\nc: TRUE\nd: 0o17\ne: 0x1F\nf: 1e3\ng: -12\nh: .5\ni: 1.\nj: yes\n",
  ],
  ["empty values and collections", "a:\nb: []\nc: {}\nd: [ ]\ne:\n"],
  ["a flow mapping", 'tags: { semver: ">=1.25 <2", newest: 3 }\n'],
  ["single quotes", "a: 'it''s'\nb: ''\n"],
  ["variables", "password: ${PASSWORD}\nurl: $${literal}\n"],
  ["an indented root", "  a: 1\n  b: 2\n"],
  ["non-ASCII text", "description: Café für alle\n"],
  ["nested flow collections", "nginx:1.27: { targets: [prod, dr], tags: { newest: 2 } }\n"],
  ["backslashes outside double quotes", "include: ['^\\d+$']\npath: C:\\x\n"],
];

const DECLINED: [string, string][] = [
  ["an anchor and an alias", "a: &x 1\nb: *x\n"],
  ["a tag", "a: !!str 1\n"],
  ["a block scalar", "a: |\n  text\n"],
  ["a folded scalar", "a: >-\n  text\n"],
  ["an escape", 'a: "x\\ny"\n'],
  ["a multi-line plain scalar", "a: one\n  two\n"],
  ["a multi-line quoted scalar", 'a: "one\n  two"\n'],
  ["a tab", "a:\n\tb: 1\n"],
  ["CRLF", "a: 1\r\nb: 2\r\n"],
  ["a BOM", "\uFEFFa: 1\n"],
  ["a duplicate key", "a: 1\na: 2\n"],
  ["a duplicate key, quoted once", "a: 1\n'a': 2\n"],
  ["a number as key", "1.0: x\n"],
  ["a boolean as key", "true: x\n"],
  ["__proto__", "__proto__:\n  a: 1\n"],
  ["a mapping in a sequence", "a:\n  - b: 1\n"],
  ["a value after a colon in a plain scalar", "a: b: c\n"],
  ["a key without value", "a: 1\nb\n"],
  ["a document marker", "---\na: 1\n"],
  ["a directive", "%YAML 1.2\n---\na: 1\n"],
  ["infinity", "a: .inf\n"],
  ["a trailing comma", "a: [b, ]\n"],
  ["a complex key", "? a\n: b\n"],
  ["a sequence as the root", "- a\n- b\n"],
  ["a scalar as the root", "just text\n"],
  ["only comments", "# nothing\n"],
  ["wrong indentation", "a:\n    b: 1\n  c: 2\n"],
  ["a JSON-style pair", '{"a":1}\n'],
  ["a no-break space", "a: x\u00a0\n"],
  ["a comment right after a quote", "a: 'x'#c\n"],
];

Deno.test("readPlainYaml() gives what the yaml package gives on the shapes configs use", async (t) => {
  for (const [name, text] of ACCEPTED) {
    await t.step(name, () => assert.ok(assertAgrees(text), `declined:\n${text}`));
  }
});

Deno.test("readPlainYaml() declines what it does not know, and yaml reads it", async (t) => {
  for (const [name, text] of DECLINED) {
    await t.step(name, () => assert.equal(readPlainYaml(text), undefined));
  }
});

Deno.test("readPlainYaml() declines nesting deeper than its cap", () => {
  let text = "";
  for (let depth = 0; depth <= MAX_PLAIN_DEPTH; depth++) text += `${" ".repeat(depth)}k:\n`;
  assert.equal(readPlainYaml(text), undefined);
  assert.ok(viaYaml(text));
});

Deno.test("readPlainYaml() reads the example configs of the repository and the docs as yaml does", async () => {
  const texts = [await Deno.readTextFile(`${ROOT}/tests/testdata/config/valid.yaml`)];
  for (
    const doc of [
      "README.md",
      ...[...Deno.readDirSync(`${ROOT}/docs`)].map((e) => `docs/${e.name}`),
    ]
  ) {
    const markdown = await Deno.readTextFile(`${ROOT}/${doc}`);
    for (const block of markdown.matchAll(/```yaml\n([\s\S]*?)```/g)) texts.push(block[1]);
  }
  const read = texts.filter((text) => assertAgrees(text)).length;
  // valid.yaml, and most of the docs' examples, are plain.
  assert.ok(assertAgrees(texts[0]), "valid.yaml declined");
  assert.ok(read >= texts.length / 2, `only ${read} of ${texts.length} examples read`);
});

/** A seeded generator (mulberry32), so that a failure can be replayed. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

const KEYS = [
  "a",
  "b",
  "nginx:1.27",
  "x.y/z",
  "1.0",
  "true",
  "~",
  "a b",
  "-x",
  "?x",
  "a#b",
  '"q k"',
  "'s k'",
  '"a:b"',
  "k:",
  "ĉ",
  "__proto__",
  "$v",
  "a:b",
];
const VALUES = [
  "1",
  "01",
  "0o17",
  "0x1F",
  "1e3",
  ".5",
  "1.",
  "+1",
  "-1.5",
  ".inf",
  "yes",
  "True",
  "NULL",
  "~",
  "a: b",
  "a:b",
  "a #c",
  "a#c",
  "[a, b]",
  "[ ]",
  "{ a: 1 }",
  "{a: 1}",
  "{a:1}",
  '"x" #c',
  "'x'y",
  "&a x",
  "*a",
  "!!str 1",
  "|",
  "- a",
  "-a",
  "${VAR}",
  "http://x:5000",
  "@x",
  "'it''s'",
  "[a,]",
  "[a, [b]]",
  '"a\\tb"',
  "[1, true, ~]",
  "text with spaces",
  "a, b",
  "{ k: v, k: w }",
  "[\"x, y\", 'z']",
  "-",
  ":",
  "#",
  "a:",
  "0b1",
  "1_000",
  "2026-12-04",
  "'' # e",
];

function generate(next: () => number): string {
  const pick = <T>(list: T[]) => list[Math.floor(next() * list.length)];
  const lines: string[] = [];
  const block = (indent: number, depth: number) => {
    const entries = 1 + Math.floor(next() * 3);
    for (let i = 0; i < entries; i++) {
      const pad = " ".repeat(indent + (next() < 0.03 ? 1 : 0));
      if (next() < 0.1) lines.push(next() < 0.5 ? "" : `${pad}# note`);
      const key = pick(KEYS);
      const shape = next();
      if (depth < 3 && shape < 0.3) {
        lines.push(`${pad}${key}:`);
        block(indent + pick([2, 4]), depth + 1);
      } else if (depth < 3 && shape < 0.45) {
        lines.push(`${pad}${key}:`);
        const items = " ".repeat(indent + pick([0, 2]));
        for (let j = 0; j < 1 + next() * 3; j++) lines.push(`${items}- ${pick(VALUES)}`);
      } else {
        lines.push(`${pad}${key}: ${pick(VALUES)}${next() < 0.1 ? "  " : ""}`);
      }
    }
  };
  block(0, 0);
  return lines.join("\n") + "\n";
}

Deno.test("readPlainYaml() agrees with yaml on 3,000 generated documents", () => {
  const next = random(20261204);
  let read = 0;
  for (let i = 0; i < 3000; i++) if (assertAgrees(generate(next))) read++;
  // Most documents hold something outside the subset; enough are read to test the reading.
  assert.ok(read > 150, `only ${read} documents read`);
});
