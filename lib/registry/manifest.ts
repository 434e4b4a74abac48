/**
 * Manifest media types, the Accept list, and parsing an index vs an image manifest from the exact
 * bytes (never re-serialised: the digest is over the bytes).
 *
 * @module
 */
import { MirrorError } from "../errors.ts";
import { validDigest } from "./reference.ts";

/** Media types. */
export const MEDIA_TYPES = {
  ociIndex: "application/vnd.oci.image.index.v1+json",
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  dockerList: "application/vnd.docker.distribution.manifest.list.v2+json",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
} as const;

/** Sent on every manifest GET and HEAD (shared/registry-protocols.md §2.3, gotcha 4). */
export const MANIFEST_ACCEPT = [
  MEDIA_TYPES.ociIndex,
  MEDIA_TYPES.ociManifest,
  MEDIA_TYPES.dockerList,
  MEDIA_TYPES.dockerManifest,
].join(", ");

/** A content descriptor. */
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { os?: string; architecture?: string; variant?: string };
}

/** A parsed manifest: an index (children) or an image (config + layers). */
export type ParsedManifest =
  | { kind: "index"; mediaType: string; manifests: Descriptor[] }
  | { kind: "image"; mediaType: string; config: Descriptor; layers: Descriptor[] };

/**
 * `<algorithm>:<hex>` of bytes, by WebCrypto: node:crypto (and the part of Deno's Node layer it
 * brings, about 16 ms to load) is needed only by a run that streams blobs.
 */
async function hexDigest(algorithm: "sha256" | "sha512", bytes: Uint8Array): Promise<string> {
  const name = algorithm === "sha512" ? "SHA-512" : "SHA-256";
  const hash = new Uint8Array(await crypto.subtle.digest(name, bytes as Uint8Array<ArrayBuffer>));
  return `${algorithm}:${Array.from(hash, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/** `sha256:<hex>` of bytes. */
export async function sha256Digest(bytes: Uint8Array): Promise<string> {
  return await hexDigest("sha256", bytes);
}

/** The digest of `bytes` with the algorithm of `like` (`sha256` or `sha512`; default sha256). */
export async function digestLike(
  like: string | null | undefined,
  bytes: Uint8Array,
): Promise<string> {
  return await hexDigest(like?.startsWith("sha512:") ? "sha512" : "sha256", bytes);
}

/**
 * Parse manifest bytes into checked data. `contentType` is the response's Content-Type
 * (parameters ignored). Nothing from the bytes is trusted: the body must be a JSON object, and
 * every descriptor (`manifests[i]`, `config`, `layers[i]`) an object with a string `mediaType`, a
 * digest of the OCI grammar ({@link validDigest}) and a `size` that is a non-negative safe integer,
 * before any of it is used.
 *
 * @throws {MirrorError} IMAGE_MANIFEST_INVALID naming the field (e.g. `manifests[1].digest`) for
 *   malformed JSON or descriptors; IMAGE_UNSUPPORTED for schema1 and unknown manifest types.
 */
export function parseManifest(
  bytes: Uint8Array,
  contentType: string,
  where: string,
): ParsedManifest {
  let body: unknown;
  try {
    body = JSON.parse(new TextDecoder().decode(bytes));
  } catch (cause) {
    throw new MirrorError("IMAGE_MANIFEST_INVALID", `${where}: the manifest is not JSON`, {
      cause,
    });
  }
  if (!isObject(body)) {
    throw invalid({ where, field: "the manifest" }, `a JSON object, not ${describe(body)}`);
  }
  const header = contentType.split(";")[0].trim();
  if (body.mediaType !== undefined && typeof body.mediaType !== "string") {
    throw invalid({ where, field: "mediaType" }, `a string, not ${describe(body.mediaType)}`);
  }
  const declared = body.mediaType as string | undefined;
  if (declared && header && header !== declared && header !== "application/json") {
    throw new MirrorError(
      "IMAGE_PULL_FAILED",
      `${where}: Content-Type ${header} does not match the manifest's mediaType ${declared}`,
    );
  }
  const mediaType = declared ?? header;
  if (
    mediaType.startsWith("application/vnd.docker.distribution.manifest.v1") ||
    body.schemaVersion === 1
  ) {
    throw new MirrorError(
      "IMAGE_UNSUPPORTED",
      `${where}: Docker schema1 manifests cannot be copied with their digest; re-push the image with a current docker`,
    );
  }
  const isIndexType = mediaType === MEDIA_TYPES.ociIndex || mediaType === MEDIA_TYPES.dockerList;
  const isImageType = mediaType === MEDIA_TYPES.ociManifest ||
    mediaType === MEDIA_TYPES.dockerManifest;
  if (body.manifests !== undefined || (isIndexType && body.config === undefined)) {
    return {
      kind: "index",
      mediaType: mediaType || MEDIA_TYPES.ociIndex,
      manifests: descriptors(body.manifests, { where, field: "manifests" }),
    };
  }
  if (body.config !== undefined || body.layers !== undefined || isImageType) {
    return {
      kind: "image",
      mediaType: mediaType || MEDIA_TYPES.ociManifest,
      config: descriptor(body.config, { where, field: "config" }),
      layers: descriptors(body.layers, { where, field: "layers" }),
    };
  }
  throw new MirrorError("IMAGE_UNSUPPORTED", `${where}: unknown manifest type "${mediaType}"`);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A short, safe description of a JSON value for messages (never the value itself if long). */
