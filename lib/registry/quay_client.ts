/**
 * Quay's REST API (shared/registry-protocols.md §5): check the token, get and create
 * repositories, quotas, robot grants. Bearer OAuth token; requests go through the shared transport
 * (http_transport.ts: `apiTimeout`, TLS from caFile, redirects that drop the token when
 * they leave the host) and the shared retry policy (retry.ts) with the one HTTP verdict
 * (http_error.ts): retries on network errors that may pass, 408, 429 and 5xx only, honouring
 * Retry-After up to `maxRetryWaitMs` (a longer wanted wait fails at once with IMAGE_RATE_LIMITED). Quay's four error shapes are parsed leniently.
 *
 * Quay's permission rules matter here: a token whose user may create repositories but is not
 * org admin gets 403, not 404, for a missing repository; "already exists" is a 400; a write
 * without a valid token is a 403 "CSRF" body. The client reports what Quay said; the run's rules
 * over it (the plan's 403 read, a repository made to exist) live in lib/mirror/quay_repositories.ts.
 *
 * @module
 */
import { HttpError, parseRetryAfter, retryableStatus } from "../http_error.ts";
import type { Code } from "../log/codes.ts";
import type { Secrets } from "../log/redact.ts";
import { retry, retryPolicy, waitTooLongMessage } from "../retry.ts";
import { type HttpLimits, HttpTransport, limitsOf } from "./http_transport.ts";
import { readBodyCapped, readCapped, RegistryError } from "./registry_error.ts";

/** Bytes a Quay API answer may have (repository and user answers are a few hundred bytes). */
const QUAY_ANSWER_CAP = 1024 * 1024;

/** Options for {@link QuayClient}. */
export interface QuayClientOptions extends HttpLimits {
  /** `https://quay.example.com`. */
  baseUrl: string;
  token: string;
  caFile?: string;
  /** @default 3 */
  maxRetries?: number;
  /** @default 1000 */
  retryDelayMs?: number;
  /** Longest single wait before a retry, in ms (operation.maxRetryWait). @default 300000 */
  maxRetryWaitMs?: number;
  /** The run's secrets: the token is registered there, so logs and reports mask it. */
  secrets: Secrets;
}

/** A repository as Quay describes it. */
export interface QuayRepository {
  namespace: string;
  name: string;
  description: string | null;
  is_public: boolean;
  state?: string;
}

/**
 * A namespace's storage quota as Quay reports it (FEATURE_QUOTA_MANAGEMENT): usage and limit in
 * bytes, and the Warning / Reject limits in percent of the limit (null when not configured).
 */
export interface NamespaceQuota {
  usedBytes: number;
  limitBytes: number;
  warningPercent: number | null;
  rejectPercent: number | null;
}

/** A failed Quay API call: an {@link HttpError} with Quay's error type and detail. */
export class QuayError extends HttpError {
  readonly errorType?: string;
  readonly detail: string;
  /** Create the error. */
  constructor(
    code: Code,
    message: string,
    options: {
      status: number;
      errorType?: string;
      detail: string;
      retryAfterMs?: number;
      /** Override the status's verdict (a TLS failure will not pass). */
      retryable?: boolean;
      cause?: unknown;
    },
  ) {
    super(code, message, options);
    this.name = "QuayError";
    this.errorType = options.errorType;
    this.detail = options.detail;
  }
}

/** Quay's REST API for one Quay host. */
export class QuayClient {
  #base: string;
  #token: string;
  #http: HttpTransport;
  #maxRetries: number;
  #retryDelayMs: number;
  #maxRetryWaitMs: number;

  /** Create the client. */
  constructor(options: QuayClientOptions) {
    this.#base = options.baseUrl.replace(/\/+$/, "");
    this.#token = options.token;
    options.secrets.add(options.token);
    this.#maxRetries = options.maxRetries ?? 3;
    this.#retryDelayMs = options.retryDelayMs ?? 1000;
    this.#maxRetryWaitMs = options.maxRetryWaitMs ?? 300_000;
    this.#http = new HttpTransport({ caFile: options.caFile, ...limitsOf(options) });
  }

  /** Who the token belongs to (`GET /api/v1/user/`); a refused token is LOGIN_FAILED. */
  async checkToken(signal?: AbortSignal): Promise<{ username: string }> {
    const res = await this.#request("GET", "/api/v1/user/", undefined, signal);
    if (res.status === 200) {
      const body = await this.#json(res, "check the API token");
      if (body?.anonymous === true || typeof body?.username !== "string") {
        throw new QuayError(
          "LOGIN_FAILED",
          `Quay at ${this.#base} does not accept the API token (anonymous)`,
          {
            status: 200,
            detail: "anonymous",
          },
        );
      }
      return { username: body.username };
    }
    const error = await this.#error(res, "check the API token");
    throw new QuayError(
      res.status === 401 || res.status === 403 ? "LOGIN_FAILED" : error.code,
      res.status === 401
        ? `Quay at ${this.#base} rejected the API token (401 ${error.detail}); create a new OAuth token`
        : error.message,
      { status: res.status, errorType: error.errorType, detail: error.detail },
    );
  }

