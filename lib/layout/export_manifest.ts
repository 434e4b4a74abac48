/**
 * `bananna-export.json`: what an export holds, written last (after index.json), so its presence
 * says the export is complete. It lists the images (full source reference, digest, media type,
 * size, the config's targets and description, the supply-chain counts), the cosign and referrers
 * fallback tags (`artifacts`), every blob file with its size, the sha256 of the
 * layout's own files (and of every part when the layout is split into tar parts), the tool version
 * and the `since` chain of an incremental export: the earlier exports (id and sha256 of their
 * bananna-export.json) it builds on, and which of their blobs it relies on without carrying them.
 *
 * Import reads it with {@link readExportManifest}: a missing or malformed file is a UsageError
 * naming the path (exit 2), never a stack.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { z } from "../zod.ts";
import { UsageError } from "../errors.ts";
import { FileInputError, readFileCapped, writeFileAtomic } from "../safe_file.ts";
import { MAX_LAYOUT_FILE_BYTES } from "./oci_layout.ts";

/** The file name inside an export directory. */
export const EXPORT_MANIFEST = "bananna-export.json";

/**
 * Bytes `bananna-export.json` may have: about 20,000 blobs and 2,000 images; a hostile file at
 * the cap is parsed and refused under 120 MB peak RSS.
 */
const MAX_EXPORT_MANIFEST_BYTES = 4 * 1024 * 1024;

/** The format tag of this version. */
export const EXPORT_FORMAT = "bananna-export/1";

const digest = z.string().check(z.regex(/^sha(256:[0-9a-f]{64}|512:[0-9a-f]{128})$/));
const size = z.number().check(z.int(), z.nonnegative());
const nonEmpty = z.string().check(z.minLength(1));

const exportedImage = z.object({
  /** The full source reference, as in index.json's ref.name. */
  ref: nonEmpty,
  /** The image key (or `repositories` key) in the config. */
  key: z.string(),
  digest,
  mediaType: z.string(),
  size,
  /** The target registries' names in the exporting config. */
  targets: z.array(z.string()),
  description: z.optional(z.string()),
  /**
   * `platforms` of the entry: the platforms wanted, how, and what the layout holds of the index
   * (`kept`; null: a single image). Import mirrors the same platforms unless its config says.
   */
  platforms: z.optional(z.object({
    wanted: z.array(z.string().check(z.regex(/^[a-z0-9_]+\/[a-z0-9_]+(\/[a-z0-9_.]+)?$/))).check(
      z.minLength(1),
    ),
    mode: z.enum(["sparse", "rewrite"]),
    kept: z.nullable(z.array(z.string())),
    skipped: z.array(z.string()),
  })),
  /** What the export carried of its supply chain (`signatures: copy|require`). */
  supplyChain: z.optional(z.object({
    signatures: size,
    attestations: size,
    sboms: size,
    referrers: size,
  })),
});

/** A managed tag (`sha256-<hex>.sig`/`.att`/`.sbom`, fallback `sha256-<hex>`) in index.json. */
const exportedArtifact = z.object({ ref: nonEmpty, digest, mediaType: z.string(), size });

/**
 * The layout files an export checksums: only these names, so a crafted manifest cannot point the
 * import's checksum read outside the layout (`../../dev/zero` would never end).
 */
const fileSumSchema = z.object({
  path: z.enum(["oci-layout", "index.json"]),
  sha256: digest,
  size,
});

