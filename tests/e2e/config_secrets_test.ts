/**
 * Secrets and placeholders in a config, through `main.ts` as a subprocess: every placeholder the
 * repository ships in deploy/openshift (ConfigMap + Secret) is flagged by `validate`; `$VAR`
 * without braces is a warning that names `${VAR}`; a literal password is a warning, an error under
 * `validate --strict`; `export` needs only the variables of the registries it talks to.
 */
import assert from "node:assert/strict";
import { parse, stringify } from "yaml";
import { ROOT, runCli } from "../support/cli.ts";
import { pushTestImage } from "../support/images.ts";
import { registryBinaryAvailable, startRegistry } from "../support/registry.ts";

const skip = registryBinaryAvailable() ? "" : " (ignored: docker-registry is not installed)";

async function inTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "bb-secrets-" });
  try {
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Paths (as validate prints them) of every string in `value` that contains `${name}`. */
function pathsUsing(value: unknown, name: string, path = ""): string[] {
  if (typeof value === "string") return value.includes(`\${${name}}`) ? [path] : [];
  if (Array.isArray(value)) return value.flatMap((v, i) => pathsUsing(v, name, `${path}[${i}]`));
  if (value !== null && typeof value === "object") {
    return Object.entries(value).flatMap(([k, v]) =>
      pathsUsing(
        v,
        name,
        /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(k)
          ? `${path ? `${path}.` : ""}${k}`
          : `${path}[${JSON.stringify(k)}]`,
      )
    );
  }
  return [];
}

Deno.test("validate flags every placeholder shipped in deploy/openshift's ConfigMap and Secret", async () => {
  const configMap = parse(
    await Deno.readTextFile(`${ROOT}/deploy/openshift/configmap.yaml`),
  ) as { data: Record<string, string> };
  const secret = parse(await Deno.readTextFile(`${ROOT}/deploy/openshift/secret.yaml`)) as {
    stringData: Record<string, string>;
  };
  const config = parse(configMap.data["config.yaml"]) as Record<string, unknown>;
  const shipped = Object.entries(secret.stringData).filter(([, v]) => /CHANGE_?ME/i.test(v));
  assert.ok(shipped.length >= 4, "the Secret ships its placeholders");
  await inTempDir(async (dir) => {
    // The PVC's mount does not exist here: the log goes to the temp dir, the rest as shipped.
    config.log = { ...(config.log as object), dir: `${dir}/logs` };
    await Deno.writeTextFile(`${dir}/config.yaml`, stringify(config));
    const run = await runCli(["validate", "--config", `${dir}/config.yaml`], {
      cwd: dir,
      env: secret.stringData,
    });
    assert.equal(run.code, 2, run.stdout + run.stderr);
    for (const [name] of shipped) {
      const paths = pathsUsing(config, name);
      assert.ok(paths.length > 0, `${name} is used by the config`);
      for (const path of paths) {
        assert.ok(
          run.stderr.includes(`error: ${path}: placeholder left in`),
          `${path} (from ${name}) not flagged:\n${run.stderr}`,
        );
      }
    }
    assert.doesNotMatch(run.stderr, /CHANGE_ME/, "a secret's value is never shown");
  });
});

function registryConfig(dir: string, password: string): string {
  return [
    "registries:",
    `  dr: { url: 'http://127.0.0.1:5999', namespace: m, kind: registry, username: bot, password: '${password}' }`,
    `log: { dir: '${dir}/logs' }`,
    "images:",
    "  '127.0.0.1:5999/a/b:1': { targets: [dr] }",
  ].join("\n");
}

Deno.test("password: $VAR without braces warns 'did you mean ${VAR}'; --strict makes it an error", async () => {
  await inTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/c.yaml`, registryConfig(dir, "$MIRROR_PASSWORD"));
    const run = await runCli(["validate", "--config", `${dir}/c.yaml`], {
      cwd: dir,
      env: { MIRROR_PASSWORD: "never-used-1" },
    });
    assert.equal(run.code, 0, run.stderr);
    assert.match(
      run.stderr,
      /warning: registries\.dr\.password: taken literally as the secret \(a \$ without braces is not expanded\): did you mean \$\{MIRROR_PASSWORD\}\?/,
    );
    const strict = await runCli(["validate", "--strict", "--config", `${dir}/c.yaml`], {
      cwd: dir,
    });
    assert.equal(strict.code, 2, strict.stderr);
    assert.match(strict.stderr, /error: registries\.dr\.password: taken literally/);
  });
});

Deno.test("a literal password: a warning, an error under validate --strict (never shown)", async () => {
  await inTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/c.yaml`, registryConfig(dir, "s3cret-literal-77"));
    const run = await runCli(["validate", "--config", `${dir}/c.yaml`], { cwd: dir });
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stderr, /warning: registries\.dr\.password: secret written literally/);
    const strict = await runCli(["validate", "--config", `${dir}/c.yaml`, "--strict"], {
      cwd: dir,
    });
    assert.equal(strict.code, 2, strict.stderr);
    assert.match(
      strict.stderr,
      /error: registries\.dr\.password: secret written literally in the config file: .*\(validate --strict\)/,
    );
    assert.doesNotMatch(run.stdout + run.stderr + strict.stdout + strict.stderr, /s3cret-literal/);
    const elsewhere = await runCli(["mirror", "--strict", "--config", `${dir}/c.yaml`], {
      cwd: dir,
    });
    assert.equal(elsewhere.code, 2);
    assert.match(
      elsewhere.stderr,
      /--strict is not an option of mirror \(it is an option of validate\)/,
    );
  });
});

Deno.test({
  name:
    `export needs only the variables of the registries it talks to (not the destination's)${skip}`,
  ignore: Boolean(skip),
  async fn() {
    await using src = await startRegistry({ auth: "none" });
    await pushTestImage(src, "team/app:1.0", { kind: "oci", seed: 61 });
    await inTempDir(async (dir) => {
      await Deno.writeTextFile(
        `${dir}/c.yaml`,
        stringify({
          registries: {
            dr: {
              url: "https://quay.disconnected.internal",
              namespace: "mirror",
              kind: "registry",
              username: "bot",
              password: "${DR_PASSWORD}",
            },
          },
          notify: {
            webhook: "https://hooks.disconnected.internal/bananna",
            headers: { Authorization: "Bearer ${WEBHOOK_TOKEN}" },
          },
          log: { dir: `${dir}/logs` },
          operation: { retryDelay: 0.05, maxRetries: 1 },
          images: { [`${src.host}/team/app:1.0`]: { targets: ["dr"] } },
        }),
      );
      const exported = await runCli(
        ["export", "--config", `${dir}/c.yaml`, "--to", `${dir}/out`, "--non-interactive"],
        { cwd: dir },
      );
      assert.equal(exported.code, 0, exported.stdout + exported.stderr);
      assert.ok((await Deno.stat(`${dir}/out/bananna-export.json`)).isFile);
      // A mirror talks to the destination: its password variable is needed.
      const mirror = await runCli(
        ["mirror", "--config", `${dir}/c.yaml`, "--dry-run", "--non-interactive"],
        { cwd: dir },
      );
      assert.equal(mirror.code, 2, mirror.stdout + mirror.stderr);
      assert.match(mirror.stderr, /registries\.dr\.password: environment variable DR_PASSWORD/);
    });
  },
});
