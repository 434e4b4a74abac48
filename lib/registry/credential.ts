/**
 * The credential type every layer passes around: what registry auth (registry_auth.ts) sends to its
 * host, what the credential chain (lib/credentials/, above this folder) finds for a host. Secrets in
 * it are registered with `lib/log/redact.ts` by whoever reads them.
 *
 * @module
 */

/** Where a credential came from (shown in logs, never the secret itself). */
export type CredentialSource = "config" | "docker-config" | "credential-helper" | "prompt";

/** A credential for one registry host. */
export type Credential =
  | { kind: "basic"; username: string; password: string; source: CredentialSource }
  /** An OAuth2 refresh token (docker config `identitytoken`, helper Username "<token>"). */
  | { kind: "identity-token"; token: string; username?: string; source: CredentialSource }
  /** A bearer token sent as is (docker config `registrytoken`). */
  | { kind: "registry-token"; token: string; source: CredentialSource };
