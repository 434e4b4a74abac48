/**
 * BlobUploader against a small loopback upload endpoint that answers 202/413/411 by rule: whole
 * PUT, chunked fallback, chunk-size learning, OCI-Chunk-Min-Length, cancel, and size + digest
 * verification in the stream. (A real registry behind a 413 proxy: tests/engine/registry_engine_test.ts.)
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { MirrorError } from "../../lib/errors.ts";
import {
  BlobUploader,
  CHUNK_MIN_BYTES,
  CHUNK_START_BYTES,
  type RegistryCall,
} from "../../lib/registry/blob_upload.ts";
import { RegistryError } from "../../lib/registry/registry_error.ts";

/** How the fake upload endpoint treats bodies. */
interface Rules {
  /** Whole-blob PUTs (with a body) get this status instead of being stored. */
  refuseWhole?: 411 | 413;
  /** PATCH bodies over this many bytes get 413. */
  maxPatchBytes?: number;
  /** Sent as OCI-Chunk-Min-Length on the POST. */
  minChunk?: number;
}

interface Upload {
  id: number;
  bytes: Uint8Array[];
  done: boolean;
  deleted: boolean;
}

/** A loopback upload endpoint: POST opens a session, PATCH appends, PUT ?digest= closes it. */
function startUploadServer(rules: Rules = {}) {
  const log: string[] = [];
  const uploads = new Map<number, Upload>();
  const stored = new Map<string, Uint8Array>();
  let next = 1;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const url = new URL(req.url);
    let body: Uint8Array;
    try {
      body = new Uint8Array(await req.arrayBuffer());
    } catch {
      log.push(`${req.method} ${url.pathname} (body cut)`);
      return new Response(null, { status: 400 }); // the client cut its body (a failed check)
    }
    log.push(`${req.method} ${url.pathname}${body.length ? ` ${body.length}` : ""}`);
    if (req.method === "POST") {
      const id = next++;
      uploads.set(id, { id, bytes: [], done: false, deleted: false });
      const headers: Record<string, string> = { location: `/upload/${id}` };
      if (rules.minChunk) headers["oci-chunk-min-length"] = String(rules.minChunk);
      return new Response(null, { status: 202, headers });
    }
    const upload = uploads.get(Number(url.pathname.split("/").pop()));
    if (!upload) return new Response(null, { status: 404 });
    if (req.method === "DELETE") {
      upload.deleted = true;
      return new Response(null, { status: 204 });
    }
    if (req.method === "PATCH" && req.headers.get("content-range") === null) {
      // A streamed PATCH (a large blob whole, as docker sends it): a whole body as a PUT's.
      if (rules.refuseWhole) return new Response("refused", { status: rules.refuseWhole });
      upload.bytes.push(body);
      return new Response(null, { status: 202, headers: { location: `/upload/${upload.id}` } });
    }
    if (req.method === "PATCH") {
      if (rules.maxPatchBytes !== undefined && body.length > rules.maxPatchBytes) {
        return new Response("too large", { status: 413 });
      }
      const offset = upload.bytes.reduce((n, b) => n + b.length, 0);
      assert.equal(req.headers.get("content-range"), `${offset}-${offset + body.length - 1}`);
      upload.bytes.push(body);
      return new Response(null, { status: 202, headers: { location: `/upload/${upload.id}` } });
    }
    if (req.method === "PUT") {
      if (body.length > 0 && rules.refuseWhole) {
        return new Response("refused", { status: rules.refuseWhole });
      }
      upload.bytes.push(body);
      const all = concat(upload.bytes);
      const digest = url.searchParams.get("digest") ?? "";
      if (sha256(all) !== digest) return new Response("digest", { status: 400 });
      upload.done = true;
      stored.set(digest, all);
      return new Response(null, { status: 201 });
    }
    return new Response(null, { status: 405 });
  });
  const base = `http://127.0.0.1:${server.addr.port}`;
  return {
    base,
    log,
    uploads,
    stored,
    async [Symbol.asyncDispose]() {
      await server.shutdown();
    },
  };
}