const manifestSchema = z.object({
  format: z.literal(EXPORT_FORMAT),
  id: nonEmpty,
  tool: z.object({ name: z.string(), version: z.string() }),
  created: z.string(),
  images: z.array(exportedImage),
  /**
   * The cosign and referrers fallback tags in index.json (not images: import carries them with
   * the image they sign, by the supply-chain rules). Absent in exports made before they travelled.
   */
  artifacts: z.optional(z.array(exportedArtifact)),
  /** Every blob file this export holds, with the source repositories whose images use it. */
  blobs: z.array(z.object({ digest, size, repositories: z.optional(z.array(z.string())) })),
  /** Blobs earlier exports carried (not in this one), with their export and repositories. */
  inherited: z.array(
    z.object({ digest, size, from: z.string(), repositories: z.optional(z.array(z.string())) }),
  ),
  /** The earlier exports this one builds on, oldest first. */
  since: z.array(z.object({ id: z.string(), sha256: digest, created: z.string() })),
  /** `oci-layout` and `index.json`. */
  files: z.array(fileSumSchema),
  /** The tar parts, when the layout was split (null: a plain directory). */
  parts: z.nullable(z.array(
    z.object({
      name: z.string().check(z.regex(/^bananna-export\.tar(\.\d{3,})?$/)),
      size,
      sha256: digest,
    }),
  )),
});

/** The content of `bananna-export.json`. */
export type ExportManifest = z.output<typeof manifestSchema>;

/** One exported image. */
export type ExportedImage = z.output<typeof exportedImage>;

/** One exported cosign or referrers fallback tag. */
export type ExportedArtifact = z.output<typeof exportedArtifact>;

/** An export manifest read from disk, with the sha256 of its bytes (for the `since` chain). */
export interface LoadedExportManifest {
  path: string;
  sha256: string;
  manifest: ExportManifest;
}

/**
 * Read and check `bananna-export.json` at `path`.
 *
 * @throws {UsageError} naming the path when it is missing, not JSON or not this format.
 */
export async function readExportManifest(path: string): Promise<LoadedExportManifest> {
  let bytes: Uint8Array;
  try {
    bytes = await readFileCapped(path, {
      what: `an export's ${EXPORT_MANIFEST}`,
      maxBytes: MAX_EXPORT_MANIFEST_BYTES,
    });
  } catch (error) {
    if (error instanceof FileInputError) throw new UsageError(error.message);
    throw error;
  }
  let data: unknown;
  try {
    data = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw new UsageError(`${path} is not JSON (an export's ${EXPORT_MANIFEST} was expected)`);
  }
  const parsed = manifestSchema.safeParse(data);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new UsageError(
      `${path} is not a ${EXPORT_FORMAT} manifest: ${
        issue.path.join(".") || "the file"
      }: ${issue.message}`,
    );
  }
  return { path, sha256: sha256Hex(bytes), manifest: parsed.data };
}

/** Write the manifest (temp + rename; the last file of an export). */
export async function writeExportManifest(dir: string, manifest: ExportManifest): Promise<void> {
  await writeFileAtomic(`${dir}/${EXPORT_MANIFEST}`, JSON.stringify(manifest, null, 2) + "\n");
}

/**
 * The blobs an export started with `--since PREV` counts as already carried: PREV's own and those
 * PREV inherited, each with the id of the export that holds it.
 */
export function carriedBefore(
  prev: LoadedExportManifest,
): Map<string, { size: number; from: string; repositories?: string[] }> {
  const known = new Map<string, { size: number; from: string; repositories?: string[] }>();
  for (const blob of prev.manifest.inherited) known.set(blob.digest, blob);
  for (const blob of prev.manifest.blobs) {
    known.set(blob.digest, { ...blob, from: prev.manifest.id });
  }
  return known;
}

/** The `since` chain of an export built on `prev`. */
export function sinceChain(prev: LoadedExportManifest): ExportManifest["since"] {
  return [
    ...prev.manifest.since,
    { id: prev.manifest.id, sha256: prev.sha256, created: prev.manifest.created },
  ];
}

/**
 * sha256 and size of a layout file, read as a file from outside (a regular file under its cap:
 * a link to /dev/zero is refused, never hashed forever).
 *
 * @throws {FileInputError} naming the file
 */
export async function fileSum(
  dir: string,
  path: "oci-layout" | "index.json",
): Promise<z.output<typeof fileSumSchema>> {
  const bytes = await readFileCapped(`${dir}/${path}`, {
    what: `the layout's ${path}`,
    maxBytes: MAX_LAYOUT_FILE_BYTES[path],
  });
  return { path, sha256: sha256Hex(bytes), size: bytes.length };
}

function sha256Hex(bytes: Uint8Array): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}
