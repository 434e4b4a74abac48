// deno-lint-ignore-file no-console
/**
 * The docker engine against a real Docker engine (Debian dockerd 20.10 via tests/support/dockerd.ts,
 * one daemon for the whole file) and real docker-registry instances on loopback.
 *
 * Measured facts these tests pin down:
 * - docker recompresses layers when it pushes to another registry: the destination manifest and
 *   layer digests differ from the source's, the config digest (image ID) stays.
 * - killing the docker CLI cancels the pull inside dockerd: a pull whose CLI was killed never
 *   reaches the registry afterwards (dockerd otherwise falls back from https to http after its
 *   10 s TLS handshake timeout and completes the pull).
 */
import assert from "node:assert/strict";
import { MirrorError } from "../../lib/errors.ts";
import { Secrets } from "../../lib/log/redact.ts";
import type { EngineEvent } from "../../lib/engine/engine.ts";
import { DockerEngine, type DockerEngineOptions } from "../../lib/engine/docker_engine.ts";
import { parseReference } from "../../lib/registry/reference.ts";
import { RegistryClient } from "../../lib/registry/registry_client.ts";
import {
  dockerdAvailability,
  listProcesses,
  mountsUnder,
  startDockerd,
  type TestDockerd,
} from "../support/dockerd.ts";
import { startHookProxy } from "../support/hook_proxy.ts";
import { pushTestImage, skopeoInspectRaw } from "../support/images.ts";
import { registryBinaryAvailable, startRegistry, type TestRegistry } from "../support/registry.ts";

const availability = await dockerdAvailability();
const reason = !availability.ok
  ? availability.reason
  : !registryBinaryAvailable()
  ? "docker-registry not installed"
  : undefined;
const suffix = reason ? ` (ignored: ${reason})` : "";

/** Every argv any engine in this file started docker with. */
const allArgv: string[][] = [];
/** Every password used in this file. */
const passwords = new Set<string>();

/** Registry clients by host, with credentials for the htpasswd registries. */
class Clients {
  #clients = new Map<string, RegistryClient>();
  #registries = new Map<string, { username?: string; password?: string }>();
  add(reg: { host: string; username?: string; password?: string }): void {
    this.#registries.set(reg.host, reg);
  }
  clientFor = (host: string): RegistryClient => {
    let client = this.#clients.get(host);
    if (!client) {
      const reg = this.#registries.get(host);
      client = new RegistryClient({
        host,
        scheme: "http",
        credential: reg?.username
          ? {
            kind: "basic",
            username: reg.username,
            password: reg.password as string,
            source: "config",
          }
          : null,
        timeoutMs: 10_000,
        maxRetries: 0,
        retryDelayMs: 10,
        secrets: new Secrets(),
      });
      this.#clients.set(host, client);
    }
    return client;
  };
  close(): void {
    for (const client of this.#clients.values()) client.close();
    this.#clients.clear();
  }
}

function engineFor(
  dockerd: TestDockerd,
  clients: Clients,
  options: Partial<DockerEngineOptions> & { calls?: string[][] } = {},
): DockerEngine {
  const { calls, ...rest } = options;
  return new DockerEngine({
    clientFor: clients.clientFor,
    dockerTimeoutMs: 60_000,
    maxRetries: 0,
    retryDelayMs: 10,
    cleanupLocalImages: false,
    env: { ...Deno.env.toObject(), ...dockerd.env },
    secrets: new Secrets(),
    onDockerCall: (args) => {
      allArgv.push(args);
      calls?.push(args);
    },
    ...rest,
  });
}

function ref(reg: TestRegistry, repoTag: string) {
  return parseReference(`${reg.host}/${repoTag}`);
}

function steps(events: EngineEvent[]): string[] {
  return events.flatMap((e) => (e.kind === "step" ? [e.code] : []));
}

async function rejectsWith(promise: Promise<unknown>, code: string): Promise<MirrorError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof MirrorError, `expected MirrorError ${code}, got ${error}`);
    assert.equal(error.code, code, error.message);
    return error;
  }
  assert.fail(`expected ${code}, but it resolved`);
}

