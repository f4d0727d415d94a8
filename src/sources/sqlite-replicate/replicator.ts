import { randomBytes } from "node:crypto";
import { promises as fs } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import Database from "better-sqlite3";
import { errnoCode, LifeboatError } from "../../core/errors.js";
import { endSession, type SessionHandle, startSession } from "../../repo/gc-plan.js";
import { catalogKind, type SegmentHeader } from "../../repo/records-segment-levels.js";
import type { Repository } from "../../repo/repository.js";
import type { TreeNode } from "../../repo/tree.js";
import type { VirtualEntry, VirtualSource } from "../../snapshot/source.js";
import { storeStream } from "../../snapshot/store-file.js";
import { takeSnapshot } from "../../snapshot/take.js";
import { dbError } from "../child-stream.js";
import { SQLITE_PIECE, sqliteSourceName } from "../sqlite.js";
import { infoOf } from "./catalog.js";
import { type ReplicateClock, realClock } from "./clock.js";
import { type CompactedEvent, LevelledGeneration } from "./generation-levels.js";
import { storeLevelSegment } from "./level-segments.js";
import { DEFAULT_LEVELS, type Level, levelsInUse, windowOf } from "./levels.js";
import { pageRecord } from "./merge.js";
import { listSegments, type ReplicationMeta, replicationOf } from "./segments.js";
import { SnapshotCopy } from "./snapshot-copy.js";
import { Turns } from "./turns.js";
import { readWalHeader, scanWal, WAL_HEADER, type WalHeader, type WalScan } from "./wal.js";

/**
 * Continuous replication of an SQLite database in WAL mode (like Litestream), see
 * docs/replication.md.
 *
 * Two connections take turns holding a read transaction, so at every moment one of ours is
 * open: SQLite never checkpoints past the frames our oldest open read transaction started
 * from, and never restarts (overwrites) the WAL while a reader uses it. Every interval the new
 * frames after the last shipped offset are read and checked (salts, cumulative checksums), the
 * ones up to the last commit frame are stored as a segment, then the turn passes to the other
 * connection (which begins before the first one ends) and a PASSIVE checkpoint runs. When the
 * WAL has grown past `walRestartBytes`, the cycle holds the write lock (BEGIN IMMEDIATE, nothing
 * is written) while it reads, so it ships the whole log, and lets a checkpoint backfill all of it
 * so that the next writer can restart the WAL from the beginning.
 *
 * A generation starts with a full snapshot (online backup from a read transaction of a worker
 * thread, begun under the write lock so that its position in the WAL is exact); its segments
 * apply in order on top of it. The snapshot is copied, checked and stored in the background:
 * meanwhile the cycles go on shipping segments of the new generation (usable once its snapshot
 * exists: restore only looks for the segments of a snapshot's generation), so the lag stays
 * near one interval during a generation switch instead of growing by the snapshot's duration.
 *
 * Segments are stored in levels (generation-levels.ts): one per interval, merged in the
 * background into one per complete window of each coarser level, and deleted once older than
 * their level's keep, so the objects of a generation grow with hours, not seconds.
 */

export interface ReplicateOptions {
  intervalMs: number;
  snapshotIntervalMs: number;
  retentionMs: number;
  host?: string;
  tags?: string[];
  /** Frames in the WAL (bytes) beyond which a cycle lets the WAL restart. Default 4 MiB. */
  walRestartBytes?: number;
  /** How long a generation start waits for the write lock (ms) before shipping once more. Default 2000. */
  lockTimeoutMs?: number;
  /** How long a cycle that wants to restart the WAL waits for the write lock (ms). Default 100. */
  restartLockMs?: number;
  /** Compaction levels (default DEFAULT_LEVELS: 5m of interval segments, 30s for 1h, 5m for 24h, 1h). */
  levels?: readonly Level[];
  /** The clock (default the real one; bench/day.ts simulates one). */
  clock?: ReplicateClock;
  onSegment?: (e: SegmentEvent) => void;
  onCompacted?: (e: CompactedEvent) => void;
  onSnapshot?: (e: SnapshotEvent) => void;
  onDeleted?: (e: { generation: string; snapshot?: string; segments: number }) => void;
  onWarning?: (message: string) => void;
}

