import { randomBytes } from "node:crypto";
import { promises as fs } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import Database from "better-sqlite3";
import { CorruptionError, errnoCode, LifeboatError } from "../core/errors.js";
import { BlobType } from "../repo/blob.js";
import type { Repository } from "../repo/repository.js";
import type { SnapshotWithId } from "../repo/snapshot.js";
import type { TreeNode } from "../repo/tree.js";
import {
  listSnapshotFiles,
  readSnapshotFile,
  requireSource,
  type SnapshotFile,
} from "../snapshot/snapshot-files.js";
import type { VirtualEntry, VirtualSource } from "../snapshot/virtual.js";
import { dbError } from "./child-stream.js";

/**
 * SQLite: a consistent copy of a live database, taken with SQLite's online backup API in one
 * step (one read transaction: writers in WAL mode keep writing, in rollback-journal mode they wait
 * for the copy), into a temporary file that is then stored as one file of the snapshot. The copy
 * keeps the page layout of the original, so the content-defined chunker finds the unchanged
 * pages of successive backups and stores only what changed.
 */

export const SQLITE_PREFIX = "sqlite:";

/** `sqlite:PATH` → the absolute path, or undefined when the argument is not a sqlite source. */
export function parseSqliteArg(arg: string): string | undefined {
  if (!arg.startsWith(SQLITE_PREFIX)) return undefined;
  const p = arg.slice(SQLITE_PREFIX.length);
  if (p === "") throw new LifeboatError("USAGE", "sqlite: needs a path, e.g. sqlite:/var/lib/app/app.db");
  return path.resolve(p);
}

/** The name snapshots of this database are recorded under (their `paths`). */
export function sqliteSourceName(absPath: string): string {
  return `${SQLITE_PREFIX}${absPath}`;
}

/** Facts about a copy, kept in the snapshot meta (to notice anomalies: a table that lost rows). */
export type SqliteFacts = {
  pageSize: number;
  pageCount: number;
  freelistCount: number;
  schemaVersion: number;
  userVersion: number;
  journalMode: string;
  sqliteVersion: string;
  /** Rows per table (virtual tables are skipped; their shadow tables are counted). */
  tables: Record<string, number>;
};
export type SqliteMeta = SqliteFacts & { file: string; copySeconds: number };

const SQLITE_MAGIC = Buffer.from("SQLite format 3\0", "latin1");

/** Checks, before any repository is opened, that the path is a readable SQLite database. */
export async function checkSqlitePath(absPath: string): Promise<void> {
  let fh: FileHandle;
  try {
    fh = await fs.open(absPath, "r");
  } catch (e) {
    const code = errnoCode(e);
    if (code === "ENOENT")
      throw new LifeboatError(
        "USAGE",
        `${absPath} does not exist`,
        "give the path of an SQLite database file",
      );
    if (code === "EACCES" || code === "EPERM")
      throw new LifeboatError("PERMISSION_DENIED", `${absPath}: permission denied`);
    if (code === "EISDIR")
      throw new LifeboatError("USAGE", `${absPath} is a folder, not an SQLite database file`);
    throw dbError("SOURCE_UNREADABLE", `${absPath}: ${(e as Error).message}`);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new LifeboatError("USAGE", `${absPath} is not a regular file`);
    const head = Buffer.alloc(16);
    const { bytesRead } = await fh.read(head, 0, 16, 0);
    // An empty file is a valid (empty) database for SQLite.
    if (bytesRead > 0 && !head.equals(SQLITE_MAGIC)) {
      throw new LifeboatError(
        "USAGE",
        `${absPath} is not an SQLite database (no "SQLite format 3" header)`,
        "back up ordinary files with `lifeboat backup PATH` (without sqlite:)",
      );
    }
  } finally {
    await fh.close();
  }
}

const quoteIdent = (name: string) => `"${name.replace(/"/g, '""')}"`;

