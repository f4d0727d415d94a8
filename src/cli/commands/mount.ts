import { execFileSync } from "node:child_process";
import type { Command } from "commander";
import { loadFuse, type Mounted, mountSnapshotFs } from "../../ops/mount/mount.js";
import { SnapshotFs, snapshotDirName } from "../../ops/mount/mount-fs.js";
import { findSnapshot, matchesFilter } from "../../repo/find-snapshot.js";
import type { CliContext } from "../shell/context.js";

const collect = (v: string, prev: string[]) => [...prev, v];

interface MountFlags {
  host?: string;
  tag: string[];
  path: string[];
}

/** Resolves when SIGINT or SIGTERM arrives; the CLI's own exit-at-once handlers step aside meanwhile. */
function untilSignal(): { wait: Promise<NodeJS.Signals>; restore: () => void } {
  const saved = {
    SIGINT: process.listeners("SIGINT"),
    SIGTERM: process.listeners("SIGTERM"),
  };
  process.removeAllListeners("SIGINT");
  process.removeAllListeners("SIGTERM");
  let onSignal: (s: NodeJS.Signals) => void = () => {};
  const wait = new Promise<NodeJS.Signals>((resolve) => {
    onSignal = resolve;
  });
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  return {
    wait,
    restore: () => {
      process.removeListener("SIGINT", onSignal);
      process.removeListener("SIGTERM", onSignal);
      for (const l of saved.SIGINT) process.on("SIGINT", l as NodeJS.SignalsListener);
      for (const l of saved.SIGTERM) process.on("SIGTERM", l as NodeJS.SignalsListener);
    },
  };
}

export function registerMount(program: Command, ctx: (c: Command) => CliContext): void {
  program
    .command("mount")
    .description("browse snapshots as a read-only folder through FUSE, until Ctrl-C")
    .argument("<snapshot>", "snapshot id (or a unique prefix), `latest`, or `all` for every snapshot")
    .argument("<mountpoint>", "an existing empty folder to mount on")
    .option("--host <host>", "with `latest` or `all`: only snapshots of this host")
    .option("--tag <tag>", "with `latest` or `all`: only snapshots with this tag (repeatable)", collect, [])
    .option(
      "--path <path>",
      "with `latest` or `all`: only snapshots of exactly these paths (repeatable)",
      collect,
      [],
    )
    .addHelpText(
      "after",
      `
One snapshot appears as its own root; \`all\` shows snapshots/<time>-<short id>/ for each
snapshot, and snapshots/latest. Nothing can be written. The mount stays until Ctrl-C (or
SIGTERM), then it is unmounted. Needs /dev/fuse, and on Debian the packages fuse and libfuse2.

Examples:
  lifeboat mount latest /mnt/backup
  lifeboat mount all /mnt/backup --host laptop`,
    )
    .action(async (ref: string, mountpoint: string, flags: MountFlags, cmd: Command) => {
      const c = ctx(cmd);
      const say = (obj: unknown, text: string) => {
        c.out.emit(obj);
        c.out.info(text);
      };
      loadFuse(); // missing /dev/fuse, fusermount or libfuse: say so before asking for a password
      const repo = await c.openRepo();
      let mounted: Mounted | undefined;
      const signals = untilSignal();
      // If the process dies some other way, do not leave a dead mount behind.
      const lastResort = () => {
        if (!mounted) return;
        try {
          execFileSync("fusermount", ["-uz", mounted.mountpoint], { stdio: "ignore" });
        } catch {}
      };
      process.on("exit", lastResort);
      try {
        const filter = { host: flags.host, tags: flags.tag, paths: flags.path };
        let sfs: SnapshotFs;
        if (ref === "all") {
          const all = (await repo.listSnapshots()).filter((s) => matchesFilter(s, filter));
          sfs = new SnapshotFs(repo, { all });
          say({ message_type: "mount_snapshots", count: all.length }, `${all.length} snapshot(s)`);
          if (c.out.json) {
            for (const s of all)
              c.out.emit({
                message_type: "snapshot",
                id: s.id,
                time: s.time,
                dir: `snapshots/${snapshotDirName(s)}`,
              });
          }
        } else {
          const snap = await findSnapshot(repo, ref, filter);
          sfs = new SnapshotFs(repo, { snapshot: snap });
          say(
            {
              message_type: "snapshot",
              id: snap.id,
              time: snap.time,
              paths: snap.paths,
              hostname: snap.hostname,
            },
            `snapshot ${snap.id.slice(0, 8)} of ${snap.hostname} at ${snap.time}`,
          );
        }
        mounted = await mountSnapshotFs(sfs, mountpoint, (m) => c.out.warn(`mount: ${m}`));
        say(
          { message_type: "mounted", mountpoint: mounted.mountpoint },
          `mounted read-only at ${mounted.mountpoint}; press Ctrl-C to unmount`,
        );
        const sig = await signals.wait;
        const where = mounted.mountpoint;
        await mounted.unmount();
        mounted = undefined;
        say({ message_type: "unmounted", mountpoint: where, signal: sig }, `unmounted ${where}`);
      } finally {
        if (mounted) await mounted.unmount().catch(() => lastResort());
        mounted = undefined;
        process.removeListener("exit", lastResort);
        signals.restore();
        await repo.close();
      }
    });
}