/** An uploader whose `send` is plain fetch (no auth) with the client's status check. */
function uploaderFor(base: string): BlobUploader {
  const resolve = (location: string) => new URL(location, `${base}/v2/`);
  return new BlobUploader({
    host: base.slice("http://".length),
    resolve,
    retryPolicy: (signal) => ({ maxAttempts: 1, minDelayMs: 1, signal }),
    async send(call: RegistryCall) {
      const url = call.path instanceof URL ? call.path : new URL(`${base}/v2/${call.path}`);
      const res = await fetch(url, {
        method: call.method,
        headers: call.headers,
        body: call.body ? await call.body() : undefined,
        signal: call.signal,
      });
      if (call.ok.includes(res.status)) return res;
      await res.body?.cancel();
      throw new RegistryError("IMAGE_PUSH_FAILED", `${call.method} ${url} answered ${res.status}`, {
        status: res.status,
      });
    },
  });
}

function blobOf(size: number, seed = 7): { bytes: Uint8Array; digest: string; size: number } {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 31 + seed) & 0xff;
  return { bytes, digest: sha256(bytes), size };
}

function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  return all;
}

/** A stream of `bytes` in 64 KiB pieces. */
function streamOf(bytes: Uint8Array): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream({
    pull(controller) {
      if (at >= bytes.length) return controller.close();
      controller.enqueue(bytes.slice(at, at + 64 * 1024));
      at += 64 * 1024;
    },
  });
}

async function rejectsWith(fn: () => Promise<unknown>, code: string, pattern?: RegExp) {
  await assert.rejects(fn, (e: unknown) => {
    assert.ok(e instanceof MirrorError, String(e));
    assert.equal(e.code, code, e.message);
    if (pattern) assert.match(e.message, pattern);
    return true;
  });
}

Deno.test("BlobUploader.upload() sends a blob in one PUT while the registry takes it", async () => {
  await using server = startUploadServer();
  const uploader = uploaderFor(server.base);
  const blob = blobOf(300 * 1024);
  let progress = 0;
  await uploader.upload("team/app", {
    blob,
    open: () => Promise.resolve(streamOf(blob.bytes)),
    onProgress: (n) => progress += n,
  });
  assert.deepEqual(server.log, ["POST /v2/team/app/blobs/uploads/", `PUT /upload/1 ${blob.size}`]);
  assert.deepEqual(server.stored.get(blob.digest), blob.bytes);
  assert.equal(progress, blob.size);
  assert.equal(uploader.chunkBytes, null);
});

for (const status of [413, 411] as const) {
  Deno.test(`BlobUploader.upload() falls back to chunks after a ${status} and keeps them`, async () => {
    await using server = startUploadServer({ refuseWhole: status });
    const uploader = uploaderFor(server.base);
    const blob = blobOf(CHUNK_START_BYTES + 1024 * 1024);
    await uploader.upload("team/app", {
      blob: blob,
      open: () => Promise.resolve(streamOf(blob.bytes)),
    });
    assert.deepEqual(server.log, [
      "POST /v2/team/app/blobs/uploads/",
      // A large blob goes in one streamed PATCH (then a PUT without a body).
      `PATCH /upload/1 ${blob.size}`,
      "DELETE /upload/1",
      "POST /v2/team/app/blobs/uploads/",
      `PATCH /upload/2 ${CHUNK_START_BYTES}`,
      `PATCH /upload/2 ${1024 * 1024}`,
      "PUT /upload/2",
    ]);
    assert.equal(server.uploads.get(1)?.deleted, true, "the refused session is deleted");
    assert.deepEqual(server.stored.get(blob.digest), blob.bytes);
    assert.equal(uploader.chunkBytes, CHUNK_START_BYTES);
    // The next blob goes straight to chunks.
    server.log.length = 0;
    const small = blobOf(1000, 9);
    await uploader.upload("team/app", {
      blob: small,
      open: () => Promise.resolve(streamOf(small.bytes)),
    });
    assert.deepEqual(server.log, [
      "POST /v2/team/app/blobs/uploads/",
      "PATCH /upload/3 1000",
      "PUT /upload/3",
    ]);
  });
}

