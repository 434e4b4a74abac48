/**
 * What a finished run leaves for its watchers, after the report: the Prometheus metrics file
 * (metrics.ts, written atomically), the Pushgateway PUT of the same text, and one webhook
 * notification (notify.ts). None of them can fail the run or change its exit code: a failure is
 * a WARNING (`MIRROR_METRICS_FAILED`, `MIRROR_NOTIFY_FAILED`) and the run goes on to its end.
 *
 * Which runs publish (see docs/metrics.md):
 * - every run that held the lock: success, failure, interrupted, and one that stopped before
 *   its report (a login refused, docker unavailable): metrics and notification;
 * - a run that found the lock held, or lost it while it ran: the notification only; the metrics
 *   belong to the holder, which writes them when it ends (so two runs never race on the file);
 * - a dry run: nothing (it is read only; its report is the answer);
 * - a config that does not load (exit 2): nothing (no config to say where).
 *
 * An interrupted run sends each request once (no retries) so that it ends within the grace a
 * SIGTERM gives it.
 *
 * @module
 */
import type { ResolvedConfig } from "../config/schema.ts";
import { errorMessage } from "../errors.ts";
import type { Logger } from "../log/logger.ts";
import { base64Utf8, type Secrets } from "../log/redact.ts";
import { readFileCapped, writeFileAtomic } from "../safe_file.ts";
import type { RunEnd } from "./notify.ts";
import type { DeliveryOptions } from "./ops_http.ts";

export type { RunEnd } from "./notify.ts";

/** Options for {@link publishRunEnd}. */
export interface PublishOptions {
  config: ResolvedConfig;
  /** `--metrics-file` (absolute), over `metrics.file`. */
  metricsFile?: string;
  dryRun: boolean;
  /** False when another run held the lock: no metrics then (see the module notes). */
  heldLock: boolean;
  logger: Logger;
  secrets: Secrets;
  /**
   * A sharded run (`--shard`): its metrics go to `<file>.shard-<index>.prom` with a `shard`
   * label, its Pushgateway group gets `/shard/<index>`; each shard notifies for itself.
   */
  shard?: { index: number; count: number };
}

/** Publish the end of a run: metrics file, Pushgateway, notification. Never throws. */
export async function publishRunEnd(end: RunEnd, options: PublishOptions): Promise<void> {
  if (options.dryRun) return;
  try {
    if (options.heldLock) await publishMetrics(end, options);
    await sendNotification(end, options);
  } catch (error) {
    // Neither step throws; this is the guard that keeps the exit code whatever happens.
    options.logger.warn("MIRROR_METRICS_FAILED", "Metrics", errorMessage(error));
  }
}

/**
 * Register what the `metrics` and `notify` sections hold that is secret: header values, the
 * webhook url and its path (a Slack webhook's path is its key), the Pushgateway's userinfo.
 */
export function registerOpsSecrets(config: ResolvedConfig, secrets: Secrets): void {
  const notify = config.notify;
  if (notify) {
    for (const value of Object.values(notify.headers)) {
      secrets.add(value);
      // `Bearer x` and `Basic x`: the token alone too.
      secrets.add(/^\S+\s+(\S+)$/.exec(value)?.[1]);
    }
    secrets.add(notify.webhook);
    const path = safeUrl(notify.webhook)?.pathname;
    if (path && path.length > 1) secrets.add(path);
  }
  const push = config.metrics?.pushgateway ? safeUrl(config.metrics.pushgateway) : undefined;
  if (push?.password) {
    secrets.addBasic(decodeURIComponent(push.username), decodeURIComponent(push.password));
  }
}

/** A shard's metrics file: `metrics.prom` -> `metrics.shard-2.prom` (else `.shard-2` appended). */
function shardFile(path: string, index: number): string {
  return /\.prom$/.test(path)
    ? path.replace(/\.prom$/, `.shard-${index}.prom`)
    : `${path}.shard-${index}`;
}

/** The path of the file whose last success this run keeps (metrics file, else the log dir's). */
function metricsPaths(options: PublishOptions): { file?: string; previous?: string } {
  const configured = options.metricsFile ?? options.config.metrics?.file;
  const file = configured && options.shard
    ? shardFile(configured, options.shard.index)
    : configured;
  if (file) return { file, previous: file };
  // Pushgateway alone: the text is kept in the log dir so a failed run can carry the last success.
  if (options.config.metrics?.pushgateway) {
    return { previous: `${options.config.log.dir}/last-metrics.prom` };
  }
  return {};
}

