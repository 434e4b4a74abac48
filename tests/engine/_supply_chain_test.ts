/**
 * The supply-chain sync (lib/engine/_supply_chain.ts) over two in-memory stores (no referrers API
 * on either, as a layout): cosign `.sig` / `.att` / `.sbom` tags and a fallback-tag referrer travel
 * byte-exact and are counted; a second pass writes nothing; a destination `.sig` holding a
 * signature the source lacks is drift, left untouched; one the source extends (signatures appended
 * upstream) is replaced; a referrer listed for another subject is not carried; the copy and
 * bundle verification take a referrers API answer alike. No network.
 */
import assert from "node:assert/strict";
import type { EngineEvent } from "../../lib/engine/engine.ts";
import { RegistryEngine } from "../../lib/engine/registry_engine.ts";
import { MirrorError } from "../../lib/errors.ts";
import type { ReferrersOptions } from "../../lib/registry/_referrers_get.ts";
import { fetchImageBundles } from "../../lib/signatures/bundle_fetch.ts";
import { buildSignatureManifest, simpleSigningPayload } from "../support/cosign_fixture.ts";
import { sha256 } from "../support/images.ts";
import { MemoryStore } from "../support/memory_store.ts";
import {
  buildReferrer,
  buildSbomManifest,
  fallbackIndex,
  MT,
} from "../support/supply_chain_fixture.ts";

const SRC = "src.example";
const DST = "dst.example";

/** One image (config + layer) in both stores, as after its copy; returns its descriptor. */
function mirroredImage(src: MemoryStore, dst: MemoryStore) {
  const config = new TextEncoder().encode('{"architecture":"amd64","os":"linux"}');
  const layer = new TextEncoder().encode("layer bytes");
  const bytes = new TextEncoder().encode(JSON.stringify({
    schemaVersion: 2,
    mediaType: MT.manifest,
    config: { mediaType: MT.config, size: config.length, digest: sha256(config) },
    layers: [{
      mediaType: "application/vnd.oci.image.layer.v1.tar",
      size: layer.length,
      digest: sha256(layer),
    }],
  }));
  for (const store of [src, dst]) {
    store.putBlob(config);
    store.putBlob(layer);
  }
  const digest = src.putManifest("team/app", "1", { mediaType: MT.manifest, bytes });
  dst.putManifest("mirror/app", "1", { mediaType: MT.manifest, bytes });
  return { mediaType: MT.manifest, digest, size: bytes.length };
}

/** Put a built manifest with its blobs under `tag` in `repository`; returns its digest. */
function put(
  store: MemoryStore,
  repository: string,
  tag: string,
  built: { mediaType: string; manifest: Uint8Array; blobs: Uint8Array[] },
): string {
  for (const blob of built.blobs) store.putBlob(blob);
  return store.putManifest(repository, tag, { mediaType: built.mediaType, bytes: built.manifest });
}

function signature(digest: string, text: string) {
  return {
    payload: simpleSigningPayload(`${SRC}/team/app`, digest),
    signature: new TextEncoder().encode(text),
  };
}

async function carry(src: MemoryStore, dst: MemoryStore, image: { digest: string }) {
  const events: EngineEvent[] = [];
  const engine = new RegistryEngine({ clientFor: (host) => (host === SRC ? src : dst) });
  const counts = await engine.carrySupplyChain({
    source: { registry: SRC, repository: "team/app" },
    destination: { registry: DST, repository: "mirror/app" },
    digest: image.digest,
    mediaType: MT.manifest,
    onEvent: (event) => events.push(event),
  });
  const codes = events.flatMap((e) => (e.kind === "step" ? [e.code] : []));
  return { counts, codes };
}

const tagOf = (digest: string, suffix = "") => `${digest.replace(":", "-")}${suffix}`;

