/**
 * `export` as a library: the mirror run (lib/mirror/mirror_run.ts) whose one target is an OCI
 * layout, the store of the pseudo-host {@link LAYOUT_HOST} ({@link HostStores}). Every image the
 * config selects (explicit images and the tags `repositories` rules select, `--only` applied) is
 * planned, verified, copied (registry engine; oci_layout.ts writes crash-safely) and reported by
 * the run's own rules (pull budget and 429 gate, retries, signatures); then the export's own
 * after-step writes bananna-export.json (last) and the tar parts. Only the source hosts are logged
 * into; targets are not contacted (they are recorded per image in the `io.bananna-bot.targets`
 * annotation and in bananna-export.json).
 *
 * The layout names an image by its full source reference (`registry/repo:tag`): the plan's
 * destination repository is `export/<registry>/<repo>` on the pseudo-host {@link LAYOUT_HOST},
 * and the layout view strips `export/`.
 *
 * Signatures, attestations, SBOMs and referrers travel too (supply_chain.ts, as `mirror` carries
 * them): cosign tags become index.json entries named like image tags (`registry/repo:sha256-<hex>.sig`),
 * referrers are manifest blobs listed by their fallback tag entry `registry/repo:sha256-<hex>`.
 * bananna-export.json lists those entries as `artifacts` (not images) and each image's counts.
 *
 * `--since PREV`: the config and layer blobs PREV (and the exports PREV built on) carried count
 * as present, so they are neither pulled nor written; the new manifest records the chain and
 * relies on them. Image manifests (and an index's children) are written again for every image the
 * export lists: a new tag of a digest PREV carried (a re-tag upstream, a tag a rule newly selects)
 * is imported from this layout's own manifest. Supply-chain manifests are not: their cosign and
 * fallback tags name the digest, so an earlier import already wrote them to the same repository.
 *
 * @module
 */
import type { ResolvedConfig, ResolvedImage, ResolvedRepository } from "../config/schema.ts";
import { ARTIFACT_TAG } from "../config/tag_rules.ts";
import type { Logger } from "../log/logger.ts";
import type { Secrets } from "../log/redact.ts";
import { createMirrorRun, type HostStores } from "../mirror/mirror_run.ts";
import type { Report } from "../mirror/report.ts";
import type { MirrorEvent, TaskResult } from "../mirror/run_plan.ts";
import { formatReference } from "../registry/reference.ts";
import { VERSION } from "../version.ts";
import {
  carriedBefore,
  EXPORT_FORMAT,
  EXPORT_MANIFEST,
  type ExportedArtifact,
  type ExportedImage,
  type ExportManifest,
  fileSum,
  type LoadedExportManifest,
  readExportManifest,
  sinceChain,
  writeExportManifest,
} from "./export_manifest.ts";
import { removeTarred, verifyParts, writeParts } from "./tar_parts.ts";
import { LayoutStore } from "./layout_store.ts";
import { type KnownBlob, OciLayout, REF_NAME } from "./oci_layout.ts";

/** The pseudo-host of the layout in plans and reports. */
const LAYOUT_HOST = "oci-layout";
/** The annotation with the image's targets (comma-separated names in the exporting config). */
const TARGETS_ANNOTATION = "io.bananna-bot.targets";
/** The annotation with the image's key in the exporting config. */
const KEY_ANNOTATION = "io.bananna-bot.key";

const TARGET = "export";
const NAMESPACE = "export";

/** What an export needs. */
export interface ExportRunOptions {
  config: ResolvedConfig;
  images: ResolvedImage[];
  repositories: ResolvedRepository[];
  /** The layout directory (created when missing). */
  dir: string;
  /** A previous export's bananna-export.json (incremental). */
  since?: string;
  /** Also write the layout as a tar split into parts of this many bytes (tar_parts.ts). */
  partSize?: number;
  dryRun: boolean;
  interactive: boolean;
  env: Record<string, string | undefined>;
  signal: AbortSignal;
  logger: Logger;
  secrets: Secrets;
  say: (text: string) => void;
  onEvent: (event: MirrorEvent) => void;
}