/** Page, schema and row-count facts of a database file (a copy: counting does not disturb the source). */
export function describeDatabase(db: Database.Database): SqliteFacts {
  const pragma = (p: string) => db.pragma(p, { simple: true }) as unknown;
  const tables: Record<string, number> = {};
  const rows = db.prepare("SELECT name, sql FROM sqlite_schema WHERE type = 'table' ORDER BY name").all() as {
    name: string;
    sql: string | null;
  }[];
  for (const t of rows) {
    // Virtual tables need their module loaded; their shadow tables are counted instead.
    if (t.sql && /^\s*CREATE\s+VIRTUAL\s/i.test(t.sql)) continue;
    const r = db.prepare(`SELECT count(*) AS n FROM ${quoteIdent(t.name)}`).get() as { n: number };
    tables[t.name] = r.n;
  }
  return {
    pageSize: Number(pragma("page_size")),
    pageCount: Number(pragma("page_count")),
    freelistCount: Number(pragma("freelist_count")),
    schemaVersion: Number(pragma("schema_version")),
    userVersion: Number(pragma("user_version")),
    journalMode: String(pragma("journal_mode")),
    sqliteVersion: String((db.prepare("SELECT sqlite_version() AS v").get() as { v: string }).v),
    tables,
  };
}

function sqliteError(absPath: string, e: unknown): LifeboatError {
  const code = (e as { code?: string }).code ?? "";
  const msg = (e as Error).message;
  if (code === "SQLITE_BUSY" || code === "SQLITE_LOCKED")
    return dbError(
      "SOURCE_UNREADABLE",
      `${absPath}: the database stayed locked by a writer (${msg})`,
      "try again; long write transactions block the copy in rollback-journal mode (WAL mode does not)",
    );
  if (code === "SQLITE_NOTADB" || code === "SQLITE_CORRUPT")
    return dbError("SOURCE_UNREADABLE", `${absPath}: not a usable SQLite database (${msg})`);
  if (code === "SQLITE_CANTOPEN" || code === "SQLITE_PERM" || code === "SQLITE_READONLY")
    return new LifeboatError("PERMISSION_DENIED", `${absPath}: cannot open the database (${msg})`);
  return dbError("SOURCE_UNREADABLE", `${absPath}: ${msg}`);
}

export interface SqliteCopy {
  file: string;
  meta: SqliteMeta;
  mode: number;
  cleanup(): Promise<void>;
}

/**
 * Takes a consistent copy of a live database into a private temporary folder (os.tmpdir()).
 * The copy is checked with `PRAGMA quick_check` before it is used.
 */
export async function copySqlite(absPath: string): Promise<SqliteCopy> {
  const st = await fs.stat(absPath);
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "lifeboat-sqlite-"));
  const cleanup = () => fs.rm(dir, { recursive: true, force: true });
  const file = path.join(dir, path.basename(absPath));
  try {
    const started = Date.now();
    let src: Database.Database;
    try {
      // Nothing is written through this connection. Opened read-write when allowed, so that as
      // the last connection to close it removes the -wal/-shm files a reader would leave behind.
      src = new Database(absPath, { fileMustExist: true, timeout: 30_000 });
    } catch {
      try {
        src = new Database(absPath, { readonly: true, fileMustExist: true, timeout: 30_000 });
      } catch (e) {
        throw sqliteError(absPath, e);
      }
    }
    try {
      // One step: the first call only learns the page count; returning "all pages" makes the
      // second call copy everything inside a single read transaction, so concurrent commits can
      // neither tear the copy nor restart it.
      await src.backup(file, { progress: () => 0x7fffffff });
    } catch (e) {
      throw sqliteError(absPath, e);
    } finally {
      src.close();
    }
    const copySeconds = (Date.now() - started) / 1000;
    const copy = new Database(file, { fileMustExist: true });
    let described: SqliteFacts;
    try {
      const check = copy.pragma("quick_check", { simple: true });
      if (check !== "ok") {
        throw dbError(
          "SOURCE_UNREADABLE",
          `${absPath}: the copy fails PRAGMA quick_check (${String(check)}); the source database is damaged`,
          "repair the database (sqlite3 .recover), or back up the raw file with `lifeboat backup PATH`",
        );
      }
      described = describeDatabase(copy);
    } finally {
      copy.close();
    }
    return {
      file,
      mode: st.mode & 0o7777,
      meta: { file: path.basename(absPath), ...described, copySeconds },
      cleanup,
    };
  } catch (e) {
    await cleanup();
    throw e;
  }
}

