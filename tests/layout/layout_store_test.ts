/**
 * LayoutStore: the tags a layout's index.json names are checked against the tag grammar, as a
 * registry's tag list is (a crafted ref.name cannot hand the run a tag that steers a request).
 */
import assert from "node:assert/strict";
import { MirrorError } from "../../lib/errors.ts";
import { LayoutStore } from "../../lib/layout/layout_store.ts";
import { OciLayout, REF_NAME } from "../../lib/layout/oci_layout.ts";

const DIGEST = `sha256:${"a".repeat(64)}`;

async function layoutWith(dir: string, refNames: string[]): Promise<OciLayout> {
  await Deno.writeTextFile(`${dir}/oci-layout`, JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  await Deno.writeTextFile(
    `${dir}/index.json`,
    JSON.stringify({
      schemaVersion: 2,
      manifests: refNames.map((name) => ({
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        digest: DIGEST,
        size: 10,
        annotations: { [REF_NAME]: name },
      })),
    }),
  );
  return await OciLayout.read(dir);
}

// Before: tags() returned "../x", "-bad" and a 300-character tag as they were.
Deno.test("LayoutStore.tags(): a ref.name whose tag breaks the tag grammar fails naming index.json", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "bb-layout-store-" });
  try {
    await t.step("good tags are listed", async () => {
      const layout = await layoutWith(dir, ["reg.example/team/app:1.0", "reg.example/team/app:v2"]);
      const store = new LayoutStore(layout, {
        host: "reg.example",
        nameOf: (r) => `reg.example/${r}`,
      });
      assert.deepEqual(store.tags("team/app"), ["1.0", "v2"]);
      assert.deepEqual(await store.tagList("team/app"), ["1.0", "v2"]);
    });
    for (const bad of ["-bad", "../../x", "a b", "t".repeat(129), ""]) {
      await t.step(`tag ${JSON.stringify(bad.slice(0, 20))}`, async () => {
        const layout = await layoutWith(dir, [
          "reg.example/team/app:1.0",
          `reg.example/team/app:${bad}`,
        ]);
        const store = new LayoutStore(layout, {
          host: "reg.example",
          nameOf: (r) => `reg.example/${r}`,
        });
        for (
          const list of [
            () => Promise.resolve().then(() => store.tags("team/app")),
            () => store.tagList("team/app"),
          ]
        ) {
          await assert.rejects(list, (e: unknown) => {
            assert.ok(e instanceof MirrorError, String(e));
            assert.equal(e.code, "IMAGE_MANIFEST_INVALID");
            assert.match(e.message, /index\.json/);
            assert.match(e.message, /tag grammar/);
            return true;
          });
        }
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
