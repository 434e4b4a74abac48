/**
 * Where `import --from` reads: an export directory as it is, or an export written as tar parts
 * (`export --part-size`), extracted into a staging directory by tar_parts_read.ts first.
 *
 * `--from` may name the directory (a layout, or one holding `bananna-export.tar.000` /
 * `bananna-export.tar` beside `bananna-export.json`) or the first part itself. The parts are
 * checked against the sizes and sha256 that bananna-export.json lists: a missing part (or one of
 * another size) is a UsageError naming it before anything is extracted or written (exit 2). A
 * corrupt part does not stop the import: the blobs whose bytes lie in it are not extracted, and
 * the images that need one of them fail IMAGE_DIGEST_MISMATCH naming the part (the layout store
 * reports it, oci_layout.ts `lost`); the others land. The staging directory lives in the log dir
 * and is removed after the run.
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import { EXPORT_MANIFEST, readExportManifest } from "./export_manifest.ts";
import { readParts } from "./tar_parts_read.ts";
import { TAR_NAME, TarPartsError } from "./tar_parts.ts";

/** What an import reads. */
export interface ImportLocation {
  /** The layout directory (the export itself, or the staging dir the parts were extracted to). */
  dir: string;
  /** The export's bananna-export.json. */
  manifestPath: string;
  /** Blobs lost to corrupt parts: digest -> why (names the part). */
  lost: Map<string, string>;
  /** The parts read, when the export was split (for the log). */
  parts?: { names: string[]; corrupt: string[] };
  /** Remove the staging dir (nothing for a plain directory). */
  cleanup(): Promise<void>;
}

/**
 * Find the export `from` names and, when it is tar parts, extract them into a fresh staging
 * directory under `options.stagingParent`.
 *
 * @throws {UsageError} a missing `from`, a split export without a usable bananna-export.json, a
 *   missing or resized part, a tar that cannot be read, or a corrupt part holding the layout's
 *   own index.json or oci-layout.
 */
export async function locateImport(
  from: string,
  options: { stagingParent: string; signal?: AbortSignal },
): Promise<ImportLocation> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(from);
  } catch {
    throw new UsageError(
      `${from} does not exist (--from names an export directory or its first part)`,
    );
  }
  let first: string | null = null;
  if (info.isFile) first = from;
  else if (!(await isFile(`${from}/oci-layout`))) {
    for (const name of [`${TAR_NAME}.000`, TAR_NAME]) {
      if (await isFile(`${from}/${name}`)) first = `${from}/${name}`;
    }
  }
  if (first === null) {
    return {
      dir: from,
      manifestPath: `${from}/${EXPORT_MANIFEST}`,
      lost: new Map(),
      cleanup: () => Promise.resolve(),
    };
  }
  const partsDir = first.slice(0, first.lastIndexOf("/")) || "/";
  const manifestPath = `${partsDir}/${EXPORT_MANIFEST}`;
  const { manifest } = await readExportManifest(manifestPath);
  const parts = manifest.parts;
  if (!parts?.length) {
    throw new UsageError(`${manifestPath} lists no tar parts, but ${first} is one`);
  }
  if (first.slice(first.lastIndexOf("/") + 1) !== parts[0].name) {
    throw new UsageError(
      `${first} is not the first part; ${manifestPath} starts with ${parts[0].name}`,
    );
  }
  await Deno.mkdir(options.stagingParent, { recursive: true });
  const staging = await Deno.makeTempDir({ dir: options.stagingParent, prefix: "import-staging-" });
  const cleanup = () => Deno.remove(staging, { recursive: true }).catch(() => {});
  try {
    const read = await readParts(first, staging, { parts, signal: options.signal });
    const lost = new Map<string, string>();
    const where = read.corruptParts.join(", ");
    for (const name of read.affected) {
      const blob = /^blobs\/([a-z0-9]+)\/([a-f0-9]+)$/.exec(name);
      if (!blob) {
        throw new UsageError(
          `${partsDir}/${where}: sha256 differs from ${manifestPath}, and it holds the export's ${name}; copy the part again`,
        );
      }
      lost.set(
        `${blob[1]}:${blob[2]}`,
        `${name} lies in ${partsDir}/${where}, whose sha256 differs from ${manifestPath}; nothing of it was used (copy the part again)`,
      );
    }
    return {
      dir: staging,
      manifestPath,
      lost,
      parts: { names: parts.map((p) => p.name), corrupt: read.corruptParts },
      cleanup,
    };
  } catch (error) {
    await cleanup();
    if (error instanceof TarPartsError) throw new UsageError(error.message);
    throw error;
  }
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}
