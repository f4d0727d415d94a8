import { execFile } from "node:child_process";
import { promises as fs } from "node:fs";
import { promisify } from "node:util";
import type { Command } from "commander";
import { LifeboatError } from "../../core/errors.js";
import type { Repository } from "../../repo/repository.js";
import { takeSnapshot } from "../../snapshot/take.js";
import { DavClient, parseDavUrl } from "../../sources/dav/client.js";
import { DavSource } from "../../sources/dav/dav-source.js";
import { connectImap, ImapSource, parseImapUrl } from "../../sources/imap/imap-source.js";
import { readNode } from "../../sources/imap/mail-snapshot.js";
import type { CliContext } from "../shell/context.js";
import { bytes } from "../shell/format.js";

interface PullFlags {
  folder: string[];
  excludeFolder: string[];
  sourcePasswordFile?: string;
  sourcePasswordCommand?: string;
  insecure?: boolean;
  oauth2TokenCommand?: string;
  tag: string[];
  host?: string;
}

const collect = (v: string, prev: string[]) => [...prev, v];
const run = promisify(execFile);

/** Options naming the account password (pull and push). */
export interface SourcePasswordFlags {
  sourcePasswordFile?: string;
  sourcePasswordCommand?: string;
}

/** The account password: --source-password-command, --source-password-file, LIFEBOAT_SOURCE_PASSWORD. */
export async function sourcePassword(
  flags: SourcePasswordFlags,
  url: string,
  what = "mail",
): Promise<string> {
  if (flags.sourcePasswordCommand) {
    let out: string;
    try {
      out = (await run("/bin/sh", ["-c", flags.sourcePasswordCommand], { maxBuffer: 1 << 20 })).stdout;
    } catch (e) {
      throw new LifeboatError(
        "NO_PASSWORD",
        `--source-password-command failed: ${(e as Error).message.split("\n")[0]}`,
        "run the command by hand to see why",
      );
    }
    const pw = out.replace(/\r?\n$/, "");
    if (pw) return pw;
    throw new LifeboatError("NO_PASSWORD", "--source-password-command printed nothing");
  }
  if (flags.sourcePasswordFile) {
    let text: string;
    try {
      text = await fs.readFile(flags.sourcePasswordFile, "utf8");
    } catch (e) {
      throw new LifeboatError(
        "NO_PASSWORD",
        `cannot read --source-password-file ${flags.sourcePasswordFile}: ${(e as Error).message}`,
        "check the path and its permissions",
      );
    }
    const pw = text.replace(/\r?\n$/, "");
    if (pw) return pw;
    throw new LifeboatError("NO_PASSWORD", `the password file ${flags.sourcePasswordFile} is empty`);
  }
  const env = process.env.LIFEBOAT_SOURCE_PASSWORD;
  if (env) return env;
  throw new LifeboatError(
    "NO_PASSWORD",
    `no password for ${url}`,
    `give the ${what} password with LIFEBOAT_SOURCE_PASSWORD, --source-password-file FILE or --source-password-command CMD`,
  );
}

/** Options naming the IMAP credentials: a password (see above) or an OAuth2 token command. */
export interface ImapCredentialFlags extends SourcePasswordFlags {
  oauth2TokenCommand?: string;
}

/** What `connectImap` logs in with. */
export type ImapCredentials = { password: string } | { accessToken: string };

/**
 * Runs an OAuth2 token command (`/bin/sh -c CMD`) and returns the access token it prints (the
 * first non-empty line, trimmed). Any failure is one line naming where the command came from.
 */
export async function oauth2Token(cmd: string, from: string): Promise<string> {
  let out: string;
  try {
    out = (await run("/bin/sh", ["-c", cmd], { maxBuffer: 1 << 20, timeout: 120_000 })).stdout;
  } catch (e) {
    const err = e as { code?: number | string; signal?: string; stderr?: string; killed?: boolean };
    const why = err.killed
      ? "it did not finish within 120 s"
      : typeof err.code === "number"
        ? `exit status ${err.code}`
        : err.signal
          ? `killed by ${err.signal}`
          : String(err.code ?? (e as Error).message);
    const said = (err.stderr ?? "").split("\n").find((l) => l.trim());
    throw new LifeboatError(
      "NO_PASSWORD",
      `${from} failed (${why})${said ? `: ${said.trim().slice(0, 300)}` : ""}`,
      "run the command by hand to see why",
    );
  }
  const token = out
    .split(/\r?\n/)
    .find((l) => l.trim())
    ?.trim();
  if (!token)
    throw new LifeboatError("NO_PASSWORD", `${from} printed nothing`, "it must print an access token");
  if (/[\x00-\x1f\x7f]/.test(token))
    throw new LifeboatError("NO_PASSWORD", `${from} printed control characters, not an access token`);
  return token;
}

/**
 * IMAP credentials: `--oauth2-token-command` (not together with a password option), else the
 * password options, else `LIFEBOAT_SOURCE_OAUTH2_COMMAND`, else `LIFEBOAT_SOURCE_PASSWORD`.
 */