/**
 * Database files are stored in fixed 64 KiB pieces aligned to the file start (a multiple of any
 * SQLite page size up to 64 KiB). SQLite changes whole pages in place, so a small change costs a
 * few 64 KiB blobs; the repository's content-defined chunker (about 1 MiB pieces) would store
 * about 1 MiB per touched place, and every backup touches page 1 (the change counter). Fixed
 * boundaries depend on nothing but the offset, so they reveal nothing about the content.
 */
export const SQLITE_PIECE = 64 * 1024;

/**
 * Stores a file as fixed-size data blobs; returns the content ids and the size. `beforePiece`
 * is awaited before each piece is read (replicate lets its WAL segments go first there).
 */
export async function storeFixedPieces(
  repo: Repository,
  file: string,
  pieceSize: number,
  onBytes: (n: number) => void = () => {},
  beforePiece?: () => Promise<void>,
): Promise<{ content: string[]; size: number }> {
  const fh = await fs.open(file, "r");
  const ids: Promise<Buffer>[] = [];
  let size = 0;
  try {
    for (;;) {
      await beforePiece?.();
      // A fresh buffer per piece: the repository may hand it to a worker thread.
      const buf = Buffer.allocUnsafe(pieceSize);
      let filled = 0;
      while (filled < pieceSize) {
        const { bytesRead } = await fh.read(buf, filled, pieceSize - filled, size + filled);
        if (bytesRead === 0) break;
        filled += bytesRead;
      }
      if (filled === 0) break;
      size += filled;
      onBytes(filled);
      ids.push((await repo.saveBlobDeferred(BlobType.data, buf.subarray(0, filled))).id);
      if (filled < pieceSize) break;
    }
  } finally {
    await fh.close();
  }
  const content = (await Promise.all(ids)).map((id) => id.toString("hex"));
  return { content, size };
}

/**
 * A virtual source for `lifeboat backup sqlite:PATH`. The copy is taken when the backup starts
 * reading; call `cleanup()` afterwards to remove it.
 */
export function sqliteSource(
  absPath: string,
  repo: Repository,
): VirtualSource & { cleanup(): Promise<void> } {
  let copy: SqliteCopy | undefined;
  return {
    name: sqliteSourceName(absPath),
    type: "sqlite",
    async *entries(): AsyncIterable<VirtualEntry> {
      copy = await copySqlite(absPath);
      const c = copy;
      // The pieces are stored here and handed over as already-stored content (`reuse`): the
      // virtual-source API chunks `read` streams with the content-defined chunker only.
      const stored = await storeFixedPieces(repo, c.file, SQLITE_PIECE);
      const node: TreeNode = {
        name: c.meta.file,
        type: "file",
        mode: c.mode,
        uid: 0,
        gid: 0,
        mtime: "0",
        size: stored.size,
        content: stored.content,
      };
      yield { kind: "file", path: c.meta.file, mode: c.mode, reuse: node };
    },
    meta() {
      if (!copy) throw dbError("SOURCE_UNREADABLE", `${absPath}: no copy was taken`);
      return { ...copy.meta, pieceSize: SQLITE_PIECE };
    },
    async cleanup() {
      await copy?.cleanup();
    },
  };
}

export interface SqliteRestoreResult {
  file: string;
  bytes: number;
  integrity: string;
  tables: Record<string, number>;
}

async function exists(p: string): Promise<boolean> {
  return fs.lstat(p).then(
    () => true,
    () => false,
  );
}

/**
 * Where an SQLite snapshot's database file goes: the one file it holds, the destination (a file,
 * or a folder to put it in), refusing stale -wal/-journal/-shm files SQLite would apply to it,
 * and a temporary name beside it (with the clean-up of what SQLite may create next to it).
 */
