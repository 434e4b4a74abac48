/**
 * One notification per run: real mirror runs (CLI subprocess, real registries) with
 * `notify` pointing at a local receiver. Exactly one notification per run (a 503 is retried: two
 * requests, one notification), the totals and the failed entries capped at 20 with the count of
 * the rest, `${VAR}` in a header resolved and never in the body or the log, the registry password
 * nowhere in the body, nothing sent when `on` does not match, a receiver that keeps failing is a
 * WARNING that leaves the exit code alone, the Slack shape, and a run stopped by a refused login.
 */
import assert from "node:assert/strict";
import { pushTestImage } from "../support/images.ts";
import { startRecordingHost } from "../support/recording_host.ts";
import { registryBinaryAvailable, startRegistry } from "../support/registry.ts";
import { silentAnswer } from "../support/trickle.ts";
import { startWebhookReceiver, type WebhookReceiver } from "../support/webhook_receiver.ts";
import { mirror, registryTarget, startDestination } from "../support/e2e_kit.ts";

const skip = registryBinaryAvailable() ? "" : " (ignored: docker-registry is not installed)";

const TOKEN = "hook-token-5a7c9e1b3d";

Deno.test({
  name: `notify: one request per run, capped entries, headers, retries, slack${skip}`,
  ignore: Boolean(skip),
  async fn(t) {
    await using src = await startRegistry({ auth: "none" });
    await pushTestImage(src, "team/app:1.0", { kind: "oci", seed: 41 });
    const good = { [`${src.host}/team/app:1.0`]: { targets: ["dr"] } };
    const missing: Record<string, unknown> = {};
    for (let i = 1; i <= 22; i++) missing[`${src.host}/team/gone:${i}`] = { targets: ["dr"] };
    /**
     * One step's own destination and run dir (so it reads the log of its own run only);
     * `seeded`: app:1.0 and latest are there already, as a run of `good` leaves them.
     */
    const startStep = async (seeded = false) => {
      const dest = await startDestination();
      const dst = dest.reg;
      if (seeded) {
        for (const tag of ["1.0", "latest"]) {
          await pushTestImage(dst, `mirror/app:${tag}`, { kind: "oci", seed: 41 });
        }
      }
      const password = dst.password ?? "";
      const vars = { DST_PASSWORD: password, HOOK_TOKEN: TOKEN };
      const config = (
        hook: WebhookReceiver,
        notify: Record<string, unknown>,
        images: Record<string, unknown>,
        operation: Record<string, unknown> = {},
      ) => ({
        registries: {
          dr: registryTarget(dst, { login: true }),
        },
        log: { dir: "./logs", level: "DEBUG" },
        operation: { engine: "registry", retryDelay: 0.05, maxRetries: 2, ...operation },
        notify: { webhook: `${hook.url}/hooks/T000/B000/secretpath`, ...notify },
        images,
      });
      const logText = () => Deno.readTextFile(`${dest.dir}/logs/bananna-bot.log`);
      return Object.assign(dest, { password, vars, config, logText });
    };
    await t.step("a failing run: 503 retried, one notification, capped entries", async () => {
      await using hook = startWebhookReceiver((n) => (n === 1 ? 503 : 200));
      await using d = await startStep();
      const { dir, password, vars, config, logText } = d;
      const run = await mirror(
        dir,
        config(hook, {
          on: ["failure"],
          headers: { Authorization: "Bearer ${HOOK_TOKEN}", "X-Team": "mirror" },
        }, { ...good, ...missing }),
        { env: vars },
      );
      assert.equal(run.code, 1, run.stderr);
      assert.deepEqual(hook.requests.map((r) => `${r.method} ${r.path}`), [
        "POST /hooks/T000/B000/secretpath",
        "POST /hooks/T000/B000/secretpath",
      ]);
      assert.equal(hook.requests[0].body, hook.requests[1].body, "the retry sends the same");
      const req = hook.requests[1];
      assert.equal(req.headers["authorization"], `Bearer ${TOKEN}`);
      assert.equal(req.headers["x-team"], "mirror");
      assert.equal(req.headers["content-type"], "application/json");
      const body = JSON.parse(req.body);
      assert.equal(body.outcome, "failure");
      assert.equal(body.exitCode, 1);
      assert.deepEqual(body.reasons, ["failure"]);
      assert.deepEqual(body.totals, {
        pushed: 1,
        exists: 0,
        drift: 0,
        failed: 22,
        deferred: 0,
        skipped: 0,
      });
      assert.equal(body.entries.length, 20);
      assert.equal(body.entriesOmitted, 2);
      assert.equal(body.entries[0].status, "failed");
      assert.equal(body.entries[0].code, "IMAGE_NOT_FOUND");
      assert.match(body.entries[0].source, /\/team\/gone:\d+$/);
      assert.ok(body.durationSeconds > 0);
      assert.deepEqual(body.reportPaths, [`${dir}/logs/last-report.json`, `${dir}/report.json`]);
      for (const secret of [TOKEN, password, "secretpath"]) {
        assert.ok(!req.body.includes(secret), `${secret} in the body`);
      }
      const log = await logText();
      assert.match(log, /MIRROR_RETRY.*webhook http:\/\/127\.0\.0\.1:\d+\/…: POST answered 503/);
      assert.match(
        log,
        /Notification sent to webhook http:\/\/127\.0\.0\.1:\d+\/… \(failure; 2 attempts\)/,
      );
      for (const secret of [TOKEN, "secretpath"]) {
        assert.ok(!log.includes(secret), `${secret} in the log`);
      }
    });

    await t.step("on: [failure] with a clean run sends nothing", async () => {
      await using hook = startWebhookReceiver();
      await using d = await startStep(true);
      const { dir, vars, config } = d;
      const run = await mirror(dir, config(hook, { on: ["failure"] }, good), {
        env: vars,
      });
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.report?.totals.exists, 1);
      assert.deepEqual(hook.requests, []);
    });

    await t.step("a receiver that keeps failing: WARNING, exit code unchanged", async () => {
      await using hook = startWebhookReceiver(() => 500);
      await using d = await startStep();
      const { dir, vars, config, logText } = d;
      const run = await mirror(dir, config(hook, { on: ["always"] }, good), {
        env: vars,
      });
      assert.equal(run.code, 0, run.stderr);
      assert.equal(hook.requests.length, 3, "maxRetries 2: three attempts");
      assert.match(
        await logText(),
        /WARNING.*MIRROR_NOTIFY_FAILED.*webhook http:\/\/127\.0\.0\.1:\d+\/…: POST answered 500.*\(after 3 attempts\); the run's outcome is unchanged/,
      );
    });

    await t.step("a receiver that is down: WARNING, exit code unchanged", async () => {
      const hook = startWebhookReceiver();
      await hook.stop();
      await using d = await startStep();
      const { dir, vars, config, logText } = d;
      const run = await mirror(
        dir,
        config(hook, { on: ["always"] }, good, { maxRetries: 0 }),
        { env: vars },
      );
      assert.equal(run.code, 0, run.stderr);
      assert.match(
        await logText(),
        /WARNING.*MIRROR_NOTIFY_FAILED.*webhook http:\/\/127\.0\.0\.1:\d+\/…: /,
      );
    });

    await t.step("format slack: text and blocks", async () => {
      await using hook = startWebhookReceiver();
      await using d = await startStep(true);
      const { dir, vars, config } = d;
      const run = await mirror(
        dir,
        config(hook, { on: ["drift", "failure"], format: "slack" }, {
          ...good,
          [`${src.host}/team/gone:1`]: { targets: ["dr"] },
        }),
        { env: vars },
      );
      assert.equal(run.code, 1, run.stderr);
      assert.equal(hook.requests.length, 1);
      const body = JSON.parse(hook.requests[0].body);
      assert.deepEqual(Object.keys(body).sort(), ["blocks", "text"]);
      assert.match(
        body.text,
        /^bananna-bot mirror run failed \(exit 1\) \(.*config\.yaml\): 0 pushed, 1 already mirrored, 0 drift, 1 failed, 0 deferred, 0 not started; [\d.]+ s$/,
      );
      assert.deepEqual(body.blocks.map((b: { type: string }) => b.type), [
        "header",
        "section",
        "section",
        "context",
      ]);
      assert.deepEqual(body.blocks[0].text, {
        type: "plain_text",
        text: "bananna-bot: mirror run failed",
      });
      assert.match(body.blocks[1].text.text, /\*Failed:\* 1/);
      assert.match(
        body.blocks[2].text.text,
        /^• \*failed\* `.*\/mirror\/gone:1` \(IMAGE_NOT_FOUND\)/,
      );
      assert.equal(body.blocks[2].text.type, "mrkdwn");
    });

    await t.step("a run stopped by a refused login is notified as not started", async () => {
      await using hook = startWebhookReceiver();
      await using d = await startStep();
      const { dir, vars, config } = d;
      const run = await mirror(
        dir,
        config(hook, { on: ["failure"] }, good, { continueOnError: false }),
        { env: { ...vars, DST_PASSWORD: "wrong-password-77" } },
      );
      assert.equal(run.code, 1, run.stderr);
      assert.equal(hook.requests.length, 1);
      const body = JSON.parse(hook.requests[0].body);
      assert.equal(body.outcome, "not-started");
      assert.equal(body.error.code, "LOGIN_FAILED");
      // The report that says the run stopped (stopped_report.ts), not the previous run's.
      assert.deepEqual(body.reportPaths, [`${dir}/logs/last-report.json`, `${dir}/report.json`]);
      assert.ok(!hook.requests[0].body.includes("wrong-password-77"));
    });
  },
});

