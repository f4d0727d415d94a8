import type { Command } from "commander";
import { ExitCode, LifeboatError } from "../../core/errors.js";
import { checkSqlitePath, parseSqliteArg } from "../../sources/sqlite.js";
import { DEFAULT_LEVELS_SPEC, parseLevels } from "../../sources/sqlite-replicate/levels.js";
import { checkWalMode, SqliteReplicator } from "../../sources/sqlite-replicate/replicator.js";
import type { CliContext } from "../shell/context.js";
import { bytes } from "../shell/format.js";

interface ReplicateFlags {
  interval: string;
  snapshotInterval: string;
  retention: string;
  levels: string;
  host?: string;
  tag: string[];
}

const collect = (v: string, prev: string[]) => [...prev, v];

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Durations like `500ms`, `1s`, `90s`, `5m`, `1h30m`, `7d` (m = minutes). */
export function parseInterval(s: string, option: string): number {
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/g;
  let total = 0;
  let consumed = 0;
  for (const m of s.matchAll(re)) {
    total += Number(m[1]) * UNITS[m[2]!]!;
    consumed += m[0].length;
  }
  if (consumed !== s.length || consumed === 0 || total <= 0)
    throw new LifeboatError(
      "USAGE",
      `${option} ${JSON.stringify(s)} is not a duration like 500ms, 1s, 5m, 1h, 7d`,
    );
  return total;
}

