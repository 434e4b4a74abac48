/**
 * The engine contract. An engine copies one image from a source reference to a destination
 * reference. It knows nothing about plans or config (like crane.Copy and c/image copy.Image).
 *
 * What callers may rely on:
 * - `copy()` never writes a tag that exists with a different image: it checks the destination tag
 *   right before the write and throws `MirrorError("IMAGE_TAG_DRIFT")` if it holds another image,
 *   and returns `{ status: "exists" }` if it holds the same one. The one exception is
 *   `replaceDigest`: a tag that still holds exactly that manifest digest is replaced.
 * - Blobs are complete before their manifest is PUT; children before an index. On abort, no
 *   partial tag is visible (a tag is written only by a complete manifest PUT).
 * - Engines never print; they report through `onEvent`.
 *
 * @module
 */
import type { Credential } from "../registry/credential.ts";
import type { Code } from "../log/codes.ts";
import type { Reference } from "../registry/reference.ts";

/** Progress and steps reported by an engine. */
export type EngineEvent =
  | {
    kind: "blob";
    digest: string;
    state: "started" | "progress" | "done" | "skipped" | "mounted";
    /** Bytes moved so far for this blob. */
    bytes?: number;
    /** Blob size when known. */
    total?: number;
  }
  | {
    kind: "step";
    code: Code;
    message: string;
    /** The log level when it is not the code's own (a problem that does not fail the copy). */
    level?: "WARNING";
  };

/** One copy. */
export interface CopyRequest {
  /** Source; the digest wins when both tag and digest are given. */
  source: Reference;
  /** Destination with a tag (or a digest only, for digest-pinned sources). */
  destination: Reference;
  /** Docker engine: the platform to pull (`linux/arm64`). */
  platform?: string;
  /**
   * Registry engine: copy only these platforms of an index (`os/arch[/variant]`), `sparse` (the
   * index unchanged, only the kept children copied: same digest; the destination must accept
   * it) or `rewrite` (a new index of the kept children: a new digest). A single image is copied
   * as it is.
   */
  platforms?: PlatformRequest;
  /**
   * The credentials the login step verified for the source and destination hosts, as data.
   * Engines that log in themselves (docker: `docker login` once per host, right before the first
   * pull or push there) use them; the registry engine's clients already hold theirs.
   */
  credentials?: CopyCredentials;
  /**
   * Replace the destination tag if (and only if) it still holds this manifest digest (a mutable
   * tag upstream moved; the digest the plan saw). Any other image there is still drift.
   */
  replaceDigest?: string;
  /**
   * Registry engine: the caller found the destination tag absent in this run (the plan's HEAD),
   * so the copy does not HEAD it again before copying. The check right before the tag's PUT (the
   * never-overwrite rule) is made all the same: a tag someone else writes meanwhile is still drift
   * (or `exists`), found after the blobs were copied instead of before.
   */
  destinationAbsent?: boolean;
  signal?: AbortSignal;
  onEvent?: (event: EngineEvent) => void;
}

/** `platforms` of a copy. */
export interface PlatformRequest {
  wanted: readonly string[];
  mode: "sparse" | "rewrite";
}

/** What a copy with `platforms` kept of an index. */
export interface PlatformOutcome {
  mode: "sparse" | "rewrite";
  /** Platforms copied (`os/arch[/variant]`). */
  kept: string[];
  /** Platforms of the index left out. */
  skipped: string[];
  /** Digests of the kept children (their supply chain is carried). */
  children: string[];
  /** The source index digest (differs from the written one with `rewrite`). */
  sourceDigest: string;
  /** Kept platforms copied now to an index that was already at the destination (widening). */
  added?: string[];
  /**
   * Bytes not copied, estimated: the left-out platforms times the mean blob bytes of the kept
   * platforms read in this copy (absent when none was read).
   */
  bytesSkipped?: number;
}

/** Credentials for the two hosts of one copy; absent for anonymous access. */
export interface CopyCredentials {
  source?: Credential;
  destination?: Credential;
}

/** What an engine compares to decide "same image". */
export type Comparison = "manifest" | "config";

