/**
 * The shapes of the console's JSON API (docs/api.md), written once: the server's routes check
 * what they answer against them and the page (ui/) reads its answers through them. Types only:
 * it imports only the library's own type files, which import nothing but each other (the
 * shapes `--json` prints), so it compiles for Node and in the page's own tsconfig (DOM, no
 * @types/node), and the page's `import type` leaves nothing in its bundle. Names follow
 * docs/api.md.
 */

import type { DrillSummary } from "../../ops/drill/drill-summary.js";
import type { DiffSummary } from "../../ops/inspect/diff-summary.js";
import type { FolderEntry } from "../../ops/inspect/folder-entry.js";
import type { RestoreResult } from "../../ops/restore/restore-result.js";
import type { NodeType } from "../../repo/node-type.js";
import type { BackupSummary } from "../../snapshot/backup-summary.js";
import type { AccountOutcome, RestoreAllResult } from "../fleet/restore-all-result.js";

export type {
  AccountOutcome,
  BackupSummary,
  DiffSummary,
  DrillSummary,
  FolderEntry,
  NodeType,
  RestoreAllResult,
  RestoreResult,
};

// ---------------------------------------------------------------------------------------------
// Conventions

/** Every error answer: `{"error": {...}}` with a status. */
export interface ApiErrorBody {
  error: { code: string; message: string; hint?: string | null };
}

/** The answer of a request that only says it was done (logout, remove a user). */
export interface OkResult {
  ok: true;
}

// ---------------------------------------------------------------------------------------------
// Session and users

export type Role = "viewer" | "operator" | "admin";

/** `POST /api/login`, `GET /api/session`. */
export interface SessionInfo {
  user: string;
  role: Role;
  csrf: string;
}

/** `GET /api/users`. */
export interface UserList {
  users: { name: string; role: Role; created: string }[];
}

/** `POST /api/users`: the new token, shown this once. */
export interface UserCreated {
  name: string;
  role: Role;
  token: string;
}

// ---------------------------------------------------------------------------------------------
// Overview and sources

export type SourceState = "protected" | "late" | "failing" | "never";

export interface SizePoint {
  time: string;
  logical: number;
  stored: number;
}

/** One repository's card on the overview. */
export interface RepositoryCard {
  id: string;
  location: string;
  jobs: string[];
  error: string | null;
  /** Snapshots in the repository, and how many of them are fleets' account snapshots. */
  snapshots?: number;
  accountSnapshots?: number;
  sources?: number;
  logicalBytes?: number;
  packs?: number;
  packBytes?: number;
  sizeHistory?: SizePoint[];
}

/** `GET /api/overview`. */
export interface OverviewData {
  time: string;
  states: Record<SourceState, number>;
  flagged: number;
  repositories: RepositoryCard[];
  fleets: FleetSummary[];
}

/** A source: a job of the config file, or a series of snapshots no job made. */
export interface SourceRow {
  id: string;
  kind: "job" | "series";
  name: string;
  job: string | null;
  repo: string;
  location: string;
  host: string | null;
  paths: string[];
  source: string;
  state: SourceState;
  reason: string;
  snapshots: number;
  newest: { id: string; time: string; ageSeconds: number; incomplete: boolean } | null;
  rpoSeconds: number;
  /** Jobs: when the schedule runs it next (now, when due), and the last run. */
  every: string | null;
  nextRun: string | null;
  lastRun: string | null;
  lastExitCode: number | null;
  lastDrill: DrillSummary | null;
  /** When the series was last proven restorable (the newest drill that passed). */
  lastOkDrill: DrillSummary | null;
  /** Flagged snapshots nobody acknowledged yet. */
  flagged: number;
  /** The same series in the console's other repositories, and whether each has the newest snapshot. */
  copies: { repo: string; location: string; newestTime: string; inSync: boolean }[];
  /** Bytes of the newest snapshot (logical), and bytes its snapshots added to storage. */
  logicalBytes: number;
  storedBytes: number;
}

