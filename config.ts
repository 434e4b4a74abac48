/**
 * Your bananna-bot configuration. `deno task validate` tells you what is left to fill in.
 * Every key is documented in docs/configuration.md. Secrets come from the environment:
 * never write a password or token into this file.
 */
import { defineConfig } from "./lib/config/schema.ts";

export default defineConfig({
  registries: {
    prod: {
      url: "quay.example.com", // YOUR Quay host, e.g. quay-registry.apps.ocp.internal
      namespace: "YOUR_ORGANIZATION",
      kind: "quay",
      apiToken: Deno.env.get("QUAY_TOKEN") ?? "YOUR_TOKEN_HERE",
      username: Deno.env.get("QUAY_USER"), // a robot account, e.g. myorg+mirror
      password: Deno.env.get("QUAY_PASSWORD"),
    },
  },
  log: {
    level: "INFO",
    dir: "logs",
    rotationDays: 7,
    keepArchives: 12,
  },
  operation: {
    engine: "registry", // the default; "docker" needs a docker daemon (not in the container image)
    continueOnError: true,
    createReposIfNotExists: true,
    concurrency: 2,
  },
  images: {
    "nginx:1.27": { targets: ["prod"], description: "NGINX web server, mirrored from Docker Hub" },
    "registry.k8s.io/pause:3.9": { targets: ["prod"] },
    "quay.io/prometheus/node-exporter:v1.8.2": { targets: ["prod"] },
  },
});
