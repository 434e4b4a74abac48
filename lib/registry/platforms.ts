/**
 * Platforms of a multi-arch image: which children of an index a `platforms` list keeps, and the
 * rewritten index that holds only those (`platformsMode: rewrite`). Pure: bytes in, bytes out.
 *
 * Matching is docker's: one child per wanted platform. `os/arch/variant` wants that variant;
 * `os/arch` takes the child without a variant, else the first listed (`linux/arm` gets the first
 * arm child: write `linux/arm/v7` to choose). `arm64` without a variant is `arm64/v8`. Buildx
 * attestation manifests (`vnd.docker.reference.digest` naming a kept child) are kept with it.
 *
 * A rewritten index is the source's JSON with `manifests` filtered (order kept) and two
 * annotations that say what it was made from: the source index digest and the wanted platforms.
 * The plan reads them at the destination to know that the tag holds the rewrite the tool would
 * write, without reading the source again (no pull spent on a no-op run).
 *
 * @module
 */
import type { Descriptor } from "./manifest.ts";

/** Annotation of a rewritten index: the digest of the index it was made from. */
export const REWRITE_SOURCE = "io.github.bananna-bot.platforms.source";
/** Annotation of a rewritten index: the wanted platforms, comma-separated, sorted. */
export const REWRITE_PLATFORMS = "io.github.bananna-bot.platforms";

/** Buildx's annotation naming the image an attestation manifest belongs to. */
const REFERENCE_DIGEST = "vnd.docker.reference.digest";

/** What a `platforms` list keeps of an index. */
export interface PlatformPick {
  /** Children kept, in index order (images and their attestation manifests). */
  kept: Descriptor[];
  /** Platforms (`os/arch[/variant]`) of the kept image children. */
  keptPlatforms: string[];
  /** Platforms of the image children left out. */
  skippedPlatforms: string[];
  /** Wanted platforms the index does not have. */
  absent: string[];
}

/** `os/arch[/variant]` of a child, or null when it names no platform (or `unknown`). */
export function platformOf(child: Descriptor): string | null {
  const p = child.platform;
  if (!p?.os || !p.architecture || p.os === "unknown") return null;
  return [p.os, p.architecture, ...(p.variant ? [p.variant] : [])].join("/");
}

function variantOf(child: Descriptor): string | undefined {
  const p = child.platform;
  return p?.variant ?? (p?.architecture === "arm64" ? "v8" : undefined);
}

/** Pick the children of an index that `wanted` keeps (see the module doc for the rule). */
export function pickPlatforms(manifests: Descriptor[], wanted: readonly string[]): PlatformPick {
  const keep = new Set<string>();
  const absent: string[] = [];
  for (const platform of wanted) {
    const [os, architecture, variant] = platform.split("/");
    const wantVariant = variant ?? (architecture === "arm64" ? "v8" : undefined);
    const same = manifests.filter((m) =>
      platformOf(m) !== null && m.platform?.os === os && m.platform?.architecture === architecture
    );
    const child = wantVariant === undefined
      ? same.find((m) => variantOf(m) === undefined) ?? same[0]
      : same.find((m) => variantOf(m) === wantVariant);
    if (child) keep.add(child.digest);
    else absent.push(platform);
  }
  const kept = manifests.filter((m) =>
    keep.has(m.digest) ||
    (platformOf(m) === null && keep.has(annotationsOf(m)[REFERENCE_DIGEST] ?? ""))
  );
  const images = manifests.filter((m) => platformOf(m) !== null);
  return {
    kept,
    keptPlatforms: images.filter((m) => keep.has(m.digest)).map((m) => platformOf(m) as string),
    skippedPlatforms: images.filter((m) => !keep.has(m.digest)).map((m) => platformOf(m) as string),
    absent,
  };
}

function annotationsOf(child: Descriptor): Record<string, string> {
  const a = (child as { annotations?: unknown }).annotations;
  return typeof a === "object" && a !== null ? a as Record<string, string> : {};
}

/**
 * The index holding only `kept` children (a new digest): the source's JSON with `manifests`
 * filtered and the {@link REWRITE_SOURCE} / {@link REWRITE_PLATFORMS} annotations set.
 *
 * @param bytes the source index (already parsed once: a JSON object with `manifests`)
 * @param kept the children to keep
 * @param sourceDigest the source index digest
 * @param wanted the wanted platforms
 */
export function rewriteIndex(
  bytes: Uint8Array,
  kept: readonly Descriptor[],
  sourceDigest: string,
  wanted: readonly string[],
): Uint8Array {
  const body = JSON.parse(new TextDecoder().decode(bytes)) as {
    manifests: { digest: string }[];
    annotations?: Record<string, string>;
  };
  const keep = new Set(kept.map((k) => k.digest));
  body.manifests = body.manifests.filter((m) => keep.has(m.digest));
  body.annotations = {
    ...body.annotations,
    [REWRITE_SOURCE]: sourceDigest,
    [REWRITE_PLATFORMS]: [...new Set(wanted)].sort().join(","),
  };
  return new TextEncoder().encode(JSON.stringify(body));
}

/**
 * What a rewritten index says it was made from, or null when `bytes` is not one of ours (any
 * other index, an image, malformed JSON).
 */
export function rewrittenFrom(bytes: Uint8Array): { source: string; platforms: string[] } | null {
  let body: unknown;
  try {
    body = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return null;
  }
  const annotations = (body as { annotations?: unknown } | null)?.annotations;
  if (typeof annotations !== "object" || annotations === null) return null;
  const source = (annotations as Record<string, unknown>)[REWRITE_SOURCE];
  const platforms = (annotations as Record<string, unknown>)[REWRITE_PLATFORMS];
  if (typeof source !== "string" || typeof platforms !== "string") return null;
  return { source, platforms: platforms.split(",").filter(Boolean) };
}
