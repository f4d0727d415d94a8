import { constants, promises as fs } from "node:fs";
import path from "node:path";
import { errnoCode, LifeboatError } from "../../core/errors.js";
import { findSnapshot } from "../../repo/find-snapshot.js";
import type { Repository } from "../../repo/repository.js";
import type { SnapshotWithId } from "../../repo/snapshot.js";
import { listSnapshotFiles, readSnapshotFile, requireSource } from "../../snapshot/snapshot-files.js";
import { BASE_FILE, BASE_SOURCE_TYPE, type BaseBackupMeta } from "./base-backup.js";
import { readTar, type TarEntry } from "./tar-reader.js";
import { DEFAULT_CLUSTER } from "./wal-archive.js";

/**
 * `lifeboat pg restore`: the newest base backup that finished before the target time is
 * unpacked into a new data folder, with `recovery.signal` and recovery settings appended to
 * `postgresql.auto.conf`. Starting PostgreSQL on that folder replays archived WAL (fetched by
 * `restore_command = lifeboat ... pg wal-fetch %f %p`) up to the target time and promotes.
 */

/**
 * A recovery target time as typed: ISO 8601 or PostgreSQL's `YYYY-MM-DD HH:MM:SS[.ffffff]+TZ`,
 * with an explicit time zone (a bare time would be read in the server's zone). Returns the
 * instant (millisecond precision, for choosing a base backup) and the text for PostgreSQL:
 * `YYYY-MM-DD HH:MM:SS[.ffffff]+HH:MM` (microseconds kept; PostgreSQL cannot read zone names
 * such as `Z` while it reads its configuration).
 */
export function parseTargetTime(s: string): { date: Date; text: string } {
  const m =
    /^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}(?::\d{2})?)(?:\.(\d{1,6}))?\s*(Z|UTC|[+-]\d{2}(?::?\d{2})?)$/i.exec(
      s.trim(),
    );
  if (!m)
    throw new LifeboatError(
      "USAGE",
      `--time ${JSON.stringify(s)} is not a time with a time zone`,
      "e.g. 2026-03-01T12:30:00Z or '2026-03-01 12:30:00.123456+01'",
    );
  let tz = m[4]!.toUpperCase();
  if (tz === "UTC" || tz === "Z") tz = "+00:00";
  else {
    const d = tz.replace(":", "");
    tz = `${d.slice(0, 3)}:${d.length > 3 ? d.slice(3, 5) : "00"}`;
  }
  const time = m[2]!.length === 5 ? `${m[2]}:00` : m[2]!;
  const frac = (m[3] ?? "").padEnd(3, "0").slice(0, 3);
  const date = new Date(`${m[1]}T${time}.${frac}${tz}`);
  if (Number.isNaN(date.getTime()))
    throw new LifeboatError("USAGE", `--time ${JSON.stringify(s)} is not a valid time`);
  return { date, text: `${m[1]} ${time}${m[3] ? `.${m[3]}` : ""}${tz}` };
}

export function baseMeta(s: SnapshotWithId): BaseBackupMeta {
  return (s.meta ?? {}) as unknown as BaseBackupMeta;
}

/** Base backups of a cluster, oldest first. */
export async function listBaseBackups(repo: Repository, cluster: string): Promise<SnapshotWithId[]> {
  return (await repo.listSnapshots()).filter(
    (s) => s.source === BASE_SOURCE_TYPE && (baseMeta(s).cluster ?? DEFAULT_CLUSTER) === cluster,
  );
}

export async function chooseBase(
  repo: Repository,
  cluster: string,
  target: Date | undefined,
  ref: string | undefined,
): Promise<SnapshotWithId> {
  if (ref) {
    const s = await findSnapshot(repo, ref);
    requireSource(s, [BASE_SOURCE_TYPE], "a PostgreSQL base backup (lifeboat pg base-backup)");
    if (target && new Date(s.time) > target)
      throw new LifeboatError(
        "USAGE",
        `base backup ${s.id.slice(0, 8)} finished at ${s.time}, after the target time ${target.toISOString()}`,
        "recovery can only go forward from a base backup: choose an older one, or leave out --base",
      );
    return s;
  }
  const all = await listBaseBackups(repo, cluster);
  const usable = target ? all.filter((s) => new Date(s.time) <= target) : all;
  const chosen = usable.at(-1);
  if (!chosen)
    throw new LifeboatError(
      "SNAPSHOT_NOT_FOUND",
      all.length === 0
        ? `the repository has no base backup of cluster ${cluster}`
        : `no base backup of cluster ${cluster} finished before ${target?.toISOString()} (the oldest finished at ${all[0]!.time})`,
      "take one with `lifeboat pg base-backup --dsn postgres://...` (see `lifeboat snapshots`)",
    );
  return chosen;
}

function safeParts(name: string): string[] {
  const parts = name.split("/");
  if (name === "" || name.startsWith("/") || parts.some((p) => p === "" || p === "." || p === ".."))
    throw new LifeboatError(
      "UNSAFE_PATH",
      `the base backup holds an unsafe path ${JSON.stringify(name)}; nothing more was written`,
    );
  return parts;
}

export interface ExtractResult {
  files: number;
  dirs: number;
  bytes: number;
}

/**
 * Unpacks a tar stream into `dir` (new or empty). Files are created exclusively and never
 * through a symlink (symlinks are made last); owners are restored when running as root.
 */