/**
 * Run an export: the mirror run (lib/mirror/mirror_run.ts) with the layout as the store of its one
 * target, then its after-step: bananna-export.json last (and the tar parts), unless interrupted.
 *
 * @returns the report (task failures are in it, not thrown).
 * @throws {UsageError} a bad `--since` file; {MirrorError} what stops the run (login, lock).
 */
export async function runExport(options: ExportRunOptions, startedAt: Date): Promise<Report> {
  const { config, logger, dryRun } = options;
  const prev = options.since ? await readExportManifest(options.since) : null;
  const known = knownBlobs(prev);
  logger.info(
    "MIRROR_START",
    "Export",
    `${dryRun ? "Dry run" : "Export"} to ${options.dir}: ${options.images.length} image(s)${
      options.repositories.length ? `, ${options.repositories.length} repositor(ies) by rules` : ""
    }${prev ? `, since ${prev.manifest.id} (${prev.path})` : ""}`,
  );
  const layout = dryRun
    ? await OciLayout.read(options.dir, { known }).catch(() => null)
    : await OciLayout.create(options.dir, {
      known,
      maxManifestBytes: config.operation.maxManifestBytes,
    });
  try {
    // A manifest names a complete export: gone until this one is complete.
    if (!dryRun) await Deno.remove(`${options.dir}/${EXPORT_MANIFEST}`).catch(() => {});
    const recorded = recordedTargets(options.images, options.repositories);
    const derived = exportConfig(config, options.images, options.repositories);
    await using run = createMirrorRun({
      ...options,
      ...derived,
      stores: layoutStores(layout, { recorded, images: options.images }),
    });
    const report = await run.execute(startedAt);
    if (layout && !dryRun && !report.interrupted) {
      await writeExportFiles(layout, options, {
        prev,
        recorded,
        known,
        carried: carriedByRef(run.results),
        platforms: platformsByRef(run.results),
      });
    }
    return report;
  } finally {
    await layout?.[Symbol.asyncDispose]();
  }
}

/**
 * The layout as the store of {@link LAYOUT_HOST}: images through a view that writes every
 * manifest they list (a re-tag of a digest PREV carried imports from this layout), their supply
 * chain through one that inherits PREV's.
 */
function layoutStores(
  layout: OciLayout | null,
  context: { recorded: Recorded; images: ResolvedImage[] },
): HostStores {
  const pinned = new Set(
    context.images.filter((i) => i.source.digest !== undefined && i.source.tag === undefined)
      .map((i) => formatReference(i.source)),
  );
  const view = (carryManifests: boolean) =>
    layout
      ? new LayoutStore(layout, {
        host: LAYOUT_HOST,
        nameOf: (repository) => repository.slice(NAMESPACE.length + 1),
        annotations: (name) => annotationsOf(context.recorded, name),
        pinned,
        carryManifests,
      })
      : null;
  const views = { image: view(true), supplyChain: view(false) };
  return { hosts: new Set([LAYOUT_HOST]), storeFor: (_host, use) => views[use] };
}

/** bananna-export.json, then (with `--part-size`) the tar parts, listed in it. */
async function writeExportFiles(
  layout: OciLayout,
  options: ExportRunOptions,
  context: Parameters<typeof writeManifest>[1],
): Promise<void> {
  // Nothing exported (every image failed or deferred): still a valid layout, with its manifest.
  await layout.ensureIndex();
  const manifest = await writeManifest(layout, context);
  let parts = "";
  if (options.partSize !== undefined) {
    // The tar holds the layout; bananna-export.json stays beside the parts, listing them.
    const written = await writeParts(options.dir, options.dir, {
      partSize: options.partSize,
      exclude: [EXPORT_MANIFEST],
      signal: options.signal,
    });
    // The parts are the output: read back and checked, listed, then the layout they hold goes
    // (a layout beside its parts doubled the disk an export takes).
    await verifyParts(options.dir, written.parts, options.signal);
    await writeExportManifest(options.dir, { ...manifest, parts: written.parts });
    await removeTarred(options.dir, written.entries);
    parts = `, ${written.parts.length} tar part(s) (${written.parts[0].name} ...; ` +
      `${written.bytes} bytes, the layout removed)`;
  }
  options.logger.info(
    "MIRROR_LAYOUT_WRITTEN",
    "Export",
    `${options.dir}/${EXPORT_MANIFEST} written: ${layout.entries().length} image(s)${parts}`,
  );
}

