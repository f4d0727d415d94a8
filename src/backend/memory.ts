import { LifeboatError, RetainedError } from "../core/errors.js";
import { type Backend, type GetOptions, type ObjectInfo, objectName, type PutOptions } from "./backend.js";
import { storageError } from "./storage-error.js";

/** One stored object: its bytes and, on storage with retention, until when it is locked. */
export interface StoredObject {
  data: Buffer;
  retainUntil?: Date;
  retentionMode?: "compliance" | "governance";
}

/**
 * The objects themselves, apart from any backend that reads them: several backends may share one
 * store, e.g. an append-only client and the privileged side that prunes (as with `lifeboat serve
 * --append-only` and a local prune on the server's folder).
 */
export interface MemoryStore {
  readonly objects: Map<string, StoredObject>;
  /** Set by `create()`; with objects present the store counts as existing anyway. */
  created: boolean;
}

export interface MemoryBackendOptions {
  /** Shown in `location` (`memory:LABEL`) and in error messages; default a counter. */
  label?: string;
  /** Shares objects with other backends; default a new, empty store. */
  store?: MemoryStore;
  /**
   * Refuses deletes and overwrites with other bytes, as `lifeboat serve --append-only` does
   * (PERMISSION_DENIED); deletes under `appendOnlyDeletable` are still allowed.
   */
  appendOnly?: boolean;
  /** Prefixes that stay deletable when append-only; default `["sessions/"]` like the server. */
  appendOnlyDeletable?: readonly string[];
  /**
   * Keeps each put's `retainUntil` and refuses to delete or replace (with other bytes) an
   * object before that date, the way an S3 bucket with Object Lock answers AccessDenied.
   */
  retention?: boolean;
  /** Total bytes the store may hold; a put beyond it fails with STORAGE_FULL (ENOSPC). */
  capacity?: number;
  /** Clock for retention dates (ms since the epoch); default `Date.now`. */
  now?: () => number;
}

export interface MemoryBackend extends Backend {
  readonly store: MemoryStore;
  /**
   * The stored bytes by name, in name order. The buffers are the stored ones, not copies: a test
   * that flips a bit in one damages the object, as bit rot on a disk would.
   */
  objects(): Map<string, Buffer>;
  /**
   * Replaces an object's bytes with what `fn` returns (or keeps the buffer `fn` changed in
   * place), ignoring append-only and retention: damage, not a write through the API.
   */
  corrupt(name: string, fn: (data: Buffer) => Buffer | undefined): void;
  /** Bytes held by the store (what `capacity` limits). */
  usedBytes(): number;
}

/** Prefixes the append-only server lets clients delete: the markers of running backups. */
const SERVER_DELETABLE = ["sessions/"];

let counter = 0;

/** A new, empty store, for backends that should share their objects. */
export function memoryStore(): MemoryStore {
  return { objects: new Map(), created: false };
}

/**
 * A repository held in memory, for tests and for library users who want a scratch repository.
 * It keeps every guarantee of `Backend` (atomic puts: the bytes are copied in whole or not at
 * all; read-after-write; NOT_FOUND and the other codes as the real backends report them) and
 * can behave like append-only storage or storage with Object Lock retention. Data lives as long
 * as the store; `close()` keeps it, so a repository can be closed and opened again.
 */