Deno.test("SupplyChain: .sig, .att, .sbom and a fallback-tag referrer travel byte-exact, counted; again, nothing is written", async () => {
  const src = new MemoryStore(SRC);
  const dst = new MemoryStore(DST);
  const image = mirroredImage(src, dst);
  const sig = put(
    src,
    "team/app",
    tagOf(image.digest, ".sig"),
    buildSignatureManifest([signature(image.digest, "sig-1")]),
  );
  const att = put(
    src,
    "team/app",
    tagOf(image.digest, ".att"),
    buildSignatureManifest([signature(image.digest, "att-1")]),
  );
  const sbom = put(src, "team/app", tagOf(image.digest, ".sbom"), buildSbomManifest("SPDX doc"));
  const referrer = buildReferrer({
    subject: image,
    artifactType: "application/spdx+json",
    content: "sbom",
  });
  const referrerDigest = put(src, "team/app", "unused-tag", referrer);
  const index = fallbackIndex([{
    mediaType: MT.manifest,
    digest: referrerDigest,
    size: referrer.manifest.length,
    artifactType: referrer.artifactType,
    annotations: referrer.annotations,
  }]);
  src.putManifest("team/app", tagOf(image.digest), { mediaType: MT.index, bytes: index });

  const first = await carry(src, dst, image);
  assert.deepEqual(first.counts, { signatures: 1, attestations: 1, sboms: 1, referrers: 1 });
  for (const [tag, digest] of [[".sig", sig], [".att", att], [".sbom", sbom]]) {
    assert.equal(
      (await dst.manifestHead("mirror/app", tagOf(image.digest, tag)))?.digest,
      digest,
      tag,
    );
  }
  assert.deepEqual(
    (await dst.manifestGet("mirror/app", referrerDigest))?.bytes,
    referrer.manifest,
    "the referrer, by digest",
  );
  assert.deepEqual(
    (await dst.manifestGet("mirror/app", tagOf(image.digest)))?.bytes,
    index,
    "the source's fallback index, exact bytes",
  );
  assert.deepEqual(first.codes.filter((c) => c === "IMAGE_TAG_DRIFT"), []);

  // The second pass finds every tag at the source's digest: no manifest or blob GET at the source.
  src.reads.length = 0;
  const second = await carry(src, dst, image);
  assert.deepEqual(second.counts, first.counts);
  assert.deepEqual(src.reads.filter((r) => r.includes("@")), [], src.reads.join("\n"));
});

Deno.test("SupplyChain: a destination .sig the source does not extend is drift, untouched; one it extends is replaced", async () => {
  const src = new MemoryStore(SRC);
  const dst = new MemoryStore(DST);
  const image = mirroredImage(src, dst);
  const tag = tagOf(image.digest, ".sig");
  // Another payload (a signer's own annotations in it): a layer the source does not hold.
  const mine = {
    payload: new TextEncoder().encode(
      new TextDecoder().decode(simpleSigningPayload(`${SRC}/team/app`, image.digest))
        .replace(/}$/, ',"optional":{"signer":"site-team"}}'),
    ),
    signature: new TextEncoder().encode("only-at-destination"),
  };
  const theirs = signature(image.digest, "upstream-1");
  const appended = signature(image.digest, "upstream-2");
  put(src, "team/app", tag, buildSignatureManifest([theirs, appended]));

  const foreign = put(dst, "mirror/app", tag, buildSignatureManifest([mine]));
  const drift = await carry(src, dst, image);
  assert.ok(drift.codes.includes("IMAGE_TAG_DRIFT"), drift.codes.join(","));
  assert.equal((await dst.manifestHead("mirror/app", tag))?.digest, foreign, "left untouched");

  // Another signer's signature of the same payload: the same layer digest, another annotation.
  const sameDigest = put(
    dst,
    "mirror/app",
    tag,
    buildSignatureManifest([
      signature(image.digest, "another-signer"),
    ]),
  );
  const sameDrift = await carry(src, dst, image);
  assert.ok(sameDrift.codes.includes("IMAGE_TAG_DRIFT"), sameDrift.codes.join(","));
  assert.equal((await dst.manifestHead("mirror/app", tag))?.digest, sameDigest, "kept");

  put(dst, "mirror/app", tag, buildSignatureManifest([theirs]));
  const extended = await carry(src, dst, image);
  assert.deepEqual(extended.codes.filter((c) => c === "IMAGE_TAG_DRIFT"), []);
  assert.equal(
    (await dst.manifestHead("mirror/app", tag))?.digest,
    (await src.manifestHead("team/app", tag))?.digest,
    "replaced by the source's, which holds every signature the destination had",
  );
  assert.equal(extended.counts.signatures, 1);
});

