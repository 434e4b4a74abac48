/**
 * `import` when things go wrong, as subprocesses against real registries (the source registry
 * stopped after the export): a destination tag holding another image is drift and untouched; a
 * flipped byte in a layer fails only the image that needs it (IMAGE_DIGEST_MISMATCH naming the
 * file; no manifest or tag of it written) while the others land; kill -9 in the middle of an import
 * leaves no partial tag and the re-run completes without writing anything twice; and `--since`:
 * the incremental export holds only the new blobs (and the manifests of the images it lists),
 * imported alone it fails naming the export it builds on, imported after it everything lands.
 */
import assert from "node:assert/strict";
import { cliArgv } from "../support/cli.ts";
import { startHookProxy } from "../support/hook_proxy.ts";
import { startFaultProxy } from "../support/fault_proxy.ts";
import { headDigest, pushTestImage, sha256 } from "../support/images.ts";
import { quayTarget, startQuayDouble } from "../support/quay_double.ts";
import { stringify } from "yaml";
import { registryBinaryAvailable, startRegistry, type TestRegistry } from "../support/registry.ts";
import { hostname } from "../../lib/mirror/run_lock.ts";
import { airgapCli, registryConfig, statuses, writes } from "../support/e2e_kit.ts";

const skip = registryBinaryAvailable() ? "" : " (ignored: docker-registry is not installed)";

/** The completed writes of a registry: `PUT <digest or manifest path>` per 201. */
async function landed(reg: TestRegistry): Promise<string[]> {
  return (await writes(reg)).filter((line) => / 201$/.test(line) && line.startsWith("PUT"))
    .map((line) => {
      const digest = /[?&]digest=([^&\s]+)/.exec(line)?.[1];
      return digest ? `blob ${decodeURIComponent(digest)}` : line.split(" ")[1];
    });
}