/** `GET /api/sources`. */
export interface SourcePage {
  total: number;
  items: SourceRow[];
}

/** A drill in a source's history: its summary, the snapshot's time and the first failures. */
export interface DrillHistoryItem extends DrillSummary {
  snapshotTime: string | null;
  failures: { path: string; reason: string }[];
}

/** `GET /api/sources/ID/history`, newest first. */
export interface SourceHistory {
  source: SourceRow;
  snapshots: TimelineSnapshot[];
  drills: DrillHistoryItem[];
}

// ---------------------------------------------------------------------------------------------
// Snapshots, flags, browsing

/** `GET /api/repositories`. */
export interface RepositoryList {
  repositories: { id: string; location: string; jobs: string[] }[];
}

/**
 * A snapshot as `lifeboat snapshots --json` prints it: the document (repo/snapshot.ts) with its
 * id, plus `short_id`, `flagged`, `anomalies` (always a list), `acknowledged` and `pinned`.
 */
export interface SnapshotJson {
  id: string;
  short_id: string;
  version: 1;
  time: string;
  tree: string;
  paths: string[];
  hostname: string;
  username: string;
  uid?: number;
  gid?: number;
  tags: string[];
  parent?: string;
  incomplete: boolean;
  errors: string[];
  changedWhileReading: string[];
  excludes: string[];
  xattrs?: boolean;
  anomalies: string[];
  program: string;
  /** `sqlite`, `postgres`, `imap`, ...; absent for files. */
  source?: string;
  meta?: Record<string, unknown>;
  /** Fleet account snapshots: the account and its fleet. */
  account?: string;
  fleet?: string;
  summary?: BackupSummary;
  /** The write-only key that wrote it; absent when a full key did. */
  writer?: string;
  flagged: boolean;
  acknowledged: boolean;
  pinned: boolean;
}

/** A snapshot in a timeline: `deltaBytes` is the change of `summary.bytes` (null for the first). */
export interface TimelineSnapshot extends SnapshotJson {
  deltaBytes: number | null;
}

/** `GET /api/flags`. */
export interface FlagList {
  flagged: (SnapshotJson & { repo: string })[];
}

/** `GET /api/repos/R/snapshots/ID/tree`: one page of a folder. */
export interface FolderPage {
  path: string;
  total: number;
  offset: number;
  entries: FolderEntry[];
}

/** `GET /api/repos/R/snapshots/ID/file?preview=1` for anything but an image. */
export interface FilePreview {
  path: string;
  size: number;
  binary: boolean;
  truncated: boolean;
  text: string | null;
}

export interface FindMatch {
  snapshot: string;
  time: string;
  host: string;
  path: string;
  type: NodeType;
  size: number;
}

/** `GET /api/repos/R/find`. */
export interface FindResult {
  matches: FindMatch[];
  truncated: boolean;
}

export interface DiffChange {
  modifier: "+" | "-" | "M" | "U" | "T";
  path: string;
  type: NodeType;
  /** For `T`: the type in the first snapshot. */
  oldType?: NodeType;
}

/** `GET /api/repos/R/diff`. */
export interface DiffResult {
  a: string;
  b: string;
  summary: DiffSummary;
  changes: DiffChange[];
  truncated: boolean;
}

// ---------------------------------------------------------------------------------------------
// Tasks and actions

export type TaskKind = "restore" | "drill" | "check" | "backup" | "job";
export type TaskState = "queued" | "running" | "done" | "failed" | "cancelled";

export interface TaskProgress {
  filesDone: number;
  bytesDone: number;
  totalFiles: number | null;
  totalBytes: number | null;
  bytesPerSecond: number;
  etaSeconds: number | null;
}

