/**
 * deploy/openshift/indexed-job.yaml checked as data: an Indexed Job whose completions,
 * parallelism and `--shards` agree, whose command line the CLI accepts and turns into a shard per
 * JOB_COMPLETION_INDEX, with the CronJob's volumes (config ConfigMap, credentials Secret, data
 * PVC, /tmp) and OpenShift's restricted-SCC security context.
 */
import assert from "node:assert/strict";
import { parse } from "yaml";
import { parseArgs } from "../../lib/cli/args.ts";
import { resolveShard } from "../../lib/mirror/shard.ts";
import { ROOT } from "../support/cli.ts";

// deno-lint-ignore no-explicit-any
type Doc = Record<string, any>;

/** Every problem of an Indexed Job manifest; [] when right. */
function indexedJobProblems(job: Doc): string[] {
  const problems: string[] = [];
  if (job.apiVersion !== "batch/v1" || job.kind !== "Job") problems.push("not a batch/v1 Job");
  const spec = job.spec ?? {};
  if (spec.completionMode !== "Indexed") problems.push("completionMode is not Indexed");
  if (!(Number.isInteger(spec.completions) && spec.completions >= 1)) {
    problems.push("completions missing");
  }
  if (spec.parallelism !== spec.completions) problems.push("parallelism is not completions");
  const pod = spec.template?.spec ?? {};
  if (pod.restartPolicy !== "Never") problems.push("restartPolicy is not Never");
  if (pod.securityContext?.runAsNonRoot !== true) problems.push("pod runAsNonRoot is not true");
  if (pod.securityContext?.seccompProfile?.type !== "RuntimeDefault") {
    problems.push("pod seccompProfile is not RuntimeDefault");
  }
  if (pod.securityContext?.runAsUser !== undefined) problems.push("pod runAsUser is set");
  const volumes = new Map<string, Doc>((pod.volumes ?? []).map((v: Doc) => [v.name, v]));
  for (const c of pod.containers ?? []) {
    const sc = c.securityContext ?? {};
    if (sc.allowPrivilegeEscalation !== false) problems.push(`${c.name}: privilege escalation`);
    if (sc.readOnlyRootFilesystem !== true) problems.push(`${c.name}: root filesystem writable`);
    if (JSON.stringify(sc.capabilities?.drop) !== '["ALL"]') {
      problems.push(`${c.name}: capabilities do not drop ALL`);
    }
    if (c.image !== "bananna-bot") problems.push(`${c.name}: image is not bananna-bot`);
    let cmd;
    try {
      cmd = parseArgs(c.args ?? []);
    } catch (error) {
      problems.push(`${c.name}: args refused: ${(error as Error).message}`);
      continue;
    }
    if (cmd.kind !== "mirror") {
      problems.push(`${c.name}: not a mirror command`);
      continue;
    }
    if (!cmd.nonInteractive) problems.push(`${c.name}: not --non-interactive`);
    if (cmd.shard !== undefined) problems.push(`${c.name}: --shard fixes one index for all pods`);
    if (Number(cmd.shards) !== spec.completions) {
      problems.push(`${c.name}: --shards ${cmd.shards} is not completions ${spec.completions}`);
    }
    for (let index = 0; index < spec.completions; index++) {
      const env = { JOB_COMPLETION_INDEX: String(index) };
      try {
        const shard = resolveShard({ shard: cmd.shard, shards: cmd.shards, env });
        if (shard?.index !== index) problems.push(`${c.name}: pod ${index} is not shard ${index}`);
      } catch (error) {
        problems.push(`${c.name}: pod ${index}: ${(error as Error).message}`);
      }
    }
    const mounts = new Map<string, Doc>(
      (c.volumeMounts ?? []).map((m: Doc) => [m.mountPath, volumes.get(m.name)]),
    );
    if (mounts.get("/etc/bananna-bot")?.configMap?.name !== "bananna-bot-config") {
      problems.push(`${c.name}: /etc/bananna-bot is not the ConfigMap bananna-bot-config`);
    }
    if (cmd.config !== "/etc/bananna-bot/config.yaml") {
      problems.push(`${c.name}: --config is not /etc/bananna-bot/config.yaml`);
    }
    if (
      mounts.get("/var/lib/bananna-bot")?.persistentVolumeClaim?.claimName !== "bananna-bot-data"
    ) {
      problems.push(`${c.name}: /var/lib/bananna-bot is not the PVC bananna-bot-data`);
    }
    if (!mounts.get("/tmp")?.emptyDir) problems.push(`${c.name}: /tmp is not an emptyDir`);
    for (const e of c.env ?? []) {
      if (e.valueFrom?.secretKeyRef?.name !== "bananna-bot-credentials") {
        problems.push(`${c.name}: ${e.name} is not from the Secret bananna-bot-credentials`);
      }
    }
  }
  return problems;
}

Deno.test("indexed-job.yaml: Indexed, N pods = --shards N, each pod its shard, CronJob's volumes, restricted SCC", async (t) => {
  const job = parse(await Deno.readTextFile(`${ROOT}/deploy/openshift/indexed-job.yaml`)) as Doc;
  assert.deepEqual(indexedJobProblems(job), []);
  assert.equal(job.spec.completions, 3);

  // The checks refuse what they are for.
  const broken: [string, (j: Doc) => void, string][] = [
    ["not indexed", (j) => delete j.spec.completionMode, "completionMode is not Indexed"],
    ["parallelism", (j) => j.spec.parallelism = 1, "parallelism is not completions"],
    [
      "--shards disagrees",
      (j) => j.spec.template.spec.containers[0].args[2] = "4",
      "mirror: --shards 4 is not completions 3",
    ],
    [
      "no --shards",
      (j) => j.spec.template.spec.containers[0].args.splice(1, 2),
      "mirror: --shards undefined is not completions 3",
    ],
    [
      "a bad flag",
      (j) => j.spec.template.spec.containers[0].args.push("--shard-count"),
      "mirror: args refused: Unknown option '--shard-count'",
    ],
    [
      "PVC",
      (j) => j.spec.template.spec.volumes[1].persistentVolumeClaim.claimName = "other",
      "mirror: /var/lib/bananna-bot is not the PVC bananna-bot-data",
    ],
    [
      "writable root",
      (j) => j.spec.template.spec.containers[0].securityContext.readOnlyRootFilesystem = false,
      "mirror: root filesystem writable",
    ],
  ];
  for (const [name, breakIt, problem] of broken) {
    await t.step(name, () => {
      const copy = structuredClone(job);
      breakIt(copy);
      assert.ok(
        indexedJobProblems(copy).includes(problem),
        `${name}: ${JSON.stringify(indexedJobProblems(copy))}`,
      );
    });
  }
});
