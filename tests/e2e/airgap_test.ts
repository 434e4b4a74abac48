/**
 * `export` then `import` as subprocesses against real registries: the corpus (OCI and Docker
 * media types, multi-arch) exported to an OCI layout, the source registry stopped, imported into a
 * fresh registry with the source digests (skopeo as the oracle, also reading the layout with
 * `oci:DIR:REF`); a re-run writes nothing; bad inputs are exit 2 naming the path. The layout is
 * exported once; each import step has its own destination (seeded by direct pushes where it needs
 * tags there) and alters only its own copy of the layout.
 */
import assert from "node:assert/strict";
import { parseAllDocuments as parseAll } from "yaml";
import { createHash } from "node:crypto";
import { readExportManifest } from "../../lib/layout/export_manifest.ts";
import { pinnedDigestTag } from "../../lib/registry/reference.ts";
import {
  airgapCli,
  type Destination,
  dstEnv,
  registryConfig,
  startDestination,
  statuses,
  writes,
} from "../support/e2e_kit.ts";
import { pushTestImage, skopeoInspectRaw } from "../support/images.ts";
import { registryBinaryAvailable, startRegistry } from "../support/registry.ts";

const skip = registryBinaryAvailable() ? "" : " (ignored: docker-registry is not installed)";

async function skopeoOci(dir: string, ref: string): Promise<string> {
  const out = await new Deno.Command("skopeo", {
    args: ["inspect", "--raw", `oci:${dir}:${ref}`],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
  return "sha256:" + createHash("sha256").update(out.stdout).digest("hex");
}

Deno.test({
  name: `export to a layout, stop the source, import: same digests, skopeo reads it${skip}`,
  ignore: Boolean(skip),
  async fn(t) {
    const src = await startRegistry({ auth: "none" });
    const dir = await Deno.makeTempDir({ prefix: "bb-airgap-" });
    const out = `${dir}/export`;
    // The destination of the export's config: export writes nothing to it.
    await using exportDst = await startRegistry({ auth: "htpasswd" });
    try {
      const kinds = {
        a1: { kind: "oci", seed: 1 },
        a2: { kind: "oci-index", seed: 2 },
        web: { kind: "docker-list", seed: 3 },
        cli: { kind: "schema2", seed: 4 },
      } as const;
      const a1 = await pushTestImage(src, "team/app:1.0", kinds.a1);
      const a2 = await pushTestImage(src, "team/app:2.0", kinds.a2);
      const web = await pushTestImage(src, "tools/web:v1", kinds.web);
      const cli = await pushTestImage(src, "tools/cli:3", kinds.cli);
      const images = {
        [`${src.host}/team/app:1.0`]: { targets: ["dr"] },
        [`${src.host}/team/app:2.0`]: { targets: ["dr"] },
        [`${src.host}/tools/web:v1`]: { targets: ["dr"] },
        [`${src.host}/tools/cli:3`]: { targets: ["dr"], repository: "cli-tools" },
      };
      const exportConfig = registryConfig(exportDst, images);
      const exportEnv = dstEnv(exportDst);

      await t.step("export --dry-run plans every image and writes nothing", async () => {
        const dryOut = `${dir}/dry-export`;
        const run = await airgapCli(dir, ["export", "--to", dryOut, "--dry-run"], {
          config: exportConfig,
          env: exportEnv,
        });
        assert.equal(run.code, 0, run.stderr + run.stdout);
        assert.deepEqual(statuses(run.report), [
          `export/${src.host}/team/app:1.0 planned`,
          `export/${src.host}/team/app:2.0 planned`,
          `export/${src.host}/tools/web:v1 planned`,
          `export/${src.host}/tools/cli:3 planned`,
        ]);
        await assert.rejects(Deno.stat(dryOut), Deno.errors.NotFound);
      });

      // The layout every import step reads (read-only; the step that alters it takes a copy).
      const exported = await airgapCli(dir, ["export", "--to", out], {
        config: exportConfig,
        env: exportEnv,
      });

      await t.step(
        "export writes the layout and bananna-export.json; targets untouched",
        async () => {
          const run = exported;
          assert.equal(run.code, 0, run.stderr + run.stdout);
          assert.deepEqual(statuses(run.report), [
            `export/${src.host}/team/app:1.0 pushed`,
            `export/${src.host}/team/app:2.0 pushed`,
            `export/${src.host}/tools/web:v1 pushed`,
            `export/${src.host}/tools/cli:3 pushed`,
          ]);
          assert.deepEqual(await exportDst.accessLog(), []);
          const index = JSON.parse(await Deno.readTextFile(`${out}/index.json`));
          const byName = new Map<string, { digest: string; annotations: Record<string, string> }>(
            index.manifests.map((m: { annotations: Record<string, string>; digest: string }) => [
              m.annotations["org.opencontainers.image.ref.name"],
              m,
            ]),
          );
          assert.equal(byName.get(`${src.host}/team/app:1.0`)?.digest, a1.digest);
          assert.equal(byName.get(`${src.host}/team/app:2.0`)?.digest, a2.digest);
          assert.equal(byName.get(`${src.host}/tools/web:v1`)?.digest, web.digest);
          assert.equal(byName.get(`${src.host}/tools/cli:3`)?.digest, cli.digest);
          assert.equal(
            byName.get(`${src.host}/tools/cli:3`)?.annotations["io.bananna-bot.targets"],
            "dr",
          );
          // Docker-type entries (skopeo 1.9 does not read them by name): the bytes by digest.
          for (const digest of [web.digest, cli.digest, ...cli.layers]) {
            const bytes = await Deno.readFile(`${out}/blobs/sha256/${digest.slice(7)}`);
            assert.equal("sha256:" + createHash("sha256").update(bytes).digest("hex"), digest);
          }
          const manifest = JSON.parse(await Deno.readTextFile(`${out}/bananna-export.json`));
          assert.equal(manifest.format, "bananna-export/1");
          assert.deepEqual(
            manifest.images.map((i: { ref: string; digest: string }) => `${i.ref} ${i.digest}`),
            [
              `${src.host}/team/app:1.0 ${a1.digest}`,
              `${src.host}/team/app:2.0 ${a2.digest}`,
              `${src.host}/tools/cli:3 ${cli.digest}`,
              `${src.host}/tools/web:v1 ${web.digest}`,
            ],
          );
        },
      );

      await t.step("skopeo reads the OCI entries by their full source reference", async () => {
        assert.equal(await skopeoOci(out, `${src.host}/team/app:1.0`), a1.digest);
        assert.equal(await skopeoOci(out, `${src.host}/team/app:2.0`), a2.digest);
      });

      await src.stop();
      /** Import `layout` into `dest` with the config of the export, pointed at `dest`. */
      const importInto = (dest: Destination, layout: string, extra: string[] = []) =>
        airgapCli(dest.dir, ["import", "--from", layout, ...extra], {
          config: registryConfig(dest.reg, images),
          env: dest.env,
        });

      await t.step("import with the source stopped lands every image with its digest", async () => {
        await using dest = await startDestination();
        const dry = await importInto(dest, out, ["--dry-run"]);
        assert.equal(dry.code, 0, dry.stderr + dry.stdout);
        assert.deepEqual(statuses(dry.report), [
          "mirror/app:1.0 planned",
          "mirror/app:2.0 planned",
          "mirror/web:v1 planned",
          "mirror/cli-tools:3 planned",
        ]);
        assert.deepEqual(await writes(dest.reg), []);
        const sets = `${dest.dir}/sets.yaml`;
        const run = await importInto(dest, out, ["--openshift-mirror-sets", sets]);
        assert.equal(run.code, 0, run.stderr + run.stdout);
        const docs = parseAll(await Deno.readTextFile(sets)).map((d) =>
          (d as { toJSON(): unknown }).toJSON()
        );
        const host = dest.reg.host;
        assert.deepEqual(docs[0], {
          apiVersion: "config.openshift.io/v1",
          kind: "ImageDigestMirrorSet",
          metadata: { name: "bananna-digest-mirrors" },
          spec: {
            imageDigestMirrors: [
              { source: `${src.host}/team/app`, mirrors: [`${host}/mirror/app`] },
              { source: `${src.host}/tools/cli`, mirrors: [`${host}/mirror/cli-tools`] },
              { source: `${src.host}/tools/web`, mirrors: [`${host}/mirror/web`] },
            ],
          },
        });
        assert.deepEqual(statuses(run.report), [
          "mirror/app:1.0 pushed",
          "mirror/app:2.0 pushed",
          "mirror/web:v1 pushed",
          "mirror/cli-tools:3 pushed",
        ]);
        assert.equal((await skopeoInspectRaw(dest.reg, "mirror/app:1.0")).digest, a1.digest);
        assert.equal((await skopeoInspectRaw(dest.reg, "mirror/app:2.0")).digest, a2.digest);
        assert.equal((await skopeoInspectRaw(dest.reg, "mirror/web:v1")).digest, web.digest);
        assert.equal((await skopeoInspectRaw(dest.reg, "mirror/cli-tools:3")).digest, cli.digest);
        assert.equal((await skopeoInspectRaw(dest.reg, "mirror/app:latest")).digest, a2.digest);
      });

      await t.step("a re-run finds everything there and writes nothing", async () => {
        await using dest = await startDestination();
        // What an import leaves: the four tags and each repository's latest, pushed directly.
        for (
          const [repoTag, image, kind] of [
            ["mirror/app:1.0", a1, kinds.a1],
            ["mirror/app:2.0", a2, kinds.a2],
            ["mirror/app:latest", a2, kinds.a2],
            ["mirror/web:v1", web, kinds.web],
            ["mirror/web:latest", web, kinds.web],
            ["mirror/cli-tools:3", cli, kinds.cli],
            ["mirror/cli-tools:latest", cli, kinds.cli],
          ] as const
        ) {
          assert.equal((await pushTestImage(dest.reg, repoTag, kind)).digest, image.digest);
        }
        const before = (await writes(dest.reg)).length;
        const run = await importInto(dest, out);
        assert.equal(run.code, 0, run.stderr + run.stdout);
        assert.deepEqual(statuses(run.report), [
          "mirror/app:1.0 exists",
          "mirror/app:2.0 exists",
          "mirror/web:v1 exists",
          "mirror/cli-tools:3 exists",
        ]);
        assert.deepEqual((await writes(dest.reg)).slice(before), []);
      });

      await t.step("a checksummed file outside the layout is refused, not read", async () => {
        const manifest = JSON.parse(await Deno.readTextFile(`${out}/bananna-export.json`));
        manifest.files[0].path = "../../../../dev/zero";
        const crafted = `${dir}/crafted.json`;
        await Deno.writeTextFile(crafted, JSON.stringify(manifest));
        await assert.rejects(
          () => readExportManifest(crafted),
          /crafted\.json is not a bananna-export\/1 manifest: files\.0\.path/,
        );
      });

      await t.step(
        "a recorded target missing from the config is exit 2 naming the image",
        async () => {
          await using dest = await startDestination();
          const other = registryConfig(dest.reg, {
            [`${src.host}/team/app:1.0`]: { targets: ["elsewhere"] },
          });
          const registries = other.registries as Record<string, unknown>;
          other.registries = { elsewhere: registries.dr };
          const run = await airgapCli(dest.dir, ["import", "--from", out], {
            config: other,
            env: dest.env,
          });
          assert.equal(run.code, 2, run.stderr + run.stdout);
          assert.match(
            run.stderr,
            new RegExp(
              `${src.host}/team/app:1.0 in ${out} was exported for target\\(s\\) dr, which`,
            ),
          );
          assert.deepEqual(await writes(dest.reg), []);
        },
      );

      await t.step(
        "a changed index.json is exit 2 naming it, before anything is written",
        async () => {
          await using dest = await startDestination();
          const copy = `${dest.dir}/export`;
          await copyDir(out, copy);
          await Deno.writeTextFile(`${copy}/index.json`, "\n", { append: true });
          const run = await importInto(dest, copy);
          assert.equal(run.code, 2, run.stderr + run.stdout);
          assert.match(
            run.stderr,
            new RegExp(`${copy}/index.json has sha256 sha256:[0-9a-f]{64}, `),
          );
          assert.deepEqual(await writes(dest.reg), []);
        },
      );
    } finally {
      await src.stop().catch(() => {});
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/** Copy a layout (plain files and folders) to `to`. */
async function copyDir(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const entry of Deno.readDir(from)) {
    if (entry.isDirectory) await copyDir(`${from}/${entry.name}`, `${to}/${entry.name}`);
    else await Deno.copyFile(`${from}/${entry.name}`, `${to}/${entry.name}`);
  }
}

Deno.test("export/import: bad inputs are exit 2 naming the path, without a stack", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "bb-airgap-bad-" });
  try {
    const config = {
      registries: { dr: { url: "127.0.0.1:9", namespace: "mirror", kind: "registry" } },
      log: { dir: "./logs" },
      images: { "127.0.0.1:8/team/app:1.0": { targets: ["dr"] } },
    };
    const check = async (from: string, expected: RegExp) => {
      const run = await airgapCli(dir, ["import", "--from", from], { config });
      assert.equal(run.code, 2, run.stderr);
      assert.match(run.stderr, expected);
      assert.doesNotMatch(run.stderr, /\n\s+at /);
    };
    await t.step("--from missing", () => check(`${dir}/nowhere`, /nowhere does not exist/));
    await Deno.mkdir(`${dir}/empty`);
    await t.step(
      "--from not a layout",
      () => check(`${dir}/empty`, /empty is not an OCI image layout/),
    );
    await Deno.mkdir(`${dir}/garbage/blobs/sha256`, { recursive: true });
    await Deno.writeTextFile(`${dir}/garbage/oci-layout`, '{"imageLayoutVersion":"1.0.0"}');
    await Deno.writeTextFile(`${dir}/garbage/index.json`, '{"schemaVersion":2,"manifests":[]}');
    await t.step(
      "a layout without bananna-export.json (an export not complete)",
      () =>
        check(`${dir}/garbage`, /garbage has no bananna-export\.json: the export is not complete/),
    );
    await Deno.writeTextFile(`${dir}/garbage/bananna-export.json`, "{not json");
    await t.step(
      "bananna-export.json garbage",
      () => check(`${dir}/garbage`, /garbage\/bananna-export\.json is not JSON/),
    );
    await Deno.writeTextFile(`${dir}/garbage/bananna-export.json`, '{"format":"x"}');
    await t.step(
      "bananna-export.json of another format",
      () =>
        check(
          `${dir}/garbage`,
          /garbage\/bananna-export\.json is not a bananna-export\/1 manifest/,
        ),
    );
    await t.step("--part-size that is no size", async () => {
      const run = await airgapCli(
        dir,
        ["export", "--to", `${dir}/out`, "--part-size", "4 parsecs"],
        {
          config,
        },
      );
      assert.equal(run.code, 2, run.stderr);
      assert.match(run.stderr, /4 parsecs/);
      await assert.rejects(Deno.stat(`${dir}/out`), Deno.errors.NotFound);
    });
    await t.step("--since garbage", async () => {
      const run = await airgapCli(
        dir,
        ["export", "--to", `${dir}/out`, "--since", `${dir}/garbage/bananna-export.json`],
        { config },
      );
      assert.equal(run.code, 2, run.stderr);
      assert.match(run.stderr, /garbage\/bananna-export\.json is not a bananna-export\/1/);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name:
    `export/import of a repositories entry (the tag rule on both sides) and a digest-pinned image${skip}`,
  ignore: Boolean(skip),
  async fn() {
    const src = await startRegistry({ auth: "none" });
    await using dst = await startRegistry({ auth: "htpasswd" });
    const dir = await Deno.makeTempDir({ prefix: "bb-airgap-repos-" });
    const env = { DST_PASSWORD: dst.password ?? "" };
    const out = `${dir}/export`;
    try {
      await pushTestImage(src, "team/rel:1.0", { kind: "oci", seed: 21 });
      const r11 = await pushTestImage(src, "team/rel:1.1", { kind: "schema2", seed: 22 });
      const r20 = await pushTestImage(src, "team/rel:2.0", { kind: "oci-index", seed: 23 });
      const pin = await pushTestImage(src, "tools/pin:moving", { kind: "docker-list", seed: 24 });
      const config = registryConfig(dst, {
        [`${src.host}/tools/pin@${pin.digest}`]: { targets: ["dr"] },
      }, {
        repositories: { [`${src.host}/team/rel`]: { targets: ["dr"], tags: { newest: 2 } } },
      });
      const exported = await airgapCli(dir, ["export", "--to", out], { config, env });
      assert.equal(exported.code, 0, exported.stderr + exported.stdout);
      assert.deepEqual(statuses(exported.report), [
        // Written under the pinned tag, but the layout names it by digest (next assertion).
        `export/${src.host}/tools/pin:${pinnedDigestTag(pin.digest)} pushed`,
        `export/${src.host}/team/rel:2.0 pushed`,
        `export/${src.host}/team/rel:1.1 pushed`,
      ]);
      const index = JSON.parse(await Deno.readTextFile(`${out}/index.json`));
      assert.ok(
        index.manifests.some((m: { digest: string; annotations: Record<string, string> }) =>
          m.digest === pin.digest &&
          m.annotations["org.opencontainers.image.ref.name"] ===
            `${src.host}/tools/pin@${pin.digest}`
        ),
      );
      await src.stop();
      const run = await airgapCli(dir, ["import", "--from", out], { config, env });
      assert.equal(run.code, 0, run.stderr + run.stdout);
      assert.deepEqual(statuses(run.report), [
        `mirror/pin:${pinnedDigestTag(pin.digest)} pushed`,
        "mirror/rel:2.0 pushed",
        "mirror/rel:1.1 pushed",
      ]);
      assert.equal(
        (await skopeoInspectRaw(dst, `mirror/pin:${pinnedDigestTag(pin.digest)}`)).digest,
        pin.digest,
      );
      assert.equal((await skopeoInspectRaw(dst, "mirror/rel:1.1")).digest, r11.digest);
      assert.equal((await skopeoInspectRaw(dst, "mirror/rel:latest")).digest, r20.digest);
    } finally {
      await src.stop().catch(() => {});
      await Deno.remove(dir, { recursive: true });
    }
  },
});
