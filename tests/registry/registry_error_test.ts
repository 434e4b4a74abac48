/**
 * errorFromResponse(): a 403 that speaks of a quota (Quay's DENIED body, Harbor's bare 403) is
 * IMAGE_QUOTA_EXCEEDED and never retried; a plain permission 403 keeps LOGIN_FAILED.
 */
import assert from "node:assert/strict";
import { errorFromResponse } from "../../lib/registry/registry_error.ts";

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
