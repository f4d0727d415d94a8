import { createHash } from "node:crypto";
import { createReadStream, promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { CorruptionError, errnoCode, isLifeboatError, LifeboatError } from "../../core/errors.js";
import { BlobType } from "../../repo/blob.js";
import { endSession, startSession } from "../../repo/gc-plan.js";
import { type WalBlobHint, type WalRecord, walKind, walLabel } from "../../repo/records-wal.js";
import type { Repository } from "../../repo/repository.js";
import { storeStream } from "../../snapshot/store-file.js";
import { requireWalName } from "./wal-names.js";

/**
 * The WAL archive: every file PostgreSQL hands to `archive_command` is chunked into ordinary
 * data blobs (deduplicated within the push, compressed, encrypted like everything else) and
 * described by one small sealed document (object kind 8) at
 *
 *   wal/<K>/<S>
 *
 * where K = hex HMAC-SHA-256(id key, "lifeboat wal " + cluster + " " + file name) — so a file is
 * found by its name with one listing, and the storage never learns the names — and S is the
 * SHA-256 of the stored object, as for every other object. The document also records where its
 * blobs were written (pack, offset, length), so `wal-fetch` reads a segment without loading the
 * repository's index; the blobs are verified against their ids either way, and a stale location
 * (after a prune repacked) falls back to the index.
 */

export type { WalBlobHint, WalRecord };

export interface StoredWal {
  /** Object name, `wal/<K>/<S>`. */
  object: string;
  record: WalRecord;
}

export const DEFAULT_CLUSTER = "main";

/** The archived versions of one file (normally none or one). */
export async function findWal(repo: Repository, cluster: string, name: string): Promise<StoredWal[]> {
  const found = await repo.records.list(walKind, { label: walLabel(cluster, name), unreadable: "throw" });
  return found
    .filter((r) => r.record.name === name && r.record.cluster === cluster)
    .map((r) => ({ object: r.object, record: r.record }))
    .sort((a, b) => (a.record.time < b.record.time ? -1 : 1));
}

/** Every archived file (of one cluster, or of all). */
export async function listWal(repo: Repository, cluster?: string): Promise<StoredWal[]> {
  return (await repo.records.list(walKind, { unreadable: "throw" }))
    .filter((r) => cluster === undefined || r.record.cluster === cluster)
    .map((r) => ({ object: r.object, record: r.record }))
    .sort((a, b) => (a.record.name < b.record.name ? -1 : a.record.name > b.record.name ? 1 : 0));
}

async function sha256File(file: string): Promise<{ sha256: string; size: number }> {
  const h = createHash("sha256");
  let size = 0;
  for await (const b of createReadStream(file, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
    h.update(b);
    size += b.length;
  }
  return { sha256: h.digest("hex"), size };
}

/** System identifier and segment size from a segment's long page header (native byte order). */
function pageHeaderFacts(first: Buffer): { systemId?: string; segmentSize?: number } {
  const XLP_LONG_HEADER = 0x0002;
  if (first.length < 40 || (first.readUInt16LE(2) & XLP_LONG_HEADER) === 0) return {};
  return { systemId: first.readBigUInt64LE(24).toString(), segmentSize: first.readUInt32LE(32) };
}

export interface WalPushResult {
  name: string;
  status: "stored" | "already-archived";
  size: number;
  bytesStored: number;
  ms: number;
}

/**
 * `archive_command`: stores one file. Pushing a file that is archived with the same bytes
 * succeeds without storing anything; a different file under an archived name is refused
 * (PostgreSQL then keeps the file and retries, and the operator must look).
 */
export async function walPush(
  repo: Repository,
  file: string,
  opts: { cluster?: string; host?: string } = {},
): Promise<WalPushResult> {
  const started = Date.now();
  const cluster = opts.cluster ?? DEFAULT_CLUSTER;
  const w = requireWalName(path.basename(file));
  let st: import("node:fs").Stats;
  try {
    st = await fs.stat(file);
  } catch (e) {
    throw new LifeboatError("NOT_FOUND", `cannot read ${file}: ${(e as Error).message}`);
  }
  if (!st.isFile()) throw new LifeboatError("USAGE", `${file} is not a regular file`);
  const existing = await findWal(repo, cluster, w.name);
  if (existing.length > 0) {
    const mine = await sha256File(file);
    if (existing.some((e) => e.record.sha256 === mine.sha256 && e.record.size === mine.size))
      return {
        name: w.name,
        status: "already-archived",
        size: mine.size,
        bytesStored: 0,
        ms: Date.now() - started,
      };
    const other = existing[0]!.record;
    throw new LifeboatError(
      "ALREADY_EXISTS",
      `${w.name} is already archived with different content (${other.size} bytes from ${other.host} at ${other.time}, this one has ${mine.size}); not replaced`,
      "two servers archiving into the same repository need different --cluster names; otherwise compare the server's file with `lifeboat pg wal-fetch`",
    );
  }
  const hash = createHash("sha256");
  let first: Buffer | undefined;
  async function* read(): AsyncIterable<Buffer> {
    for await (const b of createReadStream(file, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
      hash.update(b);
      if (!first) first = Buffer.from(b.subarray(0, 64));
      yield b;
    }
  }
  const before = repo.writeStats.bytesStored;
  // A session, like a backup's: a prune running meanwhile must not delete the new pack in the
  // moment between its index file and the record that makes it needed.
  const session = await startSession(repo, "backup");
  try {
    return await storeRecord();
  } finally {
    await endSession(repo, session).catch(() => {});
  }
  async function storeRecord(): Promise<WalPushResult> {
    // Blobs are durable and indexed (the writer scope flushes) before the record that points at them.
    const { content, size } = await repo.withWriter((w) => storeStream(w, read(), () => {}));
    const blobs: WalBlobHint[] = [];
    for (const id of new Set(content)) {
      const loc = repo.lookup(Buffer.from(id, "hex"));
      if (loc)
        blobs.push({
          id,
          pack: loc.packId,
          offset: loc.offset,
          length: loc.length,
          rawLength: loc.rawLength,
          compression: loc.compression,
        });
    }
    const record: WalRecord = {
      version: 1,
      cluster,
      name: w.name,
      kind: w.kind,
      timeline: w.timeline,
      size,
      sha256: hash.digest("hex"),
      content,
      blobs,
      ...(w.kind === "segment" || w.kind === "partial" ? pageHeaderFacts(first ?? Buffer.alloc(0)) : {}),
      time: new Date().toISOString(),
      host: opts.host ?? os.hostname(),
    };
    await repo.records.write(walKind, record, { label: walLabel(cluster, w.name) });
    return {
      name: w.name,
      status: "stored",
      size,
      bytesStored: repo.writeStats.bytesStored - before,
      ms: Date.now() - started,
    };
  }
}

/** Tells the repository where the record's blobs were written (verified when read). */
function addHints(repo: Repository, record: WalRecord): void {
  for (const b of record.blobs)
    repo.useBlobLocations(b.pack, [
      {
        type: BlobType.data,
        compression: b.compression,
        id: Buffer.from(b.id, "hex"),
        offset: b.offset,
        length: b.length,
        rawLength: b.rawLength,
      },
    ]);
}

/** The bytes of a small archived file (a .history or .backup file), verified. */
export async function readWalRecordBytes(repo: Repository, record: WalRecord): Promise<Buffer> {
  addHints(repo, record);
  const parts: Buffer[] = [];
  for (const id of record.content) parts.push(await repo.loadBlob(Buffer.from(id, "hex")));
  const data = Buffer.concat(parts);
  if (data.length !== record.size || createHash("sha256").update(data).digest("hex") !== record.sha256)
    throw new CorruptionError(`WAL file ${record.name}`, "its blobs do not add up to the archived bytes");
  return data;
}

async function writeRecord(repo: Repository, record: WalRecord, tmp: string): Promise<void> {
  const fh = await fs.open(tmp, "wx", 0o600);
  try {
    const hash = createHash("sha256");
    let size = 0;
    for (const id of record.content) {
      const b = await repo.loadBlob(Buffer.from(id, "hex"));
      hash.update(b);
      size += b.length;
      await fh.write(b);
    }
    if (size !== record.size || hash.digest("hex") !== record.sha256)
      throw new CorruptionError(`WAL file ${record.name}`, "its blobs do not add up to the archived bytes");
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * `restore_command`: writes an archived file to `dest` (atomically: a temporary name in the same
 * folder, fsync, rename). Resolves false when the file is not archived.
 */
export async function walFetch(
  repo: Repository,
  name: string,
  dest: string,
  opts: { cluster?: string } = {},
): Promise<{ found: boolean; size: number }> {
  const cluster = opts.cluster ?? DEFAULT_CLUSTER;
  requireWalName(name);
  const found = await findWal(repo, cluster, name);
  const chosen = found[0]?.record;
  if (!chosen) return { found: false, size: 0 };
  addHints(repo, chosen);
  const tmp = path.join(path.dirname(dest), `.lifeboat-tmp-${process.pid}-${path.basename(dest)}`);
  try {
    try {
      await writeRecord(repo, chosen, tmp);
    } catch (e) {
      // The recorded locations may be stale (a prune repacked): read the real index once.
      if (!isLifeboatError(e) || (e.code !== "NOT_FOUND" && e.code !== "CORRUPTION")) throw e;
      await fs.rm(tmp, { force: true });
      await repo.reloadIndex();
      await writeRecord(repo, chosen, tmp);
    }
    await fs.rename(tmp, dest);
  } catch (e) {
    await fs.rm(tmp, { force: true }).catch(() => {});
    if (errnoCode(e) === "EACCES" || errnoCode(e) === "ENOENT")
      throw new LifeboatError("PERMISSION_DENIED", `cannot write ${dest}: ${(e as Error).message}`);
    throw e;
  }
  return { found: true, size: chosen.size };
}
