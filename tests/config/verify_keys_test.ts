import assert from "node:assert/strict";
import { stringify } from "yaml";
import { checkConfig, loadConfig } from "../../lib/config/load_config.ts";
import { makeKey } from "../support/cosign_fixture.ts";

Deno.test("verify keys: an entry's own wins, operation's applies to the rest, paths absolute", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bb-verify-keys-" });
  try {
    await Deno.mkdir(`${dir}/keys`);
    const a = await makeKey(`${dir}/keys`, "p256");
    const b = await makeKey(`${dir}/keys`, "p256");
    const nameA = a.publicKeyFile.split("/").pop();
    const nameB = b.publicKeyFile.split("/").pop();
    await Deno.writeTextFile(
      `${dir}/c.yaml`,
      stringify({
        registries: { dr: { url: "127.0.0.1:5999", namespace: "m", kind: "registry" } },
        log: { dir: "./logs" },
        operation: { engine: "registry", verify: { cosignKey: `keys/${nameA}` } },
        images: {
          "127.0.0.1:5998/team/own:1": {
            targets: ["dr"],
            verify: { cosignKey: [`./keys/${nameB}`, `keys/${nameA}`] },
          },
          "127.0.0.1:5998/team/inherits:1": { targets: ["dr"] },
        },
        repositories: {
          "127.0.0.1:5998/team/repo": { targets: ["dr"], verify: { cosignKey: b.publicKeyFile } },
        },
      }),
    );
    const config = await loadConfig("c.yaml", { env: {}, cwd: dir });
    assert.deepEqual(config.images.map((i) => [i.key, i.verifyKeys]), [
      ["127.0.0.1:5998/team/own:1", [`${dir}/keys/${nameB}`, `${dir}/keys/${nameA}`]],
      ["127.0.0.1:5998/team/inherits:1", [`${dir}/keys/${nameA}`]],
    ]);
    assert.deepEqual(config.repositories.map((r) => r.verifyKeys), [[b.publicKeyFile]]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("verify keys: a private key or a P-384 key is a problem at its path", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bb-verify-keys-" });
  try {
    const p384 = await makeKey(dir, "p384");
    await Deno.writeTextFile(
      `${dir}/c.yaml`,
      stringify({
        registries: { dr: { url: "127.0.0.1:5999", namespace: "m", kind: "registry" } },
        log: { dir: "./logs" },
        operation: { engine: "registry" },
        images: {
          "127.0.0.1:5998/team/app:1": {
            targets: ["dr"],
            verify: { cosignKey: [p384.privateKeyFile, p384.publicKeyFile] },
          },
        },
      }),
    );
    const check = await checkConfig("c.yaml", { env: {}, cwd: dir });
    assert.equal(check.config, undefined);
    assert.deepEqual(
      check.problems.map((p) => [p.path, p.message]),
      [
        [
          'images["127.0.0.1:5998/team/app:1"].verify.cosignKey[0]',
          `cosign key ${p384.privateKeyFile}: is a private key; give the public key (cosign.pub)`,
        ],
        [
          'images["127.0.0.1:5998/team/app:1"].verify.cosignKey[1]',
          `cosign key ${p384.publicKeyFile}: is an ECDSA key on curve secp384r1; cosign keys must be P-256`,
        ],
      ],
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
