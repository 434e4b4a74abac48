/**
 * lib/signatures/referrers.ts: the referrers API path against a small loopback double (distribution
 * 2.8.2 has no referrers API), the fallback tag path on a real docker-registry, garbage answers,
 * and the pure merge and superset rules. Every expected value is written out.
 */
import assert from "node:assert/strict";
import { endlessBody, within } from "../support/bounded.ts";
import { MirrorError } from "../../lib/errors.ts";
import { Secrets } from "../../lib/log/redact.ts";
import { RegistryClient } from "../../lib/registry/registry_client.ts";
import {
  encodeReferrersIndex,
  isSuperset,
  listReferrers,
  mergeReferrersIndex,
  parseReferrersIndex,
  readReferrersApi,
  type ReferrerDescriptor,
  referrerDescriptor,
  ReferrersApiSupport,
  type ReferrersIndex,
  referrersTag,
} from "../../lib/signatures/referrers.ts";
import { registryBinaryAvailable, startRegistry, type TestRegistry } from "../support/registry.ts";

const skip = registryBinaryAvailable() ? "" : " (ignored: docker-registry is not installed)";

const INDEX = "application/vnd.oci.image.index.v1+json";
const MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json";
const SPDX = "application/spdx+json";

// ---- the API double ----------------------------------------------------------------------------

const SUBJECT = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const SUBJECT_TAG = "sha256-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const SIG_REF: ReferrerDescriptor = {
  mediaType: MANIFEST,
  digest: "sha256:1111111111111111111111111111111111111111111111111111111111111111",
  size: 700,
  artifactType: BUNDLE,
  annotations: { "dev.sigstore.bundle.predicateType": "https://sigstore.dev/cosign/sign/v1" },
};
const SBOM_REF: ReferrerDescriptor = {
  mediaType: MANIFEST,
  digest: "sha256:2222222222222222222222222222222222222222222222222222222222222222",
  size: 512,
  artifactType: SPDX,
};
const BOTH = `{"schemaVersion":2,"mediaType":"${INDEX}","manifests":[` +
  `{"mediaType":"${MANIFEST}","digest":"${SIG_REF.digest}","size":700,"artifactType":"${BUNDLE}",` +
  `"annotations":{"dev.sigstore.bundle.predicateType":"https://sigstore.dev/cosign/sign/v1"}},` +
  `{"mediaType":"${MANIFEST}","digest":"${SBOM_REF.digest}","size":512,"artifactType":"${SPDX}"}]}`;
const ONLY_SBOM = `{"schemaVersion":2,"mediaType":"${INDEX}","manifests":[` +
  `{"mediaType":"${MANIFEST}","digest":"${SBOM_REF.digest}","size":512,"artifactType":"${SPDX}"}]}`;

/** A loopback HTTP server answering every request with `answer(request)`; records `METHOD path?query`. */
function startDouble(answer: (url: URL) => Response | Promise<Response>) {
  const requests: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const url = new URL(req.url);
    requests.push(`${req.method} ${url.pathname}${url.search}`);
    return answer(url);
  });
  const host = `127.0.0.1:${server.addr.port}`;
  return {
    host,
    requests,
    client: new RegistryClient({
      host,
      scheme: "http",
      maxRetries: 0,
      retryDelayMs: 1,
      maxManifestBytes: 64 * 1024,
      secrets: new Secrets(),
    }),
    async [Symbol.asyncDispose]() {
      await server.shutdown();
    },
  };
}

function indexAnswer(body: string, headers: Record<string, string> = {}): Response {
  return new Response(body, { headers: { "content-type": INDEX, ...headers } });
}

async function rejectsWith(fn: () => Promise<unknown>, code: string, pattern: RegExp) {
  await assert.rejects(fn, (e: unknown) => {
    assert.ok(e instanceof MirrorError, String(e));
    assert.equal(e.code, code, e.message);
    assert.match(e.message, pattern);
    return true;
  });
}

Deno.test("listReferrers() reads the referrers API: both referrers, no fallback tag read", async () => {
  await using d = startDouble(() => indexAnswer(BOTH));
  const found = await listReferrers(d.client, "app", SUBJECT);
  assert.deepEqual(found, { via: "api", descriptors: [SIG_REF, SBOM_REF] });
  assert.deepEqual(d.requests, [`GET /v2/app/referrers/${SUBJECT}`]);
});

