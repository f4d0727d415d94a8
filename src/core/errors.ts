import type { ItemError, ItemErrorCode } from "./item-error.js";
import { displayName } from "./names.js";

/**
 * Every failure a user can meet is one of these: a stable machine code, a one-line message that
 * says what is wrong, a hint that says what to do, and the process exit code the CLI uses.
 * The table of exit codes is documented in README.md ("Exit codes"); keep the two in step.
 */
export const ExitCode = {
  ok: 0,
  failure: 1,
  usage: 2,
  incomplete: 3,
  anomaly: 4,
  missedSchedule: 5,
  repoNotFound: 10,
  repoExists: 11,
  wrongPassword: 12,
  snapshotNotFound: 13,
  corruption: 14,
  storageFull: 15,
  unreachable: 16,
  busy: 17,
  newerFormat: 18,
  needsFullKey: 19,
  interrupted: 130,
} as const;
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

export type ErrorCode =
  | "USAGE"
  | "REPO_NOT_FOUND"
  | "REPO_EXISTS"
  | "WRONG_PASSWORD"
  | "NO_PASSWORD"
  | "SNAPSHOT_NOT_FOUND"
  | "SNAPSHOT_AMBIGUOUS"
  | "CORRUPTION"
  | "STORAGE_FULL"
  | "STORAGE_ERROR"
  | "UNREACHABLE"
  | "AUTH_FAILED"
  | "PERMISSION_DENIED"
  | "NOT_FOUND"
  | "ALREADY_EXISTS"
  | "SOURCE_UNREADABLE"
  | "UNSAFE_PATH"
  | "KEY_ERROR"
  | "REPO_BUSY"
  | "NEWER_FORMAT"
  | "FS_SNAPSHOT"
  | "FS_SNAPSHOT_CLEANUP"
  | "NEEDS_FULL_KEY"
  | "INTERRUPTED";

const exitByCode: Record<ErrorCode, ExitCodeValue> = {
  USAGE: ExitCode.usage,
  REPO_NOT_FOUND: ExitCode.repoNotFound,
  REPO_EXISTS: ExitCode.repoExists,
  WRONG_PASSWORD: ExitCode.wrongPassword,
  NO_PASSWORD: ExitCode.wrongPassword,
  SNAPSHOT_NOT_FOUND: ExitCode.snapshotNotFound,
  SNAPSHOT_AMBIGUOUS: ExitCode.snapshotNotFound,
  CORRUPTION: ExitCode.corruption,
  STORAGE_FULL: ExitCode.storageFull,
  STORAGE_ERROR: ExitCode.failure,
  UNREACHABLE: ExitCode.unreachable,
  AUTH_FAILED: ExitCode.unreachable,
  PERMISSION_DENIED: ExitCode.failure,
  NOT_FOUND: ExitCode.failure,
  ALREADY_EXISTS: ExitCode.failure,
  SOURCE_UNREADABLE: ExitCode.incomplete,
  UNSAFE_PATH: ExitCode.corruption,
  KEY_ERROR: ExitCode.failure,
  REPO_BUSY: ExitCode.busy,
  NEWER_FORMAT: ExitCode.newerFormat,
  FS_SNAPSHOT: ExitCode.failure,
  FS_SNAPSHOT_CLEANUP: ExitCode.failure,
  NEEDS_FULL_KEY: ExitCode.needsFullKey,
  INTERRUPTED: ExitCode.interrupted,
};

export class LifeboatError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  override readonly cause: unknown;

  constructor(code: ErrorCode, message: string, hint?: string, cause?: unknown) {
    super(message);
    this.name = "LifeboatError";
    this.code = code;
    this.hint = hint;
    this.cause = cause;
  }

  get exitCode(): ExitCodeValue {
    return exitByCode[this.code];
  }
}

/** Damage found in stored data: names the object (pack, index, snapshot) and the blobs involved. */
export class CorruptionError extends LifeboatError {
  readonly object: string;
  readonly blobs: string[];
  constructor(object: string, detail: string, blobs: string[] = [], hint?: string) {
    super(
      "CORRUPTION",
      `${object}: ${detail}`,
      hint ?? "run `lifeboat check --read-data` to see everything affected",
    );
    this.object = object;
    this.blobs = blobs;
  }
}

/**
 * Storage refused to delete (or replace) an object because it is under Object Lock retention or a
 * legal hold: expected on a repository with retention. Callers that delete (prune, forget) keep
 * such objects and try again once `retainUntil` has passed.
 */
