/**
 * What earlier registry-engine runs learned about supply chains, so that a no-op re-run spends
 * fewer destination requests (the engine side is `SupplyChainMemo`, lib/engine/_supply_chain.ts):
 * - what a manifest digest lists (an index's children, a fallback index's referrers): immutable,
 *   since the digest is of the content; an entry no run used for {@link PARTS_KEPT_MS} is dropped;
 * - per destination managed tag (`.sig`/`.att`/`.sbom`, fallback `sha256-<hex>`): the digest a
 *   destination HEAD (or this tool's write) found there, and when. While the source's HEAD answers
 *   that digest and the entry is younger than {@link MAX_AGE_MS}, the destination HEAD is skipped.
 *   So a tag deleted or changed at the destination is seen again within a day; a drift is never kept.
 *
 * Mirror runs registry to registry only (an import from a layout does not use it). Losing or
 * deleting the file costs only those requests. Stored as
 * `<log dir>/.supply-chain-state.json`, written atomically (lib/safe_file.ts).
 *
 * @module
 */
import { z } from "../zod.ts";
import type { MemoPart, SupplyChainMemo } from "../engine/engine.ts";
import { validDigest } from "../registry/reference.ts";
import { FileInputError, readJsonFile, writeFileAtomic } from "../safe_file.ts";

/** How long a destination HEAD of a managed tag is trusted: 24 h. */
const MAX_AGE_MS = 24 * 3600 * 1000;

/** The state file read at most (a larger one is ignored: an empty memo). */
const MAX_FILE_BYTES = 16 * 1024 * 1024;

const digestSchema = z.string().check(z.refine(validDigest, "not a digest"));
const partsEntrySchema = z.object({
  parts: z.array(z.object({
    digest: digestSchema,
    artifactType: z.optional(z.string()),
    platformName: z.optional(z.string().check(z.regex(/^[a-z0-9_]+\/[a-z0-9_]+(\/[a-z0-9_.]+)?$/))),
    describes: z.optional(digestSchema),
  })),
  usedAt: z.number(),
});
const tagEntrySchema = z.object({ digest: digestSchema, verifiedAt: z.number() });
const fileSchema = z.object({
  parts: z.optional(z.record(z.string(), z.unknown())),
  tags: z.optional(z.record(z.string(), z.unknown())),
});

/** How long a digest's parts are kept after a run last used them: 30 days. */
const PARTS_KEPT_MS = 30 * 24 * 3600 * 1000;

/** The file name in the log dir. */
export const SUPPLY_CHAIN_STATE_FILE = ".supply-chain-state.json";

interface PartsEntry {
  parts: readonly MemoPart[];
  /** When a run last used or recorded them (ms since the epoch). */
  usedAt: number;
}

interface TagEntry {
  digest: string;
  /** When a destination HEAD (or write) found it (ms since the epoch). */
  verifiedAt: number;
}

/** The persisted memo (an unreadable or corrupt file is an empty one). */
export class SupplyChainState implements SupplyChainMemo {
  #path: string;
  #now: () => number;
  #parts = new Map<string, PartsEntry>();
  #tags = new Map<string, TagEntry>();

  private constructor(path: string, now: () => number) {
    this.#path = path;
    this.#now = now;
  }

  /**
   * Load the memo of `dir`.
   *
   * @param dir the log dir
   * @param options `now` (a clock, for tests)
   */
  static async load(dir: string, options: { now?: () => number } = {}): Promise<SupplyChainState> {
    const state = new SupplyChainState(
      `${dir}/${SUPPLY_CHAIN_STATE_FILE}`,
      options.now ?? Date.now,
    );
    // A file in the log dir, but its digests go into registry URLs: read as a file from outside
    // (a regular file under the cap), every entry checked (a bad one is dropped, not trusted).
    const file = await readJsonFile(state.#path, fileSchema, {
      what: "the supply-chain memo",
      maxBytes: MAX_FILE_BYTES,
    }).catch((error) => {
      // Missing, not a regular file, too large or corrupt: an empty memo; the run just reads
      // and HEADs as without one.
      if (error instanceof FileInputError) return null;
      throw error;
    });
    for (const [digest, entry] of Object.entries(file?.parts ?? {})) {
      const parsed = partsEntrySchema.safeParse(entry);
      if (validDigest(digest) && parsed.success) state.#parts.set(digest, parsed.data);
    }
    for (const [key, entry] of Object.entries(file?.tags ?? {})) {
      const parsed = tagEntrySchema.safeParse(entry);
      if (parsed.success) state.#tags.set(key, parsed.data);
    }
    return state;
  }

  /** What the manifest `digest` lists, when known. */
  parts(digest: string): readonly MemoPart[] | undefined {
    const entry = this.#parts.get(digest);
    if (entry) entry.usedAt = this.#now();
    return entry?.parts;
  }

  /** Remember what the manifest `digest` lists. */
  recordParts(digest: string, parts: readonly MemoPart[]): void {
    this.#parts.set(digest, { parts, usedAt: this.#now() });
  }

  /** Did a destination HEAD less than 24 h ago find `tag` at `digest`? */
  inStep(repository: string, tag: string, digest: string): boolean {
    const entry = this.#tags.get(`${repository}:${tag}`);
    if (!entry || entry.digest !== digest) return false;
    const age = this.#now() - entry.verifiedAt;
    return age >= 0 && age < MAX_AGE_MS;
  }

  /** A destination HEAD or write just found `tag` at `digest`. */
  recordInStep(repository: string, tag: string, digest: string): void {
    this.#tags.set(`${repository}:${tag}`, { digest, verifiedAt: this.#now() });
  }

  /** Not in step: never answered from the memo. */
  forget(repository: string, tag: string): void {
    this.#tags.delete(`${repository}:${tag}`);
  }

  /** Write the file: the parts used within 30 days, the tag entries younger than 24 h. */
  async save(): Promise<void> {
    const now = this.#now();
    const parts = Object.fromEntries(
      [...this.#parts].filter(([, e]) => now - e.usedAt < PARTS_KEPT_MS)
        .sort(([a], [b]) => a.localeCompare(b)),
    );
    const tags = Object.fromEntries(
      [...this.#tags].filter(([, e]) => now - e.verifiedAt < MAX_AGE_MS)
        .sort(([a], [b]) => a.localeCompare(b)),
    );
    await writeFileAtomic(this.#path, JSON.stringify({ version: 1, parts, tags }, null, 1) + "\n");
  }
}
