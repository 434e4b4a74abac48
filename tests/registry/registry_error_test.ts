/**
 * errorFromResponse(): a 403 that speaks of a quota (Quay's DENIED body, Harbor's bare 403) is
 * IMAGE_QUOTA_EXCEEDED and never retried (an upload refused so is cancelled); a plain permission
 * 403 keeps LOGIN_FAILED.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { Secrets } from "../../lib/log/redact.ts";
import { RegistryClient } from "../../lib/registry/registry_client.ts";
import { errorFromResponse, type RegistryError } from "../../lib/registry/registry_error.ts";
import { startRecordingHost } from "../support/recording_host.ts";

const url = new URL("https://registry.example/v2/acme/app/blobs/uploads/");

Deno.test("errorFromResponse(): quota 403s by their words, other 403s stay permission errors", async (t) => {
  const rows: [string, number, string, string][] = [
    [
      "Quay DENIED",
      403,
      '{"errors":[{"code":"DENIED","message":"Quota has been exceeded on namespace","detail":{}}]}',
      "IMAGE_QUOTA_EXCEEDED",
    ],
    [
      "Harbor bare 403",
      403,
      '{"errors":[{"code":"DENIED","message":"adding 6.1 MiB of storage resource, which when updated to current usage of 9.9 MiB will exceed the configured upper limit of 10.0 MiB."}]}',
      "IMAGE_QUOTA_EXCEEDED",
    ],
    ["plain text quota", 403, "project quota exceeded", "IMAGE_QUOTA_EXCEEDED"],
    [
      "permission",
      403,
      '{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}',
      "LOGIN_FAILED",
    ],
    ["empty 403", 403, "", "LOGIN_FAILED"],
    [
      "quota words on a 500",
      500,
      '{"errors":[{"code":"UNKNOWN","message":"quota service down"}]}',
      "IMAGE_PUSH_FAILED",
    ],
  ];
  for (const [name, status, body, code] of rows) {
    await t.step(name, async () => {
      const error = await errorFromResponse(new Response(body, { status }), {
        method: "POST",
        url,
        write: true,
      });
      assert.equal(error.code, code);
      if (status === 403) assert.equal(error.retryable, false);
      if (code === "IMAGE_QUOTA_EXCEEDED") assert.match(error.message, /storage quota is full/);
    });
  }
});

Deno.test("a quota 403 on a blob's final PUT: IMAGE_QUOTA_EXCEEDED, not retried, the session deleted", async () => {
  await using host = startRecordingHost({
    handle(req) {
      const url = new URL(req.url);
      if (req.method === "POST") {
        return new Response(null, {
          status: 202,
          headers: { location: "/v2/acme/app/blobs/uploads/s1", range: "0-0" },
        });
      }
      if (req.method === "PUT") {
        return Response.json({
          errors: [{ code: "DENIED", message: "Quota has been exceeded on namespace", detail: {} }],
        }, { status: 403 });
      }
      if (req.method === "DELETE" && url.pathname.endsWith("/s1")) {
        return new Response(null, { status: 204 });
      }
      return new Response(null, { status: 404 });
    },
  });
  const client = new RegistryClient({
    host: host.host,
    scheme: "http",
    secrets: new Secrets(),
    maxRetries: 3,
    retryDelayMs: 1,
  });
  const bytes = new TextEncoder().encode("layer bytes");
  const digest = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
  try {
    await assert.rejects(
      client.blobUpload(
        "acme/app",
        { digest, size: bytes.length },
        () => Promise.resolve(ReadableStream.from([bytes])),
      ),
      (error: RegistryError) => {
        assert.equal(error.code, "IMAGE_QUOTA_EXCEEDED");
        return true;
      },
    );
  } finally {
    client.close();
  }
  assert.deepEqual(host.requests.map((r) => `${r.method} ${r.path.split("?")[0]}`), [
    "POST /v2/acme/app/blobs/uploads/",
    "PUT /v2/acme/app/blobs/uploads/s1",
    "DELETE /v2/acme/app/blobs/uploads/s1",
  ]);
});
