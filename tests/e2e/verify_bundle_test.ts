/**
 * Cosign v3's default signatures and `operation.signatures: require`: `main.ts mirror`
 * as a subprocess, registry engine, real registries. Bundles are made by the test in cosign v3's
 * shape (tests/support/bundle_fixture.ts, signed with openssl) and pushed as referrers with
 * `subject`: on docker-registry 2.8.2 through the fallback tag, and behind the referrers-API
 * double. A refused image writes nothing at the destination: its access log shows no
 * PUT/POST/PATCH. Plus `validate`'s signatures rules (docker engine, artifactTypes).
 */
import assert from "node:assert/strict";
import { stringify } from "yaml";
import { runCli } from "../support/cli.ts";
import {
  buildBundle,
  buildBundleReferrer,
  cosignSignStatement,
  pushBundleReferrer,
  referrerEntry,
  startReferrersApiDouble,
  subjectOf,
} from "../support/bundle_fixture.ts";
import {
  buildSignatureManifest,
  makeKey,
  opensslFingerprint,
  opensslSign,
  pushSignatureManifest,
  simpleSigningPayload,
  type TestKey,
} from "../support/cosign_fixture.ts";
import { pushManifestWithBlobs, pushTestImage, sha256 } from "../support/images.ts";
import { registryBinaryAvailable, startRegistry, type TestRegistry } from "../support/registry.ts";
import type { Report } from "../../lib/mirror/report.ts";
import { registryTarget, writes } from "../support/e2e_kit.ts";

const skip = registryBinaryAvailable() ? "" : " (ignored: docker-registry is not installed)";

/** Push a cosign v3 bundle referrer of `repo@digest` signed by `key`. */
async function signWithBundle(
  reg: TestRegistry,
  repo: string,
  digest: string,
  options: {
    key: TestKey;
    names?: string;
    predicateType?: string;
    material?: "publicKey" | "certificate";
    tamper?: boolean;
    fallbackTag?: boolean;
    host?: string;
  },
) {
  const name = `${options.host ?? reg.host}/${repo}`;
  const statement = cosignSignStatement(name, options.names ?? digest, options.predicateType);
  const bundle = await buildBundle({
    key: options.key,
    statement,
    material: options.material,
    // The subject's name changed after signing: the signed bytes are not these.
    tamperedStatement: options.tamper ? cosignSignStatement(`${name}-x`, digest) : undefined,
  });
  const built = buildBundleReferrer(bundle, await subjectOf(reg, repo, digest));
  await pushBundleReferrer(reg, repo, built, { fallbackTag: options.fallbackTag });
  return built;
}

