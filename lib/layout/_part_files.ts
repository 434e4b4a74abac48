/**
 * The files under a split tar: part names, a writer that cuts one byte stream into parts
 * (temp file + fsync + rename each, sha256 while writing), the error type, and the stream glue
 * (drain waits) both directions share. Used only by tar_parts.ts and tar_parts_read.ts.
 *
 * @module
 */
import { createHash, type Hash } from "node:crypto";
import { syncDir } from "../safe_file.ts";
import { checkWrite } from "../write_guard.ts";

/** The one-file (unsplit) archive name. */
export const TAR_NAME = "bananna-export.tar";

/** One part of a split archive (or the one unsplit file): name, bytes, sha256 digest. */
export interface PartInfo {
  /** File name only (no directory), e.g. `bananna-export.tar.003`. */
  name: string;
  size: number;
  /**
   * sha256 of the part's bytes as a digest, `sha256:<64 lowercase hex>` (the hex is what
   * `sha256sum` prints). Expected values without the `sha256:` prefix are accepted on reading.
   */
  sha256: string;
}

/** Why a set of parts cannot be read (or written). */
export type TarPartsProblem = "missing" | "size" | "format" | "layout";

/**
 * A split tar that cannot be used at all: a part missing or of the wrong size (found before
 * anything is extracted), an archive the tar parser refuses, or a layout that cannot be written.
 * `part` names the part (or file) concerned.
 */
export class TarPartsError extends Error {
  /** What is wrong. */
  readonly problem: TarPartsProblem;
  /** The part (file name) or layout file the error is about. */
  readonly part: string;
  /** Create the error. */
  constructor(problem: TarPartsProblem, part: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "TarPartsError";
    this.problem = problem;
    this.part = part;
  }
}

/** Name of part `index` (0-based): `bananna-export.tar.000`, `.001`, … (at least 3 digits). */
export function partName(index: number): string {
  return `${TAR_NAME}.${String(index).padStart(3, "0")}`;
}

/** Write all of `bytes` (Deno's write may write less than asked). */
export async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) offset += await file.write(bytes.subarray(offset));
}

/** Minimal shape of a streamx stream for {@link waitDrain}. */
interface Emitter {
  once(event: string, listener: (...args: unknown[]) => void): unknown;
  off(event: string, listener: (...args: unknown[]) => void): unknown;
}

/** Resolve on `drain`; reject when the stream errors or closes first. */
export function waitDrain(stream: Emitter): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (error?: unknown) => {
      stream.off("drain", onDrain);
      stream.off("error", onError);
      stream.off("close", onClose);
      if (error) reject(error);
      else resolve();
    };
    const onDrain = () => done();
    const onError = (error: unknown) => done(error ?? new Error("tar stream failed"));
    const onClose = () => done(new Error("tar stream closed"));
    stream.once("drain", onDrain);
    stream.once("error", onError);
    stream.once("close", onClose);
  });
}

/**
 * Cuts a byte stream into part files of at most `partSize` bytes (no `partSize`: one file,
 * {@link TAR_NAME}). Each part is written to `<name>.tmp-<pid>-<random>`, hashed while written,
 * fsynced, closed and renamed to its name; the directory is fsynced at the end.
 */
export class PartWriter {
  readonly #dir: string;
  readonly #partSize: number | undefined;
  readonly #parts: PartInfo[] = [];
  #current: { file: Deno.FsFile; tmp: string; name: string; size: number; hash: Hash } | null =
    null;

  /** Write parts into `dir`. */
  constructor(dir: string, partSize?: number) {
    this.#dir = dir;
    this.#partSize = partSize;
  }

