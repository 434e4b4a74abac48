/**
 * Secrets in a config, for masking its problems: every value under a secret key (the schema's
 * {@link SECRET_KEYS}, and anything named like a password or token, at any depth and in any
 * shape) and the userinfo of any url. A config problem never quotes one.
 *
 * @module
 */
import { Secrets } from "../log/redact.ts";
import { type ResolvedConfig, SECRET_KEYS } from "./schema.ts";
import { formatPath } from "./parse_config_text.ts";

/**
 * Keys whose values are treated as secrets in messages even under a typo'd or unknown key; the
 * `notify` webhook url (a Slack webhook's path is its key) and header values too.
 */
const SECRETISH_KEY = /pass|secret|token|auth|cred|pwd|^webhook$|^headers$/i;
/** Longest value quoted back in a message. */
const MAX_SHOWN = 120;

/** Whether a config key holds a secret (a schema secret, or named like one). */
export function isSecretKey(key: string): boolean {
  return SECRET_KEYS.has(key) || SECRETISH_KEY.test(key);
}

/**
 * Every secret in the (expanded) config, to mask in problems: strings under a secret-looking key
 * at any depth and in any shape (a `registries` list too), and the userinfo of any url.
 */
export function configSecrets(value: unknown): Secrets {
  const secrets = new Secrets();
  const stack: { value: unknown; key: string; secret: boolean }[] = [
    { value, key: "", secret: false },
  ];
  while (stack.length > 0) {
    const { value: current, key, secret } = stack.pop() as (typeof stack)[number];
    if (typeof current === "string") {
      if (secret) secrets.add(current);
      const userinfo = urlUserinfo(current, key === "url");
      if (userinfo) {
        secrets.add(userinfo);
        secrets.add(userinfo.slice(userinfo.indexOf(":") + 1));
      }
    } else if (current !== null && typeof current === "object") {
      for (const [name, child] of Object.entries(current)) {
        stack.push({
          value: child,
          key: Array.isArray(current) ? key : name,
          secret: secret || isSecretKey(name),
        });
      }
    }
  }
  return secrets;
}

/**
 * The `user:password` (or token) part of a url: any `scheme://userinfo@host`, or `userinfo@host`
 * in a `url` field (written without a scheme).
 */
export function urlUserinfo(text: string, isUrlField: boolean): string | undefined {
  const match = /^\s*([a-z][a-z0-9+.-]*:\/\/)?([^/?#\s@]+)@[^/?#\s@]/i.exec(text) ??
    /([a-z][a-z0-9+.-]*:\/\/)([^/?#\s@]+)@/i.exec(text);
  if (!match || (!match[1] && !isUrlField)) return undefined;
  return match[2];
}

/** A value quoted back in a message: secrets masked first, then cut to {@link MAX_SHOWN}. */
export function showValue(value: unknown, masker: Secrets): string {
  const text = masker.mask(
    JSON.stringify(
      value,
      (key, v) => (key && isSecretKey(key) ? "***" : v),
    ) ?? String(value),
  );
  return text.length > MAX_SHOWN ? `${text.slice(0, MAX_SHOWN)}...` : text;
}

/** A password or token written in a YAML/JSON file instead of passed as `${VAR}`. */
export interface LiteralSecret {
  /** e.g. `registries.prod.password`. */
  path: string;
  /** `$NAME` without braces (taken literally, not expanded): the NAME meant. */
  dollarVar?: string;
}

/** Passwords and tokens written as plain text in a YAML/JSON file (placeholders aside). */
function findLiteralSecrets(value: Record<string, unknown>): LiteralSecret[] {
  const out: LiteralSecret[] = [];
  for (const section of ["registries", "sources"]) {
    const entries = value[section];
    if (!entries || typeof entries !== "object") continue;
    for (const [name, entry] of Object.entries(entries as Record<string, unknown>)) {
      for (const field of SECRET_KEYS) {
        const secret = (entry as Record<string, unknown> | null)?.[field];
        if (
          typeof secret === "string" && !secret.includes("${") && !/YOUR_|CHANGE_?ME/i.test(secret)
        ) {
          const dollarVar = /^\s*\$([A-Za-z_][A-Za-z0-9_]*)\s*$/.exec(secret)?.[1];
          out.push({
            path: formatPath([section, name, field]),
            ...(dollarVar ? { dollarVar } : {}),
          });
        }
      }
    }
  }
  return out;
}

/** Where each password was written, by `registries\0<name>` / `sources\0<host>` (for messages). */
export type PasswordOrigins = Map<string, string>;

/** Read before `${VAR}`s are expanded: `${QUAY_PASSWORD} (registries.prod.password)`, or literal. */
function passwordOrigins(value: Record<string, unknown>): PasswordOrigins {
  const out: PasswordOrigins = new Map();
  for (const section of ["registries", "sources"]) {
    const entries = value[section];
    if (!entries || typeof entries !== "object") continue;
    for (const [name, entry] of Object.entries(entries as Record<string, unknown>)) {
      const password = (entry as Record<string, unknown> | null)?.password;
      if (typeof password !== "string") continue;
      const path = formatPath([section, name, "password"]);
      const variable = /^\s*\$\{([A-Za-z_][A-Za-z0-9_]*)\}\s*$/.exec(password)?.[1];
      out.set(
        `${section}\0${name}`,
        variable ? `\${${variable}} (${path})` : `${path}, written in the config file`,
      );
    }
  }
  return out;
}

/**
 * Record on each registry and source where its password came from (`passwordFrom`): the origins
 * of a YAML/JSON file, or the entry's path in a config.ts (its code chose the value).
 */
export function setPasswordOrigins(
  config: ResolvedConfig,
  origins: PasswordOrigins | undefined,
): ResolvedConfig {
  const from = (section: string, name: string) =>
    origins?.get(`${section}\0${name}`) ??
      `${formatPath([section, name, "password"])} in ${config.file.replace(/^.*\//, "")}`;
  for (const [name, registry] of Object.entries(config.registries)) {
    if (registry.password) registry.passwordFrom = from("registries", name);
  }
  for (const [host, source] of Object.entries(config.sources)) {
    if (source.password) source.passwordFrom = from("sources", host);
  }
  return config;
}

/** What a YAML/JSON file says about its secrets before `${VAR}`s are expanded. */
export interface RawSecrets {
  literalSecrets: LiteralSecret[];
  origins?: PasswordOrigins;
}

/** {@link findLiteralSecrets} and {@link passwordOrigins} of a file's value. */
export function scanSecrets(value: Record<string, unknown>): RawSecrets {
  return { literalSecrets: findLiteralSecrets(value), origins: passwordOrigins(value) };
}
