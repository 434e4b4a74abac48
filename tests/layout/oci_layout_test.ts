/**
 * The layout writer's crash-safety rules (shared/registry-protocols.md §9.6) on a real temp dir:
 * bytes that do not match their descriptor never get the blob's name (and leave no temp file),
 * stray temp files of a crashed writer are removed on open, a damaged blob already there is
 * hashed and not trusted, one writer at a time, and a read of a corrupt blob fails at its end
 * naming the file.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { MirrorError } from "../../lib/errors.ts";
import { OciLayout, REF_NAME } from "../../lib/layout/oci_layout.ts";

function digestOf(bytes: Uint8Array): string {
  return "sha256:" + createHash("sha256").update(bytes).digest("hex");
}

async function names(dir: string): Promise<string[]> {
  const found: string[] = [];
  for await (const entry of Deno.readDir(dir)) found.push(entry.name);
  return found.sort();
}

Deno.test("layout writer: verified blobs only, strays removed, one writer", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "bb-layout-" });
  const blob = new TextEncoder().encode("hello layout");
  const digest = digestOf(blob);
  const hex = digest.slice(7);
  try {
    await t.step("bytes that do not match are refused; no blob, no temp file", async () => {
      await using layout = await OciLayout.create(dir);
      const other = new TextEncoder().encode("hello LAYOUT");
      await assert.rejects(
        layout.writeBlob({ digest, size: blob.length }, ReadableStream.from([other])),
        (e: unknown) => e instanceof MirrorError && e.code === "IMAGE_DIGEST_MISMATCH",
      );
      await assert.rejects(
        layout.writeBlob({ digest, size: 5 }, ReadableStream.from([blob])),
        (e: unknown) => e instanceof MirrorError && e.code === "IMAGE_DIGEST_MISMATCH",
      );
      assert.deepEqual(await names(`${dir}/blobs/sha256`), []);
      assert.deepEqual(await names(dir), [".bananna-layout.lock", "blobs", "oci-layout"]);
    });

    await t.step("a second writer is refused while the first holds the lock", async () => {
      await using layout = await OciLayout.create(dir);
      await assert.rejects(
        OciLayout.create(dir),
        (e: unknown) => e instanceof MirrorError && e.code === "MIRROR_LOCKED",
      );
      await layout.writeBlob({ digest, size: blob.length }, ReadableStream.from([blob]));
      assert.deepEqual(await names(`${dir}/blobs/sha256`), [hex]);
      assert.equal(await Deno.readTextFile(`${dir}/blobs/sha256/${hex}`), "hello layout");
      await layout.setEntry({
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        digest,
        size: blob.length,
        annotations: { [REF_NAME]: "example.com/a:1" },
      });
    });

    await t.step("stray temp files of a crashed writer are removed on open", async () => {
      await Deno.writeTextFile(`${dir}/blobs/sha256/.tmp-abc-12345678`, "half");
      await Deno.writeTextFile(`${dir}/index.json.tmp-12345678`, "{");
      await using layout = await OciLayout.create(dir);
      assert.deepEqual(await names(`${dir}/blobs/sha256`), [hex]);
      assert.deepEqual(await names(dir), [
        ".bananna-layout.lock",
        "blobs",
        "index.json",
        "oci-layout",
      ]);
      assert.equal(layout.entry("example.com/a:1")?.digest, digest);
    });

    await t.step("a damaged blob already there is not trusted by a writer", async () => {
      await Deno.writeTextFile(`${dir}/blobs/sha256/${hex}`, "hellO layout");
      await using layout = await OciLayout.create(dir);
      assert.equal(await layout.hasBlob(digest), null);
      assert.deepEqual(await names(`${dir}/blobs/sha256`), []);
    });

    await t.step("reading a corrupt blob fails at its end, naming the file", async () => {
      await Deno.writeTextFile(`${dir}/blobs/sha256/${hex}`, "hellO layout");
      const layout = await OciLayout.read(dir);
      const { body } = await layout.openBlob(digest);
      await assert.rejects(
        new Response(body).arrayBuffer(),
        (e: unknown) =>
          e instanceof MirrorError && e.code === "IMAGE_DIGEST_MISMATCH" &&
          e.message.startsWith(`${dir}/blobs/sha256/${hex}: the blob's bytes hash to`),
      );
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
