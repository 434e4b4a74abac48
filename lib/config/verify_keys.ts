/**
 * The `verify` settings of a config: which cosign public keys each image and repository entry's
 * source must be signed with. An entry's own `verify` wins; otherwise `operation.verify` applies.
 * Key paths are relative to the config file. Every key file is loaded once here, so a missing,
 * unreadable or non-P-256 key is a config problem at its path (`validate` exits 2), not a failure
 * in the middle of a run.
 *
 * @module
 */
import type { ConfigProblem } from "../errors.ts";
import { FileInputError, readFileCapped } from "../safe_file.ts";

/** Bytes a cosign public key file may have. */
export const MAX_KEY_BYTES = 64 * 1024;
import { formatPath } from "./parse_config_text.ts";
import type { ResolvedConfig, ValidConfig } from "./schema.ts";

type VerifySettings = ValidConfig["operation"]["verify"];

/** The key paths of one `verify` block, as written, with their config paths. */
function written(
  verify: VerifySettings,
  at: (string | number)[],
): { file: string; path: string }[] {
  if (!verify) return [];
  const keys = verify.cosignKey;
  if (typeof keys === "string") return [{ file: keys, path: formatPath([...at, "cosignKey"]) }];
  return keys.map((file, i) => ({ file, path: formatPath([...at, "cosignKey", i]) }));
}

function absolute(path: string, baseDir: string): string {
  return path.startsWith("/") ? path : `${baseDir}/${path}`.replace(/\/\.\//g, "/");
}

/**
 * Set `verifyKeys` (absolute paths) on every resolved image and repository, and load each key
 * file named anywhere (once per file).
 *
 * @returns One problem per key file that cannot be read or is not a cosign (ECDSA P-256) public
 *   key, at the path where it is written.
 */
export async function resolveVerifyKeys(
  config: ResolvedConfig,
  options: { data: ValidConfig; baseDir: string },
): Promise<ConfigProblem[]> {
  const { data, baseDir } = options;
  const all: { file: string; path: string }[] = [];
  const keysOf = (own: VerifySettings, at: (string | number)[]): string[] => {
    const entries = own ? written(own, at) : [];
    all.push(...entries);
    const chosen = own ?? data.operation.verify;
    return written(chosen, []).map((k) => absolute(k.file, baseDir));
  };
  all.push(...written(data.operation.verify, ["operation", "verify"]));
  for (const image of config.images) {
    const keys = keysOf(data.images[image.key]?.verify, ["images", image.key, "verify"]);
    if (keys.length) image.verifyKeys = keys;
  }
  for (const repository of config.repositories) {
    const own = data.repositories[repository.key]?.verify;
    const keys = keysOf(own, ["repositories", repository.key, "verify"]);
    if (keys.length) repository.verifyKeys = keys;
  }
  const problems: ConfigProblem[] = [];
  const checked = new Map<string, Promise<string | null>>();
  for (const { file, path } of all) {
    const full = absolute(file, baseDir);
    let pending = checked.get(full);
    if (!pending) checked.set(full, pending = keyProblem(full));
    const message = await pending;
    if (message) problems.push({ path, message });
  }
  return problems;
}

async function keyProblem(file: string): Promise<string | null> {
  let pem: string;
  try {
    pem = new TextDecoder().decode(
      await readFileCapped(file, { what: "a cosign public key", maxBytes: MAX_KEY_BYTES }),
    );
  } catch (error) {
    const why = error instanceof FileInputError
      ? (error.missing ? "not found" : error.message)
      : String(error);
    return `cosign key ${file}: cannot be read (${why})`;
  }
  try {
    // Loaded only when a key is configured: it brings node:crypto, which validate and most runs
    // otherwise do without at start-up.
    const { loadCosignPublicKey } = await import("../signatures/cosign_key.ts");
    await loadCosignPublicKey(pem, { file });
    return null;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}
