/**
 * What a person sees during a run. On a terminal: log lines scroll above one status line that
 * shows the tasks under way and the bytes moved (redrawn at most 10 times a second). Elsewhere
 * (cron, CI, a pipe): the log lines only, one per event, no control characters.
 *
 * @module
 */
import type { Level } from "../log/codes.ts";
import { formatBytes } from "../mirror/report.ts";
import type { MirrorEvent } from "../mirror/run_plan.ts";
import type { Terminal } from "./terminal.ts";

/** Tracks running tasks and draws the status line. */
export class MirrorProgress {
  #terminal: Terminal;
  #running = new Map<number, { name: string; bytes: number }>();
  #done = 0;
  #total = 0;
  #lastDraw = -Infinity;

  /** Progress on top of `terminal`. */
  constructor(terminal: Terminal) {
    this.#terminal = terminal;
  }

  /** A log line for the console (already formatted and masked by the logger). */
  logLine(line: string, level: Level): void {
    const t = this.#terminal;
    if (level === "ERROR" || level === "CRITICAL") t.error(line);
    else if (level === "WARNING") t.warn(line);
    else t.line(line);
    this.#draw(true);
  }

  /** Follow the run's events. */
  onEvent(event: MirrorEvent): void {
    switch (event.kind) {
      case "task-start":
        this.#total = Math.max(this.#total, event.task.id + 1);
        this.#running.set(event.task.id, {
          name: `${event.task.imageKey} -> ${event.task.target}`,
          bytes: 0,
        });
        break;
      case "engine": {
        const running = this.#running.get(event.task.id);
        if (running && event.event.kind === "blob" && event.event.state === "progress") {
          running.bytes += event.event.bytes ?? 0;
        }
        break;
      }
      case "task-done":
        this.#running.delete(event.result.task.id);
        this.#done++;
        break;
      default:
        break;
    }
    this.#draw(false);
  }

  /** Remove the status line (before the statistics). */
  clear(): void {
    this.#terminal.clearStatus();
  }

  #draw(force: boolean): void {
    // No status line off a terminal: nothing to build (a console line per task at scale).
    if (!this.#terminal.isTerminal) return;
    const now = performance.now();
    if (!force && now - this.#lastDraw < 100) return;
    this.#lastDraw = now;
    if (this.#running.size === 0) return this.#terminal.clearStatus();
    const items = [...this.#running.values()]
      .map((r) => (r.bytes > 0 ? `${r.name} ${formatBytes(r.bytes)}` : r.name))
      .join(" | ");
    this.#terminal.status(`[${this.#done}/${this.#total}] ${items}`);
  }
}
