import os from "node:os";
import path from "node:path";
import { z } from "zod";
import { LifeboatError } from "../../core/errors.js";
import type { AccountList } from "../../sources/accounts/list.js";
import type { RemoteServer } from "../../sources/accounts/remote.js";
import type { RowsTable } from "../../sources/accounts/rows.js";
import { defaultFleetStatePath } from "../local-state.js";
import { type FleetPolicy, fleetPolicy } from "./policy.js";

/**
 * A fleet in the config file (`fleets: [...]`, docs/fleet.md) or given by flags. Everything the
 * scheduler, the workers, status and restore need to know about one service's accounts.
 */
const rowsTableSchema = z
  .object({
    table: z.string().min(1),
    owner: z.string().optional(),
    query: z.string().optional(),
    delete: z.string().optional(),
  })
  .strict()
  .refine((t) => t.owner !== undefined || t.query !== undefined, {
    message: 'a rows table needs "owner" (the account column) or "query"',
  });

/** The server of a mail (IMAP) or DAV fleet: one URL, each account logs in as itself. */
const remoteSchema = z
  .object({
    url: z.string().min(1),
    user: z.string().optional(),
    passwordCommand: z.string().min(1).optional(),
    passwordFile: z.string().min(1).optional(),
    /** IMAP: a command printing the account's OAuth2 access token (instead of a password). */
    oauth2TokenCommand: z.string().min(1).optional(),
    folders: z.array(z.string()).optional(),
    excludeFolders: z.array(z.string()).optional(),
    insecure: z.boolean().optional(),
  })
  .strict()
  .refine(
    (r) =>
      [r.passwordCommand, r.passwordFile, r.oauth2TokenCommand].filter((x) => x !== undefined).length === 1,
    {
      message:
        'give the accounts\' logins with "passwordCommand", "passwordFile" or (IMAP) "oauth2TokenCommand" (one of them)',
    },
  );

export const fleetSchema = z
  .object({
    name: z.string(),
    /** Where the accounts come from. */
    accounts: z.union([
      z
        .object({ glob: z.string(), timezone: z.string().optional(), timezones: z.string().optional() })
        .strict(),
      z.object({ file: z.string() }).strict(),
      z.object({ sql: z.string(), query: z.string() }).strict(),
    ]),
    /**
     * What an account's backup holds: its folder (the account's `path`), its rows, its IMAP
     * mailbox or its CardDAV/CalDAV collections.
     */
    kind: z.enum(["folder", "rows", "imap", "dav"]).default("folder"),
    rows: z
      .object({ url: z.string(), tables: z.array(rowsTableSchema).min(1) })
      .strict()
      .optional(),
    imap: remoteSchema.optional(),
    dav: remoteSchema.optional(),
    /** Timezone of accounts whose source gives none. */
    timezone: z.string().optional(),
    window: z.string().optional(),
    rpo: z.string().optional(),
    catchUp: z.enum(["next-window", "at-once"]).optional(),
    retryBase: z.string().optional(),
    retryCap: z.string().optional(),
    /** Runs at once on this host. */
    concurrency: z.number().int().positive().default(4),
    /** A repository of its own (default: the global one). */
    repository: z.string().optional(),
    /**
     * Several repositories: each account is placed in one (repos.ts) and stays there. An entry
     * is a URL (opened with the global password) or `{ url, passwordFile }`.
     */
    repositories: z
      .array(
        z.union([
          z.string().min(1),
          z.object({ url: z.string().min(1), passwordFile: z.string().min(1).optional() }).strict(),
        ]),
      )
      .min(1)
      .optional(),
    /** `postgres://...`: schedule and queue in PostgreSQL (pg-boss), workers on any host. */
    queue: z.string().optional(),
    /** SQLite state file (default the shared $XDG_STATE_HOME/lifeboat/state.db). */
    state: z.string().optional(),
    /** An account field (a number, higher first) or a file of ids (first first) for restore --all. */
    priority: z.string().optional(),
    /** Fraction of accounts drilled each night (default 0.01). */
    drillSample: z.number().min(0).max(1).default(0.01),
    /** How long a queued run may take before another worker retries it (queue mode). */
    lease: z.string().default("30m"),
    exclude: z.array(z.string()).default([]),
  })
  .strict()
  .refine((f) => f.repository === undefined || f.repositories === undefined, {
    message:
      'give "repository" or "repositories", not both (list the old repository first in "repositories")',
  })
  .refine((f) => f.kind !== "rows" || f.rows !== undefined, {
    message: 'a fleet of kind "rows" needs "rows": {"url": ..., "tables": [...]}',
  })
  .refine((f) => f.kind !== "imap" || f.imap !== undefined, {
    message: 'a fleet of kind "imap" needs "imap": {"url": "imaps://HOST", "passwordCommand": ...}',
  })
  .refine((f) => f.dav?.oauth2TokenCommand === undefined, {
    message: '"oauth2TokenCommand" is for IMAP accounts; DAV accounts log in with a password',
  })
  .refine((f) => f.kind !== "dav" || f.dav !== undefined, {
    message: 'a fleet of kind "dav" needs "dav": {"url": "davs://HOST/PATH", "passwordCommand": ...}',
  });
