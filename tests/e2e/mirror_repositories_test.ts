/**
 * `main.ts mirror` with a `repositories` section, as a subprocess against real registries: the
 * rules select exactly the expected tags from a 250-tag repository served in pages of 100 (listed
 * once per run for two targets), the dry run shows each rule's counts and why each tag was dropped,
 * `--only` takes a repository key, a new upstream release is picked up while an old one stays,
 * `latest` follows, a mutable tag upstream moved is copied again (IMAGE_TAG_UPDATED) while a
 * non-mutable one is drift, and listings that fail are failed tasks (exit 1), not a crash.
 */
import assert from "node:assert/strict";
import { stringify } from "yaml";
import { runCli } from "../support/cli.ts";
import { headDigest, pushTestImage } from "../support/images.ts";
import { startPagingProxy } from "../support/paging_proxy.ts";
import { registryBinaryAvailable, startRegistry, type TestRegistry } from "../support/registry.ts";
import { pushTags, repositoryTags } from "../support/tag_fixture.ts";
import type { Report } from "../../lib/mirror/report.ts";
import { registryTarget } from "../support/e2e_kit.ts";

const skip = registryBinaryAvailable() ? "" : " (ignored: docker-registry is not installed)";

interface Env {
  dir: string;
  config: string;
  vars: Record<string, string>;
}

async function writeConfig(
  dir: string,
  config: Record<string, unknown>,
  vars: Record<string, string> = {},
): Promise<Env> {
  const path = `${dir}/config.yaml`;
  await Deno.writeTextFile(path, stringify(config));
  return { dir, config: path, vars };
}

function baseConfig(dst: TestRegistry, more: Record<string, unknown>): Record<string, unknown> {
  // With htpasswd, the password comes from DST_PASSWORD (Env.vars).
  const login = Boolean(dst.username);
  return {
    registries: {
      dr: registryTarget(dst, { login }),
      bk: registryTarget(dst, { namespace: "backup", login }),
    },
    log: { dir: "./logs", level: "DEBUG" },
    operation: { engine: "registry", retryDelay: 0.05, maxRetries: 1 },
    ...more,
  };
}

async function mirror(env: Env, extra: string[] = []) {
  const result = await runCli(
    ["mirror", "--config", env.config, "--non-interactive", "--report", `${env.dir}/report.json`]
      .concat(extra),
    { cwd: env.dir, env: env.vars },
  );
  let report: Report = null as unknown as Report;
  try {
    report = JSON.parse(await Deno.readTextFile(`${env.dir}/report.json`));
    await Deno.remove(`${env.dir}/report.json`);
  } catch {
    // no report
  }
  // A dry run writes no log file: its log lines are on the console only.
  const log = extra.includes("--dry-run")
    ? result.stdout + result.stderr
    : await Deno.readTextFile(`${env.dir}/logs/bananna-bot.log`).catch(() => "");
  await Deno.remove(`${env.dir}/logs/bananna-bot.log`).catch(() => {});
  return { ...result, report, log };
}

function statuses(report: Report): string[] {
  return report.entries.map((e) =>
    `${e.destination.replace(/^[^/]+\//, "")} ${e.status} ${e.code}`
  );
}

async function destinationTags(reg: TestRegistry, repository: string): Promise<string[]> {
  const res = await fetch(`${reg.url}/v2/${repository}/tags/list`);
  if (res.status === 404) {
    await res.body?.cancel();
    return [];
  }
  return ((await res.json()).tags ?? []).sort();
}

/** Tag-list pages the run read (the login's access check asks for `n=1`). */
function listings(proxy: { tagListRequests: string[] }): number {
  return proxy.tagListRequests.filter((r) => /[?&]n=1000\b/.test(r)).length;
}

