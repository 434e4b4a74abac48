/**
 * The engine a new user gets: `registry` by default (no daemon needed, as in the container image
 * and on OpenShift); with `engine: docker` and no daemon answering, `validate` warns and a dry run
 * fails early with DOCKER_NOT_AVAILABLE instead of predicting pushes it cannot make.
 */
import assert from "node:assert/strict";
import { parse } from "yaml";
import { ROOT, runCli } from "../support/cli.ts";

/** A config with no engine key; `operation` is appended when given. */
function config(dir: string, operation = ""): string {
  return [
    "registries:",
    "  dr: { url: 'http://127.0.0.1:9', namespace: m, kind: registry }",
    `log: { dir: '${dir}/logs' }`,
    ...(operation ? [`operation: ${operation}`] : []),
    "images:",
    "  '127.0.0.1:9/a/b:1': { targets: [dr] }",
  ].join("\n");
}

async function inTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "bb-engine-" });
  try {
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("without an engine key, validate says engine registry", async () => {
  await inTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/c.yaml`, config(dir));
    const run = await runCli(["validate", "--config", `${dir}/c.yaml`], { cwd: dir });
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /engine registry,/);
    assert.doesNotMatch(run.stderr, /docker/);
  });
});

Deno.test("engine docker with no daemon: validate warns, exit 0", async () => {
  await inTempDir(async (dir) => {
    await Deno.writeTextFile(
      `${dir}/c.yaml`,
      config(dir, "{ engine: docker, platform: linux/amd64 }"),
    );
    const run = await runCli(["validate", "--config", `${dir}/c.yaml`], {
      cwd: dir,
      env: { DOCKER_HOST: `unix://${dir}/no-docker.sock` },
    });
    assert.equal(run.code, 0, run.stderr);
    assert.match(
      run.stderr,
      /warning: operation\.engine: engine docker, but a run here would fail \[DOCKER_NOT_AVAILABLE\]/,
    );
    assert.match(run.stderr, /engine: registry/, "says how to do without a daemon");
  });
});

Deno.test("engine docker with no daemon: --dry-run fails early, exit 1, DOCKER_NOT_AVAILABLE", async () => {
  await inTempDir(async (dir) => {
    await Deno.writeTextFile(
      `${dir}/c.yaml`,
      config(dir, "{ engine: docker, platform: linux/amd64 }"),
    );
    const run = await runCli(
      ["mirror", "--config", `${dir}/c.yaml`, "--dry-run", "--non-interactive"],
      { cwd: dir, env: { DOCKER_HOST: `unix://${dir}/no-docker.sock` } },
    );
    assert.equal(run.code, 1, run.stdout + run.stderr);
    assert.match(run.stdout + run.stderr, /DOCKER_NOT_AVAILABLE/);
    assert.match(run.stdout + run.stderr, /\[ERROR\] \[DOCKER_NOT_AVAILABLE\]/);
    assert.doesNotMatch(run.stdout + run.stderr, /IMAGE_PLANNED|Would push:\s+[1-9]/);
  });
});

Deno.test("the shipped config.ts and the OpenShift ConfigMap use the registry engine", async () => {
  const shipped = await Deno.readTextFile(`${ROOT}/config.ts`);
  assert.match(shipped, /engine: "registry"/);
  const configMap = parse(await Deno.readTextFile(`${ROOT}/deploy/openshift/configmap.yaml`)) as {
    data: Record<string, string>;
  };
  const deployed = parse(configMap.data["config.yaml"]) as { operation?: { engine?: string } };
  assert.notEqual(deployed.operation?.engine, "docker");
});
