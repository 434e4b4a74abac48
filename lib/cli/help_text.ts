/**
 * The help texts of every command (`bananna-bot help [COMMAND]`, `COMMAND --help`), kept apart
 * from the parsing in args.ts.
 *
 * @module
 */
import { VERSION } from "../version.ts";

const EXIT_CODES = `Exit codes:
  0    everything mirrored (or already there; drift is reported, not fatal)
  1    at least one image failed, or the run could not start (login, lock, docker)
  2    bad configuration or bad command line
  3    the run lost its lock to another run (paused past log.lockLease) and stopped
  130  interrupted (Ctrl-C / SIGTERM); the report is marked interrupted`;

const ENVIRONMENT = `Environment:
  BANANNA_BOT_CONFIG   config file when --config is not given (default ./config.ts)
  NO_COLOR             no colour on the terminal
  DOCKER_CONFIG        folder of docker's config.json (credentials, credential helpers)
  DOCKER_HOST          docker daemon for the docker engine`;

/** Top-level help. */
export const MAIN_HELP =
  `bananna-bot ${VERSION}: mirror container images into private registries (Red Hat Quay first)

Usage:
  bananna-bot <command> [options]
  deno task <command> [options]      (from a clone: the same commands and options)

Commands:
  mirror     mirror every image in the config (plan, copy what is new, move latest, report)
  validate   check the config and list every problem with its path
  report     combine the reports of a sharded run (report --merge DIR)
  export     write the planned images to an OCI layout directory (air gap, connected side)
  import     mirror an export's images into the targets with every rule (air gap, other side)
  help       show help for a command

Options:
  -c, --config PATH   config file: .ts, .yaml/.yml or .json (default ./config.ts)
  -h, --help          show help
  -V, --version       show the version

Examples:
  bananna-bot validate
  bananna-bot mirror --dry-run
  bananna-bot mirror --config /etc/bananna-bot/config.yaml --non-interactive

${EXIT_CODES}

${ENVIRONMENT}
`;

/** Help of `mirror`. */
export const MIRROR_HELP = `Usage: bananna-bot mirror [options]

Mirror every image of the config into its target registries. For each image and target: check
the source exists, make sure the Quay repository exists, check the destination tag, copy only what
is new (a tag holding another image is reported as drift and never overwritten), move latest when a
new tag lands, then print statistics and write a JSON report.

Options:
  -c, --config PATH      config file (default ./config.ts, or $BANANNA_BOT_CONFIG)
  -n, --dry-run          read only: print what would be done, write nothing
      --only PATTERN     only images and repositories whose key or full reference matches
                         (* is a wildcard); repeatable
      --report PATH      also write the JSON report here (always: <log dir>/last-report.json)
      --non-interactive  never prompt; missing credentials are an error (automatic without a
                         terminal, e.g. in cron)
      --shard I/N        run shard I (0 to N-1) of N: only the destination repositories this
                         shard owns; own lock, state and log in <log dir>/shard-I/, report
                         <log dir>/last-report.I.json (merge: bananna-bot report --merge)
      --shards N         the same, with I from $JOB_COMPLETION_INDEX (Kubernetes Indexed Job)
      --openshift-mirror-sets PATH
                         after the run, write an ImageDigestMirrorSet (and an ImageTagMirrorSet
                         for images named by tag) mapping every mirrored repository to its
                         mirror, for "oc apply -f PATH" (registry engine only; not written
                         in a dry run; not with --shard: give it to report --merge)
      --metrics-file PATH
                         write the run's Prometheus metrics here (over metrics.file; not in a
                         dry run)
  -h, --help             show this help

${EXIT_CODES}
`;

