import assert from "node:assert/strict";
import { SupplyChainState } from "../../lib/mirror/supply_chain_state.ts";

const HOUR = 3600 * 1000;

/** A valid sha256 digest named `name` (hex of its letters, zero-padded): the memo checks digests. */
function D(name: string): string {
  return "sha256:" + [...name].map((c) => c.charCodeAt(0).toString(16)).join("").padEnd(64, "0");
}
const T0 = Date.UTC(2026, 0, 10, 12, 0, 0);

Deno.test("SupplyChainState: a tag HEADed less than 24 h ago at the same digest is in step", async () => {
  const dir = await Deno.makeTempDir();
  try {
    let now = T0;
    const first = await SupplyChainState.load(dir, { now: () => now });
    assert.equal(first.inStep("d/m/app", "sha256-a.sig", D("s")), false);
    first.recordInStep("d/m/app", "sha256-a.sig", D("s"));
    first.recordInStep("d/m/app", "sha256-b.sig", D("t"));
    first.forget("d/m/app", "sha256-b.sig");
    first.recordParts(D("i"), [{ digest: D("c1") }, {
      digest: D("r"),
      artifactType: "x",
    }]);
    await first.save();
    now = T0 + 23 * HOUR;
    const second = await SupplyChainState.load(dir, { now: () => now });
    assert.equal(second.inStep("d/m/app", "sha256-a.sig", D("s")), true);
    assert.equal(second.inStep("d/m/app", "sha256-a.sig", D("other")), false);
    assert.equal(second.inStep("d/other/app", "sha256-a.sig", D("s")), false);
    assert.equal(second.inStep("d/m/app", "sha256-b.sig", D("t")), false, "forgotten");
    assert.deepEqual(second.parts(D("i")), [
      { digest: D("c1") },
      { digest: D("r"), artifactType: "x" },
    ]);
    now = T0 + 24 * HOUR;
    assert.equal(second.inStep("d/m/app", "sha256-a.sig", D("s")), false, "24 h old");
    now = T0 - HOUR;
    assert.equal(second.inStep("d/m/app", "sha256-a.sig", D("s")), false, "from the future");
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), [".supply-chain-state.json"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("SupplyChainState: save drops tag entries of 24 h and parts unused for 30 days", async () => {
  const dir = await Deno.makeTempDir();
  try {
    let now = T0;
    const state = await SupplyChainState.load(dir, { now: () => now });
    state.recordInStep("d/m/app", "old.sig", D("o"));
    state.recordParts(D("old"), []);
    state.recordParts(D("used"), [{ digest: D("c") }]);
    now = T0 + 24 * HOUR;
    state.recordInStep("d/m/app", "new.sig", D("n"));
    now = T0 + 29 * 24 * HOUR;
    assert.deepEqual(state.parts(D("used")), [{ digest: D("c") }]);
    now = T0 + 30 * 24 * HOUR;
    await state.save();
    const file = JSON.parse(await Deno.readTextFile(`${dir}/.supply-chain-state.json`));
    assert.deepEqual(Object.keys(file.parts), [D("used")]);
    assert.deepEqual(file.tags, {});
    now = T0 + 24 * HOUR;
    const saved = await SupplyChainState.load(dir, { now: () => now });
    assert.equal(saved.parts(D("old")), undefined);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("SupplyChainState: a corrupt file or corrupt entries are ignored", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/.supply-chain-state.json`;
    await Deno.writeTextFile(path, "{not json");
    const empty = await SupplyChainState.load(dir, { now: () => T0 });
    assert.equal(empty.parts(D("i")), undefined);
    await Deno.writeTextFile(
      path,
      JSON.stringify({
        version: 1,
        parts: {
          [D("bad")]: { parts: [{ digest: 1 }], usedAt: T0 },
          [D("nouse")]: { parts: [] },
          [D("good")]: { parts: [{ digest: D("c") }], usedAt: T0 },
          // Digests go into registry URLs: one that could steer a path is dropped.
          [D("steer")]: { parts: [{ digest: "a:b/../../other/repo/manifests/v1" }], usedAt: T0 },
          "sha256:../../x": { parts: [], usedAt: T0 },
        },
        tags: {
          "d/m/app:a.sig": { digest: D("s"), verifiedAt: "yesterday" },
          "d/m/app:b.sig": { digest: D("t"), verifiedAt: T0 },
          "d/m/app:c.sig": { digest: "sha256:../../x", verifiedAt: T0 },
        },
      }),
    );
    const state = await SupplyChainState.load(dir, { now: () => T0 + HOUR });
    assert.equal(state.parts(D("bad")), undefined);
    assert.equal(state.parts(D("nouse")), undefined);
    assert.deepEqual(state.parts(D("good")), [{ digest: D("c") }]);
    assert.equal(state.parts(D("steer")), undefined);
    assert.equal(state.parts("sha256:../../x"), undefined);
    assert.equal(state.inStep("d/m/app", "c.sig", "sha256:../../x"), false);
    assert.equal(state.inStep("d/m/app", "a.sig", D("s")), false);
    assert.equal(state.inStep("d/m/app", "b.sig", D("t")), true);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
