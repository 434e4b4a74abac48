/**
 * A real registry for tests: Debian's `docker-registry` (CNCF distribution 2.8.2), one per test,
 * in a temp dir on a free loopback port, with no auth, htpasswd Basic auth, or token auth (the
 * token server in token_server.ts), and optionally TLS with a CA made by openssl.
 *
 * ```ts ignore
 * await using reg = await startRegistry({ auth: "htpasswd", tls: true });
 * ```
 *
 * @module
 */
import { Secrets } from "../../lib/log/redact.ts";
import { RegistryClient } from "../../lib/registry/registry_client.ts";
import { runProcess } from "./process.ts";
import type { TokenRules } from "./token_server.ts";

/** A running test registry. */
export interface TestRegistry extends AsyncDisposable {
  /** `127.0.0.1:PORT`, as used in image references. */
  host: string;
  scheme: "http" | "https";
  /** `scheme://host`. */
  url: string;
  /** PEM of the CA that signed the server certificate (TLS only). */
  caFile?: string;
  /** Credentials of the first user (htpasswd and token auth). */
  username?: string;
  password?: string;
  /** All users (htpasswd and token auth). */
  users: Record<string, string>;
  /** Storage root (filesystem driver). */
  dataDir: string;
  /** The temp dir holding config, certs, storage and logs. */
  dir: string;
  /** The registry's process id (for reading its CPU time from /proc). */
  pid: number;
  /** Access log lines so far: `METHOD PATH STATUS`, e.g. `HEAD /v2/a/manifests/1 200`. */
  accessLog(): Promise<string[]>;
  /** Token requests served so far (token auth only): one entry per request, its scope params. */
  tokenRequests(): string[][];
  /** The first user's refresh (identity) token for the OAuth2 POST (token auth only). */
  refreshToken?: string;
  /** OAuth2 token POSTs served so far, by grant_type (token auth only). */
  tokenPosts(): string[];
  /** Stop the registry (also done on dispose). */
  stop(): Promise<void>;
}

/** Options for {@link startRegistry}. */
export interface StartRegistryOptions {
  auth?: "none" | "htpasswd" | "token";
  tls?: boolean;
  /** Users for htpasswd/token auth. Default: one user `mirror` with a random password. */
  users?: Record<string, string>;
  /** Token auth: may anonymous callers pull? @default false */
  anonymousPull?: boolean;
  /** Serve read-only (maintenance mode): writes fail with 405. */
  readOnly?: boolean;
  /** Token auth: Quay's per-repository decisions of the token server (token_server.ts). */
  tokenRules?: TokenRules;
}

const BINARY = "/usr/bin/docker-registry";

/** Is Debian's docker-registry installed? Tests are ignored, with this reason, when it is not. */
export function registryBinaryAvailable(): boolean {
  try {
    return Deno.statSync(BINARY).isFile;
  } catch {
    return false;
  }
}

/** A free TCP port on 127.0.0.1 (bind port 0, read it, close). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/**
 * A loopback port nobody listens on for the whole test: below 1024, where no part of the tests
 * binds (registries and doubles take ephemeral ports), not one fetch refuses to ask (the Fetch
 * standard's bad ports, such as 9 and 113), and checked to refuse a connection now. A port from
 * {@link freePort} is free only until the next part started takes it.
 */
export async function refusedPort(): Promise<number> {
  for (const port of [47, 71, 222, 999]) {
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conn.close();
    } catch (error) {
      if (error instanceof Deno.errors.ConnectionRefused) return port;
    }
  }
  throw new Error("no port below 1024 refuses connections on 127.0.0.1");
}

/** Run a command, throw with its stderr on failure. */
export async function run(
  cmd: string,
  args: string[],
  options: { cwd?: string; stdin?: string } = {},
): Promise<string> {
  const out = await runProcess(cmd, args, options);
  if (out.code !== 0) throw new Error(`${cmd} ${args.join(" ")} failed: ${out.stderr}`);
  return out.stdout;
}

/** Make a CA and a server certificate for 127.0.0.1/localhost with openssl. */
export async function makeCertificates(
  dir: string,
): Promise<{ ca: string; cert: string; key: string }> {
  // The CA certificate sits alone in its folder: skopeo and docker take a folder of *.crt and
  // would read a *.key beside it as a client certificate.
  await Deno.mkdir(`${dir}/ca`, { recursive: true });
  const ca = `${dir}/ca/ca.crt`;
  const caKey = `${dir}/ca.key`;
  const cert = `${dir}/server.pem`;
  const key = `${dir}/server.key`;
  await run("openssl", [
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-days",
    "2",
    "-subj",
    "/CN=bananna-bot test CA",
    "-keyout",
    caKey,
    "-out",
    ca,
  ]);
  await run("openssl", [
    "req",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-subj",
    "/CN=127.0.0.1",
    "-keyout",
    key,
    "-out",
    `${dir}/server.csr`,
  ]);
  await Deno.writeTextFile(
    `${dir}/san.ext`,
    "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
  );
  await run("openssl", [
    "x509",
    "-req",
    "-in",
    `${dir}/server.csr`,
    "-CA",
    ca,
    "-CAkey",
    caKey,
    "-CAcreateserial",
    "-days",
    "2",
    "-CAserial",
    `${dir}/ca.srl`,
    "-extfile",
    `${dir}/san.ext`,
    "-out",
    cert,
  ]);
  return { ca, cert, key };
}

