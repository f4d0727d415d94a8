import { createHash } from "node:crypto";
import type { ImapFlow, ListResponse } from "imapflow";
import { LifeboatError } from "../../core/errors.js";
import type { Repository } from "../../repo/repository.js";
import type { Snapshot } from "../../repo/snapshot.js";
import type { FolderMessage, FolderState } from "./folder-state.js";
import { folderGlob, type ImapTarget, imapError, uidRanges } from "./imap-source.js";
import { type MailFolder, mailFolders, readNode } from "./mail-snapshot.js";

export interface ImapPushStats {
  /** Folders of the snapshot that were pushed. */
  folders: number;
  /** Folders that did not exist in the account and were created (and subscribed). */
  foldersCreated: number;
  /** Messages written with APPEND. */
  messagesAppended: number;
  /** Messages already in the target folder (same Message-ID, or same fallback key). */
  messagesSkipped: number;
  /** Bytes of the appended messages. */
  bytes: number;
}

export interface ImapPushOptions {
  target: ImapTarget;
  onWarning?: (message: string) => void;
  /** Called after every folder. */
  onFolder?: (path: string, appended: number, skipped: number) => void;
  /** Folders pushed at the same time, each on its own connection (default 1). */
  connections?: number;
  /** Opens another logged-in connection (needed for `connections` > 1). */
  connect?: () => Promise<ImapFlow>;
}