export type FleetConfig = z.input<typeof fleetSchema>;
type ParsedFleet = z.output<typeof fleetSchema>;

/** One of a fleet's repositories and where its password comes from (default: the global one). */
export interface RepoRef {
  url: string;
  passwordFile?: string | undefined;
}

export interface FleetDef {
  readonly name: string;
  readonly policy: FleetPolicy;
  readonly list: AccountList;
  readonly kind: "folder" | "rows" | "imap" | "dav";
  readonly rows: { url: string; tables: RowsTable[] } | undefined;
  /** Kinds `imap` and `dav`: the server and where each account's password comes from. */
  readonly remote: RemoteServer | undefined;
  readonly timezone: string | undefined;
  readonly concurrency: number;
  /** The fleet's first (or only) own repository; undefined: the global one. */
  readonly repository: string | undefined;
  /** Every own repository, in definition order (`repository` alone is one); empty: the global one. */
  readonly repositories: RepoRef[];
  readonly queue: string | undefined;
  readonly statePath: string;
  readonly priority: string | undefined;
  readonly drillSample: number;
  readonly leaseMs: number;
  readonly exclude: string[];
}

export function stateDir(): string {
  const state = process.env.XDG_STATE_HOME || path.join(os.homedir(), ".local", "state");
  return path.join(state, "lifeboat");
}

/** A fleet definition from its config entry; every value is checked here (one line per problem). */
export function fleetDef(raw: unknown, where = "fleet"): FleetDef {
  const parsed = fleetSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new LifeboatError(
      "USAGE",
      `${where}: ${issue.path.join(".") || "(fleet)"}: ${issue.message}`,
      "fix the fleet definition (see docs/fleet.md)",
    );
  }
  const f: ParsedFleet = parsed.data;
  const policy = fleetPolicy({
    name: f.name,
    ...(f.window ? { window: f.window } : {}),
    ...(f.rpo ? { rpo: f.rpo } : {}),
    ...(f.catchUp ? { catchUp: f.catchUp } : {}),
    ...(f.retryBase ? { retryBase: f.retryBase } : {}),
    ...(f.retryCap ? { retryCap: f.retryCap } : {}),
  });
  const a = f.accounts;
  const list: AccountList =
    "glob" in a
      ? {
          kind: "glob",
          glob: a.glob,
          ...(a.timezone ? { timezone: a.timezone } : {}),
          ...(a.timezones ? { timezones: a.timezones } : {}),
        }
      : "file" in a
        ? { kind: "file", file: a.file }
        : { kind: "sql", url: a.sql, query: a.query };
  const repositories: RepoRef[] = f.repositories
    ? f.repositories.map((r) => (typeof r === "string" ? { url: r } : r))
    : f.repository
      ? [{ url: f.repository }]
      : [];
  const urls = repositories.map((r) => r.url);
  if (new Set(urls).size !== urls.length)
    throw new LifeboatError(
      "USAGE",
      `${where}: a repository is listed twice in "repositories"`,
      "list each repository once",
    );
  const lease = /^(\d+)(s|m|h)$/.exec(f.lease);
  if (!lease)
    throw new LifeboatError(
      "USAGE",
      `${where}: lease ${JSON.stringify(f.lease)} is not like 30m`,
      "e.g. 30m or 2h",
    );
  return {
    name: f.name,
    policy,
    list,
    kind: f.kind,
    rows: f.rows as { url: string; tables: RowsTable[] } | undefined,
    remote: f.kind === "imap" ? f.imap : f.kind === "dav" ? f.dav : undefined,
    timezone: f.timezone,
    concurrency: f.concurrency,
    repository: f.repository ?? repositories[0]?.url,
    repositories,
    queue: f.queue,
    statePath: f.state ?? defaultFleetStatePath(f.name),
    priority: f.priority,
    drillSample: f.drillSample,
    leaseMs: Number(lease[1]) * { s: 1000, m: 60_000, h: 3_600_000 }[lease[2] as "s" | "m" | "h"],
    exclude: f.exclude,
  };
}