Deno.test("listReferrers() sends artifactType percent-encoded and keeps a registry's filtered answer", async () => {
  await using d = startDouble(() =>
    indexAnswer(ONLY_SBOM, { "oci-filters-applied": "artifactType" })
  );
  const found = await listReferrers(d.client, "app", SUBJECT, { artifactType: SPDX });
  assert.deepEqual(found, { via: "api", descriptors: [SBOM_REF] });
  assert.deepEqual(d.requests, [
    `GET /v2/app/referrers/${SUBJECT}?artifactType=application%2Fspdx%2Bjson`,
  ]);
});

Deno.test("listReferrers() filters client-side when the registry ignored artifactType (no OCI-Filters-Applied)", async () => {
  await using d = startDouble(() => indexAnswer(BOTH));
  const found = await listReferrers(d.client, "app", SUBJECT, { artifactType: BUNDLE });
  assert.deepEqual(found, { via: "api", descriptors: [SIG_REF] });
});

Deno.test("listReferrers() filters client-side even when OCI-Filters-Applied claims a filter it did not apply", async () => {
  await using d = startDouble(() => indexAnswer(BOTH, { "oci-filters-applied": "artifactType" }));
  const found = await listReferrers(d.client, "app", SUBJECT, { artifactType: SPDX });
  assert.deepEqual(found, { via: "api", descriptors: [SBOM_REF] });
});

Deno.test("listReferrers() takes an empty API answer as no referrers, without reading the fallback tag", async () => {
  await using d = startDouble(() =>
    indexAnswer(`{"schemaVersion":2,"mediaType":"${INDEX}","manifests":[]}`)
  );
  assert.deepEqual(await listReferrers(d.client, "app", SUBJECT), { via: "api", descriptors: [] });
  assert.equal(d.requests.length, 1);
});

Deno.test("listReferrers() follows Link rel=next on the same endpoint and joins the pages", async () => {
  await using d = startDouble((url) =>
    url.searchParams.get("last") === "1" ? indexAnswer(ONLY_SBOM) : indexAnswer(
      `{"schemaVersion":2,"mediaType":"${INDEX}","manifests":[` +
        `{"mediaType":"${MANIFEST}","digest":"${SIG_REF.digest}","size":700,"artifactType":"${BUNDLE}",` +
        `"annotations":{"dev.sigstore.bundle.predicateType":"https://sigstore.dev/cosign/sign/v1"}}]}`,
      { link: `</v2/app/referrers/${SUBJECT}?last=1>; rel="next"` },
    )
  );
  const found = await listReferrers(d.client, "app", SUBJECT);
  assert.deepEqual(found, { via: "api", descriptors: [SIG_REF, SBOM_REF] });
  assert.deepEqual(d.requests, [
    `GET /v2/app/referrers/${SUBJECT}`,
    `GET /v2/app/referrers/${SUBJECT}?last=1`,
  ]);
});

Deno.test("listReferrers() refuses a next page on another endpoint or origin", async () => {
  for (
    const link of [
      `</v2/other/referrers/${SUBJECT}>`,
      `<http://127.0.0.2:1/v2/app/referrers/${SUBJECT}>`,
    ]
  ) {
    await using d = startDouble(() => indexAnswer(BOTH, { link: `${link}; rel="next"` }));
    await rejectsWith(
      () => listReferrers(d.client, "app", SUBJECT),
      "IMAGE_REFERRER_INVALID",
      /is not this digest's referrers endpoint/,
    );
    assert.equal(d.requests.length, 1);
  }
});

Deno.test("listReferrers() refuses a next page that fails and a Link that never ends", async () => {
  {
    await using d = startDouble((url) =>
      url.searchParams.has("p")
        ? new Response("", { status: 404 })
        : indexAnswer(BOTH, { link: `</v2/app/referrers/${SUBJECT}?p=2>; rel="next"` })
    );
    await rejectsWith(
      () => listReferrers(d.client, "app", SUBJECT),
      "IMAGE_REFERRER_INVALID",
      /page 2 answered 404/,
    );
  }
  {
    await using d = startDouble((url) =>
      indexAnswer(BOTH, {
        link: `</v2/app/referrers/${SUBJECT}?p=${
          Number(url.searchParams.get("p")) + 1
        }>; rel="next"`,
      })
    );
    await rejectsWith(
      () => listReferrers(d.client, "app", SUBJECT),
      "IMAGE_REFERRER_INVALID",
      /still a next page after 100 pages/,
    );
    assert.equal(d.requests.length, 100);
  }
});

