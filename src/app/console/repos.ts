import { createHash } from "node:crypto";
import { LifeboatError } from "../../core/errors.js";
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

export class ConsoleRepo {
  private repo: Promise<Repository> | undefined;
  private snaps = new Map<string, SnapshotWithId>();
  private snapsAt = 0;
  private sorted: SnapshotWithId[] = [];
  private drills: { at: number; list: DrillRecordWithId[] } | undefined;
  private marks: { at: number; acked: Set<string>; pinned: Set<string> } | undefined;

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

  /** Every snapshot, oldest first (read again at most every FRESH_MS, new documents only). */
  async snapshots(force = false): Promise<SnapshotWithId[]> {
    if (!force && Date.now() - this.snapsAt < FRESH_MS) return this.sorted;
    const repo = await this.open();
    const ids = await repo.snapshotIds();
    const next = new Map<string, SnapshotWithId>();
    const missing: string[] = [];
    for (const id of ids) {
      const known = this.snaps.get(id);
      if (known) next.set(id, known);
      else missing.push(id);
    }
    for (const s of await Promise.all(missing.map((id) => repo.loadSnapshot(id)))) next.set(s.id, s);
    // Snapshots written by other processes (the daemon, `lifeboat run`, other hosts) point at
    // blobs in index files this process has not read: read the new ones (written before the
    // snapshot, so they are there) before anything of these snapshots is read.
    if (missing.length > 0 && this.snapsAt > 0) await repo.catchUpIndex();
    this.snaps = next;
    this.sorted = [...next.values()].sort((a, b) =>
      a.time < b.time ? -1 : a.time > b.time ? 1 : a.id < b.id ? -1 : 1,
    );
    this.snapsAt = Date.now();
    return this.sorted;
  }

  async snapshot(id: string): Promise<SnapshotWithId> {
    if (!/^[0-9a-f]{64}$/.test(id))
      throw new LifeboatError("SNAPSHOT_NOT_FOUND", `${JSON.stringify(id)} is not a snapshot id`);
    const found =
      (await this.snapshots()).find((s) => s.id === id) ??
      (await this.snapshots(true)).find((s) => s.id === id);
    if (!found)
      throw new LifeboatError("SNAPSHOT_NOT_FOUND", `no snapshot ${id.slice(0, 8)} in ${this.spec.url}`);
    return found;
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