export interface SegmentEvent {
  /** Object name of the segment. */
  id: string;
  doc: SegmentHeader;
  /** Upper bound of the lag of any transaction in the segment: stored − when the previous read began. */
  lagMaxMs: number;
  /** Lower bound: stored − when the read of this segment finished. */
  lagMinMs: number;
  storeMs: number;
}

export interface SnapshotEvent {
  id: string;
  generation: string;
  time: string;
  bytes: number;
  seconds: number;
  reason: string;
}

export interface ReplicateSummary {
  generations: number;
  segments: number;
  frames: number;
  commits: number;
  bytes: number;
  lagMaxMs: number;
  lagMeanMs: number;
}

interface WalPos {
  /** Header of the WAL the position is in; undefined while the WAL is empty. */
  hdr: WalHeader | undefined;
  offset: number;
  checksum: [number, number];
}

interface Generation {
  id: string;
  snapshot?: string;
  snapshotTime: number;
  /** Segments of a generation stored before levels (`sqlite-wal/<id>`, kind 9). */
  legacy: { object: string; index: number; time: number }[];
  /** The generation's segments in levels (every generation this version starts). */
  levels?: LevelledGeneration;
  /** Compacted by this process (its own generations, and those of a replicate that is gone). */
  managed: boolean;
}

/** A running replication holds a prune session, renewed this often so that prune is not held back. */
const SESSION_RENEW_MS = 10 * 60_000;
/** A generation maintained from another machine is taken over after its catalog was not rewritten this long. */
const TAKE_OVER_AFTER_MS = 24 * 3_600_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function isBusy(e: unknown): boolean {
  const code = (e as { code?: string }).code ?? "";
  return code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED");
}

/** Checks before any repository is opened that the database is in WAL mode. */
export function checkWalMode(absPath: string): void {
  let db: Database.Database;
  try {
    db = new Database(absPath, { fileMustExist: true, timeout: 5000 });
  } catch (e) {
    throw dbError("SOURCE_UNREADABLE", `${absPath}: cannot open the database (${(e as Error).message})`);
  }
  try {
    const mode = String(db.pragma("journal_mode", { simple: true }));
    if (mode !== "wal") {
      throw new LifeboatError(
        "USAGE",
        `${absPath} is in journal_mode=${mode}; continuous replication needs WAL mode`,
        `switch the database once with \`PRAGMA journal_mode=WAL\` (e.g. sqlite3 ${absPath} 'PRAGMA journal_mode=WAL'), or back it up with \`lifeboat backup sqlite:${absPath}\``,
      );
    }
  } finally {
    db.close();
  }
}

export class SqliteReplicator {
  readonly source: string;
  private readonly walPath: string;
  private readonly readers: [Database.Database, Database.Database];
  private readonly locker: Database.Database;
  /** Which reader holds the read transaction now. */
  private turn = 0;
  private pos: WalPos = { hdr: undefined, offset: 0, checksum: [0, 0] };
  private generation: Generation | undefined;
  private nextIndex = 0;
  /** Salts of the WAL the last segment was read from (to mark a segment after a restart). */
  private lastSalts = "";
  /** When the most recent read of the WAL began: every later-shipped transaction committed after it. */
  private lastReadStart = 0;
  private stopping = false;
  private wake: (() => void) | undefined;
  private generations: Generation[] = [];
  private readonly stats = { segments: 0, frames: 0, commits: 0, bytes: 0, lagMax: 0, lagSum: 0 };
  private generationsStarted = 0;
  private session: (SessionHandle & { started: number }) | undefined;
  /** Segments, session renewals and the background snapshot take turns at the repository. */
  private readonly repoTurns = new Turns();
  /** The current generation's snapshot while it is copied and stored in the background. */
  private pendingSnapshot: Promise<void> | undefined;
  private snapshotError: unknown;
  private copy: SnapshotCopy | undefined;
  private readonly clock: ReplicateClock;
  private readonly levels: readonly Level[];
  private readonly levelsUsed: number;
  /** Compaction and level retention, in the background (one pass at a time). */
  private maintenance: Promise<void> | undefined;
  private maintenanceError: unknown;
  private nextMaintenance = 0;

