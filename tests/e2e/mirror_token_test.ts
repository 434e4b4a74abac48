/**
 * `main.ts mirror` into a token-auth destination (as Quay is): the plan's destination
 * repositories are asked of the token server ten to a request, and a repository the token server
 * refuses (Quay's 405 for a repository that holds no container images, token_server.ts) fails
 * alone while the others are mirrored as before, also when it is the repository the login check
 * reads.
 */
import assert from "node:assert/strict";
import { mirror, registryConfig } from "../support/e2e_kit.ts";
import { pushTestImage } from "../support/images.ts";
import { registryBinaryAvailable, startRegistry } from "../support/registry.ts";

const skip = registryBinaryAvailable() ? "" : " (ignored: docker-registry is not installed)";

Deno.test({
  name:
    `mirror: destination token requests name ten repositories; a refused one fails alone${skip}`,
  ignore: Boolean(skip),
  async fn(t) {
    const helm = "This repository is for managing helm and not container images.";
    await using src = await startRegistry({ auth: "none" });
    await using dst = await startRegistry({
      auth: "token",
      tokenRules: { refuse: { "mirror/charts": helm } },
    });
    const names = Array.from({ length: 12 }, (_, i) => `app${String(i).padStart(2, "0")}`);
    const images: Record<string, unknown> = {};
    for (const [i, name] of [...names, "charts"].entries()) {
      await pushTestImage(src, `team/${name}:1`, { kind: "oci", seed: 300 + i, layers: 1 });
    }
    for (const name of names) images[`${src.host}/team/${name}:1`] = { targets: ["dr"] };
    const dir = await Deno.makeTempDir({ prefix: "bb-e2e-token-" });
    const run = async (config = images) => {
      const from = dst.tokenRequests().length;
      const result = await mirror(dir, registryConfig(dst, config), {
        env: { DST_PASSWORD: dst.password ?? "" },
        timeoutMs: 60_000,
      });
      assert.ok(result.report, `no report: ${result.stderr}${result.stdout}`);
      return { ...result, report: result.report, tokens: dst.tokenRequests().slice(from) };
    };
    const pull = (name: string) => `repository:mirror/${name}:pull`;
    try {
      await t.step("the first run pushes all twelve", async () => {
        const first = await run();
        assert.equal(first.code, 0, first.stderr + first.stdout);
        assert.deepEqual(first.report.entries.map((e) => e.status), names.map(() => "pushed"));
      });

      await t.step("the no-op re-run asks for its pull scopes ten to a request", async () => {
        const again = await run();
        assert.equal(again.code, 0, again.stderr + again.stdout);
        assert.deepEqual(again.report.entries.map((e) => e.status), names.map(() => "exists"));
        // The login check reads the last image's repository before the plan; the plan's reads
        // then ask for the ten first together and for the one left alone.
        assert.deepEqual(
          again.tokens.filter((scopes) => scopes.every((s) => s.endsWith(":pull")))
            .map((scopes) => [...scopes].sort()),
          [[pull("app11")], names.slice(0, 10).map(pull), [pull("app10")]],
          JSON.stringify(again.tokens),
        );
      });

      const charts = { [`${src.host}/team/charts:1`]: { targets: ["dr"] } };
      // First in the config, then last: the login check reads the last image's repository.
      for (
        const [where, config] of [["first", { ...charts, ...images }], ["last", {
          ...images,
          ...charts,
        }]] as const
      ) {
        await t.step(`a repository the token server refuses fails alone (${where})`, async () => {
          const mixed = await run(config);
          assert.equal(mixed.code, 1, mixed.stderr + mixed.stdout);
          assert.doesNotMatch(mixed.stdout + mixed.stderr, /LOGIN_FAILED/);
          const byImage = new Map(mixed.report.entries.map((e) => [e.source, e]));
          const entry = byImage.get(`${src.host}/team/charts:1`);
          assert.equal(entry?.status, "failed");
          assert.match(entry?.error ?? "", /405.*managing helm/);
          for (const name of names) {
            const other = byImage.get(`${src.host}/team/${name}:1`);
            assert.equal(other?.status, "exists", `${name}: ${other?.error}`);
          }
        });
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