  /** Append `chunk`, opening and closing parts as their size limit is reached. */
  async write(chunk: Uint8Array): Promise<void> {
    let offset = 0;
    while (offset < chunk.length) {
      const current = this.#current ?? await this.#open();
      const room = this.#partSize === undefined ? Infinity : this.#partSize - current.size;
      const piece = chunk.subarray(offset, offset + Math.min(room, chunk.length - offset));
      await writeAll(current.file, piece);
      current.hash.update(piece);
      current.size += piece.length;
      offset += piece.length;
      if (current.size === this.#partSize) await this.#close();
    }
  }

  /** Close the last part, fsync the directory; returns every part in order. */
  async finish(): Promise<PartInfo[]> {
    if (this.#current) await this.#close();
    await syncDir(this.#dir);
    return this.#parts;
  }

  /** Give up: close and delete the part being written (finished parts stay, renamed). */
  async abort(): Promise<void> {
    const current = this.#current;
    this.#current = null;
    if (!current) return;
    try {
      current.file.close();
    } catch {
      // already closed
    }
    await Deno.remove(current.tmp).catch(() => {});
  }

  async #open() {
    const name = this.#partSize === undefined ? TAR_NAME : partName(this.#parts.length);
    const tmp = `${this.#dir}/${name}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
    const file = await Deno.open(tmp, { write: true, createNew: true, mode: 0o644 });
    this.#current = { file, tmp, name, size: 0, hash: createHash("sha256") };
    return this.#current;
  }

  async #close(): Promise<void> {
    const current = this.#current;
    if (!current) return;
    this.#current = null;
    try {
      await current.file.sync();
    } finally {
      current.file.close();
    }
    await checkWrite(`${this.#dir}/${current.name}`);
    await Deno.rename(current.tmp, `${this.#dir}/${current.name}`);
    this.#parts.push({
      name: current.name,
      size: current.size,
      sha256: `sha256:${current.hash.digest("hex")}`,
    });
  }
}

/**
 * Reads the concatenated bytes of `parts` (in `dir`) from any offset, and computes each part's
 * sha256 whenever a part is read whole from its first byte (once). A part whose file has another
 * length than expected is a `size` error.
 */
export class PartReader {
  readonly #dir: string;
  readonly #parts: readonly PartInfo[];
  readonly #signal?: AbortSignal;
  readonly #onHashed: (index: number, sha256: string) => Promise<void>;
  /** Start offset of each part in the whole stream. */
  readonly starts: number[] = [];
  /** The whole stream's length. */
  readonly total: number;
  /** sha256 digest (`sha256:<hex>`) of each part once known. */
  readonly hashes: (string | undefined)[];

  /** Read `parts` in `dir`; `onHashed` is told each part's sha256 as soon as it is known. */
  constructor(
    dir: string,
    parts: readonly PartInfo[],
    options: {
      signal?: AbortSignal;
      onHashed: (index: number, sha256: string) => Promise<void>;
    },
  ) {
    this.#dir = dir;
    this.#parts = parts;
    this.#signal = options.signal;
    this.#onHashed = options.onHashed;
    let total = 0;
    for (const part of parts) {
      this.starts.push(total);
      total += part.size;
    }
    this.total = total;
    this.hashes = parts.map(() => undefined);
  }

  /** Index of the part holding stream byte `offset` (the last part for the end). */
  partAt(offset: number): number {
    let i = 0;
    while (i + 1 < this.#parts.length && this.starts[i + 1] <= offset) i++;
    return i;
  }

  /** Chunks from stream offset `from` to the end, each with its stream offset. */
  async *from(from: number): AsyncGenerator<{ chunk: Uint8Array; at: number }> {
    for (let i = this.partAt(from); i < this.#parts.length; i++) {
      const part = this.#parts[i];
      const skip = Math.max(0, from - this.starts[i]);
      if (skip >= part.size && part.size > 0) continue;
      const file = await Deno.open(`${this.#dir}/${part.name}`, { read: true });
      const hash = skip === 0 && this.hashes[i] === undefined ? createHash("sha256") : null;
      let size = skip;
      try {
        if (skip > 0) await file.seek(skip, Deno.SeekMode.Start);
        for await (const chunk of file.readable) {
          this.#signal?.throwIfAborted();
          hash?.update(chunk);
          const at = this.starts[i] + size;
          size += chunk.length;
          if (size > part.size) throw this.#changed(part, size);
          yield { chunk, at };
        }
      } finally {
        // file.readable closes the file at its end; a stop in between leaves it to us
        try {
          file.close();
        } catch {
          // closed by the stream
        }
      }
      if (size !== part.size) throw this.#changed(part, size);
      if (hash) await this.#hashed(i, `sha256:${hash.digest("hex")}`);
    }
  }

  /** Make sure parts 0..last have their sha256 (reading the ones not read whole yet). */
  async hashUpTo(last: number): Promise<void> {
    for (let i = 0; i <= last && i < this.#parts.length; i++) {
      if (this.hashes[i] !== undefined) continue;
      const hash = createHash("sha256");
      let size = 0;
      const file = await Deno.open(`${this.#dir}/${this.#parts[i].name}`, { read: true });
      for await (const chunk of file.readable) {
        this.#signal?.throwIfAborted();
        hash.update(chunk);
        size += chunk.length;
        // A part swapped for /dev/zero after its size was checked: stop at once, not never.
        if (size > this.#parts[i].size) {
          await file.readable.cancel().catch(() => {});
          throw this.#changed(this.#parts[i], size);
        }
      }
      if (size !== this.#parts[i].size) throw this.#changed(this.#parts[i], size);
      await this.#hashed(i, `sha256:${hash.digest("hex")}`);
    }
  }

  async #hashed(index: number, sha256: string): Promise<void> {
    this.hashes[index] = sha256;
    await this.#onHashed(index, sha256);
  }

  #changed(part: PartInfo, size: number): TarPartsError {
    return new TarPartsError(
      "size",
      part.name,
      `Part ${part.name} changed while being read (${size} bytes or more, expected ${part.size})`,
    );
  }
}