function randomPassword(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return "pw-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Start a real registry. */
export async function startRegistry(options: StartRegistryOptions = {}): Promise<TestRegistry> {
  if (!registryBinaryAvailable()) {
    throw new Error(`${BINARY} is not installed (apt-get install docker-registry)`);
  }
  const auth = options.auth ?? "none";
  const dir = await Deno.makeTempDir({ prefix: "bb-registry-" });
  const dataDir = `${dir}/data`;
  await Deno.mkdir(dataDir);
  const users = auth === "none" ? {} : options.users ?? { mirror: randomPassword() };
  const lines: string[] = [
    "version: 0.1",
    "log:",
    "  level: info",
    "  formatter: text",
    "  accesslog:",
    "    disabled: false",
    "storage:",
    "  filesystem:",
    `    rootdirectory: ${dataDir}`,
    "  delete:",
    "    enabled: true",
  ];
  if (options.readOnly) lines.push("  maintenance:", "    readonly:", "      enabled: true");
  let tokenServer:
    | {
      stop(): Promise<void>;
      requests: string[][];
      refreshTokens: Record<string, string>;
      posts: string[];
    }
    | undefined;
  const tls = options.tls ? await makeCertificates(dir) : undefined;
  const caFile = tls?.ca;
  if (auth === "htpasswd") {
    let htpasswd = "";
    for (const [user, password] of Object.entries(users)) {
      htpasswd += await run("htpasswd", ["-Bbn", user, password]);
    }
    await Deno.writeTextFile(`${dir}/htpasswd`, htpasswd);
    lines.push("auth:", "  htpasswd:", "    realm: bananna-test", `    path: ${dir}/htpasswd`);
  } else if (auth === "token") {
    const { startTokenServer } = await import("./token_server.ts");
    const server = await startTokenServer({
      dir,
      users,
      anonymousPull: options.anonymousPull ?? false,
      ...options.tokenRules,
    });
    tokenServer = server;
    lines.push(
      "auth:",
      "  token:",
      `    realm: ${server.realm}`,
      `    service: ${server.service}`,
      `    issuer: ${server.issuer}`,
      `    rootcertbundle: ${server.certFile}`,
    );
  }
  for (let attempt = 0;; attempt++) {
    const port = freePort();
    const host = `127.0.0.1:${port}`;
    const httpLines = ["http:", `  addr: ${host}`, "  secret: bananna-test-secret"];
    if (tls) httpLines.push("  tls:", `    certificate: ${tls.cert}`, `    key: ${tls.key}`);
    await Deno.writeTextFile(`${dir}/config.yml`, [...lines, ...httpLines].join("\n") + "\n");
    const logFile = `${dir}/registry.log`;
    await Deno.writeTextFile(logFile, "");
    // Both streams go straight to one log file (the access log is on stdout, a "response
    // completed" line per request on stderr): the shell opens the file and execs the registry in
    // its place, so no pipe has to be drained by this process, whose CPU would compete with the
    // registry's and the client's under test (two lines per request add up at 15,000 requests).
    const child = new Deno.Command("sh", {
      args: ["-c", 'exec "$0" serve "$1" >>"$2" 2>&1', BINARY, `${dir}/config.yml`, logFile],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    const scheme = tls ? "https" : "http";
    const url = `${scheme}://${host}`;
    const client = tls
      ? Deno.createHttpClient({ caCerts: [await Deno.readTextFile(tls.ca)] })
      : undefined;
    let up = false;
    for (let i = 0; i < 100 && !up; i++) {
      try {
        const res = await fetch(`${url}/v2/`, { client });
        await res.body?.cancel();
        up = res.status === 200 || res.status === 401;
      } catch {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    client?.close();
    let stopped = false;
    const stop = async () => {
      if (stopped) return;
      stopped = true;
      try {
        child.kill("SIGTERM");
      } catch {
        // already gone
      }
      await child.status;
      await tokenServer?.stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    };
    if (!up) {
      const text = await Deno.readTextFile(logFile).catch(() => "");
      if (stopped === false) {
        try {
          child.kill("SIGKILL");
        } catch { /* gone */ }
        await child.status;
      }
      if (attempt < 3 && /address already in use/.test(text)) continue;
      await tokenServer?.stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      throw new Error(`docker-registry did not start:\n${text}`);
    }
    const [username, password] = Object.entries(users)[0] ?? [];
    return {
      host,
      scheme,
      url,
      caFile,
      username,
      password,
      users,
      dataDir,
      dir,
      // The shell execs the registry: its process is the registry's.
      pid: child.pid,
      async accessLog() {
        const text = await Deno.readTextFile(logFile).catch(() => "");
        const out: string[] = [];
        // distribution logs one "response completed" line per request on stderr.
        for (const line of text.split("\n")) {
          if (!line.includes('msg="response completed')) continue;
          const field = (name: string) =>
            new RegExp(`${name}=("(?:[^"\\\\]|\\\\.)*"|\\S+)`).exec(line)?.[1]?.replace(
              /^"|"$/g,
              "",
            );
          out.push(
            `${field("http.request.method")} ${field("http.request.uri")} ${
              field("http.response.status")
            }`,
          );
        }
        return out;
      },
      tokenRequests: () => tokenServer?.requests ?? [],
      refreshToken: tokenServer?.refreshTokens[Object.keys(users)[0]],
      tokenPosts: () => tokenServer?.posts ?? [],
      stop,
      [Symbol.asyncDispose]: stop,
    };
  }
}

/**
 * A client of `reg` (or of `host`, a double in front of it, with the same scheme) signed in as its
 * first user, with no retries: a test reads what is there, once.
 */
export function clientOf(reg: TestRegistry, host: string = reg.host): RegistryClient {
  return new RegistryClient({
    host,
    scheme: reg.scheme,
    secrets: new Secrets(),
    credential: {
      kind: "basic",
      username: reg.username ?? "",
      password: reg.password ?? "",
      source: "config",
    },
    maxRetries: 0,
  });
}
