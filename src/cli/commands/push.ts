import type { Command } from "commander";
import { LifeboatError } from "../../core/errors.js";
import { findSnapshot } from "../../repo/find-snapshot.js";
import { DavClient, parseDavUrl } from "../../sources/dav/client.js";
import { pushDav } from "../../sources/dav/push.js";
import { connectImap, imapSourceName, parseImapUrl } from "../../sources/imap/imap-source.js";
import { pushFolders, pushImap } from "../../sources/imap/push.js";
import type { CliContext } from "../shell/context.js";
import { bytes } from "../shell/format.js";
import { type ImapCredentialFlags, imapCredentials, sourcePassword } from "./pull.js";

interface PushFlags extends ImapCredentialFlags {
  host?: string;
  path: string[];
  folder: string[];
  excludeFolder: string[];
  insecure?: boolean;
  connections: string;
}

const collect = (v: string, prev: string[]) => [...prev, v];

export function registerPush(program: Command, ctx: (c: Command) => CliContext): void {
  program
    .command("push")
    .description(
      "restore a mail snapshot into an IMAP account, or a contacts/calendars snapshot into a CardDAV/CalDAV account, adding what is missing",
    )
    .argument(
      "<url>",
      "imap://USER@HOST[:PORT], imaps://USER@HOST[:PORT], dav://USER@HOST[:PORT]/[PATH] or davs://... (HTTPS)",
    )
    .argument(
      "<snapshot>",
      "snapshot id (or unique prefix) made by `lifeboat pull imap://...` or `pull dav://...`, or `latest`",
    )
    .option("--source-password-file <file>", "read the mail/DAV account password from a file")
    .option("--source-password-command <cmd>", "run a command that prints the mail/DAV account password")
    .option(
      "--oauth2-token-command <cmd>",
      "IMAP: log in with OAuth2 (OAUTHBEARER/XOAUTH2): a command that prints an access token (env LIFEBOAT_SOURCE_OAUTH2_COMMAND)",
    )
    .option("--folder <glob>", "IMAP: only folders matching this glob (repeatable; * and ?)", collect, [])
    .option("--exclude-folder <glob>", "IMAP: skip folders matching this glob (repeatable)", collect, [])
    .option("--insecure", "IMAP: accept a TLS certificate that does not verify (self-signed)")
    .option("--connections <n>", "IMAP: folders pushed at the same time, one connection each (1-16)", "4")
    .option("--host <name>", "with `latest`: newest snapshot of this host")
    .option(
      "--path <url>",
      "with `latest`: newest snapshot of this source, e.g. imaps://ann@old.example.org:993 or dav://ann@host:5232/",
      collect,
      [],
    )
    .addHelpText(
      "after",
      `
IMAP: every folder of the snapshot is created in the account when missing (with the server's
hierarchy delimiter, and subscribed), and every message is APPENDed with its flags and date,
unless the folder already holds it (same Message-ID; for a message without one, same size,
date and first KiB). Nothing in the account is changed or deleted; pushing the same snapshot
twice appends nothing the second time.
DAV: every address book and calendar of the snapshot goes into the account's collection of the same
name, made with MKCOL/MKCALENDAR when it does not exist. Items are written with PUT and
If-None-Match: *, so nothing in the account is ever overwritten; an item whose UID is already
in the collection is skipped, and pushing the same snapshot twice adds nothing the second time.
Password: LIFEBOAT_SOURCE_PASSWORD, --source-password-file or --source-password-command;
IMAP with OAuth2: --oauth2-token-command CMD or LIFEBOAT_SOURCE_OAUTH2_COMMAND.
See docs/mail.md and docs/dav.md.

Examples:
  lifeboat push imaps://ann@new.example.org latest --path imaps://ann@old.example.org:993
  lifeboat push imap://bob@127.0.0.1:1143 3f2a9c1b --folder 'Archive/*'
  lifeboat push davs://ann@cloud.example.org/remote.php/dav latest --path davs://ann@old.example.org:443/
  lifeboat push dav://bob@127.0.0.1:5232/ 3f2a9c1b --source-password-file ~/.bob-pw`,
    )
    .action(async (url: string, ref: string, flags: PushFlags, cmd: Command) => {
      const c = ctx(cmd);
      if (/^imaps?:/i.test(url)) return pushImapCommand(c, url, ref, flags);
      if (!/^davs?:/i.test(url))
        throw new LifeboatError(
          "USAGE",
          `push supports imap://, imaps://, dav:// and davs:// only, not ${JSON.stringify(url)}`,
          "write imap[s]://USER@HOST[:PORT] or dav[s]://USER@HOST[:PORT]/[PATH]",
        );
      if (flags.folder.length > 0 || flags.excludeFolder.length > 0)
        throw new LifeboatError("USAGE", "--folder and --exclude-folder apply to IMAP only");
      if (flags.oauth2TokenCommand || flags.insecure)
        throw new LifeboatError("USAGE", "--oauth2-token-command and --insecure apply to IMAP only");
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

/** `push imap://` / `imaps://`: a mail snapshot into an IMAP account (see docs/mail.md). */
async function pushImapCommand(c: CliContext, url: string, ref: string, flags: PushFlags): Promise<void> {
  const target = parseImapUrl(url);
  const connections = Number(flags.connections);
  if (!Number.isInteger(connections) || connections < 1 || connections > 16)
    throw new LifeboatError(
      "USAGE",
      `--connections must be a whole number from 1 to 16, not ${flags.connections}`,
    );
  const credentials = await imapCredentials(flags, url);
  const repo = await c.openRepo();
  try {
    const snap = await findSnapshot(repo, ref, { host: flags.host, paths: flags.path });
    // Read (and check) the snapshot before connecting: a wrong snapshot is refused without a login.
    const folders = await pushFolders(repo, snap, {
      folders: flags.folder,
      excludeFolders: flags.excludeFolder,
    });
    const connect = () => connectImap({ target, ...credentials, insecure: flags.insecure ?? false });
    const client = await connect();
    const started = Date.now();
    try {
      const tls = client.secureConnection || Boolean(client.tls);
      if (!tls && !["127.0.0.1", "::1", "localhost"].includes(target.host))
        c.out.warn(`the connection to ${target.host} is not encrypted (the server offered no STARTTLS)`);
      const s = await pushImap(repo, folders, client, {
        target,
        connections,
        connect,
        onWarning: (m) => c.out.warn(m),
        onFolder: (p, appended, skipped) =>
          c.out.debug(`${p}: ${appended} appended, ${skipped} already there`),
      });
      const ms = Date.now() - started;
      const secs = ms / 1000;
      c.out.info(
        `Folders: ${s.folders} (${s.foldersCreated} created); messages: ${s.messagesAppended} appended (${bytes(s.bytes)}), ${s.messagesSkipped} already there, in ${secs.toFixed(1)}s`,
      );
      c.out.emit({
        message_type: "summary",
        snapshot_id: snap.id,
        source: snap.paths[0],
        target: imapSourceName(target),
        folders: s.folders,
        folders_created: s.foldersCreated,
        messages_appended: s.messagesAppended,
        messages_skipped: s.messagesSkipped,
        bytes: s.bytes,
        tls,
        connections,
        duration_ms: ms,
        messages_per_second: secs > 0 ? Math.round(s.messagesAppended / secs) : null,
      });
    } finally {
      await client.logout().catch(() => client.close());
    }
  } finally {
    await repo.close();
  }
}
