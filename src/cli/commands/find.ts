import type { Command } from "commander";
import { displayName, jsonName } from "../../core/names.js";
import { findInSnapshots } from "../../ops/inspect/find.js";
import { selectSnapshots } from "../../ops/inspect/select.js";
import type { CliContext } from "../shell/context.js";
import { bytes } from "../shell/format.js";
import { collectOldGenerationSooner } from "../shell/heap-flags.js";

const collect = (v: string, prev: string[]) => [...prev, v];

const isoTime = (ns: string) => new Date(Number(BigInt(ns) / 1_000_000n)).toISOString();

export function registerFind(program: Command, ctx: (c: Command) => CliContext): void {
  program
    .command("find")
    .description("find files by name in all snapshots")
    .argument("<pattern...>", "glob on file names: * ? [abc] (** also crosses / with --path)")
    .option("--path", "match the patterns against whole paths (/home/*/notes.txt) instead of names")
    .option("-i, --ignore-case", "ignore case when matching")
    .option("--host <name>", "only snapshots of this host")
    .option("--tag <tag>", "only snapshots with this tag (repeatable: all must match)", collect, [])
    .option("--snapshot <id>", "only this snapshot (repeatable; an id, prefix or `latest`)", collect, [])
    .addHelpText(
      "after",
      `
Quote patterns so that the shell does not expand them. In a name that is not UTF-8 (shown with
\\xHH for its other bytes), ? matches one such byte.

Examples:
  lifeboat find '*.pdf'
  lifeboat find --path '/home/ann/**/report-202?.odt' --host laptop --json
  lifeboat find 'notes*' --snapshot latest`,
    )
    .action(
      async (
        patterns: string[],
        flags: { path?: boolean; ignoreCase?: boolean; host?: string; tag: string[]; snapshot: string[] },
        cmd: Command,
      ) => {
        const c = ctx(cmd);
        collectOldGenerationSooner();
        const repo = await c.openRepo();
        try {
          const snaps = await selectSnapshots(repo, flags.snapshot, { host: flags.host, tags: flags.tag });
          let current = "";
          const n = await findInSnapshots(
            repo,
            snaps,
            patterns,
            ({ snapshot, path, node }) => {
              if (c.out.json) {
                c.out.emit({
                  message_type: "match",
                  snapshot: snapshot.id,
                  ...jsonName("path", path),
                  type: node.type,
                  size: node.type === "file" ? (node.size ?? 0) : null,
                  mode: node.mode,
                  mtime: isoTime(node.mtime),
                  ...(node.target !== undefined ? jsonName("target", node.target) : {}),
                });
                return;
              }
              if (snapshot.id !== current) {
                current = snapshot.id;
                c.out.result(
                  `snapshot ${snapshot.id.slice(0, 8)} of ${snapshot.time.replace("T", " ").slice(0, 19)} (${snapshot.hostname}):`,
                );
              }
              const size = node.type === "file" ? bytes(node.size ?? 0) : "";
              const type = node.type === "symlink" ? "link" : node.type;
              c.out.result(
                `  ${snapshot.id.slice(0, 8)}  ${type.padEnd(4)}  ${size.padStart(10)}  ${isoTime(node.mtime).replace("T", " ").slice(0, 19)}  ${displayName(path)}`,
              );
            },
            { matchPath: flags.path ?? false, ignoreCase: flags.ignoreCase ?? false },
          );
          c.out.emit({ message_type: "summary", matches: n, snapshots: snaps.length });
          c.out.info(
            `${n} match${n === 1 ? "" : "es"} in ${snaps.length} snapshot${snaps.length === 1 ? "" : "s"}`,
          );
        } finally {
          await repo.close();
        }
      },
    );
}
