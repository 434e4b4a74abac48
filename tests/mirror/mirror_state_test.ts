import assert from "node:assert/strict";
import { MirrorState } from "../../lib/mirror/mirror_state.ts";

Deno.test("MirrorState records proven digest pairs across runs and forgets changed ones", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const first = await MirrorState.load(dir);
    assert.equal(first.isEquivalent("q/acme/app:1", "sha256:s", "sha256:d"), false);
    first.record("q/acme/app:1", "sha256:s", "sha256:d");
    await first.save();
    const second = await MirrorState.load(dir);
    assert.equal(second.isEquivalent("q/acme/app:1", "sha256:s", "sha256:d"), true);
    assert.equal(second.isEquivalent("q/acme/app:1", "sha256:s2", "sha256:d"), false);
    assert.equal(second.isEquivalent("q/acme/app:1", "sha256:s", "sha256:d2"), false);
    const files = [...Deno.readDirSync(dir)].map((e) => e.name);
    assert.deepEqual(files, [".mirror-state.json"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("MirrorState treats a corrupt file as empty", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/.mirror-state.json`, "{not json");
    const state = await MirrorState.load(dir);
    assert.equal(state.isEquivalent("x", "a", "b"), false);
    state.record("x", "a", "b");
    await state.save();
    assert.equal((await MirrorState.load(dir)).isEquivalent("x", "a", "b"), true);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("MirrorState.save() never writes through a symbolic link planted at the file or its old temp name", async () => {
  const dir = await Deno.makeTempDir();
  const outside = await Deno.makeTempFile();
  try {
    await Deno.writeTextFile(outside, "outside\n");
    // The state file itself and the temp name the old code used (predictable: the pid).
    await Deno.symlink(outside, `${dir}/.mirror-state.json`);
    await Deno.symlink(outside, `${dir}/.mirror-state.json.tmp-${Deno.pid}`);
    const state = await MirrorState.load(dir);
    state.record("x", "a", "b");
    await state.save();
    assert.equal(await Deno.readTextFile(outside), "outside\n");
    assert.ok((await Deno.lstat(`${dir}/.mirror-state.json`)).isFile);
    assert.equal((await MirrorState.load(dir)).isEquivalent("x", "a", "b"), true);
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(outside);
  }
});
