import type { Command } from "commander";
import { LifeboatError } from "../../core/errors.js";
import { findSnapshot } from "../../repo/find-snapshot.js";
import { DavClient, parseDavUrl } from "../../sources/dav/client.js";
import { pushDav } from "../../sources/dav/push.js";
import type { CliContext } from "../context.js";
import { bytes } from "../format.js";
import { type SourcePasswordFlags, sourcePassword } from "./pull.js";

interface PushFlags extends SourcePasswordFlags {
  host?: string;
  path: string[];
}

const collect = (v: string, prev: string[]) => [...prev, v];

export function registerPush(program: Command, ctx: (c: Command) => CliContext): void {
  program
    .command("push")
    .description(
      "restore a contacts/calendars snapshot into a CardDAV/CalDAV account, adding what is missing",
    )
    .argument("<url>", "dav://USER@HOST[:PORT]/[PATH] or davs://USER@HOST[:PORT]/[PATH] (HTTPS)")
    .argument("<snapshot>", "snapshot id (or unique prefix) made by `lifeboat pull dav://...`, or `latest`")
    .option("--source-password-file <file>", "read the DAV account password from a file")
    .option("--source-password-command <cmd>", "run a command that prints the DAV account password")
    .option("--host <name>", "with `latest`: newest snapshot of this host")
    .option(
      "--path <url>",
      "with `latest`: newest snapshot of this source, e.g. dav://ann@host:5232/",
      collect,
      [],
    )
    .addHelpText(
      "after",
      `
Every address book and calendar of the snapshot goes into the account's collection of the same
name, made with MKCOL/MKCALENDAR when it does not exist. Items are written with PUT and
If-None-Match: *, so nothing in the account is ever overwritten; an item whose UID is already
in the collection is skipped, and pushing the same snapshot twice adds nothing the second time.
Password: LIFEBOAT_SOURCE_PASSWORD, --source-password-file or --source-password-command.
See docs/dav.md.

Examples:
  lifeboat push davs://ann@cloud.example.org/remote.php/dav latest --path davs://ann@old.example.org:443/
  lifeboat push dav://bob@127.0.0.1:5232/ 3f2a9c1b --source-password-file ~/.bob-pw`,
    )
    .action(async (url: string, ref: string, flags: PushFlags, cmd: Command) => {
      const c = ctx(cmd);
      if (!/^davs?:/i.test(url))
        throw new LifeboatError(
          "USAGE",
          `push supports dav:// and davs:// only, not ${JSON.stringify(url)}`,
          "write dav://USER@HOST[:PORT]/[PATH] or davs://USER@HOST[:PORT]/[PATH]",
        );
      const target = parseDavUrl(url);
      const password = await sourcePassword(flags, url, "DAV account");
      const repo = await c.openRepo();
      const started = Date.now();
      try {
        const snap = await findSnapshot(repo, ref, { host: flags.host, paths: flags.path });
        const client = new DavClient(target, password, { readOnly: false });
        const s = await pushDav(repo, snap, client, (m) => c.out.warn(m));
        const ms = Date.now() - started;
        c.out.info(
          `Collections: ${s.collections} (${s.collectionsCreated} created); items: ${s.itemsPut} written (${bytes(s.bytes)}), ${s.itemsSkipped} already there (same UID)` +
            (s.itemsConflicting
              ? `, ${s.itemsConflicting} not written (the name is taken by another item)`
              : ""),
        );
        c.out.emit({
          message_type: "summary",
          snapshot_id: snap.id,
          target: url,
          collections: s.collections,
          collections_created: s.collectionsCreated,
          items_put: s.itemsPut,
          items_skipped: s.itemsSkipped,
          items_conflicting: s.itemsConflicting,
          bytes: s.bytes,
          requests: Object.fromEntries(client.methods),
          duration_ms: ms,
        });
      } finally {
        await repo.close();
      }
    });
}
