/**
 * The docker engine: the copy goes through the docker CLI (`pull`, `tag`, `push`, via
 * Deno.Command), every look at a registry goes through the registry client, so an image that is
 * already mirrored is never pulled.
 *
 * Docker recompresses layers on push, so the destination manifest digest differs from the
 * source's even for a single-arch image; "same image" here means the same config digest (image ID)
 * for the platform pulled. Every docker call runs under `dockerTimeout` (killed on expiry:
 * DOCKER_TIMEOUT) and is killed when the run is aborted. Passwords go to `docker login` on stdin,
 * never in argv. `close()` removes exactly the images this engine pulled (that were not on the
 * daemon before) and the tags it made, when cleanup is on.
 *
 * @module
 */
import type { Credential } from "../credentials/credential.ts";
import { MirrorError } from "../errors.ts";
import { type Secrets, secrets as runSecrets } from "../log/redact.ts";
import { retry } from "../retry.ts";
import { parseManifest } from "../registry/manifest.ts";
import { formatReference, manifestRef, type Reference } from "../registry/reference.ts";
import { imageConfigDigest, type RegistryClient } from "../registry/registry_client.ts";
import type { CopyRequest, CopyResult, Engine } from "./engine.ts";

/** Options for {@link DockerEngine}. */
export interface DockerEngineOptions {
  clientFor: (registryHost: string) => RegistryClient;
  dockerTimeoutMs: number;
  maxRetries: number;
  retryDelayMs: number;
  /** Platform to pull (`linux/arm64`); default: the daemon's. */
  platform?: string;
  cleanupLocalImages: boolean;
  /** Environment for docker (DOCKER_HOST, DOCKER_CONFIG, PATH...). @default Deno.env */
  env?: Record<string, string | undefined>;
  /** @default "docker" */
  dockerBinary?: string;
  /** Called with the argv of every docker process (tests count pulls, check argv for secrets). */
  onDockerCall?: (args: string[]) => void;
  secrets?: Secrets;
}

interface DockerResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Copies with the docker CLI. */
export class DockerEngine implements Engine {
  readonly name = "docker" as const;
  readonly comparison = "config" as const;
  #options: DockerEngineOptions;
  #daemonPlatform?: string;
  #pulled = new Set<string>();
  #tagged = new Set<string>();
  #secrets: Secrets;

  /** Create the engine. */
  constructor(options: DockerEngineOptions) {
    this.#options = options;
    this.#secrets = options.secrets ?? runSecrets;
  }

