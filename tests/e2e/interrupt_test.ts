/**
 * Ctrl-C during a run: new work stops, running copies are aborted, the report is written and
 * marked interrupted, the exit code is 130, and no tag exists that the report does not call pushed
 * (a tag is only ever written by a complete manifest PUT).
 */
import assert from "node:assert/strict";
import { stringify } from "yaml";
import type { Report } from "../../lib/mirror/report.ts";
import { cliArgv } from "../support/cli.ts";
import { startFaultProxy } from "../support/fault_proxy.ts";
import { pushTestImage } from "../support/images.ts";
import { registryBinaryAvailable, startRegistry } from "../support/registry.ts";
import { registryTarget } from "../support/e2e_kit.ts";

const skip = registryBinaryAvailable() ? "" : " (ignored: docker-registry is not installed)";

Deno.test({
  name: `SIGINT during a run: exit 130, report marked interrupted, no partial tag${skip}`,
  ignore: Boolean(skip),
  async fn() {
    await using src = await startRegistry();
    await using dst = await startRegistry();
    for (let i = 0; i < 6; i++) {
      await pushTestImage(src, `team/app${i}:1`, { kind: "oci", seed: 90 + i });
    }
    // Every blob GET from the source takes 400 ms, so the run is still busy when the signal comes.
    await using slow = startFaultProxy(src, [
      { method: "GET", path: /\/blobs\//, times: 1000, fault: { kind: "delay", ms: 400 } },
    ]);
    const dir = await Deno.makeTempDir({ prefix: "bb-int-" });
    const images = Object.fromEntries(
      Array.from({ length: 6 }, (_, i) => [`${slow.host}/team/app${i}:1`, { targets: ["dr"] }]),
    );
    await Deno.writeTextFile(
      `${dir}/config.yaml`,
      stringify({
        registries: { dr: registryTarget(dst, { namespace: "m" }) },
        log: { dir: "./logs" },
        operation: { engine: "registry", concurrency: 1, updateLatest: false },
        images,
      }),
    );
    try {
      const [cmd, ...args] = cliArgv([
        "mirror",
        "--config",
        "config.yaml",
        "--report",
        "report.json",
      ]);
      const child = new Deno.Command(cmd, {
        args,
        cwd: dir,
        env: { NO_COLOR: "1" },
        stdout: "piped",
        stderr: "piped",
      })
        .spawn();
      const decoder = new TextDecoder();
      let seen = "";
      const reader = child.stdout.getReader();
      while (!/IMAGE_PUSHED/.test(seen)) {
        const { done, value } = await reader.read();
        if (done) break;
        seen += decoder.decode(value);
      }
      child.kill("SIGINT");
      const rest = await new Response(
        new ReadableStream({
          pull: async (c) => {
            const { done, value } = await reader.read();
            if (done) c.close();
            else c.enqueue(value);
          },
        }),
      ).text();
      const status = await child.status;
      const stderr = await new Response(child.stderr).text();
      assert.equal(status.code, 130, seen + rest + stderr);
      const report: Report = JSON.parse(await Deno.readTextFile(`${dir}/report.json`));
      assert.equal(report.interrupted, true);
      const pushed = report.entries.filter((e) => e.status === "pushed").map((e) => e.destination);
      assert.ok(pushed.length >= 1 && pushed.length < 6, `pushed ${pushed.length}`);
      assert.ok(report.entries.some((e) => e.code === "MIRROR_INTERRUPTED"));
      // Only the reported pushes left a tag.
      const tagged: string[] = [];
      for (let i = 0; i < 6; i++) {
        const res = await fetch(`${dst.url}/v2/m/app${i}/manifests/1`, {
          method: "HEAD",
          headers: { accept: "application/vnd.oci.image.manifest.v1+json" },
        });
        await res.body?.cancel();
        if (res.status === 200) tagged.push(`${dst.host}/m/app${i}:1`);
      }
      assert.deepEqual(tagged.sort(), pushed.sort());
      assert.match(
        await Deno.readTextFile(`${dir}/logs/bananna-bot.log`),
        /\[MIRROR_INTERRUPTED\]/,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
