/**
 * cosign v3 signatures made the way cosign v3 makes them by default (shared/registry-protocols.md
 * §8.6), with no help from lib/: an in-toto statement (`predicateType:
 * https://sigstore.dev/cosign/sign/v1`, subject = the image digest) in a DSSE envelope signed over
 * the PAE with openssl (cosign_fixture.ts), inside a sigstore bundle v0.3 (protobuf JSON:
 * `mediaType`, `verificationMaterial`, `dsseEnvelope`), pushed by digest as an OCI 1.1 referrer
 * (empty config, one bundle layer, `subject`, cosign's annotations). On a registry without the
 * referrers API the fallback tag `sha256-<hex>` is kept as go-containerregistry keeps it; the
 * referrers-API double serves `GET /v2/<name>/referrers/<digest>` in front of a real registry.
 *
 * ```ts ignore
 * const bundle = await buildBundle({ key, statement: cosignSignStatement(`${reg.host}/app`, image.digest) });
 * await pushBundleReferrer(reg, "app", buildBundleReferrer(bundle, await subjectOf(reg, "app", image.digest)));
 * ```
 *
 * @module
 */
import { encodeBase64, fixturePae, opensslSign, type TestKey } from "./cosign_fixture.ts";
import type { BuiltManifest } from "./cosign_fixture.ts";
import { pushManifestWithBlobs, sha256 } from "./images.ts";
import { forward } from "./proxy.ts";
import type { TestRegistry } from "./registry.ts";

/** The bundle media type cosign v3 writes. */
export const BUNDLE_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json";
const SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1";
const INDEX = "application/vnd.oci.image.index.v1+json";
const MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const EMPTY = new TextEncoder().encode("{}");
const EMPTY_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

/** A descriptor of the signed image (the referrer's `subject`). */
export interface Subject {
  mediaType: string;
  digest: string;
  size: number;
}

/** The statement `cosign sign` (v3) signs: subject = `digest`, predicate sign/v1. */
export function cosignSignStatement(
  name: string,
  digest: string,
  predicateType = SIGN_PREDICATE,
): Uint8Array {
  const [algorithm, hex] = digest.split(":");
  return new TextEncoder().encode(JSON.stringify({
    _type: "https://in-toto.io/Statement/v1",
    subject: [{ name, digest: { [algorithm]: hex } }],
    predicateType,
    predicate: {},
  }));
}

/** Options for {@link buildBundle}. */
export interface BuildBundleOptions {
  /** The key that signs the PAE. */
  key: TestKey;
  /** The statement signed. */
  statement: Uint8Array;
  /** `publicKey` (cosign --key) or `certificate` (keyless; the certificate is a stand-in). */
  material?: "publicKey" | "certificate";
  /** Replace the payload after signing (a tampered statement). */
  tamperedStatement?: Uint8Array;
}

/**
 * A sigstore bundle v0.3 in protobuf JSON: verificationMaterial (publicKey hint = base64 sha256 of
 * the key's SPKI DER, or a certificate), a Rekor entry stub (not read by bananna-bot), the DSSE
 * envelope over `statement` signed over the PAE.
 */
export async function buildBundle(options: BuildBundleOptions): Promise<Uint8Array> {
  const payloadType = "application/vnd.in-toto+json";
  const sig = await opensslSign(
    options.key.privateKeyFile,
    fixturePae(payloadType, options.statement),
  );
  const der = spkiDer(options.key.publicPem);
  const hint = encodeBase64(
    new Uint8Array(await crypto.subtle.digest("SHA-256", der as Uint8Array<ArrayBuffer>)),
  );
  const material = options.material === "certificate"
    ? { certificate: { rawBytes: encodeBase64(der) } }
    : { publicKey: { hint } };
  return new TextEncoder().encode(JSON.stringify({
    mediaType: BUNDLE_TYPE,
    verificationMaterial: {
      ...material,
      tlogEntries: [{
        logIndex: "1234",
        logId: { keyId: "wNI9atQGlz+VWfO6LRygH4QUfY/8W4RFwiT5i5WRgB0=" },
        kindVersion: { kind: "dsse", version: "0.0.1" },
        integratedTime: "1764460800",
      }],
    },
    dsseEnvelope: {
      payload: encodeBase64(options.tamperedStatement ?? options.statement),
      payloadType,
      signatures: [{ sig: encodeBase64(sig) }],
    },
  }));
}

/** The referrer manifest cosign v3 pushes for a bundle: empty config, one bundle layer, subject. */
export function buildBundleReferrer(bundle: Uint8Array, subject: Subject): BuiltManifest {
  const manifest = new TextEncoder().encode(JSON.stringify({
    schemaVersion: 2,
    mediaType: MANIFEST,
    artifactType: BUNDLE_TYPE,
    config: {
      mediaType: "application/vnd.oci.empty.v1+json",
      artifactType: BUNDLE_TYPE,
      digest: EMPTY_DIGEST,
      size: 2,
    },
    layers: [{ mediaType: BUNDLE_TYPE, digest: sha256(bundle), size: bundle.length }],
    subject,
    annotations: {
      "org.opencontainers.image.created": "2026-11-30T05:00:00Z",
      "dev.sigstore.bundle.content": "dsse-envelope",
      "dev.sigstore.bundle.predicateType": SIGN_PREDICATE,
    },
  }));
  return { mediaType: MANIFEST, manifest, blobs: [EMPTY, bundle] };
}

