/**
 * The storage interface: named, immutable objects. Every backend (local, s3, sftp, rest, memory)
 * is one module that returns an object of this shape; retries, rate limits, caching and fault
 * injection (faulty.ts) are wrappers around it, never code inside a backend. The contract below
 * is checked against every backend by test/backend/contract.ts.
 *
 * What the repository needs from storage, and every backend must guarantee:
 * - `put` is atomic: after a crash or a dropped connection an object is either absent or whole;
 *   a partial upload is never visible under its final name (temp name + rename, or a single
 *   PUT / completed multipart upload).
 * - read-after-write: an object is readable and listed once `put` has resolved.
 * - a resolved `put` is done with `data`: nothing keeps or reads it afterwards (a backend that
 *   holds objects in memory copies them), so the caller may reuse that memory (the pack writer
 *   builds its next pack in it).
 * - `openWriter`, where a backend has it, is `put` in pieces with the same guarantees: nothing
 *   is visible under any name before `commit`, and a writer aborted, failed or abandoned by a
 *   crash leaves at most a temporary object that `list` never shows.
 * - a ranged `get` past the end is short, one that starts at or past the end is empty.
 * - names are slash-separated relative paths made of [A-Za-z0-9._-] segments (see `objectName`).
 * - `get` of a missing object and `stat`/`delete` errors map to LifeboatError codes
 *   (NOT_FOUND, UNREACHABLE, AUTH_FAILED, PERMISSION_DENIED, STORAGE_FULL, STORAGE_ERROR).
 */
export interface ObjectInfo {
  /** Object name relative to the repository root, e.g. `data/ab/ab12...`. */
  name: string;
  size: number;
}

export interface GetOptions {
  /** Byte offset of a ranged read. */
  offset?: number;
  /** Number of bytes of a ranged read; absent means to the end. */
  length?: number;
  /** For a ranged read with `length`: memory the bytes may be read into (from its start; it
   * must hold `length` bytes). The answer is then a view of it, so a reader that reuses one
   * buffer allocates nothing per read. Backends that cannot read into it ignore it. */
  into?: Buffer;
}

export interface PutOptions {
  /**
   * Object Lock retention for storage that supports it (S3); backends without retention
   * support ignore it only if `capabilities.retention` is false, which callers check first.
   */
  retainUntil?: Date;
  retentionMode?: "compliance" | "governance";
  /** The caller replaces an existing object with different bytes on purpose. Only the
   * repository config is ever replaced (to add a format feature); storage that refuses
   * overwrites (append-only) fails with PERMISSION_DENIED. */
  overwrite?: boolean;
}

/**
 * An object written in pieces and named once complete (a pack streamed as it fills, so its
 * bytes need not all be in memory at once). Local storage: a temporary file renamed into place.
 */
export interface ObjectWriter {
  /** Appends `data`; once resolved, nothing keeps or reads `data` (its memory may be reused).
   * Calls are made one after another, never overlapping. */
  write(data: Uint8Array): Promise<void>;
  /** Atomically stores everything written under `name` (as `put` would). */
  commit(name: string): Promise<void>;
  /** Drops what was written; nothing becomes visible. Never throws. */
  abort(): Promise<void>;
}

export interface BackendCapabilities {
  /** Objects can carry a retention date (S3 Object Lock). */
  retention: boolean;
  /** Deletion is refused by the storage (append-only server). */
  appendOnly: boolean;
}

/** One stored version of a name, or a delete marker, on storage that keeps versions. */
export interface ObjectVersion {
  name: string;
  versionId: string;
  /** Bytes of the version (0 for a delete marker). */
  size: number;
  /** When the version (or marker) was written (ISO time). */
  modified: string;
  deleteMarker: boolean;
  /** Whether this is the newest version of the name (a marker here hides the object). */
  latest: boolean;
}

/**
 * Storage that keeps old versions of objects (an S3 bucket with versioning, which Object Lock
 * requires). There, a plain delete only adds a *delete marker* that hides the object; its bytes
 * stay, and so does the bill. `Backend.delete` on such storage removes every version of the
 * name (and any markers), so lifeboat never leaves markers of its own; these calls serve
 * `repair undelete`, which removes markers someone else left.
 */
export interface VersionedStorage {
  /** Whether the storage keeps versions now ("Enabled") or kept them ("Suspended"), and whether
   * Object Lock is on; `undefined` when the storage does not say (a missing permission). */
  state(): Promise<{ versioning: boolean; objectLock: boolean | undefined }>;
  /** Every version and delete marker whose name starts with `prefix`, by name, newest first. */
  list(prefix: string): AsyncIterable<ObjectVersion>;
  /** Removes one version or delete marker. A locked version is refused (RetainedError). */
  deleteVersion(name: string, versionId: string): Promise<void>;
}

export interface Backend {
  /** Human-readable location for messages, never containing secrets. */
  readonly location: string;
  readonly capabilities: BackendCapabilities;
  /** Present on storage that can keep object versions (S3); see VersionedStorage. */
  readonly versions?: VersionedStorage;
  /** Whether the repository root exists at all (used to tell "no repository here" apart). */
  exists(): Promise<boolean>;
  /** Creates the repository root (and folders the backend needs); fine if it already exists. */
  create(): Promise<void>;
  get(name: string, options?: GetOptions): Promise<Buffer>;
  /** Returns undefined when the object does not exist. */
  stat(name: string): Promise<ObjectInfo | undefined>;
  /** Atomically stores `data` under `name`. Overwriting an existing name is allowed only for
   * backends where the caller knows the content is identical (content-addressed names). */
  put(name: string, data: Buffer, options?: PutOptions): Promise<void>;
  /**
   * Optional: starts an object to be written in pieces (see ObjectWriter) under the folder
   * `folder` (e.g. `data`: the name given to `commit` lies below it). Only storage without
   * retention has it, and a wrapper that changes what `put` does (limits, locks, checks) must
   * wrap it too or leave it out: writers fall back to `put` when it is absent.
   */
  openWriter?(folder: string): Promise<ObjectWriter>;
  /**
   * Optional: removes temporary objects (what a killed writer leaves, never listed) last written
   * before `before` (ms since the epoch); prune calls it with a day's margin, so a writer that
   * is still at work keeps its own.
   */
  removeTemporaries?(before: number): Promise<{ files: number; bytes: number }>;
  /** Lists objects whose name starts with `prefix`: "" or a folder such as `snapshots/` (with
   * its trailing slash), recursively. */
  list(prefix: string): AsyncIterable<ObjectInfo>;
  /** Removes the object: on storage that keeps versions, every version of it (no delete marker
   * is left). An object under retention is refused with a RetainedError. */
  delete(name: string): Promise<void>;
  close(): Promise<void>;
}

const segment = /^[A-Za-z0-9._-]+$/;

/** Validates an object name so no backend ever sees `..`, absolute paths or odd bytes. */
export function objectName(name: string): string {
  const parts = name.split("/");
  for (const p of parts) {
    if (!segment.test(p) || p === "." || p === "..") {
      throw new Error(`invalid object name ${JSON.stringify(name)}`);
    }
  }
  return name;
}