Deno.test({
  name: `import: drift untouched, a corrupt blob fails only its image, naming the file${skip}`,
  ignore: Boolean(skip),
  async fn() {
    const src = await startRegistry({ auth: "none" });
    await using dst = await startRegistry({ auth: "htpasswd" });
    const dir = await Deno.makeTempDir({ prefix: "bb-airgap-faults-" });
    const env = { DST_PASSWORD: dst.password ?? "" };
    const out = `${dir}/export`;
    try {
      await pushTestImage(src, "team/app:1.0", { kind: "oci", seed: 1 });
      const cli = await pushTestImage(src, "tools/cli:3", { kind: "schema2", seed: 4 });
      const other = await pushTestImage(src, "team/other:1", { kind: "oci-index", seed: 5 });
      const config = registryConfig(dst, {
        [`${src.host}/team/app:1.0`]: { targets: ["dr"] },
        [`${src.host}/tools/cli:3`]: { targets: ["dr"] },
        [`${src.host}/team/other:1`]: { targets: ["dr"] },
      }, {
        operation: { engine: "registry", retryDelay: 0.05, maxRetries: 1, updateLatest: false },
      });
      const exported = await airgapCli(dir, ["export", "--to", out], { config, env });
      assert.equal(exported.code, 0, exported.stderr + exported.stdout);
      await src.stop();
      const squatter = await pushTestImage(dst, "mirror/app:1.0", { kind: "oci", seed: 9 });
      const layer = `${out}/blobs/sha256/${cli.layers[1].slice(7)}`;
      const bytes = await Deno.readFile(layer);
      bytes[100] ^= 0xff;
      await Deno.writeFile(layer, bytes);
      const before = (await writes(dst)).length;

      const run = await airgapCli(dir, ["import", "--from", out], { config, env });
      assert.equal(run.code, 1, run.stderr + run.stdout);
      assert.deepEqual(statuses(run.report), [
        "mirror/app:1.0 drift",
        "mirror/cli:3 failed",
        "mirror/other:1 pushed",
      ]);
      const failed = run.report?.entries[1];
      assert.equal(failed?.code, "IMAGE_DIGEST_MISMATCH");
      assert.match(failed?.error ?? "", new RegExp(`${layer}: the blob's bytes hash to sha256:`));
      assert.equal(await headDigest(dst, "mirror/app:1.0"), squatter.digest);
      assert.equal(await headDigest(dst, "mirror/cli:3"), null);
      assert.equal(await headDigest(dst, "mirror/other:1"), other.digest);
      const since = (await writes(dst)).slice(before);
      assert.deepEqual(since.filter((l) => /\/v2\/mirror\/(cli|app)\/manifests\//.test(l)), []);
      assert.deepEqual(since.filter((l) => l.includes(cli.layers[1]) && / 20[01]$/.test(l)), []);
    } finally {
      await src.stop().catch(() => {});
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    `import killed with -9 mid-blob: no partial tag; the re-run completes, nothing twice${skip}`,
  ignore: Boolean(skip),
  async fn() {
    const src = await startRegistry({ auth: "none" });
    await using dst = await startRegistry({ auth: "htpasswd" });
    const dir = await Deno.makeTempDir({ prefix: "bb-airgap-kill-" });
    const env = { DST_PASSWORD: dst.password ?? "" };
    const out = `${dir}/export`;
    let child: Deno.ChildProcess | null = null;
    let killed = false;
    await using proxy = startHookProxy(dst, async (request) => {
      if (killed || !child || !/^\/v2\/mirror\/big\/blobs\/uploads\/./.test(request.path)) return;
      if (request.method !== "PUT" && request.method !== "PATCH") return;
      killed = true;
      child.kill("SIGKILL");
      await child.status;
    });
    try {
      const app = await pushTestImage(src, "team/app:1.0", { kind: "oci", seed: 1 });
      const big = await pushTestImage(src, "team/big:1", {
        kind: "oci",
        seed: 7,
        layerSize: 4 * 1024 * 1024,
      });
      const viaProxy = { host: proxy.host, username: dst.username } as TestRegistry;
      const config = registryConfig(viaProxy, {
        [`${src.host}/team/app:1.0`]: { targets: ["dr"] },
        [`${src.host}/team/big:1`]: { targets: ["dr"] },
      }, { operation: { engine: "registry", concurrency: 1, retryDelay: 0.05, maxRetries: 1 } });
      const exported = await airgapCli(dir, ["export", "--to", out], { config, env });
      assert.equal(exported.code, 0, exported.stderr + exported.stdout);
      await src.stop();

      const [cmd, ...args] = cliArgv([
        "import",
        "--from",
        out,
        "--config",
        `${dir}/config.yaml`,
        "--non-interactive",
      ]);
      child = new Deno.Command(cmd, {
        args,
        cwd: dir,
        env: { ...env, NO_COLOR: "1", HOSTNAME: hostname() },
        stdout: "null",
        stderr: "null",
      }).spawn();
      const status = await child.status;
      assert.equal(killed, true, "the hook killed the import");
      assert.equal(status.signal, "SIGKILL");
      assert.equal(await headDigest(dst, "mirror/app:1.0"), app.digest);
      assert.equal(await headDigest(dst, "mirror/big:1"), null);

      const rerun = await airgapCli(dir, ["import", "--from", out], {
        config,
        env: { ...env, HOSTNAME: hostname() },
      });
      assert.equal(rerun.code, 0, rerun.stderr + rerun.stdout);
      assert.deepEqual(statuses(rerun.report), ["mirror/app:1.0 exists", "mirror/big:1 pushed"]);
      assert.equal(await headDigest(dst, "mirror/big:1"), big.digest);
      const all = await landed(dst);
      assert.deepEqual(all.filter((w, i) => all.indexOf(w) !== i), [], "nothing written twice");
      for (const layer of big.layers) assert.ok(all.includes(`blob ${layer}`), layer);
    } finally {
      if (child && !killed) child.kill("SIGKILL");
      await src.stop().catch(() => {});
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    `export --since holds only new blobs; alone it names its predecessor; in order all lands${skip}`,
  ignore: Boolean(skip),
  async fn() {
    const src = await startRegistry({ auth: "none" });
    await using dst = await startRegistry({ auth: "htpasswd" });
    const dir = await Deno.makeTempDir({ prefix: "bb-airgap-since-" });
    const env = { DST_PASSWORD: dst.password ?? "" };
    const images: Record<string, unknown> = {};
    const exportTo = async (name: string, since?: string) => {
      const run = await airgapCli(
        dir,
        ["export", "--to", `${dir}/${name}`, ...(since ? ["--since", since] : [])],
        { config: registryConfig(dst, images), env },
      );
      assert.equal(run.code, 0, run.stderr + run.stdout);
      const blobs = [...Deno.readDirSync(`${dir}/${name}/blobs/sha256`)].map((e) =>
        `sha256:${e.name}`
      );
      const manifest = JSON.parse(await Deno.readTextFile(`${dir}/${name}/bananna-export.json`));
      return { blobs: blobs.sort(), manifest };
    };
    try {
      const v1 = await pushTestImage(src, "team/app:1.0", { kind: "oci", seed: 1 });
      images[`${src.host}/team/app:1.0`] = { targets: ["dr"] };
      const one = await exportTo("one");

      const v2 = await pushTestImage(src, "team/app:1.1", { kind: "oci", seed: 1, label: "b" });
      images[`${src.host}/team/app:1.1`] = { targets: ["dr"] };
      const two = await exportTo("two", `${dir}/one/bananna-export.json`);
      // app:1.0's manifest again (every listed image's manifest is carried), not its blobs.
      assert.deepEqual(two.blobs, [v1.digest, v2.digest, v2.configDigest].sort());
      assert.deepEqual(two.manifest.since.map((s: { id: string }) => s.id), [one.manifest.id]);

      // The same layers in another repository are carried again: an import of the earlier
      // exports put them only into mirror/app, and a layout cannot mount across repositories.
      const base = await pushTestImage(src, "team/base:1", { kind: "oci", seed: 1, label: "c" });
      images[`${src.host}/team/base:1`] = { targets: ["dr"] };
      const three = await exportTo("three", `${dir}/two/bananna-export.json`);
      assert.deepEqual(
        three.blobs,
        [v1.digest, v2.digest, base.digest, base.configDigest, ...base.layers].sort(),
      );
      assert.deepEqual(three.manifest.since.map((s: { id: string }) => s.id), [
        one.manifest.id,
        two.manifest.id,
      ]);
      await src.stop();
      const config = registryConfig(dst, images);

      const alone = await airgapCli(dir, ["import", "--from", `${dir}/two`], { config, env });
      assert.equal(alone.code, 1, alone.stderr + alone.stdout);
      assert.deepEqual(statuses(alone.report), ["mirror/app:1.0 failed", "mirror/app:1.1 failed"]);
      for (const entry of alone.report?.entries ?? []) {
        assert.equal(entry.code, "IMAGE_PREDECESSOR_MISSING");
        assert.match(
          entry.error ?? "",
          new RegExp(`the earlier export ${one.manifest.id} .*import that`),
        );
      }
      assert.equal(await headDigest(dst, "mirror/app:1.1"), null);

      const inOrder = [];
      for (const name of ["one", "two", "three"]) {
        const run = await airgapCli(dir, ["import", "--from", `${dir}/${name}`], { config, env });
        assert.equal(run.code, 0, run.stderr + run.stdout);
        inOrder.push(statuses(run.report));
      }
      assert.deepEqual(inOrder, [
        ["mirror/app:1.0 pushed"],
        ["mirror/app:1.0 exists", "mirror/app:1.1 pushed"],
        ["mirror/app:1.0 exists", "mirror/app:1.1 exists", "mirror/base:1 pushed"],
      ]);
      assert.equal(await headDigest(dst, "mirror/app:1.0"), v1.digest);
      assert.equal(await headDigest(dst, "mirror/app:1.1"), v2.digest);
      assert.equal(await headDigest(dst, "mirror/base:1"), base.digest);
    } finally {
      await src.stop().catch(() => {});
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: `export killed with -9 mid-blob: the layout stays valid; the re-run completes it${skip}`,
  ignore: Boolean(skip),
  async fn() {
    await using src = await startRegistry({ auth: "none" });
    await using dst = await startRegistry({ auth: "htpasswd" });
    const dir = await Deno.makeTempDir({ prefix: "bb-airgap-export-kill-" });
    const out = `${dir}/export`;
    const env = { DST_PASSWORD: dst.password ?? "" };
    try {
      const app = await pushTestImage(src, "team/app:1.0", { kind: "oci", seed: 1 });
      const big = await pushTestImage(src, "team/big:1", {
        kind: "oci",
        seed: 7,
        layerSize: 4 * 1024 * 1024,
      });
      // The big layers crawl (64 KiB every 20 ms), so the kill lands mid-blob.
      await using proxy = startFaultProxy(src, [{
        method: "GET",
        path: new RegExp(`/blobs/(${big.layers.join("|")})$`),
        times: 2,
        fault: { kind: "trickle", chunkBytes: 64 * 1024, pauseMs: 20 },
      }]);
      const config = registryConfig(dst, {
        [`${proxy.host}/team/app:1.0`]: { targets: ["dr"] },
        [`${proxy.host}/team/big:1`]: { targets: ["dr"] },
      }, { operation: { engine: "registry", concurrency: 1, retryDelay: 0.05, maxRetries: 1 } });
      await Deno.writeTextFile(`${dir}/config.yaml`, stringify(config));
      const [cmd, ...args] = cliArgv([
        "export",
        "--to",
        out,
        "--config",
        `${dir}/config.yaml`,
        "--non-interactive",
      ]);
      const child = new Deno.Command(cmd, {
        args,
        cwd: dir,
        env: { ...env, NO_COLOR: "1", HOSTNAME: hostname() },
        stdout: "null",
        stderr: "null",
      }).spawn();
      const temps = () => {
        try {
          return [...Deno.readDirSync(`${out}/blobs/sha256`)].filter((e) =>
            e.name.startsWith(".tmp-")
          ).length;
        } catch {
          return 0;
        }
      };
      const deadline = Date.now() + 30_000;
      const indexed = () => {
        try {
          return Deno.statSync(`${out}/index.json`).isFile;
        } catch {
          return false;
        }
      };
      // app:1.0 complete (concurrency 1: it goes first), a big layer under way.
      while ((!indexed() || temps() === 0) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 10));
      }
      child.kill("SIGKILL");
      assert.equal((await child.status).signal, "SIGKILL");
      assert.ok(temps() >= 1, "killed while blobs were being written");
      await assert.rejects(Deno.stat(`${out}/bananna-export.json`), Deno.errors.NotFound);
      const index = JSON.parse(await Deno.readTextFile(`${out}/index.json`));
      assert.deepEqual(
        index.manifests.map((m: { digest: string }) => m.digest),
        [app.digest],
        "index.json names only what is complete",
      );

      const rerun = await airgapCli(dir, ["export", "--to", out], {
        config,
        env: { ...env, HOSTNAME: hostname() },
      });
      assert.equal(rerun.code, 0, rerun.stderr + rerun.stdout);
      assert.deepEqual(statuses(rerun.report), [
        `export/${proxy.host}/team/app:1.0 exists`,
        `export/${proxy.host}/team/big:1 pushed`,
      ]);
      assert.equal(temps(), 0);
      const manifest = JSON.parse(await Deno.readTextFile(`${out}/bananna-export.json`));
      assert.deepEqual(manifest.images.map((i: { digest: string }) => i.digest), [
        app.digest,
        big.digest,
      ]);
      const raw = await new Deno.Command("skopeo", {
        args: ["inspect", "--raw", `oci:${out}:${proxy.host}/team/big:1`],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.ok(raw.success, new TextDecoder().decode(raw.stderr));
      assert.equal(sha256(raw.stdout), big.digest);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: `import into Quay: repositories created through the REST API, source stopped${skip}`,
  ignore: Boolean(skip),
  async fn() {
    const src = await startRegistry({ auth: "none" });
    await using reg = await startRegistry({ auth: "htpasswd" });
    await using quay = startQuayDouble(reg, {
      tokens: { "tok-creator": { user: "creator", scopes: ["repo:create", "repo:write"] } },
      orgs: { acme: { admins: [], creators: ["creator"] } },
    });
    const dir = await Deno.makeTempDir({ prefix: "bb-airgap-quay-" });
    try {
      const app = await pushTestImage(src, "team/app:1.0", { kind: "oci-index", seed: 11 });
      const config = {
        registries: {
          prod: quayTarget(quay, reg),
        },
        log: { dir: "./logs" },
        operation: { engine: "registry", retryDelay: 0.02, maxRetries: 1 },
        images: { [`${src.host}/team/app:1.0`]: { targets: ["prod"], description: "The app" } },
      };
      const env = { QUAY_TOKEN: "tok-creator", QUAY_PASSWORD: reg.password ?? "" };
      const exported = await airgapCli(dir, ["export", "--to", `${dir}/out`], { config, env });
      assert.equal(exported.code, 0, exported.stderr + exported.stdout);
      assert.equal(quay.requests.length, 0, "export never contacts the targets");
      await src.stop();
      const run = await airgapCli(dir, ["import", "--from", `${dir}/out`], { config, env });
      assert.equal(run.code, 0, run.stderr + run.stdout);
      assert.deepEqual(run.report?.entries.map((e) => [e.status, e.repo]), [["pushed", "created"]]);
      assert.ok(quay.requests.includes("POST /api/v1/repository 201"), quay.requests.join());
      const created = quay.repositories().find((r) => r.name === "app");
      assert.equal(created?.description, "The app");
      assert.equal(created?.isPublic, false);
      assert.equal(await headDigest(reg, "acme/app:1.0"), app.digest);
    } finally {
      await src.stop().catch(() => {});
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    `import: a layout manifest one byte over the cap fails only its image, IMAGE_MANIFEST_TOO_LARGE naming the file${skip}`,
  ignore: Boolean(skip),
  async fn() {
    const src = await startRegistry({ auth: "none" });
    await using dst = await startRegistry({ auth: "htpasswd" });
    const dir = await Deno.makeTempDir({ prefix: "bb-airgap-cap-" });
    const env = { DST_PASSWORD: dst.password ?? "" };
    const out = `${dir}/export`;
    const cap = 4 * 1024 * 1024;
    try {
      const app = await pushTestImage(src, "team/app:1.0", { kind: "oci", seed: 1 });
      const cli = await pushTestImage(src, "tools/cli:3", { kind: "schema2", seed: 4 });
      const config = registryConfig(dst, {
        [`${src.host}/team/app:1.0`]: { targets: ["dr"] },
        [`${src.host}/tools/cli:3`]: { targets: ["dr"] },
      }, {
        operation: {
          engine: "registry",
          retryDelay: 0.05,
          maxRetries: 1,
          updateLatest: false,
          maxManifestBytes: cap,
        },
      });
      const exported = await airgapCli(dir, ["export", "--to", out], { config, env });
      assert.equal(exported.code, 0, exported.stderr + exported.stdout);
      await src.stop();

      // app's manifest, padded with an annotation to exactly cap + 1 bytes: valid JSON, its
      // index.json entry with the right digest and size, bananna-export.json's checksum updated.
      const original = JSON.parse(
        await Deno.readTextFile(`${out}/blobs/sha256/${app.digest.slice(7)}`),
      );
      const bare = JSON.stringify({ ...original, annotations: { pad: "" } });
      const padded = new TextEncoder().encode(
        JSON.stringify({ ...original, annotations: { pad: "x".repeat(cap + 1 - bare.length) } }),
      );
      assert.equal(padded.length, cap + 1);
      const digest = sha256(padded);
      const file = `${out}/blobs/sha256/${digest.slice(7)}`;
      await Deno.writeFile(file, padded);
      const index = JSON.parse(await Deno.readTextFile(`${out}/index.json`));
      const entry = index.manifests.find((m: { digest: string }) => m.digest === app.digest);
      assert.ok(entry, "app's entry in index.json");
      entry.digest = digest;
      entry.size = padded.length;
      const indexBytes = new TextEncoder().encode(JSON.stringify(index));
      await Deno.writeFile(`${out}/index.json`, indexBytes);
      const manifest = JSON.parse(await Deno.readTextFile(`${out}/bananna-export.json`));
      for (const f of manifest.files) {
        if (f.path === "index.json") {
          f.sha256 = sha256(indexBytes);
          if ("size" in f) f.size = indexBytes.length;
        }
      }
      await Deno.writeTextFile(`${out}/bananna-export.json`, JSON.stringify(manifest));

      const run = await airgapCli(dir, ["import", "--from", out], {
        config,
        env,
      });
      assert.equal(run.code, 1, run.stderr + run.stdout);
      assert.deepEqual(statuses(run.report), ["mirror/app:1.0 failed", "mirror/cli:3 pushed"]);
      const failed = run.report?.entries[0];
      assert.equal(failed?.code, "IMAGE_MANIFEST_TOO_LARGE", failed?.error ?? "");
      assert.ok(failed?.error?.includes(file), failed?.error ?? "");
      assert.equal(await headDigest(dst, "mirror/app:1.0"), null);
      assert.equal(await headDigest(dst, "mirror/cli:3"), cli.digest);
    } finally {
      await src.stop().catch(() => {});
      await Deno.remove(dir, { recursive: true });
    }
  },
});