  constructor(
    private readonly repo: Repository,
    readonly absPath: string,
    private readonly opts: ReplicateOptions,
  ) {
    this.source = sqliteSourceName(absPath);
    this.walPath = `${absPath}-wal`;
    this.clock = opts.clock ?? realClock;
    this.levels = opts.levels ?? DEFAULT_LEVELS;
    this.levelsUsed = levelsInUse(this.levels, opts.retentionMs);
    const open = () => {
      const db = new Database(absPath, { fileMustExist: true, timeout: opts.lockTimeoutMs ?? 2000 });
      // Our connections never write; this only keeps a stray auto-checkpoint from running here.
      db.pragma("wal_autocheckpoint = 0");
      return db;
    };
    this.readers = [open(), open()];
    this.locker = open();
    // BEGIN IMMEDIATE must fail at once when busy (lock() retries without blocking the event
    // loop, so our readers keep handing off meanwhile).
    this.locker.pragma("busy_timeout = 0");
  }

  stop(): void {
    this.stopping = true;
    this.wake?.();
  }

  /** Replicates until `stop()`; then ships what is committed and returns. */
  async run(): Promise<ReplicateSummary> {
    try {
      // Before the first segment in levels: a version that does not know them must not read
      // this repository (it would restore generations without their segments).
      await this.repo.enableFeature("sqlite-segment-levels");
      await this.renewSession();
      await this.loadCatalog();
      this.beginRead(this.readers[this.turn]!);
      await this.startGeneration("start");
      let lastSnapshot = this.now();
      while (!this.stopping) {
        this.throwIfSnapshotFailed();
        this.throwIfMaintenanceFailed();
        const started = this.now();
        // (A snapshot still being stored postpones the next generation: cycles go on meanwhile.)
        if (started - lastSnapshot >= this.opts.snapshotIntervalMs && !this.pendingSnapshot) {
          await this.startGeneration("snapshot interval");
          lastSnapshot = this.now();
        } else if (!(await this.cycle())) {
          this.opts.onWarning?.(
            "the WAL was reset in a way that cannot be followed: starting a new generation",
          );
          await this.startGeneration("WAL discontinuity");
          lastSnapshot = this.now();
        }
        // Retention deletes whole generations; it waits while compaction works on them.
        if (!this.maintenance) await this.applyRetention();
        this.startMaintenance();
        // Not while merges run: a merged segment's data may be deduplicated against a pack a prune
        // planned since the session began, and that plan waits for this session until the
        // segment that needs the pack is written.
        if (!this.maintenance && this.now() - (this.session?.started ?? 0) > SESSION_RENEW_MS)
          await this.renewSession();
        const wait = this.opts.intervalMs - (this.now() - started);
        if (wait > 0 && !this.stopping) {
          await Promise.race([
            this.clock.sleep(wait),
            new Promise<void>((r) => {
              this.wake = r;
            }),
          ]);
          this.wake = undefined;
        }
      }
      // Finish: what is committed now is shipped before the process ends, and the current
      // generation's snapshot is complete.
      if (!(await this.cycle())) await this.startGeneration("WAL discontinuity");
      await this.settleSnapshot();
      await this.maintenance?.catch(() => {});
      this.throwIfMaintenanceFailed();
      const s = this.stats;
      return {
        generations: this.generationsStarted,
        segments: s.segments,
        frames: s.frames,
        commits: s.commits,
        bytes: s.bytes,
        lagMaxMs: s.lagMax,
        lagMeanMs: s.segments > 0 ? s.lagSum / s.segments : 0,
      };
    } finally {
      this.stopping = true;
      await this.copy?.stop();
      await this.pendingSnapshot?.catch(() => {});
      await this.maintenance?.catch(() => {});
      this.close();
      if (this.session) await endSession(this.repo, this.session).catch(() => {});
    }
  }

  private now(): number {
    return this.clock.now();
  }

  private throwIfSnapshotFailed(): void {
    if (this.snapshotError !== undefined) throw this.snapshotError;
  }

  private throwIfMaintenanceFailed(): void {
    if (this.maintenanceError !== undefined) throw this.maintenanceError;
  }

  /** Resolves once the background compaction pass, if one runs, has ended (simulated clocks). */
  maintenanceSettled(): Promise<void> {
    return this.maintenance ?? Promise.resolve();
  }

