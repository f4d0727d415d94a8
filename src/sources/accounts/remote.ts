import { createHash } from "node:crypto";
import type { ImapFlow } from "imapflow";
import { LifeboatError } from "../../core/errors.js";
import type { Repository } from "../../repo/repository.js";
import type { SnapshotWithId } from "../../repo/snapshot.js";
import type { TreeNode } from "../../repo/tree.js";
import type { VirtualSource } from "../../snapshot/source.js";
import { DavClient, type DavTarget, parseDavUrl } from "../dav/client.js";
import { DavSource } from "../dav/dav-source.js";
import { discover } from "../dav/discover.js";
import { pushDav } from "../dav/push.js";
import {
  connectImap,
  folderGlob,
  ImapSource,
  type ImapTarget,
  imapError,
  parseImapUrl,
} from "../imap/imap-source.js";
import { pushFolders, pushImap } from "../imap/push.js";
import { type AccountCredentials, accountPassword, accountToken, withId } from "./credentials.js";

/**
 * Mail and DAV accounts of a fleet: each account's backup is its IMAP mailbox (`imap`) or its
 * CardDAV/CalDAV collections (`dav`), pulled read-only through the same sources as `lifeboat
 * pull`. The fleet names the server once; each account logs in as itself, with a password from
 * the fleet's `passwordCommand` or `passwordFile` (never stored in a snapshot).
 */
export interface RemoteServer extends AccountCredentials {
  /** `imap://HOST[:PORT]`, `imaps://...`, `dav://HOST[:PORT]/[PATH]` or `davs://...`, no user. */
  url: string;
  /** The login name; `{id}` is the account id (default `{id}`). An account's `user` field wins. */
  user?: string | undefined;
  /** IMAP: only folders matching these globs / not these. */
  folders?: string[] | undefined;
  excludeFolders?: string[] | undefined;
  /** IMAP: accept a self-signed certificate. */
  insecure?: boolean | undefined;
}

/** One account's connection: its change fingerprint first, then (if changed) its source. */
export interface RemoteAccountSession {
  readonly kind: "imap" | "dav";
  /**
   * IMAP: UIDVALIDITY, UIDNEXT, MESSAGES and HIGHESTMODSEQ of every folder backed up; DAV: every
   * collection's sync-token and CTag. Undefined when the server gives no such marker for some
   * folder or collection (no CONDSTORE, no sync-token or CTag): then the account is always
   * backed up (the pull itself still fetches only what changed).
   */
  fingerprint(): Promise<string | undefined>;
  source(readParentFile: (node: TreeNode) => Promise<Buffer>): VirtualSource;
  close(): Promise<void>;
}

/** The server URL with the account's login name in it (the account's `url` field overrides). */
export function accountUrl(server: RemoteServer, id: string, fields: Record<string, string>): string {
  const raw = fields.url ?? server.url;
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new LifeboatError(
      "USAGE",
      `account ${id}: ${JSON.stringify(raw)} is not a server URL`,
      "give the fleet's server as imap://HOST[:PORT], imaps://..., dav://HOST[:PORT]/[PATH] or davs://...",
    );
  }
  if (u.password)
    throw new LifeboatError(
      "USAGE",
      `account ${id}: the server URL holds a password`,
      'give passwords with "passwordCommand" or "passwordFile", never in the URL',
    );
  u.username = encodeURIComponent(fields.user ?? withId(server.user ?? "{id}", id));
  return u.href;
}

/** An IMAP account's login: an OAuth2 access token (fresh for each connection) or a password. */
async function imapLogin(
  c: AccountCredentials,
  id: string,
  user: string,
): Promise<{ accessToken: string } | { password: string }> {
  return c.oauth2TokenCommand
    ? { accessToken: await accountToken(c, id, user) }
    : { password: await accountPassword(c, id) };
}

const digest = (lines: string[]) =>
  createHash("sha256").update(lines.sort().join("\n")).digest("hex").slice(0, 32);

export async function openRemoteAccount(
  kind: "imap" | "dav",
  server: RemoteServer,
  id: string,
  fields: Record<string, string>,
  onWarning?: (m: string) => void,
): Promise<RemoteAccountSession> {
  const url = accountUrl(server, id, fields);
  if (kind === "imap") {
    const target = parseImapUrl(url);
    const client = await connectImap({
      target,
      ...(await imapLogin(server, id, target.user)),
      insecure: server.insecure ?? false,
    });
    return imapSession(client, target, server, onWarning);
  }
  const target = parseDavUrl(url);
  const password = await accountPassword(server, id);
  return davSession(new DavClient(target, password, { readOnly: true }), target, onWarning);
}

