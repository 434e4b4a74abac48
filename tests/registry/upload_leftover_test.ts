/**
 * A failed large blob upload leaves nothing at the destination: its session is deleted with its
 * current Location (the PATCH's answer), so distribution drops the bytes it took. Real
 * distribution on loopback; its storage's `_uploads` area is read after each failure.
 * Distribution 2.8 leaves an empty hash state (`hashstates/sha256/0`, about 100 bytes) after any
 * DELETE, even of a session that never took a byte (the first step shows it): that stub is not a
 * leftover of ours; `data` and `startedat` are.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { Secrets } from "../../lib/log/redact.ts";
import { RegistryClient } from "../../lib/registry/registry_client.ts";
import { within } from "../support/bounded.ts";
import { registryBinaryAvailable, startRegistry } from "../support/registry.ts";

const skip = registryBinaryAvailable() ? "" : " (ignored: docker-registry is not installed)";

/**
 * Files under every `_uploads` dir of `root` (recursive), as paths relative to root, but the empty
 * hash state distribution writes on every DELETE.
 */
async function uploadLeftovers(root: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (dir: string, inUploads: boolean) => {
    let entries: Deno.DirEntry[];
    try {
      entries = await Array.fromAsync(Deno.readDir(dir));
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return;
      throw error;
    }
    for (const entry of entries) {
      const path = `${dir}/${entry.name}`;
      const uploads = inUploads || entry.name === "_uploads";
      if (entry.isDirectory) await walk(path, uploads);
      else if (uploads && !path.endsWith("/hashstates/sha256/0")) {
        found.push(path.slice(root.length + 1));
      }
    }
  };
  await walk(root, false);
  return found;
}

Deno.test({
  name: `a failed large blob upload leaves nothing in the destination's _uploads${skip}`,
  ignore: Boolean(skip),
  async fn(t) {
    await using dst = await startRegistry();
    const client = new RegistryClient({
      host: dst.host,
      scheme: "http",
      secrets: new Secrets(),
      maxRetries: 0,
    });
    try {
      await t.step(
        "a session opened and deleted: only distribution's own stub is left",
        async () => {
          const post = await fetch(`${dst.url}/v2/team/app/blobs/uploads/`, { method: "POST" });
          await post.body?.cancel();
          const session = new URL(post.headers.get("location") ?? "", dst.url);
          const deleted = await fetch(session, { method: "DELETE" });
          await deleted.body?.cancel();
          assert.equal(deleted.status, 204);
          assert.deepEqual(await uploadLeftovers(dst.dataDir), []);
          const stub = await Array.fromAsync(
            Deno.readDir(
              `${dst.dataDir}/docker/registry/v2/repositories/team/app/_uploads/${
                session.pathname.split("/").pop()
              }/hashstates/sha256`,
            ),
          );
          assert.deepEqual(stub.map((e) => e.name), ["0"]);
        },
      );
      const size = 64 * 1024 * 1024;
      const blob = { digest: `sha256:${"b".repeat(64)}`, size };
      const chunk = new Uint8Array(1024 * 1024).fill(7);
      const cases: [string, (sent: number) => "more" | "fail" | "end"][] = [
        // The source breaks after 24 MiB of 64 (a reset mid-layer).
        ["the source fails mid-blob", (sent) => sent < 24 ? "more" : "fail"],
        // All 64 MiB came, but they are other bytes than the digest names.
        [
          "the bytes do not match the digest",
          (sent) => sent < size / chunk.length ? "more" : "end",
        ],
      ];
      for (const [what, next] of cases) {
        await t.step(what, () =>
          within(60_000, what, async (signal) => {
            await assert.rejects(() =>
              client.blobUpload("team/app", blob, () => {
                let sent = 0;
                return Promise.resolve(
                  new ReadableStream<Uint8Array>({
                    pull(controller) {
                      const step = next(sent);
                      if (step === "fail") controller.error(new Error("source reset"));
                      else if (step === "end") controller.close();
                      else {
                        sent++;
                        controller.enqueue(chunk.slice());
                      }
                    },
                  }),
                );
              }, { signal })
            );
            // The registry may take a moment to see the end of the PUT it was reading.
            let left: string[] = [];
            for (let i = 0; i < 50; i++) {
              left = await uploadLeftovers(dst.dataDir);
              if (left.length === 0) break;
              await new Promise((resolve) => setTimeout(resolve, 100));
            }
            assert.deepEqual(
              left,
              [],
              `left in _uploads after ${what}: ${(await dst.accessLog()).join("\n")}`,
            );
          }));
      }
      await t.step(
        "a good large blob still lands (PATCH, then PUT), nothing left",
        () =>
          within(60_000, "a good large blob", async (signal) => {
            const bytes = new Uint8Array(12 * 1024 * 1024).map((_, i) => i % 251);
            const good = {
              digest: `sha256:${createHash("sha256").update(bytes).digest("hex")}`,
              size: bytes.length,
            };
            await client.blobUpload(
              "team/app",
              good,
              () => Promise.resolve(new Blob([bytes]).stream()),
              { signal },
            );
            assert.equal(await client.blobHead("team/app", good.digest, signal), good.size);
            assert.deepEqual(await uploadLeftovers(dst.dataDir), []);
            assert.ok((await dst.accessLog()).some((l) => /^PATCH .* 202$/.test(l)));
          }),
      );
    } finally {
      client.close();
    }
  },
});