function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "string") {
    return value.length <= 80 ? JSON.stringify(value) : `a ${value.length}-character string`;
  }
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return typeof value === "object" ? "an object" : "nothing";
}

/** Where a value sits: the manifest (`where`) and the field path in it. */
interface At {
  where: string;
  field: string;
}

function invalid(at: At, wanted: string): MirrorError {
  return new MirrorError("IMAGE_MANIFEST_INVALID", `${at.where}: ${at.field} must be ${wanted}`);
}

function descriptors(value: unknown, at: At): Descriptor[] {
  if (!Array.isArray(value)) throw invalid(at, `an array, not ${describe(value)}`);
  return value.map((item, i) => descriptor(item, { ...at, field: `${at.field}[${i}]` }));
}

/** One descriptor, checked field by field; unknown fields are kept. */
function descriptor(value: unknown, { where, field }: At): Descriptor {
  if (!isObject(value)) throw invalid({ where, field }, `an object, not ${describe(value)}`);
  if (typeof value.mediaType !== "string") {
    throw invalid(
      { where, field: `${field}.mediaType` },
      `a string, not ${describe(value.mediaType)}`,
    );
  }
  if (!validDigest(value.digest)) {
    throw invalid(
      { where, field: `${field}.digest` },
      `sha256:<64 lowercase hex> or sha512:<128 lowercase hex>, not ${describe(value.digest)}`,
    );
  }
  const size = value.size;
  if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0) {
    throw invalid(
      { where, field: `${field}.size` },
      `a non-negative integer, not ${describe(size)}`,
    );
  }
  if (value.platform !== undefined && !isObject(value.platform)) {
    throw invalid(
      { where, field: `${field}.platform` },
      `an object, not ${describe(value.platform)}`,
    );
  }
  return value as unknown as Descriptor;
}

/**
 * The parts of an image config this tool reads (`rootfs.diff_ids`), checked: the body must be a
 * JSON object, `rootfs.diff_ids` (when present) an array of digests.
 *
 * @throws {MirrorError} IMAGE_MANIFEST_INVALID naming the field.
 */
export function parseImageConfig(bytes: Uint8Array, where: string): { diffIds: string[] } {
  let body: unknown;
  try {
    body = JSON.parse(new TextDecoder().decode(bytes));
  } catch (cause) {
    throw new MirrorError("IMAGE_MANIFEST_INVALID", `${where}: the image config is not JSON`, {
      cause,
    });
  }
  if (!isObject(body)) {
    throw invalid({ where, field: "the image config" }, `an object, not ${describe(body)}`);
  }
  if (body.rootfs === undefined) return { diffIds: [] };
  if (!isObject(body.rootfs)) {
    throw invalid({ where, field: "rootfs" }, `an object, not ${describe(body.rootfs)}`);
  }
  const ids = body.rootfs.diff_ids;
  if (ids === undefined) return { diffIds: [] };
  if (!Array.isArray(ids)) {
    throw invalid({ where, field: "rootfs.diff_ids" }, `an array, not ${describe(ids)}`);
  }
  ids.forEach((id, i) => {
    if (!validDigest(id)) {
      throw invalid({ where, field: `rootfs.diff_ids[${i}]` }, `a digest, not ${describe(id)}`);
    }
  });
  return { diffIds: ids as string[] };
}

/** Pick the child of an index for `platform` (`os/arch[/variant]`). */
export function selectPlatform(manifests: Descriptor[], platform: string): Descriptor | undefined {
  const [os, architecture, variant] = platform.split("/");
  return manifests.find((m) =>
    m.platform?.os === os && m.platform?.architecture === architecture &&
    (variant === undefined || m.platform?.variant === variant)
  );
}
