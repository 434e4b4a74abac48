/**
 * The docker engine: the copy goes through the docker CLI (`pull`, `tag`, `push`), every look at a
 * registry goes through the registry client, so an image that is already mirrored is never pulled.
 *
 * Why "same image" means "same config digest" here: docker recompresses layers on push (measured
 * with dockerd 20.10: every layer digest changes when the destination is another registry, and
 * the pushed manifest is a Docker schema2 manifest), so the destination manifest digest differs
 * from the source's even for a single-arch image. The config digest (docker's image ID) survives,
 * so existence and drift checks compare config digests for the platform mirrored.
 *
 * What callers may rely on:
 * - The destination tag is checked (HEAD + config digest) before the pull and again right before
 *   the push: same config -> `{ status: "exists" }`, another config -> IMAGE_TAG_DRIFT, untouched.
 * - The source is pulled by the manifest digest the registry client saw, so what was checked is
 *   what is pushed; the pulled image ID is compared with the source config digest.
 * - A multi-arch source without a configured platform is mirrored for the daemon's platform only,
 *   with a CONFIG_WARNING event.
 * - Every docker call runs under `dockerTimeoutMs` and is killed (its whole process group) on
 *   expiry (DOCKER_TIMEOUT) or on abort. Failures that may pass (network, 5xx, 429, timeouts) are
 *   retried `maxRetries` times; credentials refused and not-found are not.
 * - Passwords reach `docker login` on stdin only; docker's messages are masked before they reach
 *   an error. docker's output is never printed.
 * - `close()` removes (when `cleanupLocalImages`) exactly the references this engine pulled or
 *   tagged that were not on the daemon before; other images are never touched.
 *
 * @module
 */
import type { Credential } from "../registry/credential.ts";
import { MirrorError } from "../errors.ts";
import type { Secrets } from "../log/redact.ts";
import { retry, retryPolicy } from "../retry.ts";
import { parseImageConfig, parseManifest, selectPlatform } from "../registry/manifest.ts";
import { formatReference, isDockerHub, manifestRef } from "../registry/reference.ts";
import type { Reference } from "../registry/reference.ts";
import { imageConfigDigest } from "../registry/image_config.ts";
import { DEFAULT_MAX_MANIFEST_BYTES, type RegistryClient } from "../registry/registry_client.ts";
import { readBodyCapped } from "../registry/registry_error.ts";
import { DockerCli, DockerError } from "./_docker_cli.ts";
import type { CopyRequest, CopyResult, Engine, EngineEvent } from "./engine.ts";

/** Bytes an image config may have when it is read back (as a manifest may). */
const CONFIG_CAP = DEFAULT_MAX_MANIFEST_BYTES;

/** Options for {@link DockerEngine}. */
export interface DockerEngineOptions {
  /** The registry client for a registry host (every registry read goes through it). */
  clientFor: (registryHost: string) => RegistryClient;
  /** Each docker call is killed after this long (DOCKER_TIMEOUT). */
  dockerTimeoutMs: number;
  /** Retries for failures that may pass (0 = one attempt). */
  maxRetries: number;
  /** First delay between retries, in ms (doubles each time). */
  retryDelayMs: number;
  /** Platform to pull from a multi-arch source (`linux/arm64`). @default the daemon's */
  platform?: string;
  /** Remove, in `close()`, what this engine pulled and tagged. */
  cleanupLocalImages: boolean;
  /** The complete environment of docker (DOCKER_HOST, DOCKER_CONFIG, PATH ...). @default Deno.env */
  env?: Record<string, string | undefined>;
  /** @default "docker" */
  dockerBinary?: string;
  /** Told the argv of every docker process before it starts (tests count pulls, check argv). */
  onDockerCall?: (args: string[]) => void;
  /** Engine-wide events (login, cleanup); copy events go to `CopyRequest.onEvent`. */
  onEvent?: (event: EngineEvent) => void;
  /** The run's secrets: where credentials are registered and docker's output is masked. */
  secrets: Secrets;
}

