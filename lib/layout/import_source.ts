/**
 * `import`'s source side: an export directory (OCI layout + bananna-export.json) read and
 * checked, the config's entries matched against what it holds, and the layout offered to the
 * mirror run as the store of every source host it names ({@link HostStores}), so the run's own
 * rules (Quay repositories, never-overwrite and drift, `latest`, report, lock, dry run) apply and
 * the source registries are never contacted.
 *
 * Checks, before anything is written (each a UsageError naming the path or image, exit 2): the
 * directory is a layout, its bananna-export.json is one, `oci-layout` and `index.json` match the
 * sums recorded there, and every target an exported image recorded is a registry of this config.
 * Blobs are verified while they stream (oci_layout.ts).
 *
 * @module
 */
import type { ResolvedConfig, ResolvedImage, ResolvedRepository } from "../config/schema.ts";
import { UsageError } from "../errors.ts";
import { FileInputError } from "../safe_file.ts";
import type { HostStores } from "../mirror/mirror_run.ts";
import { formatReference } from "../registry/reference.ts";
import {
  EXPORT_MANIFEST,
  type ExportManifest,
  fileSum,
  readExportManifest,
} from "./export_manifest.ts";
import { LayoutStore } from "./layout_store.ts";
import { type KnownBlob, OciLayout } from "./oci_layout.ts";

/** An opened export: the layout, its manifest, and the config entries it carries. */
export interface ImportSource {
  layout: OciLayout;
  manifest: ExportManifest;
  images: ResolvedImage[];
  repositories: ResolvedRepository[];
  /** Config entries the export does not carry (skipped, for the log). */
  missing: string[];
  stores: HostStores;
}

/**
 * Open the export at `dir` for the selected config entries.
 *
 * @throws {UsageError} a missing or bad export, a changed file, a recorded target the config
 *   does not have, or an export holding none of the selected entries.
 */
export async function openImportSource(
  dir: string,
  options: {
    config: ResolvedConfig;
    /** The config's entries after `--only`. */
    selected: { images: ResolvedImage[]; repositories: ResolvedRepository[] };
    /** The export's bananna-export.json when not in `dir` (a split export). */
    manifestPath?: string;
    /** Blobs lost to corrupt tar parts (import_parts.ts). */
    lost?: ReadonlyMap<string, string>;
  },
): Promise<ImportSource> {
  const { config, selected } = options;
  const manifestPath = options.manifestPath ?? `${dir}/${EXPORT_MANIFEST}`;
  const loaded = await readExportManifest(manifestPath).catch(async (error) => {
    // Say "not a layout" first when that is the problem.
    await OciLayout.read(dir);
    const missing = await Deno.lstat(manifestPath).then(() => false, () => true);
    if (!missing) throw error;
    throw new UsageError(
      `${dir} has no ${EXPORT_MANIFEST}: the export is not complete (that file is written last); run the export again`,
    );
  });
  const manifest = loaded.manifest;
  for (const recorded of manifest.files) {
    const actual = await fileSum(dir, recorded.path).catch((error) => {
      // Not a regular file, or past its cap: said as such (exit 2), never hashed forever.
      if (error instanceof FileInputError && !error.missing) throw new UsageError(error.message);
      return null;
    });
    if (actual?.sha256 !== recorded.sha256) {
      throw new UsageError(
        `${dir}/${recorded.path} ${
          actual ? `has sha256 ${actual.sha256}` : "is missing"
        }, ${EXPORT_MANIFEST} recorded ${recorded.sha256}: the export is damaged or was changed`,
      );
    }
  }
  const created = new Map(manifest.since.map((s) => [s.id, s.created]));
  const known = new Map<string, KnownBlob>();
  for (const blob of manifest.inherited) {
    known.set(blob.digest, {
      size: blob.size,
      from: { id: blob.from, created: created.get(blob.from) },
      repositories: blob.repositories,
    });
  }
  const layout = await OciLayout.read(dir, {
    known,
    lost: options.lost,
    maxManifestBytes: config.operation.maxManifestBytes,
  });
  for (const image of manifest.images) {
    const unknown = image.targets.filter((t) => !config.registries[t]);
    if (unknown.length) {
      throw new UsageError(
        `${image.ref} in ${dir} was exported for target(s) ${
          unknown.join(", ")
        }, which ${config.file} does not define (registries: ${
          Object.keys(config.registries).join(", ")
        })`,
      );
    }
  }
  const refs = new Set(manifest.images.map((i) => i.ref));
  const repos = new Set(manifest.images.map((i) => i.ref.replace(/[:@][^/]*$/, "")));
  // An export made for some platforms holds only those children: the import mirrors the same
  // platforms unless its own config names them.
  const wanted = new Map<string, string[]>();
  for (const image of manifest.images) {
    if (!image.platforms) continue;
    wanted.set(image.ref, image.platforms.wanted);
    wanted.set(image.ref.replace(/[:@][^/]*$/, ""), image.platforms.wanted);
  }
  const images = selected.images.filter((i) => refs.has(formatReference(i.source))).map((i) => {
    const exported = wanted.get(formatReference(i.source));
    return i.platforms || !exported ? i : { ...i, platforms: exported };
  });
  const repositories = selected.repositories.filter((r) =>
    repos.has(`${r.source.registry}/${r.source.repository}`)
  ).map((r) => {
    const exported = wanted.get(`${r.source.registry}/${r.source.repository}`);
    return r.platforms || !exported ? r : { ...r, platforms: exported };
  });
  const missing = [
    ...selected.images.filter((i) => !refs.has(formatReference(i.source))).map((i) =>
      formatReference(i.source)
    ),
    ...selected.repositories.filter((r) =>
      !repos.has(`${r.source.registry}/${r.source.repository}`)
    ).map((r) => r.key),
  ];
  if (images.length === 0 && repositories.length === 0) {
    throw new UsageError(
      `${dir} holds none of the selected images of ${config.file} (it holds ${
        [...refs].slice(0, 5).join(", ") || "nothing"
      }${refs.size > 5 ? ", ..." : ""})`,
    );
  }
  const hosts = new Set(manifest.images.map((i) => i.ref.split("/")[0]));
  const views = new Map(
    [...hosts].map((
      host,
    ) => [host, new LayoutStore(layout, { host, nameOf: (r) => `${host}/${r}` })]),
  );
  return {
    layout,
    manifest,
    images,
    repositories,
    missing,
    stores: { hosts, storeFor: (host) => views.get(host) ?? null },
  };
}