/** The config the plan sees: every entry's one target is the layout. */
function exportConfig(
  config: ResolvedConfig,
  images: ResolvedImage[],
  repositories: ResolvedRepository[],
): { config: ResolvedConfig; images: ResolvedImage[]; repositories: ResolvedRepository[] } {
  const derivedImages = images.map((i) => ({
    ...i,
    targets: [TARGET],
    repository: `${i.source.registry}/${i.source.repository}`,
  }));
  const derivedRepos = repositories.map((r) => ({
    ...r,
    targets: [TARGET],
    repository: `${r.source.registry}/${r.source.repository}`,
  }));
  return {
    config: {
      ...config,
      registries: {
        [TARGET]: {
          name: TARGET,
          kind: "registry",
          host: LAYOUT_HOST,
          scheme: "http",
          namespace: NAMESPACE,
          organization: NAMESPACE,
        },
      },
      // The layout keeps digests (registry engine); it has no Quay API and no `latest`.
      operation: {
        ...config.operation,
        engine: "registry",
        createReposIfNotExists: false,
        updateLatest: false,
      },
      images: derivedImages,
      repositories: derivedRepos,
    },
    images: derivedImages,
    repositories: derivedRepos,
  };
}

interface Recorded {
  /** By full reference (explicit images) and by `registry/repo` (repositories entries). */
  byRef: Map<string, { targets: Set<string>; key: string; description?: string }>;
}

/** The config's targets (union), key and description of every exported source. */
function recordedTargets(images: ResolvedImage[], repositories: ResolvedRepository[]): Recorded {
  const byRef: Recorded["byRef"] = new Map();
  const add = (name: string, e: { targets: string[]; key: string; description?: string }) => {
    const seen = byRef.get(name);
    if (seen) { for (const t of e.targets) seen.targets.add(t); }
    else byRef.set(name, { targets: new Set(e.targets), key: e.key, description: e.description });
  };
  for (const image of images) add(formatReference(image.source), image);
  for (const repo of repositories) add(`${repo.source.registry}/${repo.source.repository}`, repo);
  return { byRef };
}

function recordOf(recorded: Recorded, refName: string) {
  const repo = refName.replace(/[:@][^/]*$/, "");
  return recorded.byRef.get(refName) ?? recorded.byRef.get(repo);
}

function annotationsOf(recorded: Recorded, refName: string): Record<string, string> {
  const record = recordOf(recorded, refName);
  if (!record) return {};
  return { [TARGETS_ANNOTATION]: [...record.targets].join(","), [KEY_ANNOTATION]: record.key };
}

/** The supply-chain counts of each exported image, by its full source reference. */
function carriedByRef(
  results: readonly TaskResult[],
): Map<string, NonNullable<ExportedImage["supplyChain"]>> {
  const out = new Map<string, NonNullable<ExportedImage["supplyChain"]>>();
  for (const result of results) {
    if (!result?.carried) continue;
    const { signatures, attestations, sboms, referrers } = result.carried;
    out.set(formatReference(result.task.source), { signatures, attestations, sboms, referrers });
  }
  return out;
}

/** The platform set of each exported image mirrored for some platforms, by source reference. */
function platformsByRef(
  results: readonly TaskResult[],
): Map<string, NonNullable<ExportedImage["platforms"]>> {
  const out = new Map<string, NonNullable<ExportedImage["platforms"]>>();
  for (const result of results) {
    const wanted = result?.task.platforms;
    if (!wanted) continue;
    out.set(formatReference(result.task.source), {
      wanted: [...wanted.wanted],
      mode: wanted.mode,
      kept: result.platforms?.kept ?? null,
      skipped: result.platforms?.skipped ?? [],
    });
  }
  return out;
}