Deno.test("BlobUploader.upload() halves a refused chunk until the registry takes it", async () => {
  await using server = startUploadServer({ refuseWhole: 413, maxPatchBytes: 1024 * 1024 });
  const uploader = uploaderFor(server.base);
  const blob = blobOf(3 * 1024 * 1024);
  await uploader.upload("team/app", {
    blob: blob,
    open: () => Promise.resolve(streamOf(blob.bytes)),
  });
  // 3 MiB refused (a short last chunk says more than the chunk size), then 1.5 MiB, then 768 KiB.
  assert.equal(uploader.chunkBytes, 768 * 1024);
  assert.deepEqual(server.stored.get(blob.digest), blob.bytes);
  const patches = server.log.filter((l) => l.startsWith("PATCH"));
  assert.deepEqual(patches.slice(-4), Array(4).fill("PATCH /upload/4 786432"));
  assert.ok([1, 2, 3].every((id) => server.uploads.get(id)?.deleted), "refused sessions deleted");
});

Deno.test("BlobUploader.upload() fails IMAGE_PUSH_FAILED when even the smallest chunk is refused", async () => {
  await using server = startUploadServer({ refuseWhole: 413, maxPatchBytes: 1000 });
  const uploader = uploaderFor(server.base);
  const blob = blobOf(CHUNK_MIN_BYTES);
  await rejectsWith(
    () =>
      uploader.upload("team/app", {
        blob: blob,
        open: () => Promise.resolve(streamOf(blob.bytes)),
      }),
    "IMAGE_PUSH_FAILED",
    /refuses even 262144-byte chunks/,
  );
  assert.ok([...server.uploads.values()].every((u) => u.deleted), "every session deleted");
});

Deno.test("BlobUploader.upload() uses the registry's OCI-Chunk-Min-Length as chunk size", async () => {
  await using server = startUploadServer({ refuseWhole: 413, minChunk: CHUNK_START_BYTES * 2 });
  const uploader = uploaderFor(server.base);
  const blob = blobOf(CHUNK_START_BYTES + 4096);
  await uploader.upload("team/app", {
    blob: blob,
    open: () => Promise.resolve(streamOf(blob.bytes)),
  });
  assert.deepEqual(server.log.slice(-2), [`PATCH /upload/2 ${blob.size}`, "PUT /upload/2"]);
});

Deno.test("BlobUploader.upload() checks size and digest in the stream and deletes the session", async (t) => {
  const blob = blobOf(200 * 1024);
  const other = blobOf(200 * 1024, 99).bytes;
  const cases: [string, Uint8Array, RegExp][] = [
    ["other bytes", other, /bytes hash to sha256:/],
    ["too many bytes", concat([blob.bytes, new Uint8Array(10)]), /more than the descriptor's/],
    ["too few bytes", blob.bytes.subarray(0, 1000), /sent 1000 of the descriptor's/],
  ];
  for (const chunked of [false, true]) {
    for (const [name, bytes, pattern] of cases) {
      await t.step(`${name}${chunked ? " (chunked)" : ""}`, async () => {
        await using server = startUploadServer(chunked ? { refuseWhole: 413 } : {});
        const uploader = uploaderFor(server.base);
        if (chunked) {
          const warm = blobOf(10);
          await uploader.upload("r", {
            blob: warm,
            open: () => Promise.resolve(streamOf(warm.bytes)),
          });
        }
        await rejectsWith(
          () => uploader.upload("r", { blob, open: () => Promise.resolve(streamOf(bytes)) }),
          "IMAGE_DIGEST_MISMATCH",
          pattern,
        );
        assert.equal(server.stored.has(blob.digest), false, "nothing stored");
        const last = [...server.uploads.values()].at(-1);
        assert.equal(last?.deleted, true, "the session is deleted");
      });
    }
  }
});

Deno.test("BlobUploader.upload() refuses a digest or size outside the grammar before any request", async () => {
  await using server = startUploadServer();
  const uploader = uploaderFor(server.base);
  const open = () => Promise.resolve(streamOf(new Uint8Array(1)));
  await rejectsWith(
    () => uploader.upload("r", { blob: { digest: "sha256:../x", size: 1 }, open }),
    "IMAGE_MANIFEST_INVALID",
  );
  await rejectsWith(
    () => uploader.upload("r", { blob: { digest: blobOf(1).digest, size: -1 }, open }),
    "IMAGE_MANIFEST_INVALID",
  );
  assert.deepEqual(server.log, []);
});

Deno.test("BlobUploader.cancel() deletes a session and ignores failures", async () => {
  await using server = startUploadServer();
  const uploader = uploaderFor(server.base);
  await uploader.cancel("r", new URL(`${server.base}/upload/42`));
  assert.deepEqual(server.log, ["DELETE /upload/42"]);
});