// Before: a Link back to a page already read was followed until the 100-page bound, every page
// kept (100 x the page cap held at once), and the pages together had no cap.
Deno.test("listReferrers() stops a Link that loops at once, and caps the pages together", async (t) => {
  for (
    const [name, link, requests] of [
      ["a next page that is itself", `</v2/app/referrers/${SUBJECT}>`, 1],
      ["a next page that links to itself", `</v2/app/referrers/${SUBJECT}?again>`, 2],
    ] as const
  ) {
    await t.step(name, () =>
      within(10_000, name, async () => {
        await using d = startDouble(() => indexAnswer(BOTH, { link: `${link}; rel="next"` }));
        await rejectsWith(
          () => listReferrers(d.client, "app", SUBJECT),
          "IMAGE_REFERRER_INVALID",
          /was already read \(the pages loop\); refused/,
        );
        assert.equal(d.requests.length, requests);
      }));
  }
  await t.step(
    "new pages of 60 KiB each: refused past 4 x the 64 KiB page cap",
    () =>
      within(10_000, "pages past the total cap", async () => {
        const filler = "x".repeat(60 * 1024);
        await using d = startDouble((url) =>
          indexAnswer(
            `{"schemaVersion":2,"mediaType":"${INDEX}","annotations":{"pad":"${filler}"},"manifests":[]}`,
            {
              link: `</v2/app/referrers/${SUBJECT}?p=${
                Number(url.searchParams.get("p")) + 1
              }>; rel="next"`,
            },
          )
        );
        await rejectsWith(
          () => listReferrers(d.client, "app", SUBJECT),
          "IMAGE_MANIFEST_TOO_LARGE",
          /the pages passed 262144 bytes in all \(\d+ bytes or more over 5 pages\); refused/,
        );
        assert.equal(d.requests.length, 5);
      }),
  );
});

Deno.test("listReferrers() falls back to the sha256-<hex> tag when the API answers 404, 400 or 406", async () => {
  for (const status of [404, 400, 406]) {
    await using d = startDouble((url) =>
      url.pathname.includes("/referrers/")
        ? new Response("404 page not found\n", {
          status,
          headers: { "content-type": "text/plain" },
        })
        : new Response("", { status: 404 })
    );
    const found = await listReferrers(d.client, "app", SUBJECT);
    assert.deepEqual(found, { via: "tag", descriptors: [], index: null, tagDigest: null });
    assert.deepEqual(d.requests, [
      `GET /v2/app/referrers/${SUBJECT}`,
      `GET /v2/app/manifests/${SUBJECT_TAG}`,
    ]);
  }
});

Deno.test("readReferrersApi() asks a host once while its first answer is out: the others wait for it", async (t) => {
  const digests = Array.from({ length: 8 }, (_, i) => `sha256:${String(i + 1).repeat(64)}`);
  const cases = [
    { name: "without the API (404): one request for all", status: 404, requests: 1 },
    { name: "with the API (200): the others ask after the first answer", status: 200, requests: 8 },
  ];
  for (const c of cases) {
    await t.step(c.name, async () => {
      let release = () => {};
      const gate = new Promise<void>((resolve) => release = resolve);
      await using d = startDouble(async () => {
        await gate;
        return c.status === 404
          ? new Response("404 page not found\n", {
            status: 404,
            headers: { "content-type": "text/plain" },
          })
          : indexAnswer(ONLY_SBOM);
      });
      const support = new ReferrersApiSupport();
      const answers = Promise.all(
        digests.map((digest) => readReferrersApi(d.client, "app", digest, { apiSupport: support })),
      );
      let asked: string[] = [];
      try {
        while (d.requests.length === 0) await new Promise((r) => setTimeout(r, 5));
        // Time for the other questions to go out if they were going to, before the first answer.
        await new Promise((r) => setTimeout(r, 150));
        asked = [...d.requests];
      } finally {
        release();
      }
      const got = await answers;
      assert.deepEqual(asked, [`GET /v2/app/referrers/${digests[0]}`]);
      assert.equal(d.requests.length, c.requests);
      assert.equal(support.get(d.host), c.status === 200);
      assert.deepEqual(got, digests.map(() => (c.status === 200 ? [SBOM_REF] : null)));
      // Known now: a host without the API is not asked again, one with it is asked per digest.
      await readReferrersApi(d.client, "app", digests[0], { apiSupport: support });
      assert.equal(d.requests.length, c.requests + (c.status === 200 ? 1 : 0));
    });
  }
  await t.step(
    "a first question that fails teaches nothing: each waiting one asks in turn",
    async () => {
      await using d = startDouble(() => new Response("boom", { status: 500 }));
      const support = new ReferrersApiSupport();
      const answers = await Promise.allSettled(
        digests.map((digest) => readReferrersApi(d.client, "app", digest, { apiSupport: support })),
      );
      assert.ok(answers.every((a) => a.status === "rejected" && a.reason instanceof MirrorError));
      assert.equal(d.requests.length, digests.length);
      assert.equal(support.get(d.host), undefined);
    },
  );
});