Deno.test({
  name: `mirror selects tags by rules from a paged 250-tag repository; dry run; --only${skip}`,
  ignore: Boolean(skip),
  async fn(t) {
    await using src = await startRegistry({ auth: "none" });
    await using dst = await startRegistry({ auth: "none" });
    await using proxy = startPagingProxy(src, { pageSize: 100 });
    await pushTags(src, "team/app", repositoryTags());
    await pushTestImage(src, "team/other:1", { kind: "oci", seed: 5 });
    const dir = await Deno.makeTempDir({ prefix: "bb-e2e-sel-" });
    const app = `${proxy.host}/team/app`;
    const config = (tags: Record<string, unknown>) =>
      baseConfig(dst, {
        images: { [`${src.host}/team/other:1`]: { targets: ["dr"] } },
        repositories: { [app]: { targets: ["dr", "bk"], tags } },
      });
    try {
      await t.step("dry run with --only <repository key>: counts, drop reasons, plan", async () => {
        const env = await writeConfig(dir, config({ exclude: ["-"], newest: 3 }));
        const run = await mirror(env, ["--dry-run", "--only", app]);
        assert.equal(run.code, 0, run.stderr);
        assert.deepEqual(statuses(run.report), [
          "mirror/app:v2.4.9 planned IMAGE_PLANNED",
          "backup/app:v2.4.9 planned IMAGE_PLANNED",
          "mirror/app:v2.4.8 planned IMAGE_PLANNED",
          "backup/app:v2.4.8 planned IMAGE_PLANNED",
          "mirror/app:v2.4.7 planned IMAGE_PLANNED",
          "backup/app:v2.4.7 planned IMAGE_PLANNED",
        ]);
        const [selection] = run.report.selection;
        assert.equal(run.report.selection.length, 1);
        assert.equal(selection.repository, app);
        assert.equal(selection.listed.length, 250);
        assert.deepEqual(selection.selected, ["v2.4.9", "v2.4.8", "v2.4.7"]);
        assert.deepEqual(selection.rules, [
          { rule: "exclude", kept: 165, dropped: 85 },
          { rule: "not-a-version", kept: 160, dropped: 5 },
          { rule: "newest", kept: 3, dropped: 157 },
        ]);
        assert.deepEqual(selection.dropped.find((d) => d.tag === "2.0.0-rc.7"), {
          tag: "2.0.0-rc.7",
          rule: "exclude",
          reason: "matches exclude pattern /-/",
        });
        assert.deepEqual(selection.dropped.find((d) => d.tag === "v2.4.6"), {
          tag: "v2.4.6",
          rule: "newest",
          reason: "not among the 3 newest (rank 4)",
        });
        // The log (and the console) says the same, one line per rule and per dropped tag.
        assert.match(run.log, /\[IMAGE_PLANNED\] Plan: repository \S+: 250 tag\(s\) listed: /);
        assert.match(
          run.log,
          /\[IMAGE_PLANNED\] Plan: repository \S+: rule not-a-version: kept 160, dropped 5\n/,
        );
        assert.match(
          run.log,
          /Plan: repository \S+: dropped stable by not-a-version: not a version; newest 3 ranks versions only\n/,
        );
        assert.equal(run.log.match(/Plan: repository \S+: dropped /g)?.length, 247);
        assert.match(run.log, /Plan: would push {3}\S+\/team\/app:v2\.4\.9 -> dr /);
        assert.match(run.stdout + run.stderr, /rule newest: kept 3, dropped 157/);
        // Listed once for two targets: 250 tags in pages of 100 (`n=1` is the login's check).
        assert.equal(listings(proxy), 3);
        assert.deepEqual(await destinationTags(dst, "mirror/app"), []);
      });

      await t.step("a real run mirrors exactly the selected tags to both targets", async () => {
        const env = await writeConfig(
          dir,
          config({ include: ["^\\d+\\.\\d+\\.\\d+$"], semver: ">=1.8.0 <2" }),
        );
        const before = listings(proxy);
        const run = await mirror(env);
        assert.equal(run.code, 0, run.stderr);
        const expected = [];
        for (const m of [8, 9]) for (let p = 0; p < 10; p++) expected.push(`1.${m}.${p}`);
        expected.sort();
        assert.deepEqual(await destinationTags(dst, "mirror/app"), [...expected, "latest"].sort());
        assert.deepEqual(await destinationTags(dst, "backup/app"), [...expected, "latest"].sort());
        assert.deepEqual(await destinationTags(dst, "mirror/other"), ["1", "latest"]);
        assert.deepEqual(run.report.selection[0].rules, [
          { rule: "include", kept: 100, dropped: 150 },
          { rule: "semver", kept: 20, dropped: 80 },
        ]);
        assert.equal(run.report.totals.pushed, 41);
        assert.equal(listings(proxy) - before, 3);
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    `mirror follows upstream: new release picked up, old kept, latest follows, mutable re-copied${skip}`,
  ignore: Boolean(skip),
  async fn() {
    await using src = await startRegistry({ auth: "none" });
    await using dst = await startRegistry({ auth: "htpasswd" });
    const dir = await Deno.makeTempDir({ prefix: "bb-e2e-sel-" });
    try {
      await pushTestImage(src, "team/rel:1.0.0", { kind: "oci", seed: 11 });
      const r110 = await pushTestImage(src, "team/rel:1.1.0", { kind: "oci", seed: 12 });
      const r120 = await pushTestImage(src, "team/rel:1.2.0", { kind: "oci", seed: 13 });
      const m10 = await pushTestImage(src, "team/mut:1.0", { kind: "oci", seed: 21 });
      const m101 = await pushTestImage(src, "team/mut:1.0.1", { kind: "oci", seed: 22 });
      const env = await writeConfig(
        dir,
        baseConfig(dst, {
          repositories: {
            [`${src.host}/team/rel`]: { targets: ["dr"], tags: { newest: 2 } },
            [`${src.host}/team/mut`]: {
              targets: ["dr"],
              tags: { include: ["^1\\.0"], mutable: ["1.0"] },
            },
          },
        }),
        { DST_PASSWORD: dst.password ?? "" },
      );
      const first = await mirror(env);
      assert.equal(first.code, 0, first.stderr);
      assert.deepEqual(statuses(first.report), [
        "mirror/rel:1.2.0 pushed IMAGE_PUSHED",
        "mirror/rel:1.1.0 pushed IMAGE_PUSHED",
        "mirror/mut:1.0.1 pushed IMAGE_PUSHED",
        "mirror/mut:1.0 pushed IMAGE_PUSHED",
      ]);
      assert.equal(await headDigest(dst, "mirror/rel:latest"), r120.digest);
      // Logins cover a config with repositories only: the htpasswd target was logged in to.
      assert.ok(
        first.log.includes(`[LOGIN_SUCCESS] Login: ${dst.host}: credentials from config accepted`),
        first.log,
      );

      // Upstream: a new release, and both mut tags moved to other images.
      const r130 = await pushTestImage(src, "team/rel:1.3.0", { kind: "oci", seed: 14 });
      const m10b = await pushTestImage(src, "team/mut:1.0", { kind: "oci", seed: 23 });
      await pushTestImage(src, "team/mut:1.0.1", { kind: "oci", seed: 24 });
      const second = await mirror(env);
      assert.equal(second.code, 0, second.stderr);
      assert.deepEqual(statuses(second.report), [
        "mirror/rel:1.3.0 pushed IMAGE_PUSHED",
        "mirror/rel:1.2.0 exists IMAGE_ALREADY_EXISTS",
        "mirror/mut:1.0.1 drift IMAGE_TAG_DRIFT",
        "mirror/mut:1.0 pushed IMAGE_TAG_UPDATED",
      ]);
      // Nothing is deleted: 1.1.0, no longer among the 2 newest, stays; latest follows to 1.3.0.
      assert.equal(await headDigest(dst, "mirror/rel:1.1.0"), r110.digest);
      assert.equal(await headDigest(dst, "mirror/rel:latest"), r130.digest);
      // The mutable tag follows upstream; the other one is left untouched.
      assert.equal(await headDigest(dst, "mirror/mut:1.0"), m10b.digest);
      assert.equal(await headDigest(dst, "mirror/mut:1.0.1"), m101.digest);
      const updated = second.log.split("\n").find((l) => l.includes("[IMAGE_TAG_UPDATED]"));
      assert.ok(updated, second.log);
      assert.ok(updated.includes(m10.digest) && updated.includes(m10b.digest), updated);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/** A registry whose tag list always has a next page (and answers 200 to everything else). */
function startEndlessTagList() {
  let pages = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const url = new URL(req.url);
    if (url.pathname !== "/v2/team/loop/tags/list") return new Response("{}", { status: 200 });
    pages++;
    // Endless for the tool's page cap; a run whose cap regressed still ends after 20,000 pages.
    const next = pages < 20_000
      ? { link: `</v2/team/loop/tags/list?last=p${pages}&n=1000>; rel="next"` }
      : undefined;
    return Response.json({ name: "team/loop", tags: [`p${pages}`] }, { headers: next });
  });
  return {
    host: `127.0.0.1:${(server.addr as Deno.NetAddr).port}`,
    pages: () => pages,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

Deno.test({
  name: `mirror: a listing that never ends and a 404 tag list are failed tasks, exit 1${skip}`,
  ignore: Boolean(skip),
  async fn() {
    await using src = await startRegistry({ auth: "none" });
    await using dst = await startRegistry({ auth: "none" });
    await using endless = startEndlessTagList();
    const dir = await Deno.makeTempDir({ prefix: "bb-e2e-sel-" });
    try {
      await pushTestImage(src, "team/ok:1.0.0", { kind: "oci", seed: 31 });
      const env = await writeConfig(
        dir,
        baseConfig(dst, {
          operation: { engine: "registry", retryDelay: 0.05, maxRetries: 1, continueOnError: true },
          repositories: {
            [`${endless.host}/team/loop`]: { targets: ["dr"], tags: {} },
            [`${src.host}/team/absent`]: { targets: ["dr", "bk"], tags: {} },
            [`${src.host}/team/ok`]: { targets: ["dr"], tags: {} },
          },
        }),
      );
      const run = await mirror(env);
      assert.equal(run.code, 1, run.stderr);
      assert.doesNotMatch(run.stderr, /error: Uncaught|at file:/);
      assert.deepEqual(statuses(run.report), [
        "mirror/loop failed IMAGE_MANIFEST_INVALID",
        "mirror/absent failed IMAGE_NOT_FOUND",
        "backup/absent failed IMAGE_NOT_FOUND",
        "mirror/ok:1.0.0 pushed IMAGE_PUSHED",
      ]);
      // 1000 pages of the listing, and the login's access check (`n=1`).
      assert.equal(endless.pages(), 1001);
      assert.match(run.report.entries[0].error ?? "", /still had a next page after 1000 pages/);
      // A 404 listing is a repository that is not there, not an empty one.
      assert.match(
        run.report.entries[1].error ?? "",
        /team\/absent: repository not found \(its tag list answered 404\)/,
      );
      assert.doesNotMatch(run.report.entries[1].error ?? "", /lists no tags/);
      assert.deepEqual(run.report.selection.map((s) => s.code), [
        "IMAGE_MANIFEST_INVALID",
        "IMAGE_NOT_FOUND",
        null,
      ]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
