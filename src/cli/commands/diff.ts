import type { Command } from "commander";
import { LifeboatError } from "../../core/errors.js";
import { displayName, jsonName } from "../../core/names.js";
import { type DiffChange, diffTrees } from "../../ops/inspect/diff.js";
import { resolveInSnapshot } from "../../ops/inspect/select.js";
import { findSnapshot } from "../../repo/find-snapshot.js";
import type { Repository } from "../../repo/repository.js";
import type { SnapshotWithId } from "../../repo/snapshot.js";
import type { CliContext } from "../shell/context.js";
import { bytes } from "../shell/format.js";
import { collectOldGenerationSooner } from "../shell/heap-flags.js";

/** `ID` or `ID:/some/folder` → the snapshot and the tree to compare. */
async function side(
  repo: Repository,
  spec: string,
): Promise<{ snap: SnapshotWithId; tree: string; prefix: string }> {
  const colon = spec.indexOf(":");
  const snap = await findSnapshot(repo, colon >= 0 ? spec.slice(0, colon) : spec);
  if (colon < 0) return { snap, tree: snap.tree, prefix: "" };
  const sub = `/${spec
    .slice(colon + 1)
    .split("/")
    .filter((p) => p !== "" && p !== ".")
    .join("/")}`;
  const r = await resolveInSnapshot(repo, snap, sub);
  if (r.kind !== "dir")
    throw new LifeboatError(
      "USAGE",
      `${sub} in snapshot ${snap.id.slice(0, 8)} is not a folder`,
      "diff compares folders",
    );
  return { snap, tree: r.tree, prefix: sub === "/" ? "" : sub };
}

export function registerDiff(program: Command, ctx: (c: Command) => CliContext): void {
  program
    .command("diff")
    .description("show what changed between two snapshots")
    .argument(
      "<snapshot1>",
      "the older snapshot: id, unique prefix or `latest`; SNAPSHOT:PATH compares a folder",
    )
    .argument("<snapshot2>", "the newer snapshot (same forms)")
    .addHelpText(
      "after",
      `
Each line is a change and a path:
  +  added        -  removed        M  content modified
  U  only metadata (mode, owner, mtime, extended attributes) changed
  T  type changed (file, folder, symlink, FIFO, device)
Folders end in /. Identical subtrees are skipped without being read.

Examples:
  lifeboat diff 1a2b3c4d 5e6f7a8b
  lifeboat diff 1a2b3c4d:/home/ann/docs latest:/home/ann/docs --json`,
    )
    .action(async (a: string, b: string, _flags: unknown, cmd: Command) => {
      const c = ctx(cmd);
      collectOldGenerationSooner();
      const repo = await c.openRepo();
      try {
        const x = await side(repo, a);
        const y = await side(repo, b);
        const print = (ch: DiffChange) => {
          // With SNAPSHOT:PATH the paths are those of the second side.
          const p = `${y.prefix}${ch.path}`;
          if (c.out.json) {
            c.out.emit({
              message_type: "change",
              modifier: ch.modifier,
              ...jsonName("path", p),
              type: ch.type,
              ...(ch.oldType ? { old_type: ch.oldType } : {}),
            });
          } else c.out.result(`${ch.modifier}  ${displayName(p)}${ch.type === "dir" ? "/" : ""}`);
        };
        const s = await diffTrees(repo, x.tree, y.tree, { onChange: print });
        c.out.emit({
          message_type: "summary",
          source_snapshot: x.snap.id,
          target_snapshot: y.snap.id,
          added: s.added,
          removed: s.removed,
          modified: s.modified,
          metadata: s.metadata,
          type_changed: s.typeChanged,
          bytes_added: s.bytesAdded,
          bytes_removed: s.bytesRemoved,
        });
        c.out.info(
          `\n${x.snap.id.slice(0, 8)} → ${y.snap.id.slice(0, 8)}: ${s.added} added, ${s.removed} removed, ` +
            `${s.modified} modified, ${s.metadata} metadata only, ${s.typeChanged} type changed; ` +
            `data added ${bytes(s.bytesAdded)}, removed ${bytes(s.bytesRemoved)}`,
        );
      } finally {
        await repo.close();
      }
    });
}
