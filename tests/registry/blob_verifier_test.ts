/**
 * The one verifying blob stream, alone and where it is used: matching bytes pass and are counted;
 * an overlong stream is cut the moment it passes the descriptor's size (an endless source ends at
 * once, within a deadline of its own), a short one and one with other bytes fail at the end, each
 * IMAGE_DIGEST_MISMATCH. The same holds for the OCI layout's reads and writes and for a tar part
 * read back, which go through it.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { MirrorError } from "../../lib/errors.ts";
import { verifyBlob } from "../../lib/registry/blob_verifier.ts";
import { OciLayout } from "../../lib/layout/oci_layout.ts";
import { verifyParts } from "../../lib/layout/tar_parts.ts";
import { endlessBody, within } from "../support/bounded.ts";

function blobOf(size: number, seed = 7): { bytes: Uint8Array; digest: string; size: number } {
  const bytes = new Uint8Array(size).map((_, i) => (i * 31 + seed) & 0xff);
  return { bytes, digest: `sha256:${createHash("sha256").update(bytes).digest("hex")}`, size };
}

/** `bytes` in chunks of 16 KiB. */
function streamOf(bytes: Uint8Array): ReadableStream<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i += 16 * 1024) chunks.push(bytes.slice(i, i + 16 * 1024));
  return ReadableStream.from(chunks);
}

/** Read `stream` to its end, counting what came out; the error it ended with, if any. */
async function drain(
  stream: ReadableStream<Uint8Array>,
): Promise<{ got: number; error?: unknown }> {
  let got = 0;
  try {
    for await (const chunk of stream) got += chunk.length;
    return { got };
  } catch (error) {
    return { got, error };
  }
}

function assertMismatch(error: unknown, pattern: RegExp): void {
  assert.ok(error instanceof MirrorError, String(error));
  assert.equal(error.code, "IMAGE_DIGEST_MISMATCH");
  assert.match(error.message, pattern);
}

Deno.test("verifyBlob() passes matching bytes through and counts them", async () => {
  const blob = blobOf(100_000);
  const seen: number[] = [];
  const verifier = verifyBlob(blob, { onProgress: (n) => seen.push(n) });
  const out = new Uint8Array(
    await new Response(streamOf(blob.bytes).pipeThrough(verifier.stream)).arrayBuffer(),
  );
  assert.deepEqual(out, blob.bytes);
  assert.equal(seen.reduce((a, b) => a + b, 0), blob.size);
  assert.equal(verifier.failure(), undefined);
});

Deno.test("verifyBlob() cuts an endless source as soon as it passes the size", async () => {
  await within(10_000, "an endless blob", async () => {
    const blob = blobOf(100_000);
    let pulled = 0;
    const verifier = verifyBlob(blob, { where: "the test source" });
    const source = endlessBody(new Uint8Array(64 * 1024), (n) => pulled += n);
    const { got, error } = await drain(source.pipeThrough(verifier.stream));
    assertMismatch(error, /^the test source: the source sent more than the descriptor's 100000/);
    assert.equal(verifier.failure(), error);
    assert.ok(got <= blob.size, `${got} bytes passed on`);
    assert.ok(pulled <= blob.size + 4 * 64 * 1024, `${pulled} bytes pulled from the source`);
  });
});

Deno.test("verifyBlob() fails a short stream and other bytes at the end", async (t) => {
  const blob = blobOf(100_000);
  await t.step("short", async () => {
    const verifier = verifyBlob(blob);
    const { error } = await drain(
      streamOf(blob.bytes.subarray(0, 1000)).pipeThrough(verifier.stream),
    );
    assertMismatch(error, /the source sent 1000 of the descriptor's 100000 bytes/);
  });
  await t.step("other bytes of the right size", async () => {
    const verifier = verifyBlob(blob);
    const { got, error } = await drain(
      streamOf(blobOf(100_000, 99).bytes).pipeThrough(verifier.stream),
    );
    assertMismatch(error, new RegExp(`^blob ${blob.digest}: the blob's bytes hash to sha256:`));
    assert.equal(got, blob.size);
  });
  await t.step("an empty blob", async () => {
    const empty = blobOf(0);
    const { error } = await drain(ReadableStream.from([]).pipeThrough(verifyBlob(empty).stream));
    assert.equal(error, undefined);
  });
});

Deno.test("OCI layout: a blob read longer than its descriptor is cut as soon as it passes it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bb-verifier-" });
  try {
    const blob = blobOf(32 * 1024 * 1024);
    await using layout = await OciLayout.create(dir);
    await layout.writeBlob(blob, streamOf(blob.bytes));
    const { body } = await layout.openBlob(blob.digest, 1000);
    const { got, error } = await within(10_000, "an overlong layout read", () => drain(body));
    assert.ok(got <= 1000, `${got} bytes passed on past the descriptor's 1000`);
    assertMismatch(error, /more than the descriptor's 1000 bytes/);
    assert.ok(error instanceof Error && error.message.startsWith(layout.blobPath(blob.digest)));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("OCI layout: a write from an endless source ends at once, nothing left behind", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bb-verifier-" });
  try {
    await using layout = await OciLayout.create(dir);
    const blob = blobOf(100_000);
    let pulled = 0;
    await within(10_000, "an endless layout write", async () => {
      await assert.rejects(
        layout.writeBlob(blob, endlessBody(new Uint8Array(64 * 1024), (n) => pulled += n)),
        (e: unknown) => (assertMismatch(e, /more than the descriptor's 100000 bytes/), true),
      );
    });
    assert.ok(pulled <= blob.size + 4 * 64 * 1024, `${pulled} bytes pulled`);
    const left = [...Deno.readDirSync(`${dir}/blobs/sha256`)];
    assert.deepEqual(left, []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("verifyParts(): a tar part that reads back other than written fails, naming it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bb-verifier-" });
  try {
    const part = blobOf(50_000);
    await Deno.writeFile(`${dir}/p.tar.000`, part.bytes);
    const info = { name: "p.tar.000", size: part.size, sha256: part.digest };
    await verifyParts(dir, [info]);
    await Deno.writeFile(`${dir}/p.tar.000`, blobOf(50_000, 3).bytes);
    await assert.rejects(
      verifyParts(dir, [info]),
      (e: unknown) => (assertMismatch(e, new RegExp(`^${dir}/p.tar.000 \\(read back`)), true),
    );
    await Deno.writeFile(`${dir}/p.tar.000`, new Uint8Array(60_000));
    await assert.rejects(
      verifyParts(dir, [info]),
      (e: unknown) => (assertMismatch(e, /more than the descriptor's 50000 bytes/), true),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