/** Help of `export`. */
const EXPORT_HELP = `Usage: bananna-bot export --to DIR [options]

Resolve the same plan as mirror (images, tags selected by repositories rules) and copy every
source image into an OCI image layout in DIR: every platform, exact bytes and digests, each image
named by its full source reference, its targets recorded, with its signatures, attestations, SBOMs
and referrers (operation.signatures). bananna-export.json is written last
(images, digests, blobs, sha256 of every file, the tool version). An interrupted export is
resumed by running it again (what is complete is not fetched again). Targets are not contacted.

Options:
  -c, --config PATH      config file (default ./config.ts, or $BANANNA_BOT_CONFIG)
      --to DIR           the layout directory (created when missing)
      --since FILE       a previous export's bananna-export.json: write only blobs and
                         manifests it (and the exports it built on) did not carry
      --part-size SIZE   also write the layout as a tar split into parts of SIZE
                         (bananna-export.tar.000, .001, ...; e.g. 4G, 500MiB), each with
                         its sha256 in bananna-export.json
  -n, --dry-run          read only: print what would be exported, write nothing
      --only PATTERN     only images and repositories whose key or full reference matches
      --report PATH      also write the JSON report here (always: <log dir>/last-export-report.json)
      --non-interactive  never prompt for credentials
  -h, --help             show this help

${EXIT_CODES}
`;

/** Help of `import`. */
const IMPORT_HELP = `Usage: bananna-bot import --from DIR [options]

Mirror the images of an export (bananna-bot export) into the targets of the config, with every
rule of mirror: Quay repository creation, never-overwrite (drift reported), latest, report, log,
lock, --dry-run. Every blob is verified against its sha256 while it is read; an image whose blob
is corrupt fails (IMAGE_DIGEST_MISMATCH naming the file) and nothing of it is written. The source
registries are never contacted. An interrupted import is resumed by running it again. An
incremental export needs the exports it builds on imported first.

Options:
  -c, --config PATH      config file (default ./config.ts, or $BANANNA_BOT_CONFIG)
      --from DIR|PART    the export directory (OCI layout with bananna-export.json), or
                         its first tar part (bananna-export.tar.000 or bananna-export.tar)
      --openshift-mirror-sets PATH
                         write ImageDigestMirrorSet (and ImageTagMirrorSet) YAML of what
                         landed, so the cluster pulls the upstream references from the mirror
      --staging DIR      where tar parts are extracted while importing (default: the log dir);
                         needs room for the whole export (the sum of the parts), freed after
  -n, --dry-run          read only: print what would be done, write nothing
      --only PATTERN     only images and repositories whose key or full reference matches
      --report PATH      also write the JSON report here (always: <log dir>/last-report.json)
      --non-interactive  never prompt; missing credentials are an error
  -h, --help             show this help

${EXIT_CODES}
`;

export const HELPS: Record<string, string> = { export: EXPORT_HELP, import: IMPORT_HELP };

/** Help of `validate`. */
export const VALIDATE_HELP = `Usage: bananna-bot validate [options]

Check the config: schema, unknown keys, image references, target names, placeholders, duplicate
destinations, CA files, Quay tokens. Prints every problem with its path and exits 2, or a short
summary and exits 0. Makes no network request (with engine: docker, asks the local daemon).

Options:
  -c, --config PATH   config file (default ./config.ts, or $BANANNA_BOT_CONFIG)
      --strict        a password or token written literally in the config is an error (CI)
  -h, --help          show this help
`;

/** Help of `report`. */
export const REPORT_HELP = `Usage: bananna-bot report --merge DIR [--output PATH]

Combine the reports of a sharded run (last-report.<index>.json in DIR, the log dir) into one
report with the totals and the exit code of a single run. Every shard's report must be there
(each records how many shards the run had); a missing one is an error (exit 1).

Options:
      --merge DIR     the log dir holding the shard reports
      --output PATH   write the merged JSON report here
      --openshift-mirror-sets PATH
                      write the OpenShift mirror sets of every shard's mirrored
                      repositories (as mirror --openshift-mirror-sets does for one run)
  -h, --help          show this help

Exit codes:
  0    every shard's images mirrored (or already there; drift is not fatal)
  1    a failed image in any shard, or a shard report missing or unreadable
  2    bad command line
  130  a shard was interrupted
`;