export async function extractTar(source: AsyncIterable<Buffer>, dir: string): Promise<ExtractResult> {
  const asRoot = process.getuid?.() === 0;
  const result: ExtractResult = { files: 0, dirs: 0, bytes: 0 };
  const links: TarEntry[] = [];
  const dirModes: { p: string; e: TarEntry }[] = [];
  let owner: { uid: number; gid: number } | undefined;
  let fh: fs.FileHandle | undefined;
  const made = new Set<string>();
  const mkdirs = async (p: string) => {
    if (made.has(p)) return;
    await fs.mkdir(p, { recursive: true, mode: 0o700 });
    made.add(p);
  };
  await readTar(
    source,
    {
      async entry(e) {
        if (e.type === "dir" && e.name === "") return; // `./`: the folder itself
        const parts = safeParts(e.name);
        const p = path.join(dir, ...parts);
        if (e.type === "dir") {
          await mkdirs(p);
          dirModes.push({ p, e });
          result.dirs++;
          return;
        }
        if (e.type === "symlink") {
          links.push(e);
          return;
        }
        if (e.type === "hardlink")
          throw new LifeboatError(
            "USAGE",
            `the base backup holds a hard link ${e.name}, which pg restore does not make`,
          );
        owner ??= { uid: e.uid, gid: e.gid };
        await mkdirs(path.dirname(p));
        fh = await fs.open(
          p,
          constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
          e.mode & 0o777,
        );
        if (asRoot) await fh.chown(e.uid, e.gid);
        result.files++;
      },
      async data(piece) {
        await fh!.write(piece);
        result.bytes += piece.length;
      },
      async endEntry() {
        if (fh) {
          await fh.sync();
          await fh.close();
          fh = undefined;
        }
      },
    },
    "base backup tar",
  ).finally(async () => {
    await fh?.close().catch(() => {});
  });
  for (const l of links) {
    const p = path.join(dir, ...safeParts(l.name));
    await mkdirs(path.dirname(p));
    await fs.symlink(l.linkname, p);
    if (asRoot) await fs.lchown(p, l.uid, l.gid);
  }
  for (const { p, e } of dirModes.reverse()) {
    await fs.chmod(p, e.mode & 0o777);
    if (asRoot) await fs.chown(p, e.uid, e.gid);
  }
  await fs.chmod(dir, 0o700);
  if (asRoot && owner) await fs.chown(dir, owner.uid, owner.gid);
  return result;
}

/** A value inside single quotes in postgresql.conf. */
const confQuote = (s: string) => `'${s.replace(/\\/g, "\\\\").replace(/'/g, "''")}'`;

export interface PitrRestoreOptions {
  targetDir: string;
  /** Recovery target; absent: replay every archived WAL file, then promote. */
  time?: string;
  base?: string;
  cluster?: string;
  /** The restore_command PostgreSQL will run (a shell command with %f and %p). */
  restoreCommand: string;
}

export interface PitrRestoreResult {
  snapshot: string;
  baseTime: string;
  startWalFile: string;
  targetDir: string;
  target: string;
  files: number;
  bytes: number;
  durationMs: number;
}

async function prepareTargetDir(dir: string): Promise<void> {
  try {
    const entries = await fs.readdir(dir);
    if (entries.length > 0)
      throw new LifeboatError(
        "ALREADY_EXISTS",
        `${dir} is not empty; pg restore writes only into a new or empty folder`,
        "give a new --target-dir (never the folder of a running server)",
      );
  } catch (e) {
    if (errnoCode(e) !== "ENOENT") throw e;
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  }
}

export async function pitrRestore(repo: Repository, opts: PitrRestoreOptions): Promise<PitrRestoreResult> {
  const started = Date.now();
  const cluster = opts.cluster ?? DEFAULT_CLUSTER;
  const target = opts.time ? parseTargetTime(opts.time) : undefined;
  const base = await chooseBase(repo, cluster, target?.date, opts.base);
  const file = (await listSnapshotFiles(repo, base)).find((f) => f.path === BASE_FILE);
  if (!file) throw new LifeboatError("CORRUPTION", `base backup ${base.id.slice(0, 8)} has no ${BASE_FILE}`);
  const dir = path.resolve(opts.targetDir);
  await prepareTargetDir(dir);
  const r = await extractTar(readSnapshotFile(repo, file), dir);
  if (!(await fs.stat(path.join(dir, "PG_VERSION")).catch(() => undefined)))
    throw new LifeboatError(
      "CORRUPTION",
      `base backup ${base.id.slice(0, 8)} holds no PG_VERSION: not a data folder`,
    );
  await fs.mkdir(path.join(dir, "pg_wal", "archive_status"), { recursive: true, mode: 0o700 });
  const lines = [
    "",
    `# lifeboat pg restore: base backup ${base.id.slice(0, 8)} (${base.time}), ${new Date().toISOString()}`,
    `restore_command = ${confQuote(opts.restoreCommand)}`,
    ...(target ? [`recovery_target_time = ${confQuote(target.text)}`, "recovery_target_inclusive = on"] : []),
    "recovery_target_action = 'promote'",
    "recovery_target_timeline = 'latest'",
    "",
  ];
  const conf = path.join(dir, "postgresql.auto.conf");
  const signal = path.join(dir, "recovery.signal");
  await fs.appendFile(conf, lines.join("\n"), { mode: 0o600 });
  await fs.writeFile(signal, "", { mode: 0o600 });
  if (process.getuid?.() === 0) {
    const st = await fs.stat(path.join(dir, "PG_VERSION"));
    await fs.chown(conf, st.uid, st.gid);
    await fs.chown(signal, st.uid, st.gid);
    await fs.chown(path.join(dir, "pg_wal"), st.uid, st.gid);
    await fs.chown(path.join(dir, "pg_wal", "archive_status"), st.uid, st.gid);
  }
  return {
    snapshot: base.id,
    baseTime: base.time,
    startWalFile: baseMeta(base).startWalFile,
    targetDir: dir,
    target: target ? target.text : "end of the archived WAL",
    files: r.files,
    bytes: r.bytes,
    durationMs: Date.now() - started,
  };
}
