/**
 * The token server's Quay rules against the real registry it signs for (token_server.ts): several
 * `scope` parameters give one token with an access entry each, a refused repository fails the
 * whole request, and a repository granted nothing gets an entry without actions that the registry
 * refuses while the other entries of the same token work.
 */
import assert from "node:assert/strict";
import { pushTestImage } from "./images.ts";
import { registryBinaryAvailable, startRegistry, type TestRegistry } from "./registry.ts";

const skip = registryBinaryAvailable() ? "" : " (ignored: docker-registry is not installed)";

const ACCEPT = "application/vnd.oci.image.manifest.v1+json";

/** The realm and service the registry's challenge names. */
async function challenge(reg: TestRegistry): Promise<{ realm: string; service: string }> {
  const res = await fetch(`${reg.url}/v2/`);
  await res.body?.cancel();
  const header = res.headers.get("www-authenticate") ?? "";
  const value = (name: string) => new RegExp(`${name}="([^"]*)"`).exec(header)?.[1] ?? "";
  return { realm: value("realm"), service: value("service") };
}

/** GET the realm with one `scope` parameter per repository (pull), with Basic credentials. */
async function tokenFor(reg: TestRegistry, repositories: string[]): Promise<Response> {
  const { realm, service } = await challenge(reg);
  const url = new URL(realm);
  url.searchParams.set("service", service);
  for (const r of repositories) url.searchParams.append("scope", `repository:${r}:pull`);
  return await fetch(url, {
    headers: { authorization: `Basic ${btoa(`${reg.username}:${reg.password}`)}` },
  });
}

function accessOf(token: string): { name: string; actions: string[] }[] {
  const claims = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
  return JSON.parse(atob(claims)).access;
}

async function head(reg: TestRegistry, repository: string, token: string): Promise<number> {
  const res = await fetch(`${reg.url}/v2/${repository}/manifests/1`, {
    method: "HEAD",
    headers: { accept: ACCEPT, authorization: `Bearer ${token}` },
  });
  await res.body?.cancel();
  return res.status;
}

Deno.test({
  name: `token server: several scopes, a refused repository, a repository granted nothing${skip}`,
  ignore: Boolean(skip),
  async fn(t) {
    const helm = "This repository is for managing helm and not container images.";
    await using reg = await startRegistry({
      auth: "token",
      tokenRules: { refuse: { "team/charts": helm }, grantNothing: ["team/secret"] },
    });
    // Nothing is pushed to team/secret (the pusher is granted nothing there either): the registry
    // checks the token before it looks for the manifest.
    for (const repo of ["team/a", "team/b"]) {
      await pushTestImage(reg, `${repo}:1`, { kind: "oci", seed: 7, layers: 1, layerSize: 64 });
    }

    await t.step("several scopes: one token, an access entry each, valid for each", async () => {
      const res = await tokenFor(reg, ["team/a", "team/b"]);
      assert.equal(res.status, 200);
      const { token } = await res.json();
      assert.deepEqual(accessOf(token), [
        { type: "repository", name: "team/a", actions: ["pull"] },
        { type: "repository", name: "team/b", actions: ["pull"] },
      ]);
      assert.equal(await head(reg, "team/a", token), 200);
      assert.equal(await head(reg, "team/b", token), 200);
    });

    await t.step("a refused repository fails the whole request (405 UNSUPPORTED)", async () => {
      const res = await tokenFor(reg, ["team/a", "team/charts", "team/b"]);
      assert.equal(res.status, 405);
      assert.deepEqual((await res.json()).errors, [
        { code: "UNSUPPORTED", message: helm, detail: {} },
      ]);
      const alone = await tokenFor(reg, ["team/a"]);
      assert.equal(alone.status, 200, "the other repositories alone are served");
      await alone.body?.cancel();
    });

    await t.step(
      "a repository granted nothing: its entry has no actions, the rest work",
      async () => {
        const res = await tokenFor(reg, ["team/a", "team/secret"]);
        assert.equal(res.status, 200);
        const { token } = await res.json();
        assert.deepEqual(accessOf(token).map((a) => [a.name, a.actions]), [
          ["team/a", ["pull"]],
          ["team/secret", []],
        ]);
        assert.equal(await head(reg, "team/secret", token), 401, "the registry refuses it");
        assert.equal(await head(reg, "team/a", token), 200);
      },
    );
  },
});
