/**
 * Time bounds of the one transport (http_transport.ts), against a small trickling server on
 * loopback that sends one byte every 100 ms: never silent long enough for the timeout on silence,
 * never done. A metadata answer (manifest GET, tag-list page, referrers answer, token answer) ends
 * at the metadata deadline (`operation.requestDeadline`); a blob stream at its minimum rate after
 * the grace (`operation.minBlobRate`, `operation.blobRateGrace`). Each step has its own outer
 * deadline (within), so a regressed bound fails instead of hanging. The CLI step shows the config
 * reaching the transport.
 */
import assert from "node:assert/strict";
import { stringify } from "yaml";
import { MirrorError } from "../../lib/errors.ts";
import { Secrets } from "../../lib/log/redact.ts";
import { RegistryClient } from "../../lib/registry/registry_client.ts";
import { within } from "../support/bounded.ts";
import { runCli } from "../support/cli.ts";
import { startRecordingHost } from "../support/recording_host.ts";
import { registryBinaryAvailable, startRegistry } from "../support/registry.ts";
import { trickleBody } from "../support/trickle.ts";
import { registryTarget } from "../support/e2e_kit.ts";

const DIGEST = `sha256:${"a".repeat(64)}`;
const MANIFEST = "application/vnd.oci.image.manifest.v1+json";

/** A registry whose every answer trickles; `/v2/locked/...` wants a token from a trickling realm. */
function trickleRegistry() {
  return startRecordingHost({
    hostname: "127.0.0.1",
    handle(req, self) {
      const path = new URL(req.url).pathname;
      const slow = (type: string) =>
        new Response(trickleBody(100, { byte: path.includes("/blobs/") ? "x" : " " }), {
          headers: { "content-type": type },
        });
      if (path === "/v2/") return new Response("{}");
      if (path === "/token") return slow("application/json");
      if (path.startsWith("/v2/locked/") && !req.headers.get("authorization")) {
        return new Response(null, {
          status: 401,
          headers: { "www-authenticate": `Bearer realm="${self.url}/token",service="t"` },
        });
      }
      if (req.method === "HEAD" && path.includes("/manifests/")) {
        return new Response(null, {
          headers: {
            "content-type": MANIFEST,
            "docker-content-digest": DIGEST,
            "content-length": "300",
          },
        });
      }
      if (path.includes("/blobs/")) return slow("application/octet-stream");
      if (path.includes("/referrers/")) return slow("application/vnd.oci.image.index.v1+json");
      if (path.includes("/manifests/")) return slow(MANIFEST);
      return slow("application/json");
    },
  });
}

Deno.test("a trickling metadata answer ends at the metadata deadline; a trickling blob at its minimum rate", async (t) => {
  await using host = trickleRegistry();
  const client = new RegistryClient({
    host: host.host,
    scheme: "http",
    secrets: new Secrets(),
    maxRetries: 0,
    // Silence would need 5 s; the trickle is never silent that long.
    timeoutMs: 5_000,
    deadlineMs: 1_000,
    minBlobRate: 1_000,
    blobRateGraceMs: 500,
  });
  try {
    const metadata = async (what: string, call: (signal: AbortSignal) => Promise<unknown>) => {
      await t.step(what, () =>
        within(8_000, what, async (signal) => {
          const started = performance.now();
          await assert.rejects(() => call(signal), (error: unknown) => {
            assert.match(
              String(error instanceof Error ? error.message : error),
              /no complete answer within 1 s \(operation\.requestDeadline\)/,
            );
            return true;
          });
          const took = performance.now() - started;
          assert.ok(took < 3_000, `${what} took ${took} ms`);
        }));
    };
    await metadata("a manifest GET", (signal) => client.manifestGet("team/app", "1", signal));
    await metadata("a tag-list page", (signal) => client.tagList("team/app", signal));
    await metadata(
      "a referrers answer",
      (signal) => client.referrersGet("team/app", DIGEST, { signal }),
    );

    await t.step(
      "a blob stream under the minimum rate after the grace",
      () =>
        within(8_000, "a trickling blob", async (signal) => {
          const started = performance.now();
          const blob = await client.blobGet("team/app", DIGEST, signal);
          await assert.rejects(() => new Response(blob.body).arrayBuffer(), (error: unknown) => {
            assert.match(
              String(error instanceof Error ? error.message : error),
              /under the minimum of 1000 bytes\/s \(operation\.minBlobRate\)/,
            );
            return true;
          });
          const took = performance.now() - started;
          // The grace (0.5 s), then one window (0.5 s) at 10 bytes/s: failed at about 1 s.
          assert.ok(took >= 900 && took < 3_000, `the blob took ${took} ms`);
        }),
    );
    // Last: after a challenge the client asks the realm for every repository.
    await metadata("a token answer", (signal) => client.manifestGet("locked/app", "1", signal));
  } finally {
    client.close();
  }
});

