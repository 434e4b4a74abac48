/**
 * lib/openshift/mirror_sets.ts: the YAML parses (yaml package) and every field matches
 * shared/registry-protocols.md §10.1/§10.2; sources merged per repository, Docker Hub canonical,
 * stable order; malformed names refused.
 */
import assert from "node:assert/strict";
import { parseAllDocuments } from "yaml";
import {
  mappingsFromEntries,
  mirrorSetsYaml,
  writeMirrorSets,
} from "../../lib/openshift/mirror_sets.ts";

function documents(text: string): unknown[] {
  const docs = parseAllDocuments(text);
  for (const d of docs) assert.deepEqual(d.errors, []);
  return docs.map((d) => d.toJS());
}

Deno.test("mirrorSetsYaml() writes an IDMS and an ITMS with §10's fields, merged per repository", () => {
  const text = mirrorSetsYaml([
    { source: "quay.io/org/app", mirror: "quay.internal.example/mirror/org/app", byTag: true },
    { source: "index.docker.io/nginx", mirror: "quay.internal.example/hub/nginx", byTag: false },
    { source: "docker.io/library/nginx", mirror: "backup.example:5000/hub/nginx", byTag: true },
    // the same pair again (another tag of the same repository): no duplicate mirror
    { source: "docker.io/library/nginx", mirror: "quay.internal.example/hub/nginx", byTag: true },
    { source: "127.0.0.1:5000/team/app", mirror: "127.0.0.1:6000/mirror/app", byTag: false },
  ]);
  assert.ok(text.startsWith("---\n"), text);
  assert.deepEqual(documents(text), [
    {
      apiVersion: "config.openshift.io/v1",
      kind: "ImageDigestMirrorSet",
      metadata: { name: "bananna-digest-mirrors" },
      spec: {
        imageDigestMirrors: [
          { source: "127.0.0.1:5000/team/app", mirrors: ["127.0.0.1:6000/mirror/app"] },
          {
            source: "docker.io/library/nginx",
            mirrors: ["quay.internal.example/hub/nginx", "backup.example:5000/hub/nginx"],
          },
          { source: "quay.io/org/app", mirrors: ["quay.internal.example/mirror/org/app"] },
        ],
      },
    },
    {
      apiVersion: "config.openshift.io/v1",
      kind: "ImageTagMirrorSet",
      metadata: { name: "bananna-tag-mirrors" },
      spec: {
        imageTagMirrors: [
          {
            source: "docker.io/library/nginx",
            mirrors: ["backup.example:5000/hub/nginx", "quay.internal.example/hub/nginx"],
          },
          { source: "quay.io/org/app", mirrors: ["quay.internal.example/mirror/org/app"] },
        ],
      },
    },
  ]);
});

Deno.test("mirrorSetsYaml() with no tag pull writes only the IDMS; name and source policy", () => {
  const text = mirrorSetsYaml(
    [{ source: "docker.io/library/redis", mirror: "q.example/hub/redis", byTag: false }],
    { name: "site-a", sourcePolicy: "NeverContactSource" },
  );
  assert.deepEqual(documents(text), [{
    apiVersion: "config.openshift.io/v1",
    kind: "ImageDigestMirrorSet",
    metadata: { name: "site-a-digest-mirrors" },
    spec: {
      imageDigestMirrors: [{
        source: "docker.io/library/redis",
        mirrors: ["q.example/hub/redis"],
        mirrorSourcePolicy: "NeverContactSource",
      }],
    },
  }]);
});

Deno.test("mirrorSetsYaml() refuses a repository that is not host[:port]/path, and a bad name", async (t) => {
  const bad: [string, string][] = [
    ["nginx", "q.example/hub/nginx"], // no host
    ["team/app", "q.example/hub/app"], // "team" is not a host
    ["docker.io/library/nginx:1.25", "q.example/hub/nginx"], // a tag
    ["docker.io/library/nginx", "q.example/hub/nginx@sha256:" + "a".repeat(64)], // a digest
    ["https://quay.io/org/app", "q.example/org/app"], // a URL
    ["quay.io/Org/App", "q.example/org/app"], // uppercase path
    ["quay.io/", "q.example/org/app"], // empty path
  ];
  for (const [source, mirror] of bad) {
    await t.step(`${source} -> ${mirror}`, () => {
      assert.throws(
        () => mirrorSetsYaml([{ source, mirror, byTag: false }]),
        (e: unknown) =>
          e instanceof RangeError && /is not a repository of the form host\[:port\]\/path/.test(
            e.message,
          ),
      );
    });
  }
  assert.throws(
    () => mirrorSetsYaml([], { name: "Bad_Name" }),
    /mirror set name "Bad_Name" is not a Kubernetes name/,
  );
});

Deno.test("mappingsFromEntries() keeps pushed and exists, drops the rest; byTag only for tag references", () => {
  const digest = "sha256:" + "b".repeat(64);
  assert.deepEqual(
    mappingsFromEntries([
      {
        source: "docker.io/library/nginx:1.25",
        destination: "q.example/hub/nginx:1.25",
        status: "pushed",
      },
      {
        source: `quay.io/org/app@${digest}`,
        destination: `q.example/org/app@${digest}`,
        status: "exists",
      },
      { source: `quay.io/org/db:1@${digest}`, destination: "q.example/org/db:1", status: "exists" },
      { source: "quay.io/org/gone:1", destination: "q.example/org/gone:1", status: "failed" },
      { source: "quay.io/org/moved:1", destination: "q.example/org/moved:1", status: "drift" },
      { source: "quay.io/org/later:1", destination: "q.example/org/later:1", status: "planned" },
      { source: "quay.io/org/wait:1", destination: "q.example/org/wait:1", status: "deferred" },
    ]),
    [
      { source: "docker.io/library/nginx", mirror: "q.example/hub/nginx", byTag: true },
      { source: "quay.io/org/app", mirror: "q.example/org/app", byTag: false },
      { source: "quay.io/org/db", mirror: "q.example/org/db", byTag: false },
    ],
  );
});

Deno.test("writeMirrorSets() replaces the file whole and counts the repositories", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bb-idms-" });
  try {
    const path = `${dir}/sets.yaml`;
    await Deno.writeTextFile(path, "old content\n");
    const counts = await writeMirrorSets(path, [
      { source: "quay.io/org/a", mirror: "q.example/org/a", byTag: true },
      { source: "quay.io/org/b", mirror: "q.example/org/b", byTag: false },
    ]);
    assert.deepEqual(counts, { digestSources: 2, tagSources: 1 });
    const kinds = documents(await Deno.readTextFile(path)).map((d) => (d as { kind: string }).kind);
    assert.deepEqual(kinds, ["ImageDigestMirrorSet", "ImageTagMirrorSet"]);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["sets.yaml"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