export function memoryBackend(options: MemoryBackendOptions = {}): MemoryBackend {
  const store = options.store ?? memoryStore();
  const location = `memory:${options.label ?? String(++counter)}`;
  const now = options.now ?? Date.now;
  const deletable = options.appendOnly ? (options.appendOnlyDeletable ?? SERVER_DELETABLE) : [];
  const where = (name: string) => `${location}/${name}`;

  const notFound = (name: string) => new LifeboatError("NOT_FOUND", `${where(name)} does not exist`);

  /** The refusal `lifeboat serve --append-only` answers (403), as the rest backend reports it. */
  const appendOnlyRefusal = (name: string, what: string) =>
    new LifeboatError(
      "PERMISSION_DENIED",
      `${location}: ${name}: append-only: refusing to ${what}`,
      "this storage is append-only: run forget and prune through a backend that may delete (the server itself)",
    );

  /** What S3 answers for an object under Object Lock (AccessDenied), as PERMISSION_DENIED. */
  const retentionRefusal = (name: string, o: StoredObject, what: string) =>
    new RetainedError(
      name,
      `access denied to ${where(name)}: cannot ${what} it, it is under ${o.retentionMode ?? "compliance"} retention until ${o.retainUntil?.toISOString()}`,
      o.retainUntil,
      o.retentionMode ?? "compliance",
    );

  const locked = (o: StoredObject | undefined): o is StoredObject =>
    options.retention === true && o?.retainUntil !== undefined && o.retainUntil.getTime() > now();

  const used = () => {
    let n = 0;
    for (const o of store.objects.values()) n += o.data.length;
    return n;
  };

  return {
    location,
    capabilities: { retention: options.retention === true, appendOnly: options.appendOnly === true },
    store,

    async exists() {
      return store.created || store.objects.size > 0;
    },

    async create() {
      store.created = true;
    },

    async get(name: string, opts?: GetOptions) {
      const o = store.objects.get(objectName(name));
      if (!o) throw notFound(name);
      const offset = opts?.offset ?? 0;
      if (!Number.isSafeInteger(offset) || offset < 0) throw new Error(`invalid offset ${offset}`);
      if (opts?.length !== undefined && (!Number.isSafeInteger(opts.length) || opts.length < 0))
        throw new Error(`invalid length ${opts.length}`);
      // Past the end a read is short (or empty), as a file read is.
      const end = opts?.length === undefined ? o.data.length : Math.min(o.data.length, offset + opts.length);
      return Buffer.from(o.data.subarray(Math.min(offset, end), end));
    },

    async stat(name: string) {
      const o = store.objects.get(objectName(name));
      return o ? { name, size: o.data.length } : undefined;
    },

    async put(name: string, data: Buffer, opts?: PutOptions) {
      const existing = store.objects.get(objectName(name));
      // A retried upload of the same bytes is fine everywhere; other bytes would be an overwrite.
      const same = existing?.data.equals(data) === true;
      if (existing && !same) {
        if (options.appendOnly) throw appendOnlyRefusal(name, "overwrite an existing object");
        if (locked(existing)) throw retentionRefusal(name, existing, "overwrite");
      }
      if (
        options.capacity !== undefined &&
        used() - (existing?.data.length ?? 0) + data.length > options.capacity
      )
        throw storageError(
          Object.assign(new Error(`ENOSPC: no space left on device (capacity ${options.capacity} bytes)`), {
            code: "ENOSPC",
          }),
          where(name),
        );
      // The copy is taken before the object becomes visible: a caller reusing its buffer later
      // cannot change what was stored, and no reader ever sees part of it.
      const o: StoredObject = { data: Buffer.from(data) };
      if (options.retention && opts?.retainUntil) {
        // Retention is never shortened by an identical re-upload.
        const keep = locked(existing) && existing.retainUntil! > opts.retainUntil ? existing : undefined;
        o.retainUntil = new Date((keep?.retainUntil ?? opts.retainUntil).getTime());
        o.retentionMode = keep?.retentionMode ?? opts.retentionMode ?? "compliance";
      } else if (locked(existing)) {
        o.retainUntil = existing.retainUntil!;
        if (existing.retentionMode) o.retentionMode = existing.retentionMode;
      }
      store.objects.set(name, o);
    },

    async *list(prefix: string): AsyncIterable<ObjectInfo> {
      // The names are taken at the start, like one page of an S3 listing; sorted like S3's.
      const names = [...store.objects.keys()].filter((n) => n.startsWith(prefix)).sort();
      for (const name of names) {
        const o = store.objects.get(name);
        if (o) yield { name, size: o.data.length };
      }
    },

    async delete(name: string) {
      objectName(name);
      if (options.appendOnly && !deletable.some((p) => name.startsWith(p)))
        throw appendOnlyRefusal(name, "delete; run forget/prune on the server itself");
      const o = store.objects.get(name);
      if (!o) return;
      if (locked(o)) throw retentionRefusal(name, o, "delete");
      store.objects.delete(name);
    },

    async close() {},

    objects() {
      const out = new Map<string, Buffer>();
      for (const name of [...store.objects.keys()].sort()) out.set(name, store.objects.get(name)!.data);
      return out;
    },

    corrupt(name: string, fn: (data: Buffer) => Buffer | undefined) {
      const o = store.objects.get(objectName(name));
      if (!o) throw notFound(name);
      const replaced = fn(o.data);
      if (replaced !== undefined) o.data = replaced;
    },

    usedBytes: used,
  };
}