/**
 * A raw HTTP/1.1 receiver on 127.0.0.1 (Deno.serve sends no reason phrase of its own choosing):
 * every request is answered with `statusLine` and `headers`, and recorded.
 */
function startRawReceiver(answer: (path: string) => { statusLine: string; headers?: string[] }) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const requests: string[] = [];
  const serve = async () => {
    for await (const conn of listener) {
      (async () => {
        const buf = new Uint8Array(64 * 1024);
        let text = "";
        while (!text.includes("\r\n\r\n")) {
          const n = await conn.read(buf).catch(() => null);
          if (n === null) break;
          text += new TextDecoder().decode(buf.subarray(0, n));
        }
        const [method, path] = text.split(" ");
        requests.push(`${method} ${path}`);
        const { statusLine, headers = [] } = answer(path ?? "/");
        const head = [statusLine, ...headers, "content-length: 0", "connection: close", "", ""];
        await conn.write(new TextEncoder().encode(head.join("\r\n"))).catch(() => {});
        conn.close();
      })();
    }
  };
  const done = serve().catch(() => {});
  const url = `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`;
  return {
    url,
    requests,
    async [Symbol.asyncDispose]() {
      listener.close();
      await done;
    },
  };
}

Deno.test({
  name:
    `notify and Pushgateway: no redirect to another origin is followed; a Location echoing the header token leaves it in neither the log nor the report${skip}`,
  ignore: Boolean(skip),
  async fn(t) {
    await using src = await startRegistry({ auth: "none" });
    await using dst = await startRegistry({ auth: "none" });
    const dir = await Deno.makeTempDir({ prefix: "bb-notify-origin-" });
    await pushTestImage(src, "team/app:1.0", { kind: "oci", seed: 43 });
    const path = "/hooks/T000/B000/pathsecret7f3e";
    const config = (hookUrl: string, extra: Record<string, unknown> = {}) => ({
      registries: { dr: registryTarget(dst) },
      log: { dir: "./logs", level: "DEBUG" },
      operation: { engine: "registry", retryDelay: 0.05, maxRetries: 1 },
      notify: {
        webhook: `${hookUrl}${path}`,
        on: ["always"],
        headers: { Authorization: "Bearer ${HOOK_TOKEN}" },
      },
      images: { [`${src.host}/team/app:1.0`]: { targets: ["dr"] } },
      ...extra,
    });
    try {
      await t.step(
        "307 to another origin: the webhook and the Pushgateway are not followed",
        async () => {
          await using catcher = startRecordingHost({ handle: () => new Response("ok") });
          await using hook = startRawReceiver(() => ({
            statusLine: "HTTP/1.1 307 Temporary Redirect",
            headers: [`location: ${catcher.url}/caught`],
          }));
          const run = await mirror(
            dir,
            config(hook.url, { metrics: { pushgateway: `${hook.url}/pushgateway` } }),
            { env: { HOOK_TOKEN: TOKEN } },
          );
          assert.equal(run.code, 0, run.stderr);
          assert.ok(hook.requests.some((r) => r.startsWith("POST /hooks/")), hook.requests.join());
          assert.ok(hook.requests.some((r) => r.includes("/pushgateway")), hook.requests.join());
          assert.deepEqual(catcher.requests, [], "nothing reached the other origin");
        },
      );
      await t.step(
        "a redirect whose Location echoes the header token: masked in log and report",
        async () => {
          // Deno's fetch keeps only the canonical reason phrase, so a receiver cannot echo through
          // the status text; the refused cross-origin Location is named in the message instead.
          await Deno.remove(`${dir}/logs`, { recursive: true }).catch(() => {});
          await using catcher = startRecordingHost({ handle: () => new Response("ok") });
          await using hook = startRawReceiver(() => ({
            statusLine: "HTTP/1.1 307 Temporary Redirect",
            headers: [`location: ${catcher.url}/echo/${TOKEN}/refused`],
          }));
          const run = await mirror(dir, config(hook.url), { env: { HOOK_TOKEN: TOKEN } });
          assert.equal(run.code, 0, run.stderr);
          assert.deepEqual(hook.requests, [`POST ${path}`]);
          assert.deepEqual(catcher.requests, []);
          const log = await Deno.readTextFile(`${dir}/logs/bananna-bot.log`);
          assert.match(log, /MIRROR_NOTIFY_FAILED.*\/echo\/\*+\/refused/, log);
          const everything = [log, run.stdout, run.stderr, JSON.stringify(run.report)].join("\n");
          assert.ok(!everything.includes(TOKEN), "the header token leaked");
          assert.ok(!everything.includes("pathsecret7f3e"), "the webhook path leaked");
        },
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    `notify: a webhook that accepts and never answers costs notify.deadline, then the run ends${skip}`,
  ignore: Boolean(skip),
  async fn() {
    await using src = await startRegistry({ auth: "none" });
    await using dst = await startRegistry({ auth: "none" });
    await pushTestImage(src, "team/app:1.0", { kind: "oci", seed: 43 });
    const silence = new AbortController();
    await using hook = startRecordingHost({
      hostname: "127.0.0.1",
      handle: () => silentAnswer(silence.signal),
    });
    const dir = await Deno.makeTempDir({ prefix: "bb-notify-silent-" });
    try {
      const started = performance.now();
      const run = await mirror(dir, {
        registries: { dr: registryTarget(dst) },
        log: { dir: "./logs" },
        // Silence alone: 4 attempts x 30 s, plus the waits between them.
        operation: { engine: "registry", apiTimeout: 30, maxRetries: 3, retryDelay: 1 },
        notify: { webhook: `${hook.url}/hook`, on: ["always"], deadline: 1 },
        images: { [`${src.host}/team/app:1.0`]: { targets: ["dr"] } },
      }, { timeoutMs: 60_000 });
      const took = performance.now() - started;
      assert.equal(run.code, 0, run.stderr);
      const log = await Deno.readTextFile(`${dir}/logs/bananna-bot.log`);
      assert.match(log, /\[MIRROR_NOTIFY_FAILED\] .*no answer within 1 s \(notify\.deadline\)/);
      assert.equal(hook.requests.length, 1);
      assert.ok(took < 20_000, `the run took ${took} ms`);
    } finally {
      silence.abort();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
