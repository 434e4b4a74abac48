/**
 * cosign fixtures made the way cosign makes them, with no help from lib/signatures: keys and
 * signatures come from openssl (`openssl dgst -sha256 -sign` writes ASN.1 DER exactly like cosign's
 * ECDSA signer), payloads and `.sig` manifests are written out here in cosign's byte format
 * (shared/registry-protocols.md §8.2-8.5), and the DSSE PAE is built here by hand.
 *
 * ```ts ignore
 * const key = await makeKey(dir, "p256");
 * const payload = simpleSigningPayload("127.0.0.1:5000/app", image.digest);
 * const sig = await opensslSign(key.privateKeyFile, payload);
 * await pushSignatureManifest(reg, "app", image.digest, buildSignatureManifest([{ payload, signature: sig }]));
 * ```
 *
 * @module
 */
import { pushManifestWithBlobs, sha256 } from "./images.ts";
import type { TestRegistry } from "./registry.ts";

/** A key pair on disk, made by openssl. */
export interface TestKey {
  privateKeyFile: string;
  publicKeyFile: string;
  /** The public key PEM (`-----BEGIN PUBLIC KEY-----`). */
  publicPem: string;
}

async function openssl(args: string[], stdin?: Uint8Array): Promise<Uint8Array> {
  const child = new Deno.Command("openssl", {
    args,
    stdin: stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin) {
    const writer = child.stdin.getWriter();
    await writer.write(stdin);
    await writer.close();
  }
  const out = await child.output();
  if (!out.success) {
    throw new Error(`openssl ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return out.stdout;
}

/** Make a key pair in `dir` with openssl: ECDSA P-256 (cosign's default), P-384, or RSA 2048. */
export async function makeKey(dir: string, kind: "p256" | "p384" | "rsa"): Promise<TestKey> {
  const privateKeyFile = `${dir}/${kind}-${crypto.randomUUID()}.key`;
  const publicKeyFile = privateKeyFile.replace(/\.key$/, ".pub");
  if (kind === "rsa") {
    await openssl(["genrsa", "-out", privateKeyFile, "2048"]);
    await openssl(["rsa", "-in", privateKeyFile, "-pubout", "-out", publicKeyFile]);
  } else {
    const curve = kind === "p256" ? "prime256v1" : "secp384r1";
    await openssl(["ecparam", "-genkey", "-name", curve, "-noout", "-out", privateKeyFile]);
    await openssl(["ec", "-in", privateKeyFile, "-pubout", "-out", publicKeyFile]);
  }
  return { privateKeyFile, publicKeyFile, publicPem: await Deno.readTextFile(publicKeyFile) };
}

/** `openssl dgst -sha256 -sign key`: an ECDSA signature over `bytes`, ASN.1 DER (like cosign). */
export async function opensslSign(privateKeyFile: string, bytes: Uint8Array): Promise<Uint8Array> {
  return await openssl(["dgst", "-sha256", "-sign", privateKeyFile], bytes);
}

/** The key's fingerprint as openssl sees it: sha256 hex of the DER SubjectPublicKeyInfo. */
export async function opensslFingerprint(publicKeyFile: string): Promise<string> {
  const der = await openssl(["pkey", "-pubin", "-in", publicKeyFile, "-outform", "DER"]);
  const line = new TextDecoder().decode(await openssl(["dgst", "-sha256", "-r"], der));
  return line.split(" ")[0];
}

/** The simple-signing payload cosign writes (Go json.Marshal: this field order, no spaces). */
export function simpleSigningPayload(dockerReference: string, digest: string): Uint8Array {
  return new TextEncoder().encode(
    `{"critical":{"identity":{"docker-reference":"${dockerReference}"},"image":{"docker-manifest-digest":"${digest}"},"type":"cosign container image signature"},"optional":null}`,
  );
}

/** One signature for {@link buildSignatureManifest}. */
export interface FixtureSignature {
  payload: Uint8Array;
  /** DER signature (base64-encoded into the annotation) ... */
  signature?: Uint8Array;
  /** ... or the annotation value verbatim (garbage tests). */
  signatureAnnotation?: string;
  /** Extra layer annotations, or `annotations: null` to write a non-object. */
  annotations?: Record<string, unknown> | null;
}

/** A manifest with its blobs, ready to push. */
export interface BuiltManifest {
  mediaType: string;
  manifest: Uint8Array;
  blobs: Uint8Array[];
}

/**
 * A `.sig` manifest in cosign's format: an OCI image manifest, a go-containerregistry-style config
 * whose diff_ids are the payload digests, one `application/vnd.dev.cosign.simplesigning.v1+json`
 * layer per signature carrying `dev.cosignproject.cosign/signature`.
 */
export function buildSignatureManifest(signatures: FixtureSignature[]): BuiltManifest {
  const layers = signatures.map((s) => {
    const value = s.signatureAnnotation ?? encodeBase64(s.signature ?? new Uint8Array());
    const annotations = s.annotations === null
      ? "not an object"
      : { "dev.cosignproject.cosign/signature": value, ...s.annotations };
    return {
      mediaType: "application/vnd.dev.cosign.simplesigning.v1+json",
      size: s.payload.length,
      digest: sha256(s.payload),
      annotations,
    };
  });
  const config = new TextEncoder().encode(JSON.stringify({
    architecture: "",
    created: "0001-01-01T00:00:00Z",
    history: layers.map(() => ({ created: "0001-01-01T00:00:00Z" })),
    os: "",
    rootfs: { type: "layers", diff_ids: layers.map((l) => l.digest) },
    config: {},
  }));
  const mediaType = "application/vnd.oci.image.manifest.v1+json";
  const manifest = new TextEncoder().encode(JSON.stringify({
    schemaVersion: 2,
    mediaType,
    config: {
      mediaType: "application/vnd.oci.image.config.v1+json",
      size: config.length,
      digest: sha256(config),
    },
    layers,
  }));
  return { mediaType, manifest, blobs: [config, ...signatures.map((s) => s.payload)] };
}

/** Push a `.sig` manifest under `sha256-<hex>.sig` next to the image `digest` in `repo`. */
export async function pushSignatureManifest(
  reg: TestRegistry,
  repo: string,
  digest: string,
  built: BuiltManifest,
): Promise<{ tag: string; digest: string }> {
  const tag = `${digest.replace(":", "-")}.sig`;
  return { tag, digest: await pushManifestWithBlobs(reg, `${repo}:${tag}`, built) };
}

/** An in-toto v1 statement whose one subject is `digest`. */
export function inTotoStatement(name: string, digest: string): Uint8Array {
  const [algorithm, hex] = digest.split(":");
  return new TextEncoder().encode(JSON.stringify({
    _type: "https://in-toto.io/Statement/v1",
    subject: [{ name, digest: { [algorithm]: hex } }],
    predicateType: "https://slsa.dev/provenance/v1",
    predicate: { buildDefinition: { buildType: "https://example.com/test" } },
  }));
}

/** DSSE's PAE, built here independently: `DSSEv1 <len> <type> <len> <body>`. */
export function fixturePae(payloadType: string, body: Uint8Array): Uint8Array {
  const head = `DSSEv1 ${
    new TextEncoder().encode(payloadType).length
  } ${payloadType} ${body.length} `;
  return new Uint8Array([...new TextEncoder().encode(head), ...body]);
}

/** A DSSE envelope (JSON bytes) over `statement`, signed over the PAE with `privateKeyFile`. */
export async function signedEnvelope(
  privateKeyFile: string,
  statement: Uint8Array,
  options: { payloadType?: string; signOver?: "pae" | "payload" } = {},
): Promise<Uint8Array> {
  const payloadType = options.payloadType ?? "application/vnd.in-toto+json";
  const signed = options.signOver === "payload" ? statement : fixturePae(payloadType, statement);
  const sig = await opensslSign(privateKeyFile, signed);
  return new TextEncoder().encode(JSON.stringify({
    payloadType,
    payload: encodeBase64(statement),
    signatures: [{ keyid: "", sig: encodeBase64(sig) }],
  }));
}

/** Standard base64 with padding (written here, independent of lib/). */
export function encodeBase64(bytes: Uint8Array): string {
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}

/**
 * A `.att` manifest in cosign's format: one `application/vnd.dsse.envelope.v1+json` layer per
 * envelope, annotations `dev.cosignproject.cosign/signature: ""` and `predicateType`.
 */
export function buildAttestationManifest(
  envelopes: { envelope: Uint8Array; predicateType: string }[],
): BuiltManifest {
  const layers = envelopes.map((e) => ({
    mediaType: "application/vnd.dsse.envelope.v1+json",
    size: e.envelope.length,
    digest: sha256(e.envelope),
    annotations: { "dev.cosignproject.cosign/signature": "", predicateType: e.predicateType },
  }));
  const config = new TextEncoder().encode(JSON.stringify({
    architecture: "",
    created: "0001-01-01T00:00:00Z",
    history: layers.map(() => ({ created: "0001-01-01T00:00:00Z" })),
    os: "",
    rootfs: { type: "layers", diff_ids: layers.map((l) => l.digest) },
    config: {},
  }));
  const mediaType = "application/vnd.oci.image.manifest.v1+json";
  const manifest = new TextEncoder().encode(JSON.stringify({
    schemaVersion: 2,
    mediaType,
    config: {
      mediaType: "application/vnd.oci.image.config.v1+json",
      size: config.length,
      digest: sha256(config),
    },
    layers,
  }));
  return { mediaType, manifest, blobs: [config, ...envelopes.map((e) => e.envelope)] };
}

/** Push a `.att` manifest under `sha256-<hex>.att` next to the image `digest` in `repo`. */
export async function pushAttestationManifest(
  reg: TestRegistry,
  repo: string,
  digest: string,
  built: BuiltManifest,
): Promise<{ tag: string; digest: string }> {
  const tag = `${digest.replace(":", "-")}.att`;
  return { tag, digest: await pushManifestWithBlobs(reg, `${repo}:${tag}`, built) };
}