Deno.test("listReferrers() fails on a 500 from the referrers endpoint instead of taking it for 'no API'", async () => {
  await using d = startDouble(() => new Response("boom", { status: 500 }));
  await assert.rejects(() => listReferrers(d.client, "app", SUBJECT), MirrorError);
  assert.deepEqual(d.requests, [`GET /v2/app/referrers/${SUBJECT}`]);
});

const GARBAGE: [string, Response | (() => Response), string, RegExp][] = [
  ["not JSON", () => indexAnswer("<html>nope</html>"), "IMAGE_REFERRER_INVALID", /not JSON/],
  ["a JSON array", () => indexAnswer("[]"), "IMAGE_REFERRER_INVALID", /must be a JSON object/],
  [
    "an image manifest, not an index",
    () => indexAnswer(`{"schemaVersion":2,"mediaType":"${MANIFEST}","manifests":[]}`),
    "IMAGE_REFERRER_INVALID",
    /mediaType must be application\/vnd\.oci\.image\.index\.v1\+json, not "application\/vnd\.oci\.image\.manifest\.v1\+json"/,
  ],
  [
    "an index without mediaType",
    () => indexAnswer(`{"schemaVersion":2,"manifests":[]}`),
    "IMAGE_REFERRER_INVALID",
    /mediaType must be .*, not nothing/,
  ],
  [
    "schemaVersion 1",
    () => indexAnswer(`{"schemaVersion":1,"mediaType":"${INDEX}","manifests":[]}`),
    "IMAGE_REFERRER_INVALID",
    /schemaVersion must be 2, not 1/,
  ],
  [
    "manifests not an array",
    () => indexAnswer(`{"schemaVersion":2,"mediaType":"${INDEX}","manifests":{}}`),
    "IMAGE_REFERRER_INVALID",
    /manifests must be an array, not an object/,
  ],
  [
    "a bad digest",
    () =>
      indexAnswer(
        `{"schemaVersion":2,"mediaType":"${INDEX}","manifests":[{"mediaType":"${MANIFEST}","digest":"${SBOM_REF.digest}","size":1},` +
          `{"mediaType":"${MANIFEST}","digest":"sha256:../../etc/passwd","size":1}]}`,
      ),
    "IMAGE_REFERRER_INVALID",
    /manifests\[1\]\.digest "sha256:\.\.\/\.\.\/etc\/passwd" is not a digest/,
  ],
  [
    "a fractional size",
    () =>
      indexAnswer(
        `{"schemaVersion":2,"mediaType":"${INDEX}","manifests":[{"mediaType":"${MANIFEST}","digest":"${SBOM_REF.digest}","size":1.5}]}`,
      ),
    "IMAGE_REFERRER_INVALID",
    /manifests\[0\]\.size must be a non-negative integer, not 1\.5/,
  ],
  [
    "a size as a string",
    () =>
      indexAnswer(
        `{"schemaVersion":2,"mediaType":"${INDEX}","manifests":[{"mediaType":"${MANIFEST}","digest":"${SBOM_REF.digest}","size":"12"}]}`,
      ),
    "IMAGE_REFERRER_INVALID",
    /manifests\[0\]\.size must be a non-negative integer, not "12"/,
  ],
  [
    "a negative size",
    () =>
      indexAnswer(
        `{"schemaVersion":2,"mediaType":"${INDEX}","manifests":[{"mediaType":"${MANIFEST}","digest":"${SBOM_REF.digest}","size":-1}]}`,
      ),
    "IMAGE_REFERRER_INVALID",
    /manifests\[0\]\.size must be a non-negative integer, not -1/,
  ],
  [
    "a missing mediaType on an entry",
    () =>
      indexAnswer(
        `{"schemaVersion":2,"mediaType":"${INDEX}","manifests":[{"digest":"${SBOM_REF.digest}","size":1}]}`,
      ),
    "IMAGE_REFERRER_INVALID",
    /manifests\[0\]\.mediaType must be a non-empty string, not nothing/,
  ],
  [
    "an artifactType that is a number",
    () =>
      indexAnswer(
        `{"schemaVersion":2,"mediaType":"${INDEX}","manifests":[{"mediaType":"${MANIFEST}","digest":"${SBOM_REF.digest}","size":1,"artifactType":7}]}`,
      ),
    "IMAGE_REFERRER_INVALID",
    /manifests\[0\]\.artifactType must be a string, not 7/,
  ],
  [
    "an annotation that is not a string",
    () =>
      indexAnswer(
        `{"schemaVersion":2,"mediaType":"${INDEX}","manifests":[{"mediaType":"${MANIFEST}","digest":"${SBOM_REF.digest}","size":1,"annotations":{"a":{}}}]}`,
      ),
    "IMAGE_REFERRER_INVALID",
    /manifests\[0\]\.annotations\["a"\] must be a string, not an object/,
  ],
  [
    "an HTML Content-Type",
    () => new Response(BOTH, { headers: { "content-type": "text/html" } }),
    "IMAGE_REFERRER_INVALID",
    /Content-Type must be application\/vnd\.oci\.image\.index\.v1\+json, not "text\/html"/,
  ],
  [
    "an endless body",
    () =>
      new Response(endlessBody(new TextEncoder().encode(" ".repeat(16 * 1024))), {
        headers: { "content-type": INDEX },
      }),
    "IMAGE_MANIFEST_TOO_LARGE",
    /passed the 65536-byte cap/,
  ],
];

