import assert from "node:assert/strict";
import { MirrorError } from "../lib/errors.ts";
import {
  HttpError,
  parseRetryAfter,
  RETRY_AFTER_CAP_MS,
  retryableStatus,
  retryVerdict,
} from "../lib/http_error.ts";
import { DeliveryError } from "../lib/ops/ops_http.ts";
import { QuayError } from "../lib/registry/quay_client.ts";
import { errorFromResponse, RegistryError } from "../lib/registry/registry_error.ts";

const NOW = Date.parse("Wed, 21 Oct 2015 07:28:00 GMT");
const YEAR = 365 * 86_400_000;

Deno.test("parseRetryAfter(): seconds, the three HTTP date forms, garbage, huge values capped", () => {
  const rows: [string | null, number | undefined][] = [
    // delta seconds
    ["0", 0],
    ["2", 2000],
    [" 120 ", 120_000],
    // HTTP dates: IMF-fixdate, RFC 850, asctime; a past date is 0
    ["Wed, 21 Oct 2015 07:28:30 GMT", 30_000],
    ["Wednesday, 21-Oct-15 07:28:30 GMT", 30_000],
    ["Wed Oct 21 07:28:30 2015", 30_000],
    ["Wed, 21 Oct 2015 07:27:00 GMT", 0],
    // garbage: the policy's backoff, never "at once"
    [null, undefined],
    ["", undefined],
    ["soon", undefined],
    ["1.5", undefined],
    ["-5", undefined],
    ["12 monkeys", undefined],
    ["0x10", undefined],
    // huge: capped at a year, so a date made from it stays valid
    [String(2 ** 40), YEAR],
    ["100000000000000000000", YEAR],
    ["9".repeat(400), YEAR],
    ["Fri, 01 Jan 9999 00:00:00 GMT", YEAR],
  ];
  for (const [value, expected] of rows) {
    assert.equal(parseRetryAfter(value, NOW), expected, `Retry-After: ${value}`);
  }
  assert.equal(RETRY_AFTER_CAP_MS, YEAR);
});

/** An HTTP date an hour from now. */
function inHour(): string {
  return new Date(Date.now() + 3_600_000).toUTCString();
}

const RETRIED = [408, 429, 500, 502, 503, 504];
const FINAL = [400, 401, 403, 404, 405, 409, 411, 413, 416];
const METHODS = ["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE"];
const RETRY_AFTER: [string | undefined, number | undefined][] = [
  [undefined, undefined],
  ["3", 3000],
  // An HTTP date an hour ahead, made right before its answer (see inHour()).
  ["in an hour", 3_600_000],
  ["garbage", undefined],
  ["1.5", undefined],
  [String(2 ** 40), YEAR],
];

Deno.test("retryVerdict(): status x method x Retry-After, as a registry answer makes the error", async () => {
  for (const status of [...RETRIED, ...FINAL]) {
    for (const method of METHODS) {
      for (const [header, wait] of RETRY_AFTER) {
        const value = header === "in an hour" ? inHour() : header;
        const res = new Response(method === "HEAD" ? null : '{"errors":[]}', {
          status,
          headers: value === undefined ? {} : { "retry-after": value },
        });
        const error = await errorFromResponse(res, {
          method,
          url: new URL("https://r.example/v2/team/app/manifests/1"),
          write: !["GET", "HEAD"].includes(method),
        });
        const verdict = retryVerdict(error);
        const what = `${status} ${method} Retry-After: ${header}`;
        if (RETRIED.includes(status)) {
          assert.equal(verdict.retry, true, what);
          // An HTTP date has whole seconds and is read against the clock: up to 1 s short (the
          // cut fraction) and the few ms since it was made, never more than asked.
          if (header === "in an hour") {
            const after = verdict.afterMs ?? 0;
            assert.ok(after <= 3_600_000 && after > 3_600_000 - 2000, `${what}: ${after} ms`);
          } else assert.equal(verdict.afterMs, wait, what);
        } else {
          assert.deepEqual(verdict, { retry: false }, what);
        }
      }
    }
  }
});

Deno.test("retryVerdict(): each HttpError by its status or its override; other errors by kind", () => {
  assert.deepEqual([0, 200, 404, 407, 408, 429, 499, 500, 599].map(retryableStatus), [
    true,
    false,
    false,
    false,
    true,
    true,
    false,
    true,
    true,
  ]);
  const rows: [string, unknown, { retry: boolean; afterMs?: number }][] = [
    [
      "RegistryError 503 with a wait",
      new RegistryError("IMAGE_PULL_FAILED", "x", { status: 503, retryAfterMs: 5 }),
      { retry: true, afterMs: 5 },
    ],
    [
      "RegistryError of no answer (status 0)",
      new RegistryError("IMAGE_PULL_FAILED", "x", { status: 0 }),
      { retry: true, afterMs: undefined },
    ],
    [
      "RegistryError of a TLS failure (status 0, will not pass)",
      new RegistryError("IMAGE_PULL_FAILED", "x", { status: 0, retryable: false }),
      { retry: false },
    ],
    [
      "RegistryError of a wait too long (429, not retried)",
      new RegistryError("IMAGE_RATE_LIMITED", "x", {
        status: 429,
        retryAfterMs: 86_400_000,
        retryable: false,
      }),
      { retry: false },
    ],
    [
      "QuayError 408",
      new QuayError("REPO_API_ERROR", "x", { status: 408, detail: "" }),
      { retry: true, afterMs: undefined },
    ],
    [
      "QuayError 403",
      new QuayError("REPO_ACCESS_DENIED", "x", { status: 403, detail: "" }),
      { retry: false },
    ],
    [
      "DeliveryError 429 with a wait",
      new DeliveryError("MIRROR_NOTIFY_FAILED", "x", { status: 429, retryAfterMs: 7 }),
      { retry: true, afterMs: 7 },
    ],
    [
      "DeliveryError 404 (a Retry-After on a final answer is no reason)",
      new DeliveryError("MIRROR_NOTIFY_FAILED", "x", { status: 404, retryAfterMs: 7 }),
      { retry: false },
    ],
    ["a catalogue error", new MirrorError("IMAGE_TAG_DRIFT", "x"), { retry: false }],
    ["fetch's TypeError", new TypeError("error sending request"), { retry: true }],
    ["a reset connection", new Deno.errors.ConnectionReset("reset"), { retry: true }],
    ["a timeout", new DOMException("timed out", "TimeoutError"), { retry: true }],
    ["an abort", new DOMException("aborted", "AbortError"), { retry: false }],
    ["a bug", new RangeError("bug"), { retry: false }],
    ["not an error", "text", { retry: false }],
  ];
  for (const [name, error, expected] of rows) {
    assert.deepEqual(retryVerdict(error), expected, name);
  }
  for (const [, error] of rows.slice(0, 8)) {
    assert.ok(error instanceof HttpError && error instanceof MirrorError);
  }
});
