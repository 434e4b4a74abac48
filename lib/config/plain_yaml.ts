/**
 * A fast reader for the plain YAML that configs are written in: block mappings and sequences
 * indented with spaces, one-line scalars (plain, `'single'`, `"double"` without escapes),
 * one-line flow sequences and mappings, comments. It gives the same value as the
 * `yaml` package (YAML 1.2, core schema: `~`/`null`, `true`/`false`, decimal, octal `0o` and hex
 * `0x` integers and floats resolve as there), or `undefined` for anything else: escapes,
 * multi-line scalars, anchors, aliases, tags, block scalars, directives, tabs, CR line ends, a
 * duplicate key, a key that is not a string, nesting deeper than {@link MAX_PLAIN_DEPTH}. The
 * caller then parses with `yaml`, which reports every error with its line.
 *
 * Why: a config is read on every run, before the first request. The `yaml` package is CommonJS
 * (its first load costs tens of milliseconds in Deno's node compatibility layer) and builds a
 * document with node positions; reading a 300-image config that way took longer, cold, than the
 * rest of validation. This reader is a regex per line. tests/config/plain_yaml_test.ts compares
 * it with the `yaml` package on every shape it accepts, and checks that it declines the rest.
 *
 * @module
 */

/** The deepest nesting read here (a real config is 5 levels deep); deeper goes to `yaml`. */
export const MAX_PLAIN_DEPTH = 32;

/** Thrown inside the reader: this text is not in the subset (never escapes this module). */
class NotPlain extends Error {}

interface Line {
  indent: number;
  /** The line without its indentation (never empty, never a comment). */
  text: string;
}

const NULL = /^(?:~|[Nn]ull|NULL)?$/;
const BOOL = /^(?:[Tt]rue|TRUE|[Ff]alse|FALSE)$/;
const INT = /^[-+]?[0-9]+$/;
const OCT = /^0o[0-7]+$/;
const HEX = /^0x[0-9a-fA-F]+$/;
const FLOAT = /^[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*)$/;
const FLOAT_EXP = /^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+$/;
const FLOAT_SPECIAL = /^(?:[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN)$/;
/** A plain key: no space, quote, comment or flow character; a colon only inside. */
const PLAIN_KEY = /^[A-Za-z0-9_./$=+][A-Za-z0-9_./:$~@+=-]*$/;
/** A plain scalar inside a flow collection: no space, comma, bracket, brace, colon or `#`. */
const FLOW_PLAIN = /^[A-Za-z0-9_./$=+~][A-Za-z0-9_./$~@+=-]*$/;
/** First characters that make a plain scalar something else (or an error) in YAML. */
const INDICATOR = /^(?:[?:,\]}#&*!|>%@`]|-(?: |$))/;
/**
 * Characters this reader leaves to `yaml`: tabs, CR, a BOM, control characters, and Unicode
 * spaces and line breaks (YAML's white space is the space alone here).
 */
const UNUSUAL =
  // deno-lint-ignore no-control-regex
  /[\x00-\x09\x0b-\x1f\x7f\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]/;
/** What may follow a closing quote or bracket: spaces, then a comment after a space. */
const REST = /^(?: *| +#.*)$/;

/** Resolve a plain scalar as the core schema does. */
function resolvePlain(text: string): unknown {
  if (NULL.test(text)) return null;
  if (BOOL.test(text)) return text[0] === "t" || text[0] === "T";
  if (OCT.test(text)) return parseInt(text.slice(2), 8);
  if (INT.test(text)) return parseInt(text, 10);
  if (HEX.test(text)) return parseInt(text.slice(2), 16);
  if (FLOAT.test(text) || FLOAT_EXP.test(text)) return parseFloat(text);
  if (FLOAT_SPECIAL.test(text)) throw new NotPlain();
  return text;
}

/** A quoted scalar at the start of `text`: its value and the text after the closing quote. */
function quoted(text: string): { value: string; rest: string } {
  const quote = text[0];
  if (quote === '"') {
    const end = text.indexOf('"', 1);
    const value = text.slice(1, end);
    if (end === -1 || value.includes("\\")) throw new NotPlain();
    return { value, rest: text.slice(end + 1) };
  }
  let value = "";
  let i = 1;
  for (;;) {
    const end = text.indexOf("'", i);
    if (end === -1) throw new NotPlain();
    value += text.slice(i, end);
    if (text[end + 1] !== "'") return { value, rest: text.slice(end + 1) };
    value += "'";
    i = end + 2;
  }
}

/** A one-line scalar or flow collection (after `key: ` or `- `), comment allowed after it. */
function inlineValue(text: string): unknown {
  if (text[0] === '"' || text[0] === "'") {
    const { value, rest } = quoted(text);
    if (!REST.test(rest)) throw new NotPlain();
    return value;
  }
  if (text[0] === "[" || text[0] === "{") return flow(text);
  if (INDICATOR.test(text)) throw new NotPlain();
  const comment = text.indexOf(" #");
  const plain = (comment === -1 ? text : text.slice(0, comment)).replace(/ +$/, "");
  if (/:(?: |$)/.test(plain)) throw new NotPlain();
  return resolvePlain(plain);
}

/** One scalar inside a flow collection, and the text after it. */
function flowScalar(text: string): { value: unknown; rest: string } {
  if (text[0] === '"' || text[0] === "'") return quoted(text);
  const token = /^[^ ,\]}:]*/.exec(text)?.[0] ?? "";
  if (!FLOW_PLAIN.test(token)) throw new NotPlain();
  return { value: resolvePlain(token), rest: text.slice(token.length) };
}