/** The flags APPEND may carry: the settable system flags and keywords (never `\Recent`). */
const SYSTEM_FLAGS = new Map(
  ["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"].map((f) => [f.toLowerCase(), f]),
);
export function appendFlags(flags: readonly string[]): string[] {
  const out: string[] = [];
  for (const f of flags) {
    if (f.startsWith("\\")) {
      const s = SYSTEM_FLAGS.get(f.toLowerCase());
      if (s) out.push(s);
    } else if (/^[^\s(){%*"\\\]\x00-\x1f\x7f]+$/.test(f)) out.push(f);
  }
  return out;
}

/**
 * The Message-ID of a message (or of a `HEADER.FIELDS (MESSAGE-ID)` answer): the header section
 * unfolded, the `<...>` part of the first `Message-ID:` field, else its trimmed value.
 * Undefined when there is none or it is empty.
 */
export function messageIdOf(raw: Buffer): string | undefined {
  let end = raw.indexOf("\r\n\r\n");
  const lf = raw.indexOf("\n\n");
  if (end < 0 || (lf >= 0 && lf < end)) end = lf;
  const head = raw
    .subarray(0, end < 0 ? Math.min(raw.length, 1 << 20) : end)
    .toString("latin1")
    .replace(/\r?\n[ \t]+/g, " ");
  const m = /^message-id[ \t]*:(.*)$/im.exec(head);
  if (!m) return undefined;
  const v = m[1]!.trim();
  const bracketed = /<[^<>]*>/.exec(v);
  const id = bracketed ? bracketed[0] : v;
  return id && id !== "<>" ? id : undefined;
}

/** The identity of a message without Message-ID: size, INTERNALDATE (seconds), first KiB. */
export function fallbackKey(size: number, date: Date | string | number, firstKiB: Buffer): string {
  const secs = Math.floor(new Date(date).getTime() / 1000);
  const hash = createHash("sha256").update(firstKiB.subarray(0, 1024)).digest("hex");
  return `raw:${size}:${secs}:${hash}`;
}

export const messageKey = (raw: Buffer, date: Date | string): string => {
  const id = messageIdOf(raw);
  return id ? `id:${id}` : fallbackKey(raw.length, date, raw);
};

/** A multiset of message keys: a folder may hold the same message twice, and both are pushed. */
class KeyCount {
  private readonly m = new Map<string, number>();
  add(k: string) {
    this.m.set(k, (this.m.get(k) ?? 0) + 1);
  }
  /** True (and one fewer) when the key is present. */
  take(k: string): boolean {
    const n = this.m.get(k) ?? 0;
    if (n === 0) return false;
    this.m.set(k, n - 1);
    return true;
  }
}

/**
 * Keys of the messages already in a folder: `UID FETCH 1:* (UID RFC822.SIZE INTERNALDATE
 * BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])`, and for messages without a Message-ID, their first KiB
 * (`BODY.PEEK[]<0.1024>`). The folder is opened with EXAMINE and closed again (CLOSE on a
 * read-only folder expunges nothing).
 */
async function existingKeys(client: ImapFlow, path: string): Promise<KeyCount> {
  const keys = new KeyCount();
  const lock = await client.getMailboxLock(path, { readOnly: true });
  try {
    if (!client.mailbox || client.mailbox.exists === 0) return keys;
    const all = await client.fetchAll(
      "1:*",
      { uid: true, size: true, internalDate: true, headers: ["MESSAGE-ID"] },
      { uid: true },
    );
    const noId = new Map<number, { size: number; date: Date | string | number }>();
    for (const m of all) {
      const id = m.headers ? messageIdOf(Buffer.concat([m.headers, Buffer.from("\r\n")])) : undefined;
      if (id) keys.add(`id:${id}`);
      else noId.set(m.uid, { size: m.size ?? 0, date: m.internalDate ?? 0 });
    }
    for (const range of uidRanges([...noId.keys()])) {
      for (const m of await client.fetchAll(
        range,
        { uid: true, source: { start: 0, maxLength: 1024 } },
        { uid: true },
      )) {
        const facts = noId.get(m.uid);
        if (facts && m.source) keys.add(fallbackKey(facts.size, facts.date, m.source));
      }
    }
  } finally {
    lock.release();
  }
  await client.mailboxClose().catch(() => {});
  return keys;
}

/** The account's personal namespace: prefix (e.g. `INBOX.`) and hierarchy delimiter. */
function serverNamespace(client: ImapFlow, listed: ListResponse[]): { prefix: string; delimiter: string } {
  const ns = client.namespace;
  const inbox = listed.find((f) => f.path.toUpperCase() === "INBOX");
  return {
    prefix: ns?.prefix ?? "",
    delimiter: ns?.delimiter || inbox?.delimiter || listed.find((f) => f.delimiter)?.delimiter || "",
  };
}

/**
 * The folder's name on the target server: the snapshot's hierarchy levels joined with the
 * server's delimiter, the personal namespace prefix added (unless it is INBOX or already there).
 * A level that contains the server's delimiter cannot be one level there: the delimiter in it
 * is replaced by `_` (reported through `onRename`).
 */
export function targetFolderPath(
  state: Pick<FolderState, "path" | "delimiter">,
  server: { prefix: string; delimiter: string },
  onRename?: (from: string, to: string) => void,
): string {
  const levels = state.delimiter ? state.path.split(state.delimiter) : [state.path];
  if (levels.length === 1 && levels[0]!.toUpperCase() === "INBOX") return "INBOX";
  const d = server.delimiter;
  const fixed = levels.map((l) => (d && l.includes(d) ? l.split(d).join("_") : l));
  let out = fixed.join(d || "/");
  if (fixed.some((l, i) => l !== levels[i])) onRename?.(state.path, out);
  if (fixed[0]!.toUpperCase() === "INBOX" && fixed.length > 1) out = `INBOX${d}${fixed.slice(1).join(d)}`;
  else if (server.prefix && !out.startsWith(server.prefix)) out = server.prefix + out;
  return out;
}

/** The folders of a mail snapshot that a push covers (refuses a snapshot that is not one). */
export async function pushFolders(
  repo: Repository,
  snapshot: Snapshot & { id?: string },
  globs: { folders?: string[]; excludeFolders?: string[] } = {},
): Promise<MailFolder[]> {
  const include = (globs.folders ?? []).map(folderGlob);
  const exclude = (globs.excludeFolders ?? []).map(folderGlob);
  const wanted = (s: FolderState) => {
    const names = [s.path, s.delimiter ? s.path.split(s.delimiter).join("/") : s.path];
    const hit = (res: RegExp[]) => res.some((re) => names.some((n) => re.test(n)));
    return (include.length === 0 || hit(include)) && !hit(exclude);
  };
  const out: MailFolder[] = [];
  for await (const f of mailFolders(repo, snapshot)) if (wanted(f.state)) out.push(f);
  return out;
}

/**
 * `push imap://... SNAPSHOT`: every folder of a mail snapshot into the account, created (and
 * subscribed) when missing; every message APPENDed with its flags (no `\Recent`) and
 * INTERNALDATE, unless the folder already holds it (same Message-ID, or for a message without
 * one the same size, INTERNALDATE and first KiB). Nothing on the server is changed or deleted,
 * and a second push of the same snapshot appends nothing.
 */
export async function pushImap(
  repo: Repository,
  folders: MailFolder[],
  client: ImapFlow,
  o: ImapPushOptions,
): Promise<ImapPushStats> {
  const stats: ImapPushStats = {
    folders: 0,
    foldersCreated: 0,
    messagesAppended: 0,
    messagesSkipped: 0,
    bytes: 0,
  };
  const t = o.target;
  let listed: ListResponse[];
  try {
    listed = await client.list();
  } catch (e) {
    throw imapError(e, t);
  }
  const server = serverNamespace(client, listed);
  const existing = new Map<string, ListResponse>();
  for (const f of listed) existing.set(f.path.toUpperCase() === "INBOX" ? "INBOX" : f.path, f);
  const targets = new Set<string>();

  // Folders first, one after the other on this connection (parents before children).
  const jobs: { f: MailFolder; path: string; empty: boolean }[] = [];
  for (const f of folders) {
    const path = targetFolderPath(f.state, server, (from, to) =>
      o.onWarning?.(`folder ${JSON.stringify(from)} becomes ${JSON.stringify(to)} on this server`),
    );
    if (targets.has(path)) o.onWarning?.(`two folders of the snapshot go into ${JSON.stringify(path)}`);
    targets.add(path);
    stats.folders++;
    const have = existing.get(path);
    let empty = false;
    if (!have || have.flags.has("\\Noselect") || have.flags.has("\\NonExistent")) {
      try {
        // imapflow's CREATE also sends SUBSCRIBE, so mail clients show the folder.
        const r = await client.mailboxCreate(path);
        if (r?.created !== false) stats.foldersCreated++;
        // A folder made just now holds nothing yet (unless it went into the same one twice).
        empty = !have && r?.created !== false && jobs.every((j) => j.path !== path);
      } catch (e) {
        throw imapError(e, t);
      }
    }
    jobs.push({ f, path, empty });
  }

  // Then the messages, up to `connections` folders at a time (each on its own connection;
  // APPENDs into one folder stay in UID order). Largest folders first.
  const queue = [...jobs].sort((a, b) => b.f.state.messages.length - a.f.state.messages.length);
  const n = Math.max(1, Math.min(o.connections ?? 1, queue.length));
  let failed: unknown;
  const worker = async (c: ImapFlow) => {
    for (let job = queue.shift(); job && failed === undefined; job = queue.shift()) {
      try {
        const keys = job.empty ? new KeyCount() : await existingKeys(c, job.path);
        const [appended, skipped] = await pushFolder(repo, c, job.f, job.path, keys, stats, t);
        o.onFolder?.(job.path, appended, skipped);
      } catch (e) {
        failed ??= imapError(e, t);
      }
    }
  };
  const extra: ImapFlow[] = [];
  try {
    const running = [worker(client)];
    for (let i = 1; i < n && o.connect; i++) {
      const c = await o.connect().catch((e: unknown) => {
        failed ??= e;
      });
      if (!c) break;
      extra.push(c);
      running.push(worker(c));
    }
    await Promise.all(running);
  } finally {
    await Promise.all(extra.map((c) => c.logout().catch(() => c.close())));
  }
  if (failed !== undefined) throw failed;
  return stats;
}

async function pushFolder(
  repo: Repository,
  client: ImapFlow,
  f: MailFolder,
  path: string,
  keys: KeyCount,
  stats: ImapPushStats,
  t: ImapTarget,
): Promise<[number, number]> {
  let appended = 0;
  let skipped = 0;
  const msgs = f.state.messages.filter((m) => f.messages.has(m.uid));
  // The next message is read from the repository while the current one is appended.
  const load = (m: FolderMessage | undefined) => {
    if (!m) return undefined;
    const node = f.messages.get(m.uid)!;
    const p = readNode(repo, node, `${f.dir}/${node.name}`);
    p.catch(() => {});
    return p;
  };
  let next = load(msgs[0]);
  for (let i = 0; i < msgs.length; i++) {
    const m = msgs[i]!;
    const data = await next!;
    next = load(msgs[i + 1]);
    if (keys.take(messageKey(data, m.date))) {
      skipped++;
      continue;
    }
    let r: Awaited<ReturnType<ImapFlow["append"]>>;
    try {
      r = await client.append(path, data, appendFlags(m.flags), new Date(m.date));
    } catch (e) {
      const err = e as { responseText?: string; message?: string };
      if (err && !("authenticationFailed" in err) && (err.responseText || /NO|BAD/.test(err.message ?? "")))
        throw new LifeboatError(
          "SOURCE_UNREADABLE",
          `APPEND of message ${m.uid} (${f.dir}) to ${JSON.stringify(path)} at ${t.host}:${t.port} failed: ${err.responseText || err.message}`,
          undefined,
          e,
        );
      throw imapError(e, t);
    }
    if (!r)
      throw new LifeboatError(
        "SOURCE_UNREADABLE",
        `APPEND to ${JSON.stringify(path)} failed (not logged in)`,
      );
    appended++;
    stats.bytes += data.length;
  }
  stats.messagesAppended += appended;
  stats.messagesSkipped += skipped;
  return [appended, skipped];
}
