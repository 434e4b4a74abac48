/**
 * The `repositories` section turned into images for the plan: each source repository is listed
 * once per run (every page, through the probe; reads only), its rules applied (tag_selection.ts),
 * and every selected tag becomes an image like one written under `images` (same destination
 * naming), so the plan treats both alike. A repository whose listing fails, or that lists no tag
 * (the registry answers 404 for an absent repository, and an empty one has nothing to mirror), is
 * kept as a failed selection: the plan makes it one failed task per target, the run goes on.
 *
 * @module
 */
import type { ResolvedImage, ResolvedRepository } from "../config/schema.ts";
import { errorMessage, MirrorError } from "../errors.ts";
import type { Code } from "../log/codes.ts";
import { formatReference, type Reference } from "../registry/reference.ts";
import type { TagSelection } from "./tag_selection.ts";

/** Lists the tags of a source repository (every page). */
export type ListTags = (
  repository: Omit<Reference, "tag" | "digest">,
  signal?: AbortSignal,
) => Promise<string[]>;

/** What the rules of one repository entry selected, or why its listing failed. */
export interface RepositorySelection {
  /** The entry. */
  repository: ResolvedRepository;
  /** The tags listed (every page, in listing order); empty when the listing failed. */
  listed: string[];
  /** The rules' result; null when the listing failed. */
  selection: TagSelection | null;
  /** Why the listing failed (IMAGE_NOT_FOUND when the repository lists no tag). */
  failure?: { code: Code; message: string };
}

/**
 * List every repository (once per source repository, all at once) and apply its rules.
 *
 * @param repositories The entries to plan (config order).
 * @param options `list` reads the tags; `signal` aborts (an abort is thrown, not a failure).
 * @returns One selection per entry, in config order; listing failures are data, not thrown.
 */
export async function selectRepositories(
  repositories: readonly ResolvedRepository[],
  options: { list: ListTags; signal?: AbortSignal },
): Promise<RepositorySelection[]> {
  const listings = new Map<string, Promise<string[]>>();
  return await Promise.all(repositories.map(async (repository) => {
    const key = formatReference(repository.source);
    let listing = listings.get(key);
    if (!listing) listings.set(key, listing = options.list(repository.source, options.signal));
    try {
      const listed = await listing;
      if (listed.length === 0) {
        return failed(repository, "IMAGE_NOT_FOUND", `Source repository ${key} lists no tags`);
      }
      // Loaded here, while the listings run: a config without repositories never needs it (nor
      // the semver package it brings).
      const { selectTags } = await import("./tag_selection.ts");
      return { repository, listed, selection: selectTags(listed, repository.tags) };
    } catch (error) {
      if (options.signal?.aborted) throw error;
      const code = error instanceof MirrorError ? error.code : "MIRROR_INTERNAL_ERROR";
      // "repository not found" names the repository itself.
      const why = code === "IMAGE_NOT_FOUND" ? "" : `Cannot list the tags of ${key}: `;
      return failed(repository, code, `${why}${errorMessage(error)}`);
    }
  }));
}

function failed(repository: ResolvedRepository, code: Code, message: string): RepositorySelection {
  return { repository, listed: [], selection: null, failure: { code, message } };
}

/** The selected tags of a selection as images (one per tag, in selection order). */
export function selectedImages(selection: RepositorySelection): ResolvedImage[] {
  const { repository } = selection;
  return (selection.selection?.selected ?? []).map((tag) => ({
    key: repository.key,
    source: { ...repository.source, tag },
    targets: repository.targets,
    description: repository.description,
    repository: repository.repository,
    verifyKeys: repository.verifyKeys,
    ...(repository.platforms ? { platforms: repository.platforms } : {}),
  }));
}

/** One `repositories` entry in the JSON report's `selection` section. */
export interface SelectionEntry {
  /** The key as written in the config. */
  repository: string;
  /** Tags listed (every page), in listing order. */
  listed: string[];
  /** Selected tags (see TagSelection.selected for the order). */
  selected: string[];
  /** Selected tags that follow upstream. */
  mutable: string[];
  /** Each rule that ran: tags kept and dropped. */
  rules: { rule: string; kept: number; dropped: number }[];
  /** Every dropped tag with its rule and why. */
  dropped: { tag: string; rule: string; reason: string }[];
  /** Why the listing failed, or null. */
  code: string | null;
  error: string | null;
}

/** The report's `selection` section. */
export function selectionEntries(selections: readonly RepositorySelection[]): SelectionEntry[] {
  return selections.map((s) => ({
    repository: s.repository.key,
    listed: s.listed,
    selected: s.selection?.selected ?? [],
    mutable: s.selection?.mutable ?? [],
    rules: (s.selection?.steps ?? []).map(({ rule, kept, dropped }) => ({ rule, kept, dropped })),
    dropped: (s.selection?.dropped ?? []).map(({ tag, rule, reason }) => ({ tag, rule, reason })),
    code: s.failure?.code ?? null,
    error: s.failure?.message ?? null,
  }));
}

/**
 * The dry run's lines for one repository: the tags listed, each rule's counts, and one line per
 * dropped tag with its rule and reason (the planned tasks follow as plan lines).
 */
export function selectionLines(s: RepositorySelection): string[] {
  const key = s.repository.key;
  if (!s.selection) return [`repository ${key}: ${s.failure?.message ?? "listing failed"}`];
  const sel = s.selection;
  const lines = [`repository ${key}: ${sel.listed} tag(s) listed: ${s.listed.join(", ")}`];
  if (sel.steps.length === 0) lines.push(`repository ${key}: no rules; every listed tag selected`);
  for (const step of sel.steps) {
    lines.push(`repository ${key}: rule ${step.rule}: kept ${step.kept}, dropped ${step.dropped}`);
  }
  for (const d of sel.dropped) {
    lines.push(`repository ${key}: dropped ${d.tag} by ${d.rule}: ${d.reason}`);
  }
  lines.push(
    `repository ${key}: selected ${sel.selected.length}: ${sel.selected.join(", ")}` +
      (sel.mutable.length ? ` (mutable: ${sel.mutable.join(", ")})` : ""),
  );
  return lines;
}
