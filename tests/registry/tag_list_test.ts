/**
 * RegistryClient.tagList() over pages: every tag of a ~250-tag repository on a real registry,
 * served in pages of 100 (and of 7) by a paging proxy (Debian's distribution 2.8.2 does not page
 * tag lists itself), and a loopback server whose `Link: rel="next"` never ends, which must end in
 * an error after the page bound instead of a list silently cut short.
 */
import assert from "node:assert/strict";
import { MirrorError } from "../../lib/errors.ts";
import { Secrets } from "../../lib/log/redact.ts";
import { RegistryClient } from "../../lib/registry/registry_client.ts";
import { within } from "../support/bounded.ts";
import { startPagingProxy } from "../support/paging_proxy.ts";
import { registryBinaryAvailable, startRegistry } from "../support/registry.ts";
import { pushTags, repositoryTags } from "../support/tag_fixture.ts";

const skip = registryBinaryAvailable() ? "" : " (ignored: docker-registry is not installed)";

function clientOf(host: string): RegistryClient {
  return new RegistryClient({
    host,
    scheme: "http",
    credential: null,
    maxRetries: 1,
    retryDelayMs: 5,
    timeoutMs: 10_000,
    secrets: new Secrets(),
  });
}

Deno.test({
  name: `RegistryClient.tagList() returns every tag across pages of a real registry${skip}`,
  ignore: Boolean(skip),
  async fn(t) {
    await using reg = await startRegistry();
    const tags = repositoryTags();
    assert.equal(new Set(tags).size, 250);
    await pushTags(reg, "team/app", tags);
    const sorted = [...tags].sort();

    await t.step("no paging (the registry sends all 250 at once)", async () => {
      const c = clientOf(reg.host);
      try {
        assert.deepEqual((await c.tagList("team/app")).sort(), sorted);
      } finally {
        c.close();
      }
    });

    // tagList asks for n=1000 (fixed, not configurable); the proxy answers at most pageSize tags,
    // as a registry with a smaller cap that clamps n does, and its next links echo n.
    const rows: [string, number, string[] | number][] = [
      ["pages of 100: three pages, in lexical order", 100, [
        "/v2/team/app/tags/list?n=1000",
        "/v2/team/app/tags/list?last=1.4.7&n=1000",
        "/v2/team/app/tags/list?last=stable&n=1000",
      ]],
      ["pages of 7: 36 pages", 7, 36],
    ];
    for (const [name, pageSize, requests] of rows) {
      await t.step(name, async () => {
        await using proxy = startPagingProxy(reg, { pageSize });
        const c = clientOf(proxy.host);
        try {
          const listed = await c.tagList("team/app");
          assert.deepEqual(listed, sorted);
          if (typeof requests === "number") assert.equal(proxy.tagListRequests.length, requests);
          else assert.deepEqual(proxy.tagListRequests, requests);
        } finally {
          c.close();
        }
      });
    }
  },
});

/** A tag-list server whose every page links to a next one (a new page, or the same again). */
function startEndlessTagList(kind: "new" | "same") {
  let pages = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const url = new URL(req.url);
    if (url.pathname !== "/v2/team/app/tags/list") return new Response("{}", { status: 200 });
    pages++;
    const tag = kind === "new" ? `p${pages}` : "p";
    return Response.json({ name: "team/app", tags: [tag] }, {
      headers: { link: `</v2/team/app/tags/list?last=${tag}&n=1000>; rel="next"` },
    });
  });
  return {
    host: `127.0.0.1:${(server.addr as Deno.NetAddr).port}`,
    pages: () => pages,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

// Before the bound threw, tagList stopped after 1000 pages and returned the tags read so far as if
// the list were complete.
Deno.test({
  name: "RegistryClient.tagList() ends a never-ending listing with an error after 1000 pages",
  async fn(t) {
    for (const kind of ["new", "same"] as const) {
      await t.step(
        `next page ${kind === "new" ? "always a new one" : "always the same"}`,
        async () => {
          await using server = startEndlessTagList(kind);
          const c = clientOf(server.host);
          try {
            await assert.rejects(() => c.tagList("team/app"), (e: unknown) => {
              assert.ok(e instanceof MirrorError, String(e));
              assert.equal(e.code, "IMAGE_MANIFEST_INVALID");
              assert.match(e.message, /still had a next page after 1000 pages/);
              return true;
            });
            assert.equal(server.pages(), 1000);
          } finally {
            c.close();
          }
        },
      );
    }
  },
});

Deno.test("RegistryClient.tagList(): a 404 on the first page is absence, on a later page a failure", async (t) => {
  for (const failAt of [1, 2]) {
    await t.step(`404 on page ${failAt}`, async () => {
      let pages = 0;
      const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () => {
        pages++;
        if (pages === failAt) return Response.json({ errors: [] }, { status: 404 });
        return Response.json({ name: "team/app", tags: [`t${pages}`] }, {
          headers: { link: `</v2/team/app/tags/list?last=t${pages}&n=1000>; rel="next"` },
        });
      });
      const c = clientOf(`127.0.0.1:${(server.addr as Deno.NetAddr).port}`);
      try {
        if (failAt === 1) assert.deepEqual(await c.tagList("team/app"), []);
        else {
          await assert.rejects(() => c.tagList("team/app"), (e: unknown) => {
            assert.ok(e instanceof MirrorError, String(e));
            assert.equal(e.code, "IMAGE_PULL_FAILED");
            assert.match(e.message, /page 2 of the tag list answered 404 \(1 tags read\)/);
            return true;
          });
        }
      } finally {
        c.close();
        await server.shutdown();
      }
    });
  }
});

// Before the count was checked ahead of the push, `tags.push(...page)` of one page of 130,000 tags
// overflowed the call stack: a RangeError (MIRROR_INTERNAL_ERROR) instead of the size code.
Deno.test("RegistryClient.tagList(): one page of 130,000 tags fails with the size code, not a stack overflow", async () => {
  await within(30_000, "a 130,000-tag page", async (signal) => {
    const tags = Array.from({ length: 130_000 }, (_, i) => `t${i}`);
    const body = JSON.stringify({ name: "team/app", tags });
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {}, signal },
      () => new Response(body, { headers: { "content-type": "application/json" } }),
    );
    const c = clientOf(`127.0.0.1:${(server.addr as Deno.NetAddr).port}`);
    try {
      await assert.rejects(() => c.tagList("team/app", signal), (e: unknown) => {
        assert.ok(e instanceof MirrorError, String(e));
        assert.equal(e.code, "IMAGE_MANIFEST_TOO_LARGE");
        assert.match(e.message, /passed 100000 tags/);
        return true;
      });
    } finally {
      c.close();
      await server.shutdown();
    }
  });
});
