/**
 * deploy/openshift/ checked as data: every manifest parses and has the kind and apiVersion it
 * should; the CronJob has what OpenShift's restricted SCC and an unattended nightly run need; every
 * command line the manifests (and the Containerfile) give the CLI is accepted by its parser; every
 * `${VAR}` of the ConfigMap's config comes from the Secret through the container's env; the mounts
 * match the config's paths; and the ConfigMap's config passes the real `validate` once the
 * variables are set (and fails on the Secret's placeholders).
 */
import assert from "node:assert/strict";
import { parse, stringify } from "yaml";
import { parseArgs } from "../../lib/cli/args.ts";
import { ROOT, runCli } from "../support/cli.ts";
import { which } from "../support/dockerd.ts";
import { shippedV8Flags } from "../support/hostile_run.ts";
import { makeCertificates } from "../support/registry.ts";

const DIR = `${ROOT}/deploy/openshift`;

// deno-lint-ignore no-explicit-any
type Doc = Record<string, any>;

/** Every YAML file of the folder, parsed (one document each). */
export async function loadManifests(dir: string = DIR): Promise<Map<string, Doc>> {
  const docs = new Map<string, Doc>();
  for await (const entry of Deno.readDir(dir)) {
    if (!entry.isFile || !/\.ya?ml$/.test(entry.name)) continue;
    const text = await Deno.readTextFile(`${dir}/${entry.name}`);
    docs.set(entry.name, parse(text) as Doc);
  }
  return docs;
}

/** The single manifest of `kind` (named `name` when given). */
function one(docs: Map<string, Doc>, kind: string, name?: string): Doc {
  const found = [...docs.values()].filter((d) =>
    d.kind === kind && (name === undefined || d.metadata?.name === name)
  );
  assert.equal(found.length, 1, `one ${kind}${name ? ` named ${name}` : ""} expected`);
  return found[0];
}

/** Pod templates of every workload (CronJob, and the Indexed Job when present). */
function podSpecs(docs: Map<string, Doc>): { file: string; pod: Doc }[] {
  const out: { file: string; pod: Doc }[] = [];
  for (const [file, doc] of docs) {
    if (doc.kind === "CronJob") out.push({ file, pod: doc.spec.jobTemplate.spec.template.spec });
    if (doc.kind === "Job") out.push({ file, pod: doc.spec.template.spec });
  }
  return out;
}

/** `${VAR}` names in a config text (`$${` is a literal). */
export function configVars(text: string): string[] {
  const names = new Set<string>();
  for (const m of text.matchAll(/(\$?)\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g)) {
    if (m[1] !== "$") names.add(m[2]);
  }
  return [...names].sort();
}

/** Parse a memory quantity (`128Mi`, `1G`, `500M`) into bytes. */
export function bytesOf(quantity: string): number {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|K|M|G)?$/.exec(String(quantity));
  if (!m) throw new Error(`not a memory quantity: ${quantity}`);
  const unit: Record<string, number> = {
    "": 1,
    K: 1e3,
    M: 1e6,
    G: 1e9,
    Ki: 1024,
    Mi: 1024 ** 2,
    Gi: 1024 ** 3,
  };
  return Number(m[1]) * unit[m[2] ?? ""];
}