/** The outcome of one copy. */
export interface CopyResult {
  /** `pushed`: this copy wrote the tag; `exists`: the tag already held the same image. */
  status: "pushed" | "exists";
  /** Digest of the destination manifest. */
  digest: string;
  /** Bytes uploaded to the destination (0 when everything existed or was mounted). */
  bytesUploaded: number;
  /** What `platforms` kept, when the source is an index and `platforms` was given. */
  platforms?: PlatformOutcome;
}

/**
 * Carry an image's supply chain (cosign `.sig`/`.att`/`.sbom` tags and OCI 1.1 referrers, for the
 * mirrored digest and each child of an index) to the destination repository; see
 * `_supply_chain.ts` for the rules.
 */
export interface SupplyChainRequest {
  /** The source repository (registry + repository; tag and digest are ignored). */
  source: Reference;
  /** The destination repository. */
  destination: Reference;
  /** The mirrored manifest digest (the same on both sides). */
  digest: string;
  /**
   * Its media type when the caller knows it: an image manifest (not an index) is then not read
   * again to look for children.
   */
  mediaType?: string;
  /**
   * The digests whose supply chain is carried, when not `digest` and all its children (an index
   * copied for some platforms: the kept children, and the index itself unless rewritten).
   */
  subjects?: readonly string[];
  /** Referrers copied only when their `artifactType` is listed (undefined: every type). */
  artifactTypes?: readonly string[];
  /**
   * The source repository's tags when the caller listed them this run (the plan does for
   * `repositories` entries): the engine then does not list them again.
   */
  sourceTags?: readonly string[];
  signal?: AbortSignal;
  onEvent?: (event: EngineEvent) => void;
}

/** A descriptor a memoised manifest lists (an index's child, a fallback index's referrer). */
export interface MemoPart {
  digest: string;
  artifactType?: string;
  /** An index child's platform (`os/arch[/variant]`), when the plan recorded it (`platforms`). */
  platformName?: string;
  /** The image an attestation child describes (buildx `vnd.docker.reference.digest`). */
  describes?: string;
}

/**
 * What earlier runs learned about supply chains (registry engine; persisted by the caller, see
 * lib/mirror/supply_chain_state.ts), so a no-op run spends fewer destination requests.
 */
export interface SupplyChainMemo {
  /** The descriptors the manifest `digest` lists (immutable: content-addressed), when known. */
  parts(digest: string): readonly MemoPart[] | undefined;
  /** Remember what the manifest `digest` lists. */
  recordParts(digest: string, parts: readonly MemoPart[]): void;
  /**
   * Did a destination HEAD (or write) recently enough find `tag` of `repository`
   * (`host/repository`) at `digest`? Older entries answer false (checked again).
   */
  inStep(repository: string, tag: string, digest: string): boolean;
  /** A destination HEAD or write just found `tag` at `digest`. */
  recordInStep(repository: string, tag: string, digest: string): void;
  /** The tag is not in step (drift): never answered from the memo. */
  forget(repository: string, tag: string): void;
}

/** What the destination holds of an image's supply chain after {@link Engine.carrySupplyChain}. */
export interface SupplyChainCounts {
  /** `.sig` manifests in step with the source (copied now or earlier). */
  signatures: number;
  /** `.att` manifests in step. */
  attestations: number;
  /** `.sbom` manifests in step. */
  sboms: number;
  /** Referrer manifests present (recursively: a signature of an SBOM counts too). */
  referrers: number;
}

/** A copy engine. */
export interface Engine {
  readonly name: "registry" | "docker";
  /** `manifest` (registry engine: digests are kept) or `config` (docker: layers recompressed). */
  readonly comparison: Comparison;
  /** Check the engine can work (docker: CLI present and daemon answering). Throws MirrorError. */
  prepare(signal?: AbortSignal): Promise<void>;
  /** Copy one image. Throws MirrorError with a catalogue code on failure. */
  copy(request: CopyRequest): Promise<CopyResult>;
  /**
   * Carry the supply chain of a mirrored image (registry engine only: digests are kept).
   * Throws MirrorError for what could not be read or written; drift is an event, not a throw.
   */
  carrySupplyChain?(request: SupplyChainRequest): Promise<SupplyChainCounts>;
  /** Release what the engine holds (docker: remove images this run pulled, if configured). */
  close(): Promise<void>;
}
