import { existsSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { z } from "zod";
import { LifeboatError } from "../core/errors.js";

/**
 * The config file (JSON): defaults for the global options and a list of jobs for `lifeboat run`
 * and `lifeboat daemon`. Found at --config FILE, LIFEBOAT_CONFIG, or
 * $XDG_CONFIG_HOME/lifeboat/config.json. Precedence: command-line flag > environment > file.
 * See docs/config.md.
 */
const policySchema = z
  .object({
    last: z.number().int().positive(),
    hourly: z.number().int().positive(),
    daily: z.number().int().positive(),
    weekly: z.number().int().positive(),
    monthly: z.number().int().positive(),
    yearly: z.number().int().positive(),
    within: z.string(),
    tags: z.array(z.string()),
  })
  .partial()
  .strict();

const jobSchema = z
  .object({
    name: z.string().regex(/^[A-Za-z0-9._-]+$/, "job names use letters, digits, . _ -"),
    /** Files/folders, or one database URL (sqlite:, postgres://, mysql://). */
    backup: z.union([z.string(), z.array(z.string()).min(1)]).optional(),
    /** A mailbox or address book URL (imap://, imaps://, dav://, davs://). */
    pull: z.string().optional(),
    repository: z.string().optional(),
    passwordFile: z.string().optional(),
    sourcePasswordFile: z.string().optional(),
    /** A command printing an OAuth2 access token for the mail server (instead of a password). */
    oauth2TokenCommand: z.string().optional(),
    exclude: z.array(z.string()).default([]),
    tags: z.array(z.string()).default([]),
    /** How often the job is due: 15m, 1h, 1d. */
    every: z.string().default("1d"),
    /** Retention applied after each successful run of the job. */
    keep: policySchema.optional(),
    prune: z.boolean().default(false),
  })
  .strict()
  .refine((j) => (j.backup === undefined) !== (j.pull === undefined), {
    message: "a job has either `backup` or `pull`",
  });

export const configSchema = z
  .object({
    repository: z.string().optional(),
    passwordFile: z.string().optional(),
    passwordCommand: z.string().optional(),
    notify: z
      .object({ url: z.string().url(), command: z.string(), email: z.string(), smtpUrl: z.string() })
      .partial()
      .strict()
      .optional(),
    retention: z
      .object({ days: z.number().int().positive(), mode: z.enum(["governance", "compliance"]) })
      .partial()
      .strict()
      .optional(),
    limits: z
      .object({ uploadKiB: z.number().positive(), downloadKiB: z.number().positive() })
      .partial()
      .strict()
      .optional(),
    jobs: z.array(jobSchema).default([]),
    /** The web console (`lifeboat ui`): see docs/config.md and docs/api.md. */
    console: z
      .object({
        /** Folders (absolute, or ~/...) under which the console may restore onto this host. */
        restoreRoots: z.array(z.string().min(1)).default([]),
        /** How old the newest snapshot of a source without a job may be before it is late. */
        rpo: z.string().default("2d"),
      })
      .strict()
      .optional(),
    /** Fleets of accounts (docs/fleet.md); each entry is checked by app/fleet/fleet-config.ts. */
    fleets: z.array(z.record(z.string(), z.unknown())).default([]),
  })
  .strict();

export type Config = z.infer<typeof configSchema>;
export type Job = Config["jobs"][number];

export function defaultConfigPath(): string {
  const config = process.env.XDG_CONFIG_HOME || path.join(os.homedir(), ".config");
  return path.join(config, "lifeboat", "config.json");
}

/** `~/x` → the home folder; relative paths stay relative to where the command runs. */
export function expandHome(p: string): string {
  return p === "~" || p.startsWith("~/") ? path.join(os.homedir(), p.slice(1)) : p;
}

/**
 * Reads the config file. An explicitly named file must exist; the default one may be absent.
 * Errors name the file and the field, so a typo is fixed in one go.
 */
export function loadConfig(explicit: string | undefined): { file: string | undefined; config: Config } {
  const file = explicit ?? process.env.LIFEBOAT_CONFIG ?? defaultConfigPath();
  if (!existsSync(file)) {
    if (explicit ?? process.env.LIFEBOAT_CONFIG)
      throw new LifeboatError(
        "USAGE",
        `the config file ${file} does not exist`,
        "check --config / LIFEBOAT_CONFIG",
      );
    return { file: undefined, config: configSchema.parse({}) };
  }
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new LifeboatError(
      "USAGE",
      `the config file ${file} is not valid JSON: ${(e as Error).message}`,
      "fix it (see docs/config.md)",
    );
  }
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const where = issue.path.length > 0 ? issue.path.join(".") : "(top level)";
    throw new LifeboatError(
      "USAGE",
      `the config file ${file}: ${where}: ${issue.message}`,
      "fix it (see docs/config.md)",
    );
  }
  return { file, config: parsed.data };
}

/**
 * Makes the file's settings the defaults: each becomes the environment variable the commands
 * already read, unless that variable is set (so flags and the environment still win).
 */
export function applyConfigDefaults(config: Config, env: NodeJS.ProcessEnv = process.env): void {
  const set = (name: string, value: string | number | undefined) => {
    if (value !== undefined && env[name] === undefined) env[name] = String(value);
  };
  set("LIFEBOAT_REPOSITORY", config.repository && expandHome(config.repository));
  // A password given any way in the environment wins over the file's (whichever kind).
  if (!env.LIFEBOAT_PASSWORD && !env.LIFEBOAT_PASSWORD_FILE && !env.LIFEBOAT_PASSWORD_COMMAND) {
    set("LIFEBOAT_PASSWORD_FILE", config.passwordFile && expandHome(config.passwordFile));
    set("LIFEBOAT_PASSWORD_COMMAND", config.passwordCommand);
  }
  set("LIFEBOAT_NOTIFY_URL", config.notify?.url);
  set("LIFEBOAT_NOTIFY_COMMAND", config.notify?.command);
  set("LIFEBOAT_NOTIFY_EMAIL", config.notify?.email);
  set("LIFEBOAT_SMTP_URL", config.notify?.smtpUrl);
  set("LIFEBOAT_RETENTION_DAYS", config.retention?.days);
  set("LIFEBOAT_RETENTION_MODE", config.retention?.mode);
  set("LIFEBOAT_LIMIT_UPLOAD", config.limits?.uploadKiB);
  set("LIFEBOAT_LIMIT_DOWNLOAD", config.limits?.downloadKiB);
}