/** Live docker CLI processes whose command line mentions `needle`, with their environment. */
async function dockerProcesses(
  needle: string,
): Promise<{ pid: number; args: string; environ: string }[]> {
  const out = [];
  for (const p of await listProcesses()) {
    if (!/^(\S*\/)?docker\s/.test(p.args) || !p.args.includes(needle)) continue;
    const environ = await new Deno.Command("cat", {
      args: [`/proc/${p.pid}/environ`],
      stdout: "piped",
      stderr: "null",
    }).output();
    out.push({ pid: p.pid, args: p.args, environ: new TextDecoder().decode(environ.stdout) });
  }
  return out;
}

/**
 * A registry front that stalls docker: TLS connections (dockerd tries https first, even for
 * loopback registries) are accepted and never answered; plain http (the registry client, and
 * dockerd's http fallback) is forwarded to the real registry behind. Records what dockerd sent.
 */
function startStallingProxy(upstream: TestRegistry) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const conns = new Set<Deno.Conn>();
  const tasks = new Set<Promise<void>>();
  const dockerRequests: string[] = [];
  let stalled = 0;
  let stalledOpen = 0;
  const [upHost, upPort] = upstream.host.split(":");
  const handle = async (conn: Deno.Conn) => {
    conns.add(conn);
    try {
      const buf = new Uint8Array(64 * 1024);
      const n = await conn.read(buf);
      if (n === null) return;
      if (buf[0] === 0x16) {
        // A TLS ClientHello: never answer; wait for the peer to give up.
        stalled++;
        stalledOpen++;
        try {
          while ((await conn.read(buf)) !== null) { /* drain */ }
        } finally {
          stalledOpen--;
        }
        return;
      }
      const head = new TextDecoder().decode(buf.subarray(0, n));
      if (/^user-agent:.*docker\//im.test(head)) dockerRequests.push(head.split("\r\n")[0]);
      const up = await Deno.connect({ hostname: upHost, port: Number(upPort) });
      conns.add(up);
      await up.write(buf.subarray(0, n));
      await Promise.allSettled([
        conn.readable.pipeTo(up.writable),
        up.readable.pipeTo(conn.writable),
      ]);
    } catch {
      // closed under us
    }
  };
  const serving = (async () => {
    for await (const conn of listener) {
      const task = handle(conn);
      tasks.add(task);
      task.finally(() => tasks.delete(task));
    }
  })().catch(() => {});
  return {
    host: `127.0.0.1:${port}`,
    dockerRequests,
    get stalled() {
      return stalled;
    },
    get stalledOpen() {
      return stalledOpen;
    },
    async [Symbol.asyncDispose]() {
      listener.close();
      for (const conn of conns) {
        try {
          conn.close();
        } catch {
          // closed
        }
      }
      await serving;
      await Promise.allSettled([...tasks]);
    },
  };
}

