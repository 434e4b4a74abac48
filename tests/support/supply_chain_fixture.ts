/**
 * Supply-chain fixtures beyond `.sig`/`.att` (cosign_fixture.ts): a cosign `.sbom` attachment, an
 * OCI 1.1 referrer with `subject` in cosign v3's bundle shape (or any artifact type), the referrers
 * fallback index (`sha256-<hex>` tag) as go-containerregistry writes it, and a loopback referrers-API
 * double in front of a real registry (distribution 2.8.2 has no API). All bytes are written out
 * here, independent of lib/.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Report, ReportEntry } from "../../lib/mirror/report.ts";
import type { BuiltManifest } from "./cosign_fixture.ts";
import { pushManifestWithBlobs, sha256, skopeoInspectRaw } from "./images.ts";
import { forward } from "./proxy.ts";
import type { TestRegistry } from "./registry.ts";

/** OCI media types the fixtures use. */
export const MT = {
  manifest: "application/vnd.oci.image.manifest.v1+json",
  index: "application/vnd.oci.image.index.v1+json",
  config: "application/vnd.oci.image.config.v1+json",
  empty: "application/vnd.oci.empty.v1+json",
  bundle: "application/vnd.dev.sigstore.bundle.v0.3+json",
  spdx: "text/spdx+json",
};

/** The OCI empty descriptor's blob `{}` and its digest (image-spec 1.1). */
export const EMPTY_BLOB = new TextEncoder().encode("{}");
export const EMPTY_DIGEST =
  "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

/** A cosign `.sbom` attachment: a one-layer image whose layer is the SBOM document. */
export function buildSbomManifest(document: string): BuiltManifest {
  const sbom = new TextEncoder().encode(document);
  const config = new TextEncoder().encode(JSON.stringify({
    architecture: "",
    created: "0001-01-01T00:00:00Z",
    os: "",
    rootfs: { type: "layers", diff_ids: [sha256(sbom)] },
    config: {},
  }));
  const manifest = new TextEncoder().encode(JSON.stringify({
    schemaVersion: 2,
    mediaType: MT.manifest,
    config: { mediaType: MT.config, size: config.length, digest: sha256(config) },
    layers: [{ mediaType: MT.spdx, size: sbom.length, digest: sha256(sbom) }],
  }));
  return { mediaType: MT.manifest, manifest, blobs: [config, sbom] };
}

/**
 * An OCI 1.1 referrer of `subject` (cosign v3 shape: empty config, one layer, `artifactType`,
 * `subject`, annotations) with `content` as its one layer.
 */
export function buildReferrer(options: {
  subject: { mediaType: string; digest: string; size: number };
  artifactType: string;
  content: string;
  annotations?: Record<string, string>;
}): BuiltManifest & { artifactType: string; annotations: Record<string, string> } {
  const layer = new TextEncoder().encode(options.content);
  const annotations = options.annotations ?? {
    "org.opencontainers.image.created": "2026-11-30T05:00:00Z",
  };
  const manifest = new TextEncoder().encode(JSON.stringify({
    schemaVersion: 2,
    mediaType: MT.manifest,
    artifactType: options.artifactType,
    config: { mediaType: MT.empty, digest: EMPTY_DIGEST, size: 2 },
    layers: [{ mediaType: options.artifactType, digest: sha256(layer), size: layer.length }],
    subject: options.subject,
    annotations,
  }));
  return {
    mediaType: MT.manifest,
    manifest,
    blobs: [EMPTY_BLOB, layer],
    artifactType: options.artifactType,
    annotations,
  };
}

/** A referrer pushed by digest; returns its descriptor as a referrers list holds it. */
export async function pushReferrer(
  reg: TestRegistry,
  repo: string,
  built: ReturnType<typeof buildReferrer>,
): Promise<ReferrerEntry> {
  const digest = sha256(built.manifest);
  await pushManifestWithBlobs(reg, `${repo}:${digest}`, built);
  return {
    mediaType: MT.manifest,
    digest,
    size: built.manifest.length,
    artifactType: built.artifactType,
    annotations: built.annotations,
  };
}

/** One entry of a referrers index. */
export interface ReferrerEntry {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
}

/** The fallback index bytes (compact JSON, entries in the order given). */
export function fallbackIndex(entries: ReferrerEntry[]): Uint8Array {
  return new TextEncoder().encode(
    JSON.stringify({ schemaVersion: 2, mediaType: MT.index, manifests: entries }),
  );
}

/** Push the fallback tag `sha256-<hex>` of `subject` listing `entries`; returns its digest. */
export async function pushFallbackTag(
  reg: TestRegistry,
  repo: string,
  subject: string,
  entries: ReferrerEntry[],
): Promise<string> {
  const bytes = fallbackIndex(entries);
  await pushManifestWithBlobs(reg, `${repo}:${subject.replace(":", "-")}`, {
    mediaType: MT.index,
    manifest: bytes,
    blobs: [],
  });
  return sha256(bytes);
}

/**
 * The referrer tree of the signature tests, pushed into `repo` with fallback tags (a real
 * registry has no referrers API): a sigstore bundle and an SPDX document referring to `subject`,
 * and a bundle referring to that document.
 */