/** A task, as answered by the routes that start one (202) and sent by its event stream. */
export interface TaskView {
  id: string;
  kind: TaskKind;
  title: string;
  user: string;
  repo: string | null;
  state: TaskState;
  phase: string;
  /** Why a queued task waits. */
  waiting: string | null;
  created: string;
  started: string | null;
  finished: string | null;
  progress: TaskProgress | null;
  /** Work counted in accounts (a fleet's whole-service restore). */
  accounts: { done: number; total: number | null; failed: number } | null;
  cancellable: boolean;
  /** What the work returned: RestoreFilesResult, RestoreAllResult, CheckSummary, ... */
  result: unknown;
  error: { code: string; message: string; hint: string | null } | null;
}

/** `GET /api/tasks`. */
export interface TaskList {
  tasks: TaskView[];
}

export interface BacklogItem {
  job: string;
  status: "running" | "queued" | "due" | "scheduled";
  reason: string;
  nextRun: string;
}

/** `GET /api/activity`. */
export interface ActivityData {
  tasks: TaskView[];
  backlog: BacklogItem[];
}

/** `GET /api/restore/roots`. */
export interface RestoreRoots {
  roots: string[];
}

/** `POST /api/restore/preview`: nothing is written. */
export interface RestorePreview {
  snapshot: { id: string; time: string; host: string; paths: string[]; source: string };
  kind: "files" | "sqlite" | "database";
  path: string;
  files: number;
  dirs: number;
  bytes: number;
  target: { path: string; exists: boolean; entries: number } | null;
  targetDb: string | null;
}

/** The `result` of a restore task of files: ops/restore's result (with its first 100 `errors`)
 * and the real target. */
export type RestoreFilesResult = RestoreResult & { target: string };

/** A check run from the console, kept per repository and shown on Integrity. */
export interface CheckSummary {
  time: string;
  user: string;
  readData: string | null;
  ok: boolean;
  snapshots: number;
  packs: number;
  packsRead: number;
  bytesRead: number;
  unindexedPacks: number;
  problems: { kind: string; object: string; message: string; affected: number }[];
}

/** `GET /api/integrity`. */
export interface IntegrityData {
  sources: {
    id: string;
    name: string;
    repo: string;
    state: SourceState;
    newest: SourceRow["newest"];
    lastDrill: DrillSummary | null;
    lastProvenRestorable: DrillSummary | null;
    provenLast30Days: boolean;
  }[];
  proven30Days: { proven: number; of: number };
  fleets: { fleet: string; accounts: number; proven: number; fraction: number; error: string | null }[];
  checks: { repo: string; location: string; last: CheckSummary | null }[];
}

/** `POST /api/repos/R/snapshots/ID/ack`: the ack record and the CLI line. */
export interface AckResult {
  id: string;
  snapshot: string;
  kind: "ack" | "pin";
  time: string;
  host: string;
  user: string;
  note: string;
  command: string;
}

/** A retention policy, as the config file's `keep`. */
export interface KeepPolicy {
  last?: number;
  hourly?: number;
  daily?: number;
  weekly?: number;
  monthly?: number;
  yearly?: number;
  within?: string;
  tags?: string[];
}

/** `GET /api/policies`. */
export interface PoliciesData {
  objectLock: { days?: number; mode?: "governance" | "compliance" } | null;
  jobs: {
    name: string;
    repo: string;
    every: string;
    lastRun: string | null;
    lastSuccess: string | null;
    nextRun: string;
    keep: KeepPolicy | null;
    prune: boolean;
    forgetCommand: string | null;
  }[];
}

/** `POST /api/policies/simulate`. */
export interface PolicySimulation {
  groups: {
    key: Record<string, unknown>;
    decisions: { id: string; time: string; keep: boolean; reasons: string[] }[];
  }[];
  kept: number;
  removed: number;
  command: string;
  applyCommand: string;
}

/** `POST /api/policies/apply`: the ids of the snapshots forgotten. */
export interface PolicyApplied {
  removed: string[];
}

/** One line of the audit log. */
export interface AuditEntry {
  time: string;
  user: string;
  role: string;
  /** `restore`, `download`, `backup`, `drill`, `check`, `ack`, `forget`, `cancel`, `sign-in`, ... */
  action: string;
  /** What it acted on: a repository, snapshot, path, target. */
  target: Record<string, unknown>;
  /** `started`, `ok`, `failed`, `refused`, `cancelled`. */
  outcome: string;
  detail?: string;
  address?: string;
}