Deno.test(`DockerEngine on a real dockerd and real registries${suffix}`, {
  ignore: reason !== undefined,
}, async (t) => {
  const started = performance.now();
  await using dockerd = await startDockerd();
  console.log(`dockerd started in ${Math.round(performance.now() - started)} ms`);
  await using src = await startRegistry();
  await using dst = await startRegistry({ auth: "htpasswd" });
  passwords.add(dst.password as string);
  const clients = new Clients();
  clients.add(src);
  clients.add(dst);
  const single = await pushTestImage(src, "src/app:1.0", {
    kind: "schema2",
    seed: 11,
    layers: 2,
    layerSize: 100 * 1024,
  });
  const multi = await pushTestImage(src, "src/multi:2.0", {
    kind: "oci-index",
    seed: 12,
    layers: 1,
    layerSize: 64 * 1024,
  });

  try {
    await t.step("`prepare()` learns the daemon's platform", async () => {
      const engine = engineFor(dockerd, clients);
      await engine.prepare();
      assert.match(engine.daemonPlatform ?? "", /^linux\/[a-z0-9_]+$/);
    });

    await t.step("`login()` with a wrong password fails with LOGIN_FAILED, masked", async () => {
      const wrong = "wrong-" + crypto.randomUUID();
      passwords.add(wrong);
      const engine = engineFor(dockerd, clients);
      const error = await rejectsWith(
        engine.login(dst.host, {
          kind: "basic",
          username: dst.username as string,
          password: wrong,
          source: "config",
        }),
        "LOGIN_FAILED",
      );
      assert.match(error.message, /401|unauthorized/i);
      assert.ok(!error.message.includes(wrong));
    });

    await t.step(
      "`copy()` first run: pull, tag, push; same config, new manifest digest",
      async () => {
        const calls: string[][] = [];
        const events: EngineEvent[] = [];
        const engine = engineFor(dockerd, clients, { calls, onEvent: (e) => events.push(e) });
        await engine.prepare();
        await engine.login(dst.host, {
          kind: "basic",
          username: dst.username as string,
          password: dst.password as string,
          source: "config",
        });
        assert.deepEqual(steps(events), ["LOGIN_SUCCESS"]);
        const copyEvents: EngineEvent[] = [];
        const result = await engine.copy({
          source: ref(src, "src/app:1.0"),
          destination: ref(dst, "mirror/app:1.0"),
          onEvent: (e) => copyEvents.push(e),
        });
        assert.equal(result.status, "pushed");
        assert.deepEqual(steps(copyEvents), ["IMAGE_PULLED", "IMAGE_TAGGED", "IMAGE_PUSHED"]);
        assert.equal(calls.filter((a) => a[0] === "pull").length, 1);
        assert.equal(calls.filter((a) => a[0] === "push").length, 1);
        // The oracle: skopeo reads what the destination really holds.
        const pushed = await skopeoInspectRaw(dst, "mirror/app:1.0");
        assert.equal(result.digest, pushed.digest);
        const config = (pushed.manifest.config as { digest: string }).digest;
        assert.equal(config, single.configDigest, "same image (config digest)");
        // Documented behaviour: docker recompresses, so manifest and layer digests change.
        assert.notEqual(result.digest, single.digest);
        const layers = pushed.manifest.layers as { digest: string; size: number }[];
        for (const layer of layers) assert.ok(!single.layers.includes(layer.digest));
        const layerBytes = layers.reduce((sum, l) => sum + l.size, 0);
        assert.equal(result.bytesUploaded, layerBytes, "every layer was new at the destination");
      },
    );

    await t.step("`copy()` second run pulls nothing and runs no docker command", async () => {
      const calls: string[][] = [];
      const events: EngineEvent[] = [];
      const before = (await src.accessLog()).length;
      const engine = engineFor(dockerd, clients, { calls });
      const result = await engine.copy({
        source: ref(src, "src/app:1.0"),
        destination: ref(dst, "mirror/app:1.0"),
        onEvent: (e) => events.push(e),
      });
      assert.equal(result.status, "exists");
      assert.equal(result.digest, (await skopeoInspectRaw(dst, "mirror/app:1.0")).digest);
      assert.deepEqual(calls, []);
      assert.deepEqual(steps(events), []);
      const srcLog = (await src.accessLog()).slice(before);
      assert.ok(srcLog.length > 0, "the source was checked through the registry client");
      assert.deepEqual(srcLog.filter((l) => l.includes("/blobs/")), [], srcLog.join("\n"));
    });

    await t.step(
      "`copy()` reports IMAGE_TAG_DRIFT with both digests and runs no docker",
      async () => {
        const calls: string[][] = [];
        const engine = engineFor(dockerd, clients, { calls });
        // mirror/app:1.0 holds the single-arch image; copy the multi-arch one onto it.
        const error = await rejectsWith(
          engine.copy({
            source: ref(src, "src/multi:2.0"),
            destination: ref(dst, "mirror/app:1.0"),
            platform: "linux/amd64",
          }),
          "IMAGE_TAG_DRIFT",
        );
        assert.ok(error.message.includes(single.configDigest), error.message);
        assert.ok(error.message.includes(multi.configDigest), error.message);
        assert.deepEqual(calls, []);
      },
    );

    await t.step(
      "`copy()` replaces a mutable tag only while it still holds `replaceDigest`",
      async () => {
        const engine = engineFor(dockerd, clients);
        await engine.prepare();
        await engine.login(dst.host, {
          kind: "basic",
          username: dst.username as string,
          password: dst.password as string,
          source: "config",
        });
        const first = await engine.copy({
          source: ref(src, "src/app:1.0"),
          destination: ref(dst, "mirror/app:mutable"),
        });
        assert.equal(first.status, "pushed");
        const moved = {
          source: ref(src, "src/multi:2.0"),
          destination: ref(dst, "mirror/app:mutable"),
          platform: "linux/amd64",
        };
        await rejectsWith(
          engine.copy({ ...moved, replaceDigest: "sha256:" + "0".repeat(64) }),
          "IMAGE_TAG_DRIFT",
        );
        assert.equal((await skopeoInspectRaw(dst, "mirror/app:mutable")).digest, first.digest);
        const result = await engine.copy({ ...moved, replaceDigest: first.digest });
        assert.equal(result.status, "pushed");
        const pushed = await skopeoInspectRaw(dst, "mirror/app:mutable");
        assert.equal(pushed.digest, result.digest);
        assert.equal((pushed.manifest.config as { digest: string }).digest, multi.configDigest);
      },
    );

    await t.step(
      "`copy()` re-checks the tag right before the push: a tag pushed meanwhile is drift, no push",
      async () => {
        // Another image lands on the tag between the engine's first look (tag free) and its second
        // one, right before `docker push`: the hook runs on the second HEAD of the tag (counting
        // the ones that carry credentials: the first try of each meets the Basic challenge).
        let heads = 0;
        let other = "";
        const tagPath = "/v2/mirror/late/manifests/1.0";
        await using proxy = startHookProxy(dst, async ({ method, path, headers }) => {
          if (
            method === "HEAD" && path === tagPath && headers.has("authorization") && ++heads === 2
          ) {
            other = (await pushTestImage(dst, "mirror/late:1.0", { kind: "schema2", seed: 13 }))
              .configDigest;
          }
        });
        clients.add({ host: proxy.host, username: dst.username, password: dst.password });
        const calls: string[][] = [];
        const engine = engineFor(dockerd, clients, { calls });
        const error = await rejectsWith(
          engine.copy({
            source: ref(src, "src/app:1.0"),
            destination: parseReference(`${proxy.host}/mirror/late:1.0`),
          }),
          "IMAGE_TAG_DRIFT",
        );
        assert.equal(heads, 2, "checked before the pull and again before the push");
        assert.ok(other && error.message.includes(other), error.message);
        assert.ok(error.message.includes(single.configDigest), error.message);
        assert.deepEqual(calls.filter((a) => a[0] === "push"), [], "docker never pushed");
        assert.ok(calls.some((a) => a[0] === "tag"), "it got as far as tagging");
        assert.deepEqual(
          proxy.requests.filter((r) => /^(PUT|POST|PATCH) /.test(r)),
          [],
          "nothing written through the destination",
        );
        const held = await skopeoInspectRaw(dst, "mirror/late:1.0");
        assert.equal((held.manifest.config as { digest: string }).digest, other);
      },
    );

    await t.step(
      "`copy()` does not retry a push the registry refuses (no credentials)",
      async () => {
        // A docker config without the login: the registry client (with credentials) can read, docker
        // cannot push.
        const emptyConfig = await Deno.makeTempDir({ prefix: "bb-docker-config-" });
        try {
          const calls: string[][] = [];
          const engine = engineFor(dockerd, clients, {
            calls,
            maxRetries: 2,
            env: { ...Deno.env.toObject(), ...dockerd.env, DOCKER_CONFIG: emptyConfig },
          });
          const error = await rejectsWith(
            engine.copy({
              source: ref(src, "src/app:1.0"),
              destination: ref(dst, "mirror/noauth:1.0"),
            }),
            "DOCKER_COMMAND_FAILED",
          );
          assert.match(error.message, /no basic auth credentials|unauthorized/i);
          assert.equal(calls.filter((a) => a[0] === "push").length, 1, "not retried");
          assert.equal(calls.filter((a) => a[0] === "pull").length, 0, "already local: not pulled");
        } finally {
          await Deno.remove(emptyConfig, { recursive: true });
        }
      },
    );

    await t.step(
      "`copy()` logs docker in once with the credentials given as data, right before the push",
      async () => {
        // A docker config without the login: only CopyRequest.credentials can let docker push.
        const emptyConfig = await Deno.makeTempDir({ prefix: "bb-docker-config-" });
        try {
          const calls: string[][] = [];
          const engine = engineFor(dockerd, clients, {
            calls,
            env: { ...Deno.env.toObject(), ...dockerd.env, DOCKER_CONFIG: emptyConfig },
          });
          const credentials = {
            destination: {
              kind: "basic" as const,
              username: dst.username as string,
              password: dst.password as string,
              source: "config" as const,
            },
          };
          for (const tag of ["1.0", "1.1"]) {
            const result = await engine.copy({
              source: ref(src, "src/app:1.0"),
              destination: ref(dst, `mirror/asdata:${tag}`),
              credentials,
            });
            assert.equal(result.status, "pushed");
          }
          const commands = calls.map((a) => a[0]);
          assert.equal(commands.filter((c) => c === "login").length, 1, "logged in once");
          assert.ok(commands.indexOf("login") < commands.indexOf("push"), commands.join(" "));
          assert.ok(calls.flat().every((a) => a !== dst.password), "no password in argv");
        } finally {
          await Deno.remove(emptyConfig, { recursive: true });
        }
      },
    );

    await t.step("`copy()` with platform linux/arm64 mirrors the arm64 image", async () => {
      const calls: string[][] = [];
      const engine = engineFor(dockerd, clients, { calls, platform: "linux/arm64" });
      const result = await engine.copy({
        source: ref(src, "src/multi:2.0"),
        destination: ref(dst, "mirror/multi:2.0"),
      });
      assert.equal(result.status, "pushed");
      const arm64 = multi.children?.find((c) => c.platform === "linux/arm64");
      assert.ok(arm64);
      const pushed = await skopeoInspectRaw(dst, "mirror/multi:2.0");
      assert.equal((pushed.manifest.config as { digest: string }).digest, arm64.configDigest);
      assert.deepEqual(calls.find((a) => a[0] === "pull")?.slice(0, 3), [
        "pull",
        "--platform",
        "linux/arm64",
      ]);
    });

    await t.step(
      "`copy()` of a multi-arch source without a platform warns, mirrors the daemon's",
      async () => {
        const events: EngineEvent[] = [];
        const engine = engineFor(dockerd, clients);
        await engine.prepare();
        const result = await engine.copy({
          source: ref(src, "src/multi:2.0"),
          destination: ref(dst, "mirror/multi-default:2.0"),
          onEvent: (e) => events.push(e),
        });
        assert.equal(result.status, "pushed");
        const warning = events.find((e) => e.kind === "step" && e.code === "CONFIG_WARNING");
        assert.ok(warning?.kind === "step");
        assert.match(warning.message, new RegExp(`only ${engine.daemonPlatform}`));
        assert.match(warning.message, /registry engine keeps all/);
        const child = multi.children?.find((c) => c.platform === engine.daemonPlatform);
        assert.ok(child, `the test image has a ${engine.daemonPlatform} child`);
        const pushed = await skopeoInspectRaw(dst, "mirror/multi-default:2.0");
        assert.equal((pushed.manifest.config as { digest: string }).digest, child.configDigest);
      },
    );

    await t.step("`close()` removes only what this engine pulled and tagged", async () => {
      const keep = await pushTestImage(src, "src/keep:1", { kind: "schema2", seed: 21, layers: 1 });
      const clean = await pushTestImage(src, "src/clean:1", {
        kind: "schema2",
        seed: 22,
        layers: 1,
      });
      const shared = await pushTestImage(src, "src/shared:1", {
        kind: "schema2",
        seed: 23,
        layers: 1,
      });
      // On the daemon before the run: an unrelated image, and the very ref the run will use.
      const keepRef = `${src.host}/src/keep:1`;
      const sharedRef = `${src.host}/src/shared@${shared.digest}`;
      assert.equal((await dockerd.docker(["pull", keepRef])).code, 0);
      assert.equal((await dockerd.docker(["pull", sharedRef])).code, 0);
      const calls: string[][] = [];
      const events: EngineEvent[] = [];
      const engine = engineFor(dockerd, clients, {
        calls,
        cleanupLocalImages: true,
        onEvent: (e) => events.push(e),
      });
      await engine.copy({
        source: ref(src, "src/clean:1"),
        destination: ref(dst, "mirror/clean:1"),
      });
      await engine.copy({
        source: ref(src, "src/shared:1"),
        destination: ref(dst, "mirror/shared:1"),
      });
      // The shared image was already local under the pulled ref: not pulled again.
      assert.equal(calls.filter((a) => a[0] === "pull").length, 1);
      const cleanRef = `${src.host}/src/clean@${clean.digest}`;
      assert.deepEqual(
        engine.localImages.sort(),
        [
          cleanRef,
          `${dst.host}/mirror/clean:1`,
          `${dst.host}/mirror/shared:1`,
        ].sort(),
      );
      await engine.close();
      const inspect = async (r: string) =>
        (await dockerd.docker(["image", "inspect", "--format", "{{.Id}}", r])).stdout.trim();
      assert.equal(await inspect(keepRef), keep.configDigest);
      assert.equal(await inspect(sharedRef), shared.configDigest);
      assert.equal(await inspect(cleanRef), "");
      assert.equal(await inspect(`${dst.host}/mirror/clean:1`), "");
      assert.equal(await inspect(`${dst.host}/mirror/shared:1`), "");
      assert.equal(await inspect(clean.configDigest), "", "the pulled image itself is gone");
      assert.equal(steps(events).at(-1), "IMAGE_CLEANUP");
      // Images earlier engines (cleanup off) left behind are still there.
      assert.equal(await inspect(`${dst.host}/mirror/app:1.0`), single.configDigest);
    });

    await t.step(
      "a hung pull is killed on dockerTimeout (DOCKER_TIMEOUT), retried, and dockerd drops it",
      async () => {
        await using proxy = startStallingProxy(src);
        clients.add({ host: proxy.host });
        const calls: string[][] = [];
        const engine = engineFor(dockerd, clients, {
          calls,
          dockerTimeoutMs: 3000,
          maxRetries: 1,
          retryDelayMs: 10,
        });
        await rejectsWith(
          engine.copy({
            source: parseReference(`${proxy.host}/src/app:1.0`),
            destination: ref(dst, "mirror/hung:1"),
          }),
          "DOCKER_TIMEOUT",
        );
        assert.equal(
          calls.filter((a) => a[0] === "pull").length,
          2,
          "the timeout was retried once",
        );
        assert.equal(proxy.stalled, 2, "both pulls reached the stalled registry");
        assert.deepEqual(await dockerProcesses(proxy.host), [], "no docker CLI process is left");
        // dockerd gives up its stalled TLS handshakes after 10 s; a pull that was still wanted would
        // then fall back to http. Wait for that moment and check the pull did not go on.
        const deadline = Date.now() + 30_000;
        while (proxy.stalledOpen > 0 && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 200));
        }
        assert.equal(proxy.stalledOpen, 0, "dockerd closed the stalled connections");
        await new Promise((r) => setTimeout(r, 500));
        assert.deepEqual(proxy.dockerRequests, [], "dockerd sent nothing after the CLI was killed");
        const left = await dockerd.docker(["image", "inspect", single.configDigest]);
        assert.equal(left.code, 0, "sanity: the image is local from the first copy");
        const hung = await dockerd.docker([
          "image",
          "inspect",
          `${proxy.host}/src/app@${single.digest}`,
        ]);
        assert.notEqual(hung.code, 0, "no image arrived through the killed pull");
      },
    );

    await t.step("an aborted copy kills its docker process", async () => {
      await using proxy = startStallingProxy(src);
      clients.add({ host: proxy.host });
      const controller = new AbortController();
      const engine = engineFor(dockerd, clients, {
        onDockerCall: (args) => {
          allArgv.push(args);
          if (args[0] === "pull") setTimeout(() => controller.abort(new Error("stop")), 300);
        },
      });
      await assert.rejects(
        engine.copy({
          source: parseReference(`${proxy.host}/src/app:1.0`),
          destination: ref(dst, "mirror/aborted:1"),
          signal: controller.signal,
        }),
        /stop/,
      );
      assert.deepEqual(await dockerProcesses(proxy.host), []);
    });

    await t.step("no docker process ever gets a password in its arguments", async () => {
      // A login that hangs (stalled TLS) so its process can be read from /proc while it runs.
      await using proxy = startStallingProxy(src);
      const secret = "pw-" + crypto.randomUUID();
      passwords.add(secret);
      const engine = engineFor(dockerd, clients, { dockerTimeoutMs: 2000 });
      const seen: { args: string; environ: string }[] = [];
      let running = true;
      const login = engine.login(proxy.host, {
        kind: "basic",
        username: "someone",
        password: secret,
        source: "config",
      }).then(() => undefined, (error) => error).finally(() => running = false);
      while (running) {
        seen.push(...(await dockerProcesses(proxy.host)));
        await new Promise((r) => setTimeout(r, 50));
      }
      const error = await login;
      assert.ok(error instanceof MirrorError, String(error));
      assert.equal(error.code, "DOCKER_TIMEOUT");
      assert.ok(seen.length > 0, "the login process was observed in /proc");
      assert.ok(seen.some((p) => p.args.includes("--password-stdin")));
      for (const process of seen) {
        assert.ok(!process.args.includes(secret), "password in the command line");
        assert.ok(!process.environ.includes(secret), "password in /proc/<pid>/environ");
      }
      const logins = allArgv.filter((a) => a[0] === "login");
      assert.ok(logins.length >= 3, "several logins were recorded");
      for (const argv of allArgv) {
        for (const password of passwords) {
          assert.ok(!argv.some((a) => a.includes(password)), `password in argv ${argv[0]}`);
        }
      }
    });
  } finally {
    clients.close();
  }
  console.log(`docker engine tests took ${Math.round(performance.now() - started)} ms`);
});

