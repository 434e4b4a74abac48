/**
 * What each command loads before it starts, kept by a test: the static import graph (imports
 * that are not `import()` and not type-only) of each command's entry module must not pull in a
 * heavy package it does not need at start. Each npm package costs its load time on every run (an
 * npm CommonJS package tens of milliseconds, the first one more for Deno's node compatibility
 * layer), so a package a command needs only sometimes is loaded with `import()` where it is used.
 *
 * The graph comes from `deno info --json` on the entry module; `isDynamic` edges are not
 * followed.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ROOT } from "./support/cli.ts";

interface InfoModule {
  specifier: string;
  dependencies?: { code?: { specifier: string }; isDynamic?: boolean }[];
}

/**
 * The modules loaded before `entry` runs (repository-relative paths, `npm:name` for a package's
 * main module and `npm:name/sub/path` for another of its entry points, `node:x` for a built-in),
 * each with the chain of imports that brings it in.
 */
async function staticGraph(entry: string): Promise<Map<string, string[]>> {
  const out = await new Deno.Command("deno", {
    args: ["info", "--json", "--config", `${ROOT}/deno.json`, `${ROOT}/${entry}`],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    roots: string[];
    modules: InfoModule[];
  };
  const bySpecifier = new Map(info.modules.map((m) => [m.specifier, m]));
  const name = (specifier: string) =>
    specifier.startsWith(`file://${ROOT}/`)
      ? specifier.slice(`file://${ROOT}/`.length)
      : specifier.replace(/^npm:\/?((?:@[^/]+\/)?[^@/]+)(?:@[^/]*)?(\/.*)?$/, "npm:$1$2");
  const chains = new Map<string, string[]>();
  const queue: { specifier: string; chain: string[] }[] = [
    { specifier: info.roots[0], chain: [] },
  ];
  while (queue.length > 0) {
    const { specifier, chain } = queue.shift() as (typeof queue)[number];
    const here = name(specifier);
    if (chains.has(here)) continue;
    chains.set(here, [...chain, here]);
    for (const dep of bySpecifier.get(specifier)?.dependencies ?? []) {
      if (dep.isDynamic || !dep.code) continue;
      queue.push({ specifier: dep.code.specifier, chain: [...chain, here] });
    }
  }
  return chains;
}

/** Each module of `forbidden` the entry loads at start, with the chain that loads it. */
async function heavyLoads(entry: string, forbidden: (name: string) => boolean): Promise<string[]> {
  const graph = await staticGraph(entry);
  return [...graph].filter(([name]) => forbidden(name)).map(([, chain]) => chain.join(" -> "));
}

/**
 * The first `node:` module of a run brings part of Deno's Node layer (node:util's parseArgs cost
 * about 10 ms on every command): argv parsing uses none.
 */
Deno.test("startup imports: argv parsing, --help and --version load no npm package, no node: module and no config code", async () => {
  const found = await heavyLoads(
    "main.ts",
    (name) => name.startsWith("npm:") || name.startsWith("node:") || name.startsWith("lib/config/"),
  );
  assert.deepEqual(found, [], "main.ts loads these before it knows the command");
});

/**
 * Modules no run needs before its first request (each is loaded where it is used); node:crypto
 * brings part of Deno's Node layer.
 */
const NOT_AT_START = [
  "npm:yaml",
  "npm:semver",
  "npm:tar-stream",
  "npm:@inquirer/prompts",
  "node:crypto",
];

for (
  const [command, entry] of [
    ["validate", "lib/cli/validate_command.ts"],
    ["mirror", "lib/cli/mirror_command.ts"],
  ]
) {
  Deno.test(`startup imports: ${command} loads none of ${NOT_AT_START.join(", ")} at start`, async () => {
    const found = await heavyLoads(entry, (name) => NOT_AT_START.includes(name));
    assert.deepEqual(found, [], `${entry} loads these before it starts`);
  });
}

/**
 * zod's classic API (`npm:zod`) attaches dozens of methods to every schema it builds: the config
 * schema, built on every start, cost about 25 ms with it. lib/zod.ts gives `zod/mini` with the
 * same English messages.
 */
for (
  const [command, entry] of [
    ["validate", "lib/cli/validate_command.ts"],
    ["mirror", "lib/cli/mirror_command.ts"],
  ]
) {
  Deno.test(`startup imports: ${command} loads zod as zod/mini only (through lib/zod.ts)`, async () => {
    const graph = await staticGraph(entry);
    const classic = [...graph].filter(([name]) => name === "npm:zod").map(([, c]) =>
      c.join(" -> ")
    );
    assert.deepEqual(classic, [], `${entry} loads zod's classic API`);
    assert.ok(graph.has("npm:zod/mini"), `${entry} validates with zod/mini`);
  });
}

/**
 * The signature code (cosign, sigstore bundles, referrers) is used once the plan is made, and
 * verification only with `verify` keys: a run loads it after its first requests.
 */
for (
  const [command, entry] of [
    ["validate", "lib/cli/validate_command.ts"],
    ["mirror", "lib/cli/mirror_command.ts"],
  ]
) {
  Deno.test(`startup imports: ${command} loads no signature code at start`, async () => {
    const found = await heavyLoads(
      entry,
      (name) => name.startsWith("lib/signatures/") || name === "lib/mirror/verify_signatures.ts",
    );
    assert.deepEqual(found, [], `${entry} loads the signature code before it starts`);
  });
}

Deno.test("startup imports: validate, which makes no request, loads no HTTP transport at start", async () => {
  const found = await heavyLoads(
    "lib/cli/validate_command.ts",
    (name) => name === "lib/registry/http_transport.ts",
  );
  assert.deepEqual(found, [], "validate loads the transport before it starts");
});

/**
 * A module behind `import()` is fetched when the import runs, not when the process starts
 * (deno.json: `"unstable": ["lazy-dynamic-imports"]`). Without it `deno run` fetches and analyses
 * every module reachable through a statically analyzable `import()` before the first line runs:
 * each command's code, `validate` 111 modules where it uses 23. Seen in Deno's debug log of the
 * files it fetches. (`deno compile` and `deno check` type-check, so their graph still holds every
 * dynamic import.)
 */
Deno.test("startup imports: deno run fetches a module behind import() when the import runs", async () => {
  const out = await new Deno.Command("deno", {
    args: ["run", "--frozen", "--log-level=debug", "--allow-env", "main.ts", "--version"],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0);
  const log = new TextDecoder().decode(out.stderr);
  const fetched = [...log.matchAll(/fetch_no_follow - specifier: file:\/\/(\S+)/g)].map((m) =>
    m[1].slice(ROOT.length + 1)
  );
  assert.ok(fetched.includes("lib/cli/args.ts"), "the debug log names each module fetched");
  assert.deepEqual(fetched.filter((f) => f.endsWith("_command.ts")), []);
});
