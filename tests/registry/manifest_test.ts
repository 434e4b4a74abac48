/**
 * parseManifest() and parseImageConfig() take nothing from the bytes on trust: malformed JSON,
 * wrong types, missing fields and digests off the grammar are IMAGE_MANIFEST_INVALID naming the
 * field, never an internal error.
 */
import assert from "node:assert/strict";
import { MirrorError } from "../../lib/errors.ts";
import { parseImageConfig, parseManifest } from "../../lib/registry/manifest.ts";

const OCI = "application/vnd.oci.image.manifest.v1+json";
const INDEX = "application/vnd.oci.image.index.v1+json";
const D = `sha256:${"a".repeat(64)}`;
const desc = { mediaType: "application/vnd.oci.image.layer.v1.tar", digest: D, size: 10 };
const bytes = (value: unknown) =>
  new TextEncoder().encode(typeof value === "string" ? value : JSON.stringify(value));

Deno.test("parseManifest() reads a good index and image manifest", () => {
  const index = parseManifest(bytes({ mediaType: INDEX, manifests: [desc] }), INDEX, "x");
  assert.equal(index.kind, "index");
  const image = parseManifest(bytes({ mediaType: OCI, config: desc, layers: [desc] }), OCI, "x");
  assert.equal(image.kind, "image");
  const sha512 = { ...desc, digest: `sha512:${"b".repeat(128)}` };
  assert.equal(parseManifest(bytes({ config: sha512, layers: [] }), OCI, "x").kind, "image");
});

Deno.test("parseManifest() fails malformed manifests with IMAGE_MANIFEST_INVALID naming the field", async (t) => {
  const rows: [string, unknown, string, RegExp][] = [
    ["not JSON", "{", OCI, /not JSON/],
    ["null", null, OCI, /the manifest must be a JSON object, not null/],
    ["a number", 5, OCI, /the manifest must be a JSON object, not 5/],
    ["a string", '"x"', OCI, /the manifest must be a JSON object, not "x"/],
    ["mediaType a number", { mediaType: 1, manifests: [] }, INDEX, /mediaType must be a string/],
    [
      "manifests null",
      { mediaType: INDEX, manifests: null },
      INDEX,
      /manifests must be an array, not null/,
    ],
    [
      "index without manifests",
      { mediaType: INDEX },
      INDEX,
      /manifests must be an array, not nothing/,
    ],
    [
      "a null child",
      { manifests: [desc, null] },
      INDEX,
      /manifests\[1\] must be an object, not null/,
    ],
    [
      "a child digest that is a path",
      {
        manifests: [{ ...desc, digest: "a:b/../../other/repo/manifests/v1" }],
      },
      INDEX,
      /manifests\[0\]\.digest must be sha256:<64 lowercase hex>/,
    ],
    [
      "a sha384 child",
      { manifests: [{ ...desc, digest: `sha384:${"a".repeat(96)}` }] },
      INDEX,
      /manifests\[0\]\.digest/,
    ],
    [
      "a child without mediaType",
      { manifests: [{ digest: D, size: 1 }] },
      INDEX,
      /manifests\[0\]\.mediaType/,
    ],
    [
      "a child platform a string",
      { manifests: [{ ...desc, platform: "linux" }] },
      INDEX,
      /manifests\[0\]\.platform/,
    ],
    [
      "image without config",
      { mediaType: OCI, layers: [] },
      OCI,
      /config must be an object, not nothing/,
    ],
    [
      "layers an object",
      { config: desc, layers: {} },
      OCI,
      /layers must be an array, not an object/,
    ],
    [
      "a null layer",
      { config: desc, layers: [desc, null] },
      OCI,
      /layers\[1\] must be an object, not null/,
    ],
    [
      "a layer size as string",
      { config: desc, layers: [{ ...desc, size: "10" }] },
      OCI,
      /layers\[0\]\.size must be a non-negative integer, not "10"/,
    ],
    ["a fractional size", { config: { ...desc, size: 1.5 }, layers: [] }, OCI, /config\.size/],
    ["a size past 2^53", { config: { ...desc, size: 2 ** 60 }, layers: [] }, OCI, /config\.size/],
    [
      "an upper-case digest",
      { config: { ...desc, digest: D.toUpperCase() }, layers: [] },
      OCI,
      /config\.digest/,
    ],
  ];
  for (const [name, value, contentType, pattern] of rows) {
    await t.step(name, () => {
      assert.throws(() => parseManifest(bytes(value), contentType, "src/app:1"), (e: unknown) => {
        assert.ok(e instanceof MirrorError, String(e));
        assert.equal(e.code, "IMAGE_MANIFEST_INVALID", e.message);
        assert.match(e.message, /^src\/app:1: /);
        assert.match(e.message, pattern);
        return true;
      });
    });
  }
});

Deno.test("parseManifest() still tells unsupported manifests from invalid ones", () => {
  for (const value of [{ schemaVersion: 1, fsLayers: [] }, {}]) {
    assert.throws(
      () => parseManifest(bytes(value), "application/json", "x"),
      (e: unknown) => e instanceof MirrorError && e.code === "IMAGE_UNSUPPORTED",
    );
  }
});

Deno.test("parseImageConfig() reads diff IDs and names the bad field", async (t) => {
  assert.deepEqual(parseImageConfig(bytes({ rootfs: { diff_ids: [D] } }), "c").diffIds, [D]);
  assert.deepEqual(parseImageConfig(bytes({ os: "linux" }), "c").diffIds, []);
  const rows: [string, unknown, RegExp][] = [
    ["not JSON", "{", /not JSON/],
    ["null", null, /the image config must be an object, not null/],
    ["rootfs null", { rootfs: null }, /rootfs must be an object/],
    ["diff_ids a string", { rootfs: { diff_ids: D } }, /rootfs\.diff_ids must be an array/],
    ["a null diff ID", { rootfs: { diff_ids: [D, null] } }, /rootfs\.diff_ids\[1\]/],
  ];
  for (const [name, value, pattern] of rows) {
    await t.step(name, () => {
      assert.throws(() => parseImageConfig(bytes(value), "c"), (e: unknown) => {
        assert.ok(e instanceof MirrorError && e.code === "IMAGE_MANIFEST_INVALID", String(e));
        assert.match(e.message, pattern);
        return true;
      });
    });
  }
});