export function registerReplicate(program: Command, ctx: (c: Command) => CliContext): void {
  program
    .command("replicate")
    .description("replicate a live SQLite database (WAL mode) continuously into the repository")
    .argument("<source>", "sqlite:PATH")
    .option("--interval <duration>", "how often new WAL frames are shipped", "1s")
    .option("--snapshot-interval <duration>", "how often a full snapshot starts a new generation", "1h")
    .option("--retention <duration>", "how long points in time stay restorable", "24h")
    .option(
      "--levels <spec>",
      "how long interval segments are kept, then each coarser window and how long its merged segments are kept",
      DEFAULT_LEVELS_SPEC,
    )
    .option("--host <name>", "host name recorded in the snapshots and segments (default: this machine's)")
    .option("--tag <tag>", "extra tag for the full snapshots (they are always tagged `replica`)", collect, [])
    .addHelpText(
      "after",
      `
Runs until SIGINT or SIGTERM, then ships what is committed and exits 0. It holds a read
transaction on the database at all times, so SQLite cannot checkpoint WAL frames that were not
shipped yet; it checkpoints (PASSIVE) itself after shipping. The database must be in WAL mode
(PRAGMA journal_mode=WAL); writers should set a busy_timeout, because the WAL is restarted now
and then under a short write lock. Each --snapshot-interval a full snapshot (tag \`replica\`)
starts a new generation; segments and generations older than --retention are deleted (their data
is freed by \`lifeboat prune\`). Segments are merged in levels as they age (--levels; default:
one per interval for 5 minutes, per 30 seconds for an hour, per 5 minutes for a day, then per
hour), so --time T restores to the interval for recent T and coarser for older ones. See
docs/replication.md.

Examples:
  lifeboat replicate sqlite:/var/lib/app/app.db
  lifeboat replicate sqlite:/var/lib/app/app.db --interval 500ms --snapshot-interval 6h --retention 7d
  lifeboat restore sqlite:/var/lib/app/app.db --time 2026-11-26T09:15:00Z --target /tmp/app.db`,
    )
    .action(async (spec: string, flags: ReplicateFlags, cmd: Command) => {
      const c = ctx(cmd);
      const absPath = parseSqliteArg(spec);
      if (!absPath)
        throw new LifeboatError("USAGE", "replicate takes sqlite:PATH", "e.g. sqlite:/var/lib/app/app.db");
      const intervalMs = parseInterval(flags.interval, "--interval");
      const snapshotIntervalMs = parseInterval(flags.snapshotInterval, "--snapshot-interval");
      const retentionMs = parseInterval(flags.retention, "--retention");
      const levels = parseLevels(flags.levels, parseInterval);
      await checkSqlitePath(absPath);
      checkWalMode(absPath);
      const repo = await c.openRepo();
      let replicator: SqliteReplicator | undefined;
      try {
        replicator = new SqliteReplicator(repo, absPath, {
          intervalMs,
          snapshotIntervalMs,
          retentionMs,
          levels,
          ...(flags.host ? { host: flags.host } : {}),
          tags: flags.tag,
          onSnapshot: (e) => {
            c.out.info(
              `snapshot ${e.id.slice(0, 8)} (${e.reason}): generation ${e.generation}, ${bytes(e.bytes)} in ${e.seconds.toFixed(1)}s`,
            );
            c.out.emit({ message_type: "snapshot", snapshot_id: e.id, ...e });
          },
          onSegment: (e) => {
            const d = e.doc;
            c.out.debug(
              `segment ${d.generation}/${d.first}: ${d.commits} commits, ${d.frames} frames, ${d.pages} pages, ${bytes(d.size)}, lag ${e.lagMinMs}-${e.lagMaxMs} ms`,
            );
            c.out.emit({
              message_type: "segment",
              id: e.id,
              generation: d.generation,
              index: d.first,
              commits: d.commits,
              frames: d.frames,
              pages: d.pages,
              bytes: d.size,
              wal_start: d.walStart.offset,
              wal_end: d.walEnd.offset,
              wal_restarted: d.walRestarted,
              commits_after: d.commitsAfter,
              commits_before: d.commitsBefore,
              stored_at: d.storedAt,
              lag_min_ms: e.lagMinMs,
              lag_max_ms: e.lagMaxMs,
              store_ms: e.storeMs,
            });
          },
          onCompacted: (e) => {
            c.out.debug(
              `compacted ${e.generation}/${e.first}..${e.last} into level ${e.level}: ${e.merged} segments, ${e.pages} pages, ${bytes(e.bytes)}`,
            );
            c.out.emit({
              message_type: "compacted",
              generation: e.generation,
              level: e.level,
              first: e.first,
              last: e.last,
              merged: e.merged,
              pages: e.pages,
              bytes: e.bytes,
              inline: e.inline,
              object: e.object,
            });
          },
          onDeleted: (e) => {
            c.out.info(`retention: deleted generation ${e.generation} (${e.segments} segments)`);
            c.out.emit({ message_type: "deleted", ...e });
          },
          onWarning: (m) => c.out.warn(m),
        });
      } catch (e) {
        await repo.close();
        throw e;
      }
      // The first SIGINT/SIGTERM finishes the current segment and ships what is committed; a
      // second one exits at once (the repository stays consistent either way).
      const r = replicator;
      let signals = 0;
      const onSignal = () => {
        signals++;
        if (signals > 1) process.exit(ExitCode.interrupted);
        c.out.info("stopping: shipping what is committed...");
        r.stop();
      };
      process.removeAllListeners("SIGINT");
      process.removeAllListeners("SIGTERM");
      process.on("SIGINT", onSignal);
      process.on("SIGTERM", onSignal);
      c.out.info(`replicating ${r.source} every ${flags.interval} (Ctrl-C to stop)`);
      c.out.emit({ message_type: "started", source: r.source, pid: process.pid });
      try {
        const s = await r.run();
        c.out.info(
          `stopped: ${s.segments} segments (${s.commits} commits, ${bytes(s.bytes)} of pages) in ${s.generations} generation(s); lag mean ${s.lagMeanMs.toFixed(0)} ms, max ${s.lagMaxMs} ms`,
        );
        c.out.emit({
          message_type: "summary",
          source: r.source,
          generations: s.generations,
          segments: s.segments,
          frames: s.frames,
          commits: s.commits,
          bytes: s.bytes,
          lag_mean_ms: Math.round(s.lagMeanMs),
          lag_max_ms: s.lagMaxMs,
        });
      } finally {
        await repo.close();
      }
    });
}