function imapSession(
  client: ImapFlow,
  target: ImapTarget,
  server: RemoteServer,
  onWarning?: (m: string) => void,
): RemoteAccountSession {
  const include = (server.folders ?? []).map(folderGlob);
  const exclude = (server.excludeFolders ?? []).map(folderGlob);
  return {
    kind: "imap",
    async fingerprint() {
      let all: Awaited<ReturnType<ImapFlow["list"]>>;
      try {
        all = await client.list({
          statusQuery: { messages: true, uidNext: true, uidValidity: true, highestModseq: true },
        });
      } catch (e) {
        throw imapError(e, target);
      }
      const lines: string[] = [];
      for (const f of all) {
        if (f.flags.has("\\Noselect") || f.flags.has("\\NonExistent")) continue;
        const names = [f.path, f.delimiter ? f.path.split(f.delimiter).join("/") : f.path];
        const hit = (res: RegExp[]) => res.some((re) => names.some((n) => re.test(n)));
        if ((include.length > 0 && !hit(include)) || hit(exclude)) continue;
        const s = f.status;
        if (s?.highestModseq === undefined || s.uidValidity === undefined) return undefined;
        lines.push(`${f.path}\0${s.uidValidity}\0${s.uidNext}\0${s.messages}\0${s.highestModseq}`);
      }
      return `imap:${digest(lines)}`;
    },
    source: (readParentFile) =>
      new ImapSource(client, {
        target,
        folders: server.folders ?? [],
        excludeFolders: server.excludeFolders ?? [],
        readParentFile,
        ...(onWarning ? { onWarning } : {}),
      }),
    async close() {
      await client.logout().catch(() => client.close());
    },
  };
}

function davSession(
  client: DavClient,
  target: DavTarget,
  onWarning?: (m: string) => void,
): RemoteAccountSession {
  return {
    kind: "dav",
    async fingerprint() {
      const d = await discover(client);
      const lines: string[] = [];
      for (const c of d.collections) {
        if (c.syncToken === undefined && c.ctag === undefined) return undefined;
        lines.push(`${c.kind}\0${c.key}\0${c.syncToken ?? ""}\0${c.ctag ?? ""}`);
      }
      return `dav:${digest(lines)}`;
    },
    source: (readParentFile) =>
      new DavSource(client, { target, readParentFile, ...(onWarning ? { onWarning } : {}) }),
    async close() {},
  };
}

export interface RemotePushResult {
  /** Messages appended / items put. */
  written: number;
  /** Already in the account (same Message-ID or UID): left as they are. */
  skipped: number;
  where: string;
}

/**
 * Puts a mail or DAV account's snapshot back into the account it was taken from (the server and
 * user recorded as the snapshot's path), logging in with the fleet's credentials: every message
 * or item missing from the account is added, nothing there is changed or deleted (see `push`).
 */
export async function pushRemoteAccount(
  repo: Repository,
  snap: SnapshotWithId,
  server: AccountCredentials & { insecure?: boolean | undefined },
  id: string,
  onWarning?: (m: string) => void,
): Promise<RemotePushResult> {
  const from = snap.paths[0] ?? "";
  if (snap.source === "imap") {
    const target = parseImapUrl(from);
    const folders = await pushFolders(repo, snap);
    const client = await connectImap({
      target,
      ...(await imapLogin(server, id, target.user)),
      insecure: server.insecure ?? false,
    });
    try {
      const s = await pushImap(repo, folders, client, { target, ...(onWarning ? { onWarning } : {}) });
      return { written: s.messagesAppended, skipped: s.messagesSkipped, where: from };
    } finally {
      await client.logout().catch(() => client.close());
    }
  }
  const target = parseDavUrl(from);
  const password = await accountPassword(server, id);
  const s = await pushDav(repo, snap, new DavClient(target, password, { readOnly: false }), onWarning);
  return { written: s.itemsPut, skipped: s.itemsSkipped + s.itemsConflicting, where: from };
}