  /** The repository, or null when Quay says 404. 401/403 throw (see the module doc). */
  async getRepository(
    namespace: string,
    name: string,
    signal?: AbortSignal,
  ): Promise<QuayRepository | null> {
    const res = await this.#request(
      "GET",
      `/api/v1/repository/${namespace}/${name}?includeTags=false`,
      undefined,
      signal,
    );
    if (res.status === 200) {
      const body = await this.#json(res, `read repository ${namespace}/${name}`);
      if (typeof body !== "object" || body === null || Array.isArray(body)) {
        throw new QuayError(
          "REPO_API_ERROR",
          `Quay API read repository ${namespace}/${name}: the answer is not a JSON object`,
          { status: 200, detail: "malformed" },
        );
      }
      return body as QuayRepository;
    }
    if (res.status === 404) {
      await res.body?.cancel();
      return null;
    }
    throw await this.#error(res, `read repository ${namespace}/${name}`);
  }

  /** Create a repository: "created" (201) or "exists" (400 "Repository already exists"). */
  async createRepository(
    repo: {
      namespace: string;
      name: string;
      description: string;
      visibility?: "private" | "public";
    },
    signal?: AbortSignal,
  ): Promise<"created" | "exists"> {
    const res = await this.#request("POST", "/api/v1/repository", {
      namespace: repo.namespace,
      repository: repo.name,
      visibility: repo.visibility ?? "private",
      description: repo.description,
      repo_kind: "image",
    }, signal);
    if (res.status === 201) {
      await res.body?.cancel();
      return "created";
    }
    const error = await this.#error(
      res,
      `create repository ${repo.namespace}/${repo.name}`,
      "REPO_CREATE_FAILED",
    );
    if (res.status === 400 && /already exists/i.test(error.detail)) return "exists";
    throw error;
  }

  /**
   * The organization's quota: `quota_report` of `GET /api/v1/organization/<org>`, its limits from
   * the same answer's `quotas` or else `GET /api/v1/organization/<org>/quota`. Null when Quay
   * reports no quota (none configured, quota management off) or will not say (any refusal):
   * the pushes then learn it from the registry's 403.
   */
  async getOrganizationQuota(org: string, signal?: AbortSignal): Promise<NamespaceQuota | null> {
    const read = async (path: string) => {
      const res = await this.#request("GET", path, undefined, signal);
      if (res.status === 200) return await this.#json(res, `read the quota of ${org}`);
      await res.body?.cancel();
      return null;
    };
    const body = await read(`/api/v1/organization/${org}`);
    const report = body?.quota_report;
    const used = Number(report?.quota_bytes);
    const limit = Number(report?.configured_quota);
    if (!Number.isFinite(used) || !Number.isFinite(limit) || limit <= 0) return null;
    const quotas = Array.isArray(body?.quotas)
      ? body.quotas
      : await read(`/api/v1/organization/${org}/quota`).catch(() => null);
    const limits: { type?: unknown; limit_percent?: unknown }[] = Array.isArray(quotas?.[0]?.limits)
      ? quotas[0].limits
      : [];
    const percent = (type: string) => {
      const found = limits.find((l) => String(l?.type).toLowerCase() === type);
      const value = Number(found?.limit_percent);
      return found && Number.isFinite(value) && value > 0 ? value : null;
    };
    return {
      usedBytes: used,
      limitBytes: limit,
      warningPercent: percent("warning"),
      rejectPercent: percent("reject"),
    };
  }

  /**
   * Make sure `robot` (`org+name`) may push into the repository: read its role (`GET
   * .../permissions/user/<robot>`) and, unless it is `write` or `admin`, grant `write` (PUT).
   * Quay checks admin on the repository and the token's `repo:admin` scope first: a refusal
   * throws (REPO_ACCESS_DENIED, status 401/403).
   *
   * @returns "granted" when this call gave the role, "had" when the robot already had it.
   */
  async grantRobotWrite(
    repo: { namespace: string; name: string; robot: string },
    signal?: AbortSignal,
  ): Promise<"granted" | "had"> {
    const { namespace, name, robot } = repo;
    if (!/^[a-z0-9][a-z0-9._-]*\+[a-z0-9_]+$/.test(robot)) {
      throw new QuayError("CONFIG_INVALID", `"${robot}" is not a Quay robot name (org+name)`, {
        status: 0,
        detail: "robot name",
      });
    }
    const path = `/api/v1/repository/${namespace}/${name}/permissions/user/${robot}`;
    const doing = `give robot ${robot} write on ${namespace}/${name}`;
    const current = await this.#request("GET", path, undefined, signal);
    if (current.status === 200) {
      const role = (await this.#json(current, doing))?.role;
      if (role === "write" || role === "admin") return "had";
    } else if (current.status !== 400 && current.status !== 404) {
      throw await this.#error(current, doing);
    } else {
      await current.body?.cancel();
    }
    const res = await this.#request("PUT", path, { role: "write" }, signal);
    if (res.status === 200 || res.status === 201) {
      await res.body?.cancel();
      return "granted";
    }
    throw await this.#error(res, doing);
  }

  /** Release connections. */
  close(): void {
    this.#http.close();
  }

  async #request(
    method: string,
    path: string,
    body: unknown,
    signal?: AbortSignal,
  ): Promise<Response> {
    const maxWaitMs = this.#maxRetryWaitMs;
    return await retry(
      async () => {
        let res: Response;
        try {
          res = await this.#http.send({
            method,
            url: new URL(`${this.#base}${path}`),
            headers: {
              accept: "application/json",
              ...(body === undefined ? {} : { "content-type": "application/json" }),
            },
            authorization: `Bearer ${this.#token}`,
            body: body === undefined ? undefined : () => JSON.stringify(body),
            signal,
          });
        } catch (cause) {
          if (signal?.aborted || !(cause instanceof RegistryError)) throw cause;
          // The transport says what failed (no answer within apiTimeout, TLS, reset, redirect)
          // and whether it may pass (a TLS failure will not).
          throw new QuayError("REPO_API_ERROR", `Quay API ${cause.message}`, {
            status: 0,
            detail: "network",
            retryable: cause.retryable,
            cause,
          });
        }
        if (retryableStatus(res.status)) {
          const error = await this.#error(res, `${method} ${path.split("?")[0]}`, "REPO_API_ERROR");
          throw new QuayError(error.code, error.message, {
            status: error.status,
            errorType: error.errorType,
            detail: error.detail,
            retryAfterMs: parseRetryAfter(res.headers.get("retry-after")),
          });
        }
        return res;
      },
      retryPolicy({
        maxRetries: this.#maxRetries,
        retryDelayMs: this.#retryDelayMs,
        maxRetryWaitMs: maxWaitMs,
        onWaitTooLong: (e, wantedMs) =>
          new QuayError("IMAGE_RATE_LIMITED", waitTooLongMessage(e, wantedMs, maxWaitMs), {
            status: e instanceof HttpError ? e.status : 0,
            errorType: e instanceof QuayError ? e.errorType : undefined,
            detail: e instanceof QuayError ? e.detail : "",
            retryAfterMs: wantedMs,
            retryable: false,
            cause: e,
          }),
        signal,
      }),
    );
  }

  /** A 200 answer's JSON, read under {@link QUAY_ANSWER_CAP}; too large or not JSON is REPO_API_ERROR. */
  // deno-lint-ignore no-explicit-any
  async #json(res: Response, doing: string): Promise<any> {
    const bytes = await readBodyCapped(res, QUAY_ANSWER_CAP, (seen) =>
      new QuayError(
        "REPO_API_ERROR",
        `Quay API ${doing}: the answer passed the ${QUAY_ANSWER_CAP}-byte cap (${seen} bytes)`,
        { status: res.status, detail: "too large" },
      ));
    try {
      return JSON.parse(new TextDecoder().decode(bytes));
    } catch {
      throw new QuayError("REPO_API_ERROR", `Quay API ${doing}: the answer is not JSON`, {
        status: res.status,
        detail: "not JSON",
      });
    }
  }

  async #error(
    res: Response,
    doing: string,
    fallback: Code = "REPO_API_ERROR",
  ): Promise<QuayError> {
    const text = await readCapped(res, 4096).catch(() => "");
    let detail = text.trim().slice(0, 300);
    let errorType: string | undefined;
    try {
      const body = JSON.parse(text);
      detail = String(body.detail ?? body.error_message ?? body.error ?? body.message ?? detail);
      errorType = body.error_type ?? body.title;
    } catch {
      // not JSON
    }
    let code: Code = fallback;
    let hint = "";
    if (res.status === 403 && /CSRF/i.test(detail)) {
      code = "REPO_ACCESS_DENIED";
      hint = " (Quay ignored the API token: it is invalid or expired)";
    } else if (res.status === 401) {
      code = "REPO_ACCESS_DENIED";
      hint = " (the API token is invalid or missing)";
    } else if (res.status === 403) {
      code = "REPO_ACCESS_DENIED";
      hint =
        " (the token's user lacks the permission: it needs repo:create, or admin on the organization)";
    }
    return new QuayError(
      code,
      `Quay could not ${doing}: ${res.status} ${detail}${hint}`,
      { status: res.status, errorType, detail },
    );
  }
}
