/**
 * The docker credential-helper protocol (shared/registry-protocols.md §6.2): run
 * `docker-credential-<name> get` with the server URL on stdin and read
 * `{"ServerURL","Username","Secret"}` on stdout. "credentials not found in native keychain" means
 * none; a Username of `<token>` means Secret is an identity token. The Secret is never logged.
 *
 * @module
 */
import { MirrorError } from "../errors.ts";
import type { Credential } from "../registry/credential.ts";

/** Ask helper `name` for the credentials of `serverUrl`; null when it has none. */
export async function credentialFromHelper(
  name: string,
  serverUrl: string,
  options: { timeoutMs?: number; env?: Record<string, string | undefined> } = {},
): Promise<Credential | null> {
  const program = `docker-credential-${name}`;
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(program, {
      args: ["get"],
      // The run's environment (PATH finds the helper; the helper reads its own settings there).
      env: definedEnv(options.env ?? {}),
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new MirrorError(
        "LOGIN_MISSING_CREDENTIALS",
        `docker config names the credential helper "${name}" but ${program} is not on PATH`,
      );
    }
    throw error;
  }
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }, options.timeoutMs ?? 30_000);
  try {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(serverUrl));
    await writer.close();
    const out = await child.output();
    const stdout = new TextDecoder().decode(out.stdout).trim();
    if (!out.success) {
      if (/credentials not found/i.test(stdout)) return null;
      throw new MirrorError(
        "LOGIN_FAILED",
        `${program} get failed for ${serverUrl} (exit ${out.code}): ${
          stdout.slice(0, 200) || "no message"
        }`,
      );
    }
    let body: { Username?: string; Secret?: string };
    try {
      body = JSON.parse(stdout);
    } catch {
      throw new MirrorError("LOGIN_FAILED", `${program} get answered something that is not JSON`);
    }
    if (!body.Secret) return null;
    if (body.Username === "<token>") {
      return { kind: "identity-token", token: body.Secret, source: "credential-helper" };
    }
    if (!body.Username) return null;
    return {
      kind: "basic",
      username: body.Username,
      password: body.Secret,
      source: "credential-helper",
    };
  } finally {
    clearTimeout(timer);
  }
}

function definedEnv(env: Record<string, string | undefined>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined),
  );
}