for (const [name, answer, code, pattern] of GARBAGE) {
  Deno.test(`listReferrers() refuses an API answer that is ${name} (${code})`, async () => {
    await within(15_000, name, async (signal) => {
      await using d = startDouble(typeof answer === "function" ? answer : () => answer);
      await rejectsWith(() => listReferrers(d.client, "app", SUBJECT, { signal }), code, pattern);
    });
  });
}

Deno.test("listReferrers() refuses a digest outside the grammar before any request", async () => {
  await using d = startDouble(() => indexAnswer(BOTH));
  await rejectsWith(
    () => listReferrers(d.client, "app", "sha256:../x"),
    "IMAGE_MANIFEST_INVALID",
    /is not sha256:<64 lowercase hex>/,
  );
  assert.deepEqual(d.requests, []);
});

// ---- pure helpers ------------------------------------------------------------------------------

Deno.test("referrersTag() is the algorithm, a dash and the hex", () => {
  assert.equal(
    referrersTag("sha256:40132b175dda4eb6e761bf36b9a2852815dd81929288e8d8833a72a78345f3c0"),
    "sha256-40132b175dda4eb6e761bf36b9a2852815dd81929288e8d8833a72a78345f3c0",
  );
  assert.equal(
    referrersTag("sha512:" + "ab".repeat(64)),
    "sha512-abababababababababababababababababababababababababababababababab",
  );
  assert.throws(() => referrersTag("latest"), /is not a digest/);
});

Deno.test("mergeReferrersIndex() keeps every existing entry in order, adds new ones, dedupes by digest", () => {
  const third: ReferrerDescriptor = {
    mediaType: MANIFEST,
    digest: "sha256:3333333333333333333333333333333333333333333333333333333333333333",
    size: 9,
  };
  const existing: ReferrersIndex = {
    schemaVersion: 2,
    mediaType: INDEX,
    manifests: [SBOM_REF, third],
    annotations: { "org.example": "kept" },
  };
  const merged = mergeReferrersIndex(existing, [SIG_REF, { ...SBOM_REF, size: 1 }, SIG_REF]);
  assert.deepEqual(merged, {
    schemaVersion: 2,
    mediaType: INDEX,
    manifests: [SBOM_REF, third, SIG_REF],
    annotations: { "org.example": "kept" },
  });
  assert.deepEqual(mergeReferrersIndex(null, [SIG_REF, SIG_REF]), {
    schemaVersion: 2,
    mediaType: INDEX,
    manifests: [SIG_REF],
  });
  assert.deepEqual(mergeReferrersIndex(null, []), {
    schemaVersion: 2,
    mediaType: INDEX,
    manifests: [],
  });
});

Deno.test("isSuperset() holds only when every descriptor of the second is in the first", () => {
  assert.equal(isSuperset([SIG_REF, SBOM_REF], [SBOM_REF]), true);
  assert.equal(isSuperset([SIG_REF, SBOM_REF], []), true);
  assert.equal(isSuperset([SIG_REF, SBOM_REF], [SBOM_REF, SIG_REF]), true);
  assert.equal(isSuperset([SIG_REF], [SIG_REF, SBOM_REF]), false);
  assert.equal(isSuperset([], [SIG_REF]), false);
});

