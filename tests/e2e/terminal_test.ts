/**
 * What a person sees: on a real terminal (tmux) a slow copy shows a status line with the image and
 * the bytes moved, log lines are coloured, and the status line is gone before the statistics;
 * NO_COLOR removes every colour; through a pipe (cron, CI) the output is plain lines without a
 * single control character.
 */
import assert from "node:assert/strict";
import { stringify } from "yaml";
import { cliArgv, runCli } from "../support/cli.ts";
import { startFaultProxy } from "../support/fault_proxy.ts";
import { pushTestImage } from "../support/images.ts";
import { registryBinaryAvailable, startRegistry } from "../support/registry.ts";
import { hasTmux, screenOf, startInTmux, tmux, waitFor } from "../support/tmux.ts";
import { registryTarget } from "../support/e2e_kit.ts";

const why = !registryBinaryAvailable()
  ? " (ignored: docker-registry is not installed)"
  : !hasTmux()
  ? " (ignored: tmux is not installed)"
  : "";

/** SGR colour/attribute sequences, as tmux `capture-pane -e` writes them. */
// deno-lint-ignore no-control-regex
const SGR = /\x1b\[[0-9;]*m/;

Deno.test({
  name: `mirror output: progress and colour on a terminal, none with NO_COLOR or a pipe${why}`,
  ignore: Boolean(why),
  async fn(t) {
    await using src = await startRegistry();
    await using dst = await startRegistry();
    // One 1 MiB layer; the proxy trickles every blob GET at 32 KiB per 100 ms (~3 s a copy).
    await pushTestImage(src, "team/app:1", {
      kind: "oci",
      seed: 91,
      layers: 1,
      layerSize: 1024 * 1024,
    });
    await using proxy = startFaultProxy(src, [{
      method: "GET",
      path: /\/blobs\/sha256:/,
      times: 100,
      fault: { kind: "trickle", chunkBytes: 32 * 1024, pauseMs: 100 },
    }]);
    const dir = await Deno.makeTempDir({ prefix: "bb-terminal-" });
    const configFor = async (namespace: string) => {
      await Deno.writeTextFile(
        `${dir}/config.yaml`,
        stringify({
          registries: { dr: registryTarget(dst, { namespace }) },
          log: { dir: "./logs" },
          operation: { engine: "registry" },
          images: { [`${proxy.host}/team/app:1`]: { targets: ["dr"] } },
        }),
      );
    };
    const inTmux = (env: string[]) =>
      startInTmux(
        dir,
        cliArgv(["mirror", "--config", "config.yaml", "--non-interactive"]),
        ["-u", "NO_COLOR", ...env],
      );
    try {
      await t.step("a terminal shows the copy under way, with bytes, in colour", async () => {
        await configFor("tty");
        const session = await inTmux(["TERM=xterm-256color"]);
        try {
          const during = await waitFor(
            session,
            /\[0\/1\] \S+team\/app:1 -> dr \d+(\.\d)? (KB|MB)/,
            30_000,
            50,
          );
          assert.doesNotMatch(during, /EXIT=/, "the status line shows while the copy runs");
          const end = await waitFor(session, /EXIT=\d+/);
          assert.match(end, /EXIT=0/, end);
          assert.match(end, /IMAGE_PUSHED/);
          assert.match(end, /Bytes uploaded:\s+1\.0 MB/);
          assert.doesNotMatch(end, /\[0\/1\]/, "the status line was cleared");
          assert.match(await screenOf(session, true), SGR, "colour on a terminal");
        } finally {
          await tmux("kill-session", "-t", session);
        }
      });

      await t.step("NO_COLOR on a terminal: the same lines, no colour", async () => {
        await configFor("nocolor");
        const session = await inTmux(["TERM=xterm-256color", "NO_COLOR=1"]);
        try {
          const end = await waitFor(session, /EXIT=\d+/);
          assert.match(end, /EXIT=0/, end);
          assert.match(end, /IMAGE_PUSHED/);
          assert.doesNotMatch(await screenOf(session, true), SGR, "NO_COLOR is honoured");
        } finally {
          await tmux("kill-session", "-t", session);
        }
      });

      await t.step("through a pipe: plain lines, no control characters", async () => {
        await configFor("pipe");
        const run = await runCli(["mirror", "--config", "config.yaml", "--non-interactive"], {
          cwd: dir,
          env: { NO_COLOR: "" },
        });
        assert.equal(run.code, 0, run.stderr);
        const all = run.stdout + run.stderr;
        assert.match(all, /\[INFO\] \[IMAGE_PUSHED\] Mirror: /);
        // deno-lint-ignore no-control-regex
        assert.doesNotMatch(all, /[\x00-\x08\x0b-\x1f\x7f]/, "a control character in piped output");
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
