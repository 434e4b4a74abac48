/**
 * A source repository with many tags, made cheaply: one small image pushed once, its manifest then
 * PUT under every other tag (one request each). Shared by the tag-list and tag-selection tests.
 *
 * @module
 */
import assert from "node:assert/strict";
import { pushTestImage } from "./images.ts";
import type { TestRegistry } from "./registry.ts";

/** 250 tags: releases, -alpine variants, a v prefix, prereleases, short versions, words, shas. */
export function repositoryTags(): string[] {
  const tags: string[] = [];
  for (let m = 0; m < 10; m++) for (let p = 0; p < 10; p++) tags.push(`1.${m}.${p}`);
  for (let m = 0; m < 5; m++) for (let p = 0; p < 10; p++) tags.push(`1.${m}.${p}-alpine`);
  for (let m = 0; m < 5; m++) for (let p = 0; p < 10; p++) tags.push(`v2.${m}.${p}`);
  for (let i = 1; i <= 30; i++) tags.push(`2.0.0-rc.${i}`);
  for (let m = 0; m < 10; m++) tags.push(`1.${m}`);
  tags.push("latest", "stable", "mainline", "edge", "nightly");
  for (const h of ["0a1b2c3", "4d5e6f7", "89abcde", "f012345", "6789abc"]) tags.push(`sha-${h}`);
  return tags;
}

/** Push one small image, then put its manifest under every other tag (one PUT each). */
export async function pushTags(
  reg: TestRegistry,
  repository: string,
  tags: string[],
): Promise<void> {
  const image = await pushTestImage(reg, `${repository}:${tags[0]}`, {
    kind: "oci",
    seed: 1207,
    layers: 1,
    layerSize: 64,
  });
  const base = `${reg.url}/v2/${repository}/manifests`;
  const got = await fetch(`${base}/${image.digest}`, { headers: { accept: image.mediaType } });
  const bytes = new Uint8Array(await got.arrayBuffer());
  assert.equal(got.status, 200);
  const rest = tags.slice(1);
  for (let i = 0; i < rest.length; i += 10) {
    await Promise.all(
      rest.slice(i, i + 10).map(async (tag) => {
        const put = await fetch(`${base}/${tag}`, {
          method: "PUT",
          headers: { "content-type": image.mediaType },
          body: bytes,
        });
        await put.body?.cancel();
        assert.equal(put.status, 201, `PUT ${tag}`);
      }),
    );
  }
}