Deno.test("parseReferrersIndex() keeps index annotations and entry platform, drops unknown fields", () => {
  const bytes = new TextEncoder().encode(
    `{"schemaVersion":2,"mediaType":"${INDEX}","annotations":{"k":"v"},"manifests":[` +
      `{"mediaType":"${MANIFEST}","digest":"${SBOM_REF.digest}","size":3,"platform":{"os":"linux"},"urls":["http://x"]}]}`,
  );
  assert.deepEqual(parseReferrersIndex(bytes, "here"), {
    schemaVersion: 2,
    mediaType: INDEX,
    manifests: [{
      mediaType: MANIFEST,
      digest: SBOM_REF.digest,
      size: 3,
      platform: { os: "linux" },
    }],
    annotations: { k: "v" },
  });
});

// ---- the fallback tag on a real docker-registry ------------------------------------------------

const EMPTY = {
  bytes: "{}",
  digest: "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
};
const SUBJECT_LAYER = {
  bytes: "subject layer\n",
  digest: "sha256:fe4535b24506f44d9f12394a554928e7792aa4b867c9677a16e8374cfd9654dc",
};
const SIG_LAYER = {
  bytes: `{"mediaType":"${BUNDLE}"}`,
  digest: "sha256:f2168ec310ea3d35dc929b480c85a91c21775cbbf36db3a37e041e5fe815f586",
};
const SBOM_LAYER = {
  bytes: `{"spdxVersion":"SPDX-2.3"}`,
  digest: "sha256:d4f269605ffe72fbe7a3021d68284798ec364111376ee2eace17688bb52a9e1d",
};
const CONFIG =
  `{"mediaType":"application/vnd.oci.empty.v1+json","digest":"${EMPTY.digest}","size":2}`;
const REAL_SUBJECT = {
  bytes:
    `{"schemaVersion":2,"mediaType":"${MANIFEST}","artifactType":"application/vnd.example.subject",` +
    `"config":${CONFIG},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"${SUBJECT_LAYER.digest}","size":14}]}`,
  digest: "sha256:40132b175dda4eb6e761bf36b9a2852815dd81929288e8d8833a72a78345f3c0",
};
const SUBJECT_FIELD =
  `"subject":{"mediaType":"${MANIFEST}","digest":"${REAL_SUBJECT.digest}","size":435}`;
const REAL_SIG = {
  bytes:
    `{"schemaVersion":2,"mediaType":"${MANIFEST}","artifactType":"${BUNDLE}","config":${CONFIG},` +
    `"layers":[{"mediaType":"${BUNDLE}","digest":"${SIG_LAYER.digest}","size":61}],${SUBJECT_FIELD},` +
    `"annotations":{"dev.sigstore.bundle.predicateType":"https://sigstore.dev/cosign/sign/v1"}}`,
  digest: "sha256:c9f28e5cc6b0520d70cf547e1c28826f75f19e5d7ff0c25318ef050ffc250fc2",
};
const REAL_SBOM = {
  bytes:
    `{"schemaVersion":2,"mediaType":"${MANIFEST}","artifactType":"${SPDX}","config":${CONFIG},` +
    `"layers":[{"mediaType":"${SPDX}","digest":"${SBOM_LAYER.digest}","size":26}],${SUBJECT_FIELD}}`,
  digest: "sha256:f6ec516aeb2a84bf99f4b20e4327f925b612c598dc94348b27906e6008b35779",
};
const REAL_SIG_REF: ReferrerDescriptor = {
  mediaType: MANIFEST,
  digest: REAL_SIG.digest,
  size: 709,
  artifactType: BUNDLE,
  annotations: { "dev.sigstore.bundle.predicateType": "https://sigstore.dev/cosign/sign/v1" },
};
const REAL_SBOM_REF: ReferrerDescriptor = {
  mediaType: MANIFEST,
  digest: REAL_SBOM.digest,
  size: 571,
  artifactType: SPDX,
};
const FALLBACK_TAG = "sha256-40132b175dda4eb6e761bf36b9a2852815dd81929288e8d8833a72a78345f3c0";
/** The fallback index listing the signature only, as a client wrote it. */
const FALLBACK_ONE = `{"schemaVersion":2,"mediaType":"${INDEX}","manifests":[` +
  `{"mediaType":"${MANIFEST}","digest":"${REAL_SIG.digest}","size":709,"artifactType":"${BUNDLE}",` +
  `"annotations":{"dev.sigstore.bundle.predicateType":"https://sigstore.dev/cosign/sign/v1"}}]}`;
