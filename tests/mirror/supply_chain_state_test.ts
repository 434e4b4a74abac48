import assert from "node:assert/strict";
import { SupplyChainState } from "../../lib/mirror/supply_chain_state.ts";

const HOUR = 3600 * 1000;
const T0 = Date.UTC(2026, 0, 10, 12, 0, 0);

Deno.test("SupplyChainState: a tag HEADed less than 24 h ago at the same digest is in step", async () => {
  const dir = await Deno.makeTempDir();
  try {
    let now = T0;
    const first = await SupplyChainState.load(dir, { now: () => now });
    assert.equal(first.inStep("d/m/app", "sha256-a.sig", "sha256:s"), false);
    first.recordInStep("d/m/app", "sha256-a.sig", "sha256:s");
    first.recordInStep("d/m/app", "sha256-b.sig", "sha256:t");
    first.forget("d/m/app", "sha256-b.sig");
    first.recordParts("sha256:i", [{ digest: "sha256:c1" }, {
      digest: "sha256:r",
      artifactType: "x",
    }]);
    await first.save();
    now = T0 + 23 * HOUR;
    const second = await SupplyChainState.load(dir, { now: () => now });
    assert.equal(second.inStep("d/m/app", "sha256-a.sig", "sha256:s"), true);
    assert.equal(second.inStep("d/m/app", "sha256-a.sig", "sha256:other"), false);
    assert.equal(second.inStep("d/other/app", "sha256-a.sig", "sha256:s"), false);
    assert.equal(second.inStep("d/m/app", "sha256-b.sig", "sha256:t"), false, "forgotten");
    assert.deepEqual(second.parts("sha256:i"), [
      { digest: "sha256:c1" },
      { digest: "sha256:r", artifactType: "x" },
    ]);
    now = T0 + 24 * HOUR;
    assert.equal(second.inStep("d/m/app", "sha256-a.sig", "sha256:s"), false, "24 h old");
    now = T0 - HOUR;
    assert.equal(second.inStep("d/m/app", "sha256-a.sig", "sha256:s"), false, "from the future");
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
    state.recordInStep("d/m/app", "old.sig", "sha256:o");
    state.recordParts("sha256:old", []);
    state.recordParts("sha256:used", [{ digest: "sha256:c" }]);
    now = T0 + 24 * HOUR;
    state.recordInStep("d/m/app", "new.sig", "sha256:n");
    now = T0 + 29 * 24 * HOUR;
    assert.deepEqual(state.parts("sha256:used"), [{ digest: "sha256:c" }]);
    now = T0 + 30 * 24 * HOUR;
    await state.save();
    const file = JSON.parse(await Deno.readTextFile(`${dir}/.supply-chain-state.json`));
    assert.deepEqual(Object.keys(file.parts), ["sha256:used"]);
    assert.deepEqual(file.tags, {});
    now = T0 + 24 * HOUR;
    const saved = await SupplyChainState.load(dir, { now: () => now });
    assert.equal(saved.parts("sha256:old"), undefined);
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
    assert.equal(empty.parts("sha256:i"), undefined);
    await Deno.writeTextFile(
      path,
      JSON.stringify({
        version: 1,
        parts: {
          "sha256:bad": { parts: [{ digest: 1 }], usedAt: T0 },
          "sha256:nouse": { parts: [] },
          "sha256:good": { parts: [{ digest: "sha256:c" }], usedAt: T0 },
        },
        tags: {
          "d/m/app:a.sig": { digest: "sha256:s", verifiedAt: "yesterday" },
          "d/m/app:b.sig": { digest: "sha256:t", verifiedAt: T0 },
        },
      }),
    );
    const state = await SupplyChainState.load(dir, { now: () => T0 + HOUR });
    assert.equal(state.parts("sha256:bad"), undefined);
    assert.equal(state.parts("sha256:nouse"), undefined);
    assert.deepEqual(state.parts("sha256:good"), [{ digest: "sha256:c" }]);
    assert.equal(state.inStep("d/m/app", "a.sig", "sha256:s"), false);
    assert.equal(state.inStep("d/m/app", "b.sig", "sha256:t"), true);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
