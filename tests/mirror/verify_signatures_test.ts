/** SignatureVerifier's edges that need no registry: no keys, no digest, a key file gone since validate. */
import assert from "node:assert/strict";
import { MirrorError } from "../../lib/errors.ts";
import type { PlanTask } from "../../lib/mirror/plan.ts";
import { SignatureVerifier } from "../../lib/mirror/verify_signatures.ts";
import { parseReference } from "../../lib/registry/reference.ts";

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
