/**
 * OCI 1.1 referrers of a digest (shared/registry-protocols.md 8.7–8.8): the referrers API where
 * the registry serves it, else the referrers tag schema (an OCI index tagged `sha256-<hex>`), and
 * the pure pieces a copier needs to keep that fallback tag at a destination without the API.
 *
 * Support is detected by asking the endpoint (200 = supported; 404, 400, 406 = not, then the
 * fallback tag is read), never from the `OCI-Subject` header: Quay serves the API without it.
 * Nothing a registry answers is trusted: the answer must be an OCI image index (`mediaType`),
 * every entry a descriptor with a string `mediaType`, a digest of the OCI grammar, a non-negative
 * integer `size`, an optional string `artifactType` and string-valued `annotations`; anything else
 * is IMAGE_REFERRER_INVALID naming the field. Bodies are read under the client's manifest cap.
 *
 * A fallback tag holding anything but an OCI index fails (IMAGE_REFERRER_INVALID) rather than
 * reading as "no referrers", so a copier never overwrites what it could not read.
 *
 * A filter on `artifactType` is sent to the registry and applied here as well: a registry that
 * says `OCI-Filters-Applied: artifactType` filtered, one that does not (or says so wrongly) may
 * have returned everything.
 *
 * @module
 */
import { MirrorError } from "../errors.ts";
import type { Descriptor } from "../registry/manifest.ts";
import { MEDIA_TYPES } from "../registry/manifest.ts";
import { validDigest } from "../registry/reference.ts";
import type { ArtifactStore } from "../registry/image_store.ts";

/** A referrer: a manifest descriptor with the referrer's `artifactType` and annotations. */
export interface ReferrerDescriptor extends Descriptor {
  /** The manifest's `artifactType`, else its config media type; absent for an index without. */
  artifactType?: string;
  /** The manifest's annotations. */
  annotations?: Record<string, string>;
}

/** An OCI image index listing referrers (the API's answer, the fallback tag's content). */
export interface ReferrersIndex {
  schemaVersion: 2;
  mediaType: typeof MEDIA_TYPES.ociIndex;
  manifests: ReferrerDescriptor[];
  annotations?: Record<string, string>;
}

/** What {@link listReferrers} found. */
export interface ReferrersList {
  /** `api`: the registry serves the referrers API; `tag`: it does not, the fallback tag was read. */
  via: "api" | "tag";
  /** The referrers, filtered by `artifactType` when one was asked for. */
  descriptors: ReferrerDescriptor[];
  /** Via `tag`: the fallback index as stored (null when the tag is absent), for a later merge. */
  index?: ReferrersIndex | null;
  /** Via `tag`: the fallback tag's manifest digest (null when absent). */
  tagDigest?: string | null;
}

/** Options for {@link listReferrers} and {@link readReferrersApi}. */
export interface ListReferrersOptions {
  /** Only referrers of this artifact type (sent to the registry, applied here too). */
  artifactType?: string;
  signal?: AbortSignal;
  /**
   * The run's answers about the referrers API per host ({@link ReferrersApiSupport}): a host known
   * to lack it is not asked again (the fallback tag is the answer).
   */
  apiSupport?: ReferrersApiSupport;
}

/**
 * Per host, does it serve the referrers API? Learned from the host's first answer, so a run asks
 * each host once: while that first question is out, the questions about other digests of the
 * same host wait for its answer instead of asking too (a host without the API gets one request,
 * not one per image in flight). A first question that fails teaches nothing: the next one asks.
 */
export class ReferrersApiSupport {
  #known = new Map<string, boolean>();
  /** The host's first question while it is out; settles (never rejects) after `#known` is set. */
  #asking = new Map<string, Promise<void>>();

  /** What `host` answered: true (it serves the API), false, or undefined (not known yet). */
  get(host: string): boolean | undefined {
    return this.#known.get(host);
  }