Deno.test(
  `DockerEngine.prepare() says DOCKER_NOT_AVAILABLE for a dead socket${
    availability.ok ? "" : ` (ignored: ${availability.reason})`
  }`,
  {
    ignore: !availability.ok,
  },
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "bb-dead-" });
    try {
      const engine = new DockerEngine({
        clientFor: () => {
          throw new Error("not used");
        },
        dockerTimeoutMs: 20_000,
        maxRetries: 0,
        retryDelayMs: 10,
        cleanupLocalImages: false,
        env: { ...Deno.env.toObject(), DOCKER_HOST: `unix://${dir}/docker.sock` },
        secrets: new Secrets(),
      });
      const error = await rejectsWith(engine.prepare(), "DOCKER_NOT_AVAILABLE");
      assert.ok(error.message.includes(`${dir}/docker.sock`), error.message);
      assert.match(error.message, /systemctl start docker/);
      assert.match(error.message, /engine: registry/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test("DockerEngine.prepare() says DOCKER_NOT_AVAILABLE when the docker CLI is missing", async () => {
  const engine = new DockerEngine({
    clientFor: () => {
      throw new Error("not used");
    },
    dockerTimeoutMs: 5000,
    maxRetries: 0,
    retryDelayMs: 10,
    cleanupLocalImages: false,
    dockerBinary: "/nonexistent/docker",
    env: {},
    secrets: new Secrets(),
  });
  const error = await rejectsWith(engine.prepare(), "DOCKER_NOT_AVAILABLE");
  assert.match(error.message, /not installed/);
});

Deno.test({
  name: `the test dockerd leaves no mount, process or directory behind when stopped${
    availability.ok ? "" : ` (ignored: ${availability.reason})`
  }`,
  ignore: !availability.ok,
  async fn() {
    // Disposed even when an assertion fails first (stop() is idempotent).
    await using dockerd = await startDockerd();
    const dir = dockerd.dir;
    // A container on the host network makes dockerd mount its default network namespace.
    const work = await Deno.makeTempDir({ prefix: "bb-empty-image-" });
    try {
      await Deno.writeTextFile(`${work}/f`, "x");
      const tar = await new Deno.Command("tar", {
        args: ["-C", work, "-cf", "-", "f"],
        stdout: "piped",
      }).output();
      const imported = await dockerd.docker(["import", "-", "bb-empty:1"], {
        stdin: new TextDecoder().decode(tar.stdout),
      });
      assert.equal(imported.code, 0, imported.stderr);
      // No binary in the image: the start fails after the sandbox (and its netns) was made.
      const run = await dockerd.docker(["run", "--rm", "--network", "host", "bb-empty:1", "/x"]);
      assert.match(run.stderr, /no such file or directory/);
    } finally {
      await Deno.remove(work, { recursive: true });
    }
    const mounted = await mountsUnder(dir);
    assert.ok(mounted.some((p) => p.endsWith("/netns/default")), mounted.join(", "));
    await dockerd.stop();
    assert.deepEqual(await mountsUnder(dir), [], "no mount left under the fixture's dir");
    assert.deepEqual((await listProcesses()).filter((p) => p.args.includes(dir)), []);
    await assert.rejects(() => Deno.stat(dir), Deno.errors.NotFound);
  },
});
