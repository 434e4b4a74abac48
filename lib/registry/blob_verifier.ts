/**
 * The one verifying blob stream: every blob bananna-bot reads (a registry's GET on its way to an
 * upload or a layout file, a layout file on its way to a registry, a signature layer, a tar part
 * read back) passes through {@link verifyBlob}, which counts, hashes and checks the bytes against
 * their descriptor. A stream longer than its descriptor is cut the moment it passes the size (so an
 * endless source ends at once, not when it runs dry); a short one and one with other bytes fail
 * at its end. Every failure is IMAGE_DIGEST_MISMATCH, which no retry repeats.
 *
 * @module
 */
import type { Hash } from "node:crypto";
import { MirrorError } from "../errors.ts";

/** Options of {@link verifyBlob}. */
export interface BlobVerifierOptions {
  /** Names the bytes in messages (a layout's file path); default `blob <digest>`. */
  where?: string;
  /** Told the length of every chunk passed on. */
  onProgress?: (bytes: number) => void;
}

/**
 * A pass-through stream that counts and hashes a blob: it errors the moment the bytes pass
 * `blob.size` (nothing past it is passed on), and at the end when fewer came or the digest
 * differs. `failure()` is that error, for a caller whose request the stream was the body of.
 *
 * @example
 * ```ts
 * import { verifyBlob } from "./blob_verifier.ts";
 * import assert from "node:assert/strict";
 * const digest = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
 * const ok = verifyBlob({ digest, size: 5 });
 * const read = new Response(ReadableStream.from([new TextEncoder().encode("hello")]).pipeThrough(ok.stream));
 * assert.equal(await read.text(), "hello");
 * const long = verifyBlob({ digest, size: 4 });
 * const cut = new Response(ReadableStream.from([new TextEncoder().encode("hello")]).pipeThrough(long.stream));
 * await assert.rejects(cut.text(), /more than the descriptor's 4 bytes/);
 * assert.equal(long.failure()?.code, "IMAGE_DIGEST_MISMATCH");
 * ```
 *
 * @param blob the descriptor the bytes must match
 * @returns the stream, and the error it failed with (if it did)
 */
export function verifyBlob(
  blob: { digest: string; size: number },
  options: BlobVerifierOptions = {},
): { stream: TransformStream<Uint8Array, Uint8Array>; failure: () => MirrorError | undefined } {
  const { onProgress } = options;
  const where = options.where ?? `blob ${blob.digest}`;
  const alg = blob.digest.startsWith("sha512:") ? "sha512" : "sha256";
  let hash: Hash;
  let seen = 0;
  let failure: MirrorError | undefined;
  const fail = (message: string) =>
    failure = new MirrorError("IMAGE_DIGEST_MISMATCH", `${where}: ${message}`);
  const stream = new TransformStream<Uint8Array, Uint8Array>({
    // node:crypto (an incremental hash) is loaded by the first blob streamed, not at start-up:
    // it brings part of Deno's Node layer, which a run that copies nothing never needs.
    async start() {
      const { createHash } = await import("node:crypto");
      hash = createHash(alg);
    },
    transform(chunk, controller) {
      seen += chunk.length;
      if (seen > blob.size) {
        controller.error(fail(`the source sent more than the descriptor's ${blob.size} bytes`));
        return;
      }
      hash.update(chunk);
      onProgress?.(chunk.length);
      controller.enqueue(chunk);
    },
    flush(controller) {
      if (seen < blob.size) {
        controller.error(fail(`the source sent ${seen} of the descriptor's ${blob.size} bytes`));
        return;
      }
      const actual = `${alg}:${hash.digest("hex")}`;
      if (actual !== blob.digest) {
        controller.error(fail(`the blob's bytes hash to ${actual}, not ${blob.digest}`));
      }
    },
  });
  return { stream, failure: () => failure };
}
