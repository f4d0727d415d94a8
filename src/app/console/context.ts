import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { z } from "zod";
import { LifeboatError } from "../../core/errors.js";
import { parseDuration } from "../../ops/forget/policy.js";
import type { Config, Job } from "../config.js";
import type { JobState } from "../jobs.js";
import type { CheckSummary } from "./api-types.js";
import type { AuditLog } from "./audit.js";
import type { ConsoleFleet } from "./fleets.js";
import type { ConsoleRepo } from "./repos.js";
import type { Session, Sessions, SignInThrottle } from "./sessions.js";
import { buildSources, type SourceRow } from "./sources.js";
import type { Tasks } from "./tasks.js";
import { type Role, roleAtLeast, type UserStore } from "./users.js";

/** What every route of the console shares. */
export interface ConsoleState {
  repos: ConsoleRepo[];
  /** The fleets of accounts shown (fleets.ts). */
  fleets: ConsoleFleet[];
  config: Config;
  jobState: () => Promise<Record<string, JobState>>;
  users: UserStore;
  sessions: Sessions;
  throttle: SignInThrottle;
  audit: AuditLog;
  tasks: Tasks;
  restoreRoots: string[];
  /** Whether cookies get `Secure` (served over TLS). */
  secure: boolean;
  /** Whether a daemon runs the jobs' schedules in this process (`lifeboat daemon --ui`). */
  daemon: boolean;
  /** The last `check` run from the console, per repository. */
  lastChecks: Map<string, CheckSummary>;
  saveChecks: () => Promise<void>;
}

export type { CheckSummary } from "./api-types.js";

export type Env = { Variables: { session: Session } };
export type Ctx = Context<Env>;

export function repoById(st: ConsoleState, id: string): ConsoleRepo {
  const r = st.repos.find((x) => x.spec.id === id);
  if (!r) throw new LifeboatError("NOT_FOUND", `no repository ${JSON.stringify(id)} in this console`);
  return r;
}

export function jobByName(st: ConsoleState, name: string): Job {
  const j = st.config.jobs.find((x) => x.name === name);
  if (!j) throw new LifeboatError("NOT_FOUND", `no job ${JSON.stringify(name)} in the config file`);
  return j;
}

export async function allSources(st: ConsoleState): Promise<SourceRow[]> {
  return buildSources({
    repos: st.repos,
    jobs: st.config.jobs,
    jobState: await st.jobState(),
    defaultRpoMs: parseDuration(st.config.console?.rpo ?? "2d"),
  });
}

export async function sourceById(st: ConsoleState, id: string): Promise<SourceRow> {
  const row = (await allSources(st)).find((s) => s.id === id);
  if (!row) throw new LifeboatError("NOT_FOUND", `no source ${JSON.stringify(id)}`);
  return row;
}

/** Refuses (403) a session whose role is below `need`. */
export function requireRole(c: Ctx, need: Role): Session {
  const s = c.get("session");
  if (!roleAtLeast(s.role, need))
    throw new HTTPException(403, { message: `this needs the ${need} role; you are ${s.role}` });
  return s;
}

/** Parses input with a schema; a mismatch is a 400 naming the field. */
export function parse<T extends z.ZodType>(schema: T, input: unknown): z.infer<T> {
  const r = schema.safeParse(input);
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw new LifeboatError("USAGE", `${i.path.join(".") || "request"}: ${i.message}`);
  }
  return r.data;
}

export async function jsonBody(c: Ctx): Promise<unknown> {
  try {
    return await c.req.json();
  } catch {
    throw new LifeboatError("USAGE", "the request body must be JSON");
  }
}

export function clientAddress(c: Ctx): string {
  const incoming = (c.env as { incoming?: { socket?: { remoteAddress?: string } } } | undefined)?.incoming;
  return incoming?.socket?.remoteAddress ?? "unknown";
}

/** Writes an audit entry for the session's user. */
export function audit(
  st: ConsoleState,
  c: Ctx,
  action: string,
  target: Record<string, unknown>,
  outcome: string,
  detail?: string,
): Promise<void> {
  const s = c.get("session");
  return st.audit.write({
    user: s?.user ?? "-",
    role: s?.role ?? "-",
    action,
    target,
    outcome,
    ...(detail ? { detail } : {}),
    address: clientAddress(c),
  });
}