/** Copies images with the docker CLI; see the module doc. */
export class DockerEngine implements Engine {
  /** Engine name. */
  readonly name = "docker" as const;
  /** Docker recompresses layers: same image = same config digest. */
  readonly comparison = "config" as const;
  #options: DockerEngineOptions;
  #cli: DockerCli;
  #secrets: Secrets;
  #daemonPlatform?: string;
  /** References this engine created on the daemon, in creation order. */
  #created: string[] = [];
  /** Credentials to log docker in with, per host, and the login once it started. */
  #logins = new Map<string, { credential: Credential; done?: Promise<void> }>();

  /**
   * Create the engine (nothing runs yet).
   *
   * @throws {RangeError} when `dockerTimeoutMs` is not positive.
   */
  constructor(options: DockerEngineOptions) {
    this.#options = options;
    this.#secrets = options.secrets;
    this.#cli = new DockerCli({
      binary: options.dockerBinary,
      env: options.env ?? Deno.env.toObject(),
      timeoutMs: options.dockerTimeoutMs,
      onDockerCall: options.onDockerCall,
      secrets: this.#secrets,
    });
  }

  /** The daemon's `os/arch`, known after {@link prepare}. */
  get daemonPlatform(): string | undefined {
    return this.#daemonPlatform;
  }

  /** References this engine pulled or tagged that `close()` would remove. */
  get localImages(): string[] {
    return [...this.#created];
  }

  /**
   * Check the CLI is installed and the daemon answers (`docker version`); learn its platform.
   *
   * @throws {MirrorError} DOCKER_NOT_AVAILABLE saying what to do.
   */
  async prepare(signal?: AbortSignal): Promise<void> {
    const env = this.#options.env ?? Deno.env.toObject();
    const where = env.DOCKER_HOST ? `DOCKER_HOST=${env.DOCKER_HOST}` : "the default socket";
    const advice = "Start the daemon (sudo systemctl start docker), point DOCKER_HOST at a " +
      "running one, make sure this user may use its socket (docker group), or use " +
      "operation.engine: registry (no daemon needed)";
    let result;
    try {
      result = await this.#cli.run(
        ["version", "--format", "{{.Server.Os}}/{{.Server.Arch}}"],
        { signal },
      );
    } catch (error) {
      if (error instanceof DockerError && error.code === "DOCKER_TIMEOUT") {
        throw new MirrorError(
          "DOCKER_NOT_AVAILABLE",
          `The docker daemon at ${where} did not answer within dockerTimeout. ${advice}`,
          { cause: error },
        );
      }
      throw error;
    }
    const platform = result.stdout.trim();
    if (result.code !== 0 || !/^[a-z0-9]+\/[a-z0-9_]+$/.test(platform)) {
      throw new MirrorError(
        "DOCKER_NOT_AVAILABLE",
        `The docker daemon at ${where} does not answer (${this.#cli.message(result)}). ${advice}`,
      );
    }
    this.#daemonPlatform = platform;
  }

  /**
   * `docker login --username U --password-stdin HOST`: the password on stdin only. Docker Hub
   * hosts log in to docker's default index. Identity and registry tokens that came from docker's
   * own config or credential helpers are already docker's: nothing to do.
   *
   * @throws {MirrorError} LOGIN_FAILED with docker's message (masked); DOCKER_TIMEOUT.
   */
  async login(
    host: string,
    credential: Credential,
    options: { signal?: AbortSignal; onEvent?: (event: EngineEvent) => void } = {},
  ): Promise<void> {
    const emit = options.onEvent ?? this.#options.onEvent ?? (() => {});
    if (credential.kind !== "basic") {
      if (credential.source === "docker-config" || credential.source === "credential-helper") {
        return;
      }
      throw new MirrorError(
        "LOGIN_FAILED",
        `${host}: docker login takes a username and password, not the ${credential.kind} from ` +
          `${credential.source}; log in with docker yourself or use operation.engine: registry`,
      );
    }
    this.#secrets.addBasic(credential.username, credential.password);
    const args = ["login", "--username", credential.username, "--password-stdin"];
    if (!isDockerHub(host)) args.push(host);
    try {
      await this.#withRetry(async () => {
        const result = await this.#cli.run(args, {
          stdin: credential.password,
          signal: options.signal,
        });
        if (result.code !== 0) throw this.#cli.failure(args, result, "LOGIN_FAILED");
      }, options.signal);
    } catch (error) {
      if (!(error instanceof DockerError) || error.code !== "LOGIN_FAILED") throw error;
      throw new MirrorError(
        "LOGIN_FAILED",
        `docker login to ${host} as ${credential.username} failed: ${error.detail}`,
        { cause: error },
      );
    }
    emit({
      kind: "step",
      code: "LOGIN_SUCCESS",
      message: `docker login to ${host} as ${credential.username} succeeded`,
    });
  }

  /**
   * Log docker in to `host` with the request's credential right before the first pull or push
   * that needs it, once per run: a run with nothing to copy (the nightly no-op) never calls
   * `docker login`. The first credential given for a host is the one used.
   */
  async #ensureLogin(
    host: string,
    credential: Credential | undefined,
    options: { signal?: AbortSignal; onEvent: (event: EngineEvent) => void },
  ): Promise<void> {
    const { signal, onEvent } = options;
    let entry = this.#logins.get(host);
    if (!entry) {
      if (!credential) return;
      this.#logins.set(host, entry = { credential });
    }
    entry.done ??= this.login(host, entry.credential, { signal, onEvent });
    await entry.done;
  }

  /** Copy one image through docker; see the module doc for what is guaranteed. */
  async copy(request: CopyRequest): Promise<CopyResult> {
    const { source, destination, signal } = request;
    const emit = request.onEvent ?? (() => {});
    const srcText = formatReference(source);
    if (!destination.tag) {
      throw new MirrorError(
        "IMAGE_UNSUPPORTED",
        `${srcText}: the docker engine pushes tags and docker changes the manifest digest, so a ` +
          `digest-only destination cannot be kept; give the image a tag or use operation.engine: registry`,
      );
    }
    const src = this.#options.clientFor(source.registry);
    const dst = this.#options.clientFor(destination.registry);
    const top = await src.manifestGet(source.repository, manifestRef(source), signal);
    if (!top) throw new MirrorError("IMAGE_NOT_FOUND", `Source image ${srcText} does not exist`);
    const parsed = parseManifest(top.bytes, top.mediaType, srcText);
    const configured = request.platform ?? this.#options.platform;
    let platform = configured ?? "";
    // The image manifest docker pulls: the top one, or an index's child for the platform. Pulling
    // a child by its own digest keeps platforms apart on the daemon (dockerd 20.10 refuses to
    // point `repo@<index digest>` at a second platform: "Cannot overwrite digest").
    let imageDigest = top.digest;
    if (parsed.kind === "index") {
      if (!configured) {
        if (!this.#daemonPlatform) await this.prepare(signal);
        platform = this.#daemonPlatform as string;
        emit({
          kind: "step",
          code: "CONFIG_WARNING",
          message: `${srcText} is multi-arch and no platform is configured: the docker engine ` +
            `mirrors only ${platform} (the daemon's platform); the registry engine keeps all of them`,
        });
      }
      const child = selectPlatform(parsed.manifests, platform);
      if (!child) {
        const offered = parsed.manifests.map((m) =>
          [m.platform?.os, m.platform?.architecture, m.platform?.variant].filter(Boolean).join("/")
        );
        throw new MirrorError(
          "IMAGE_NOT_FOUND",
          `${srcText} has no image for platform ${platform} (it has ${offered.join(", ")})`,
        );
      }
      imageDigest = child.digest;
    }
    const sourceConfig = await imageConfigDigest(src, source.repository, imageDigest, { signal });
    if (!sourceConfig) {
      throw new MirrorError("IMAGE_NOT_FOUND", `${srcText}: manifest ${imageDigest} is gone`);
    }
    const recheck = { platform, replaceDigest: request.replaceDigest, signal };
    const early = await this.#destinationState(destination, sourceConfig, recheck);
    if (early) return early;

    // Pull by the digest the registry client saw: what was checked is what is pushed.
    const pullRef = `${source.registry}/${source.repository}@${imageDigest}`;
    const before = await this.#imageId(pullRef, signal);
    if (before !== sourceConfig) {
      await this.#ensureLogin(source.registry, request.credentials?.source, {
        signal,
        onEvent: emit,
      });
      const args = ["pull", ...(parsed.kind === "index" ? ["--platform", platform] : []), pullRef];
      await this.#withRetry(() => this.#cli.checked(args, { signal }), signal);
      if (before === null) this.#created.push(pullRef);
      const pulled = await this.#imageId(pullRef, signal);
      if (pulled !== sourceConfig) {
        throw new MirrorError(
          "IMAGE_DIGEST_MISMATCH",
          `docker pulled ${pullRef} as image ${pulled}, the registry says ${sourceConfig}` +
            `${platform ? ` for ${platform}` : ""}`,
        );
      }
      emit({
        kind: "step",
        code: "IMAGE_PULLED",
        message: `pulled ${srcText} (${imageDigest}${platform ? `, ${platform}` : ""})`,
      });
    }
    const dstText = formatReference(destination);
    const hadTag = (await this.#imageId(dstText, signal)) !== null;
    await this.#cli.checked(["tag", pullRef, dstText], { signal });
    if (!hadTag) this.#created.push(dstText);
    emit({ kind: "step", code: "IMAGE_TAGGED", message: `tagged ${srcText} as ${dstText}` });

    // The never-overwrite rule, checked again right before the push.
    const late = await this.#destinationState(destination, sourceConfig, recheck);
    if (late) return late;
    await this.#ensureLogin(destination.registry, request.credentials?.destination, {
      signal,
      onEvent: emit,
    });
    const push = await this.#withRetry(
      () => this.#cli.checked(["push", dstText], { signal }),
      signal,
    );
    const pushed = await dst.manifestGet(destination.repository, destination.tag, signal);
    const written = pushed && parseManifest(pushed.bytes, pushed.mediaType, dstText);
    if (!pushed || written?.kind !== "image" || written.config.digest !== sourceConfig) {
      throw new MirrorError(
        "IMAGE_PUSH_FAILED",
        `docker pushed ${dstText}, but the registry now holds ${
          pushed ? `manifest ${pushed.digest}` : "nothing"
        } there, not image ${sourceConfig}`,
      );
    }
    const bytesUploaded = await this.#uploadedBytes(dst, destination, written, push.stdout, signal);
    emit({
      kind: "step",
      code: "IMAGE_PUSHED",
      message: `${srcText} -> ${dstText} (manifest ${pushed.digest}, image ${sourceConfig})`,
    });
    return { status: "pushed", digest: pushed.digest, bytesUploaded };
  }

  /** When `cleanupLocalImages`: `docker rmi` each reference this engine created, newest first. */
  async close(): Promise<void> {
    if (!this.#options.cleanupLocalImages) return;
    const refs = this.#created.reverse();
    this.#created = [];
    const failures: string[] = [];
    const removed: string[] = [];
    for (const ref of refs) {
      try {
        const result = await this.#cli.run(["rmi", ref]);
        if (result.code === 0) removed.push(ref);
        else if (!/no such image/i.test(result.stderr)) {
          failures.push(`${ref}: ${this.#cli.message(result)}`);
        }
      } catch (error) {
        failures.push(`${ref}: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    if (removed.length) {
      this.#options.onEvent?.({
        kind: "step",
        code: "IMAGE_CLEANUP",
        message: `removed ${removed.length} local image reference(s): ${removed.join(", ")}`,
      });
    }
    if (failures.length) {
      throw new MirrorError("DOCKER_COMMAND_FAILED", `docker rmi failed: ${failures.join("; ")}`);
    }
  }

  /**
   * null: the tag is free (or still holds `replaceDigest`, a mutable tag to replace); `exists`: it
   * holds the same image; throws IMAGE_TAG_DRIFT otherwise.
   */
  async #destinationState(
    destination: Reference,
    sourceConfig: string,
    options: { platform: string; replaceDigest?: string; signal?: AbortSignal },
  ): Promise<CopyResult | null> {
    const { platform, replaceDigest, signal } = options;
    const dst = this.#options.clientFor(destination.registry);
    const head = await dst.manifestHead(destination.repository, manifestRef(destination), signal);
    if (!head) return null;
    const config = await imageConfigDigest(dst, destination.repository, head.digest, {
      platform: platform || undefined,
      signal,
    });
    if (config === sourceConfig) return { status: "exists", digest: head.digest, bytesUploaded: 0 };
    if (replaceDigest !== undefined && head.digest === replaceDigest) return null;
    throw new MirrorError(
      "IMAGE_TAG_DRIFT",
      `${formatReference(destination)} holds ${
        config ? `image ${config}` : `no image for ${platform || "this platform"}`
      } (manifest ${head.digest}); the source has image ${sourceConfig}; left untouched`,
    );
  }

  /** The local image ID of `ref`, or null when the daemon does not have it. */
  async #imageId(ref: string, signal?: AbortSignal): Promise<string | null> {
    const result = await this.#cli.run(["image", "inspect", "--format", "{{.Id}}", ref], {
      signal,
    });
    return result.code === 0 ? result.stdout.trim() : null;
  }

  /**
   * Layer bytes docker reported as `Pushed` (not mounted, not already there). docker names layers
   * by the short diff ID; the pushed config maps diff IDs to the manifest's layers.
   */
  async #uploadedBytes(
    dst: RegistryClient,
    destination: Reference,
    manifest: { config: { digest: string }; layers: { size: number }[] },
    stdout: string,
    signal?: AbortSignal,
  ): Promise<number> {
    const pushed = new Set([...stdout.matchAll(/^([0-9a-f]{12}): Pushed\s*$/gm)].map((m) => m[1]));
    if (pushed.size === 0) return 0;
    try {
      const blob = await dst.blobGet(destination.repository, manifest.config.digest, signal);
      // The config is data from a registry: read under the manifest cap, parsed defensively.
      const bytes = await readBodyCapped(
        new Response(blob.body),
        CONFIG_CAP,
        (seen) =>
          new MirrorError(
            "IMAGE_MANIFEST_TOO_LARGE",
            `config ${manifest.config.digest}: passed the ${CONFIG_CAP}-byte cap (${seen} bytes)`,
          ),
      );
      const { diffIds } = parseImageConfig(bytes, `config ${manifest.config.digest}`);
      let uploaded = 0;
      diffIds.forEach((id, i) => {
        if (pushed.has(id.replace(/^sha256:/, "").slice(0, 12))) {
          uploaded += manifest.layers[i]?.size ?? 0;
        }
      });
      return uploaded;
    } catch (error) {
      if (signal?.aborted) throw error;
      return 0; // statistics only: never fail a finished push over them
    }
  }

  /** Run `fn` with the retry policy: DockerErrors that may pass are retried. */
  #withRetry<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    return retry(
      fn,
      retryPolicy({
        maxRetries: this.#options.maxRetries,
        retryDelayMs: this.#options.retryDelayMs,
        isRetriable: (error) => error instanceof DockerError && error.retryable,
        signal,
      }),
    );
  }
}
