import { createHash } from "node:crypto";
import { mapLimit } from "../../core/concurrency.js";
import { isLifeboatError, LifeboatError } from "../../core/errors.js";
import { acknowledgedIds, listAcks } from "../../ops/acks/acks.js";
import { type DrillRecordWithId, listDrills } from "../../ops/drill/drill.js";
import { isStorageId } from "../../repo/config.js";
import type { Repository } from "../../repo/repository.js";
import type { SnapshotWithId } from "../../repo/snapshot.js";
import { expandHome, type Job } from "../config.js";

/**
 * The repositories one console shows: the one it was started with and every other one a job of
 * the config file writes to (an off-site copy, say), each opened once and kept open. Snapshot
 * documents are read once and kept (a listing of `snapshots/` says what is new or gone), so a
 * page load costs one listing, not a read of every snapshot.
 */
export interface RepoSpec {
  /** Stable short id for URLs: `main`, or 10 hex digits of the location's hash. */
  id: string;
  url: string;
  /** The password file to open it with (jobs may name their own). */
  passwordFile: string | undefined;
  /** Jobs writing here. */
  jobs: string[];
}

export type RepoOpener = (url: string, passwordFile: string | undefined) => Promise<Repository>;

/** How long a listing of snapshots or drills is trusted before it is read again. */
const FRESH_MS = 2000;
/** Snapshot documents read at once when a listing shows new ones. */
const READS_IN_FLIGHT = 32;
/** Account snapshots read on demand (browsing one) kept for the next request. */
const ACCOUNT_DOCS_KEPT = 64;
/** A fleet's runs are asked again from this long before the newest one seen (workers log late). */
const FEED_OVERLAP_MS = 10 * 60_000;
/** An account snapshot named by a fleet's runs but never listed (forgotten meanwhile) is let go. */
const HINT_TTL_MS = 86_400_000;

/**
 * The ids of a fleet's account snapshots written since a time, from the fleet's state (its log
 * of runs: fleets.ts), and the time of the newest run seen.
 */
export type AccountSnapshotFeed = (since: number) => Promise<{ ids: string[]; newest: number }>;

/** What the console knows of a listed snapshot: its document, or that it is a fleet account's. */
const ACCOUNT = Symbol("account snapshot");
type Known = SnapshotWithId | typeof ACCOUNT;

export class ConsoleRepo {
  private repo: Promise<Repository> | undefined;
  /** Every listed snapshot by id: documents of the sources' snapshots, a mark for accounts'. */
  private known = new Map<string, Known>();
  private accountCount = 0;
  private snapsAt = 0;
  private listed = false;
  private sorted: SnapshotWithId[] = [];
  private refreshing: Promise<void> | undefined;
  private feeds: { feed: AccountSnapshotFeed; since: number }[] = [];
  /** Account snapshot ids the fleets named that no listing showed yet, with when. */
  private hints = new Map<string, number>();
  private accountDocs = new Map<string, SnapshotWithId>();
  private drills: { at: number; list: DrillRecordWithId[] } | undefined;
  private marks: { at: number; acked: Set<string>; pinned: Set<string> } | undefined;
  /** Snapshot documents read from storage (tests and benchmarks count them). */
  snapshotReads = 0;

  constructor(
    readonly spec: RepoSpec,
    private readonly opener: RepoOpener,
  ) {}

  open(): Promise<Repository> {
    this.repo ??= this.opener(this.spec.url, this.spec.passwordFile).catch((e) => {
      this.repo = undefined; // a storage that was down may be back next time
      throw e;
    });
    return this.repo;
  }

  /** A fleet keeping its accounts here names their snapshots, so they need not be read. */
  addAccountFeed(feed: AccountSnapshotFeed): void {
    this.feeds.push({ feed, since: 0 });
  }

  /**
   * The snapshots of the repository's sources, oldest first: every snapshot but the fleets'
   * account snapshots, which their fleet shows (api-fleets.ts, from the fleet's state and the
   * account catalogue). The listing is read again at most every FRESH_MS; a document is read
   * once, when its id first shows up, and an account snapshot a fleet's runs name is never read,
   * so a fleet's million account snapshots cost the listing of their ids and nothing more.
   */
  async snapshots(force = false): Promise<SnapshotWithId[]> {
    if (force || Date.now() - this.snapsAt >= FRESH_MS) {
      this.refreshing ??= this.refresh().finally(() => {
        this.refreshing = undefined;
      });
      await this.refreshing;
    }
    return this.sorted;
  }

  /** Snapshots in the last listing, the fleets' account snapshots among them. */
  async counts(): Promise<{ snapshots: number; accountSnapshots: number }> {
    await this.snapshots();
    return { snapshots: this.known.size, accountSnapshots: this.accountCount };
  }

