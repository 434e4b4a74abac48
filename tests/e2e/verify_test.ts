/**
 * Verification before mirroring: `main.ts mirror` as a subprocess, registry engine,
 * real registries. The source images are signed by the test in cosign's format (openssl P-256
 * key, simple-signing payload, `.sig` manifest next to the image). A refused image writes nothing
 * at the destination: its access log shows no PUT/POST/PATCH.
 */
import assert from "node:assert/strict";
import { stringify } from "yaml";
import { runCli } from "../support/cli.ts";
import { dockerdAvailability, startDockerd } from "../support/dockerd.ts";
import {
  buildSignatureManifest,
  makeKey,
  opensslFingerprint,
  opensslSign,
  pushSignatureManifest,
  simpleSigningPayload,
} from "../support/cosign_fixture.ts";
import { startHookProxy } from "../support/hook_proxy.ts";
import { pushTestImage } from "../support/images.ts";
import { registryBinaryAvailable, startRegistry, type TestRegistry } from "../support/registry.ts";
import type { Report } from "../../lib/mirror/report.ts";
import { registryTarget, writes } from "../support/e2e_kit.ts";

const skip = registryBinaryAvailable() ? "" : " (ignored: docker-registry is not installed)";

Deno.test({
  name: `mirror verifies cosign signatures before writing anything${skip}`,
  ignore: Boolean(skip),
  async fn(t) {
    await using src = await startRegistry({ auth: "none" });
    const dir = await Deno.makeTempDir({ prefix: "bb-verify-" });
    try {
      const keyA = await makeKey(dir, "p256");
      const keyB = await makeKey(dir, "p256");
      const rsa = await makeKey(dir, "rsa");
      const fingerprintB = await opensslFingerprint(keyB.publicKeyFile);
      const fingerprintA = await opensslFingerprint(keyA.publicKeyFile);
      const signed = await pushTestImage(src, "team/signed:1", { kind: "oci-index", seed: 1 });
      await pushTestImage(src, "team/unsigned:1", { kind: "oci", seed: 2 });
      const other = await pushTestImage(src, "team/other:1", { kind: "oci", seed: 3 });
      const sign = async (repo: string, digest: string, named: string) => {
        const payload = simpleSigningPayload(`${src.host}/${repo}`, named);
        const signature = await opensslSign(keyA.privateKeyFile, payload);
        await pushSignatureManifest(
          src,
          repo,
          digest,
          buildSignatureManifest([{ payload, signature }]),
        );
      };
      await sign("team/signed", signed.digest, signed.digest);
      // Signed by A, but the payload names another image: a replayed signature.
      await sign("team/other", other.digest, signed.digest);

      // Each step mirrors into its own destination with a fresh log dir: a step that wrongly
      // pushes or logs fails alone.
      const run = async (
        dst: TestRegistry,
        config: Record<string, unknown>,
        command = "mirror",
      ) => {
        await Deno.remove(`${dir}/logs`, { recursive: true }).catch(() => {});
        const file = `${dir}/config.yaml`;
        await Deno.writeTextFile(
          file,
          stringify({
            registries: {
              dr: registryTarget(dst),
              dr2: registryTarget(dst, { namespace: "copy" }),
            },
            log: { dir: "./logs", level: "DEBUG" },
            ...config,
            operation: {
              engine: "registry",
              retryDelay: 0.05,
              maxRetries: 1,
              ...config.operation as Record<string, unknown>,
            },
          }),
        );
        const args = command === "mirror"
          ? ["mirror", "--config", file, "--non-interactive", "--report", `${dir}/report.json`]
          : ["validate", "--config", file];
        const result = await runCli(args, { cwd: dir });
        let report = null as unknown as Report;
        if (command === "mirror") {
          report = JSON.parse(await Deno.readTextFile(`${dir}/report.json`));
          await Deno.remove(`${dir}/report.json`);
        }
        return { ...result, report };
      };

      await t.step(
        "wrong key: IMAGE_SIGNATURE_INVALID, bad signature, B's fingerprint",
        async () => {
          await using dst = await startRegistry({ auth: "none" });
          const out = await run(dst, {
            images: {
              [`${src.host}/team/signed:1`]: {
                targets: ["dr"],
                verify: { cosignKey: relative(keyB.publicKeyFile) },
              },
            },
          });
          assert.equal(out.code, 1, out.stderr);
          const [entry] = out.report.entries;
          assert.equal(entry.status, "failed");
          assert.equal(entry.code, "IMAGE_SIGNATURE_INVALID");
          assert.equal(
            entry.error,
            `${src.host}/team/signed@${signed.digest}: bad signature (key ${fingerprintB}); not mirrored`,
          );
          assert.deepEqual(await writes(dst), []);
        },
      );

      await t.step("unsigned image (operation.verify): IMAGE_UNSIGNED, no signature", async () => {
        await using dst = await startRegistry({ auth: "none" });
        const out = await run(dst, {
          operation: { verify: { cosignKey: [relative(keyB.publicKeyFile), keyA.publicKeyFile] } },
          images: { [`${src.host}/team/unsigned:1`]: { targets: ["dr"] } },
        });
        assert.equal(out.code, 1, out.stderr);
        const [entry] = out.report.entries;
        assert.equal(entry.status, "failed");
        assert.equal(entry.code, "IMAGE_UNSIGNED");
        assert.match(
          entry.error ?? "",
          new RegExp(
            `: no signature \\(key ${fingerprintB}, key ${fingerprintA}\\); not mirrored$`,
          ),
        );
        assert.deepEqual(await writes(dst), []);
      });

      await t.step(
        "payload naming another digest (repositories entry): digest mismatch",
        async () => {
          await using dst = await startRegistry({ auth: "none" });
          const out = await run(dst, {
            repositories: {
              [`${src.host}/team/other`]: {
                targets: ["dr"],
                tags: { include: ["^1$"] },
                verify: { cosignKey: relative(keyA.publicKeyFile) },
              },
            },
          });
          assert.equal(out.code, 1, out.stderr);
          const [entry] = out.report.entries;
          assert.equal(entry.status, "failed");
          assert.equal(entry.code, "IMAGE_SIGNATURE_INVALID");
          assert.match(
            entry.error ?? "",
            new RegExp(`: digest mismatch \\(key ${fingerprintA}\\)`),
          );
          assert.deepEqual(await writes(dst), []);
        },
      );

      await t.step("bad key file and keyless: validate exits 2 naming the path", async () => {
        await using dst = await startRegistry({ auth: "none" });
        const bad = await run(dst, {
          images: {
            [`${src.host}/team/signed:1`]: {
              targets: ["dr"],
              verify: { cosignKey: relative(rsa.publicKeyFile) },
            },
          },
        }, "validate");
        assert.equal(bad.code, 2);
        assert.match(bad.stderr, /images\[".*team\/signed:1"\]\.verify\.cosignKey/);
        assert.match(
          bad.stderr,
          new RegExp(`${rsa.publicKeyFile.split("/").pop()}: is an RSA key`),
        );
        const missing = await run(dst, {
          operation: { verify: { cosignKey: "./nope.pub" } },
          images: { [`${src.host}/team/signed:1`]: { targets: ["dr"] } },
        }, "validate");
        assert.equal(missing.code, 2);
        assert.match(missing.stderr, /operation\.verify\.cosignKey/);
        assert.match(missing.stderr, /nope\.pub: cannot be read \(not found\)/);
        const keyless = await run(dst, {
          images: {
            [`${src.host}/team/signed:1`]: { targets: ["dr"], verify: { keyless: true } },
          },
        }, "validate");
        assert.equal(keyless.code, 2);
        assert.match(
          keyless.stderr,
          /verify\.keyless: keyless verification \(Fulcio certificate \+ Rekor bundle\) is out of scope; verify with cosignKey: path\/to\/cosign\.pub/,
        );
        assert.match(keyless.stderr, /verify\.cosignKey: give the path of a cosign public key/);
      });

      await t.step(
        "right key: pushed to two targets, verified once, A's fingerprint logged",
        async () => {
          await using dst = await startRegistry({ auth: "none" });
          const sigTag = `${signed.digest.replace(":", "-")}.sig`;
          const sigReads = async () =>
            (await src.accessLog()).filter((l) =>
              l.includes(`GET /v2/team/signed/manifests/${sigTag}`)
            )
              .length;
          const before = await sigReads();
          const out = await run(dst, {
            images: {
              [`${src.host}/team/signed:1`]: {
                targets: ["dr", "dr2"],
                verify: { cosignKey: [relative(keyB.publicKeyFile), relative(keyA.publicKeyFile)] },
              },
            },
          });
          assert.equal(out.code, 0, out.stderr);
          assert.deepEqual(
            out.report.entries.map((e) => [e.destination, e.status, e.digest]),
            [
              [`${dst.host}/mirror/signed:1`, "pushed", signed.digest],
              [`${dst.host}/copy/signed:1`, "pushed", signed.digest],
            ],
          );
          assert.equal((await sigReads()) - before, 1);
          const log = (await Array.fromAsync(Deno.readDir(`${dir}/logs`)))
            .filter((e) => e.name.endsWith(".log"));
          let text = "";
          for (const e of log) text += await Deno.readTextFile(`${dir}/logs/${e.name}`);
          const verified = text.split("\n").filter((l) =>
            l.includes(`team/signed@${signed.digest}: signed by key ${fingerprintA}`)
          );
          assert.equal(verified.length, 1);
          assert.notDeepEqual(await writes(dst), []);
        },
      );

      await t.step("the tag moved after verification: the verified digest is copied", async () => {
        await using dst = await startRegistry({ auth: "none" });
        const swapped = await pushTestImage(src, "team/swap:1", { kind: "oci", seed: 5 });
        await sign("team/swap", swapped.digest, swapped.digest);
        let moved: string | undefined;
        await using proxy = startHookProxy(src, async (request) => {
          if (!moved && request.method === "GET" && request.path.endsWith(".sig")) {
            // Upstream moves the tag to an unsigned image between the check and the copy.
            moved = (await pushTestImage(src, "team/swap:1", { kind: "oci", seed: 6 })).digest;
          }
        });
        const out = await run(dst, {
          images: {
            [`${proxy.host}/team/swap:1`]: {
              targets: ["dr"],
              verify: { cosignKey: relative(keyA.publicKeyFile) },
            },
          },
        });
        assert.equal(out.code, 0, out.stderr);
        assert.notEqual(moved, undefined);
        assert.notEqual(moved, swapped.digest);
        const [entry] = out.report.entries;
        assert.equal(entry.status, "pushed");
        assert.equal(entry.digest, swapped.digest);
        assert.ok(proxy.requests.includes(`GET /v2/team/swap/manifests/${swapped.digest}`));
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

const docker = await dockerdAvailability();
const dockerWhy = skip || (docker.ok ? "" : ` (ignored: ${docker.reason})`);

Deno.test({
  name:
    `verify with the docker engine: unsigned refused before any pull, signed pushed${dockerWhy}`,
  ignore: Boolean(dockerWhy),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using dockerd = await startDockerd();
    await using src = await startRegistry({ auth: "none" });
    await using dst = await startRegistry({ auth: "none" });
    const dir = await Deno.makeTempDir({ prefix: "bb-verify-docker-" });
    try {
      const key = await makeKey(dir, "p256");
      const signed = await pushTestImage(src, "team/app:1", { kind: "schema2", seed: 91 });
      await pushTestImage(src, "team/bare:1", { kind: "schema2", seed: 92 });
      const payload = simpleSigningPayload(`${src.host}/team/app`, signed.digest);
      const signature = await opensslSign(key.privateKeyFile, payload);
      await pushSignatureManifest(
        src,
        "team/app",
        signed.digest,
        buildSignatureManifest([{ payload, signature }]),
      );
      const run = async (image: string) => {
        await Deno.writeTextFile(
          `${dir}/config.yaml`,
          stringify({
            registries: { dr: registryTarget(dst, { namespace: "m" }) },
            log: { dir: "./logs" },
            operation: {
              engine: "docker",
              platform: "linux/arm64",
              cleanupLocalImages: true,
              dockerTimeout: 120,
              retryDelay: 0.1,
              maxRetries: 1,
              verify: { cosignKey: relative(key.publicKeyFile) },
            },
            images: { [`${src.host}/${image}`]: { targets: ["dr"] } },
          }),
        );
        const out = await runCli(
          ["mirror", "--config", "config.yaml", "--non-interactive", "--report", "report.json"],
          { cwd: dir, env: dockerd.env, timeoutMs: 300_000 },
        );
        const report: Report = JSON.parse(await Deno.readTextFile(`${dir}/report.json`));
        return { ...out, report };
      };
      const bare = await run("team/bare:1");
      assert.equal(bare.code, 1, bare.stderr);
      assert.deepEqual(
        bare.report.entries.map((e) => [e.status, e.code]),
        [["failed", "IMAGE_UNSIGNED"]],
      );
      assert.deepEqual(await writes(dst), []);
      // No blob of the unsigned image was pulled: docker never got to it.
      assert.deepEqual(
        (await src.accessLog()).filter((l) => l.startsWith("GET /v2/team/bare/blobs/")),
        [],
      );
      const good = await run("team/app:1");
      assert.equal(good.code, 0, good.stderr);
      assert.deepEqual(good.report.entries.map((e) => e.status), ["pushed"]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    `mirror: two entries on one digest with keys [A] and [B], signed by A: only A's is mirrored, in both orders${skip}`,
  ignore: Boolean(skip),
  async fn(t) {
    await using src = await startRegistry({ auth: "none" });
    const dir = await Deno.makeTempDir({ prefix: "bb-verify-two-" });
    try {
      const keyA = await makeKey(dir, "p256");
      const keyB = await makeKey(dir, "p256");
      const image = await pushTestImage(src, "team/app:1.0", { kind: "oci", seed: 7 });
      const again = await pushTestImage(src, "team/app:stable", { kind: "oci", seed: 7 });
      assert.equal(again.digest, image.digest);
      const payload = simpleSigningPayload(`${src.host}/team/app`, image.digest);
      const signature = await opensslSign(keyA.privateKeyFile, payload);
      await pushSignatureManifest(
        src,
        "team/app",
        image.digest,
        buildSignatureManifest([{ payload, signature }]),
      );
      const entries = {
        "1.0": { targets: ["dr"], verify: { cosignKey: relative(keyA.publicKeyFile) } },
        stable: { targets: ["dr"], verify: { cosignKey: relative(keyB.publicKeyFile) } },
      };
      for (const order of [["1.0", "stable"], ["stable", "1.0"]]) {
        await t.step(`entries in the order ${order.join(", ")}`, async () => {
          await using dst = await startRegistry({ auth: "none" });
          const file = `${dir}/config.yaml`;
          await Deno.writeTextFile(
            file,
            stringify({
              registries: { dr: registryTarget(dst) },
              log: { dir: "./logs" },
              operation: { engine: "registry", concurrency: 1, retryDelay: 0.05, maxRetries: 1 },
              images: Object.fromEntries(
                order.map((tag) => [`${src.host}/team/app:${tag}`, entries[tag as "1.0"]]),
              ),
            }),
          );
          const out = await runCli(
            ["mirror", "--config", file, "--non-interactive", "--report", `${dir}/report.json`],
            { cwd: dir },
          );
          assert.equal(out.code, 1, out.stderr);
          const report: Report = JSON.parse(await Deno.readTextFile(`${dir}/report.json`));
          const byTag = Object.fromEntries(
            report.entries.map((e) => [e.source.split(":").pop(), [e.status, e.code ?? null]]),
          );
          assert.deepEqual(byTag, {
            "1.0": ["pushed", "IMAGE_PUSHED"],
            stable: ["failed", "IMAGE_SIGNATURE_INVALID"],
          });
          const tags = (await dst.accessLog()).filter((l) =>
            /^PUT \/v2\/mirror\/app\/manifests\//.test(l)
          );
          const paths = tags.map((l) => l.split(" ")[1]);
          assert.ok(paths.includes("/v2/mirror/app/manifests/1.0"), paths.join("\n"));
          assert.ok(!paths.includes("/v2/mirror/app/manifests/stable"), paths.join("\n"));
        });
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

function relative(file: string): string {
  return `./${file.split("/").pop()}`;
}