export class RetainedError extends LifeboatError {
  readonly object: string;
  /** Until when the object is locked (the latest date of its locked versions), when known. */
  readonly retainUntil: Date | undefined;
  readonly mode: "governance" | "compliance" | "legal-hold" | undefined;
  constructor(
    object: string,
    message: string,
    retainUntil: Date | undefined,
    mode: RetainedError["mode"],
    cause?: unknown,
  ) {
    super(
      "PERMISSION_DENIED",
      message,
      "objects under retention are kept until that date; run the command again after it",
      cause,
    );
    this.object = object;
    this.retainUntil = retainUntil;
    this.mode = mode;
  }
}

export function isRetained(e: unknown): e is RetainedError {
  return e instanceof RetainedError;
}

export function isLifeboatError(e: unknown): e is LifeboatError {
  return e instanceof LifeboatError;
}

/** Socket error codes that mean "the server cannot be reached (now)"; clients add their own. */
export const UNREACHABLE_CODES: readonly string[] = [
  "ECONNREFUSED",
  "ECONNRESET",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ETIMEDOUT",
  "EPIPE",
];

/** Node's errno-style errors carry a string `code` such as ENOENT. */
export function errnoCode(e: unknown): string | undefined {
  if (typeof e === "object" && e !== null && "code" in e) {
    const c = (e as { code: unknown }).code;
    return typeof c === "string" ? c : undefined;
  }
  return undefined;
}

/**
 * Why one item (a file, a folder, a database) failed while the operation as a whole went on.
 * Library users switch on `code`; `message` is for people. Snapshot documents keep these as
 * strings (`path: message`), as format version 1 defines.
 */
const ITEM_ERROR_CODES = [
  "UNREADABLE",
  "CHANGED_TYPE",
  "DAMAGED",
  "UNSAFE_NAME",
  "UNWRITABLE",
  "STORAGE",
  "MISMATCH",
  "ENGINE_CHECK",
  "NEEDS_FEATURE",
  "FAILED",
] as const;

export type { ItemError, ItemErrorCode };

/** The item error an exception stands for: storage, damage and file-system errors by their codes. */
export function itemError(path: string, e: unknown, fallback: ItemErrorCode = "FAILED"): ItemError {
  const message = e instanceof Error ? e.message : String(e);
  return { path, code: itemErrorCode(e, fallback), message };
}

function itemErrorCode(e: unknown, fallback: ItemErrorCode): ItemErrorCode {
  if (isLifeboatError(e)) {
    if (e.code === "CORRUPTION") return "DAMAGED";
    if (e.code === "UNSAFE_PATH") return "UNSAFE_NAME";
    if (["UNREACHABLE", "AUTH_FAILED", "STORAGE_ERROR", "STORAGE_FULL"].includes(e.code)) return "STORAGE";
    if (e.code === "SOURCE_UNREADABLE") return "UNREADABLE";
    return fallback;
  }
  const errno = errnoCode(e);
  if ((ITEM_ERROR_CODES as readonly string[]).includes(errno ?? "")) return errno as ItemErrorCode;
  if (errno === "CORRUPTION") return "DAMAGED";
  if (errno === "ECHANGED") return "CHANGED_TYPE";
  if (errno && ["EACCES", "EPERM", "EIO", "ENOENT", "ELOOP", "ENXIO"].includes(errno)) return fallback;
  if (errno && ["ENOSPC", "EDQUOT", "EROFS", "ENAMETOOLONG", "EEXIST", "ENOTDIR", "EISDIR"].includes(errno))
    return "UNWRITABLE";
  return fallback;
}

/** An error that says which item error it is (`itemError` picks the code up). */
export function failure(code: ItemErrorCode, message: string): Error {
  return Object.assign(new Error(message), { code });
}

/** The one-line text of an item error, as snapshot documents and plain output show it (a
 * path that is not UTF-8 with `\xHH` for its other bytes, core/names.ts). */
export function formatItemError(e: ItemError): string {
  return `${displayName(e.path)}: ${e.message}`;
}

/**
 * What is wrong with a document a schema refused, in a few words (`field a.b: expected string`),
 * or the first line of any other error's message.
 */
export function schemaProblem(e: unknown): string {
  const issues = (e as { issues?: { path: PropertyKey[]; message: string }[] } | undefined)?.issues;
  const first = Array.isArray(issues) ? issues[0] : undefined;
  if (first)
    return `${first.path.length > 0 ? `field ${first.path.map(String).join(".")}: ` : ""}${first.message}`;
  return (e instanceof Error ? e.message : String(e)).split("\n")[0] ?? "";
}
