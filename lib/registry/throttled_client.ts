/**
 * A {@link RegistryClient} whose blob streams are held to the bandwidth limits (bandwidth.ts):
 * blob GET bodies to the download throttle, upload bodies to the upload throttle. Everything
 * else (manifests, tag lists, tokens) passes as in the plain client. registry_hosts.ts makes one
 * per host when a limit is set.
 *
 * @module
 */
import type { Throttle } from "./bandwidth.ts";
import type { UploadOptions, UploadOutcome } from "./image_store.ts";
import { RegistryClient, type RegistryClientOptions } from "./registry_client.ts";

/** A registry client under the bandwidth limits. */
export class ThrottledClient extends RegistryClient {
  #download: Throttle;
  #upload: Throttle;

  /** A client whose blob streams pass `throttle`. */
  constructor(
    options: RegistryClientOptions,
    throttle: { download: Throttle; upload: Throttle },
  ) {
    super(options);
    this.#download = throttle.download;
    this.#upload = throttle.upload;
  }

  /** GET a blob; its body held to the download limit. */
  override async blobGet(
    repository: string,
    digest: string,
    signal?: AbortSignal,
  ): Promise<{ size: number; body: ReadableStream<Uint8Array> }> {
    const blob = await super.blobGet(repository, digest, signal);
    return { size: blob.size, body: this.#download.pipe(blob.body, signal) };
  }

  /** Upload a blob; each attempt's stream held to the upload limit. */
  override async blobUpload(
    repository: string,
    blob: { digest: string; size: number },
    open: (signal: AbortSignal) => Promise<ReadableStream<Uint8Array>>,
    options: UploadOptions = {},
  ): Promise<UploadOutcome> {
    const held = async (signal: AbortSignal) => this.#upload.pipe(await open(signal), signal);
    return await super.blobUpload(repository, blob, held, options);
  }
}
