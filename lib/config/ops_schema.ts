/**
 * The `metrics` and `notify` sections: what a run leaves behind for the people and tools that
 * watch it (a Prometheus text file and/or a Pushgateway group; one webhook POST per run). Only
 * the shapes and the urls are checked here; lib/ops/ does the work.
 *
 * @module
 */
import { z } from "../zod.ts";
import type { ConfigProblem } from "../errors.ts";
import { isLoopbackHost } from "../registry/reference.ts";

/** An absolute http(s) url, as written (a path prefix is kept). */
const httpUrl = (what: string) =>
  z.string().check(
    z.minLength(1),
    z.refine((value) => {
      try {
        const url = new URL(value);
        return (url.protocol === "http:" || url.protocol === "https:") && url.hostname !== "";
      } catch {
        return false;
      }
    }, { message: `${what} must be an absolute http:// or https:// url` }),
  );

/** `metrics`: the Prometheus text file and/or the Pushgateway. */
export const metricsSchema = z.strictObject({
  /** Prometheus text exposition file, rewritten whole (temp + rename) at the end of every run. */
  file: z.optional(z.string().check(z.minLength(1))),
  /** Pushgateway base url; the run PUTs its series to `<url>/metrics/job/<job>`. */
  pushgateway: z.optional(httpUrl("pushgateway")),
  /** The Pushgateway job (the group's name). */
  job: z._default(
    z.string().check(z.regex(/^[A-Za-z0-9_.:-]+$/, {
      message: "job may hold letters, digits, _ . : - only",
    })),
    "bananna_bot",
  ),
  /** A PEM file with the CA(s) to trust for the Pushgateway, relative to the config file. */
  caFile: z.optional(z.string().check(z.minLength(1))),
  /** Seconds the Pushgateway PUT may take in all, retries and their waits included. */
  deadline: z._default(z.number().check(z.gte(1), z.lte(3_600)), 30),
});

/** When a notification is sent. */
const NOTIFY_EVENTS = ["failure", "drift", "deferred", "always"] as const;
/** One of {@link NOTIFY_EVENTS}. */
export type NotifyEvent = typeof NOTIFY_EVENTS[number];

/** An HTTP header name (RFC 9110 token). */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** `notify`: one webhook POST at the end of a run. */
export const notifySchema = z.strictObject({
  /** The url the notification is POSTed to (a Slack incoming webhook, or any JSON receiver). */
  webhook: httpUrl("webhook"),
  /**
   * When to send: `failure` (exit code not 0: a failed or not started task, an interrupted run,
   * a run that could not start), `drift`, `deferred`; or `[always]`.
   */
  on: z._default(
    z.array(z.enum(NOTIFY_EVENTS)).check(
      z.minLength(1),
      z.refine(
        (on) => !on.includes("always") || on.length === 1,
        { message: "always stands alone: write on: [always], or list failure, drift, deferred" },
      ),
    ),
    ["failure", "drift"],
  ),
  /** Extra request headers (a token: `Authorization: Bearer ${WEBHOOK_TOKEN}`); secrets. */
  headers: z._default(
    z.record(
      z.string(),
      z.string().check(
        z.refine((v) => !/[\r\n]/.test(v), { message: "a header value is one line" }),
      ),
    ).check(z.superRefine((headers, ctx) => {
      for (const name of Object.keys(headers)) {
        if (!HEADER_NAME.test(name)) {
          ctx.addIssue({
            code: "custom",
            path: [name],
            message: `"${name}" is not a valid HTTP header name (letters, digits, - and the like)`,
          });
        }
      }
    })),
    {},
  ),
  /** `json` (bananna-bot's own body) or `slack` (Slack incoming-webhook `text` + `blocks`). */
  format: z._default(z.enum(["json", "slack"]), "json"),
  /** A PEM file with the CA(s) to trust for the webhook, relative to the config file. */
  caFile: z.optional(z.string().check(z.minLength(1))),
  /**
   * Seconds the notification may take in all, retries and their waits included: a receiver that
   * accepts and never answers costs the end of a run this much, never `maxRetries` timeouts.
   */
  deadline: z._default(z.number().check(z.gte(1), z.lte(3_600)), 30),
});

/** `metrics` as written, defaults filled. */
export type MetricsSettings = z.output<typeof metricsSchema>;
/** `notify` as written, defaults filled. */
export type NotifySettings = z.output<typeof notifySchema>;

/** `metrics`, resolved: paths absolute. */
export interface ResolvedMetrics {
  /** Absolute path of the metrics file, if configured. */
  file?: string;
  pushgateway?: string;
  job: string;
  /** Absolute path of the Pushgateway CA file. */
  caFile?: string;
  /** Seconds the Pushgateway PUT may take in all. */
  deadline?: number;
}

/** `notify`, resolved: the CA path absolute. */
export interface ResolvedNotify {
  webhook: string;
  on: NotifyEvent[];
  headers: Record<string, string>;
  format: "json" | "slack";
  caFile?: string;
  /** Seconds the notification may take in all. */
  deadline?: number;
}

/**
 * `openshift.mirrorSets`: the objects `--openshift-mirror-sets` writes. Two configs (prod and DR)
 * writing to one cluster need two names, or one's mirror sets replace the other's.
 */
export const openshiftSchema = z.strictObject({
  mirrorSets: z._default(
    z.strictObject({
      /** Objects `<name>-digest-mirrors` and `<name>-tag-mirrors` (a Kubernetes name). */
      name: z._default(
        z.string().check(
          z.maxLength(230),
          z.regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, {
            message: "a Kubernetes name: lowercase letters, digits, '-' and '.', e.g. bananna-prod",
          }),
        ),
        "bananna",
      ),
      /**
       * `mirrorSourcePolicy` of every entry: `NeverContactSource` for a disconnected cluster (the
       * node never falls back to the upstream registry). Unset: left out (AllowContactingSource).
       */
      sourcePolicy: z.optional(z.enum(["AllowContactingSource", "NeverContactSource"])),
    }),
    { name: "bananna" },
  ),
});

/** `openshift` with defaults. */
export type OpenshiftSettings = z.output<typeof openshiftSchema>;

/**
 * Resolve the two sections against the config file's folder. A webhook on plain http beyond
 * loopback with headers is a warning in `problems`: its headers (a token) would travel in clear.
 */
export function resolveOps(
  data: { metrics?: MetricsSettings; notify?: NotifySettings },
  baseDir: string,
  problems: ConfigProblem[] = [],
): { metrics?: ResolvedMetrics; notify?: ResolvedNotify } {
  const notify = data.notify;
  if (notify && Object.keys(notify.headers).length > 0 && /^http:/i.test(notify.webhook)) {
    const host = URL.parse(notify.webhook)?.host ?? "";
    if (!isLoopbackHost(host)) {
      problems.push({
        path: "notify.webhook",
        message:
          "plain http:// beyond loopback: the notification and its headers (a token) travel in clear text; use https://",
        severity: "warning",
      });
    }
  }
  const abs = (path: string | undefined) =>
    path === undefined || path.startsWith("/")
      ? path
      : `${baseDir}/${path}`.replace(/\/\.\//g, "/");
  return {
    metrics: data.metrics
      ? { ...data.metrics, file: abs(data.metrics.file), caFile: abs(data.metrics.caFile) }
      : undefined,
    notify: data.notify ? { ...data.notify, caFile: abs(data.notify.caFile) } : undefined,
  };
}
