/**
 * Config text to plain data, safely: JSON or YAML parsed with nesting capped at
 * {@link MAX_CONFIG_DEPTH} (checked before the parser recurses, and again without recursion on
 * the result), duplicate YAML keys found in one pass (the parser's own check is quadratic in the
 * keys of a map), `__proto__` refused as a name. Every problem carries its path.
 *
 * YAML in the plain subset configs are written in is read by plain_yaml.ts (fast, on every run);
 * anything else by the `yaml` package, loaded only then, which names the line of each error.
 *
 * @module
 */
import type { Node as YamlNode } from "yaml";
import type { ConfigProblem } from "../errors.ts";
import { readPlainYaml } from "./plain_yaml.ts";

type Yaml = typeof import("yaml");

/** The deepest nesting accepted (a real config is 5 levels deep). */
const MAX_CONFIG_DEPTH = 32;

/** `["images", "nginx:1.25", "targets", 1]` -> `images["nginx:1.25"].targets[1]`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const part of path) {
    if (typeof part === "number") out += `[${part}]`;
    else if (/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(String(part))) {
      out += out ? `.${String(part)}` : String(part);
    } else out += `[${JSON.stringify(String(part))}]`;
  }
  return out;
}

/** Parse config text (JSON when `isJson`, else YAML); a syntax or nesting problem otherwise. */
export async function parseConfigText(
  text: string,
  options: { isJson: boolean },
): Promise<{ value: unknown } | { problems: ConfigProblem[] }> {
  return options.isJson ? parseJson(text) : await parseYamlText(text);
}

function nestedTooDeeply(where: string): string {
  return `nested too deeply${where}: a config may nest at most ${MAX_CONFIG_DEPTH} levels`;
}

function parseJson(text: string): { value: unknown } | { problems: ConfigProblem[] } {
  try {
    return { value: JSON.parse(text) };
  } catch (error) {
    const message = error instanceof Error ? error.message.split("\n")[0] : String(error);
    return {
      problems: [{
        path: "",
        message: error instanceof RangeError
          ? nestedTooDeeply("")
          : `JSON syntax error: ${message}`,
      }],
    };
  }
}

/**
 * YAML to plain data. Duplicate keys are found here in one pass (the parser's own check compares
 * every key with every other: quadratic in the keys of a map); aliases are capped by the parser.
 */
async function parseYamlText(
  text: string,
): Promise<{ value: unknown } | { problems: ConfigProblem[] }> {
  const fail = (message: string) => ({ problems: [{ path: "", message }] });
  const deep = yamlTooDeep(text);
  if (deep) return fail(nestedTooDeeply(` at ${deep}`));
  const plain = readPlainYaml(text);
  if (plain !== undefined) return { value: plain };
  const yaml: Yaml = await import("yaml");
  let doc;
  try {
    doc = yaml.parseDocument(text, { uniqueKeys: false, prettyErrors: true });
  } catch (error) {
    if (error instanceof RangeError) return fail(nestedTooDeeply(""));
    throw error;
  }
  const error = doc.errors[0];
  if (error) {
    const message = error.message.split("\n")[0].replace(/:\s*$/, ""); // the excerpt it introduced is cut
    if (/Maximum call stack size exceeded/.test(message)) {
      const at = /at line \d+, column \d+/.exec(message)?.[0];
      return fail(nestedTooDeeply(at ? ` (the YAML parser gave up ${at})` : ""));
    }
    return fail(`YAML syntax error: ${message}`);
  }
  const duplicates: ConfigProblem[] = [];
  findDuplicateKeys(yaml, doc.contents, [], duplicates);
  if (duplicates.length) return { problems: duplicates };
  try {
    return { value: doc.toJS({ maxAliasCount: 100 }) };
  } catch (error) {
    if (error instanceof RangeError) return fail(nestedTooDeeply(""));
    return fail(`YAML error: ${error instanceof Error ? error.message.split("\n")[0] : error}`);
  }
}

/**
 * Where YAML text nests flow collections (`[`, `{`) and same-line sequences (`- - x`) deeper
 * than {@link MAX_CONFIG_DEPTH}, found in one linear scan before the parser, whose recursion
 * would take seconds to overflow on 100k levels. Quoted scalars and comments are skipped; deeper
 * nesting by indentation is left to the parser and {@link checkShape}.
 */
