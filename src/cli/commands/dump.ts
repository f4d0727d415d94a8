import type { Command } from "commander";
import { LifeboatError } from "../../core/errors.js";
import { dump, type Sink, streamSink, writeAtomically } from "../../ops/inspect/dump.js";
import { findSnapshot } from "../../repo/find-snapshot.js";
import type { CliContext } from "../shell/context.js";
import { bytes } from "../shell/format.js";

export function registerDump(program: Command, ctx: (c: Command) => CliContext): void {
  program
    .command("dump")
    .description("write a file from a snapshot to stdout, or a folder as a tar archive")
    .argument("<snapshot>", "snapshot id (or a unique prefix), or `latest`")
    .argument("<path>", "file or folder inside the snapshot (/ for everything)")
    .option("--archive <format>", "archive format for folders (only tar)", "tar")
    .option("--target <file>", "write to this file (atomically: a temporary file renamed into place)")
    .addHelpText(
      "after",
      `
A file is written as it is, blob by blob; a folder becomes a POSIX tar stream (long names in pax
headers, modes, owners, mtimes, symlinks, hard links, empty folders) named after the folder.

Examples:
  lifeboat dump latest /home/ann/notes.txt > notes.txt
  lifeboat dump latest /home/ann/docs | tar -x -C /tmp/restored
  lifeboat dump 1a2b3c4d /etc --target etc.tar`,
    )
    .action(async (ref: string, sub: string, flags: { archive: string; target?: string }, cmd: Command) => {
      const c = ctx(cmd);
      if (flags.archive !== "tar")
        throw new LifeboatError(
          "USAGE",
          `unknown archive format ${JSON.stringify(flags.archive)}`,
          "use --archive tar",
        );
      if (!flags.target && process.stdout.isTTY)
        throw new LifeboatError(
          "USAGE",
          "refusing to write to a terminal",
          "redirect stdout to a file or a pipe, or give --target FILE",
        );
      const repo = await c.openRepo();
      try {
        const snap = await findSnapshot(repo, ref);
        const run = (sink: Sink) => dump(repo, snap, sub, sink);
        if (flags.target) {
          let r: Awaited<ReturnType<typeof run>> | undefined;
          await writeAtomically(flags.target, async (sink) => {
            r = await run(sink);
          });
          if (r) {
            const what = r.kind === "tar" ? `tar archive of ${r.entries} entries` : "file";
            c.out.info(`wrote ${flags.target}: ${what}, ${bytes(r.bytes)}`);
            c.out.emit({
              message_type: "summary",
              target: flags.target,
              kind: r.kind,
              bytes: r.bytes,
              entries: r.entries,
            });
          }
        } else {
          try {
            await run(streamSink(process.stdout));
          } catch (e) {
            // The reader went away (`| head`): stop quietly, as cat does.
            if ((e as { code?: string }).code === "EPIPE") return;
            throw e;
          }
        }
      } finally {
        await repo.close();
      }
    });
}
