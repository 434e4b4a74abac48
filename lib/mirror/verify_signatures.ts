/**
 * Verification before mirroring: a push task whose entry has `verify` keys copies only when the
 * source digest the plan saw carries a cosign signature that one of the keys verifies and that
 * names that digest: a `.sig` tag next to the image (simple-signing payload), or, cosign v3's
 * default, a sigstore bundle referrer (DSSE over an in-toto sign/v1 statement whose subject is the
 * digest; certificate/keyless bundles are refused). The `.sig` is read first; the referrers only
 * when it does not verify. `operation.signatures: require` without keys: the digest must carry a
 * signature (a `.sig` payload or a signature bundle naming it), unverified; else IMAGE_UNSIGNED.
 * Called before the Quay repository is ensured and before the engine copies, so a refused image
 * writes nothing at the destination.
 *
 * Each key file is loaded once per run; each (keys, source repository, digest) is verified once
 * per run, however many targets share it.
 *
 * @module
 */
import { MirrorError } from "../errors.ts";
import { readFileCapped } from "../safe_file.ts";
import { MAX_KEY_BYTES } from "../config/verify_keys.ts";
import type { ArtifactStore } from "../registry/image_store.ts";
import { bundleNamesDigest, verifyBundles } from "../signatures/sigstore_bundle.ts";
import { fetchImageBundles } from "../signatures/bundle_fetch.ts";
import {
  parseSimpleSigningPayload,
  type SignatureVerdict,
  verifyImageSignatures,
} from "../signatures/cosign.ts";
import { fetchImageSignatures } from "../signatures/cosign_fetch.ts";
import { loadCosignPublicKey } from "../signatures/cosign_key.ts";
import type { PlanTask } from "./plan.ts";

/** Options for {@link SignatureVerifier}. */
export interface SignatureVerifierOptions {
  /** The registry client of a source host. */
  clientFor: (host: string) => ArtifactStore;
  /** Called once per verified source digest with what verified it (for the log). */
  onVerified?: (source: string, keyFingerprint: string) => void;
  /** `signatures: require` without keys: called once per source digest that carries one. */
  onPresent?: (source: string, form: ".sig" | "bundle") => void;
}

/** Verifies the source digests of a run's push tasks; one per run. */
export class SignatureVerifier {
  #clientFor: (host: string) => ArtifactStore;
  #onVerified: (source: string, keyFingerprint: string) => void;
  #onPresent: (source: string, form: ".sig" | "bundle") => void;
  #keys = new Map<string, Promise<CryptoKey>>();
  #verdicts = new Map<string, Promise<string>>();

  /** A verifier with no keys loaded yet. */
  constructor(options: SignatureVerifierOptions) {
    this.#clientFor = options.clientFor;
    this.#onVerified = options.onVerified ?? (() => {});
    this.#onPresent = options.onPresent ?? (() => {});
  }

  /**
   * Check `task`'s source digest against its `verifyKeys` (or, `signatures: require` without
   * keys, that it carries a signature).
   *
   * @returns The fingerprint of the key that verified it, `signature present (.sig|bundle)` for
   *   `require` without keys, or null when the task has neither.
   * @throws {MirrorError} IMAGE_UNSIGNED ("no signature") or IMAGE_SIGNATURE_INVALID ("bad
   *   signature", "digest mismatch", or a malformed `.sig` manifest), naming the keys'
   *   fingerprints; IMAGE_SIGNATURE_INVALID when the plan saw no source digest; registry errors.
   */
  verify(task: PlanTask, signal?: AbortSignal): Promise<string | null> {
    const files = task.verifyKeys ?? [];
    if (files.length === 0 && task.signatures !== "require") return Promise.resolve(null);
    const source = `${task.source.registry}/${task.source.repository}`;
    const digest = task.sourceDigest;
    if (!digest) {
      return Promise.reject(
        new MirrorError(
          "IMAGE_SIGNATURE_INVALID",
          `${source}: no source digest to verify; not mirrored`,
        ),
      );
    }
    // The verdict is cached per requirement: everything #check decides by is in the key, so a
    // requirement that grows (keyless identities) cannot share another entry's pass.
    const requirement: Requirement = { files, signatures: task.signatures ?? null };
    const key = JSON.stringify([requirement, source, digest]);
    let pending = this.#verdicts.get(key);
    if (!pending) {
      pending = this.#check({ requirement, task, digest, signal });
      this.#verdicts.set(key, pending);
    }
    return pending;
  }

