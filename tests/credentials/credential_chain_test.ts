/**
 * The credential chain (credential_chain.ts) over real inputs: docker config.json written to a
 * temp dir, and the fake helper tests/testdata/bin/docker-credential-test run as a process found on
 * the run's PATH. The order is config, then a helper (credHelpers, then credsStore), then `auths`;
 * every secret found is registered for masking the moment it is read.
 */
import assert from "node:assert/strict";
import {
  missingCredentialsError,
  resolveCredential,
} from "../../lib/credentials/credential_chain.ts";
import { Secrets } from "../../lib/log/redact.ts";
import type { Credential } from "../../lib/registry/credential.ts";
import { ROOT } from "../support/cli.ts";

const HOST = "registry.example:5000";

/** A docker config dir with `config` as its config.json, and an env that finds the fake helper. */
async function dockerEnv(
  config: Record<string, unknown>,
  helper: { host: string; user: string; secret: string } | null = null,
): Promise<{ env: Record<string, string>; [Symbol.asyncDispose]: () => Promise<void> }> {
  const dir = await Deno.makeTempDir({ prefix: "bb-chain-" });
  await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(config));
  const env: Record<string, string> = {
    DOCKER_CONFIG: dir,
    PATH: `${ROOT}/tests/testdata/bin:${Deno.env.get("PATH") ?? "/usr/bin:/bin"}`,
  };
  if (helper) {
    env.BB_HELPER_HOST = helper.host;
    env.BB_HELPER_USER = helper.user;
    env.BB_HELPER_SECRET = helper.secret;
  }
  return { env, [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }) };
}

Deno.test("resolveCredential(): the config's credential wins, and is masked at once", async () => {
  await using docker = await dockerEnv({
    auths: { [HOST]: { auth: btoa("file-user:file-pass") } },
    credHelpers: { [HOST]: "test" },
  }, { host: HOST, user: "helper-user", secret: "helper-secret-1" });
  const secrets = new Secrets();
  const found = await resolveCredential(HOST, {
    config: { username: "robot", password: "config-secret-1" },
    env: docker.env,
    secrets,
  });
  assert.deepEqual(
    found,
    {
      kind: "basic",
      username: "robot",
      password: "config-secret-1",
      source: "config",
    } satisfies Credential,
  );
  assert.equal(secrets.mask("x config-secret-1 y"), "x *** y");
  assert.equal(secrets.mask(btoa("robot:config-secret-1")), "***");
  // The helper was not asked: its secret was never read, so it is not registered.
  assert.equal(secrets.mask("helper-secret-1"), "helper-secret-1");
});

Deno.test("resolveCredential(): a helper for the host comes before auths; a miss falls back to auths", async (t) => {
  await t.step("credHelpers names a helper that has the host", async () => {
    await using docker = await dockerEnv({
      auths: { [HOST]: { auth: btoa("file-user:file-pass") } },
      credHelpers: { [HOST]: "test" },
    }, { host: HOST, user: "helper-user", secret: "helper-secret-2" });
    const secrets = new Secrets();
    const found = await resolveCredential(HOST, { env: docker.env, secrets });
    assert.deepEqual(
      found,
      {
        kind: "basic",
        username: "helper-user",
        password: "helper-secret-2",
        source: "credential-helper",
      } satisfies Credential,
    );
    assert.equal(secrets.mask("helper-secret-2"), "***");
  });
  await t.step("credsStore's helper has no entry for the host: auths answers", async () => {
    await using docker = await dockerEnv({
      auths: { [HOST]: { auth: btoa("file-user:file-secret-3") } },
      credsStore: "test",
    }, { host: "other.example", user: "u", secret: "s" });
    const secrets = new Secrets();
    const found = await resolveCredential(HOST, { env: docker.env, secrets });
    assert.deepEqual(
      found,
      {
        kind: "basic",
        username: "file-user",
        password: "file-secret-3",
        source: "docker-config",
      } satisfies Credential,
    );
    assert.equal(secrets.mask("file-secret-3"), "***");
  });
  await t.step("a helper answering <token> is an identity token", async () => {
    await using docker = await dockerEnv(
      { credHelpers: { [HOST]: "test" } },
      { host: HOST, user: "<token>", secret: "refresh-token-4" },
    );
    const secrets = new Secrets();
    const found = await resolveCredential(HOST, { env: docker.env, secrets });
    assert.deepEqual(
      found,
      {
        kind: "identity-token",
        token: "refresh-token-4",
        source: "credential-helper",
      } satisfies Credential,
    );
    assert.equal(secrets.mask("refresh-token-4"), "***");
  });
  await t.step(
    "a helper that is not on the run's PATH is LOGIN_MISSING_CREDENTIALS, naming it",
    async () => {
      await using docker = await dockerEnv({ credHelpers: { [HOST]: "absent" } });
      await assert.rejects(
        resolveCredential(HOST, { env: docker.env, secrets: new Secrets() }),
        (error: Error & { code?: string }) =>
          error.code === "LOGIN_MISSING_CREDENTIALS" &&
          error.message.includes("docker-credential-absent is not on PATH"),
      );
    },
  );
});

Deno.test("resolveCredential(): docker.io finds Docker Hub's legacy key; nothing found is anonymous", async () => {
  await using docker = await dockerEnv({
    auths: { "https://index.docker.io/v1/": { identitytoken: "hub-token-5" } },
  });
  const secrets = new Secrets();
  const hub = await resolveCredential("docker.io", { env: docker.env, secrets });
  assert.equal(hub?.kind, "identity-token");
  assert.equal(secrets.mask("hub-token-5"), "***");
  assert.equal(await resolveCredential(HOST, { env: docker.env, secrets }), null);
  // Asked to prompt but with nothing to check an answer with: no prompt, anonymous.
  assert.equal(await resolveCredential(HOST, { env: docker.env, secrets, prompt: true }), null);
});

Deno.test("missingCredentialsError() names the host and every way to provide credentials", () => {
  const error = missingCredentialsError(HOST);
  assert.equal(error.code, "LOGIN_MISSING_CREDENTIALS");
  for (const way of ["in the config", `docker login ${HOST}`, "credential helper", "terminal"]) {
    assert.ok(error.message.includes(way), `${way}: ${error.message}`);
  }
});
