/** docker's config.json: the `auth` field is base64 of `user:password` as UTF-8, as docker writes it. */
import assert from "node:assert/strict";
import { authFor, readDockerConfig } from "../../lib/credentials/docker_config.ts";

/** base64 of the UTF-8 bytes, as docker's config.json holds it. */
function dockerAuth(text: string): string {
  return btoa(String.fromCharCode(...new TextEncoder().encode(text)));
}

Deno.test("authFor() decodes an auth entry as UTF-8, so a password outside Latin-1 survives", async () => {
  const password = "pässwörd€✓";
  const config = await readDockerConfig({
    DOCKER_AUTH_CONFIG: JSON.stringify({
      auths: {
        "registry.example": { auth: dockerAuth(`mirror:${password}`) },
        "ascii.example": { auth: btoa("robot:plain-secret") },
        "broken.example": { auth: btoa("\xff\xfe:x") },
      },
    }),
  });
  assert.deepEqual(authFor(config, "registry.example"), {
    kind: "basic",
    username: "mirror",
    password,
    source: "docker-config",
  });
  assert.deepEqual(authFor(config, "ascii.example"), {
    kind: "basic",
    username: "robot",
    password: "plain-secret",
    source: "docker-config",
  });
  // Bytes that are not UTF-8 are not a credential (the entry's auth is ignored).
  assert.equal(authFor(config, "broken.example"), null);
});