export async function imapCredentials(flags: ImapCredentialFlags, url: string): Promise<ImapCredentials> {
  if (flags.oauth2TokenCommand) {
    if (flags.sourcePasswordCommand || flags.sourcePasswordFile)
      throw new LifeboatError(
        "USAGE",
        "--oauth2-token-command cannot be combined with --source-password-file or --source-password-command",
      );
    return { accessToken: await oauth2Token(flags.oauth2TokenCommand, "--oauth2-token-command") };
  }
  const envCmd = process.env.LIFEBOAT_SOURCE_OAUTH2_COMMAND;
  if (envCmd && !flags.sourcePasswordCommand && !flags.sourcePasswordFile)
    return { accessToken: await oauth2Token(envCmd, "LIFEBOAT_SOURCE_OAUTH2_COMMAND") };
  return { password: await sourcePassword(flags, url) };
}

const isDavUrl = (url: string) => /^davs?:/i.test(url);

export function registerPull(program: Command, ctx: (c: Command) => CliContext): void {
  program
    .command("pull")
    .description(
      "back up a remote source (IMAP mailboxes, CardDAV/CalDAV contacts and calendars) into a new snapshot, read-only on the server",
    )
    .argument(
      "<url>",
      "imap://USER@HOST[:PORT] (STARTTLS when offered), imaps://USER@HOST[:PORT], dav://USER@HOST[:PORT]/[PATH] or davs://... (HTTPS)",
    )
    .option("--folder <glob>", "IMAP: only folders matching this glob (repeatable; * and ?)", collect, [])
    .option("--exclude-folder <glob>", "IMAP: skip folders matching this glob (repeatable)", collect, [])
    .option("--source-password-file <file>", "read the mail/DAV account password from a file")
    .option("--source-password-command <cmd>", "run a command that prints the mail/DAV account password")
    .option("--insecure", "IMAP: accept a TLS certificate that does not verify (self-signed)")
    .option(
      "--oauth2-token-command <cmd>",
      "IMAP: log in with OAuth2 (OAUTHBEARER/XOAUTH2): a command that prints an access token (env LIFEBOAT_SOURCE_OAUTH2_COMMAND)",
    )
    .option("--tag <tag>", "add a tag to the snapshot (repeatable)", collect, [])
    .option("--host <name>", "host name recorded in the snapshot (default: this machine's)")
    .addHelpText(
      "after",
      `
The server is never changed: folders are opened with EXAMINE, messages fetched with
BODY.PEEK[] (no \\Seen), and nothing is stored, expunged or flagged. Each folder becomes a
directory with one <uid>.eml per message and a .folder.json with UIDVALIDITY, HIGHESTMODSEQ,
flags and dates. The next pull of the same URL downloads only messages that are new.
For dav:// and davs:// every address book and calendar the account can find (via
/.well-known/carddav, /.well-known/caldav and the principal's home sets) is saved under
addressbooks/<name>/*.vcf and calendars/<name>/*.ics with a .collection.json each; the next
pull asks only for changes (sync-collection, else ETags) and fetches only changed items.
Only GET, PROPFIND and REPORT are sent.
Password: LIFEBOAT_SOURCE_PASSWORD, --source-password-file or --source-password-command;
for IMAP with OAuth2 (Gmail, Microsoft 365): --oauth2-token-command CMD or
LIFEBOAT_SOURCE_OAUTH2_COMMAND, a command that prints an access token.
See docs/mail.md and docs/dav.md.

Examples:
  LIFEBOAT_SOURCE_PASSWORD=... lifeboat -r /srv/backup pull imaps://ann@mail.example.org
  lifeboat pull imap://ann@127.0.0.1:1143 --folder 'INBOX*' --exclude-folder Trash
  lifeboat export mail latest --maildir ~/Maildir-restored
  lifeboat pull davs://ann@cloud.example.org/remote.php/dav --source-password-file ~/.dav-pw
  lifeboat export calendars latest --dir /tmp/calendars`,
    )
    .action(async (url: string, flags: PullFlags, cmd: Command) => {
      const c = ctx(cmd);
      if (isDavUrl(url)) return pullDav(c, url, flags);
      const target = parseImapUrl(url);
      const credentials = await imapCredentials(flags, url);
      const repo = await c.openRepo();
      try {
        const client = await connectImap({ target, ...credentials, insecure: flags.insecure ?? false });
        try {
          const source = new ImapSource(client, {
            target,
            folders: flags.folder,
            excludeFolders: flags.excludeFolder,
            readParentFile: (node) => readNode(repo, node, node.name),
            onWarning: (m) => c.out.warn(m),
          });
          if (!source.stats.tls && !["127.0.0.1", "::1", "localhost"].includes(target.host))
            c.out.warn(`the connection to ${target.host} is not encrypted (the server offered no STARTTLS)`);
          const r = await takeSnapshot(repo, source, {
            tags: flags.tag,
            ...(flags.host ? { host: flags.host } : {}),
            onProgress: c.out.progress("pull"),
          });
          const s = r.summary;
          const m = source.stats;
          const secs = s.durationMs / 1000;
          c.out.info(
            `Folders: ${m.folders} (${m.foldersNew} new, ${m.foldersRefetched} fetched again after a UIDVALIDITY change, ${m.foldersRemoved} deleted or renamed on the server)`,
          );
          c.out.info(
            `Messages: ${m.messages} in the snapshot; ${m.messagesFetched} downloaded (${bytes(m.bytesFetched)}), ${m.messagesReused} unchanged, ${m.messagesRemoved} gone from the server, ${m.flagsChanged} with changed flags`,
          );
          c.out.info(
            `Added to the repository: ${bytes(s.bytesAdded)} (${bytes(s.bytesStored)} stored) in ${secs.toFixed(1)}s`,
          );
          c.out.info(`snapshot ${r.snapshotId.slice(0, 8)} saved`);
          c.out.emit({
            message_type: "summary",
            snapshot_id: r.snapshotId,
            source: source.name,
            folders: m.folders,
            folders_new: m.foldersNew,
            folders_refetched: m.foldersRefetched,
            folders_removed: m.foldersRemoved,
            messages: m.messages,
            messages_fetched: m.messagesFetched,
            messages_reused: m.messagesReused,
            messages_removed: m.messagesRemoved,
            flags_changed: m.flagsChanged,
            bytes_fetched: m.bytesFetched,
            condstore_folders: m.condstoreFolders,
            tls: m.tls,
            data_blobs_added: s.blobsAdded,
            data_added: s.bytesAdded,
            data_stored: s.bytesStored,
            duration_ms: s.durationMs,
            messages_per_second: secs > 0 ? Math.round(m.messagesFetched / secs) : null,
          });
        } finally {
          await client.logout().catch(() => client.close());
        }
      } finally {
        await repo.close();
      }
    });
}

