/**
 * The `many` no-op's HEAD floors against real registries: curl's and Deno fetch's make the same
 * requests (a HEAD of each source tag, and of each destination tag with the destination's Basic
 * credentials), both fail on a missing tag, and the fetch floor's reference rows in the table.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Corpus } from "../../bench/corpora.ts";
import {
  type CaseResult,
  evaluateTargets,
  formatTargetValue,
  HEAD_FLOOR_FETCH,
  type TargetResult,
} from "../../bench/table.ts";
import { NAMESPACE, runHeadFloor, runHeadFloorFetch } from "../../bench/tools.ts";
import { pushTestImage } from "../support/images.ts";
import { startRegistry } from "../support/registry.ts";

const heads = (log: string[]) => log.filter((line) => line.startsWith("HEAD ")).sort();

Deno.test("head floors: curl and Deno fetch make the same HEADs, and fail on a missing tag", async () => {
  await using src = await startRegistry();
  await using dest = await startRegistry({ auth: "htpasswd" });
  const images = [
    { repository: "many/m00", tag: "1.0", kind: "schema2" as const },
    { repository: "many/m01", tag: "1.1", kind: "schema2" as const },
  ];
  for (const [i, image] of images.entries()) {
    const options = { kind: image.kind, seed: 9100 + i, layers: 1, layerSize: 256 };
    await pushTestImage(src, `${image.repository}:${image.tag}`, options);
    const landed = `${NAMESPACE}/${image.repository.split("/").pop()}:${image.tag}`;
    await pushTestImage(dest, landed, options);
  }
  const corpus: Corpus = { name: "many", images, blobs: [], bytes: 0 };
  const workDir = await Deno.makeTempDir({ prefix: "bb-head-floor-" });
  try {
    const expected = {
      src: ["HEAD /v2/many/m00/manifests/1.0 200", "HEAD /v2/many/m01/manifests/1.1 200"],
      dest: [
        `HEAD /v2/${NAMESPACE}/m00/manifests/1.0 200`,
        `HEAD /v2/${NAMESPACE}/m01/manifests/1.1 200`,
      ],
    };
    for (const run of [runHeadFloor, runHeadFloorFetch]) {
      const srcFrom = (await src.accessLog()).length;
      const destFrom = (await dest.accessLog()).length;
      const out = await run({ src, dest, corpus, workDir, parallel: 2 });
      assert.equal(out.code, 0, `${run.name}: ${out.stderr}`);
      // distribution logs a request after answering it.
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.deepEqual(heads((await src.accessLog()).slice(srcFrom)), expected.src, run.name);
      assert.deepEqual(heads((await dest.accessLog()).slice(destFrom)), expected.dest, run.name);
      assert.ok(!out.stdout.includes(dest.password ?? "-"), run.name);
    }
    const missing: Corpus = {
      ...corpus,
      images: [...images, { repository: "many/m02", tag: "9.9", kind: "schema2" }],
    };
    const out = await runHeadFloorFetch({ src, dest, corpus: missing, workDir, parallel: 2 });
    assert.equal(out.code, 1);
    assert.match(out.stderr, /HEAD http:\/\/\S+\/v2\/(many|mirror)\/m02\/manifests\/9\.9: 404/);
    assert.ok(!out.stderr.includes(dest.password ?? "-"));
    assert.notEqual(
      (await runHeadFloor({ src, dest, corpus: missing, workDir, parallel: 2 })).code,
      0,
    );
  } finally {
    await Deno.remove(workDir, { recursive: true });
  }
});

Deno.test("head floors: the fetch floor's rows are reference ratios of the medians", () => {
  const samples = (...ms: number[]) => ms.map((v) => ({ ms: v }));
  const cases: CaseResult[] = [
    {
      scenario: "many no-op",
      tool: "bananna registry",
      status: "ok",
      samples: samples(1300, 1500, 1400),
    },
    {
      scenario: "many no-op",
      tool: "floor (HEAD)",
      status: "ok",
      samples: samples(800, 900, 1000),
    },
    {
      scenario: "many no-op",
      tool: HEAD_FLOOR_FETCH,
      status: "ok",
      samples: samples(1000, 1100, 700),
    },
  ];
  const rows = new Map(evaluateTargets(cases, 300).map((t) => [t.name, t]));
  const runtime = rows.get(
    "many no-op: the same HEADs with Deno's fetch alone / floor (HEAD, curl), for reference",
  );
  assert.equal(runtime?.value, 1000 / 900);
  assert.equal(runtime?.status, "info");
  const ours = rows.get(
    "many no-op: registry engine (defaults) / the same HEADs with Deno's fetch alone, for reference",
  );
  assert.equal(ours?.value, 1400 / 1000);
  assert.equal(ours?.status, "info");
});

Deno.test("formatTargetValue: more digits only where two would land on the limit", () => {
  const t = (value: number, limit: number, unit: TargetResult["unit"] = "x", info = false) =>
    formatTargetValue({ name: "t", value, limit, unit, direction: "<=", status: "info", info });
  assert.equal(t(0.3528, 0.35), "0.353x");
  assert.equal(t(0.3496, 0.35), "0.3496x");
  assert.equal(t(0.35, 0.35), "0.35x");
  assert.equal(t(0.3412, 0.35), "0.34x");
  assert.equal(t(120.4, 120, "ms"), "120.4 ms");
  assert.equal(t(98, 120, "ms"), "98 ms");
  assert.equal(t(1.1949, 1, "ms/task"), "1.19 ms/task");
  assert.equal(t(0.3528, Infinity, "x", true), "0.35x");
});
