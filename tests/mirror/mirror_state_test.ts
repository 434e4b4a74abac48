import assert from "node:assert/strict";
import { MirrorState } from "../../lib/mirror/mirror_state.ts";
import { SUPPLY_CHAIN_STATE_FILE, SupplyChainState } from "../../lib/mirror/supply_chain_state.ts";
import { within } from "../support/bounded.ts";

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

// Before: a link to /dev/zero was read until memory ran out and a FIFO blocked the load forever.
Deno.test("MirrorState and SupplyChainState load /dev/zero, a FIFO or an oversize file as empty, at once", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "bb-state-hostile-" });
  const files = [".mirror-state.json", SUPPLY_CHAIN_STATE_FILE];
  const rows: [string, (path: string) => Promise<unknown>][] = [
    ["a link to /dev/zero", (path) => Deno.symlink("/dev/zero", path)],
    ["a FIFO", (path) => new Deno.Command("mkfifo", { args: [path] }).output()],
    ["past the 16 MiB cap", async (path) => {
      const digest = `sha256:${"a".repeat(64)}`;
      const pad = "x".repeat(17 * 1024 * 1024);
      await Deno.writeTextFile(
        path,
        JSON.stringify({
          equivalent: { x: "a|b", pad },
          tags: { "x:t": { digest, verifiedAt: Date.now() } },
          pad,
        }),
      );
    }],
  ];
  try {
    for (const [name, make] of rows) {
      await t.step(name, () =>
        within(10_000, name, async () => {
          for (const f of files) await Deno.remove(`${dir}/${f}`).catch(() => {});
          for (const f of files) await make(`${dir}/${f}`);
          const mirror = await MirrorState.load(dir);
          assert.equal(mirror.isEquivalent("x", "a", "b"), false);
          const chain = await SupplyChainState.load(dir);
          assert.equal(chain.inStep("x", "t", `sha256:${"a".repeat(64)}`), false);
        }));
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
