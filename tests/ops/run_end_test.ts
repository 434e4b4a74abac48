/** registerOpsSecrets(): what the `notify` and `metrics` sections hold that is secret is masked. */
import assert from "node:assert/strict";
import type { ResolvedConfig } from "../../lib/config/schema.ts";
import { Secrets } from "../../lib/log/redact.ts";
import { registerOpsSecrets } from "../../lib/ops/run_end.ts";

function opsConfig(sections: Pick<ResolvedConfig, "notify" | "metrics">): ResolvedConfig {
  return sections as ResolvedConfig;
}

Deno.test("registerOpsSecrets() masks a header's token alone, the webhook url and its path alone", async (t) => {
  const secrets = new Secrets();
  registerOpsSecrets(
    opsConfig({
      notify: {
        webhook: "https://hooks.example.com/services/T000/B000/XyZsecretPath9",
        headers: { Authorization: "Bearer tok-8c1e5f7a9b", "X-Api-Key": "key-3d5f7a9c1e" },
        on: ["failure"],
        format: "json",
      } as ResolvedConfig["notify"],
      metrics: {
        pushgateway: "https://mirror:pg-pass-4b6d8f@pushgateway.example.com/",
      } as ResolvedConfig["metrics"],
    }),
    secrets,
  );
  const rows: [string, string, string][] = [
    ["a header value", "sent Bearer tok-8c1e5f7a9b", "tok-8c1e5f7a9b"],
    [
      "the token alone, echoed without its scheme",
      "token tok-8c1e5f7a9b refused",
      "tok-8c1e5f7a9b",
    ],
    ["a header without a scheme", "key key-3d5f7a9c1e refused", "key-3d5f7a9c1e"],
    [
      "the webhook url",
      "POST https://hooks.example.com/services/T000/B000/XyZsecretPath9 failed",
      "XyZsecretPath9",
    ],
    ["the webhook path alone", "no route for /services/T000/B000/XyZsecretPath9", "XyZsecretPath9"],
    ["the Pushgateway password", "auth pg-pass-4b6d8f refused", "pg-pass-4b6d8f"],
  ];
  for (const [name, text, secret] of rows) {
    await t.step(name, () => {
      const masked = secrets.mask(text);
      assert.ok(!masked.includes(secret), masked);
      assert.match(masked, /\*{3}/);
    });
  }
});

Deno.test("registerOpsSecrets() with neither section registers nothing", () => {
  const secrets = new Secrets();
  registerOpsSecrets(opsConfig({ notify: undefined, metrics: undefined }), secrets);
  assert.equal(
    secrets.mask("POST https://hooks.example.com/services/T0/B0/x"),
    "POST https://hooks.example.com/services/T0/B0/x",
  );
});