  /**
   * Starts a compaction pass in the background once per window of the finest coarse level:
   * every generation this process maintains has its complete windows merged and its expired
   * segments deleted. Writes take turns with segments like the snapshot does.
   */
  private startMaintenance(): void {
    if (this.maintenance || this.levelsUsed < 2) return;
    const now = this.now();
    if (now < this.nextMaintenance) return;
    const w = this.levels[1]!.windowMs;
    this.nextMaintenance = (windowOf(now, w) + 1) * w + 1;
    const gens = this.generations.filter((g) => g.managed && g.levels);
    const task = (async () => {
      for (const g of gens) {
        if (this.stopping) return;
        await g.levels!.maintain({
          repo: this.repo,
          levels: this.levels,
          inUse: this.levelsUsed,
          now,
          clock: () => this.now(),
          turns: this.repoTurns,
          stopping: () => this.stopping,
          onCompacted: this.opts.onCompacted,
          onWarning: this.opts.onWarning,
        });
      }
    })();
    const tracked: Promise<void> = task
      .then(
        () => {},
        (e: unknown) => {
          this.maintenanceError ??= e;
          this.wake?.();
        },
      )
      .finally(() => {
        if (this.maintenance === tracked) this.maintenance = undefined;
      });
    this.maintenance = tracked;
  }

  /** Waits for the snapshot being stored in the background (if any); throws its failure. */
  private async settleSnapshot(): Promise<void> {
    await this.pendingSnapshot?.catch(() => {});
    this.pendingSnapshot = undefined;
    this.throwIfSnapshotFailed();
  }

  /**
   * Prune plans wait for the sessions alive when they were made, so a pack this process stored
   * cannot be deleted before the segment document that references it is written. The session is
   * replaced between cycles (new one first) so that prune's plans are not held back for long; a
   * new session also reads prune's plans, so nothing deduplicates against packs about to go.
   */
  private async renewSession(): Promise<void> {
    await this.repoTurns.run(async () => {
      const old = this.session;
      this.session = { ...(await startSession(this.repo, "backup")), started: this.now() };
      await this.repo.catchUpIndex();
      if (old) await endSession(this.repo, old).catch(() => {});
    });
  }

  private close(): void {
    for (const db of [...this.readers, this.locker]) {
      try {
        if (db.inTransaction) db.exec("ROLLBACK");
      } catch {}
      db.close();
    }
  }

  private beginRead(db: Database.Database): void {
    db.exec("BEGIN");
    // BEGIN is deferred: the first read starts the read transaction (and takes a read mark).
    db.prepare("SELECT count(*) FROM sqlite_schema").get();
  }

  /** The other reader begins its read transaction, then the current one ends its own. */
  private handOff(): Database.Database {
    const cur = this.readers[this.turn]!;
    const next = this.readers[1 - this.turn]!;
    this.beginRead(next);
    cur.exec("COMMIT");
    this.turn = 1 - this.turn;
    return cur;
  }

  private checkpoint(idle: Database.Database): { log: number; checkpointed: number } | undefined {
    try {
      const r = idle.pragma("wal_checkpoint(PASSIVE)") as {
        busy: number;
        log: number;
        checkpointed: number;
      }[];
      return r[0];
    } catch (e) {
      if (isBusy(e)) return undefined;
      throw e;
    }
  }

  private async lock(waitMs: number): Promise<boolean> {
    const until = Date.now() + waitMs;
    for (;;) {
      try {
        this.locker.exec("BEGIN IMMEDIATE");
        return true;
      } catch (e) {
        if (!isBusy(e)) throw e;
        if (Date.now() >= until) return false;
        await sleep(10);
      }
    }
  }

  private unlock(): void {
    if (this.locker.inTransaction) this.locker.exec("ROLLBACK");
  }

  private async openWal(): Promise<FileHandle | undefined> {
    try {
      return await fs.open(this.walPath, "r");
    } catch (e) {
      if (errnoCode(e) === "ENOENT") return undefined;
      throw e;
    }
  }

