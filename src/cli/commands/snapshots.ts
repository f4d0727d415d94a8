import type { Command } from "commander";
import { acknowledgedIds } from "../../ops/acks/acks.js";
import { matchesFilter } from "../../repo/find-snapshot.js";
import type { CliContext } from "../shell/context.js";
import { table } from "../shell/format.js";
import { accountSnapshotList } from "./account-flags.js";
import { openAccountRepo } from "./fleet-repos.js";

const collect = (v: string, prev: string[]) => [...prev, v];

type Flags = { host?: string; tag: string[]; path: string[]; account?: string; fleet?: string };

export function registerSnapshots(program: Command, ctx: (c: Command) => CliContext): void {
  program
    .command("snapshots")
    .description("list snapshots")
    .option("--host <name>", "only snapshots of this host")
    .option("--tag <tag>", "only snapshots with this tag (repeatable: all must match)", collect, [])
    .option("--path <path>", "only snapshots of exactly these paths (repeatable)", collect, [])
    .option("--account <id>", "only this fleet account's snapshots (from its catalogue)")
    .option("--fleet <name>", "with --account: of this fleet")
    .action(async (flags: Flags, cmd: Command) => {
      const c = ctx(cmd);
      // A fleet account: the repository its fleet's state (or catalogue) says holds it.
      const repo = flags.account ? await openAccountRepo(c, flags.account, flags.fleet) : await c.openRepo();
      const listed = flags.account
        ? await accountSnapshotList(repo, flags.account, flags.fleet)
        : await repo.listSnapshots();
      const snaps = listed.filter((s) =>
        matchesFilter(s, { host: flags.host, tags: flags.tag, paths: flags.path }),
      );
      const acked = await acknowledgedIds(repo);
      await repo.close();
      const flagged = (s: (typeof snaps)[number]) => (s.anomalies ?? []).length > 0;
      if (c.out.json) {
        c.out.emit(
          snaps.map((s) => ({
            ...s,
            short_id: s.id.slice(0, 8),
            flagged: flagged(s),
            anomalies: s.anomalies ?? [],
            acknowledged: acked.has(s.id),
          })),
        );
        return;
      }
      const rows = [["ID", "Time", "Host", "Tags", "Paths", ""]];
      for (const s of snaps) {
        rows.push([
          s.id.slice(0, 8),
          new Date(s.time).toISOString().replace("T", " ").slice(0, 19),
          s.hostname,
          s.tags.join(","),
          s.paths.join(" "),
          [
            s.incomplete ? "incomplete" : "",
            flagged(s) ? (acked.has(s.id) ? "flagged (acknowledged)" : "FLAGGED") : "",
          ]
            .filter(Boolean)
            .join(", "),
        ]);
      }
      c.out.result(table(rows));
      for (const s of snaps.filter((x) => flagged(x) && !acked.has(x.id))) {
        c.out.result(`${s.id.slice(0, 8)} is flagged: ${(s.anomalies ?? []).join("; ")}`);
        c.out.result(
          `  if this was intended: lifeboat ack ${s.id.slice(0, 8)}; if not, restore the snapshot before it`,
        );
      }
      c.out.result(`${snaps.length} snapshot${snaps.length === 1 ? "" : "s"}`);
    });
}
