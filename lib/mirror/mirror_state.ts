/**
 * What earlier runs proved, so that a no-op re-run needs only HEADs.
 *
 * The docker engine cannot keep digests (docker recompresses layers on push), so "same image"
 * means the same config digest, which costs manifest GETs on both sides (and a GET on Docker Hub
 * counts as a pull). Once a run has pushed or compared a destination tag, it records the pair
 * (source manifest digest, destination manifest digest) here. A later run that HEADs the same pair
 * knows the answer without a GET; if either digest changed, the full comparison runs again.
 * Losing or deleting the file costs only those GETs. Stored as `<log dir>/.mirror-state.json`.
 *
 * @module
 */
import { z } from "../zod.ts";
import { FileInputError, readJsonFile, writeFileAtomic } from "../safe_file.ts";

/** The state file read at most (a larger one is ignored: an empty state). */
const MAX_STATE_BYTES = 16 * 1024 * 1024;

const stateSchema = z.object({ equivalent: z.optional(z.record(z.string(), z.unknown())) });

/** Recorded equivalences: destination reference -> `source digest|destination digest`. */
export class MirrorState {
  #path: string;
  #pairs: Map<string, string>;
  #dirty = false;

  private constructor(path: string, pairs: Map<string, string>) {
    this.#path = path;
    this.#pairs = pairs;
  }

  /** Load the state file in `dir` (an unreadable or corrupt file is an empty state). */
  static async load(dir: string): Promise<MirrorState> {
    const path = `${dir}/.mirror-state.json`;
    const pairs = new Map<string, string>();
    const file = await readJsonFile(path, stateSchema, {
      what: "the mirror state",
      maxBytes: MAX_STATE_BYTES,
    }).catch((error) => {
      // Missing, not a regular file, too large or corrupt: start empty; the comparison just
      // costs GETs again.
      if (error instanceof FileInputError) return null;
      throw error;
    });
    for (const [key, value] of Object.entries(file?.equivalent ?? {})) {
      if (typeof value === "string") pairs.set(key, value);
    }
    return new MirrorState(path, pairs);
  }

  /** Did an earlier run prove `destination` (at `destinationDigest`) holds `sourceDigest`'s image? */
  isEquivalent(destination: string, sourceDigest: string, destinationDigest: string): boolean {
    return this.#pairs.get(destination) === `${sourceDigest}|${destinationDigest}`;
  }

  /** Record that `destination` at `destinationDigest` holds the image of `sourceDigest`. */
  record(destination: string, sourceDigest: string, destinationDigest: string): void {
    const value = `${sourceDigest}|${destinationDigest}`;
    if (this.#pairs.get(destination) !== value) {
      this.#pairs.set(destination, value);
      this.#dirty = true;
    }
  }

  /**
   * Write the file if anything changed: a fresh unique temp file + rename, so never a
   * half-written state and never through a symbolic link planted at either name.
   */
  async save(): Promise<void> {
    if (!this.#dirty) return;
    const equivalent = Object.fromEntries([...this.#pairs].sort(([a], [b]) => a.localeCompare(b)));
    await writeFileAtomic(this.#path, JSON.stringify({ version: 1, equivalent }, null, 1) + "\n");
    this.#dirty = false;
  }
}