/** `pull dav://` / `davs://`: contacts and calendars (see docs/dav.md). */
async function pullDav(c: CliContext, url: string, flags: PullFlags): Promise<void> {
  const target = parseDavUrl(url);
  if (flags.folder.length > 0 || flags.excludeFolder.length > 0)
    throw new LifeboatError("USAGE", "--folder and --exclude-folder apply to IMAP only");
  if (flags.oauth2TokenCommand)
    throw new LifeboatError("USAGE", "--oauth2-token-command applies to IMAP only");
  if (flags.insecure)
    throw new LifeboatError(
      "USAGE",
      "--insecure is not supported for davs://",
      "trust the server's certificate with NODE_EXTRA_CA_CERTS=/path/to/ca.pem instead",
    );
  const password = await sourcePassword(flags, url, "DAV account");
  const repo: Repository = await c.openRepo();
  try {
    const client = new DavClient(target, password, { readOnly: true });
    const source = new DavSource(client, {
      target,
      readParentFile: (node) => readNode(repo, node, node.name),
      onWarning: (m) => c.out.warn(m),
    });
    if (!target.secure && !["127.0.0.1", "::1", "localhost"].includes(target.host))
      c.out.warn(`the connection to ${target.host} is not encrypted (dav://); the password is sent in clear`);
    const r = await takeSnapshot(repo, source, {
      tags: flags.tag,
      ...(flags.host ? { host: flags.host } : {}),
      onProgress: c.out.progress("pull"),
    });
    const s = r.summary;
    const m = source.stats;
    const secs = s.durationMs / 1000;
    c.out.info(
      `Collections: ${m.addressbooks} address books, ${m.calendars} calendars (${m.collectionsNew} new, ${m.collectionsUnchanged} unchanged, ${m.collectionsSynced} by sync-collection)`,
    );
    c.out.info(
      `Items: ${m.items} in the snapshot; ${m.itemsFetched} downloaded (${bytes(m.bytesFetched)}), ${m.itemsReused} unchanged, ${m.itemsRemoved} gone from the server`,
    );
    c.out.info(
      `Added to the repository: ${bytes(s.bytesAdded)} (${bytes(s.bytesStored)} stored) in ${secs.toFixed(1)}s, ${client.requests} requests`,
    );
    c.out.info(`snapshot ${r.snapshotId.slice(0, 8)} saved`);
    c.out.emit({
      message_type: "summary",
      snapshot_id: r.snapshotId,
      source: source.name,
      collections: m.collections,
      addressbooks: m.addressbooks,
      calendars: m.calendars,
      collections_new: m.collectionsNew,
      collections_unchanged: m.collectionsUnchanged,
      collections_synced: m.collectionsSynced,
      collections_listed: m.collectionsListed,
      items: m.items,
      items_fetched: m.itemsFetched,
      items_reused: m.itemsReused,
      items_removed: m.itemsRemoved,
      items_vanished: m.itemsVanished,
      bytes_fetched: m.bytesFetched,
      requests: Object.fromEntries(client.methods),
      tls: m.tls,
      data_blobs_added: s.blobsAdded,
      data_added: s.bytesAdded,
      data_stored: s.bytesStored,
      duration_ms: s.durationMs,
      items_per_second: secs > 0 ? Math.round(m.itemsFetched / secs) : null,
    });
  } finally {
    await repo.close();
  }
}
