/** `RegistryHosts`: host settings from plain data, and one pooled client per host (no network). */
import assert from "node:assert/strict";
import { Secrets } from "../../lib/log/redact.ts";
import { RegistryHosts } from "../../lib/registry/registry_hosts.ts";

function hosts(): RegistryHosts {
  return new RegistryHosts({
    hosts: [
      { host: "quay.example", scheme: "https", caFile: "/etc/ca.pem", username: "u" },
      { host: "quay.example", scheme: "http" },
      { host: "127.0.0.1:5000", scheme: "https" },
    ],
    timeoutMs: 1000,
    maxRetries: 0,
    retryDelayMs: 10,
    maxRetryWaitMs: 1000,
    maxManifestBytes: 1024,
    secrets: new Secrets(),
  });
}

Deno.test("`RegistryHosts.connection()` gives the configured entry (first wins), else defaults", () => {
  const pool = hosts();
  assert.deepEqual(pool.connection("quay.example"), {
    host: "quay.example",
    scheme: "https",
    caFile: "/etc/ca.pem",
    username: "u",
  });
  assert.equal(pool.connection("127.0.0.1:5000").scheme, "https", "configured beats loopback");
  assert.deepEqual(pool.connection("ghcr.io"), { host: "ghcr.io", scheme: "https" });
  assert.deepEqual(pool.connection("localhost:5001"), { host: "localhost:5001", scheme: "http" });
});

Deno.test("`RegistryHosts.client()` is one client per host; `adopt()` replaces it", () => {
  const pool = hosts();
  const first = pool.client("ghcr.io");
  assert.equal(pool.client("ghcr.io"), first);
  const verified = pool.newClient("ghcr.io", null);
  assert.notEqual(verified, first);
  pool.adopt("ghcr.io", verified);
  assert.equal(pool.client("ghcr.io"), verified);
  pool.closeAll();
  assert.notEqual(pool.client("ghcr.io"), verified, "closeAll empties the pool");
  pool.closeAll();
});
