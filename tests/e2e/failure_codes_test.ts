/**
 * The code of each failure site, through `main.ts mirror` against real registries on loopback
 * (distribution with htpasswd and TLS) and small fault servers: the source and the destination
 * each unreachable, failing TLS, refusing the credentials (401), forbidding (403), answering 404
 * and answering 503. A source failure is a source code (IMAGE_PULL_FAILED, IMAGE_NOT_FOUND), a
 * destination failure a destination code (IMAGE_PUSH_FAILED), refused credentials LOGIN_FAILED;
 * a failed login is one ERROR line per registry, not one per image; a wrong password names the
 * registry, the user and where the password came from, never the value.
 */
import assert from "node:assert/strict";
import { pushTestImage } from "../support/images.ts";
import { refusedPort, registryBinaryAvailable, startRegistry } from "../support/registry.ts";
import { startStatusServer } from "../support/status_server.ts";
import { mirror } from "../support/e2e_kit.ts";

const skip = registryBinaryAvailable() ? "" : " (ignored: docker-registry is not installed)";
const WRONG = "wrong-password-8c1f";

/** One failure site. */
interface Row {
  name: string;
  /** The failing host. */
  host: string;
  side: "source" | "destination";
  /** `sources` entry (source side) or what the `dr` registry entry adds (destination side). */
  settings?: Record<string, unknown>;
  /** The destination url (destination side). */
  url?: string;
  code: string;
  /** The login step fails: one ERROR line names the host (else one per image). */
  atLogin: boolean;
  /** What that line or each image's error says. */
  says: RegExp;
}

