/**
 * Verification before mirroring: a push task whose entry has `verify` keys copies only when the
 * source digest the plan saw carries a cosign signature (`.sig` tag next to the image) that one of
 * the keys verifies and whose payload names that digest. Called before the Quay repository is
 * ensured and before the engine copies, so a refused image writes nothing at the destination.
 *
 * Each key file is loaded once per run; each (keys, source repository, digest) is verified once
 * per run, however many targets share it.
 *
 * @module
 */
import { MirrorError } from "../errors.ts";
import type { RegistryClient } from "../registry/registry_client.ts";
import { verifyImageSignatures } from "../signatures/cosign.ts";
import { fetchImageSignatures } from "../signatures/cosign_fetch.ts";
import { loadCosignPublicKey } from "../signatures/cosign_key.ts";
import type { PlanTask } from "./plan.ts";

/** Options for {@link SignatureVerifier}. */
export interface SignatureVerifierOptions {
  /** The registry client of a source host. */
  clientFor: (host: string) => RegistryClient;
  /** Called once per verified source digest with what verified it (for the log). */
  onVerified?: (source: string, keyFingerprint: string) => void;
}

/** Verifies the source digests of a run's push tasks; one per run. */
export class SignatureVerifier {
  #clientFor: (host: string) => RegistryClient;
  #onVerified: (source: string, keyFingerprint: string) => void;
  #keys = new Map<string, Promise<CryptoKey>>();
  #verdicts = new Map<string, Promise<string>>();

  /** A verifier with no keys loaded yet. */
  constructor(options: SignatureVerifierOptions) {
    this.#clientFor = options.clientFor;
    this.#onVerified = options.onVerified ?? (() => {});
  }

  /**
   * Check `task`'s source digest against its `verifyKeys`.
   *
   * @returns The fingerprint of the key that verified it, or null when the task has no keys.
   * @throws {MirrorError} IMAGE_UNSIGNED ("no signature") or IMAGE_SIGNATURE_INVALID ("bad
   *   signature", "digest mismatch", or a malformed `.sig` manifest), naming the keys'
   *   fingerprints; IMAGE_SIGNATURE_INVALID when the plan saw no source digest; registry errors.
   */
  verify(task: PlanTask, signal?: AbortSignal): Promise<string | null> {
    const files = task.verifyKeys ?? [];
    if (files.length === 0) return Promise.resolve(null);
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
    const key = `${files.join("\n")}\n${source}@${digest}`;
    let pending = this.#verdicts.get(key);
    if (!pending) {
      pending = this.#check({ files, task, digest, signal });
      this.#verdicts.set(key, pending);
    }
    return pending;
  }

  async #check(
    input: { files: string[]; task: PlanTask; digest: string; signal?: AbortSignal },
  ): Promise<string> {
    const { files, task, digest, signal } = input;
    const keys = await Promise.all(files.map((file) => this.#load(file)));
    const fetched = await fetchImageSignatures(this.#clientFor(task.source.registry), {
      repository: task.source.repository,
      digest,
      signal,
    });
    const verdict = await verifyImageSignatures({
      keys,
      digest,
      signatures: fetched?.signatures ?? [],
    });
    const source = `${task.source.registry}/${task.source.repository}@${digest}`;
    if (verdict.ok) {
      this.#onVerified(source, verdict.keyFingerprint);
      return verdict.keyFingerprint;
    }
    throw new MirrorError(
      verdict.code,
      `${source}: ${verdict.reason} ` +
        `(key ${verdict.keyFingerprints.join(", key ")}); not mirrored`,
    );
  }

  #load(file: string): Promise<CryptoKey> {
    let key = this.#keys.get(file);
    if (!key) {
      key = Deno.readTextFile(file).then(
        (pem) => loadCosignPublicKey(pem, { file }),
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