export async function sqliteRestoreTarget(
  repo: Repository,
  snap: SnapshotWithId,
  target: string,
): Promise<{ file: SnapshotFile; dest: string; tmp: string; removeTmp: () => Promise<void> }> {
  const files = await listSnapshotFiles(repo, snap);
  if (files.length !== 1) {
    throw new CorruptionError(
      `snapshot ${snap.id.slice(0, 8)}`,
      `an SQLite snapshot should hold one database file, it holds ${files.length}`,
    );
  }
  const file = files[0]!;
  let dest = path.resolve(target);
  const st = await fs.stat(dest).catch(() => undefined);
  if (st?.isDirectory()) dest = path.join(dest, file.node.name);
  else if (st && !st.isFile())
    throw new LifeboatError("USAGE", `${dest} exists and is not a regular file`, "give a new file name");
  for (const side of ["-wal", "-journal", "-shm"]) {
    if (await exists(dest + side)) {
      throw new LifeboatError(
        "ALREADY_EXISTS",
        `${dest}${side} exists: SQLite would apply it to the restored database`,
        "stop the program using that database and restore to another file name (or remove the stale file)",
      );
    }
  }
  await fs.mkdir(path.dirname(dest), { recursive: true });
  const tmp = `${dest}.lifeboat-${randomBytes(6).toString("hex")}.tmp`;
  const removeTmp = async () => {
    for (const s of ["", "-wal", "-shm", "-journal"]) await fs.rm(tmp + s, { force: true });
  };
  return { file, dest, tmp, removeTmp };
}

/**
 * Restores the database of a sqlite snapshot to `target` (a file path, or an existing folder to
 * put it in under its stored name). The file is written under a temporary name next to the
 * target, checked with `PRAGMA integrity_check` and against the row counts recorded at backup
 * time, and only then renamed into place.
 */
/**
 * Renames a checked, closed database file over `dest` and makes the rename durable. Closing the
 * last connection removes -wal/-shm; anything left of them is removed so nothing stale sits
 * beside the new file.
 */
export async function moveRestoredDatabase(tmp: string, dest: string): Promise<void> {
  for (const s of ["-wal", "-shm"]) await fs.rm(tmp + s, { force: true });
  await fs.rename(tmp, dest);
  const dh = await fs.open(path.dirname(dest), "r");
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}

export async function restoreSqlite(
  repo: Repository,
  snap: SnapshotWithId,
  target: string,
): Promise<SqliteRestoreResult> {
  requireSource(snap, ["sqlite"], "an SQLite snapshot");
  const { file, dest, tmp, removeTmp } = await sqliteRestoreTarget(repo, snap, target);
  try {
    let bytes = 0;
    const fh = await fs.open(tmp, "wx", (file.node.mode ?? 0o600) & 0o777);
    try {
      for await (const b of readSnapshotFile(repo, file)) {
        await fh.write(b);
        bytes += b.length;
      }
      await fh.sync();
    } finally {
      await fh.close();
    }
    let integrity: string;
    let described: ReturnType<typeof describeDatabase>;
    const db = new Database(tmp, { fileMustExist: true });
    try {
      const rows = db.pragma("integrity_check") as { integrity_check: string }[];
      integrity = rows.map((r) => r.integrity_check).join("; ");
      if (integrity !== "ok") {
        throw new CorruptionError(
          `snapshot ${snap.id.slice(0, 8)}`,
          `the restored database fails PRAGMA integrity_check: ${integrity.slice(0, 400)}`,
        );
      }
      described = describeDatabase(db);
    } finally {
      db.close();
    }
    const meta = snap.meta as Partial<SqliteMeta> | undefined;
    if (meta?.tables) {
      for (const [t, n] of Object.entries(meta.tables)) {
        if (described.tables[t] !== n) {
          throw new CorruptionError(
            `snapshot ${snap.id.slice(0, 8)}`,
            `table ${t} has ${described.tables[t] ?? "no"} rows after restore, the backup recorded ${n}`,
          );
        }
      }
    }
    await moveRestoredDatabase(tmp, dest);
    return { file: dest, bytes, integrity, tables: described.tables };
  } catch (e) {
    await removeTmp();
    throw e;
  }
}
