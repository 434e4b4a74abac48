/**
 * Token requests for several scopes (registry_auth.ts) against a real token-auth registry: the
 * repositories a run says it will read are asked for ten to a request, concurrent reads share the
 * request, and what a token server decides per repository (Quay's rules, modelled by
 * token_server.ts) ends as it would without batching: a refused repository fails alone, a
 * repository granted nothing gets the same error as on its own.
 */
import assert from "node:assert/strict";
import { MirrorError } from "../../lib/errors.ts";
import { SCOPES_PER_TOKEN } from "../../lib/registry/registry_auth.ts";
import type { RegistryClient } from "../../lib/registry/registry_client.ts";
import { pushTestImage } from "../support/images.ts";
import {
  clientOf,
  registryBinaryAvailable,
  startRegistry,
  type TestRegistry,
} from "../support/registry.ts";

const skip = registryBinaryAvailable() ? "" : " (ignored: docker-registry is not installed)";

const pull = (repository: string) => `repository:${repository}:pull`;

/** The outcome of a HEAD: the digest, null (absent), or the error's code and message. */
async function outcome(c: RegistryClient, repository: string): Promise<string | null> {
  try {
    return (await c.manifestHead(repository, "1"))?.digest ?? null;
  } catch (error) {
    assert.ok(error instanceof MirrorError, String(error));
    return `${error.code}: ${error.message}`;
  }
}

/** Each repository's outcome, read one after the other by a new client (told of them first with `expect`). */
async function readEach(
  reg: TestRegistry,
  repositories: string[],
  expect: boolean,
): Promise<(string | null)[]> {
  const c = clientOf(reg);
  try {
    if (expect) c.expectReads(repositories);
    const out = [];
    for (const r of repositories) out.push(await outcome(c, r));
    return out;
  } finally {
    c.close();
  }
}

Deno.test({
  name: `RegistryClient asks for the expected repositories ten to a token request${skip}`,
  ignore: Boolean(skip),
  async fn() {
    assert.equal(SCOPES_PER_TOKEN, 10);
    await using reg = await startRegistry({ auth: "token" });
    const repos = Array.from({ length: 25 }, (_, i) => `team/app${i}`);
    const pushed = new Map<string, string>();
    for (const i of [0, 14, 24]) {
      const image = await pushTestImage(reg, `${repos[i]}:1`, {
        kind: "oci",
        seed: 90 + i,
        layers: 1,
        layerSize: 64,
      });
      pushed.set(repos[i], image.digest);
    }
    const before = reg.tokenRequests().length;
    const c = clientOf(reg);
    try {
      c.expectReads(repos);
      // The first read asks for its scope and the next nine; reads of those share the request.
      const first = await Promise.all(repos.slice(0, 12).map((r) => outcome(c, r)));
      const rest = [];
      for (const r of repos.slice(12)) rest.push(await outcome(c, r));
      assert.deepEqual(
        [...first, ...rest],
        repos.map((r) => pushed.get(r) ?? null),
        "every repository read with its batched token",
      );
      // Which reads of the first twelve ask first is up to the scheduler (each asker names the
      // next expected scopes besides its own), so the first two batches are any ten each; together
      // the three cover every repository once, and the last five are what the sequential reads ask.
      const batches = reg.tokenRequests().slice(before);
      assert.equal(c.tokenRequests, 3);
      assert.deepEqual(batches.map((b) => b.length), [10, 10, 5], JSON.stringify(batches));
      assert.deepEqual(batches.flat().sort(), repos.map(pull).sort(), "each repository once");
      assert.deepEqual([...batches[2]].sort(), repos.slice(20).map(pull).sort());
      // A repository nobody said would be read is asked for alone.
      assert.equal(await outcome(c, "team/other"), null);
      assert.deepEqual(reg.tokenRequests().slice(before + 3), [[pull("team/other")]]);
    } finally {
      c.close();
    }
  },
});

Deno.test({
  name: `a batched token request Quay refuses: each repository is asked for alone${skip}`,
  ignore: Boolean(skip),
  async fn() {
    const helm = "This repository is for managing helm and not container images.";
    await using reg = await startRegistry({
      auth: "token",
      tokenRules: { refuse: { "team/charts": helm } },
    });
    const image = await pushTestImage(reg, "team/b:1", {
      kind: "oci",
      seed: 5,
      layers: 1,
      layerSize: 64,
    });
    const repos = ["team/a", "team/b", "team/charts", "team/c"];
    // What each read gives without batching: the refusal is team/charts' alone.
    const alone = await readEach(reg, repos, false);
    assert.deepEqual(alone.slice(0, 2), [null, image.digest]);
    assert.match(String(alone[2]), /^IMAGE_PULL_FAILED: .*405.*managing helm/);
    const before = reg.tokenRequests().length;
    assert.deepEqual(await readEach(reg, repos, true), alone, "the same outcome for each");
    assert.deepEqual(reg.tokenRequests().slice(before), [
      repos.map(pull),
      [pull("team/a")],
      [pull("team/b")],
      [pull("team/charts")],
      [pull("team/c")],
    ], "one refused batch, then one scope a request");
  },
});

Deno.test({
  name:
    `a repository granted nothing in a batched token fails as it does alone; batching stops${skip}`,
  ignore: Boolean(skip),
  async fn() {
    await using reg = await startRegistry({
      auth: "token",
      tokenRules: { grantNothing: ["team/secret"] },
    });
    const image = await pushTestImage(reg, "team/b:1", {
      kind: "oci",
      seed: 6,
      layers: 1,
      layerSize: 64,
    });
    const repos = [
      "team/a",
      "team/secret",
      "team/b",
      ...Array.from({ length: 9 }, (_, i) => `team/c${i}`),
    ];
    const alone = await readEach(reg, repos, false);
    assert.equal(alone[1]?.startsWith("sha256:"), false, `team/secret fails: ${alone[1]}`);
    assert.equal(alone[2], image.digest);
    const before = reg.tokenRequests().length;
    assert.deepEqual(await readEach(reg, repos, true), alone, "the same outcome for each");
    assert.deepEqual(reg.tokenRequests().slice(before), [
      repos.slice(0, 10).map(pull),
      [pull("team/secret")],
      // A 401 with a batched token turns batching off: the last two are asked for alone.
      [pull("team/c7")],
      [pull("team/c8")],
    ], "the refused token is dropped and team/secret asked for alone, once");
  },
});