  /**
   * Reads the frames committed since the shipped position. Undefined: the WAL cannot be followed
   * (replaced by an unrelated one) and a new generation must start.
   */
  private async readNew(): Promise<{ hdr: WalHeader | undefined; scan: WalScan } | undefined> {
    const empty = (at: WalPos): WalScan => ({
      end: at.offset,
      checksum: at.checksum,
      pages: new Map(),
      dbPages: 0,
      minDbPages: 0,
      frames: 0,
      commits: 0,
    });
    const fh = await this.openWal();
    if (!fh) return { hdr: this.pos.hdr, scan: empty(this.pos) };
    try {
      const hdr = await readWalHeader(fh);
      // Empty or truncated (TRUNCATE checkpoint): nothing new; the next header continues the log.
      if (!hdr) return { hdr: this.pos.hdr, scan: empty(this.pos) };
      const cur = this.pos.hdr;
      if (
        cur &&
        hdr.salt1 === cur.salt1 &&
        hdr.salt2 === cur.salt2 &&
        hdr.checkpointSeq === cur.checkpointSeq
      ) {
        if (hdr.pageSize !== cur.pageSize) return undefined;
        return { hdr, scan: await scanWal(fh, hdr, this.pos.offset, this.pos.checksum) };
      }
      if (cur) {
        // A restarted WAL: SQLite adds one to salt-1 and to the checkpoint sequence each time.
        // It restarts only when every frame was checkpointed and no reader of ours holds a
        // read mark in it, which happens only once everything in it was shipped.
        const steps = (hdr.checkpointSeq - cur.checkpointSeq) >>> 0;
        if (steps === 0 || steps > 1000 || (hdr.salt1 - cur.salt1) >>> 0 !== steps) return undefined;
        if (hdr.pageSize !== cur.pageSize) return undefined;
      }
      return { hdr, scan: await scanWal(fh, hdr, WAL_HEADER, hdr.checksum) };
    } finally {
      await fh.close();
    }
  }

  /** One interval: read, hand off, checkpoint, store. False on a WAL discontinuity. */
  private async cycle(): Promise<boolean> {
    const frameBytes = this.pos.hdr ? this.pos.offset - WAL_HEADER : 0;
    // While a snapshot's copy holds its read mark the WAL cannot restart: do not take the lock.
    const restart = !this.copy?.holding && frameBytes >= (this.opts.walRestartBytes ?? 4 * 1024 * 1024);
    // Opportunistic: a writer holding the lock for long (e.g. a FULL checkpoint waiting for our
    // reader to move on) is not waited for; the WAL restarts at a later cycle.
    const locked = restart && (await this.lock(this.opts.restartLockMs ?? 100));
    let found: Awaited<ReturnType<SqliteReplicator["readNew"]>>;
    const readStart = this.now();
    let readAt: number;
    try {
      found = await this.readNew();
      readAt = this.now();
      if (!found) return false;
      const idle = this.handOff();
      if (locked) {
        // Everything is read and no one can commit: backfill all of it, then begin our next read
        // transaction on the fully checkpointed WAL (read mark 0), which lets the next writer
        // restart the WAL from its beginning.
        this.checkpoint(idle);
        this.handOff();
      } else {
        this.checkpoint(idle);
      }
    } finally {
      this.unlock();
    }
    const prevReadStart = this.lastReadStart;
    this.lastReadStart = readStart;
    await this.ship(found.hdr, found.scan, prevReadStart, readAt);
    return true;
  }

