/**
 * Ask a person for a username and password, with the password hidden, only when stdin is a
 * terminal (a prompt on a closed stdin waits forever: cron must fail fast instead). The answer is
 * checked at once by `verify`; a refused one is asked again, up to `attempts` times.
 * @inquirer/prompts is loaded only when a prompt is really shown.
 *
 * @module
 */
import type { Credential } from "../registry/credential.ts";

/** Options for {@link promptCredentials}. */
export interface PromptOptions {
  /** Check the credential against the registry; true = accepted. */
  verify: (credential: Credential) => Promise<boolean>;
  /** @default 3 */
  attempts?: number;
  /** Where messages go (the CLI's stderr). */
  say?: (text: string) => void;
  /** For tests: whether stdin is a terminal. @default Deno.stdin.isTerminal() */
  isTerminal?: boolean;
  /** Run the secret through this as soon as it is typed (register it for masking). */
  onSecret?: (secret: string) => void;
  /**
   * Told of each refused answer before the next question (the audit trail of failed logins).
   * Gets the attempt number, the number of attempts and the username; never the password.
   */
  onRefused?: (refusal: { attempt: number; attempts: number; username: string }) => void;
}

/** Prompt for credentials of `host`; null without a terminal or after the last refused attempt. */
export async function promptCredentials(
  host: string,
  options: PromptOptions,
): Promise<Credential | null> {
  const isTerminal = options.isTerminal ?? Deno.stdin.isTerminal();
  if (!isTerminal) return null;
  const { input, password } = await import("@inquirer/prompts");
  const attempts = options.attempts ?? 3;
  const say = options.say ?? (() => {});
  let refused = "";
  for (let attempt = 1; attempt <= attempts; attempt++) {
    // The prompt library redraws its lines, so the refusal is part of the next question.
    const username = (await input({ message: `${refused}Username for ${host}:`, required: true }))
      .trim();
    const secret = await password({ message: `Password for ${username}@${host}:`, mask: false });
    options.onSecret?.(secret);
    const credential: Credential = { kind: "basic", username, password: secret, source: "prompt" };
    if (await options.verify(credential)) return credential;
    options.onRefused?.({ attempt, attempts, username });
    refused = `${host} refused these credentials; try again (${
      attempts - attempt
    } attempt(s) left). `;
    if (attempt === attempts) say(`${host} refused these credentials ${attempts} times; giving up`);
  }
  return null;
}
