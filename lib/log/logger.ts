/**
 * The logger: one line per event, in the seed's format, local time:
 *
 * ```
 * 2025-10-04 04:30:15 [INFO] [IMAGE_PUSHED] Mirror: docker.io/library/nginx:1.25 -> prod ...
 * ```
 *
 * Every message is masked (lib/log/redact.ts) before it reaches the file or the console, and a
 * multi-line message is folded into one line (" | "), so one event is one line. Each line is
 * appended to the file at once with a synchronous write: concurrent tasks never interleave within a
 * line and a crash loses nothing already logged. The console sink belongs to the caller (the CLI
 * decides colour and TTY). Rotation (rotation.ts) runs at open and, for long runs, when the period
 * passes: lines logged during a rotation wait in memory and are written right after it. Only the
 * holder of the run lock rotates (`rotate: false` otherwise). The log is never opened through a
 * symbolic link (lib/safe_file.ts).
 *
 * @module
 */
import { type Code, CODES, type Level, LEVELS } from "./codes.ts";
import type { Secrets } from "./redact.ts";
import { rotateIfDue, type RotateResult } from "./rotation.ts";
import { openNoFollow } from "../safe_file.ts";

/**
 * What the logger needs, as plain data. The config's `log` section has this shape; the logger
 * does not know the config.
 */
export interface LoggerSettings {
  /** Lowest level written. */
  level: Level;
  /** File name inside `dir`. */
  file: string;
  /** Absolute directory of the log file and its archives. */
  dir: string;
  /** Days a log file covers before it is rotated. */
  rotationDays: number;
  /** Also hand each line to the console sink. */
  consoleOutput: boolean;
  /** Archives kept after a rotation (0 = all). */
  keepArchives: number;
}

/** Options for {@link Logger.open}. */
export interface LoggerOptions {
  /** Log settings; `dir` must be absolute. */
  settings: LoggerSettings;
  /** Where console lines go (only when settings.consoleOutput). */
  console?: (line: string, level: Level) => void;
  /** The clock. @default () => new Date() */
  clock?: () => Date;
  /** The run's secrets, masked in every line. */
  secrets: Secrets;
  /**
   * Rotate when due, at open and during the run. Only a caller that holds the run lock may
   * rotate (a run refused the lock must not archive and empty the log of the run that holds it).
   * @default true
   */
  rotate?: boolean;
  /**
   * A dry run: lines go to the console sink only (whatever `consoleOutput` says); no file is
   * opened, no directory made, nothing rotated.
   */
  consoleOnly?: boolean;
}

/** Format a log line: `YYYY-MM-DD HH:MM:SS [LEVEL] [CODE] Operation: message` (local time). */
export function formatLine(
  date: Date,
  level: Level,
  code: Code,
  operation: string,
  message: string,
): string {
  return lineAt(formatTime(date), level, code, operation, message);
}

/** A log line whose time text ({@link formatTime}) is already made. */
function lineAt(
  time: string,
  level: Level,
  code: Code,
  operation: string,
  message: string,
): string {
  return `${time} [${level}] [${code}] ${operation}: ${message}`;
}

