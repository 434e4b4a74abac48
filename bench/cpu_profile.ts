// deno-lint-ignore-file no-console
/**
 * Summarise a V8 `.cpuprofile` (from `deno run --cpu-prof`, or `deno task bench --cpu-prof DIR`):
 * self time per function and per file, top entries first.
 *
 * ```
 * deno run --allow-read bench/cpu_profile.ts DIR/CPU.*.cpuprofile [top=25]
 * ```
 *
 * @module
 */

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** Self time (ms) per function and per file of one profile. */
export function summarise(profile: Profile): {
  totalMs: number;
  functions: [string, number][];
  files: [string, number][];
} {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const dt = (profile.timeDeltas[i + 1] ?? 0) / 1000;
    self.set(profile.samples[i], (self.get(profile.samples[i]) ?? 0) + dt);
  }
  const functions = new Map<string, number>();
  const files = new Map<string, number>();
  for (const [id, ms] of self) {
    const frame = byId.get(id)?.callFrame;
    if (!frame) continue;
    const file = frame.url.replace(/^file:\/\/\/work\/main\//, "") || "(native)";
    const name = `${frame.functionName || "(anonymous)"} ${file}:${frame.lineNumber + 1}`;
    functions.set(name, (functions.get(name) ?? 0) + ms);
    files.set(file, (files.get(file) ?? 0) + ms);
  }
  const sorted = (m: Map<string, number>) => [...m].sort((a, b) => b[1] - a[1]);
  return {
    totalMs: (profile.endTime - profile.startTime) / 1000,
    functions: sorted(functions),
    files: sorted(files),
  };
}

if (import.meta.main) {
  const [file, top = "25"] = Deno.args;
  const s = summarise(JSON.parse(await Deno.readTextFile(file)));
  console.log(`profile ${file}: ${s.totalMs.toFixed(0)} ms`);
  console.log("\nself time by file:");
  for (const [name, ms] of s.files.slice(0, Number(top))) {
    console.log(`${ms.toFixed(0).padStart(8)} ms  ${name}`);
  }
  console.log("\nself time by function:");
  for (const [name, ms] of s.functions.slice(0, Number(top))) {
    console.log(`${ms.toFixed(0).padStart(8)} ms  ${name}`);
  }
}
