/**
 * A nightly no-op (every tag already mirrored) loads no Node timer: Deno's global `setTimeout` and
 * `setInterval` are `node:timers`, whose first use loads part of Deno's Node layer (about 7 ms
 * and 4 MB of RSS). The run's bounds (the request watchdog, the lock's heartbeat) use
 * lib/unref_timer.ts instead. A preload script wraps the globals' getters and writes down the
 * first use of each, with its stack.
 */
import assert from "node:assert/strict";
import { mirror, registryConfig, startDestination } from "../support/e2e_kit.ts";
import { pushTestImage } from "../support/images.ts";
import { runProcess } from "../support/process.ts";
import { registryBinaryAvailable, startRegistry } from "../support/registry.ts";

const skip = registryBinaryAvailable() ? "" : " (ignored: docker-registry is not installed)";

/** A preload that appends `<name>: <stack>` to `out` the first time a timer global is read. */
function trap(out: string): string {
  const file = JSON.stringify(out);
  return `
for (const name of ["setTimeout", "setInterval", "setImmediate", "clearTimeout", "clearInterval"]) {
  const d = Object.getOwnPropertyDescriptor(globalThis, name);
  if (!d?.get) continue;
  let seen = false;
  Object.defineProperty(globalThis, name, {
    ...d,
    get() {
      if (!seen) {
        seen = true;
        const line = name + ": " + new Error().stack + "\\n";
        Deno.writeTextFileSync(${file}, line, { append: true });
      }
      return d.get.call(this);
    },
  });
}
`;
}

Deno.test({
  name: `a no-op mirror run loads no Node timer${skip}`,
  ignore: Boolean(skip),
  async fn() {
    await using src = await startRegistry();
    await using dest = await startDestination();
    await pushTestImage(src, "team/app:1.0", { kind: "schema2", seed: 1 });
    await pushTestImage(src, "team/app:1.1", { kind: "oci", seed: 2 });
    const config = registryConfig(dest.reg, {
      [`${src.host}/team/app:1.0`]: { targets: ["dr"] },
      [`${src.host}/team/app:1.1`]: { targets: ["dr"] },
    });
    const seen = `${dest.dir}/timers.txt`;
    await Deno.writeTextFile(`${dest.dir}/trap.js`, trap(seen));
    const run = (preload: boolean) =>
      mirror(dest.dir, config, {
        env: dest.env,
        denoFlags: preload ? ["--preload", `${dest.dir}/trap.js`] : [],
      });
    const first = await run(false);
    assert.equal(first.code, 0, first.stderr);
    const noOp = await run(true);
    assert.equal(noOp.code, 0, noOp.stderr);
    assert.match(noOp.stdout + noOp.stderr, /IMAGE_ALREADY_EXISTS|already/i, "the run is a no-op");
    const used = await Deno.readTextFile(seen).catch(() => "");
    assert.equal(used, "", "a Node timer was used by the no-op run");
    // The trap itself works: a script that calls setTimeout is caught.
    await Deno.writeTextFile(`${dest.dir}/uses.ts`, "setTimeout(() => {}, 1);\n");
    const probe = await runProcess("deno", [
      "run",
      "--no-config",
      "--allow-write",
      "--preload",
      `${dest.dir}/trap.js`,
      `${dest.dir}/uses.ts`,
    ]);
    assert.equal(probe.code, 0, probe.stderr);
    assert.match(await Deno.readTextFile(seen), /^setTimeout: /);
  },
});
