import assert from "node:assert/strict";
import { CODES, LEVELS } from "../../lib/log/codes.ts";

Deno.test("every code has a level and belongs to a family of the catalogue", () => {
  const families =
    /^(SUCCESS|LOGIN_[A-Z_]+|IMAGE_[A-Z_]+|REPO_[A-Z_]+|DOCKER_[A-Z_]+|CONFIG_[A-Z_]+|MIRROR_[A-Z_]+)$/;
  for (const [code, { level, meaning }] of Object.entries(CODES)) {
    assert.match(code, families);
    assert.ok(LEVELS.includes(level), `${code}: ${level}`);
    assert.ok(meaning.length > 10, code);
  }
  for (
    const needed of [
      "IMAGE_ALREADY_EXISTS",
      "IMAGE_PUSHED",
      "IMAGE_TAG_DRIFT",
      "REPO_CREATED",
      "CONFIG_VALID",
      "MIRROR_COMPLETE",
    ]
  ) {
    assert.ok(Object.hasOwn(CODES, needed), needed);
  }
});