Deno.test({
  name: `each failure site has the catalogue's code for its side${skip}`,
  ignore: Boolean(skip),
  sanitizeResources: false,
  async fn(t) {
    await using src = await startRegistry({ auth: "none" });
    await using dst = await startRegistry({ auth: "none" });
    await using tls = await startRegistry({ auth: "none", tls: true });
    await using auth = await startRegistry({ auth: "htpasswd" });
    await using forbidden = startStatusServer(() => 403);
    await using missing = startStatusServer(() => 404);
    await using broken = startStatusServer(() => 503);
    const closed = `127.0.0.1:${await refusedPort()}`;
    await pushTestImage(src, "team/a:1", { kind: "oci", seed: 81 });
    await pushTestImage(src, "team/b:1", { kind: "oci", seed: 82 });
    const login = { username: "mirror", password: "${SITE_PASSWORD}" };
    const rows: Row[] = [
      {
        name: "source unreachable",
        side: "source",
        host: closed,
        code: "IMAGE_PULL_FAILED",
        atLogin: true,
        says: /Connection refused|connect/i,
      },
      {
        name: "source TLS failure (self-signed CA not trusted)",
        side: "source",
        host: tls.host,
        settings: { insecure: false },
        code: "IMAGE_PULL_FAILED",
        atLogin: true,
        says: /TLS verification failed: .* signed by a CA this host does not trust .*set caFile/,
      },
      {
        name: "source 401 (wrong password)",
        side: "source",
        host: auth.host,
        settings: login,
        code: "LOGIN_FAILED",
        atLogin: true,
        says: new RegExp(
          `${auth.host} \\(source registry\\) refused the password of user "mirror" from \\$\\{SITE_PASSWORD\\} \\(sources\\["${auth.host}"\\]\\.password\\)`,
        ),
      },
      {
        name: "source 403",
        side: "source",
        host: forbidden.host,
        settings: login,
        code: "LOGIN_FAILED",
        atLogin: true,
        says: /refused the password of user "mirror"/,
      },
      {
        name: "source 404 (no such image)",
        side: "source",
        host: src.host,
        code: "IMAGE_NOT_FOUND",
        atLogin: false,
        says: /does not exist/,
      },
      {
        name: "source 503",
        side: "source",
        host: broken.host,
        code: "IMAGE_PULL_FAILED",
        atLogin: true,
        says: /answered 503/,
      },
      {
        name: "destination unreachable",
        side: "destination",
        host: closed,
        url: closed,
        code: "IMAGE_PUSH_FAILED",
        atLogin: true,
        says: /Connection refused|connect/i,
      },
      {
        name: "destination TLS failure (self-signed CA not trusted)",
        side: "destination",
        host: tls.host,
        url: `https://${tls.host}`,
        code: "IMAGE_PUSH_FAILED",
        atLogin: true,
        says: /TLS verification failed: .* signed by a CA this host does not trust .*set caFile/,
      },
      {
        name: "destination 401 (wrong password)",
        side: "destination",
        host: auth.host,
        url: auth.host,
        settings: login,
        code: "LOGIN_FAILED",
        atLogin: true,
        says: new RegExp(
          `${auth.host} refused the password of user "mirror" from \\$\\{SITE_PASSWORD\\} \\(registries\\.dr\\.password\\)`,
        ),
      },
      {
        name: "destination 403",
        side: "destination",
        host: forbidden.host,
        url: forbidden.host,
        settings: login,
        code: "LOGIN_FAILED",
        atLogin: true,
        says: /refused the password of user "mirror"/,
      },
      {
        name: "destination 404",
        side: "destination",
        host: missing.host,
        url: missing.host,
        code: "IMAGE_PUSH_FAILED",
        atLogin: false,
        says: /answered 404/,
      },
      {
        name: "destination 503",
        side: "destination",
        host: broken.host,
        url: broken.host,
        code: "IMAGE_PUSH_FAILED",
        atLogin: true,
        says: /answered 503/,
      },
    ];
    for (const row of rows) {
      await t.step(`${row.name}: ${row.code}`, async () => {
        const dir = await Deno.makeTempDir({ prefix: "bb-codes-" });
        try {
          const from = row.side === "source" ? row.host : src.host;
          const images = row.name.startsWith("source 404")
            ? ["team/absent:1", "team/gone:2"]
            : ["team/a:1", "team/b:1"];
          const run = await mirror(dir, {
            registries: {
              dr: {
                url: row.side === "destination" ? row.url : dst.host,
                namespace: "mirror",
                kind: "registry",
                ...(row.side === "destination" ? row.settings : {}),
              },
            },
            sources: row.side === "source" && row.settings ? { [row.host]: row.settings } : {},
            log: { dir: "./logs" },
            operation: { engine: "registry", retryDelay: 0.05, maxRetries: 1, apiTimeout: 5 },
            images: Object.fromEntries(images.map((i) => [`${from}/${i}`, { targets: ["dr"] }])),
          }, { env: { SITE_PASSWORD: WRONG }, timeoutMs: 60_000 });
          assert.equal(run.code, 1, run.stdout + run.stderr);
          assert.ok(run.report, run.stderr);
          assert.deepEqual(
            run.report.entries.map((e) => [e.status, e.code]),
            images.map(() => ["failed", row.code]),
            run.stdout + run.stderr,
          );
          const log = await Deno.readTextFile(`${dir}/logs/bananna-bot.log`);
          const errors = log.split("\n").filter((l) =>
            l.includes("[ERROR]") && l.includes(row.host)
          );
          if (row.atLogin) {
            assert.equal(errors.length, 1, `one line per registry:\n${errors.join("\n")}`);
            assert.match(errors[0], new RegExp(`\\[ERROR\\] \\[${row.code}\\] Login: `));
          } else {
            assert.equal(errors.length, images.length, errors.join("\n"));
            for (const line of errors) assert.match(line, new RegExp(`\\[${row.code}\\]`));
          }
          for (const line of errors) assert.match(line, row.says);
          const everything = log + run.stdout + run.stderr + JSON.stringify(run.report);
          assert.doesNotMatch(everything, new RegExp(WRONG), "the password is never shown");
          assert.doesNotMatch(
            everything,
            row.side === "destination" ? /IMAGE_PULL_FAILED/ : /IMAGE_PUSH_FAILED/,
          );
        } finally {
          await Deno.remove(dir, { recursive: true });
        }
      });
    }
  },
});
