/**
 * The login check (`RegistryClient.checkAccess`) against a real token-auth registry whose token
 * server refuses one repository (Quay's 405 for a repository that holds no container images,
 * token_server.ts): a refusal of the repository is not a failed login, so the credentials are
 * checked without it; a wrong password is still LOGIN_FAILED, and the refused repository's own
 * reads still fail with the refusal.
 */
import assert from "node:assert/strict";
import { MirrorError } from "../../lib/errors.ts";
import { Secrets } from "../../lib/log/redact.ts";
import { RegistryClient } from "../../lib/registry/registry_client.ts";
import { clientOf, registryBinaryAvailable, startRegistry } from "../support/registry.ts";

const skip = registryBinaryAvailable() ? "" : " (ignored: docker-registry is not installed)";

const helm = "This repository is for managing helm and not container images.";

Deno.test({
  name:
    `checkAccess: a repository the token server refuses is not a failed login; a wrong password is${skip}`,
  ignore: Boolean(skip),
  async fn() {
    await using reg = await startRegistry({
      auth: "token",
      tokenRules: { refuse: { "mirror/charts": helm } },
    });
    const c = clientOf(reg);
    const wrong = new RegistryClient({
      host: reg.host,
      scheme: reg.scheme,
      secrets: new Secrets(),
      credential: {
        kind: "basic",
        username: reg.username ?? "",
        password: "nope",
        source: "config",
      },
      maxRetries: 0,
    });
    try {
      const from = reg.tokenRequests().length;
      await c.checkAccess("mirror/charts", ["pull"]);
      // The refused scope, then a token for no repository (the credentials alone).
      assert.deepEqual(reg.tokenRequests().slice(from), [["repository:mirror/charts:pull"], []]);
      await assert.rejects(
        () => c.manifestHead("mirror/charts", "1"),
        (error: unknown) =>
          error instanceof MirrorError && /405.*managing helm/.test(error.message),
      );
      await assert.rejects(
        () => wrong.checkAccess("mirror/charts", ["pull"]),
        (error: unknown) => error instanceof MirrorError && error.code === "LOGIN_FAILED",
      );
    } finally {
      c.close();
      wrong.close();
    }
  },
});
