/**
 * Reads a run makes after the plan anyway, made by the plan right after a task's own reads, in the
 * same slot of the read concurrency (`BuildPlanOptions.beside`): a no-op run is nothing but reads,
 * and these no longer wait for the plan's last HEAD.
 *
 * - `latest` of each destination repository that holds a task's image already (`exists`): what
 *   it held then. The run keeps latest without another request when that already is the tag the
 *   rule chooses; a move is decided on a fresh HEAD (update_latest.ts), so no write rests on this
 *   read. A repository where the plan found only pushes is left to the run (its latest moves, so
 *   it would be read twice; a Quay repository to be created has none).
 * - The tags of each source repository with a task that exists or pushes (the supply-chain step's
 *   one listing per repository), but for the tasks of `repositories` entries: the plan lists those
 *   itself.
 *
 * Each is read once per repository; a failed read is left out (the run reads again) and fails no
 * task.
 *
 * @module
 */
import { isPinnedDigestTag } from "../registry/reference.ts";
import type { PlanProbe, PlanTask } from "./plan.ts";

/** The prefetched reads of one plan. */
export class PlanPrefetch {
  /** `latest`'s digest by destination `registry/repository` (null: absent). */
  readonly latestSeen = new Map<string, string | null>();
  /** The tags by source `registry/repository` (non-empty listings only). */
  readonly sourceTags = new Map<string, readonly string[]>();
  #reads = new Map<string, Promise<void>>();

  /**
   * @param probe the plan's reads
   * @param what which reads: `latest` (updateLatest), `sourceTags` (the supply chain is carried)
   * @param listedByPlan keys of the `repositories` entries (the plan lists their sources)
   */
  constructor(
    readonly probe: PlanProbe,
    readonly what: { latest?: boolean; sourceTags?: boolean },
    readonly listedByPlan: ReadonlySet<string>,
    readonly signal?: AbortSignal,
  ) {}

  /**
   * The reads `task` needs, once the plan decided it, each started once per repository; resolves
   * when they are done.
   */
  read(task: PlanTask): Promise<unknown> {
    const reads: Promise<void>[] = [];
    const { destination: dst, source: src } = task;
    const tag = dst.tag;
    if (
      this.what.latest && task.action === "exists" && tag !== undefined && tag !== "latest" &&
      !isPinnedDigestTag(tag)
    ) {
      const key = `${dst.registry}/${dst.repository}`;
      reads.push(this.#once(`latest ${key}`, async () => {
        const head = await this.probe.manifestHead({ ...dst, tag: "latest" }, this.signal)
          .catch(() => undefined);
        if (head !== undefined) this.latestSeen.set(key, head?.digest ?? null);
      }));
    }
    const carried = task.action === "exists" || task.action === "push";
    if (this.what.sourceTags && carried && !this.listedByPlan.has(task.imageKey)) {
      const key = `${src.registry}/${src.repository}`;
      reads.push(this.#once(`tags ${key}`, async () => {
        const { registry, repository } = src;
        const tags = await this.probe.tags({ registry, repository }, this.signal)
          .catch(() => null);
        if (tags?.length) this.sourceTags.set(key, tags);
      }));
    }
    return Promise.all(reads);
  }

  #once(key: string, read: () => Promise<void>): Promise<void> {
    let pending = this.#reads.get(key);
    if (!pending) this.#reads.set(key, pending = read());
    return pending;
  }
}
