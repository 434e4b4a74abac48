/**
 * `loginAll()` on a real registry behind a proxy that can hold a request: `onRequested` (where a
 * run starts the work that can wait on the network) is called once the first login request is
 * under way, not after its answer.
 */
import assert from "node:assert/strict";
import { loadConfig } from "../../lib/config/load_config.ts";
import { Logger } from "../../lib/log/logger.ts";
import { Secrets } from "../../lib/log/redact.ts";
import { loginAll } from "../../lib/mirror/logins.ts";
import { hostLimits, RegistryHosts } from "../../lib/registry/registry_hosts.ts";
import { startHookProxy } from "../support/hook_proxy.ts";
import { startRegistry } from "../support/registry.ts";

Deno.test("loginAll(): onRequested is called once, while the first login request waits for its answer", async () => {
  await using reg = await startRegistry();
  const dir = await Deno.makeTempDir({ prefix: "bb-logins-" });
  let release = () => {};
  const held = new Promise<void>((resolve) => release = resolve);
  let seen = 0;
  // The first request gets no answer until onRequested has been called.
  await using proxy = startHookProxy(reg, async () => {
    if (++seen === 1) await held;
  });
  try {
    await Deno.writeTextFile(
      `${dir}/config.yaml`,
      [
        "registries:",
        "  dst:",
        `    url: http://${proxy.host}`,
        "    namespace: mirror",
        "    kind: registry",
        "images:",
        `  "${proxy.host}/src/app:1":`,
        "    targets: [dst]",
        "log:",
        `  dir: ${dir}/logs`,
      ].join("\n") + "\n",
    );
    const env = { HOME: dir };
    const config = await loadConfig(`${dir}/config.yaml`, { env, cwd: dir });
    const secrets = new Secrets();
    const hosts = new RegistryHosts({
      hosts: [...Object.values(config.registries), ...Object.values(config.sources)],
      ...hostLimits(config.operation),
      secrets,
    });
    const logger = await Logger.open({ settings: config.log, secrets, consoleOnly: true });
    let calls = 0;
    const logging = loginAll({
      config,
      images: config.images,
      hosts,
      logger,
      secrets,
      env,
      interactive: false,
      say: () => {},
      signal: AbortSignal.timeout(10_000),
      onRequested: () => {
        calls++;
        release();
      },
    });
    // Without the call the held request never ends: the login fails at the signal's deadline.
    const logins = await logging;
    assert.equal(calls, 1, "called once");
    assert.deepEqual([...logins.broken.keys()], [], "the login worked");
    assert.ok(seen >= 1, "the login request went through the proxy");
    hosts.closeAll();
    await logger.close();
  } finally {
    release();
    await Deno.remove(dir, { recursive: true });
  }
});