/** `GET /api/audit`, newest first. */
export interface AuditEntries {
  entries: AuditEntry[];
}

// ---------------------------------------------------------------------------------------------
// Fleets

export type FleetKind = "folder" | "rows" | "imap" | "dav";
export type BacklogState = "running" | "failed" | "due" | "done" | "missed" | "new";
/** `fleet status`'s finer view of an account. */
export type RpoStatus = "protected" | "at-risk" | "over-rpo" | "never";

/** A fleet's figures (`GET /api/fleets/F`, and in `GET /api/overview`). */
export interface FleetSummary {
  name: string;
  kind: FleetKind;
  repo: string;
  window: string;
  rpoSeconds: number;
  queue: boolean;
  accounts: number;
  states: Record<SourceState, number>;
  backlog: Record<BacklogState, number>;
  /** Accounts with a passing drill in the last 30 days, and their share (0..1). */
  proven30Days: number;
  proven30DaysFraction: number;
  /** Why the fleet's store cannot be read; its figures are then 0. */
  error: string | null;
}

/** `GET /api/fleets`. */
export interface FleetList {
  fleets: FleetSummary[];
}

export interface AccountRow {
  id: string;
  timezone: string;
  state: SourceState;
  rpo: RpoStatus;
  backlog: BacklogState;
  newestGood: string | null;
  ageSeconds: number | null;
  nextDue: string | null;
  window: string;
  lastSnapshot: string | null;
  lastError: string | null;
}

/** `GET /api/fleets/F/accounts`. */
export interface AccountPage {
  total: number;
  offset: number;
  items: AccountRow[];
}

export interface FleetRun {
  window: string;
  at: string;
  outcome: string;
  snapshot: string | null;
  seconds: number | null;
  error: string | null;
}

/** `fleet status --account ID --json` (app/fleet/status.ts accountStatus). */
export interface AccountStatus {
  fleet: string;
  account: string;
  timezone: string;
  rpo: RpoStatus;
  state: BacklogState;
  newest_good: string | null;
  age_hours: number | null;
  window: string;
  window_opens: string | null;
  window_closes: string | null;
  starts_at: string | null;
  next_due: string | null;
  failures_in_window: number;
  last_error: string | null;
  last_snapshot: string | null;
  repository: string | null;
  fields: Record<string, unknown>;
  runs: (FleetRun & { worker: string | null })[];
  last_drill: { at: string; ok: boolean; snapshot: string } | null;
}

/** `GET /api/fleets/F/accounts/ID`; `status` is absent only for an account gone meanwhile. */
export interface AccountDetail extends AccountRow {
  repo: string;
  status?: AccountStatus;
}

/** `GET /api/fleets/F/accounts/ID/history`, newest first. */
export interface AccountHistory {
  fleet: string;
  account: string;
  repo: string;
  snapshots: TimelineSnapshot[];
  /** The last 100 runs. */
  runs: FleetRun[];
  drills: { at: string; snapshot: string; ok: boolean; error: string | null }[];
}

export type RestoreInto = "target" | "own-folders" | "shared-tables" | "servers";

/** `POST /api/fleets/F/restore/preview`: nothing is written. */
export interface RestoreAllPreview {
  fleet: string;
  kind: FleetKind;
  accounts: number;
  alreadyRestored: number;
  run: string;
  parallel: number;
  at: string | null;
  into: RestoreInto;
  /** Mail and DAV accounts restored in place go back to this server. */
  server: string | null;
  target: { path: string; exists: boolean } | null;
  sharedDb: string | null;
  /** The first 10 accounts in priority order. */
  first: {
    account: string;
    snapshot: string | null;
    time: string | null;
    where: string | null;
    allowed: boolean;
    error: string | null;
  }[];
  command: string;
}