function knownBlobs(
  prev: LoadedExportManifest | null,
): Map<string, KnownBlob> {
  const known = new Map<string, KnownBlob>();
  if (!prev) return known;
  const created = new Map(sinceChain(prev).map((s) => [s.id, s.created]));
  for (const [digest, blob] of carriedBefore(prev)) {
    known.set(digest, {
      size: blob.size,
      from: { id: blob.from, created: created.get(blob.from) },
      repositories: blob.repositories,
    });
  }
  return known;
}

/** bananna-export.json, last: images, blob files, inherited blobs, file sums, the chain. */
async function writeManifest(
  layout: OciLayout,
  context: {
    prev: LoadedExportManifest | null;
    recorded: Recorded;
    known: Map<string, KnownBlob>;
    /** Supply-chain counts by full source reference. */
    carried: Map<string, NonNullable<ExportedImage["supplyChain"]>>;
    /** Platform sets by full source reference. */
    platforms: Map<string, NonNullable<ExportedImage["platforms"]>>;
  },
): Promise<ExportManifest> {
  const artifacts: ExportedArtifact[] = [];
  const images: ExportedImage[] = layout.entries().filter((entry) => {
    const ref = entry.annotations?.[REF_NAME] ?? "";
    if (!ARTIFACT_TAG.test(ref.slice(ref.lastIndexOf(":") + 1))) return true;
    artifacts.push({ ref, digest: entry.digest, mediaType: entry.mediaType, size: entry.size });
    return false;
  }).map((entry) => {
    const ref = entry.annotations?.[REF_NAME] ?? "";
    const record = recordOf(context.recorded, ref);
    const image: ExportedImage = {
      ref,
      key: entry.annotations?.[KEY_ANNOTATION] ?? record?.key ?? ref,
      digest: entry.digest,
      mediaType: entry.mediaType,
      size: entry.size,
      targets: (entry.annotations?.[TARGETS_ANNOTATION] ?? "").split(",").filter(Boolean),
    };
    if (record?.description) image.description = record.description;
    const carried = context.carried.get(ref);
    if (carried) image.supplyChain = carried;
    const platforms = context.platforms.get(ref);
    if (platforms) image.platforms = platforms;
    return image;
  }).sort((a, b) => a.ref.localeCompare(b.ref));
  artifacts.sort((a, b) => a.ref.localeCompare(b.ref));
  const blobs: { digest: string; size: number; repositories: string[] }[] = [];
  for await (const alg of Deno.readDir(`${layout.dir}/blobs`)) {
    if (!alg.isDirectory) continue;
    for await (const e of Deno.readDir(`${layout.dir}/blobs/${alg.name}`)) {
      if (!e.isFile || e.name.startsWith(".")) continue;
      const digest = `${alg.name}:${e.name}`;
      const size = (await Deno.stat(`${layout.dir}/blobs/${alg.name}/${e.name}`)).size;
      blobs.push({ digest, size, repositories: layout.usage(digest) });
    }
  }
  blobs.sort((a, b) => a.digest.localeCompare(b.digest));
  const here = new Set(blobs.map((b) => b.digest));
  const inherited = [...context.known].filter(([digest]) => !here.has(digest))
    .map(([digest, k]) => ({
      digest,
      size: k.size,
      from: k.from.id,
      ...(k.repositories ? { repositories: k.repositories } : {}),
    }));
  const manifest: ExportManifest = {
    format: EXPORT_FORMAT,
    id: crypto.randomUUID(),
    tool: { name: "bananna-bot", version: VERSION },
    created: new Date().toISOString(),
    images,
    artifacts,
    blobs,
    inherited,
    since: context.prev ? sinceChain(context.prev) : [],
    files: [await fileSum(layout.dir, "oci-layout"), await fileSum(layout.dir, "index.json")],
    parts: null,
  };
  await writeExportManifest(layout.dir, manifest);
  return manifest;
}