  /** Stores a segment of the current generation (when the scan found commits) and advances. */
  private async ship(
    hdr: WalHeader | undefined,
    scan: WalScan,
    commitsAfter: number,
    commitsBefore: number,
  ): Promise<void> {
    const gen = this.generation;
    if (hdr && scan.commits > 0 && gen?.levels) {
      const levels = gen.levels;
      const t0 = this.now();
      const cur = this.pos.hdr;
      const sameWal =
        cur !== undefined &&
        cur.salt1 === hdr.salt1 &&
        cur.salt2 === hdr.salt2 &&
        cur.checkpointSeq === hdr.checkpointSeq;
      const start = sameWal ? this.pos.offset : WAL_HEADER;
      const salts = `${hdr.salt1}/${hdr.salt2}`;
      const at = (offset: number) => ({
        salt1: hdr.salt1,
        salt2: hdr.salt2,
        checkpointSeq: hdr.checkpointSeq,
        offset,
      });
      const numbers = [...scan.pages.keys()].filter((p) => p <= scan.dbPages).sort((a, b) => a - b);
      async function* records(): AsyncIterable<Buffer> {
        for (const p of numbers) yield* pageRecord(p, scan.pages.get(p)!);
      }
      const seg = await this.repoTurns.run(() =>
        // Inline pages are one object; larger ones go to blobs, durable before the document.
        storeLevelSegment(
          this.repo,
          (size, storedAt): SegmentHeader => ({
            version: 1,
            source: this.source,
            hostname: this.opts.host ?? os.hostname(),
            generation: gen.id,
            level: 0,
            first: this.nextIndex,
            last: this.nextIndex,
            walStart: at(start),
            walEnd: at(scan.end),
            walRestarted: this.lastSalts !== "" && this.lastSalts !== salts,
            pageSize: hdr.pageSize,
            minDbPages: scan.minDbPages,
            dbPages: scan.dbPages,
            frames: scan.frames,
            commits: scan.commits,
            pages: numbers.length,
            commitsAfter: new Date(commitsAfter).toISOString(),
            commitsBefore: new Date(commitsBefore).toISOString(),
            storedAt,
            size,
          }),
          records(),
          { now: () => this.now() },
        ),
      );
      const doc = seg.header;
      const done = this.now();
      this.lastSalts = salts;
      this.nextIndex++;
      levels.add(infoOf(seg.object, doc));
      const lagMaxMs = done - commitsAfter;
      const s = this.stats;
      s.segments++;
      s.frames += scan.frames;
      s.commits += scan.commits;
      s.bytes += doc.size;
      s.lagMax = Math.max(s.lagMax, lagMaxMs);
      s.lagSum += lagMaxMs;
      this.opts.onSegment?.({
        id: seg.object,
        doc,
        lagMaxMs,
        lagMinMs: done - commitsBefore,
        storeMs: done - t0,
      });
    }
    this.pos = { hdr, offset: scan.end, checksum: scan.checksum };
  }

