// deno-lint-ignore-file no-console
/**
 * `deno task demo`: see bananna-bot work without a registry of your own. Starts two real
 * registries on loopback (Debian's docker-registry; the destination with a password), makes a
 * multi-arch test image in the source, writes a config, and runs `bananna-bot mirror` twice: a
 * first run that copies, and a no-op re-run. Everything lives in a temp dir that is removed after.
 */
import { stringify } from "yaml";
import { runCli } from "../tests/support/cli.ts";
import { pushTestImage } from "../tests/support/images.ts";
import { registryBinaryAvailable, startRegistry } from "../tests/support/registry.ts";

if (!registryBinaryAvailable()) {
  console.error("The demo needs Debian's docker-registry: sudo apt-get install docker-registry");
  Deno.exit(1);
}
await using source = await startRegistry();
await using destination = await startRegistry({ auth: "htpasswd" });
const dir = await Deno.makeTempDir({ prefix: "bananna-demo-" });
try {
  await pushTestImage(source, "demo/app:1.0", { kind: "oci-index", seed: 1 });
  await pushTestImage(source, "demo/app:1.1", { kind: "oci-index", seed: 2 });
  await pushTestImage(source, "demo/tool:3", { kind: "schema2", seed: 3 });
  const config = {
    registries: {
      local: {
        url: destination.host,
        namespace: "mirror",
        kind: "registry",
        username: destination.username,
        password: "${DEMO_PASSWORD}",
      },
    },
    log: { dir: "./logs" },
    operation: { engine: "registry" },
    images: {
      [`${source.host}/demo/app:1.0`]: { targets: ["local"] },
      [`${source.host}/demo/app:1.1`]: { targets: ["local"] },
      [`${source.host}/demo/tool:3`]: { targets: ["local"] },
    },
  };
  await Deno.writeTextFile(`${dir}/config.yaml`, stringify(config));
  console.log(
    `Source registry      ${source.url}\nDestination registry ${destination.url} (password required)`,
  );
  console.log(`Config               ${dir}/config.yaml\n\n${stringify(config)}`);
  for (
    const title of ["First run: copies every image", "Second run: nothing new, nothing written"]
  ) {
    console.log(`\n=== ${title}\n$ bananna-bot mirror --config config.yaml`);
    const run = await runCli(["mirror", "--config", "config.yaml"], {
      cwd: dir,
      env: { DEMO_PASSWORD: destination.password ?? "" },
    });
    console.log(run.stdout + run.stderr + `(exit ${run.code})`);
  }
} finally {
  await Deno.remove(dir, { recursive: true });
}
