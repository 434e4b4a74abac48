import assert from "node:assert/strict";
import { classifyDockerFailure, DockerCli, lastLines } from "../../lib/engine/_docker_cli.ts";
import { Secrets } from "../../lib/log/redact.ts";

Deno.test("classifyDockerFailure() tells auth, not-found and passing failures apart", async (t) => {
  const rows: [string, ReturnType<typeof classifyDockerFailure>][] = [
    ["no basic auth credentials", "auth"],
    ["unauthorized: authentication required", "auth"],
    ["denied: requested access to the resource is denied", "auth"],
    ["login attempt to http://127.0.0.1:5000/v2/ failed with status: 401 Unauthorized", "auth"],
    [
      "manifest for 127.0.0.1:5000/a/b:1 not found: manifest unknown: manifest unknown",
      "not-found",
    ],
    ["Error: No such image: 127.0.0.1:5000/a/b:1", "not-found"],
    [
      'Get "http://127.0.0.1:1/v2/": dial tcp 127.0.0.1:1: connect: connection refused',
      "transient",
    ],
    ["received unexpected HTTP status: 503 Service Unavailable", "transient"],
    ['Get "https://127.0.0.1:5000/v2/": net/http: TLS handshake timeout', "transient"],
    ["toomanyrequests: too many requests", "transient"],
    ["read tcp 127.0.0.1:4000->127.0.0.1:5000: read: connection reset by peer", "transient"],
    ["invalid reference format", "other"],
    // Digits inside a digest are not status codes.
    ["Cannot overwrite digest sha256:5034011a401b", "other"],
  ];
  for (const [text, kind] of rows) {
    await t.step(text, () => assert.equal(classifyDockerFailure(text), kind));
  }
});

Deno.test("lastLines() keeps the last non-empty lines", () => {
  assert.equal(lastLines("a\n\nb\nc\nd\n\n"), "b | c | d");
  assert.equal(lastLines("   "), "no message");
});

Deno.test("DockerCli masks secrets in docker's message and feeds stdin", async () => {
  const secrets = new Secrets();
  secrets.add("s3cr3t-value");
  const cli = new DockerCli({
    binary: "sh",
    env: { PATH: Deno.env.get("PATH") },
    timeoutMs: 10_000,
    secrets,
  });
  // `sh -c` stands in for docker here: it echoes stdin to stderr and fails.
  const error = await cli.checked(["-c", "cat >&2; exit 3"], { stdin: "s3cr3t-value" }).then(
    () => undefined,
    (e) => e,
  );
  assert.ok(error);
  assert.equal(error.exitCode, 3);
  assert.ok(!error.message.includes("s3cr3t-value"), error.message);
  assert.match(error.message, /\*\*\*/);
});

Deno.test("DockerCli kills the whole process group on timeout and does not wait for it", async () => {
  const cli = new DockerCli({
    binary: "sh",
    env: { PATH: Deno.env.get("PATH") },
    timeoutMs: 300,
    secrets: new Secrets(),
  });
  const marker = `bb-sleep-${crypto.randomUUID()}`;
  // A child of the CLI (like a credential helper) that would outlive a plain kill of the CLI.
  const started = Date.now();
  const error = await cli.run(["-c", `sh -c 'sleep 120; echo ${marker}' & wait`]).then(
    () => undefined,
    (e) => e,
  );
  assert.equal(error?.code, "DOCKER_TIMEOUT");
  // Not a timing test: a child left alive would hold the pipes for the full 120 s.
  assert.ok(Date.now() - started < 60_000, "run() came back without waiting for the child");
  const ps = await new Deno.Command("ps", { args: ["-eww", "-o", "stat=,args="] }).output();
  const left = new TextDecoder().decode(ps.stdout).split("\n").filter((l) =>
    l.includes(marker) && !l.trim().startsWith("Z")
  );
  assert.deepEqual(left, []);
});