const skip = registryBinaryAvailable() ? "" : " (ignored: docker-registry is not installed)";

Deno.test({
  name:
    `mirror: operation.requestDeadline from the config ends a trickling source's manifest GET${skip}`,
  ignore: Boolean(skip),
  async fn() {
    await using source = trickleRegistry();
    await using dst = await startRegistry();
    const dir = await Deno.makeTempDir({ prefix: "bb-deadline-" });
    try {
      await Deno.writeTextFile(
        `${dir}/config.yaml`,
        stringify({
          registries: { dr: registryTarget(dst, { namespace: "m" }) },
          log: { dir: "./logs" },
          operation: {
            engine: "registry",
            apiTimeout: 5,
            requestDeadline: 1,
            maxRetries: 0,
            updateLatest: false,
          },
          images: { [`${source.host}/team/app:1`]: { targets: ["dr"] } },
        }),
      );
      const started = performance.now();
      const run = await runCli(["mirror", "--config", "config.yaml", "--non-interactive"], {
        cwd: dir,
        timeoutMs: 30_000,
      });
      const took = performance.now() - started;
      const log = await Deno.readTextFile(`${dir}/logs/bananna-bot.log`);
      assert.equal(run.code, 1, run.stdout + run.stderr);
      assert.match(
        log,
        /\[IMAGE_PULL_FAILED\] .*no complete answer within 1 s \(operation\.requestDeadline\)/,
      );
      assert.ok(took < 20_000, `the run took ${took} ms`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    `a stalled source during an upload is the source's failure (IMAGE_PULL_FAILED), not a push failure${skip}`,
  ignore: Boolean(skip),
  async fn(t) {
    await using source = trickleRegistry();
    await using dst = await startRegistry();
    const limits = { timeoutMs: 5_000, minBlobRate: 1_000, blobRateGraceMs: 500 };
    const from = new RegistryClient({
      host: source.host,
      scheme: "http",
      secrets: new Secrets(),
      maxRetries: 0,
      ...limits,
    });
    const to = new RegistryClient({
      host: dst.host,
      scheme: "http",
      secrets: new Secrets(),
      maxRetries: 0,
      ...limits,
    });
    try {
      // A small blob goes in one PUT, a large one in a streamed PATCH: both name the source.
      for (const size of [1024 * 1024, 16 * 1024 * 1024]) {
        await t.step(
          `a blob of ${size} bytes`,
          () =>
            within(10_000, "a stalled source", async (signal) => {
              await assert.rejects(
                () =>
                  to.blobUpload(
                    "team/app",
                    { digest: DIGEST, size },
                    async (reading) => (await from.blobGet("team/app", DIGEST, reading)).body,
                    { signal },
                  ),
                (error: unknown) => {
                  assert.ok(error instanceof MirrorError, String(error));
                  assert.equal(error.code, "IMAGE_PULL_FAILED", error.message);
                  assert.match(error.message, new RegExp(source.host.replace(/\./g, "\\.")));
                  assert.match(error.message, /operation\.minBlobRate/);
                  return true;
                },
              );
            }),
        );
      }
    } finally {
      from.close();
      to.close();
    }
  },
});