  /** Check the CLI and the daemon answer; learn the daemon's platform. */
  async prepare(signal?: AbortSignal): Promise<void> {
    const host = this.#env().DOCKER_HOST ?? "the default socket";
    let result: DockerResult;
    try {
      result = await this.#docker(["version", "--format", "{{.Server.Os}}/{{.Server.Arch}}"], {
        signal,
      });
    } catch (error) {
      if (error instanceof MirrorError && error.code === "DOCKER_TIMEOUT") {
        throw new MirrorError(
          "DOCKER_NOT_AVAILABLE",
          `The docker daemon at ${host} does not answer (timed out)`,
        );
      }
      throw error;
    }
    if (result.code !== 0) {
      throw new MirrorError(
        "DOCKER_NOT_AVAILABLE",
        `The docker daemon at ${host} does not answer: ${
          lastLines(this.#secrets.mask(result.stderr))
        }. ` +
          `Start it (systemctl start docker), set DOCKER_HOST, or use operation.engine: registry (no daemon needed)`,
      );
    }
    this.#daemonPlatform = result.stdout.trim() || "linux/amd64";
  }

  /** `docker login --password-stdin` (the password never in argv or logs). */
  async login(host: string, credential: Credential): Promise<void> {
    if (credential.kind !== "basic") return;
    const result = await this.#docker(
      ["login", "--username", credential.username, "--password-stdin", host],
      { stdin: credential.password },
    );
    if (result.code !== 0) {
      throw new MirrorError(
        "LOGIN_FAILED",
        `docker login ${host} as ${credential.username} failed: ${
          lastLines(this.#secrets.mask(result.stderr))
        }`,
      );
    }
  }

  /** Copy one image through docker; see the module doc. */
  async copy(request: CopyRequest): Promise<CopyResult> {
    const { source, destination, signal } = request;
    const emit = request.onEvent ?? (() => {});
    const src = this.#options.clientFor(source.registry);
    const dst = this.#options.clientFor(destination.registry);
    const srcText = formatReference(source);
    const dstText = formatReference(destination);
    const top = await src.manifestGet(source.repository, manifestRef(source), signal);
    if (!top) throw new MirrorError("IMAGE_NOT_FOUND", `Source image ${srcText} does not exist`);
    const parsed = parseManifest(top.bytes, top.mediaType, srcText);
    const platform = request.platform ?? this.#options.platform ?? this.#daemonPlatform ??
      "linux/amd64";
    if (parsed.kind === "index" && !(request.platform ?? this.#options.platform)) {
      emit({
        kind: "step",
        code: "CONFIG_WARNING",
        message:
          `${srcText} is multi-arch; the docker engine mirrors only ${platform} (the daemon's platform). The registry engine keeps every platform`,
      });
    }
    const sourceConfig = await imageConfigDigest(src, source.repository, top.digest, {
      platform,
      signal,
    });
    if (!sourceConfig) {
      throw new MirrorError("IMAGE_NOT_FOUND", `${srcText} has no image for platform ${platform}`);
    }
    const existing = await this.#destinationState(dst, destination, sourceConfig, platform, signal);
    if (existing) return existing;

    const pullRef = source.digest
      ? `${source.registry}/${source.repository}@${source.digest}`
      : srcText;
    const wasLocal =
      (await this.#docker(["image", "inspect", "--format", "{{.Id}}", pullRef], { signal }))
        .code === 0;
    await this.#withRetry(["pull", "--platform", platform, pullRef], signal);
    if (!wasLocal) this.#pulled.add(pullRef);
    emit({ kind: "step", code: "IMAGE_PULLED", message: `pulled ${pullRef} (${platform})` });
    const pushRef = destination.tag
      ? dstText
      : `${destination.registry}/${destination.repository}:mirror-${
        (destination.digest ?? "").slice(7, 19)
      }`;
    await this.#checked(["tag", pullRef, pushRef], signal);
    this.#tagged.add(pushRef);
    emit({ kind: "step", code: "IMAGE_TAGGED", message: `tagged ${pullRef} as ${pushRef}` });
    // The never-overwrite rule, checked again right before the push.
    const late = await this.#destinationState(dst, destination, sourceConfig, platform, signal);
    if (late) return late;
    await this.#withRetry(["push", pushRef], signal);
    const pushed = await dst.manifestHead(
      destination.repository,
      destination.tag ?? "latest",
      signal,
    );
    const digest = pushed?.digest ?? "unknown";
    emit({
      kind: "step",
      code: "IMAGE_PUSHED",
      message: `${srcText} -> ${pushRef} (${digest}, image ${sourceConfig})`,
    });
    return { status: "pushed", digest, bytesUploaded: 0 };
  }

  /** Remove what this engine pulled and tagged, when cleanup is on. */
  async close(): Promise<void> {
    if (!this.#options.cleanupLocalImages) return;
    const refs = [...this.#tagged, ...this.#pulled];
    this.#tagged.clear();
    this.#pulled.clear();
    const failures: string[] = [];
    for (const ref of refs) {
      const result = await this.#docker(["rmi", ref]);
      if (result.code !== 0 && !/No such image/i.test(result.stderr)) {
        failures.push(`${ref}: ${lastLines(result.stderr)}`);
      }
    }
    if (failures.length) {
      throw new MirrorError(
        "DOCKER_COMMAND_FAILED",
        `docker rmi failed for ${failures.join("; ")}`,
      );
    }
  }

  /** The images this engine pulled and tagged so far (for the cleanup log). */
  get localImages(): string[] {
    return [...this.#tagged, ...this.#pulled];
  }

  async #destinationState(
    dst: RegistryClient,
    destination: Reference,
    sourceConfig: string,
    platform: string,
    signal?: AbortSignal,
  ): Promise<CopyResult | null> {
    const head = await dst.manifestHead(destination.repository, manifestRef(destination), signal);
    if (!head) return null;
    const config = await imageConfigDigest(dst, destination.repository, head.digest, {
      platform,
      signal,
    });
    if (config === sourceConfig) return { status: "exists", digest: head.digest, bytesUploaded: 0 };
    throw new MirrorError(
      "IMAGE_TAG_DRIFT",
      `${
        formatReference(destination)
      } holds image ${config} (manifest ${head.digest}), the source has image ${sourceConfig}; left untouched`,
    );
  }

  async #checked(args: string[], signal?: AbortSignal): Promise<DockerResult> {
    const result = await this.#docker(args, { signal });
    if (result.code !== 0) throw this.#failure(args, result);
    return result;
  }

  async #withRetry(args: string[], signal?: AbortSignal): Promise<void> {
    await retry(() => this.#checked(args, signal), {
      maxAttempts: this.#options.maxRetries + 1,
      minDelayMs: this.#options.retryDelayMs,
      signal,
      isRetriable: (error) =>
        error instanceof MirrorError &&
        (error.code === "DOCKER_TIMEOUT" ||
          (error.code === "DOCKER_COMMAND_FAILED" && isTransient(error.message))),
    });
  }

  #failure(args: string[], result: DockerResult): MirrorError {
    const text = lastLines(this.#secrets.mask(result.stderr || result.stdout));
    const what = `docker ${args[0]} ${args[args.length - 1]}`;
    if (/unauthorized|authentication required|denied|no basic auth credentials/i.test(text)) {
      return new MirrorError("LOGIN_FAILED", `${what}: ${text}`);
    }
    if (
      args[0] === "pull" && /not found|manifest unknown|no such image|does not exist/i.test(text)
    ) {
      return new MirrorError("IMAGE_NOT_FOUND", `${what}: ${text}`);
    }
    return new MirrorError("DOCKER_COMMAND_FAILED", `${what} exited ${result.code}: ${text}`);
  }

  #env(): Record<string, string | undefined> {
    return this.#options.env ?? Deno.env.toObject();
  }

  async #docker(
    args: string[],
    options: { stdin?: string; signal?: AbortSignal } = {},
  ): Promise<DockerResult> {
    this.#options.onDockerCall?.(args);
    const env = Object.fromEntries(
      Object.entries(this.#env()).filter((e): e is [string, string] => e[1] !== undefined),
    );
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(this.#options.dockerBinary ?? "docker", {
        args,
        env,
        clearEnv: true,
        stdin: options.stdin === undefined ? "null" : "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        throw new MirrorError(
          "DOCKER_NOT_AVAILABLE",
          "The docker CLI is not installed (not on PATH). Install docker, or use operation.engine: registry",
        );
      }
      throw error;
    }
    let timedOut = false;
    const kill = () => {
      try {
        child.kill("SIGKILL");
      } catch {
        // already gone
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      kill();
    }, this.#options.dockerTimeoutMs);
    options.signal?.addEventListener("abort", kill, { once: true });
    try {
      if (options.stdin !== undefined) {
        const writer = child.stdin.getWriter();
        await writer.write(new TextEncoder().encode(options.stdin));
        await writer.close();
      }
      const out = await child.output();
      if (timedOut) {
        throw new MirrorError(
          "DOCKER_TIMEOUT",
          `docker ${args[0]} ${args[args.length - 1]} ran past dockerTimeout (${
            this.#options.dockerTimeoutMs / 1000
          } s) and was killed`,
        );
      }
      options.signal?.throwIfAborted();
      return {
        code: out.code,
        stdout: new TextDecoder().decode(out.stdout),
        stderr: new TextDecoder().decode(out.stderr),
      };
    } finally {
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", kill);
    }
  }
}

function lastLines(text: string, count = 3): string {
  return text.trim().split("\n").slice(-count).join(" | ") || "no message";
}

function isTransient(message: string): boolean {
  return /timeout|timed out|connection reset|connection refused|EOF|50[0-9]|too many requests|TLS handshake|i\/o/i
    .test(message);
}
