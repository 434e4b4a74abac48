/**
 * Manifest media types, the Accept list, and parsing an index vs an image manifest from the exact
 * bytes (never re-serialised: the digest is over the bytes).
 *
 * @module
 */
import { createHash } from "node:crypto";
import { MirrorError } from "../errors.ts";

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

/** `sha256:<hex>` of bytes. */
export function sha256Digest(bytes: Uint8Array): string {
  return "sha256:" + createHash("sha256").update(bytes).digest("hex");
}

/** Parse manifest bytes. `contentType` is the response's Content-Type (parameters ignored). */
export function parseManifest(
  bytes: Uint8Array,
  contentType: string,
  where: string,
): ParsedManifest {
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(new TextDecoder().decode(bytes));
  } catch (cause) {
    throw new MirrorError("IMAGE_PULL_FAILED", `${where}: the manifest is not JSON`, { cause });
  }
  const header = contentType.split(";")[0].trim();
  const declared = typeof body.mediaType === "string" ? body.mediaType : undefined;
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
  if (Array.isArray(body.manifests)) {
    return {
      kind: "index",
      mediaType: mediaType || MEDIA_TYPES.ociIndex,
      manifests: body.manifests as Descriptor[],
    };
  }
  if (body.config && Array.isArray(body.layers)) {
    return {
      kind: "image",
      mediaType: mediaType || MEDIA_TYPES.ociManifest,
      config: body.config as Descriptor,
      layers: body.layers as Descriptor[],
    };
  }
  throw new MirrorError("IMAGE_UNSUPPORTED", `${where}: unknown manifest type "${mediaType}"`);
}

/** Pick the child of an index for `platform` (`os/arch[/variant]`). */
export function selectPlatform(manifests: Descriptor[], platform: string): Descriptor | undefined {
  const [os, architecture, variant] = platform.split("/");
  return manifests.find((m) =>
    m.platform?.os === os && m.platform?.architecture === architecture &&
    (variant === undefined || m.platform?.variant === variant)
  );
}
