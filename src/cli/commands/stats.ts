import type { Command } from "commander";
import { selectSnapshots } from "../../ops/inspect/select.js";
import { type DataStats, repositoryStats } from "../../ops/inspect/stats.js";
import type { CliContext } from "../shell/context.js";
import { bytes, table } from "../shell/format.js";

const collect = (v: string, prev: string[]) => [...prev, v];

const json = (s: DataStats) => ({
  files: s.files,
  logical_bytes: s.logicalBytes,
  blobs: s.blobs,
  unique_bytes: s.uniqueBytes,
  stored_bytes: s.storedBytes,
  dedup_ratio: Number(s.dedupRatio.toFixed(4)),
  compression_ratio: Number(s.compressionRatio.toFixed(4)),
  ...(s.missingBlobs > 0 ? { missing_blobs: s.missingBlobs } : {}),
});

export function registerStats(program: Command, ctx: (c: Command) => CliContext): void {
  program
    .command("stats")
    .description("sizes of snapshots: files, logical size, unique data, stored size, ratios")
    .argument("[snapshot...]", "snapshots (ids, prefixes or `latest`); all of them if none")
    .option("--host <name>", "only snapshots of this host")
    .option("--tag <tag>", "only snapshots with this tag (repeatable: all must match)", collect, [])
    .addHelpText(
      "after",
      `
Columns: logical = sum of file sizes; unique = plaintext bytes of the distinct data blobs the
snapshot references; stored = bytes those blobs take in packs (compressed and encrypted);
dedup = logical / unique; compression = unique / stored. The total counts a blob shared by
several snapshots once. Packs and pack bytes come from the storage listing.

Examples:
  lifeboat stats
  lifeboat stats latest --json`,
    )
    .action(async (refs: string[], flags: { host?: string; tag: string[] }, cmd: Command) => {
      const c = ctx(cmd);
      const repo = await c.openRepo();
      try {
        const snaps = await selectSnapshots(repo, refs, { host: flags.host, tags: flags.tag });
        const r = await repositoryStats(repo, snaps);
        if (c.out.json) {
          for (const s of r.snapshots)
            c.out.emit({ message_type: "snapshot", snapshot: s.snapshot.id, ...json(s) });
          c.out.emit({
            message_type: "summary",
            snapshots: r.snapshots.length,
            ...json(r.total),
            packs: r.packs,
            pack_bytes: r.packBytes,
            indexed_blobs: r.indexedBlobs,
          });
          return;
        }
        const row = (name: string, s: DataStats) => [
          name,
          String(s.files),
          bytes(s.logicalBytes),
          bytes(s.uniqueBytes),
          bytes(s.storedBytes),
          `${s.dedupRatio.toFixed(2)}x`,
          `${s.compressionRatio.toFixed(2)}x`,
        ];
        const rows = [["Snapshot", "Files", "Logical", "Unique", "Stored", "Dedup", "Compression"]];
        for (const s of r.snapshots) rows.push(row(s.snapshot.id.slice(0, 8), s));
        rows.push(row("total", r.total));
        c.out.result(table(rows));
        c.out.result(`repository: ${r.packs} packs, ${bytes(r.packBytes)}, ${r.indexedBlobs} blobs indexed`);
        const missing = r.total.missingBlobs;
        if (missing > 0)
          c.out.warn(`${missing} referenced blobs are not in the index; run \`lifeboat check\``);
      } finally {
        await repo.close();
      }
    });
}