  /**
   * Starts a generation: under the write lock, ships what is committed into the current
   * generation and has a worker thread begin a read transaction exactly at the end of the WAL;
   * the full snapshot is copied from that read transaction and stored in the background, while
   * the new generation's segments, starting at that position, are shipped as usual.
   */
  private async startGeneration(reason: string): Promise<void> {
    // One snapshot at a time: the previous generation's is complete before a new one starts.
    await this.settleSnapshot();
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), "lifeboat-replicate-"));
    const file = path.join(dir, path.basename(this.absPath));
    let copy: SnapshotCopy | undefined;
    let found: Awaited<ReturnType<SqliteReplicator["readNew"]>>;
    let snapshotTime: number;
    let readStart: number;
    try {
      // The worker's connection is opened before the lock is taken: writers wait only for the read.
      copy = await SnapshotCopy.start(this.absPath, file, this.opts.lockTimeoutMs ?? 2000);
      this.copy = copy;
      for (;;) {
        if (await this.lock(this.opts.lockTimeoutMs ?? 2000)) break;
        this.opts.onWarning?.("waiting for the write lock to start a generation (a long write transaction?)");
        // Keep shipping meanwhile.
        if (!(await this.cycle())) this.generation = undefined;
      }
      readStart = this.now();
      try {
        found = await this.readNew();
        if (!found) {
          // Not the WAL we followed: the snapshot starts from the log as it is.
          this.pos = { hdr: undefined, offset: 0, checksum: [0, 0] };
          this.generation = undefined;
          found = await this.readNew();
          if (!found) throw dbError("SOURCE_UNREADABLE", `${this.walPath}: cannot read the WAL`);
        }
        this.handOff();
        await copy.beginRead();
        snapshotTime = this.now();
      } finally {
        this.unlock();
      }
    } catch (e) {
      await copy?.stop();
      this.copy = undefined;
      await fs.rm(dir, { recursive: true, force: true });
      throw e;
    }
    const prevReadStart = this.lastReadStart;
    this.lastReadStart = readStart;
    // The tail of the old generation (if any), then the position moves to the end of the WAL.
    await this.ship(found.hdr, found.scan, prevReadStart, snapshotTime);
    const id = randomBytes(8).toString("hex");
    const gen: Generation = {
      id,
      snapshotTime,
      legacy: [],
      levels: new LevelledGeneration(id, this.source, this.opts.host ?? os.hostname()),
      managed: true,
    };
    // Its (empty) catalog first: every generation with segments in levels has one, which is how
    // retention finds generations whose snapshot was never stored.
    await gen.levels!.writeCatalog(this.repo, this.now());
    const replication: ReplicationMeta = {
      generation: gen.id,
      layout: "levels",
      wal: {
        salt1: this.pos.hdr?.salt1 ?? 0,
        salt2: this.pos.hdr?.salt2 ?? 0,
        checkpointSeq: this.pos.hdr?.checkpointSeq ?? 0,
        offset: this.pos.offset,
      },
      pageSize: Number(this.readers[this.turn]!.pragma("page_size", { simple: true })),
    };
    // From here on, cycles ship into the new generation. Retention keeps the previous one
    // until this one has its snapshot (only a generation with a snapshot can replace one).
    this.generation = gen;
    this.generations.push(gen);
    this.generationsStarted++;
    this.nextIndex = 0;
    this.lastSalts = this.pos.hdr ? `${this.pos.hdr.salt1}/${this.pos.hdr.salt2}` : "";
    const pending = this.storeSnapshot(copy, file, gen, replication, reason).finally(async () => {
      await copy.stop();
      if (this.copy === copy) this.copy = undefined;
      await fs.rm(dir, { recursive: true, force: true });
      if (this.pendingSnapshot === pending) this.pendingSnapshot = undefined;
    });
    this.pendingSnapshot = pending;
    pending.catch((e: unknown) => {
      this.snapshotError ??= e;
      this.wake?.();
    });
  }

  /** Waits for the copy, then stores it as the generation's full snapshot. */
  private async storeSnapshot(
    copy: SnapshotCopy,
    file: string,
    gen: Generation,
    replication: ReplicationMeta,
    reason: string,
  ): Promise<void> {
    const { copySeconds, check, facts } = await copy.result();
    if (check !== "ok")
      throw dbError(
        "SOURCE_UNREADABLE",
        `${this.absPath}: the copy fails PRAGMA quick_check (${check}); the source database is damaged`,
      );
    const mode = (await fs.stat(this.absPath)).mode & 0o7777;
    const name = path.basename(this.absPath);
    // Segments go first whenever one is waiting (see Turns).
    const stored = await this.repo.withWriter((w) =>
      storeStream(
        w,
        piecesTakingTurns(file, () => this.repoTurns.wait()),
        () => {},
        SQLITE_PIECE,
      ),
    );
    const node: TreeNode = {
      name,
      type: "file",
      mode,
      uid: 0,
      gid: 0,
      mtime: "0",
      size: stored.size,
      content: stored.content,
    };
    const src: VirtualSource = {
      name: this.source,
      type: "sqlite",
      async *entries(): AsyncIterable<VirtualEntry> {
        // `read`: if a piece stored above was deduplicated against a pack that a prune planned
        // meanwhile to delete (or deleted), the snapshot must not point at it: the tree builder
        // then reads the copy again and stores those pieces anew.
        yield {
          kind: "file",
          path: name,
          mode,
          reuse: node,
          read: () => piecesTakingTurns(file, async () => {}),
          pieceSize: SQLITE_PIECE,
        };
      },
      meta: () => ({ file: name, ...facts, copySeconds, pieceSize: SQLITE_PIECE, replication }),
    };
    const r = await this.repoTurns.run(() =>
      takeSnapshot(this.repo, src, {
        tags: ["replica", ...(this.opts.tags ?? [])],
        ...(this.opts.host ? { host: this.opts.host } : {}),
        time: new Date(gen.snapshotTime),
      }),
    );
    gen.snapshot = r.snapshotId;
    this.opts.onSnapshot?.({
      id: r.snapshotId,
      generation: gen.id,
      time: new Date(gen.snapshotTime).toISOString(),
      bytes: r.summary.bytes,
      seconds: (this.now() - gen.snapshotTime) / 1000,
      reason,
    });
  }

  /**
   * Reads what earlier runs stored for this source: generations for retention, and those in
   * levels whose replicate is gone, which this process then maintains (compacts) too.
   */
  private async loadCatalog(): Promise<void> {
    const gens = new Map<string, Generation>();
    const host = this.opts.host ?? os.hostname();
    const blank = (id: string, snapshotTime: number): Generation => ({
      id,
      snapshotTime,
      legacy: [],
      managed: false,
    });
    for (const s of await this.repo.listSnapshots()) {
      const r = replicationOf(s);
      if (!r || s.source !== "sqlite" || s.paths.join("\0") !== this.source || s.hostname !== host) continue;
      gens.set(r.generation, { ...blank(r.generation, Date.parse(s.time)), snapshot: s.id });
    }
    for (const seg of await listSegments(this.repo, this.source)) {
      if (seg.doc.hostname !== host) continue;
      let g = gens.get(seg.doc.generation);
      if (!g) {
        // Segments whose snapshot is gone (an interrupted retention): removed like old ones.
        g = blank(seg.doc.generation, Date.parse(seg.doc.commitsAfter));
        gens.set(g.id, g);
      }
      g.legacy.push({ object: seg.object, index: seg.doc.index, time: Date.parse(seg.doc.commitsBefore) });
    }
    const catalogs = await this.repo.records.list(catalogKind, { unreadable: "throw" });
    const ids = new Set(
      catalogs
        .filter((c) => c.record.source === this.source && c.record.hostname === host)
        .map((c) => c.record.generation),
    );
    for (const id of ids) {
      const levels = await LevelledGeneration.load(this.repo, id, this.source, host);
      let g = gens.get(id);
      if (!g) {
        // No snapshot (never stored, or retention was interrupted): removed once old enough.
        g = blank(id, levels.newest() ?? levels.owner?.written ?? this.now());
        gens.set(id, g);
      }
      g.levels = levels;
      g.managed = this.mayTakeOver(levels.owner);
    }
    this.generations = [...gens.values()].sort((a, b) => a.snapshotTime - b.snapshotTime);
  }

  /** Whether the replicate that maintained a generation is gone (this machine), or silent for a day. */
  private mayTakeOver(owner: LevelledGeneration["owner"]): boolean {
    if (!owner) return true;
    if (owner.machine !== os.hostname()) return this.now() - owner.written > TAKE_OVER_AFTER_MS;
    if (owner.pid === process.pid) return true;
    try {
      process.kill(owner.pid, 0);
      return false;
    } catch (e) {
      return (e as NodeJS.ErrnoException).code !== "EPERM";
    }
  }

  /**
   * Deletes generations nobody can need: a generation is kept while a point in time within the
   * retention period restores from it, i.e. until the next generation's snapshot is older than
   * the retention period; the current generation is always kept. Data blobs are freed by prune.
   */
  private async applyRetention(): Promise<void> {
    const cutoff = this.now() - this.opts.retentionMs;
    const gens = [...this.generations];
    const deleted = new Set<Generation>();
    for (let i = 0; i < gens.length; i++) {
      const g = gens[i]!;
      const next = gens.slice(i + 1).find((n) => n.snapshot !== undefined);
      const newest = g.levels?.newest() ?? g.legacy.at(-1)?.time ?? g.snapshotTime;
      const expendable =
        g !== this.generation &&
        (g.snapshot === undefined ? newest <= cutoff : next !== undefined && next.snapshotTime <= cutoff);
      if (!expendable) continue;
      // The snapshot first: segments without their snapshot are never used by restore.
      if (g.snapshot) await this.repo.deleteSnapshot(g.snapshot);
      for (const s of [...g.legacy].sort((a, b) => b.index - a.index))
        await this.repo.records.delete(s.object);
      const inLevels = g.levels ? await g.levels.deleteAll(this.repo) : 0;
      deleted.add(g);
      this.opts.onDeleted?.({
        generation: g.id,
        ...(g.snapshot ? { snapshot: g.snapshot } : {}),
        segments: g.legacy.length + inLevels,
      });
    }
    if (deleted.size > 0) this.generations = this.generations.filter((g) => !deleted.has(g));
  }
}

/** A file in SQLITE_PIECE reads, waiting for `turn` before each (segments go first). */
async function* piecesTakingTurns(file: string, turn: () => Promise<void>): AsyncIterable<Buffer> {
  const fh = await fs.open(file, "r");
  try {
    for (let pos = 0; ; ) {
      await turn();
      // A fresh buffer per piece: the repository may hand it to a worker thread.
      const buf = Buffer.allocUnsafe(SQLITE_PIECE);
      const { bytesRead } = await fh.read(buf, 0, SQLITE_PIECE, pos);
      if (bytesRead === 0) return;
      pos += bytesRead;
      yield buf.subarray(0, bytesRead);
    }
  } finally {
    await fh.close();
  }
}
