/**
 * "A no-op run checks them with HEADs only: at most 2x the requests of a no-op without
 * signatures": the supply-chain memo (lib/mirror/supply_chain_state.ts) on two real
 * docker-registry instances (no referrers API). An index signed (cosign format) on itself and on
 * both children; every source request goes through a counting proxy, every destination request is
 * in the registry's access log. Exact request lists; the memo aged by rewriting its file.
 */
import assert from "node:assert/strict";
import {
  buildSignatureManifest,
  makeKey,
  opensslSign,
  pushSignatureManifest,
  simpleSigningPayload,
} from "../support/cosign_fixture.ts";
import type { ReportEntry } from "../../lib/mirror/report.ts";
import { headDigest, pushManifestWithBlobs, pushTestImage } from "../support/images.ts";
import { forward } from "../support/proxy.ts";
import { startRecordingHost } from "../support/recording_host.ts";
import { registryBinaryAvailable, startRegistry } from "../support/registry.ts";
import {
  ageMemo,
  atOnce,
  entriesOf,
  logText,
  requests,
  sameBytes,
  tagOf,
} from "../support/supply_chain_fixture.ts";
import { mirror, registryTarget } from "../support/e2e_kit.ts";

const skip = registryBinaryAvailable() ? "" : " (ignored: docker-registry is not installed)";

