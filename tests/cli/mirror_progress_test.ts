/**
 * The status line: drawn on a terminal (tasks under way), never built elsewhere, where a run of
 * 15,000 tasks logs a console line per task and each line forced a redraw.
 */
import assert from "node:assert/strict";
import { MirrorProgress } from "../../lib/cli/mirror_progress.ts";
import { createTerminal } from "../../lib/cli/terminal.ts";
import type { PlanTask } from "../../lib/mirror/plan.ts";
import { parseReference } from "../../lib/registry/reference.ts";

function task(id: number): PlanTask {
  return {
    id,
    imageKey: `src.example/app:${id}`,
    target: "prod",
    source: parseReference(`src.example/app:${id}`),
    destination: parseReference(`dst.example/m/app:${id}`),
    repo: null,
    action: "exists",
    comparedBy: "manifest",
  } as PlanTask;
}

for (const isTerminal of [true, false]) {
  Deno.test(`MirrorProgress ${isTerminal ? "draws" : "never builds"} the status line ${isTerminal ? "on" : "off"} a terminal`, () => {
    const out: string[] = [];
    const statuses: string[] = [];
    const terminal = createTerminal({
      stdout: (text) => out.push(text),
      stderr: () => {},
      isTerminal,
      noColor: true,
    });
    const progress = new MirrorProgress({
      ...terminal,
      status: (text) => statuses.push(text),
    });
    progress.onEvent({ kind: "task-start", task: task(0) });
    progress.logLine("a log line", "INFO");
    assert.deepEqual(out, ["a log line\n"]);
    // On a terminal: after the task starts, and again under the log line.
    const line = "[0/1] src.example/app:0 -> prod";
    assert.deepEqual(statuses, isTerminal ? [line, line] : []);
  });
}

Deno.test("MirrorProgress draws the first status line even in the first 100 ms of a process", () => {
  // performance.now() counts from the process's start: a run (or a test) that starts its first
  // task within 100 ms must not take that for a draw 100 ms ago.
  const now = performance.now;
  performance.now = () => 50;
  try {
    const statuses: string[] = [];
    const terminal = createTerminal({
      stdout: () => {},
      stderr: () => {},
      isTerminal: true,
      noColor: true,
    });
    const progress = new MirrorProgress({ ...terminal, status: (text) => statuses.push(text) });
    progress.onEvent({ kind: "task-start", task: task(0) });
    assert.deepEqual(statuses, ["[0/1] src.example/app:0 -> prod"]);
  } finally {
    performance.now = now;
  }
});