/** A one-line flow collection (`[a, "b"]`, `{ k: [v] }`) and what follows it on the line. */
function flowCollection(text: string, depth: number): { value: unknown; rest: string } {
  if (depth > MAX_PLAIN_DEPTH) throw new NotPlain();
  const isMap = text[0] === "{";
  const close = isMap ? "}" : "]";
  const items: unknown[] = [];
  const map: Record<string, unknown> = {};
  let rest = text.slice(1).replace(/^ +/, "");
  while (rest[0] !== close) {
    const first = flowNode(rest, depth + 1);
    rest = first.rest;
    if (isMap) {
      if (typeof first.value !== "string" || !/^: /.test(rest)) throw new NotPlain();
      if (Object.hasOwn(map, first.value) || first.value === "__proto__") throw new NotPlain();
      const value = flowNode(rest.slice(2).replace(/^ +/, ""), depth + 1);
      map[first.value] = value.value;
      rest = value.rest;
    } else items.push(first.value);
    rest = rest.replace(/^ +/, "");
    if (rest[0] === close) break;
    if (rest[0] !== ",") throw new NotPlain();
    rest = rest.slice(1).replace(/^ +/, "");
    if (rest[0] === close) throw new NotPlain(); // a trailing comma
  }
  return { value: isMap ? map : items, rest: rest.slice(1) };
}

/** A scalar or collection inside a flow collection, and the text after it. */
function flowNode(text: string, depth: number): { value: unknown; rest: string } {
  return text[0] === "[" || text[0] === "{" ? flowCollection(text, depth) : flowScalar(text);
}

/** A flow collection that is a whole value: nothing but a comment may follow it. */
function flow(text: string): unknown {
  const { value, rest } = flowCollection(text, 1);
  if (!REST.test(rest)) throw new NotPlain();
  return value;
}