Deno.test({
  name: `a no-op run of a signed index costs at most 2x a no-op without signatures${skip}`,
  ignore: Boolean(skip),
  async fn(t) {
    await using src = await startRegistry({ auth: "none" });
    await using dst = await startRegistry({ auth: "none" });
    const dir = await Deno.makeTempDir({ prefix: "bb-sigmemo-" });
    try {
      const key = await makeKey(dir, "p256");
      const image = await pushTestImage(src, "team/idx:1", { kind: "oci-index", seed: 51 });
      const [c1, c2] = (image.children ?? []).map((c) => c.digest);
      // A signature made once per digest and reference: signing again appends (as cosign does).
      const made = new Map<string, Uint8Array>();
      const sign = async (digest: string, refs = [`${src.host}/team/idx`]) => {
        const sigs = [];
        for (const ref of refs) {
          const payload = simpleSigningPayload(ref, digest);
          const id = `${digest} ${ref}`;
          const signature = made.get(id) ?? await opensslSign(key.privateKeyFile, payload);
          made.set(id, signature);
          sigs.push({ payload, signature });
        }
        return await pushSignatureManifest(src, "team/idx", digest, buildSignatureManifest(sigs));
      };
      for (const d of [image.digest, c1, c2]) await sign(d);
      await using seen = startRecordingHost({
        hostname: "127.0.0.1",
        handle: (req) => forward(req, src.url, seen.host),
      });
      const config = (operation: Record<string, unknown> = {}) => ({
        registries: { dr: registryTarget(dst) },
        log: { dir: "./logs", level: "DEBUG" },
        operation: { engine: "registry", retryDelay: 0.05, maxRetries: 1, ...operation },
        images: { [`${seen.host}/team/idx:1`]: { targets: ["dr"] } },
      });
      const counts = (e: ReportEntry) => [e.status, e.signatures, e.referrers];
      const run = async (operation: Record<string, unknown> = {}) => {
        const [s0, d0] = [seen.requests.length, (await requests(dst)).length];
        const out = await mirror(dir, config(operation));
        assert.equal(out.code, 0, out.stderr);
        const s = seen.requests.slice(s0).map((r) => `${r.method} ${r.path}`);
        // After the login check, the plan's reads of a task go out at once (atOnce).
        return { s: atOnce(s, 1, 3), d: atOnce((await requests(dst)).slice(d0), 1, 3), out };
      };
      const sigHead = (side: string, d: string) =>
        `HEAD /v2/${side}/idx/manifests/${tagOf(d, ".sig")}`;
      // The source side of a signed no-op: the login check, the plan's (the one tag list and the
      // HEAD, at once), a .sig HEAD per signed digest, the one referrers probe (404).
      const sourceNoop = [
        "GET /v2/team/idx/tags/list?n=1",
        "GET /v2/team/idx/tags/list?n=1000",
        "HEAD /v2/team/idx/manifests/1",
        sigHead("team", image.digest),
        `GET /v2/team/idx/referrers/${image.digest}`,
        sigHead("team", c1),
        sigHead("team", c2),
      ];
      const plainDst = [
        "GET /v2/mirror/idx/tags/list?n=1",
        "HEAD /v2/mirror/idx/manifests/1",
        "HEAD /v2/mirror/idx/manifests/latest",
      ];

      await t.step("first run, then the no-op without and with signatures: 10 vs 5", async () => {
        const first = await run();
        assert.deepEqual(entriesOf(first.out).map(counts), [["pushed", 3, 0]]);
        const base = await run({ signatures: "skip" });
        assert.deepEqual(base.s, [sourceNoop[0], sourceNoop[2]]);
        assert.deepEqual(base.d, plainDst);
        const carried = await run();
        assert.deepEqual(entriesOf(carried.out).map(counts), [["exists", 3, 0]]);
        // The destination as without signatures: the index's children and the three .sig tags
        // are the memo's (the first run wrote them less than 24 h ago). Was 14 vs 5.
        assert.deepEqual(carried.s, sourceNoop);
        assert.deepEqual(carried.d, plainDst);
        const ratio = (carried.s.length + carried.d.length) / (base.s.length + base.d.length);
        assert.ok(ratio <= 2, `${ratio}x`);
      });

      await t.step(
        "a memo older than 24 h: the destination HEADs come back, a deleted .sig is restored",
        async () => {
          const sigDigest = await headDigest(dst, `mirror/idx:${tagOf(c1, ".sig")}`);
          const deleted = await fetch(`${dst.url}/v2/mirror/idx/manifests/${sigDigest}`, {
            method: "DELETE",
          });
          await deleted.body?.cancel();
          assert.equal(deleted.status, 202);
          // Within 24 h the memo answers: the deletion is not seen yet (documented).
          const young = await run();
          assert.deepEqual(young.d, plainDst);
          await ageMemo(dir);
          const old = await run();
          assert.deepEqual(entriesOf(old.out).map(counts), [["exists", 3, 0]]);
          assert.deepEqual(old.s, [
            ...sourceNoop.slice(0, 5),
            sigHead("team", c1),
            `GET /v2/team/idx/manifests/${sigDigest}`,
            sigHead("team", c2),
          ]);
          assert.deepEqual(old.d.filter((l) => !l.startsWith("HEAD /v2/mirror/idx/blobs/")), [
            "GET /v2/mirror/idx/tags/list?n=1",
            "HEAD /v2/mirror/idx/manifests/1",
            "HEAD /v2/mirror/idx/manifests/latest",
            sigHead("mirror", image.digest),
            sigHead("mirror", c1),
            `PUT /v2/mirror/idx/manifests/${tagOf(c1, ".sig")}`,
            sigHead("mirror", c2),
          ]);
          assert.equal(
            await sameBytes(
              src,
              dst,
              `team/idx:${tagOf(c1, ".sig")}`,
              `mirror/idx:${tagOf(c1, ".sig")}`,
            ),
            sigDigest,
          );
          // Verified again now: the next no-op is back to the plain destination requests.
          assert.deepEqual((await run()).d, plainDst);
        },
      );

      await t.step(
        "re-signed upstream is carried; a destination-only signature is still drift",
        async () => {
          const resigned = await sign(c1, [`${src.host}/team/idx`, "registry.example/idx"]);
          const payload = simpleSigningPayload(`${dst.host}/mirror/idx`, c2);
          const localDigest = await pushManifestWithBlobs(
            dst,
            `mirror/idx:${tagOf(c2, ".sig")}`,
            buildSignatureManifest([{
              payload,
              signature: await opensslSign(key.privateKeyFile, payload),
            }]),
          );
          const upstream = await sign(c2, [`${src.host}/team/idx`, "registry.example/other"]);
          const out = (await run()).out;
          // c2's .sig is drift (the destination's holds a signature the source's lacks).
          assert.deepEqual(entriesOf(out).map(counts), [["exists", 2, 0]]);
          assert.equal(
            await sameBytes(
              src,
              dst,
              `team/idx:${tagOf(c1, ".sig")}`,
              `mirror/idx:${tagOf(c1, ".sig")}`,
            ),
            resigned.digest,
          );
          assert.equal(await headDigest(dst, `mirror/idx:${tagOf(c2, ".sig")}`), localDigest);
          assert.match(
            await logText(dir),
            new RegExp(
              `\\[IMAGE_TAG_DRIFT\\] Image: ${dst.host}/mirror/idx:${
                tagOf(c2, ".sig")
              } holds ${localDigest} with signatures the source's ${upstream.digest}`,
            ),
          );
          // The drift is never memoised: the next run HEADs c2's .sig again and says so again.
          const again = await run();
          assert.deepEqual(entriesOf(again.out).map(counts), [["exists", 2, 0]]);
          assert.ok(again.d.includes(sigHead("mirror", c2)), again.d.join("\n"));
          assert.ok(!again.d.includes(sigHead("mirror", c1)), again.d.join("\n"));
        },
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