/** The descriptor of `repo@digest` as the registry serves it (for a referrer's `subject`). */
export async function subjectOf(reg: TestRegistry, repo: string, digest: string): Promise<Subject> {
  const res = await fetch(`${reg.url}/v2/${repo}/manifests/${digest}`, {
    headers: { accept: `${INDEX}, ${MANIFEST}` },
  });
  const bytes = new Uint8Array(await res.arrayBuffer());
  if (!res.ok) throw new Error(`GET ${repo}@${digest}: ${res.status}`);
  return {
    mediaType: JSON.parse(new TextDecoder().decode(bytes)).mediaType,
    digest,
    size: bytes.length,
  };
}

/** The descriptor a referrers list holds for `built` (artifactType and annotations). */
export function referrerEntry(built: BuiltManifest): Record<string, unknown> {
  const body = JSON.parse(new TextDecoder().decode(built.manifest));
  return {
    mediaType: built.mediaType,
    digest: sha256(built.manifest),
    size: built.manifest.length,
    artifactType: body.artifactType,
    annotations: body.annotations,
  };
}

/**
 * Push a referrer by digest; with `fallbackTag` (the default) also add it to the subject's
 * fallback index `sha256-<hex>` (GET it, append, PUT), as a client does at a registry without the
 * referrers API. Returns the referrer's digest.
 */
export async function pushBundleReferrer(
  reg: TestRegistry,
  repo: string,
  built: BuiltManifest,
  options: { fallbackTag?: boolean } = {},
): Promise<string> {
  const digest = sha256(built.manifest);
  await pushManifestWithBlobs(reg, `${repo}:${digest}`, built);
  if (options.fallbackTag === false) return digest;
  const subject = JSON.parse(new TextDecoder().decode(built.manifest)).subject.digest as string;
  const tag = subject.replace(":", "-");
  const res = await fetch(`${reg.url}/v2/${repo}/manifests/${tag}`, { headers: { accept: INDEX } });
  const existing = res.ok ? await res.json() : (await res.body?.cancel(), { manifests: [] });
  const index = new TextEncoder().encode(JSON.stringify({
    schemaVersion: 2,
    mediaType: INDEX,
    manifests: [...existing.manifests, referrerEntry(built)],
  }));
  await pushManifestWithBlobs(reg, `${repo}:${tag}`, {
    mediaType: INDEX,
    manifest: index,
    blobs: [],
  });
  return digest;
}

/** A referrers-API double in front of a real registry. */
export interface ReferrersApiDouble extends AsyncDisposable {
  host: string;
  /** Every request, `METHOD /path?query`, in arrival order. */
  requests: string[];
  /** List `built` (already pushed by digest) among the referrers of its subject in `repo`. */
  add(repo: string, built: BuiltManifest): void;
}

/**
 * Serve `GET /v2/<name>/referrers/<digest>` (an OCI index of what was `add`ed, empty otherwise)
 * like a registry with the referrers API; forward everything else to `upstream`.
 */
export function startReferrersApiDouble(upstream: TestRegistry): ReferrersApiDouble {
  const lists = new Map<string, Record<string, unknown>[]>();
  const requests: string[] = [];
  let host = "";
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const url = new URL(req.url);
    requests.push(`${req.method} ${url.pathname}${url.search}`);
    const match = /^\/v2\/(.+)\/referrers\/([^/]+)$/.exec(url.pathname);
    if (req.method === "GET" && match) {
      const body = JSON.stringify({
        schemaVersion: 2,
        mediaType: INDEX,
        manifests: lists.get(`${match[1]}@${match[2]}`) ?? [],
      });
      return new Response(body, { headers: { "content-type": INDEX } });
    }
    return forward(req, upstream.url, host);
  });
  host = `127.0.0.1:${(server.addr as Deno.NetAddr).port}`;
  return {
    host,
    requests,
    add(repo, built) {
      const subject = JSON.parse(new TextDecoder().decode(built.manifest)).subject.digest;
      const key = `${repo}@${subject}`;
      lists.set(key, [...lists.get(key) ?? [], referrerEntry(built)]);
    },
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

/** The DER SubjectPublicKeyInfo of a PEM public key. */
function spkiDer(pem: string): Uint8Array {
  const body = pem.replace(/-----[A-Z ]+-----/g, "").replace(/\s+/g, "");
  return Uint8Array.from(atob(body), (c) => c.charCodeAt(0));
}