/** Every problem with the manifests' wiring (names, vars, mounts); [] when it holds together. */
export function wiringProblems(docs: Map<string, Doc>): string[] {
  const problems: string[] = [];
  const config = one(docs, "ConfigMap", "bananna-bot-config");
  const secret = one(docs, "Secret");
  const pvc = one(docs, "PersistentVolumeClaim");
  const account = one(docs, "ServiceAccount");
  const secretKeys = new Set(Object.keys({ ...secret.data, ...secret.stringData }));
  const configText: string = config.data?.["config.yaml"] ?? "";
  const needed = configVars(configText);
  for (const name of needed) {
    if (!secretKeys.has(name)) problems.push(`\${${name}} is not a key of the Secret`);
  }
  const logDir = (parse(configText) as Doc)?.log?.dir;
  for (const { file, pod } of podSpecs(docs)) {
    if (pod.serviceAccountName !== account.metadata.name) {
      problems.push(`${file}: serviceAccountName is not ${account.metadata.name}`);
    }
    const volumes = new Map<string, Doc>(
      (pod.volumes ?? []).map((v: Doc) => [v.name, v]),
    );
    for (const container of pod.containers ?? []) {
      const at = `${file}: container ${container.name}`;
      const env = new Map<string, Doc>((container.env ?? []).map((e: Doc) => [e.name, e]));
      const fromSecret = (container.envFrom ?? []).some((e: Doc) =>
        e.secretRef?.name === secret.metadata.name
      );
      for (const name of needed) {
        const ref = env.get(name)?.valueFrom?.secretKeyRef;
        const ok = ref
          ? ref.name === secret.metadata.name && secretKeys.has(ref.key)
          : fromSecret && secretKeys.has(name);
        if (!ok) problems.push(`${at}: \${${name}} does not come from the Secret`);
      }
      const mounts = new Map<string, Doc>(
        (container.volumeMounts ?? []).map((m: Doc) => [m.mountPath, m]),
      );
      const args: string[] = container.args ?? [];
      const configPath = args[args.indexOf("--config") + 1] ?? "";
      const configMount = mounts.get(configPath.replace(/\/[^/]+$/, ""));
      const configVolume = configMount && volumes.get(configMount.name);
      if (
        configVolume?.configMap?.name !== config.metadata.name ||
        !(configPath.replace(/^.*\//, "") in (config.data ?? {}))
      ) {
        problems.push(`${at}: --config ${configPath} is not the ConfigMap's config.yaml`);
      }
      const dataVolume = mounts.get(logDir) && volumes.get(mounts.get(logDir)?.name);
      if (dataVolume?.persistentVolumeClaim?.claimName !== pvc.metadata.name) {
        problems.push(`${at}: log.dir ${logDir} is not the PVC's mount`);
      }
      const tmp = mounts.get("/tmp") && volumes.get(mounts.get("/tmp")?.name);
      if (!tmp?.emptyDir) problems.push(`${at}: /tmp is not an emptyDir`);
    }
  }
  return problems;
}

/** Problems with a CronJob's scheduling, resources and security context; [] when right. */
export function cronJobProblems(cron: Doc): string[] {
  const problems: string[] = [];
  const spec = cron.spec ?? {};
  if (spec.concurrencyPolicy !== "Forbid") problems.push("concurrencyPolicy is not Forbid");
  for (const field of ["startingDeadlineSeconds", "successfulJobsHistoryLimit"]) {
    if (!(Number.isInteger(spec[field]) && spec[field] > 0)) problems.push(`${field} missing`);
  }
  if (!(Number.isInteger(spec.failedJobsHistoryLimit) && spec.failedJobsHistoryLimit > 0)) {
    problems.push("failedJobsHistoryLimit missing");
  }
  const pod = spec.jobTemplate?.spec?.template?.spec ?? {};
  if (pod.restartPolicy !== "Never") problems.push("restartPolicy is not Never");
  if (pod.securityContext?.runAsNonRoot !== true) problems.push("pod runAsNonRoot is not true");
  if (pod.securityContext?.seccompProfile?.type !== "RuntimeDefault") {
    problems.push("pod seccompProfile is not RuntimeDefault");
  }
  if (pod.securityContext?.runAsUser !== undefined) {
    problems.push("pod runAsUser is set (OpenShift assigns the UID)");
  }
  for (const c of pod.containers ?? []) {
    const sc = c.securityContext ?? {};
    if (sc.allowPrivilegeEscalation !== false) {
      problems.push(`${c.name}: allowPrivilegeEscalation is not false`);
    }
    if (sc.readOnlyRootFilesystem !== true) {
      problems.push(`${c.name}: readOnlyRootFilesystem is not true`);
    }
    if (JSON.stringify(sc.capabilities?.drop) !== '["ALL"]') {
      problems.push(`${c.name}: capabilities do not drop ALL`);
    }
    if (sc.runAsUser !== undefined) problems.push(`${c.name}: runAsUser is set`);
    const r = c.resources ?? {};
    // docs/performance.md: peak RSS 83 MB (1 GiB layer); headroom for concurrency and Deno.
    const request = r.requests?.memory ? bytesOf(r.requests.memory) : 0;
    const limit = r.limits?.memory ? bytesOf(r.limits.memory) : 0;
    if (!(request >= 83e6)) problems.push(`${c.name}: memory request below the measured 83 MB`);
    if (!(limit >= 2 * 83e6)) problems.push(`${c.name}: memory limit below 2x the measured 83 MB`);
    if (!r.requests?.cpu || !r.limits?.cpu) problems.push(`${c.name}: cpu request/limit missing`);
  }
  return problems;
}

/** Where the pods mount the cluster's trusted CA bundle (the config's caFile). */
const TRUSTED_CA_FILE = "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem";

/**
 * Every caFile of the config is a file the pods get from a ConfigMap that OpenShift fills with the
 * cluster's trusted CA bundle (label config.openshift.io/inject-trusted-cabundle, key
 * ca-bundle.crt); [] when so.
 */
export function trustedCaProblems(docs: Map<string, Doc>): string[] {
  const problems: string[] = [];
  const config = parse(one(docs, "ConfigMap", "bananna-bot-config").data["config.yaml"]) as Doc;
  const caFiles = [
    ...Object.values(config.registries ?? {}),
    ...Object.values(config.sources ?? {}),
  ]
    .map((r) => (r as Doc).caFile).filter((f): f is string => typeof f === "string");
  if (caFiles.length === 0) problems.push("no registry of the config has a caFile");
  for (const { file, pod } of podSpecs(docs)) {
    const volumes = new Map<string, Doc>((pod.volumes ?? []).map((v: Doc) => [v.name, v]));
    for (const container of pod.containers ?? []) {
      for (const caFile of caFiles) {
        const dir = caFile.replace(/\/[^/]+$/, "");
        const mount = (container.volumeMounts ?? []).find((m: Doc) => m.mountPath === dir);
        const source = mount && volumes.get(mount.name)?.configMap;
        const item = (source?.items ?? []).find((i: Doc) => `${dir}/${i.path}` === caFile);
        const map = source &&
          [...docs.values()].find((d) =>
            d.kind === "ConfigMap" && d.metadata?.name === source.name
          );
        if (!item || item.key !== "ca-bundle.crt" || mount.readOnly !== true) {
          problems.push(
            `${file}: ${caFile} is not the ca-bundle.crt of a read-only ConfigMap mount`,
          );
        } else if (
          map?.metadata?.labels?.["config.openshift.io/inject-trusted-cabundle"] !== "true"
        ) {
          problems.push(
            `${file}: ConfigMap ${source.name} is not injected with the trusted CA bundle`,
          );
        }
      }
    }
  }
  return problems;
}

Deno.test("caFile is the cluster's trusted CA bundle, injected into a ConfigMap the pods mount", async () => {
  const docs = await loadManifests();
  assert.deepEqual(trustedCaProblems(docs), []);
  const broken = structuredClone(docs);
  delete (broken.get("trusted-ca.yaml") as Doc).metadata.labels;
  assert.deepEqual(trustedCaProblems(broken), [
    "cronjob.yaml: ConfigMap bananna-bot-trusted-ca is not injected with the trusted CA bundle",
    "indexed-job.yaml: ConfigMap bananna-bot-trusted-ca is not injected with the trusted CA bundle",
  ]);
});

/** Expected kind and apiVersion per file. */
const EXPECTED: Record<string, [string, string]> = {
  "kustomization.yaml": ["Kustomization", "kustomize.config.k8s.io/v1beta1"],
  "cronjob.yaml": ["CronJob", "batch/v1"],
  "configmap.yaml": ["ConfigMap", "v1"],
  "trusted-ca.yaml": ["ConfigMap", "v1"],
  "secret.yaml": ["Secret", "v1"],
  "pvc.yaml": ["PersistentVolumeClaim", "v1"],
  "serviceaccount.yaml": ["ServiceAccount", "v1"],
  // the Indexed Job variant (another change adds it)
  "indexed-job.yaml": ["Job", "batch/v1"],
};

Deno.test("every manifest parses, with its expected kind and apiVersion, and the kustomization lists them", async () => {
  const docs = await loadManifests();
  for (const file of Object.keys(EXPECTED)) {
    if (file === "indexed-job.yaml") continue;
    assert.ok(docs.has(file), `deploy/openshift/${file} missing`);
  }
  for (const [file, doc] of docs) {
    assert.ok(EXPECTED[file], `unexpected file deploy/openshift/${file}`);
    assert.deepEqual([doc.kind, doc.apiVersion], EXPECTED[file], file);
    if (file !== "kustomization.yaml") assert.ok(doc.metadata?.name, `${file}: metadata.name`);
  }
  const kustomization = docs.get("kustomization.yaml") as Doc;
  const resources: string[] = kustomization.resources ?? [];
  for (const file of docs.keys()) {
    if (file === "kustomization.yaml" || file === "indexed-job.yaml") continue;
    assert.ok(resources.includes(file), `kustomization.yaml does not list ${file}`);
  }
  for (const file of resources) assert.ok(docs.has(file), `kustomization lists missing ${file}`);
  assert.deepEqual(
    kustomization.images?.map((i: Doc) => i.name),
    ["bananna-bot"],
    "the kustomization sets the image the workloads name",
  );
  for (const { file, pod } of podSpecs(docs)) {
    for (const c of pod.containers) assert.equal(c.image, "bananna-bot", `${file}: image`);
  }
});

Deno.test("the CronJob: Forbid, deadline, history, resources from the benchmarks, restricted SCC", async () => {
  const docs = await loadManifests();
  assert.deepEqual(cronJobProblems(one(docs, "CronJob")), []);
  // The check refuses each broken field (a check that cannot fail is no check).
  const broken: [string, (c: Doc) => void, string][] = [
    ["Allow", (c) => c.spec.concurrencyPolicy = "Allow", "concurrencyPolicy is not Forbid"],
    [
      "no deadline",
      (c) => delete c.spec.startingDeadlineSeconds,
      "startingDeadlineSeconds missing",
    ],
    [
      "no history",
      (c) => delete c.spec.failedJobsHistoryLimit,
      "failedJobsHistoryLimit missing",
    ],
    [
      "writable root",
      (c) =>
        c.spec.jobTemplate.spec.template.spec.containers[0].securityContext
          .readOnlyRootFilesystem = false,
      "mirror: readOnlyRootFilesystem is not true",
    ],
    [
      "escalation",
      (c) =>
        delete c.spec.jobTemplate.spec.template.spec.containers[0].securityContext
          .allowPrivilegeEscalation,
      "mirror: allowPrivilegeEscalation is not false",
    ],
    [
      "caps kept",
      (c) =>
        c.spec.jobTemplate.spec.template.spec.containers[0].securityContext.capabilities
          .drop = ["NET_RAW"],
      "mirror: capabilities do not drop ALL",
    ],
    [
      "no seccomp",
      (c) => delete c.spec.jobTemplate.spec.template.spec.securityContext.seccompProfile,
      "pod seccompProfile is not RuntimeDefault",
    ],
    [
      "root allowed",
      (c) => c.spec.jobTemplate.spec.template.spec.securityContext.runAsNonRoot = false,
      "pod runAsNonRoot is not true",
    ],
    [
      "fixed uid",
      (c) => c.spec.jobTemplate.spec.template.spec.securityContext.runAsUser = 1000,
      "pod runAsUser is set (OpenShift assigns the UID)",
    ],
    [
      "tiny limit",
      (c) => c.spec.jobTemplate.spec.template.spec.containers[0].resources.limits.memory = "96Mi",
      "mirror: memory limit below 2x the measured 83 MB",
    ],
  ];
  for (const [label, breakIt, expected] of broken) {
    const cron = structuredClone(one(docs, "CronJob"));
    breakIt(cron);
    assert.deepEqual(cronJobProblems(cron), [expected], label);
  }
});

Deno.test("every command line in the manifests and the Containerfile is accepted by the CLI", async () => {
  const docs = await loadManifests();
  const lines: [string, string[]][] = [];
  for (const { file, pod } of podSpecs(docs)) {
    for (const c of [...(pod.initContainers ?? []), ...pod.containers]) {
      // The image's ENTRYPOINT runs main.ts; a manifest only gives arguments.
      assert.equal(c.command, undefined, `${file}: ${c.name} overrides the entrypoint`);
      lines.push([`${file}: ${c.name}`, c.args ?? []]);
    }
  }
  const containerfile = await Deno.readTextFile(`${ROOT}/Containerfile`).catch(() => null);
  if (containerfile !== null) {
    const cmd = /^CMD\s+(\[.*\])\s*$/m.exec(containerfile);
    assert.ok(cmd, "Containerfile has an exec-form CMD");
    lines.push(["Containerfile CMD", JSON.parse(cmd[1])]);
  }
  assert.ok(lines.length >= 1);
  for (const [where, args] of lines) {
    const command = parseArgs(args);
    assert.ok(
      command.kind === "mirror" || command.kind === "validate",
      `${where}: ${args.join(" ")} is a ${command.kind}, not a run`,
    );
    if (command.kind === "mirror") {
      assert.equal(command.nonInteractive, true, `${where}: --non-interactive`);
    }
  }
  // The parser is strict: a misspelt flag in a manifest would be refused like this.
  assert.throws(() => parseArgs(["mirror", "--non-interactve"]), /non-interactve/);
});

Deno.test("every ${VAR} of the config comes from the Secret; mounts match the config's paths", async () => {
  const docs = await loadManifests();
  const config = one(docs, "ConfigMap", "bananna-bot-config").data["config.yaml"];
  assert.deepEqual(configVars(config), [
    "HUB_TOKEN",
    "QUAY_PASSWORD",
    "QUAY_TOKEN",
    "WEBHOOK_TOKEN",
  ]);
  // The watching sections are real (validated below), the notification's token from the Secret.
  const parsed = parse(config) as Doc;
  assert.equal(parsed.metrics.pushgateway, "http://pushgateway.monitoring.svc:9091");
  assert.deepEqual(parsed.notify.headers, { Authorization: "Bearer ${WEBHOOK_TOKEN}" });
  assert.deepEqual(configVars("a: $${NOT} ${YES}"), ["YES"]);
  assert.deepEqual(wiringProblems(docs), []);
  // Each break is seen.
  const broken: [string, (d: Map<string, Doc>) => void, string][] = [
    [
      "a key gone from the Secret",
      (d) => delete one(d, "Secret").stringData.HUB_TOKEN,
      "${HUB_TOKEN} is not a key of the Secret",
    ],
    [
      "an env entry gone",
      (d) => {
        const c = one(d, "CronJob").spec.jobTemplate.spec.template.spec.containers[0];
        c.env = c.env.filter((e: Doc) => e.name !== "QUAY_TOKEN");
      },
      "cronjob.yaml: container mirror: ${QUAY_TOKEN} does not come from the Secret",
    ],
    [
      "the notification token's env entry gone from the Indexed Job",
      (d) => {
        const c = one(d, "Job").spec.template.spec.containers[0];
        c.env = c.env.filter((e: Doc) => e.name !== "WEBHOOK_TOKEN");
      },
      "indexed-job.yaml: container mirror: ${WEBHOOK_TOKEN} does not come from the Secret",
    ],
    [
      "a new ${VAR} in the config",
      (d) => {
        const cm = one(d, "ConfigMap", "bananna-bot-config");
        cm.data["config.yaml"] = cm.data["config.yaml"].replace(
          "username: bananna-mirror",
          "username: ${HUB_USER}",
        );
      },
      "${HUB_USER} is not a key of the Secret",
    ],
    [
      "log.dir off the volume",
      (d) => {
        const cm = one(d, "ConfigMap", "bananna-bot-config");
        cm.data["config.yaml"] = cm.data["config.yaml"].replace(
          "dir: /var/lib/bananna-bot",
          "dir: /var/log/bananna-bot",
        );
      },
      "cronjob.yaml: container mirror: log.dir /var/log/bananna-bot is not the PVC's mount",
    ],
    [
      "--config elsewhere",
      (d) => {
        const c = one(d, "CronJob").spec.jobTemplate.spec.template.spec.containers[0];
        c.args = c.args.map((a: string) => a.replace("config.yaml", "bananna.yaml"));
      },
      "cronjob.yaml: container mirror: --config /etc/bananna-bot/bananna.yaml is not the ConfigMap's config.yaml",
    ],
  ];
  for (const [label, breakIt, expected] of broken) {
    const copy = new Map([...docs].map(([k, v]) => [k, structuredClone(v)]));
    breakIt(copy);
    const problems = wiringProblems(copy);
    assert.ok(problems.includes(expected), `${label}: ${JSON.stringify(problems)}`);
  }
});

Deno.test("the ConfigMap's config passes validate with the variables set, and not with the Secret's placeholders", async () => {
  const docs = await loadManifests();
  const secret = one(docs, "Secret").stringData as Record<string, string>;
  const config = parse(one(docs, "ConfigMap", "bananna-bot-config").data["config.yaml"]) as Doc;
  const dir = await Deno.makeTempDir({ prefix: "bb-manifests-" });
  try {
    // The changes: log.dir, so the check writes its probe here, not in /var/lib on this host, and
    // the caFile the pod gets from the trusted-CA ConfigMap, here a CA made for the test.
    assert.equal(config.log.dir, "/var/lib/bananna-bot");
    config.log.dir = `${dir}/data`;
    assert.equal(config.registries.quay.caFile, TRUSTED_CA_FILE);
    config.registries.quay.caFile = (await makeCertificates(`${dir}/ca`)).ca;
    await Deno.writeTextFile(`${dir}/config.yaml`, stringify(config));
    const filled = Object.fromEntries(Object.keys(secret).map((k) => [k, `test-${k}-0123`]));
    const ok = await runCli(["validate", "--config", `${dir}/config.yaml`], {
      env: filled,
      cwd: dir,
    });
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    const placeholders = await runCli(["validate", "--config", `${dir}/config.yaml`], {
      env: secret,
      cwd: dir,
    });
    assert.equal(placeholders.code, 2, placeholders.stdout + placeholders.stderr);
    const out = placeholders.stdout + placeholders.stderr;
    assert.match(out, /registries\.quay\.apiToken: placeholder left in/);
    assert.match(out, /registries\.quay\.password: placeholder left in/);
    assert.doesNotMatch(out, /CHANGE_ME/);
    const missing = await runCli(["validate", "--config", `${dir}/config.yaml`], {
      env: { ...filled, HUB_TOKEN: "" },
      cwd: dir,
    });
    assert.equal(missing.code, 2, missing.stdout + missing.stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Problems with the Containerfile's text (checked without docker); [] when right. */
export function containerfileProblems(text: string, mirrorTask: string): string[] {
  const problems: string[] = [];
  const base = /^ARG BASE=(\S+)$/m.exec(text)?.[1];
  if (base !== `docker.io/denoland/deno:debian-${Deno.version.deno}`) {
    problems.push(`ARG BASE ${base} is not the upstream image of Deno ${Deno.version.deno}`);
  }
  if (!/^FROM \$\{BASE\}$/m.test(text)) problems.push("FROM does not use ${BASE}");
  const entry = /^ENTRYPOINT (\[.*\])$/m.exec(text);
  const argv: string[] = entry ? JSON.parse(entry[1]) : [];
  const flags = (list: string[]) => list.filter((a) => /^(--allow|-A$|--v8-flags)/.test(a));
  if (JSON.stringify(flags(argv)) !== JSON.stringify(flags(mirrorTask.split(/\s+/)))) {
    problems.push(`ENTRYPOINT flags ${flags(argv).join(" ")} are not deno task mirror's`);
  }
  if (!argv.includes("--cached-only") || !argv.includes("--frozen")) {
    problems.push("ENTRYPOINT may fetch code at run time (--frozen --cached-only)");
  }
  for (const env of ["DENO_DIR=", "DENO_NO_UPDATE_CHECK=1", "HOME=/tmp", "DOCKER_CONFIG="]) {
    if (!text.includes(env)) problems.push(`ENV ${env} missing`);
  }
  if (!/deno install --frozen/.test(text)) problems.push("no deno install --frozen");
  if (!/chmod -R g=u [^\n]*\/var\/lib\/bananna-bot/.test(text)) {
    problems.push("/var/lib/bananna-bot is not group-writable (chmod g=u)");
  }
  const user = /^USER (\S+)$/m.exec(text)?.[1];
  if (!user || !/^[1-9]\d*$/.test(user)) {
    problems.push(`USER ${user} is not a numeric non-root UID`);
  }
  return problems;
}

Deno.test("the Containerfile (read as text): upstream base, deno task mirror's permissions, offline, group-0 dirs; .dockerignore", async () => {
  const text = await Deno.readTextFile(`${ROOT}/Containerfile`);
  const mirrorTask = JSON.parse(await Deno.readTextFile(`${ROOT}/deno.json`)).tasks.mirror;
  assert.deepEqual(containerfileProblems(text, mirrorTask), []);
  const broken: [string, string, string][] = [
    ["-A", text.replace('"--allow-net", ', '"-A", '), "ENTRYPOINT flags"],
    ["no --cached-only", text.replace('"--cached-only", ', ""), "may fetch code"],
    ["other base", text.replace("debian-2.9.6", "debian-2.1.0"), "ARG BASE"],
    ["no g=u", text.replace("chmod -R g=u", "chmod -R u=rwx"), "group-writable"],
    ["root", text.replace(/^USER .*$/m, "USER root"), "numeric non-root"],
    ["HOME", text.replace("HOME=/tmp", "LANG=C"), "ENV HOME=/tmp missing"],
  ];
  for (const [label, changed, expected] of broken) {
    assert.notEqual(changed, text, `${label}: the break did not apply`);
    const problems = containerfileProblems(changed, mirrorTask);
    assert.ok(problems.some((p) => p.includes(expected)), `${label}: ${JSON.stringify(problems)}`);
  }
  const ignore = (await Deno.readTextFile(`${ROOT}/.dockerignore`)).split("\n").map((l) =>
    l.trim()
  );
  for (const kept of [".git", "logs/", "node_modules/"]) {
    assert.ok(ignore.includes(kept), `.dockerignore does not keep ${kept} out`);
  }
  assert.ok(!ignore.some((l) => l.startsWith(".deno-dir")), ".deno-dir must reach the build");
});

/** Render a kustomization folder with `kubectl kustomize` (offline). */
async function kustomize(dir: string): Promise<{ code: number; docs: Doc[]; stderr: string }> {
  const out = await new Deno.Command("kubectl", {
    args: ["kustomize", dir],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  const docs = out.code === 0
    ? text.split(/^---$/m).map((part) => parse(part) as Doc).filter(Boolean)
    : [];
  return { code: out.code, docs, stderr: new TextDecoder().decode(out.stderr) };
}

const kubectl = which("kubectl");

Deno.test({
  name: `kubectl kustomize renders deploy/openshift: namespace, image, every resource${
    kubectl ? "" : " (ignored: kubectl is not installed)"
  }`,
  ignore: !kubectl,
  async fn() {
    const rendered = await kustomize(DIR);
    assert.equal(rendered.code, 0, rendered.stderr);
    assert.deepEqual(rendered.docs.map((d) => d.kind).sort(), [
      "ConfigMap",
      "ConfigMap",
      "CronJob",
      "PersistentVolumeClaim",
      "Secret",
      "ServiceAccount",
    ]);
    for (const doc of rendered.docs) {
      assert.equal(doc.metadata.namespace, "bananna-bot", doc.kind);
      assert.equal(doc.metadata.labels?.["app.kubernetes.io/name"], "bananna-bot", doc.kind);
    }
    const cron = rendered.docs.find((d) => d.kind === "CronJob") as Doc;
    assert.equal(
      cron.spec.jobTemplate.spec.template.spec.containers[0].image,
      "image-registry.openshift-image-registry.svc:5000/bananna-bot/bananna-bot:0.1.0",
    );
    // A kustomization naming a file that is not there does not render.
    const copy = await Deno.makeTempDir({ prefix: "bb-kustomize-" });
    try {
      for await (const entry of Deno.readDir(DIR)) {
        if (entry.isFile) await Deno.copyFile(`${DIR}/${entry.name}`, `${copy}/${entry.name}`);
      }
      await Deno.remove(`${copy}/pvc.yaml`);
      const broken = await kustomize(copy);
      assert.notEqual(broken.code, 0);
      assert.match(broken.stderr, /pvc\.yaml/);
    } finally {
      await Deno.remove(copy, { recursive: true });
    }
  },
});

/**
 * Deno keeps V8's code cache of each module for one set of V8 flags: a run with other flags than
 * the previous one compiles every module again (importing the mirror's modules took about 100 ms
 * instead of 50 after a run with other flags). So `validate` and `report`, which do not need the
 * flags, carry them too: `deno task validate` then `deno task mirror` share one code cache.
 */
Deno.test("deno.json: every task that runs main.ts, and compile, has deno task mirror's V8 flags", async () => {
  const tasks = JSON.parse(await Deno.readTextFile(`${ROOT}/deno.json`)).tasks as Record<
    string,
    string
  >;
  const v8 = (task: string) => task.split(/\s+/).filter((a) => a.startsWith("--v8-flags="));
  const shipped = shippedV8Flags();
  assert.equal(shipped.length, 1, "deno task mirror has no --v8-flags");
  const runsMain = Object.keys(tasks).filter((name) =>
    /^deno run\s.*\smain\.ts(\s|$)/.test(tasks[name])
  );
  assert.deepEqual(runsMain.sort(), ["export", "import", "mirror", "report", "validate"]);
  for (const name of [...runsMain, "compile"]) {
    assert.deepEqual(v8(tasks[name]), shipped, `deno task ${name}`);
  }
});