  /**
   * `question` asked of `host` (null: no API), unless the host is known to have none (null
   * without asking); waits first for the host's first question while it is out.
   */
  async ask<T>(host: string, question: () => Promise<T | null>): Promise<T | null> {
    for (let asking; !this.#known.has(host) && (asking = this.#asking.get(host));) await asking;
    if (this.#known.get(host) === false) return null;
    if (this.#known.has(host)) return await question();
    const answer = question();
    this.#asking.set(
      host,
      answer.then((a) => void this.#known.set(host, a !== null), () => {})
        .finally(() => this.#asking.delete(host)),
    );
    return await answer;
  }
}

/**
 * The referrers tag schema's tag for a digest: algorithm (at most 32 characters) + `-` + encoded
 * part (at most 64), characters a tag cannot hold replaced by `-` (`sha256:ab…` -> `sha256-ab…`).
 *
 * @throws {MirrorError} IMAGE_MANIFEST_INVALID when `digest` is not a digest
 */
export function referrersTag(digest: string): string {
  if (!validDigest(digest)) {
    throw new MirrorError(
      "IMAGE_MANIFEST_INVALID",
      `digest ${JSON.stringify(String(digest).slice(0, 300))} is not a digest`,
    );
  }
  const colon = digest.indexOf(":");
  const clean = (part: string) => part.replace(/[^a-zA-Z0-9_.-]/g, "-");
  return `${clean(digest.slice(0, colon)).slice(0, 32)}-${
    clean(digest.slice(colon + 1)).slice(0, 64)
  }`;
}

/**
 * The referrers of `digest` in `repository`: through the referrers API when the registry answers
 * it (every page), else from the fallback tag `sha256-<hex>` (absent tag: no referrers).
 *
 * @param client the registry's client
 * @param repository the repository holding the subject and its referrers
 * @param digest the subject's digest
 * @param options an `artifactType` filter and an abort signal
 * @throws {MirrorError} IMAGE_REFERRER_INVALID naming the field for a malformed answer or fallback
 *   index (also a fallback tag holding something other than an OCI index); IMAGE_MANIFEST_TOO_LARGE
 *   past the cap; the client's own errors otherwise
 */
export async function listReferrers(
  client: ArtifactStore,
  repository: string,
  digest: string,
  options: ListReferrersOptions = {},
): Promise<ReferrersList> {
  const { artifactType, signal } = options;
  const descriptors = await readReferrersApi(client, repository, digest, options);
  if (descriptors !== null) {
    return { via: "api", descriptors: filterByType(descriptors, artifactType) };
  }
  const tag = referrersTag(digest);
  const stored = await client.manifestGet(repository, tag, signal);
  if (stored === null) return { via: "tag", descriptors: [], index: null, tagDigest: null };
  const index = parseReferrersIndex(stored.bytes, `${client.host}/${repository}:${tag}`);
  return {
    via: "tag",
    descriptors: filterByType(index.manifests, artifactType),
    index,
    tagDigest: stored.digest,
  };
}

/** Referrers one listing may name (all pages of an API answer together). */
const MAX_LISTED_REFERRERS = 10_000;

/**
 * The referrers of `digest` through the referrers API, each page checked as it comes and dropped
 * (only the descriptors are kept, at most {@link MAX_LISTED_REFERRERS}); null when the store has
 * no referrers API (read the fallback tag then). The one reader of the API: signature
 * verification ({@link listReferrers}) and the supply-chain copy (its source's listing and its
 * question whether the destination serves the API) take an answer alike, so an answer one of
 * them refuses (a Content-Type other than an index) the other does not take as support.
 *
 * @throws {MirrorError} IMAGE_REFERRER_INVALID naming the page and field, or for more than
 *   {@link MAX_LISTED_REFERRERS} referrers; the store's own errors (page caps, loops) otherwise
 */
export async function readReferrersApi(
  client: ArtifactStore,
  repository: string,
  digest: string,
  options: ListReferrersOptions = {},
): Promise<ReferrerDescriptor[] | null> {
  const { apiSupport, ...request } = options;
  if (apiSupport) {
    return await apiSupport.ask(
      client.host,
      () => askReferrersApi(client, repository, digest, request),
    );
  }
  return await askReferrersApi(client, repository, digest, request);
}

/** {@link readReferrersApi}'s request. */
async function askReferrersApi(
  client: ArtifactStore,
  repository: string,
  digest: string,
  request: Omit<ListReferrersOptions, "apiSupport">,
): Promise<ReferrerDescriptor[] | null> {
  const where = `${client.host}/${repository} referrers of ${digest}`;
  const descriptors: ReferrerDescriptor[] = [];
  const pages = await client.referrersGet(repository, digest, {
    ...request,
    onPage(page, i) {
      const at = i === 0 ? where : `${where} (page ${i + 1})`;
      const type = page.contentType;
      if (type !== "" && type !== MEDIA_TYPES.ociIndex && type !== "application/json") {
        throw invalid(at, `Content-Type must be ${MEDIA_TYPES.ociIndex}, not ${show(type)}`);
      }
      const listed = parseReferrersIndex(page.bytes, at).manifests;
      if (descriptors.length + listed.length > MAX_LISTED_REFERRERS) {
        throw invalid(where, `more than ${MAX_LISTED_REFERRERS} referrers listed; refused`);
      }
      for (const d of listed) descriptors.push(d);
    },
  });
  return pages === null ? null : descriptors;
}

/**
 * The descriptor a referrers list holds for a referrer manifest (what the API would answer):
 * `artifactType` = the manifest's `artifactType`, else its `config.mediaType` (absent for an index
 * without one), and the manifest's `annotations`. For writing a fallback index from what was copied.
 *
 * @param manifest the referrer's exact bytes, media type and digest (as manifestGet returns them)
 * @param where what it is, for messages
 * @throws {MirrorError} IMAGE_REFERRER_INVALID naming the field
 */
export function referrerDescriptor(
  manifest: { mediaType: string; digest: string; bytes: Uint8Array },
  where: string,
): ReferrerDescriptor {
  let body: unknown;
  try {
    body = JSON.parse(new TextDecoder().decode(manifest.bytes));
  } catch (cause) {
    throw new MirrorError("IMAGE_REFERRER_INVALID", `${where}: the manifest is not JSON`, {
      cause,
    });
  }
  if (!isObject(body)) {
    throw invalid(where, `the manifest must be a JSON object, not ${show(body)}`);
  }
  let artifactType = body.artifactType;
  if (artifactType !== undefined && typeof artifactType !== "string") {
    throw invalid(where, `artifactType must be a string, not ${show(artifactType)}`);
  }
  if (artifactType === undefined && isObject(body.config)) {
    if (typeof body.config.mediaType !== "string") {
      throw invalid(where, `config.mediaType must be a string, not ${show(body.config.mediaType)}`);
    }
    artifactType = body.config.mediaType;
  }
  const annotations = stringMap(body.annotations, where, "annotations");
  return referrer(
    {
      mediaType: manifest.mediaType,
      digest: manifest.digest,
      size: manifest.bytes.length,
      ...(artifactType !== undefined ? { artifactType } : {}),
      ...(annotations ? { annotations } : {}),
    },
    where,
    "the descriptor",
  );
}

/**
 * The `subject.digest` a referrer manifest names, or null (none, or not JSON). A referrers list
 * (an API answer or a fallback index) is written by others and proves nothing: a referrer belongs
 * to the digest its own `subject` names.
 */
export function referrerSubject(bytes: Uint8Array): string | null {
  let body: unknown;
  try {
    body = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return null;
  }
  const subject = isObject(body) ? body.subject : undefined;
  return isObject(subject) && typeof subject.digest === "string" ? subject.digest : null;
}

/**
 * Why a listed referrer is skipped (null: it is `digest`'s): absent from the store that listed
 * it, or its own `subject` names another digest.
 */
export function notReferrerOf(
  manifest: { bytes: Uint8Array } | null,
  digest: string,
): string | null {
  if (!manifest) return "listed by the source but not there; skipped";
  const subject = referrerSubject(manifest.bytes);
  return subject === digest
    ? null
    : `its subject is ${subject ?? "missing"}, not this image; skipped`;
}

/**
 * Parse and check a referrers index (an API page or the fallback tag's bytes).
 *
 * @param bytes the exact bytes
 * @param where what they are, for messages
 * @throws {MirrorError} IMAGE_REFERRER_INVALID naming the field (`manifests[1].digest`)
 */
export function parseReferrersIndex(bytes: Uint8Array, where: string): ReferrersIndex {
  let body: unknown;
  try {
    body = JSON.parse(new TextDecoder().decode(bytes));
  } catch (cause) {
    throw new MirrorError("IMAGE_REFERRER_INVALID", `${where}: the answer is not JSON`, { cause });
  }
  if (!isObject(body)) throw invalid(where, `the answer must be a JSON object, not ${show(body)}`);
  if (body.mediaType !== MEDIA_TYPES.ociIndex) {
    throw invalid(where, `mediaType must be ${MEDIA_TYPES.ociIndex}, not ${show(body.mediaType)}`);
  }
  if (body.schemaVersion !== 2) {
    throw invalid(where, `schemaVersion must be 2, not ${show(body.schemaVersion)}`);
  }
  if (!Array.isArray(body.manifests)) {
    throw invalid(where, `manifests must be an array, not ${show(body.manifests)}`);
  }
  const manifests = body.manifests.map((entry, i) => referrer(entry, where, `manifests[${i}]`));
  const annotations = stringMap(body.annotations, where, "annotations");
  return {
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.ociIndex,
    manifests,
    ...(annotations ? { annotations } : {}),
  };
}

/**
 * The fallback index after adding referrers (pure): every descriptor `existing` holds is kept, in
 * its order, then each of `add` whose digest is not listed yet, in the order given (first wins on
 * a repeated digest). The index's own annotations are kept.
 *
 * @param existing the destination's fallback index, or null when its tag is absent
 * @param add descriptors of referrers actually present at the destination
 */
export function mergeReferrersIndex(
  existing: ReferrersIndex | null,
  add: ReferrerDescriptor[],
): ReferrersIndex {
  const seen = new Set<string>();
  const manifests: ReferrerDescriptor[] = [];
  for (const d of [...(existing?.manifests ?? []), ...add]) {
    if (seen.has(d.digest)) continue;
    seen.add(d.digest);
    manifests.push(d);
  }
  return {
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.ociIndex,
    manifests,
    ...(existing?.annotations ? { annotations: existing.annotations } : {}),
  };
}

/**
 * Does `a` hold every descriptor `b` holds (by digest)? The never-overwrite rule for managed
 * tags: a destination's fallback index is replaced only by a superset of it.
 *
 * @param a the candidate (e.g. the source's referrers)
 * @param b what must not be lost (e.g. the destination's referrers)
 */
export function isSuperset(a: readonly Descriptor[], b: readonly Descriptor[]): boolean {
  const have = new Set(a.map((d) => d.digest));
  return b.every((d) => have.has(d.digest));
}

/** The bytes and media type to PUT for a fallback index (compact JSON). */
export function encodeReferrersIndex(
  index: ReferrersIndex,
): { mediaType: string; bytes: Uint8Array } {
  return {
    mediaType: MEDIA_TYPES.ociIndex,
    bytes: new TextEncoder().encode(JSON.stringify(index)),
  };
}

function filterByType(
  descriptors: ReferrerDescriptor[],
  artifactType: string | undefined,
): ReferrerDescriptor[] {
  return artifactType === undefined
    ? descriptors
    : descriptors.filter((d) => d.artifactType === artifactType);
}

function referrer(value: unknown, where: string, field: string): ReferrerDescriptor {
  if (!isObject(value)) throw invalid(where, `${field} must be an object, not ${show(value)}`);
  const { mediaType, digest, size, artifactType, platform } = value;
  if (typeof mediaType !== "string" || mediaType === "") {
    throw invalid(where, `${field}.mediaType must be a non-empty string, not ${show(mediaType)}`);
  }
  if (!validDigest(digest)) {
    throw invalid(where, `${field}.digest ${show(digest)} is not a digest of the OCI grammar`);
  }
  if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0) {
    throw invalid(where, `${field}.size must be a non-negative integer, not ${show(size)}`);
  }
  if (artifactType !== undefined && typeof artifactType !== "string") {
    throw invalid(where, `${field}.artifactType must be a string, not ${show(artifactType)}`);
  }
  if (platform !== undefined && !isObject(platform)) {
    throw invalid(where, `${field}.platform must be an object, not ${show(platform)}`);
  }
  const annotations = stringMap(value.annotations, where, `${field}.annotations`);
  return {
    mediaType,
    digest,
    size,
    ...(artifactType !== undefined ? { artifactType } : {}),
    ...(annotations ? { annotations } : {}),
    ...(platform ? { platform: platform as Descriptor["platform"] } : {}),
  };
}

function stringMap(
  value: unknown,
  where: string,
  field: string,
): Record<string, string> | undefined {
  if (value === undefined) return undefined;
  if (!isObject(value)) throw invalid(where, `${field} must be an object, not ${show(value)}`);
  for (const [key, v] of Object.entries(value)) {
    if (typeof v !== "string") {
      throw invalid(where, `${field}[${show(key)}] must be a string, not ${show(v)}`);
    }
  }
  return value as Record<string, string>;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A short, safe rendering of a value for a message. */
function show(value: unknown): string {
  if (value === undefined) return "nothing";
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "object") return "an object";
  const text = JSON.stringify(value);
  return text.length <= 80 ? text : `a ${text.length}-character value`;
}

function invalid(where: string, what: string): MirrorError {
  return new MirrorError("IMAGE_REFERRER_INVALID", `${where}: ${what}`);
}
