import type { Command } from "commander";
import { displayName, jsonName } from "../../core/names.js";
import { findSnapshot } from "../../repo/find-snapshot.js";
import { deviceNumbers, type TreeNode } from "../../repo/tree.js";
import { resolveSubpath } from "../../snapshot/subpath.js";
import { walkTree } from "../../snapshot/walker.js";
import type { CliContext } from "../shell/context.js";
import { bytes } from "../shell/format.js";
import { collectOldGenerationSooner } from "../shell/heap-flags.js";

const TYPE_CHAR: Record<TreeNode["type"], string> = {
  file: "-",
  dir: "d",
  symlink: "l",
  fifo: "p",
  chardev: "c",
  blockdev: "b",
};

/** `major,minor` of a device node. */
function devNumbers(rdev: string): string {
  const { major, minor } = deviceNumbers(rdev);
  return `${major},${minor}`;
}

export function registerLs(program: Command, ctx: (c: Command) => CliContext): void {
  program
    .command("ls")
    .description("list the files in a snapshot")
    .argument("<snapshot>", "snapshot id (or a unique prefix), or `latest`")
    .argument("[path]", "folder or file inside the snapshot", "/")
    .option("-l, --long", "show mode, size and time")
    .option("--no-recursive", "list only the given folder, not everything below it")
    .action(async (ref: string, sub: string, flags: { long?: boolean; recursive: boolean }, cmd: Command) => {
      const c = ctx(cmd);
      collectOldGenerationSooner();
      const repo = await c.openRepo();
      try {
        const snap = await findSnapshot(repo, ref);
        c.out.emit({
          message_type: "snapshot",
          id: snap.id,
          time: snap.time,
          paths: snap.paths,
          hostname: snap.hostname,
        });
        const base = sub === "/" ? "" : `/${sub.split("/").filter(Boolean).join("/")}`;
        const print = (n: TreeNode, p: string) => {
          if (c.out.json) {
            // Names that are not UTF-8: readable (`\xHH`) plus `*_bytes`, their exact bytes in base64.
            c.out.emit({
              message_type: "node",
              ...jsonName("name", n.name),
              type: n.type,
              ...jsonName("path", p),
              size: n.size,
              mode: n.mode,
              uid: n.uid,
              gid: n.gid,
              mtime: new Date(Number(BigInt(n.mtime) / 1_000_000n)).toISOString(),
              ...(n.target !== undefined ? jsonName("target", n.target) : {}),
              ...(n.rdev !== undefined ? { rdev: n.rdev } : {}),
              ...(n.xattrs
                ? { xattrs: n.xattrs.map((x) => ({ ...jsonName("name", x.name), value: x.value })) }
                : {}),
            });
          } else if (flags.long) {
            const size = n.type === "file" ? bytes(n.size ?? 0) : "";
            const t = new Date(Number(BigInt(n.mtime) / 1_000_000n))
              .toISOString()
              .replace("T", " ")
              .slice(0, 19);
            // `+` after the mode: the node has extended attributes (as ls shows an ACL).
            const mode = `${TYPE_CHAR[n.type]}${n.mode.toString(8).padStart(4, "0")}${n.xattrs ? "+" : " "}`;
            const dev = n.rdev !== undefined ? devNumbers(n.rdev) : size;
            c.out.result(
              `${mode} ${String(n.uid).padStart(5)} ${String(n.gid).padStart(5)} ${dev.padStart(10)} ${t} ${displayName(p)}${n.target !== undefined ? ` -> ${displayName(n.target)}` : ""}`,
            );
          } else {
            c.out.result(displayName(p));
          }
        };
        const root = await resolveSubpath(repo, snap, base);
        if (root.kind === "node") print(root.node, base);
        else
          await walkTree(
            repo,
            root.tree,
            {
              node(n, p) {
                print(n, p);
                return flags.recursive === true;
              },
            },
            // Each tree is read once: kept out of the tree cache (memory, and collections that
            // would mark up to 2,000 decoded trees again and again).
            { path: base, keepTrees: false },
          );
      } finally {
        await repo.close();
      }
    });
}