  private async refresh(): Promise<void> {
    const repo = await this.open();
    const ids = await repo.snapshotIds();
    let fresh = 0;
    let unknown = 0;
    for (const id of ids)
      if (!this.known.has(id)) {
        fresh++;
        if (!this.hints.has(id)) unknown++;
      }
    if (unknown > 0) await this.learnAccountSnapshots();
    const next = new Map<string, Known>();
    const missing: string[] = [];
    let accounts = 0;
    for (const id of ids) {
      const known = this.known.get(id) ?? (this.hints.has(id) ? ACCOUNT : undefined);
      this.hints.delete(id);
      if (known === undefined) missing.push(id);
      else {
        next.set(id, known);
        if (known === ACCOUNT) accounts++;
      }
    }
    const read = await mapLimit(missing, READS_IN_FLIGHT, async (id) => {
      this.snapshotReads++;
      // One forgotten between the listing and its read is gone, as if listed a moment later.
      return repo.loadSnapshot(id).catch((e) => {
        if (isLifeboatError(e) && e.code === "NOT_FOUND") return undefined;
        throw e;
      });
    });
    for (const s of read) {
      if (!s) continue;
      if (s.account !== undefined) {
        next.set(s.id, ACCOUNT);
        accounts++;
      } else next.set(s.id, s);
    }
    // Snapshots written by other processes (the daemon, `lifeboat run`, other hosts) point at
    // blobs in index files this process has not read: read the new ones (written before the
    // snapshot, so they are there) before anything of these snapshots is read.
    if (fresh > 0 && this.listed) await repo.catchUpIndex();
    this.listed = true;
    const now = Date.now();
    for (const [id, at] of this.hints) if (now - at > HINT_TTL_MS) this.hints.delete(id);
    // Sorted again only when the listing changed: an unchanged repository costs one listing.
    const changed = fresh > 0 || next.size !== this.known.size;
    this.known = next;
    this.accountCount = accounts;
    if (changed) {
      const docs: SnapshotWithId[] = [];
      for (const k of next.values()) if (k !== ACCOUNT) docs.push(k);
      this.sorted = docs.sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : a.id < b.id ? -1 : 1));
    }
    this.snapsAt = Date.now();
  }

  /** Asks each fleet keeping its accounts here which snapshots it wrote since it was last asked. */
  private async learnAccountSnapshots(): Promise<void> {
    await Promise.all(
      this.feeds.map(async (f) => {
        try {
          const got = await f.feed(f.since);
          const now = Date.now();
          for (const id of got.ids) if (!this.known.has(id)) this.hints.set(id, now);
          if (got.newest > 0) f.since = Math.max(f.since, got.newest - FEED_OVERLAP_MS);
        } catch {
          // A fleet state that cannot be read (its PostgreSQL is down): the documents are read.
        }
      }),
    );
  }

  async snapshot(id: string): Promise<SnapshotWithId> {
    if (!/^[0-9a-f]{64}$/.test(id))
      throw new LifeboatError("SNAPSHOT_NOT_FOUND", `${JSON.stringify(id)} is not a snapshot id`);
    await this.snapshots();
    if (!this.known.has(id)) await this.snapshots(true);
    const k = this.known.get(id);
    if (k === undefined)
      throw new LifeboatError("SNAPSHOT_NOT_FOUND", `no snapshot ${id.slice(0, 8)} in ${this.spec.url}`);
    if (k !== ACCOUNT) return k;
    // An account snapshot (browsed, restored or acknowledged by id): read when asked for.
    let doc = this.accountDocs.get(id);
    if (!doc) {
      this.snapshotReads++;
      doc = await (await this.open()).loadSnapshot(id);
      if (this.accountDocs.size >= ACCOUNT_DOCS_KEPT) this.accountDocs.clear();
      this.accountDocs.set(id, doc);
    }
    return doc;
  }

  async drillRecords(force = false): Promise<DrillRecordWithId[]> {
    if (force || !this.drills || Date.now() - this.drills.at > FRESH_MS)
      this.drills = { at: Date.now(), list: await listDrills(await this.open()) };
    return this.drills.list;
  }

  /** Acknowledged snapshot ids, and pinned ones not acknowledged since. */
  async acks(force = false): Promise<{ acked: Set<string>; pinned: Set<string> }> {
    if (force || !this.marks || Date.now() - this.marks.at > FRESH_MS) {
      const repo = await this.open();
      const [acked, all] = await Promise.all([acknowledgedIds(repo), listAcks(repo)]);
      const pinned = new Set(
        all.filter((a) => a.kind === "pin" && !acked.has(a.snapshot)).map((a) => a.snapshot),
      );
      this.marks = { at: Date.now(), acked, pinned };
    }
    return this.marks;
  }

  private packs: { at: number; packs: number; bytes: number } | undefined;

  /** Pack files and their bytes in storage (listed again at most every 30 s). */
  async storage(): Promise<{ packs: number; bytes: number }> {
    if (!this.packs || Date.now() - this.packs.at > 30_000) {
      const repo = await this.open();
      let packs = 0;
      let bytes = 0;
      for await (const o of repo.backend.list("data/")) {
        if (!isStorageId(o.name.slice(o.name.lastIndexOf("/") + 1))) continue;
        packs++;
        bytes += o.size;
      }
      this.packs = { at: Date.now(), packs, bytes };
    }
    return { packs: this.packs.packs, bytes: this.packs.bytes };
  }

  /** Forget cached listings after the console changed something. */
  invalidate(): void {
    this.snapsAt = 0;
    this.drills = undefined;
    this.marks = undefined;
    this.packs = undefined;
  }

  async close(): Promise<void> {
    const r = this.repo;
    this.repo = undefined;
    if (r) await (await r.catch(() => undefined))?.close();
  }
}

export function repoSpecs(mainUrl: string, mainPasswordFile: string | undefined, jobs: Job[]): RepoSpec[] {
  const specs: RepoSpec[] = [{ id: "main", url: mainUrl, passwordFile: mainPasswordFile, jobs: [] }];
  for (const job of jobs) {
    const url = job.repository ? expandHome(job.repository) : mainUrl;
    let spec = specs.find((s) => s.url === url);
    if (!spec) {
      spec = {
        id: createHash("sha256").update(url).digest("hex").slice(0, 10),
        url,
        passwordFile: job.passwordFile ? expandHome(job.passwordFile) : mainPasswordFile,
        jobs: [],
      };
      specs.push(spec);
    }
    spec.jobs.push(job.name);
  }
  return specs;
}

/** A location as it may be shown: any password in a URL is hidden. */
export function displayLocation(url: string): string {
  return url.replace(/(\/\/[^:/@]+:)[^@/]*@/, "$1***@");
}