Deno.test({
  name: `mirror verifies cosign v3 bundle referrers and enforces signatures: require${skip}`,
  ignore: Boolean(skip),
  async fn(t) {
    await using src = await startRegistry({ auth: "none" });
    await using api = startReferrersApiDouble(src);
    const dir = await Deno.makeTempDir({ prefix: "bb-bundle-" });
    try {
      const keyA = await makeKey(dir, "p256");
      const keyB = await makeKey(dir, "p256");
      const fpA = await opensslFingerprint(keyA.publicKeyFile);
      const fpB = await opensslFingerprint(keyB.publicKeyFile);
      const push = (repo: string, seed: number, kind: "oci" | "oci-index" = "oci") =>
        pushTestImage(src, `${repo}:1`, { kind, seed });
      const bundled = await push("team/bundled", 11, "oci-index");
      const viaApi = await push("team/viaapi", 12);
      const wrongKey = await push("team/wrongkey", 13);
      const otherDigest = await push("team/otherdigest", 14);
      const tampered = await push("team/tampered", 15);
      const keyless = await push("team/keyless", 16);
      const unsigned = await push("team/unsigned", 17);
      const sigOnly = await push("team/sigonly", 18);
      const sigOther = await push("team/sigother", 19);
      const attested = await push("team/attested", 20);
      const borrowed = await push("team/borrowed", 21);
      const both = await push("team/both", 22);
      const badBoth = await push("team/badboth", 23);
      const garbageSig = await push("team/garbagesig", 24);
      const garbageOnly = await push("team/garbageonly", 25);
      await signWithBundle(src, "team/bundled", bundled.digest, { key: keyA });
      const apiBuilt = await signWithBundle(src, "team/viaapi", viaApi.digest, {
        key: keyA,
        fallbackTag: false,
        host: api.host,
      });
      api.add("team/viaapi", apiBuilt);
      await signWithBundle(src, "team/wrongkey", wrongKey.digest, { key: keyB });
      await signWithBundle(src, "team/otherdigest", otherDigest.digest, {
        key: keyA,
        names: bundled.digest,
      });
      await signWithBundle(src, "team/tampered", tampered.digest, { key: keyA, tamper: true });
      await signWithBundle(src, "team/keyless", keyless.digest, {
        key: keyA,
        material: "certificate",
      });
      const sigBy = async (repo: string, digest: string, names: string, key = keyB) => {
        const payload = simpleSigningPayload(`${src.host}/${repo}`, names);
        const signature = await opensslSign(key.privateKeyFile, payload);
        await pushSignatureManifest(
          src,
          repo,
          digest,
          buildSignatureManifest([{ payload, signature }]),
        );
      };
      await sigBy("team/sigonly", sigOnly.digest, sigOnly.digest);
      // A .sig by B (not trusted) next to a bundle by A.
      await sigBy("team/both", both.digest, both.digest);
      await signWithBundle(src, "team/both", both.digest, { key: keyA });
      // A .sig by A for another image next to a bundle by B.
      await sigBy("team/badboth", badBoth.digest, sigOnly.digest, keyA);
      await signWithBundle(src, "team/badboth", badBoth.digest, { key: keyB });
      // A .sig whose signature annotation is not base64, with and without a good bundle.
      for (
        const [repo, digest] of [["team/garbagesig", garbageSig.digest], [
          "team/garbageonly",
          garbageOnly.digest,
        ]]
      ) {
        const payload = simpleSigningPayload(`${src.host}/${repo}`, digest);
        await pushSignatureManifest(
          src,
          repo,
          digest,
          buildSignatureManifest([{ payload, signatureAnnotation: "not base64!" }]),
        );
      }
      await signWithBundle(src, "team/garbagesig", garbageSig.digest, { key: keyA });
      await sigBy("team/sigother", sigOther.digest, sigOnly.digest);
      // An attestation (SLSA provenance) bundle signed by A: not a signature.
      await signWithBundle(src, "team/attested", attested.digest, {
        key: keyA,
        predicateType: "https://slsa.dev/provenance/v1",
      });
      // bundled's valid referrer (subject: bundled) listed in borrowed's fallback tag.
      const stolen = await signWithBundle(src, "team/bundled", bundled.digest, {
        key: keyA,
        fallbackTag: false,
      });
      await pushManifestWithBlobs(src, `team/borrowed:${sha256(stolen.manifest)}`, stolen);
      await pushManifestWithBlobs(src, `team/borrowed:${borrowed.digest.replace(":", "-")}`, {
        mediaType: "application/vnd.oci.image.index.v1+json",
        manifest: new TextEncoder().encode(JSON.stringify({
          schemaVersion: 2,
          mediaType: "application/vnd.oci.image.index.v1+json",
          manifests: [referrerEntry(stolen)],
        })),
        blobs: [],
      });

      // Each step mirrors into its own destination with a fresh log dir: a step that wrongly
      // pushes fails alone, and no step relies on another's push.
      const run = async (
        dst: TestRegistry,
        images: Record<string, unknown>,
        operation: Record<string, unknown> = {},
      ) => {
        await Deno.remove(`${dir}/logs`, { recursive: true }).catch(() => {});
        await Deno.writeTextFile(
          `${dir}/config.yaml`,
          stringify({
            registries: { dr: registryTarget(dst) },
            log: { dir: "./logs", level: "DEBUG" },
            operation: { engine: "registry", retryDelay: 0.05, maxRetries: 1, ...operation },
            images,
          }),
        );
        const out = await runCli(
          ["mirror", "--config", "config.yaml", "--non-interactive", "--report", "report.json"],
          { cwd: dir },
        );
        const report: Report = JSON.parse(await Deno.readTextFile(`${dir}/report.json`));
        await Deno.remove(`${dir}/report.json`);
        return { ...out, report };
      };
      const image = (repo: string) => ({ [`${src.host}/${repo}:1`]: { targets: ["dr"] } });
      const verifyA = { verify: { cosignKey: `./${keyA.publicKeyFile.split("/").pop()}` } };

      await t.step(
        "bad bundles: IMAGE_SIGNATURE_INVALID with reason and key, nothing written",
        async () => {
          await using dst = await startRegistry({ auth: "none" });
          const out = await run(dst, {
            ...image("team/wrongkey"),
            ...image("team/otherdigest"),
            ...image("team/tampered"),
            ...image("team/keyless"),
          }, verifyA);
          assert.equal(out.code, 1, out.stderr);
          assert.deepEqual(
            out.report.entries.map((e) => [e.status, e.code, e.error]),
            [
              [
                "failed",
                "IMAGE_SIGNATURE_INVALID",
                `${src.host}/team/wrongkey@${wrongKey.digest}: bad signature (key ${fpA}); not mirrored`,
              ],
              [
                "failed",
                "IMAGE_SIGNATURE_INVALID",
                `${src.host}/team/otherdigest@${otherDigest.digest}: digest mismatch (key ${fpA}); not mirrored`,
              ],
              [
                "failed",
                "IMAGE_SIGNATURE_INVALID",
                `${src.host}/team/tampered@${tampered.digest}: bad signature (key ${fpA}); not mirrored`,
              ],
              [
                "failed",
                "IMAGE_SIGNATURE_INVALID",
                `${src.host}/team/keyless@${keyless.digest}: certificate (keyless) bundle: keyless verification is out of scope (key ${fpA}); not mirrored`,
              ],
            ],
          );
          assert.deepEqual(await writes(dst), []);
        },
      );

      await t.step(
        "an attestation bundle, a referrer of another subject: no signature",
        async () => {
          await using dst = await startRegistry({ auth: "none" });
          const out = await run(
            dst,
            { ...image("team/attested"), ...image("team/borrowed") },
            verifyA,
          );
          assert.equal(out.code, 1, out.stderr);
          assert.deepEqual(
            out.report.entries.map((e) => [e.status, e.code, e.error]),
            [
              [
                "failed",
                "IMAGE_UNSIGNED",
                `${src.host}/team/attested@${attested.digest}: no signature (key ${fpA}); not mirrored`,
              ],
              [
                "failed",
                "IMAGE_UNSIGNED",
                `${src.host}/team/borrowed@${borrowed.digest}: no signature (key ${fpA}); not mirrored`,
              ],
            ],
          );
          assert.deepEqual(await writes(dst), []);
        },
      );

      await t.step("require with keys is verify: B's key refuses A's bundle", async () => {
        await using dst = await startRegistry({ auth: "none" });
        const out = await run(dst, image("team/bundled"), {
          signatures: "require",
          verify: { cosignKey: keyB.publicKeyFile },
        });
        assert.equal(out.code, 1, out.stderr);
        assert.deepEqual(
          out.report.entries.map((e) => [e.status, e.code, e.error]),
          [[
            "failed",
            "IMAGE_SIGNATURE_INVALID",
            `${src.host}/team/bundled@${bundled.digest}: bad signature (key ${fpB}); not mirrored`,
          ]],
        );
        assert.deepEqual(await writes(dst), []);
      });

      await t.step(
        "require without keys: unsigned, or signed for another digest: IMAGE_UNSIGNED, nothing written",
        async () => {
          await using dst = await startRegistry({ auth: "none" });
          const out = await run(dst, {
            ...image("team/unsigned"),
            ...image("team/sigother"),
            ...image("team/otherdigest"),
            ...image("team/attested"),
          }, { signatures: "require" });
          assert.equal(out.code, 1, out.stderr);
          const refused = (repo: string, digest: string) => [
            "failed",
            "IMAGE_UNSIGNED",
            `${src.host}/${repo}@${digest}: no signature names this digest (operation.signatures: require); not mirrored`,
          ];
          assert.deepEqual(
            out.report.entries.map((e) => [e.status, e.code, e.error]),
            [
              refused("team/unsigned", unsigned.digest),
              refused("team/sigother", sigOther.digest),
              refused("team/otherdigest", otherDigest.digest),
              refused("team/attested", attested.digest),
            ],
          );
          assert.deepEqual(await writes(dst), []);
          // The default mode (copy) does not refuse it.
          const copy = await run(dst, image("team/unsigned"));
          assert.deepEqual(copy.report.entries.map((e) => e.status), ["pushed"]);
        },
      );

      await t.step(
        "require without keys: a .sig by any key, a bundle by any key pass",
        async () => {
          await using dst = await startRegistry({ auth: "none" });
          const out = await run(dst, { ...image("team/sigonly"), ...image("team/bundled") }, {
            signatures: "require",
          });
          assert.equal(out.code, 0, out.stderr);
          assert.deepEqual(
            out.report.entries.map((e) => [e.destination, e.status, e.digest]),
            [
              [`${dst.host}/mirror/sigonly:1`, "pushed", sigOnly.digest],
              [`${dst.host}/mirror/bundled:1`, "pushed", bundled.digest],
            ],
          );
        },
      );

      await t.step("good key, bundle only (fallback tag and referrers API): pushed", async () => {
        await using dst = await startRegistry({ auth: "none" });
        // bundled:1 is there already (as the step before leaves it): exists.
        await pushTestImage(dst, "mirror/bundled:1", { kind: "oci-index", seed: 11 });
        const out = await run(dst, {
          ...image("team/bundled"),
          [`${api.host}/team/viaapi:1`]: { targets: ["dr"], repository: "viaapi" },
        }, { ...verifyA, signatures: "skip" });
        assert.equal(out.code, 0, out.stderr);
        assert.deepEqual(
          out.report.entries.map((e) => [e.destination, e.status, e.digest]),
          [
            [`${dst.host}/mirror/bundled:1`, "exists", bundled.digest],
            [`${dst.host}/mirror/viaapi:1`, "pushed", viaApi.digest],
          ],
        );
        // The API answered, so the fallback tag was never read; there is no .sig either.
        const tag = viaApi.digest.replace(":", "-");
        assert.ok(api.requests.includes(`GET /v2/team/viaapi/referrers/${viaApi.digest}`));
        assert.ok(api.requests.includes(`GET /v2/team/viaapi/manifests/${tag}.sig`));
        assert.ok(!api.requests.includes(`GET /v2/team/viaapi/manifests/${tag}`));
        const log = (await Array.fromAsync(Deno.readDir(`${dir}/logs`)))
          .filter((e) => e.name.endsWith(".log"));
        let text = "";
        for (const e of log) text += await Deno.readTextFile(`${dir}/logs/${e.name}`);
        assert.ok(text.includes(`team/viaapi@${viaApi.digest}: signed by key ${fpA}`));
      });

      await t.step("good key, bundle only, first copy of a verified index", async () => {
        await using dst = await startRegistry({ auth: "none" });
        const out = await run(dst, {
          [`${src.host}/team/bundled:1`]: { targets: ["dr"], repository: "bundled2" },
        }, verifyA);
        assert.equal(out.code, 0, out.stderr);
        assert.deepEqual(
          out.report.entries.map((e) => [e.destination, e.status, e.digest]),
          [[`${dst.host}/mirror/bundled2:1`, "pushed", bundled.digest]],
        );
      });

      await t.step(
        ".sig and bundle together: either suffices; both failing name both",
        async () => {
          await using dst = await startRegistry({ auth: "none" });
          const out = await run(dst, {
            ...image("team/both"),
            ...image("team/badboth"),
            ...image("team/garbagesig"),
            ...image("team/garbageonly"),
          }, verifyA);
          assert.equal(out.code, 1, out.stderr);
          const tag = (digest: string) => `${digest.replace(":", "-")}.sig`;
          assert.deepEqual(
            out.report.entries.map((e) => [e.status, e.code ?? null, e.error ?? null]),
            [
              ["pushed", "IMAGE_PUSHED", null],
              [
                "failed",
                "IMAGE_SIGNATURE_INVALID",
                `${src.host}/team/badboth@${badBoth.digest}: digest mismatch (.sig), bad signature (bundle) (key ${fpA}); not mirrored`,
              ],
              ["pushed", "IMAGE_PUSHED", null],
              [
                "failed",
                "IMAGE_SIGNATURE_INVALID",
                `${src.host}/team/garbageonly:${
                  tag(garbageOnly.digest)
                }: layers[0]: dev.cosignproject.cosign/signature is not base64 ("not base64!")`,
              ],
            ],
          );
        },
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("validate: signatures with the docker engine and artifactTypes", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "bb-sigrules-" });
  try {
    const validate = async (operation: Record<string, unknown>) => {
      await Deno.writeTextFile(
        `${dir}/config.yaml`,
        stringify({
          registries: { dr: { url: "127.0.0.1:5999", namespace: "mirror", kind: "registry" } },
          log: { dir: "./logs" },
          operation: { platform: "linux/amd64", ...operation },
          images: { "127.0.0.1:5998/team/app:1": { targets: ["dr"] } },
        }),
      );
      return await runCli(["validate", "--config", "config.yaml"], { cwd: dir });
    };
    await t.step("docker + copy: a warning, exit 0", async () => {
      const out = await validate({ engine: "docker", signatures: "copy" });
      assert.equal(out.code, 0, out.stderr);
      assert.match(
        out.stderr,
        /warning: operation\.signatures: copy with the docker engine: docker pull\/tag\/push changes every digest/,
      );
    });
    await t.step("docker + copy: the warning is logged when a mirror run starts", async () => {
      await validate({ engine: "docker", signatures: "copy", maxRetries: 0 });
      const out = await runCli(
        ["mirror", "--config", "config.yaml", "--dry-run", "--non-interactive"],
        { cwd: dir },
      );
      assert.match(
        out.stderr + out.stdout,
        /\[WARNING\] \[CONFIG_WARNING\] Config: operation\.signatures: copy with the docker engine/,
      );
    });
    await t.step("docker, signatures unset: skip, no warning", async () => {
      const out = await validate({ engine: "docker" });
      assert.equal(out.code, 0, out.stderr);
      // The one warning left: no docker daemon answers here (validate_command.ts).
      const others = out.stderr.split("\n").filter((l) =>
        l && !l.startsWith("warning: operation.engine:")
      );
      assert.deepEqual(others, []);
    });
    await t.step("docker + require: exit 2 naming operation.signatures", async () => {
      const out = await validate({ engine: "docker", signatures: "require" });
      assert.equal(out.code, 2, out.stderr);
      assert.match(out.stderr, /error: operation\.signatures: require needs engine: registry/);
    });
    await t.step("registry + require: valid", async () => {
      const out = await validate({ engine: "registry", signatures: "require" });
      assert.equal(out.code, 0, out.stderr);
      assert.equal(out.stderr, "");
    });
    await t.step("artifactTypes that are not media types: exit 2 with the path", async () => {
      const out = await validate({
        engine: "registry",
        artifactTypes: ["application/vnd.dev.sigstore.bundle.v0.3+json", "spdx", "text/spdx;x"],
      });
      assert.equal(out.code, 2, out.stderr);
      assert.match(out.stderr, /error: operation\.artifactTypes\[1\]: "spdx" is not a media type/);
      assert.match(
        out.stderr,
        /error: operation\.artifactTypes\[2\]: "text\/spdx;x" is not a media type/,
      );
      assert.doesNotMatch(out.stderr, /artifactTypes\[0\]/);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
