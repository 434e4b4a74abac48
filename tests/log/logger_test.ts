import assert from "node:assert/strict";
import { formatLine, Logger, type LoggerSettings } from "../../lib/log/logger.ts";
import { Secrets } from "../../lib/log/redact.ts";
import type { Level } from "../../lib/log/codes.ts";

function settings(dir: string, extra: Partial<LoggerSettings> = {}): LoggerSettings {
  return {
    level: "INFO",
    file: "bananna-bot.log",
    dir,
    rotationDays: 7,
    consoleOutput: true,
    keepArchives: 0,
    ...extra,
  };
}

Deno.test("formatLine() gives the seed's exact format in local time", () => {
  const date = new Date(2025, 9, 4, 4, 30, 15);
  assert.equal(
    formatLine(date, "INFO", "SUCCESS", "bananna-bot Startup", "bananna-bot 1.0.0 starting up"),
    "2025-10-04 04:30:15 [INFO] [SUCCESS] bananna-bot Startup: bananna-bot 1.0.0 starting up",
  );
});

Deno.test("Logger: each line has its own clock reading to the second (across seconds, back in time), and a long line of any script is written whole", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const times = [
      new Date(2025, 9, 4, 4, 30, 15, 998),
      new Date(2025, 9, 4, 4, 30, 15, 999),
      new Date(2025, 9, 4, 4, 30, 16, 0),
      new Date(2025, 9, 4, 4, 30, 14, 500),
      new Date(2025, 9, 5, 0, 0, 0, 1),
    ];
    let i = 0;
    const logger = await Logger.open({
      settings: settings(`${dir}/logs`, { consoleOutput: false }),
      clock: () => times[Math.min(i, times.length - 1)],
      secrets: new Secrets(),
      rotate: false,
    });
    for (; i < times.length; i++) logger.info("IMAGE_PUSHED", "Mirror", `line ${i}`);
    // Past the encoding buffer in characters, and in bytes only (3 per character).
    const long = "é€😀x".repeat(5000);
    const wide = "€".repeat(6000);
    logger.info("IMAGE_PUSHED", "Mirror", long);
    logger.info("IMAGE_PUSHED", "Mirror", wide);
    await logger.close();
    const lines = (await Deno.readTextFile(`${dir}/logs/bananna-bot.log`)).trimEnd().split("\n");
    assert.deepEqual(lines, [
      ...times.map((t, n) => formatLine(t, "INFO", "IMAGE_PUSHED", "Mirror", `line ${n}`)),
      formatLine(times[4], "INFO", "IMAGE_PUSHED", "Mirror", long),
      formatLine(times[4], "INFO", "IMAGE_PUSHED", "Mirror", wide),
    ]);
    assert.deepEqual(lines.slice(0, 5).map((l) => l.slice(0, 19)), [
      "2025-10-04 04:30:15",
      "2025-10-04 04:30:15",
      "2025-10-04 04:30:16",
      "2025-10-04 04:30:14",
      "2025-10-05 00:00:00",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Logger writes one line per event, filters by level, and masks secrets everywhere", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const secrets = new Secrets();
    secrets.addBasic("robot+mirror", "s3cret-password-1");
    secrets.add("quay-api-token-XYZ123");
    const consoleLines: [string, Level][] = [];
    const logger = await Logger.open({
      settings: settings(`${dir}/logs`),
      console: (line, level) => consoleLines.push([line, level]),
      clock: () => new Date(2025, 9, 4, 4, 30, 15),
      secrets,
    });
    logger.debug("SUCCESS", "Debug", "dropped below INFO");
    logger.info("IMAGE_PUSHED", "Mirror", "nginx:1.25 -> prod");
    logger.error("LOGIN_FAILED", "Login", "password s3cret-password-1 refused\nsecond line");
    logger.warn("REPO_ACCESS_DENIED", "Quay", "Authorization: Bearer quay-api-token-XYZ123");
    logger.info(
      "SUCCESS",
      "Net",
      "https://robot:other-pass@quay.example/v2/ and Basic " +
        btoa("robot+mirror:s3cret-password-1"),
    );
    await logger.close();
    const text = await Deno.readTextFile(`${dir}/logs/bananna-bot.log`);
    const lines = text.trimEnd().split("\n");
    assert.equal(lines.length, 4);
    assert.equal(lines[0], "2025-10-04 04:30:15 [INFO] [IMAGE_PUSHED] Mirror: nginx:1.25 -> prod");
    assert.equal(
      lines[1],
      "2025-10-04 04:30:15 [ERROR] [LOGIN_FAILED] Login: password *** refused | second line",
    );
    for (
      const secret of [
        "s3cret-password-1",
        "quay-api-token-XYZ123",
        "other-pass",
        btoa("robot+mirror:s3cret-password-1"),
      ]
    ) {
      assert.ok(!text.includes(secret), `file leaks ${secret}`);
      assert.ok(!consoleLines.some(([l]) => l.includes(secret)), `console leaks ${secret}`);
    }
    assert.deepEqual(consoleLines.map(([, level]) => level), ["INFO", "ERROR", "WARNING", "INFO"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Logger keeps console quiet when consoleOutput is false and rotates at open when due", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const clock = { now: new Date(2025, 0, 1).getTime() };
    const open = () =>
      Logger.open({
        settings: settings(dir, { consoleOutput: false, rotationDays: 1 }),
        console: () => assert.fail("console used"),
        clock: () => new Date(clock.now),
        secrets: new Secrets(),
      });
    const first = await open();
    first.info("SUCCESS", "Op", "day one");
    await first.close();
    clock.now += 2 * 86_400_000;
    const second = await open();
    second.info("SUCCESS", "Op", "day three");
    await second.close();
    const text = await Deno.readTextFile(`${dir}/bananna-bot.log`);
    assert.match(text, /\[MIRROR_LOG_ROTATED\] Log: Archived the previous log to .*\.log\.gz/);
    assert.match(text, /day three/);
    assert.doesNotMatch(text, /day one/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Logger with rotate: false (no run lock) never rotates, at open or during the run", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const clock = { now: new Date(2025, 0, 1).getTime() };
    const open = (rotate: boolean) =>
      Logger.open({
        settings: settings(dir, { consoleOutput: false, rotationDays: 1 }),
        clock: () => new Date(clock.now),
        rotate,
        secrets: new Secrets(),
      });
    const holder = await open(true);
    holder.info("SUCCESS", "Op", "the lock holder's line");
    clock.now += 2 * 86_400_000;
    const refused = await open(false);
    refused.error("MIRROR_LOCKED", "Mirror", "refused");
    clock.now += 120_000; // past the in-run rotation check
    refused.error("MIRROR_LOCKED", "Mirror", "still refused");
    await refused.close();
    await holder.close();
    const names = [...Deno.readDirSync(dir)].map((e) => e.name);
    assert.ok(!names.some((n) => n.endsWith(".gz")), names.join());
    const text = await Deno.readTextFile(`${dir}/bananna-bot.log`);
    assert.match(text, /the lock holder's line[\s\S]*refused[\s\S]*still refused/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Logger.open() refuses a symbolic link planted as the log (MIRROR_UNSAFE_PATH)", async () => {
  const dir = await Deno.makeTempDir();
  const outside = await Deno.makeTempFile();
  try {
    await Deno.writeTextFile(outside, "outside\n");
    await Deno.symlink(outside, `${dir}/bananna-bot.log`);
    await assert.rejects(
      () =>
        Logger.open({ settings: settings(dir, { consoleOutput: false }), secrets: new Secrets() }),
      /MIRROR_UNSAFE_PATH|symbolic link/,
    );
    assert.equal(await Deno.readTextFile(outside), "outside\n");
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(outside);
  }
});