export async function pushReferrerTree(
  reg: TestRegistry,
  repo: string,
  subject: { mediaType: string; digest: string; size: number },
): Promise<{ bundle: ReferrerEntry; sbomRef: ReferrerEntry; sbomRefBundle: ReferrerEntry }> {
  const bundle = await pushReferrer(
    reg,
    repo,
    buildReferrer({ subject, artifactType: MT.bundle, content: '{"bundle":1}' }),
  );
  const sbomRef = await pushReferrer(
    reg,
    repo,
    buildReferrer({ subject, artifactType: MT.spdx, content: '{"spdx":"ref"}' }),
  );
  const sbomRefBundle = await pushReferrer(
    reg,
    repo,
    buildReferrer({
      subject: { mediaType: MT.manifest, digest: sbomRef.digest, size: sbomRef.size },
      artifactType: MT.bundle,
      content: '{"bundle":"of the sbom"}',
    }),
  );
  await pushFallbackTag(reg, repo, subject.digest, [bundle, sbomRef]);
  await pushFallbackTag(reg, repo, sbomRef.digest, [sbomRefBundle]);
  return { bundle, sbomRef, sbomRefBundle };
}

/** Requests of a registry's access log as `METHOD PATH` (status dropped). */
export async function requests(reg: TestRegistry): Promise<string[]> {
  return (await reg.accessLog()).map((l) => l.split(" ").slice(0, 2).join(" "));
}

/**
 * `log` with the entries from `from` to `to` sorted: requests a run sends at once (the plan reads
 * a task's HEADs, its repository's `latest` and its source's tag list together) arrive in any
 * order; the ones before and after keep theirs.
 */
export function atOnce(log: readonly string[], from: number, to: number): string[] {
  return [...log.slice(0, from), ...log.slice(from, to).sort(), ...log.slice(to)];
}

/** A referrers-API double in front of a real registry. */
export interface ReferrersDouble extends AsyncDisposable {
  /** `127.0.0.1:PORT`. */
  host: string;
  /** `METHOD path` of every request, in order. */
  requests: string[];
  /** What `GET /v2/<repo>/referrers/<digest>` answers: set per `repo@digest`; unset: empty index. */
  answers: Map<string, Response | (() => Response)>;
  /** Other requests answered here instead of forwarded, by exact path and query. */
  overrides: Map<string, () => Response>;
}

/**
 * Serve the referrers API for `reg`: `/v2/<repo>/referrers/<digest>` answers from `answers`
 * (unset: 200 with an empty index); every other request is forwarded to the registry.
 */
export function startReferrersDouble(reg: TestRegistry): ReferrersDouble {
  const requests: string[] = [];
  const answers = new Map<string, Response | (() => Response)>();
  const overrides = new Map<string, () => Response>();
  let host = "";
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const url = new URL(req.url);
    requests.push(`${req.method} ${url.pathname}`);
    const override = overrides.get(url.pathname + url.search);
    if (override) return override();
    const m = /^\/v2\/(.+)\/referrers\/(sha256:[0-9a-f]{64})$/.exec(url.pathname);
    if (m && req.method === "GET") {
      const answer = answers.get(`${m[1]}@${m[2]}`);
      if (answer) return typeof answer === "function" ? answer() : answer.clone();
      return new Response(new TextDecoder().decode(fallbackIndex([])), {
        headers: { "content-type": MT.index },
      });
    }
    return await forward(req, reg.url, host);
  });
  host = `127.0.0.1:${server.addr.port}`;
  return {
    host,
    requests,
    answers,
    overrides,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

/** Assert `ref` (a tag or `@digest`) has byte-identical manifests at both registries. */
export async function sameBytes(
  src: TestRegistry,
  dst: TestRegistry,
  from: string,
  to: string,
): Promise<string> {
  const a = await skopeoInspectRaw(src, from);
  const b = await skopeoInspectRaw(dst, to);
  assert.equal(b.digest, a.digest, `${to} vs ${from}`);
  assert.deepEqual(b.bytes, a.bytes, `${to} vs ${from}`);
  return a.digest;
}

/** Every log file of a run's log dir, joined. */
export async function logText(dir: string): Promise<string> {
  let text = "";
  for await (const e of Deno.readDir(`${dir}/logs`)) {
    if (e.isFile && e.name.endsWith(".log")) {
      text += await Deno.readTextFile(`${dir}/logs/${e.name}`);
    }
  }
  return text;
}

/** The report entries of a run that wrote a report (fails the test when it wrote none). */
export function entriesOf(run: { report: Report | null; stderr: string }): ReportEntry[] {
  assert.ok(run.report, `no report written: ${run.stderr}`);
  return run.report.entries;
}

/** The cosign tag (`suffix` `.sig`/`.att`/`.sbom`) or referrers fallback tag of a digest. */
export function tagOf(digest: string, suffix = ""): string {
  return `${digest.replace(":", "-")}${suffix}`;
}

/**
 * Make every destination HEAD the supply-chain memo remembers 25 h old (as if the last run were a
 * day ago): the next run HEADs those tags again.
 */
export async function ageMemo(dir: string): Promise<void> {
  const path = `${dir}/logs/.supply-chain-state.json`;
  const state = JSON.parse(await Deno.readTextFile(path));
  assert.ok(Object.keys(state.tags).length > 0, "the memo holds tag entries");
  for (const entry of Object.values(state.tags) as { verifiedAt: number }[]) {
    entry.verifiedAt = Date.now() - 25 * 3600 * 1000;
  }
  await Deno.writeTextFile(path, JSON.stringify(state));
}