async function publishMetrics(end: RunEnd, options: PublishOptions): Promise<void> {
  const { file, previous } = metricsPaths(options);
  const pushgateway = options.config.metrics?.pushgateway;
  if (!previous) return;
  // The metrics text, the notification and their delivery are loaded at the end of a run, where
  // they are used: not before the run's first request.
  const [{ metricsText, parseLastSuccess }, { deliver }] = await Promise.all([
    import("./metrics.ts"),
    import("./ops_http.ts"),
  ]);
  const { logger, config } = options;
  const text = metricsText({
    report: end.report,
    exitCode: end.exitCode,
    startedAt: end.startedAt,
    endedAt: end.endedAt,
    targets: Object.keys(config.registries),
    previousLastSuccess: parseLastSuccess(await readPrevious(previous)),
    shard: options.shard?.index,
  });
  try {
    await writeFileAtomic(previous, text);
    if (file) logger.info("SUCCESS", "Metrics", `Metrics written to ${file}`);
  } catch (error) {
    logger.warn(
      "MIRROR_METRICS_FAILED",
      "Metrics",
      `Cannot write the metrics file ${previous}: ${errorMessage(error)}`,
    );
  }
  if (!pushgateway) return;
  const job = config.metrics?.job ?? "bananna_bot";
  const group = options.shard ? `/shard/${options.shard.index}` : "";
  const url = new URL(`${pushgateway.replace(/\/+$/, "")}/metrics/job/${job}${group}`);
  // `user:password@` in the url is Basic auth (fetch refuses credentials in a url).
  const basic = url.username
    ? `Basic ${
      base64Utf8(`${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`)
    }`
    : undefined;
  url.username = "";
  url.password = "";
  const label = `Pushgateway ${url.origin}${url.pathname}`;
  try {
    await deliver({
      method: "PUT",
      url,
      label,
      code: "MIRROR_METRICS_FAILED",
      headers: {
        "content-type": "text/plain; version=0.0.4; charset=utf-8",
        ...(basic ? { authorization: basic } : {}),
      },
      body: text,
    }, deliveryOptions(end, options, config.metrics ?? {}, "Metrics"));
    logger.info("SUCCESS", "Metrics", `Metrics pushed to ${label}`);
  } catch (error) {
    logger.warn(
      "MIRROR_METRICS_FAILED",
      "Metrics",
      `${errorMessage(error)}; the run's outcome is unchanged`,
    );
  }
}

async function sendNotification(end: RunEnd, options: PublishOptions): Promise<void> {
  const notify = options.config.notify;
  if (!notify) return;
  const [{ notificationJson, notifyReasons, slackMessage }, { deliver }] = await Promise.all([
    import("./notify.ts"),
    import("./ops_http.ts"),
  ]);
  const { logger, secrets } = options;
  const reasons = notifyReasons(end, notify.on);
  if (reasons.length === 0) {
    logger.debug("SUCCESS", "Notify", `No notification: the run matches none of ${notify.on}`);
    return;
  }
  const url = new URL(notify.webhook);
  // The path of a webhook url is often its key (Slack): the origin only, in every message.
  const label = `webhook ${url.origin}/…`;
  const body = notificationJson(end, { reasons, secrets });
  const payload = notify.format === "slack" ? slackMessage(body) : body;
  try {
    const { attempts } = await deliver({
      method: "POST",
      url,
      label,
      code: "MIRROR_NOTIFY_FAILED",
      headers: { "content-type": "application/json", ...notify.headers },
      body: JSON.stringify(payload),
      guarded: false,
    }, deliveryOptions(end, options, notify, "Notify"));
    logger.info(
      "SUCCESS",
      "Notify",
      `Notification sent to ${label} (${reasons.join(", ")}${
        attempts > 1 ? `; ${attempts} attempts` : ""
      })`,
    );
  } catch (error) {
    logger.warn(
      "MIRROR_NOTIFY_FAILED",
      "Notify",
      `${errorMessage(error)}; the run's outcome is unchanged`,
    );
  }
}

function deliveryOptions(
  end: RunEnd,
  options: PublishOptions,
  section: { caFile?: string; deadline?: number },
  operation: "Metrics" | "Notify",
): DeliveryOptions {
  const op = options.config.operation;
  const interrupted = end.exitCode === 130 || Boolean(end.report?.interrupted);
  return {
    timeoutMs: op.apiTimeout * 1000,
    deadlineMs: (section.deadline ?? 30) * 1000,
    deadlineSetting: operation === "Metrics" ? "metrics.deadline" : "notify.deadline",
    caFile: section.caFile,
    maxRetries: interrupted ? 0 : op.maxRetries,
    retryDelayMs: op.retryDelay * 1000,
    maxRetryWaitMs: op.maxRetryWait * 1000,
    onRetry: (message, attempt, delayMs) =>
      options.logger.warn(
        "MIRROR_RETRY",
        operation,
        `${message}; retry ${attempt} of ${op.maxRetries} in ${(delayMs / 1000).toFixed(1)} s`,
      ),
  };
}

/** The previous metrics text: a regular file of at most 1 MiB (never a device or a fifo), or null. */
async function readPrevious(path: string): Promise<string | null> {
  try {
    const bytes = await readFileCapped(path, { what: "the metrics file", maxBytes: 1024 * 1024 });
    return new TextDecoder().decode(bytes);
  } catch {
    return null;
  }
}

function safeUrl(text: string): URL | undefined {
  try {
    return new URL(text);
  } catch {
    return undefined;
  }
}
