/**
 * SignatureVerifier without a registry: no keys, no digest, a key file gone since validate, and
 * verdicts over an in-memory source store (one verdict per requirement, unsigned is never a pass).
 */
import assert from "node:assert/strict";
import { MirrorError } from "../../lib/errors.ts";
import type { PlanTask } from "../../lib/mirror/plan.ts";
import { SignatureVerifier } from "../../lib/mirror/verify_signatures.ts";
import { parseReference } from "../../lib/registry/reference.ts";
import {
  buildSignatureManifest,
  makeKey,
  opensslFingerprint,
  opensslSign,
  simpleSigningPayload,
  type TestKey,
} from "../support/cosign_fixture.ts";
import { MemoryStore } from "../support/memory_store.ts";

const DIGEST = `sha256:${"ab".repeat(32)}`;

function task(verifyKeys: string[] | undefined, sourceDigest?: string): PlanTask {
  return {
    id: 0,
    imageKey: "src.example/team/app:1",
    target: "dr",
    source: parseReference("src.example/team/app:1"),
    destination: parseReference("dst.example/m/app:1"),
    repo: null,
    action: "push",
    comparedBy: "manifest",
    sourceDigest,
    verifyKeys,
  };
}

function verifier(): SignatureVerifier {
  return new SignatureVerifier({
    clientFor: () => {
      throw new Error("no registry read is expected");
    },
  });
}

Deno.test("SignatureVerifier.verify() without keys checks nothing", async () => {
  assert.equal(await verifier().verify(task(undefined, DIGEST)), null);
  assert.equal(await verifier().verify(task([], DIGEST)), null);
});

Deno.test("SignatureVerifier.verify() refuses a task whose source digest is unknown", async () => {
  await assert.rejects(() => verifier().verify(task(["/x/cosign.pub"])), (e: unknown) => {
    assert.ok(e instanceof MirrorError, String(e));
    assert.equal(e.code, "IMAGE_SIGNATURE_INVALID");
    assert.equal(e.message, "src.example/team/app: no source digest to verify; not mirrored");
    return true;
  });
});

Deno.test("SignatureVerifier.verify(): a key file gone since validate is CONFIG_INVALID, not an internal error", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/cosign.pub`;
    await assert.rejects(() => verifier().verify(task([file], DIGEST)), (e: unknown) => {
      assert.ok(e instanceof MirrorError, String(e));
      assert.equal(e.code, "CONFIG_INVALID");
      assert.equal(e.message, `Cannot read cosign key ${file}`);
      return true;
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** A source store holding `team/app` signed by `signer` (a `.sig` next to DIGEST). */
async function signedSource(signer: TestKey): Promise<MemoryStore> {
  const store = new MemoryStore("src.example");
  const payload = simpleSigningPayload("src.example/team/app", DIGEST);
  const signature = await opensslSign(signer.privateKeyFile, payload);
  const built = buildSignatureManifest([{ payload, signature }]);
  for (const blob of built.blobs) store.putBlob(blob);
  store.putManifest("team/app", `${DIGEST.replace(":", "-")}.sig`, {
    mediaType: built.mediaType,
    bytes: built.manifest,
  });
  return store;
}

function verifierOver(store: MemoryStore): SignatureVerifier {
  return new SignatureVerifier({ clientFor: () => store });
}

Deno.test("SignatureVerifier.verify(): two entries on one digest with other keys each get their own verdict", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "bb-verify-unit-" });
  try {
    const keyA = await makeKey(dir, "p256");
    const keyB = await makeKey(dir, "p256");
    const fingerprintA = await opensslFingerprint(keyA.publicKeyFile);
    const store = await signedSource(keyA);
    const byA = task([keyA.publicKeyFile], DIGEST);
    const byB = { ...task([keyB.publicKeyFile], DIGEST), imageKey: "src.example/team/app:stable" };
    const refusedByB = (e: unknown) => {
      assert.ok(e instanceof MirrorError, String(e));
      assert.equal(e.code, "IMAGE_SIGNATURE_INVALID");
      assert.match(e.message, /: bad signature \(key [0-9a-f]{64}\); not mirrored$/);
      return true;
    };
    await t.step("[A] first, then [B]: A passes, B is refused", async () => {
      const verifier = verifierOver(store);
      assert.equal(await verifier.verify(byA), fingerprintA);
      await assert.rejects(() => verifier.verify(byB), refusedByB);
    });
    await t.step("[B] first, then [A]: B is refused, A passes", async () => {
      const verifier = verifierOver(store);
      await assert.rejects(() => verifier.verify(byB), refusedByB);
      assert.equal(await verifier.verify(byA), fingerprintA);
    });
    await t.step("the same requirement twice is read once", async () => {
      const verifier = verifierOver(store);
      const before = store.reads.length;
      assert.equal(await verifier.verify(byA), fingerprintA);
      const once = store.reads.length - before;
      assert.equal(
        await verifier.verify({ ...byA, imageKey: "src.example/team/app:1.0" }),
        fingerprintA,
      );
      assert.equal(store.reads.length - before, once);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("SignatureVerifier.verify(): an unsigned digest with keys configured is IMAGE_UNSIGNED, never a pass", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bb-verify-unit-" });
  try {
    const keyA = await makeKey(dir, "p256");
    const verifier = verifierOver(new MemoryStore("src.example"));
    await assert.rejects(
      () => verifier.verify(task([keyA.publicKeyFile], DIGEST)),
      (e: unknown) => {
        assert.ok(e instanceof MirrorError, String(e));
        assert.equal(e.code, "IMAGE_UNSIGNED");
        assert.match(
          e.message,
          /^src\.example\/team\/app@sha256:[0-9a-f]{64}: no signature \(key [0-9a-f]{64}\); not mirrored$/,
        );
        return true;
      },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