const FALLBACK_ONE_DIGEST =
  "sha256:1293c8054f291eec145e765765fb3d4e90bd14a7ed2db2188c757ffc7f9ba796";
/** The merged fallback index (signature, then SBOM), byte for byte. */
const FALLBACK_TWO = `{"schemaVersion":2,"mediaType":"${INDEX}","manifests":[` +
  `{"mediaType":"${MANIFEST}","digest":"${REAL_SIG.digest}","size":709,"artifactType":"${BUNDLE}",` +
  `"annotations":{"dev.sigstore.bundle.predicateType":"https://sigstore.dev/cosign/sign/v1"}},` +
  `{"mediaType":"${MANIFEST}","digest":"${REAL_SBOM.digest}","size":571,"artifactType":"${SPDX}"}]}`;
const FALLBACK_TWO_DIGEST =
  "sha256:34a4c87b5163a5662a9fd2df29808130d950abe897e280cdd1e727bedcb6a539";

function registryClient(reg: TestRegistry): RegistryClient {
  return new RegistryClient({
    host: reg.host,
    scheme: reg.scheme,
    caFile: reg.caFile,
    maxRetries: 1,
    retryDelayMs: 5,
    secrets: new Secrets(),
  });
}

async function pushBlob(
  client: RegistryClient,
  repo: string,
  blob: { bytes: string; digest: string },
) {
  const bytes = new TextEncoder().encode(blob.bytes);
  await client.blobUpload(repo, { digest: blob.digest, size: bytes.length }, () =>
    Promise.resolve(
      new ReadableStream<Uint8Array>({
        start(c) {
          c.enqueue(bytes);
          c.close();
        },
      }),
    ));
}

async function putManifest(
  client: RegistryClient,
  repo: string,
  ref: string,
  manifest: { bytes: string; mediaType?: string },
): Promise<string> {
  return await client.manifestPut(repo, ref, {
    mediaType: manifest.mediaType ?? MANIFEST,
    bytes: new TextEncoder().encode(manifest.bytes),
  });
}

async function pushSubjectAndReferrers(client: RegistryClient, repo: string) {
  for (const blob of [EMPTY, SUBJECT_LAYER, SIG_LAYER, SBOM_LAYER]) {
    await pushBlob(client, repo, blob);
  }
  assert.equal(await putManifest(client, repo, "v1", REAL_SUBJECT), REAL_SUBJECT.digest);
  assert.equal(await putManifest(client, repo, REAL_SIG.digest, REAL_SIG), REAL_SIG.digest);
  assert.equal(await putManifest(client, repo, REAL_SBOM.digest, REAL_SBOM), REAL_SBOM.digest);
}