  async #check(
    input: { requirement: Requirement; task: PlanTask; digest: string; signal?: AbortSignal },
  ): Promise<string> {
    const { requirement, task, digest, signal } = input;
    const keys = await Promise.all(requirement.files.map((file) => this.#load(file)));
    const client = this.#clientFor(task.source.registry);
    const where = { repository: task.source.repository, digest, signal };
    const source = `${task.source.registry}/${task.source.repository}@${digest}`;
    // A malformed .sig does not hide a valid bundle; it is the error when nothing else passes.
    let sigError: MirrorError | undefined;
    const signatures = await fetchImageSignatures(client, where).then(
      (fetched) => fetched?.signatures ?? [],
      (error) => {
        if (!(error instanceof MirrorError) || error.code !== "IMAGE_SIGNATURE_INVALID") {
          throw error;
        }
        sigError = error;
        return [];
      },
    );
    if (keys.length === 0) {
      return await this.#present({ client, where, source, signatures, sigError });
    }
    const bySig = await verifyImageSignatures({ keys, digest, signatures });
    if (bySig.ok) return this.#verified(source, bySig.keyFingerprint);
    const bundles = (await fetchImageBundles(client, where)).map((b) => b.bundle);
    const byBundle = await verifyBundles({ keys, digest, bundles });
    if (byBundle.ok) return this.#verified(source, byBundle.keyFingerprint);
    if (sigError && byBundle.code === "IMAGE_UNSIGNED") throw sigError;
    const verdict = combine(bySig, byBundle);
    throw new MirrorError(
      verdict.code,
      `${source}: ${verdict.reason} (key ${verdict.keyFingerprints.join(", key ")}); not mirrored`,
    );
  }

  #verified(source: string, fingerprint: string): string {
    this.#onVerified(source, fingerprint);
    return fingerprint;
  }

  /** `signatures: require` without keys: a `.sig` payload or a signature bundle names the digest. */
  async #present(input: {
    client: ArtifactStore;
    where: { repository: string; digest: string; signal?: AbortSignal };
    source: string;
    signatures: { payload: Uint8Array }[];
    sigError?: MirrorError;
  }): Promise<string> {
    const { client, where, source, sigError } = input;
    const named = (payload: Uint8Array) => {
      try {
        return parseSimpleSigningPayload(payload, source).manifestDigest === where.digest;
      } catch {
        return false;
      }
    };
    let found: ".sig" | "bundle" | null = input.signatures.some((s) => named(s.payload))
      ? ".sig"
      : null;
    if (!found) {
      const bundles = await fetchImageBundles(client, where);
      if (bundles.some((b) => bundleNamesDigest(b.bundle, where.digest))) found = "bundle";
    }
    if (found) {
      this.#onPresent(source, found);
      return `signature present (${found})`;
    }
    if (sigError) throw sigError;
    throw new MirrorError(
      "IMAGE_UNSIGNED",
      `${source}: no signature names this digest (operation.signatures: require); not mirrored`,
    );
  }

  #load(file: string): Promise<CryptoKey> {
    let key = this.#keys.get(file);
    if (!key) {
      key = readFileCapped(file, { what: "a cosign public key", maxBytes: MAX_KEY_BYTES }).then(
        (bytes) => loadCosignPublicKey(new TextDecoder().decode(bytes), { file }),
        (cause) => {
          // Checked by validate; a file removed or made unreadable since is a config error.
          throw new MirrorError("CONFIG_INVALID", `Cannot read cosign key ${file}`, { cause });
        },
      );
      this.#keys.set(file, key);
    }
    return key;
  }
}

/** What a task requires of its source digest; the verdict cache is keyed by all of it. */
interface Requirement {
  /** The cosign public key files (`verify.cosignKey`). */
  files: string[];
  /** `operation.signatures` as the task carries it. */
  signatures: PlanTask["signatures"] | null;
}

type Failed = { code: "IMAGE_UNSIGNED" | "IMAGE_SIGNATURE_INVALID"; reason: string } & {
  keyFingerprints: string[];
};

/** One verdict from the `.sig` verdict and the bundles' verdict (both failed). */
function combine(bySig: SignatureVerdict, byBundle: SignatureVerdict): Failed {
  const a = bySig as Failed;
  const b = byBundle as Failed;
  if (b.code === "IMAGE_UNSIGNED") return a;
  if (a.code === "IMAGE_UNSIGNED" || a.reason === b.reason) return b;
  return { ...a, reason: `${a.reason} (.sig), ${b.reason} (bundle)` };
}