function yamlTooDeep(text: string): string | undefined {
  let flow = 0;
  let dashes = 0;
  let onlyDashes = true;
  let quote = "";
  let line = 1;
  let lineStart = 0;
  let prev = "\n";
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === "\n") {
      line++;
      lineStart = i + 1;
      dashes = 0;
      onlyDashes = true;
      prev = c;
      continue;
    }
    if (quote) {
      if (c === "\\" && quote === '"') i++;
      else if (c === quote && quote === "'" && text[i + 1] === "'") i++;
      else if (c === quote) quote = "";
      prev = c;
      continue;
    }
    const afterSpace = prev === " " || prev === "\t" || prev === "\n";
    if (c === "#" && afterSpace) {
      const end = text.indexOf("\n", i);
      i = (end === -1 ? text.length : end) - 1;
      continue;
    }
    if ((c === '"' || c === "'") && (afterSpace || "[{,:".includes(prev))) quote = c;
    else if (c === "[" || c === "{") flow++;
    else if (c === "]" || c === "}") flow = Math.max(0, flow - 1);
    else if (c === "-" && onlyDashes && /[ \t\n]/.test(text[i + 1] ?? "\n")) dashes++;
    if (c !== " " && c !== "\t" && c !== "-") onlyDashes = false;
    if (flow + dashes > MAX_CONFIG_DEPTH) return `line ${line}, column ${i - lineStart + 1}`;
    prev = c;
  }
  return undefined;
}

function findDuplicateKeys(
  yaml: Yaml,
  node: YamlNode | null | undefined | unknown,
  path: (string | number)[],
  problems: ConfigProblem[],
): void {
  if (path.length > MAX_CONFIG_DEPTH) return; // checkShape reports the depth
  if (yaml.isMap(node)) {
    const seen = new Set<string>();
    for (const pair of node.items) {
      const key = yaml.isScalar(pair.key) ? String(pair.key.value) : undefined;
      if (key !== undefined) {
        if (seen.has(key)) {
          problems.push({ path: formatPath([...path, key]), message: `duplicate key "${key}"` });
        }
        seen.add(key);
      }
      findDuplicateKeys(yaml, pair.value, [...path, key ?? "?"], problems);
    }
  } else if (yaml.isSeq(node)) {
    node.items.forEach((item, i) => findDuplicateKeys(yaml, item, [...path, i], problems));
  }
}

/**
 * What the schema cannot see safely: nesting deeper than {@link MAX_CONFIG_DEPTH} (checked
 * without recursion, so 100k levels cost nothing but a loop) and `__proto__` as a name.
 */
export function checkShape(value: unknown): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  // Only objects and arrays are visited; each keeps its parent and key, so a path is built only
  // for a problem (copying it for every value cost more than the rest of the walk).
  interface Node {
    value: object;
    key: string | number;
    parent: Node | null;
    depth: number;
  }
  const pathOf = (node: Node | null, last?: string): (string | number)[] => {
    const path: (string | number)[] = last === undefined ? [] : [last];
    for (let at = node; at?.parent; at = at.parent) path.push(at.key);
    return path.reverse();
  };
  if (value === null || typeof value !== "object") return problems;
  const stack: Node[] = [{ value, key: "", parent: null, depth: 0 }];
  while (stack.length > 0 && problems.length < 10) {
    const node = stack.pop() as Node;
    const { value: current, depth } = node;
    if (depth >= MAX_CONFIG_DEPTH) {
      problems.push({ path: formatPath(pathOf(node)), message: nestedTooDeeply("") });
      continue;
    }
    if (Array.isArray(current)) {
      for (let i = 0; i < current.length; i++) {
        const child = current[i];
        if (child !== null && typeof child === "object") {
          stack.push({ value: child, key: i, parent: node, depth: depth + 1 });
        }
      }
      continue;
    }
    for (const key of Object.keys(current)) {
      if (key === "__proto__") {
        problems.push({
          path: formatPath(pathOf(node, key)),
          message: 'the name "__proto__" cannot be used (it is reserved); choose another name',
        });
        continue;
      }
      const child = (current as Record<string, unknown>)[key];
      if (child !== null && typeof child === "object") {
        stack.push({ value: child, key, parent: node, depth: depth + 1 });
      }
    }
  }
  return problems;
}
