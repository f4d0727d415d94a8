import type { Command } from "commander";
import { LifeboatError } from "../../core/errors.js";
import { findSnapshot } from "../../repo/find-snapshot.js";
import { exportDav } from "../../sources/dav/dav-snapshot.js";
import { exportEml } from "../../sources/imap/export-eml.js";
import { exportMaildir } from "../../sources/imap/export-maildir.js";
import { exportMbox } from "../../sources/imap/export-mbox.js";
import { type ExportStats, mailFolders } from "../../sources/imap/mail-snapshot.js";
import type { CliContext } from "../shell/context.js";
import { bytes } from "../shell/format.js";

interface ExportDavFlags {
  dir?: string;
  host?: string;
  path: string[];
}

interface ExportMailFlags {
  maildir?: string;
  mbox?: string;
  eml?: string;
  folder: string[];
  host?: string;
  path: string[];
}

const collect = (v: string, prev: string[]) => [...prev, v];

export function registerExport(program: Command, ctx: (c: Command) => CliContext): void {
  const exp = program.command("export").description("write a snapshot out in a standard format");
  exp
    .command("mail")
    .description("export a mail snapshot (from `lifeboat pull imap://...`) as Maildir, mbox or .eml files")
    .argument("<snapshot>", "snapshot id (or unique prefix), or `latest`")
    .option("--maildir <dir>", "Maildir++: INBOX in DIR, other folders as DIR/.Folder.Sub")
    .option("--mbox <file>", "one mboxrd file with every selected folder (pick one with --folder)")
    .option("--eml <dir>", "plain tree: DIR/<folder>/<uid>.eml")
    .option("--folder <glob>", "only folders matching this glob (repeatable; * and ?)", collect, [])
    .option("--host <name>", "with `latest`: newest snapshot of this host")
    .option(
      "--path <url>",
      "with `latest`: newest snapshot of this source, e.g. imap://ann@host:143",
      collect,
      [],
    )
    .addHelpText(
      "after",
      `
Every file is written under a temporary name and renamed into place. Maildir file names carry
the flags (:2,DFRST from \\Draft \\Flagged \\Answered \\Seen \\Deleted); exporting again into
the same Maildir only renames messages whose flags changed. See docs/mail.md.

Examples:
  lifeboat export mail latest --maildir /tmp/Maildir
  lifeboat export mail 3f2a9c1b --mbox inbox.mbox --folder INBOX
  lifeboat export mail latest --path imap://ann@mail.example.org:993 --eml /tmp/mail`,
    )
    .action(async (ref: string, flags: ExportMailFlags, cmd: Command) => {
      const c = ctx(cmd);
      const chosen = [flags.maildir, flags.mbox, flags.eml].filter((x) => x !== undefined);
      if (chosen.length !== 1)
        throw new LifeboatError(
          "USAGE",
          "give exactly one of --maildir DIR, --mbox FILE, --eml DIR",
          "for example: lifeboat export mail latest --maildir /tmp/Maildir",
        );
      const repo = await c.openRepo();
      let stats: ExportStats;
      let format: string;
      let target: string;
      try {
        const snap = await findSnapshot(repo, ref, { host: flags.host, paths: flags.path });
        const folders = mailFolders(repo, snap, flags.folder);
        if (flags.maildir !== undefined) {
          [format, target] = ["maildir", flags.maildir];
          stats = await exportMaildir(repo, folders, flags.maildir);
        } else if (flags.mbox !== undefined) {
          [format, target] = ["mbox", flags.mbox];
          stats = await exportMbox(repo, folders, flags.mbox);
        } else {
          [format, target] = ["eml", flags.eml!];
          stats = await exportEml(repo, folders, flags.eml!);
        }
      } finally {
        await repo.close();
      }
      c.out.info(
        `Exported ${stats.messages} messages (${bytes(stats.bytes)}) from ${stats.folders} folders to ${target} (${format})` +
          (stats.unchanged ? `; ${stats.unchanged} were already there` : ""),
      );
      c.out.emit({
        message_type: "summary",
        format,
        target,
        folders: stats.folders,
        messages: stats.messages,
        messages_unchanged: stats.unchanged,
        bytes: stats.bytes,
      });
    });
  for (const [name, kind, ext] of [
    ["contacts", "addressbook", ".vcf"],
    ["calendars", "calendar", ".ics"],
  ] as const) {
    exp
      .command(name)
      .description(
        `export the ${kind === "addressbook" ? "address books" : "calendars"} of a snapshot (from \`lifeboat pull dav://...\`) as ${ext} files`,
      )
      .argument("<snapshot>", "snapshot id (or unique prefix), or `latest`")
      .requiredOption(
        "--dir <dir>",
        `DIR/<collection>/<item>${ext} and one DIR/<collection>${ext} per collection`,
      )
      .option("--host <name>", "with `latest`: newest snapshot of this host")
      .option(
        "--path <url>",
        "with `latest`: newest snapshot of this source, e.g. davs://ann@cloud.example.org:443/",
        collect,
        [],
      )
      .addHelpText(
        "after",
        `
One file per item, byte for byte as the server served it, and one combined file per
collection: ${
          kind === "addressbook"
            ? "<collection>.vcf holds every vCard one after another"
            : "<collection>.ics is a single VCALENDAR with every VEVENT/VTODO/... and each\nVTIMEZONE once (a TZID reused with other rules gets its own, e.g. `NAME (2)`)"
        }. Every file is written under a temporary name and renamed into place.
See docs/dav.md.

Examples:
  lifeboat export ${name} latest --dir /tmp/${name}
  lifeboat export ${name} latest --path dav://ann@127.0.0.1:5232/ --dir /tmp/${name}`,
      )
      .action(async (ref: string, flags: ExportDavFlags, cmd: Command) => {
        const c = ctx(cmd);
        const dir = flags.dir!;
        const repo = await c.openRepo();
        let stats: Awaited<ReturnType<typeof exportDav>>;
        try {
          const snap = await findSnapshot(repo, ref, { host: flags.host, paths: flags.path });
          stats = await exportDav(repo, snap, kind, dir, (m) => c.out.warn(m));
        } finally {
          await repo.close();
        }
        c.out.info(
          `Exported ${stats.items} items (${bytes(stats.bytes)}) from ${stats.collections} ${
            kind === "addressbook" ? "address books" : "calendars"
          } to ${dir}` +
            (stats.malformed ? `; ${stats.malformed} malformed items left out of the combined files` : ""),
        );
        c.out.emit({
          message_type: "summary",
          format: name,
          target: dir,
          collections: stats.collections,
          items: stats.items,
          bytes: stats.bytes,
          combined_files: stats.combined,
          malformed: stats.malformed,
          timezones_deduplicated: stats.timezonesDeduplicated,
          timezones_renamed: stats.timezonesRenamed,
        });
      });
  }
}