/** A mapping entry's key and the text after `: ` (empty when the value is a block below). */
function entry(text: string): { key: string; rest: string } {
  let key: string;
  let after: string;
  if (text[0] === '"' || text[0] === "'") {
    ({ value: key, rest: after } = quoted(text));
    if (after[0] !== ":") throw new NotPlain();
    after = after.slice(1);
  } else {
    const colon = text.search(/:(?: |$)/);
    if (colon === -1) throw new NotPlain();
    const plain = text.slice(0, colon);
    if (!PLAIN_KEY.test(plain) || typeof resolvePlain(plain) !== "string") throw new NotPlain();
    key = plain;
    after = text.slice(colon + 1);
  }
  if (after !== "" && after[0] !== " ") throw new NotPlain();
  if (key === "__proto__") throw new NotPlain();
  const rest = after.replace(/^ +/, "");
  return { key, rest: rest[0] === "#" ? "" : rest };
}

function isItem(line: Line | undefined): boolean {
  return line !== undefined && (line.text === "-" || line.text.startsWith("- "));
}

class Reader {
  #lines: Line[];
  #at = 0;
  constructor(lines: Line[]) {
    this.#lines = lines;
  }

  document(): unknown {
    const first = this.#lines[0];
    if (first === undefined || isItem(first)) throw new NotPlain();
    const value = this.#map(first.indent, 1);
    if (this.#at !== this.#lines.length) throw new NotPlain();
    return value;
  }

  #map(indent: number, depth: number): Record<string, unknown> {
    if (depth > MAX_PLAIN_DEPTH) throw new NotPlain();
    const out: Record<string, unknown> = {};
    for (let line = this.#lines[this.#at]; line?.indent === indent; line = this.#lines[this.#at]) {
      if (isItem(line)) throw new NotPlain();
      const { key, rest } = entry(line.text);
      if (Object.hasOwn(out, key)) throw new NotPlain();
      this.#at++;
      out[key] = rest === "" ? this.#below(indent, depth) : inlineValue(rest);
      if ((this.#lines[this.#at]?.indent ?? -1) > indent) throw new NotPlain();
    }
    return out;
  }

  /** The block value of a key with nothing after its colon: deeper lines, a sequence, or null. */
  #below(indent: number, depth: number): unknown {
    const next = this.#lines[this.#at];
    if (next === undefined || next.indent < indent) return null;
    if (next.indent === indent) return isItem(next) ? this.#seq(indent, depth + 1) : null;
    return isItem(next) ? this.#seq(next.indent, depth + 1) : this.#map(next.indent, depth + 1);
  }

  #seq(indent: number, depth: number): unknown[] {
    if (depth > MAX_PLAIN_DEPTH) throw new NotPlain();
    const out: unknown[] = [];
    for (let line = this.#lines[this.#at]; line?.indent === indent; line = this.#lines[this.#at]) {
      if (!isItem(line)) break;
      const rest = line.text.slice(1).replace(/^ +/, "");
      if (rest === "" || rest[0] === "#") throw new NotPlain();
      out.push(inlineValue(rest));
      this.#at++;
      if ((this.#lines[this.#at]?.indent ?? -1) > indent) throw new NotPlain();
    }
    return out;
  }
}

/**
 * Read `text` as plain YAML: the value the `yaml` package would give, or `undefined` when the
 * text is outside the subset this reader knows (then parse it with `yaml`).
 *
 * @example
 * ```ts
 * import { readPlainYaml } from "./plain_yaml.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual(readPlainYaml("a:\n  b: [x, 1]\n  c: 'it''s' # note\n"), {
 *   a: { b: ["x", 1], c: "it's" },
 * });
 * assert.equal(readPlainYaml("a: &anchor x\n"), undefined);
 * ```
 */
export function readPlainYaml(text: string): unknown {
  if (UNUSUAL.test(text)) return undefined;
  const lines: Line[] = [];
  for (const raw of text.split("\n")) {
    const body = raw.replace(/^ +/, "");
    if (body === "" || body[0] === "#") continue;
    if (/^(?:---|\.\.\.|%)/.test(body)) return undefined;
    lines.push({ indent: raw.length - body.length, text: body.replace(/ +$/, "") });
  }
  try {
    return new Reader(lines).document();
  } catch (error) {
    if (error instanceof NotPlain) return undefined;
    throw error;
  }
}