/** `YYYY-MM-DD HH:MM:SS` in local time. */
function formatTime(date: Date): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${p(date.getMonth() + 1)}-${p(date.getDate())} ${
    p(date.getHours())
  }:${p(date.getMinutes())}:${p(date.getSeconds())}`;
}

/** The logger. Open with {@link Logger.open}; close when done. */
export class Logger {
  #settings: LoggerSettings;
  #console?: (line: string, level: Level) => void;
  #clock: () => Date;
  #secrets: Secrets;
  #file: Deno.FsFile | null;
  #path: string;
  #minLevel: number;
  #nextCheck = Infinity;
  #rotating: Promise<void> | null = null;
  #pending: string[] = [];
  #encoder = new TextEncoder();
  /** Where a line is encoded before its write (a line that may not fit gets its own array). */
  #buffer = new Uint8Array(16 * 1024);
  /** The second (ms since the epoch / 1000) whose local time {@link #time} holds. */
  #second = NaN;
  #time = "";

  private constructor(options: LoggerOptions, path: string, file: Deno.FsFile | null) {
    this.#settings = options.consoleOnly
      ? { ...options.settings, consoleOutput: true }
      : options.settings;
    this.#console = options.console;
    this.#clock = options.clock ?? (() => new Date());
    this.#secrets = options.secrets;
    this.#path = path;
    this.#file = file;
    this.#minLevel = LEVELS.indexOf(options.settings.level);
  }

  /** Create the log dir, rotate if due (unless `rotate: false`), and open the log for appending. */
  static async open(options: LoggerOptions): Promise<Logger> {
    const { settings } = options;
    const path = `${settings.dir}/${settings.file}`;
    if (options.consoleOnly) return new Logger(options, path, null);
    const rotate = options.rotate ?? true;
    await Deno.mkdir(settings.dir, { recursive: true });
    const rotation: RotateResult = rotate
      ? await rotateIfDue({
        dir: settings.dir,
        file: settings.file,
        rotationDays: settings.rotationDays,
        keepArchives: settings.keepArchives,
        clock: options.clock,
      })
      : { rotated: false, deleted: [] };
    const file = await openNoFollow(path, { append: true, create: true }, "the log");
    const logger = new Logger(options, path, file);
    if (rotate) logger.#nextCheck = logger.#clock().getTime() + 60_000;
    if (rotation.rotated) {
      logger.info(
        "MIRROR_LOG_ROTATED",
        "Log",
        rotation.resumed
          ? `Finished the rotation a crash interrupted: the previous log is in ${rotation.archive}`
          : `Archived the previous log to ${rotation.archive}`,
      );
    }
    for (const deleted of rotation.deleted) {
      logger.info("MIRROR_LOG_ROTATED", "Log", `Deleted old archive ${deleted} (keepArchives)`);
    }
    return logger;
  }

  /** The log file path. */
  get path(): string {
    return this.#path;
  }

  /** Log one event. Below the configured level it is dropped. */
  log(level: Level, code: Code, operation: string, message: string): void {
    if (LEVELS.indexOf(level) < this.#minLevel) return;
    const masked = this.#secrets.mask(message);
    const text = masked.includes("\n") ? masked.replace(/\r?\n\s*/g, " | ") : masked;
    // The time of formatLine, made once a second (a line per task at scale).
    const date = this.#clock();
    const now = date.getTime();
    const second = Math.floor(now / 1000);
    if (second !== this.#second) {
      this.#second = second;
      this.#time = formatTime(date);
    }
    const line = lineAt(this.#time, level, code, operation, text);
    if (this.#settings.consoleOutput) this.#console?.(line, level);
    this.#maybeRotate(now);
    if (this.#rotating) {
      this.#pending.push(line);
      return;
    }
    this.#write(line);
  }

  /** Log at the code's level from the catalogue, or INFO. */
  info(code: Code, operation: string, message: string): void {
    this.log(levelFor(code, "INFO"), code, operation, message);
  }

  /** Log at WARNING. */
  warn(code: Code, operation: string, message: string): void {
    this.log("WARNING", code, operation, message);
  }

  /** Log at ERROR. */
  error(code: Code, operation: string, message: string): void {
    this.log("ERROR", code, operation, message);
  }

  /** Log at DEBUG. */
  debug(code: Code, operation: string, message: string): void {
    this.log("DEBUG", code, operation, message);
  }

  /** Wait for a rotation under way and write what waited for it. */
  async flush(): Promise<void> {
    while (this.#rotating) await this.#rotating;
  }

  /** Flush and close the file. */
  async close(): Promise<void> {
    await this.flush();
    this.#file?.close();
    this.#file = null;
  }

  #write(line: string): void {
    if (!this.#file) return;
    const text = line + "\n";
    // At most 3 bytes of UTF-8 per UTF-16 unit: such a line fits the buffer, no array per line.
    const bytes = text.length * 3 <= this.#buffer.length
      ? this.#buffer.subarray(0, this.#encoder.encodeInto(text, this.#buffer).written)
      : this.#encoder.encode(text);
    let offset = 0;
    while (offset < bytes.length) offset += this.#file.writeSync(bytes.subarray(offset));
  }

  #maybeRotate(now: number): void {
    if (this.#rotating || now < this.#nextCheck) return;
    this.#nextCheck = now + 60_000;
    this.#rotating = (async () => {
      try {
        const result = await rotateIfDue({
          dir: this.#settings.dir,
          file: this.#settings.file,
          rotationDays: this.#settings.rotationDays,
          keepArchives: this.#settings.keepArchives,
          clock: this.#clock,
        });
        if (result.rotated) {
          this.#pending.unshift(formatLine(
            this.#clock(),
            "INFO",
            "MIRROR_LOG_ROTATED",
            "Log",
            `Archived the previous log to ${result.archive}`,
          ));
        }
      } catch (error) {
        this.#pending.unshift(formatLine(
          this.#clock(),
          "WARNING",
          "MIRROR_LOG_ROTATED",
          "Log",
          `Rotation failed, logging on: ${this.#secrets.mask(String(error))}`,
        ));
      } finally {
        // The file was truncated in place; an append handle keeps writing at the new end.
        const lines = this.#pending;
        this.#pending = [];
        this.#rotating = null;
        for (const line of lines) this.#write(line);
      }
    })();
  }
}

function levelFor(code: Code, fallback: Level): Level {
  return CODES[code]?.level ?? fallback;
}