Deno.test("SupplyChain: a referrer the fallback index lists for another subject is not carried", async () => {
  const src = new MemoryStore(SRC);
  const dst = new MemoryStore(DST);
  const image = mirroredImage(src, dst);
  const other = { mediaType: MT.manifest, digest: `sha256:${"e".repeat(64)}`, size: 10 };
  const stray = buildReferrer({
    subject: other,
    artifactType: "application/spdx+json",
    content: "x",
  });
  const strayDigest = put(src, "team/app", "stray", stray);
  src.putManifest("team/app", tagOf(image.digest), {
    mediaType: MT.index,
    bytes: fallbackIndex([{
      mediaType: MT.manifest,
      digest: strayDigest,
      size: stray.manifest.length,
    }]),
  });
  const run = await carry(src, dst, image);
  assert.equal(run.counts.referrers, 0);
  assert.ok(run.codes.includes("IMAGE_REFERRER_INVALID"), run.codes.join(","));
  assert.equal(await dst.manifestGet("mirror/app", strayDigest), null, "never copied");
});

/** A store whose referrers API answers 200 with a valid empty index under `contentType`. */
class AnsweringStore extends MemoryStore {
  constructor(host: string, readonly contentType: string) {
    super(host);
  }

  override async referrersGet(
    _repository: string,
    _digest: string,
    options?: ReferrersOptions,
  ): Promise<number | null> {
    await options?.onPage?.(
      { contentType: this.contentType, bytes: fallbackIndex([]), filtersApplied: [] },
      0,
    );
    return 1;
  }
}

Deno.test("SupplyChain and bundle verification take a referrers answer alike (the one API reader)", async (t) => {
  /** What each reader makes of `dst`'s referrers API: "ok" or the error code. */
  async function verdicts(contentType: string) {
    const src = new MemoryStore(SRC);
    const dst = new AnsweringStore(DST, contentType);
    const image = mirroredImage(src, dst);
    const referrer = buildReferrer({
      subject: image,
      artifactType: "application/spdx+json",
      content: "x",
    });
    const referrerDigest = put(src, "team/app", "unused-tag", referrer);
    src.putManifest("team/app", tagOf(image.digest), {
      mediaType: MT.index,
      bytes: fallbackIndex([{
        mediaType: MT.manifest,
        digest: referrerDigest,
        size: referrer.manifest.length,
        artifactType: referrer.artifactType,
      }]),
    });
    const outcome = (p: Promise<unknown>) =>
      p.then(() => "ok", (e: unknown) => (e instanceof MirrorError ? e.code : String(e)));
    return {
      // The copy asks whether the destination serves the API (to keep its fallback tag or not).
      copy: await outcome(carry(src, dst, image)),
      verify: await outcome(
        fetchImageBundles(dst, { repository: "mirror/app", digest: image.digest }),
      ),
    };
  }
  await t.step("an index Content-Type: both take the API", async () => {
    assert.deepEqual(await verdicts(MT.index), { copy: "ok", verify: "ok" });
  });
  await t.step("an HTML Content-Type: both refuse it", async () => {
    assert.deepEqual(await verdicts("text/html"), {
      copy: "IMAGE_REFERRER_INVALID",
      verify: "IMAGE_REFERRER_INVALID",
    });
  });
});