Deno.test(
  `listReferrers() on a real registry without the API: absent fallback tag, then read, merge, PUT, read again${skip}`,
  {
    ignore: skip !== "",
  },
  async () => {
    await using reg = await startRegistry();
    const client = registryClient(reg);
    try {
      await pushSubjectAndReferrers(client, "app");
      // No fallback tag yet: the API 404s, the tag is absent -> no referrers.
      assert.deepEqual(await listReferrers(client, "app", REAL_SUBJECT.digest), {
        via: "tag",
        descriptors: [],
        index: null,
        tagDigest: null,
      });
      const log = await reg.accessLog();
      // (distribution's access log has no line for a route it does not know: the referrers 404)
      assert.ok(log.includes(`GET /v2/app/manifests/${FALLBACK_TAG} 404`), log.join("\n"));

      // A client that pushed the signature wrote the fallback index.
      assert.equal(
        await putManifest(client, "app", FALLBACK_TAG, { bytes: FALLBACK_ONE, mediaType: INDEX }),
        FALLBACK_ONE_DIGEST,
      );
      const one = await listReferrers(client, "app", REAL_SUBJECT.digest);
      assert.deepEqual(one, {
        via: "tag",
        descriptors: [REAL_SIG_REF],
        index: { schemaVersion: 2, mediaType: INDEX, manifests: [REAL_SIG_REF] },
        tagDigest: FALLBACK_ONE_DIGEST,
      });
      assert.deepEqual(
        await listReferrers(client, "app", REAL_SUBJECT.digest, { artifactType: SPDX }),
        { ...one, descriptors: [] },
      );

      // Add the SBOM (its descriptor taken from the manifest as stored): a superset merge, PUT
      // back, read again.
      const sbom = await client.manifestGet("app", REAL_SBOM.digest);
      assert.ok(sbom);
      const sbomRef = referrerDescriptor(sbom, "the SBOM");
      assert.deepEqual(sbomRef, REAL_SBOM_REF);
      const merged = mergeReferrersIndex(one.index ?? null, [sbomRef, REAL_SIG_REF]);
      const encoded = encodeReferrersIndex(merged);
      assert.equal(new TextDecoder().decode(encoded.bytes), FALLBACK_TWO);
      assert.equal(isSuperset(merged.manifests, one.descriptors), true);
      assert.equal(isSuperset(one.descriptors, merged.manifests), false);
      assert.equal(await client.manifestPut("app", FALLBACK_TAG, encoded), FALLBACK_TWO_DIGEST);
      assert.deepEqual(await listReferrers(client, "app", REAL_SUBJECT.digest), {
        via: "tag",
        descriptors: [REAL_SIG_REF, REAL_SBOM_REF],
        index: { schemaVersion: 2, mediaType: INDEX, manifests: [REAL_SIG_REF, REAL_SBOM_REF] },
        tagDigest: FALLBACK_TWO_DIGEST,
      });
      assert.deepEqual(
        (await listReferrers(client, "app", REAL_SUBJECT.digest, { artifactType: SPDX }))
          .descriptors,
        [REAL_SBOM_REF],
      );
      // The referrers listed are really there, by digest.
      assert.equal((await client.manifestHead("app", REAL_SIG.digest))?.digest, REAL_SIG.digest);
      assert.equal((await client.manifestHead("app", REAL_SBOM.digest))?.digest, REAL_SBOM.digest);
    } finally {
      client.close();
    }
  },
);

Deno.test(
  `listReferrers() refuses a fallback tag that holds an image manifest, not an index${skip}`,
  {
    ignore: skip !== "",
  },
  async () => {
    await using reg = await startRegistry();
    const client = registryClient(reg);
    try {
      await pushSubjectAndReferrers(client, "app");
      await putManifest(client, "app", FALLBACK_TAG, REAL_SIG);
      await rejectsWith(
        () => listReferrers(client, "app", REAL_SUBJECT.digest),
        "IMAGE_REFERRER_INVALID",
        /:sha256-40132b17.*: mediaType must be application\/vnd\.oci\.image\.index\.v1\+json, not "application\/vnd\.oci\.image\.manifest\.v1\+json"/,
      );
    } finally {
      client.close();
    }
  },
);

Deno.test("referrerDescriptor() takes artifactType, else config.mediaType, and the annotations", () => {
  const manifest = (bytes: string, mediaType = MANIFEST) => ({
    mediaType,
    digest: "sha256:4444444444444444444444444444444444444444444444444444444444444444",
    bytes: new TextEncoder().encode(bytes),
  });
  assert.deepEqual(
    referrerDescriptor({ ...manifest(REAL_SIG.bytes), digest: REAL_SIG.digest }, "sig"),
    REAL_SIG_REF,
  );
  assert.deepEqual(
    referrerDescriptor(
      manifest(
        `{"schemaVersion":2,"config":{"mediaType":"application/vnd.dev.cosign.artifact.sig.v1+json"}}`,
      ),
      "old",
    ),
    {
      mediaType: MANIFEST,
      digest: "sha256:4444444444444444444444444444444444444444444444444444444444444444",
      size: 92,
      artifactType: "application/vnd.dev.cosign.artifact.sig.v1+json",
    },
  );
  assert.deepEqual(referrerDescriptor(manifest(`{"manifests":[]}`, INDEX), "index"), {
    mediaType: INDEX,
    digest: "sha256:4444444444444444444444444444444444444444444444444444444444444444",
    size: 16,
  });
  for (
    const [bytes, pattern] of [
      ["nope", /the manifest is not JSON/],
      [`{"artifactType":1}`, /artifactType must be a string, not 1/],
      [`{"config":{"mediaType":2}}`, /config\.mediaType must be a string, not 2/],
      [`{"annotations":{"a":1}}`, /annotations\["a"\] must be a string, not 1/],
    ] as const
  ) {
    assert.throws(() => referrerDescriptor(manifest(bytes), "bad"), (e: unknown) => {
      assert.ok(e instanceof MirrorError && e.code === "IMAGE_REFERRER_INVALID", String(e));
      assert.match(e.message, pattern);
      return true;
    });
  }
});
