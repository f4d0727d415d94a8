import type { FetchMessageObject, ImapFlow, ListResponse } from "imapflow";
import { LifeboatError, UNREACHABLE_CODES } from "../../core/errors.js";
import type { SnapshotWithId } from "../../repo/snapshot.js";
import type { TreeNode } from "../../repo/tree.js";
import type { ParentLookup, VirtualEntry, VirtualSource } from "../../snapshot/source.js";
import {
  boundedCommand,
  IMAP_COMMAND_SLACK,
  IMAP_LIST_BUDGET,
  IMAP_MAX_LINE,
  IMAP_MAX_LITERAL,
  IMAP_MAX_RESPONSE,
  perMessageBudget,
  recordErrors,
  sourceBudget,
} from "./command-bounds.js";
import {
  decodeFolderState,
  encodeFolderState,
  FOLDER_STATE_FILE,
  type FolderMessage,
  type FolderState,
  folderDir,
  messageFileName,
} from "./folder-state.js";

/** Where to pull from: `imap://USER@HOST[:PORT]` (STARTTLS when offered) or `imaps://` (TLS). */
export interface ImapTarget {
  secure: boolean;
  user: string;
  host: string;
  port: number;
}

export function parseImapUrl(url: string): ImapTarget {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new LifeboatError(
      "USAGE",
      `${JSON.stringify(url)} is not an IMAP URL`,
      "write imap://USER@HOST[:PORT] or imaps://USER@HOST[:PORT]",
    );
  }
  if (u.protocol !== "imap:" && u.protocol !== "imaps:")
    throw new LifeboatError(
      "USAGE",
      `unsupported source ${JSON.stringify(url)}: only imap:// and imaps:// can be pulled`,
      "write imap://USER@HOST[:PORT] or imaps://USER@HOST[:PORT]",
    );
  if (!u.username || !u.hostname)
    throw new LifeboatError("USAGE", `${url}: a user and a host are needed`, "write imap://USER@HOST[:PORT]");
  if (u.password)
    throw new LifeboatError(
      "USAGE",
      "do not put the password into the URL (it would be recorded and visible in the process list)",
      "use LIFEBOAT_SOURCE_PASSWORD, --source-password-file or --source-password-command",
    );
  if (u.pathname && u.pathname !== "/")
    throw new LifeboatError("USAGE", `${url}: a path is not supported`, "select folders with --folder GLOB");
  const secure = u.protocol === "imaps:";
  return {
    secure,
    user: decodeURIComponent(u.username),
    host: u.hostname.replace(/^\[(.*)\]$/, "$1"),
    port: u.port ? Number(u.port) : secure ? 993 : 143,
  };
}

/** The stable name recorded as the snapshot's path; the next pull finds its parent by it. */
export function imapSourceName(t: ImapTarget): string {
  const host = t.host.includes(":") ? `[${t.host}]` : t.host;
  return `${t.secure ? "imaps" : "imap"}://${encodeURIComponent(t.user)}@${host}:${t.port}`;
}

export interface ImapConnectOptions {
  target: ImapTarget;
  /** LOGIN / AUTHENTICATE PLAIN with this password, unless `accessToken` is given. */
  password?: string;
  /** An OAuth2 access token: AUTHENTICATE OAUTHBEARER, else XOAUTH2 (whichever the server offers). */
  accessToken?: string;
  /** Accept certificates that do not verify (self-signed). */
  insecure?: boolean;
  timeoutMs?: number;
}

const NETWORK_CODES = new Set([
  ...UNREACHABLE_CODES,
  "ETIMEOUT",
  "NoConnection",
  "ConnectionTimeout",
  "GreetingTimeout",
  "UpgradeTimeout",
]);

/** Turns what imapflow and the socket throw into the documented errors. */
export function imapError(
  e: unknown,
  t: ImapTarget,
  auth: "password" | "oauth2" = "password",
): LifeboatError {
  if (e instanceof LifeboatError) return e;
  const err = e as {
    code?: string;
    message?: string;
    authenticationFailed?: boolean;
    responseText?: string;
    oauthError?: { status?: string };
  };
  const where = `${t.host}:${t.port}`;
  if (auth === "oauth2" && err?.authenticationFailed)
    return new LifeboatError(
      "AUTH_FAILED",
      `IMAP login as ${t.user} at ${where} failed: the server refused the OAuth2 access token${err.oauthError?.status ? ` (${err.oauthError.status})` : ""}`,
      "check that the token command (--oauth2-token-command or LIFEBOAT_SOURCE_OAUTH2_COMMAND; a fleet's oauth2TokenCommand) prints a fresh access token for this user",
      e,
    );
  if (auth === "oauth2" && /Unsupported authentication mechanism/i.test(err?.message ?? ""))
    return new LifeboatError(
      "AUTH_FAILED",
      `IMAP server ${where} offers neither AUTH=OAUTHBEARER nor AUTH=XOAUTH2: cannot log in with an OAuth2 token`,
      "use a password (LIFEBOAT_SOURCE_PASSWORD, --source-password-file or --source-password-command; in a fleet, its password source) instead",
      e,
    );
  if (err?.authenticationFailed)
    return new LifeboatError(
      "AUTH_FAILED",
      `IMAP login as ${t.user} at ${where} failed: wrong user name or password`,
      "check the password given by LIFEBOAT_SOURCE_PASSWORD, --source-password-file or --source-password-command",
      e,
    );
  const code = err?.code ?? "";
  if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ALTNAME/.test(code))
    return new LifeboatError(
      "UNREACHABLE",
      `the TLS certificate of ${where} is not trusted (${code})`,
      "use --insecure only if you trust this server's self-signed certificate",
      e,
    );
  if (NETWORK_CODES.has(code) || /connection|socket|timeout|closed/i.test(err?.message ?? ""))
    return new LifeboatError(
      "UNREACHABLE",
      `cannot reach the IMAP server ${where}: ${code || err?.message || "connection failed"}`,
      "check the host, the port and the network; imaps:// uses port 993, imap:// 143",
      e,
    );
  return new LifeboatError(
    "SOURCE_UNREADABLE",
    `IMAP server ${where}: ${err?.responseText || err?.message || String(e)}`,
    undefined,
    e,
  );
}

export async function connectImap(o: ImapConnectOptions): Promise<ImapFlow> {
  const t = o.target;
  // Loaded on first use (~0.13 s), not by every command that imports this module.
  const { ImapFlow } = await import("imapflow");
  const client = new ImapFlow({
    host: t.host,
    port: t.port,
    secure: t.secure,
    auth:
      o.accessToken !== undefined
        ? { user: t.user, accessToken: o.accessToken }
        : { user: t.user, pass: o.password ?? "" },
    logger: false,
    disableAutoIdle: true,
    tls: { rejectUnauthorized: !o.insecure },
    connectionTimeout: o.timeoutMs ?? 30_000,
    greetingTimeout: o.timeoutMs ?? 30_000,
    // What imapflow may buffer of one answer (command-bounds.ts); its defaults are 1-2 GiB.
    maxLineLength: IMAP_MAX_LINE,
    maxLiteralSize: IMAP_MAX_LITERAL,
    maxResponseSize: IMAP_MAX_RESPONSE,
  });
  // A dropped connection surfaces as a rejected command; its cause is kept for the message.
  recordErrors(client);
  // imapflow times out a silent server, not one that keeps talking without ever answering the
  // command (garbage after the greeting): the whole login gets one deadline of its own.
  const limit = o.timeoutMs ?? 30_000;
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new LifeboatError(
            "UNREACHABLE",
            `IMAP server ${t.host}:${t.port} did not complete the login within ${limit / 1000} s`,
            "check that the address is an IMAP server; run the pull again",
          ),
        ),
      limit,
    );
  });
  try {
    await Promise.race([client.connect(), deadline]);
  } catch (e) {
    client.close();
    throw imapError(e, t, o.accessToken !== undefined ? "oauth2" : "password");
  } finally {
    clearTimeout(timer);
  }
  return client;
}

/** Shell-style glob on folder names: `*` any run of characters, `?` one character. */
export function folderGlob(pattern: string): RegExp {
  const re = pattern.replace(/[.+^${}()|[\]\\*?]/g, (c) => (c === "*" ? ".*" : c === "?" ? "." : `\\${c}`));
  return new RegExp(`^${re}$`, "u");
}

export interface ImapPullStats {
  folders: number;
  foldersNew: number;
  /** Folders whose UIDVALIDITY changed since the parent snapshot: fetched again in full. */
  foldersRefetched: number;
  messages: number;
  /** Messages whose bytes were downloaded in this pull. */
  messagesFetched: number;
  /** Messages taken over from the parent snapshot without downloading them. */
  messagesReused: number;
  /**
   * Messages in the parent snapshot that are gone from the server (absent from this snapshot),
   * including every message of a folder in `foldersRemoved`.
   */
  messagesRemoved: number;
  /**
   * Folders in the parent snapshot that the server no longer lists as selectable: deleted, or
   * renamed (the new name counts in `foldersNew`). Folders only left out by --folder or
   * --exclude-folder are still on the server and not counted.
   */
  foldersRemoved: number;
  /** Messages whose flags differ from the parent snapshot. */
  flagsChanged: number;
  bytesFetched: number;
  /** Folders whose flags were refreshed with CONDSTORE CHANGEDSINCE. */
  condstoreFolders: number;
  tls: boolean;
}

export interface ImapSourceOptions {
  target: ImapTarget;
  /** Only folders matching one of these globs (all when empty). */
  folders?: string[];
  excludeFolders?: string[];
  /** Reads a file of the parent snapshot (for its `.folder.json`). */
  readParentFile: (node: TreeNode) => Promise<Buffer>;
  /** Bytes of message source per FETCH (default 8 MiB; a larger message goes alone). */
  batchBytes?: number;
  onWarning?: (message: string) => void;
}

const SKIP_FLAGS = new Set(["\\recent"]);
/** A folder that can hold messages (not a mere level of the hierarchy, not gone). */
const selectable = (f: ListResponse) => !f.flags.has("\\Noselect") && !f.flags.has("\\NonExistent");
const cleanFlags = (f: Set<string> | undefined) =>
  [...(f ?? [])].filter((x) => !SKIP_FLAGS.has(x.toLowerCase())).sort();
const sameFlags = (a: readonly string[], b: readonly string[]) =>
  a.length === b.length && a.every((x, i) => x === b[i]);
const isoDate = (d: Date | string | undefined) => {
  const t = d === undefined ? Number.NaN : new Date(d).getTime();
  return new Date(Number.isNaN(t) ? 0 : t).toISOString();
};

/** Compact UID set for a command: `1:5,7,9:12`, split so no command line grows too long. */
export function uidRanges(uids: readonly number[], maxParts = 400): string[] {
  const sorted = [...uids].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(i === j ? `${sorted[i]}` : `${sorted[i]}:${sorted[j]}`);
    i = j + 1;
  }
  const out: string[] = [];
  for (let i = 0; i < parts.length; i += maxParts) out.push(parts.slice(i, i + maxParts).join(","));
  return out;
}

/**
 * An IMAP account as a virtual source. Strictly read-only on the server: folders are opened
 * with EXAMINE, message bodies are fetched with BODY.PEEK[] (imapflow's `source`), and no
 * command that stores flags, expunges, appends, copies or creates is ever sent.
 */
export class ImapSource implements VirtualSource {
  readonly name: string;
  readonly type = "imap";
  readonly stats: ImapPullStats;
  private readonly client: ImapFlow;
  private readonly o: ImapSourceOptions;
  private readonly include: RegExp[];
  private readonly exclude: RegExp[];
  private readonly uidValidities: Record<string, string> = {};

  constructor(client: ImapFlow, o: ImapSourceOptions) {
    this.client = client;
    this.o = o;
    this.name = imapSourceName(o.target);
    this.include = (o.folders ?? []).map(folderGlob);
    this.exclude = (o.excludeFolders ?? []).map(folderGlob);
    this.stats = {
      folders: 0,
      foldersNew: 0,
      foldersRefetched: 0,
      messages: 0,
      messagesFetched: 0,
      messagesReused: 0,
      messagesRemoved: 0,
      foldersRemoved: 0,
      flagsChanged: 0,
      bytesFetched: 0,
      condstoreFolders: 0,
      tls: client.secureConnection || Boolean(client.tls),
    };
  }

  private wanted(f: ListResponse): boolean {
    if (!selectable(f)) return false;
    const names = [f.path, f.delimiter ? f.path.split(f.delimiter).join("/") : f.path];
    const hit = (res: RegExp[]) => res.some((re) => names.some((n) => re.test(n)));
    if (this.include.length > 0 && !hit(this.include)) return false;
    return !hit(this.exclude);
  }

  /** The folders this pull covers, in a stable order. */
  async folders(): Promise<ListResponse[]> {
    return this.select(await this.list());
  }

  /** Runs imapflow commands answering `what` under the bounds of command-bounds.ts. */
  private bounded<T>(what: string, budget: number, run: () => Promise<T>): Promise<T> {
    const t = this.o.target;
    return boundedCommand(this.client, `${t.host}:${t.port}`, what, budget, run);
  }

  private list(): Promise<ListResponse[]> {
    return this.bounded("LIST", IMAP_LIST_BUDGET, () => this.client.list());
  }

  private select(all: ListResponse[]): ListResponse[] {
    return all.filter((f) => this.wanted(f)).sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  }

  async *entries(parent: ParentLookup, parentSnapshot?: SnapshotWithId): AsyncIterable<VirtualEntry> {
    const t = this.o.target;
    let all: ListResponse[];
    try {
      all = await this.list();
    } catch (e) {
      throw imapError(e, t);
    }
    const folders = this.select(all);
    const seenDirs = new Set<string>();
    for (const f of folders) {
      const dir = folderDir(f.path, f.delimiter ?? "");
      if (seenDirs.has(dir)) {
        this.o.onWarning?.(`folder ${JSON.stringify(f.path)} maps to the same directory as another; skipped`);
        continue;
      }
      seenDirs.add(dir);
      yield* this.folder(f, dir, parent);
    }
    await this.countRemovedFolders(parent, parentSnapshot, all);
  }

  /**
   * Folders of the parent snapshot that the server no longer lists (deleted, or renamed away),
   * and their messages: gone from the server as much as a deleted message is. The parent's
   * folders are those of its `meta.imap.uidValidity`; each one's message count is read from
   * its `.folder.json` in the parent.
   */
  private async countRemovedFolders(
    parent: ParentLookup,
    parentSnapshot: SnapshotWithId | undefined,
    all: ListResponse[],
  ): Promise<void> {
    const imap = parentSnapshot?.meta?.imap as { uidValidity?: unknown } | undefined;
    const before = imap?.uidValidity;
    if (typeof before !== "object" || before === null) return;
    const present = new Set(all.filter(selectable).map((f) => f.path));
    // The parent's folder directories were named with the server's delimiter of that time.
    const delimiters = [...new Set([...all.map((f) => f.delimiter ?? ""), "/", ".", ""])];
    for (const path of Object.keys(before)) {
      if (present.has(path)) continue;
      this.stats.foldersRemoved++;
      const state = await this.parentStateOf(parent, path, delimiters);
      if (state) this.stats.messagesRemoved += state.messages.length;
      else
        this.o.onWarning?.(
          `folder ${JSON.stringify(path)} is gone from the server, but its state is not in the parent snapshot; its messages are not counted as removed`,
        );
    }
  }

  /** The parent's `.folder.json` of the folder named `path` (its directory depends on the delimiter). */
  private async parentStateOf(
    parent: ParentLookup,
    path: string,
    delimiters: string[],
  ): Promise<FolderState | undefined> {
    for (const d of delimiters) {
      const what = `${folderDir(path, d)}/${FOLDER_STATE_FILE}`;
      const node = await parent(what);
      if (!node || node.type !== "file") continue;
      try {
        const state = decodeFolderState(await this.o.readParentFile(node), what);
        if (state.path === path) return state;
      } catch {
        // Another folder's directory, or unreadable: try the next delimiter.
      }
    }
    return undefined;
  }

  private async parentState(parent: ParentLookup, dir: string): Promise<FolderState | undefined> {
    const node = await parent(`${dir}/${FOLDER_STATE_FILE}`);
    if (!node || node.type !== "file") return undefined;
    try {
      return decodeFolderState(await this.o.readParentFile(node), `${dir}/${FOLDER_STATE_FILE}`);
    } catch (e) {
      this.o.onWarning?.(
        `cannot read the parent snapshot's state of ${dir} (${(e as Error).message}); fetching it in full`,
      );
      return undefined;
    }
  }

  private async *folder(f: ListResponse, dir: string, parent: ParentLookup): AsyncIterable<VirtualEntry> {
    const t = this.o.target;
    const client = this.client;
    const prev = await this.parentState(parent, dir);
    let lock: { release(): void };
    try {
      // readOnly: EXAMINE, so the server neither clears \Recent nor accepts any change through us.
      lock = await this.bounded(`EXAMINE ${JSON.stringify(f.path)}`, IMAP_COMMAND_SLACK, () =>
        client.getMailboxLock(f.path, { readOnly: true }),
      );
    } catch (e) {
      throw imapError(e, t);
    }
    try {
      const mb = client.mailbox;
      if (!mb) throw new LifeboatError("SOURCE_UNREADABLE", `cannot open folder ${f.path}`);
      // Defence in depth: never work on a folder the server opened read-write.
      if (mb.readOnly !== true)
        throw new LifeboatError("SOURCE_UNREADABLE", `the server did not open ${f.path} read-only (EXAMINE)`);
      const uidValidity = mb.uidValidity.toString();
      const highestModseq = mb.highestModseq !== undefined && !mb.noModseq ? mb.highestModseq : undefined;
      this.uidValidities[f.path] = uidValidity;
      this.stats.folders++;
      const base = prev && prev.uidValidity === uidValidity ? prev : undefined;
      if (!prev) this.stats.foldersNew++;
      else if (!base) this.stats.foldersRefetched++;

      const listing = await this.listMessages(mb.exists, mb.uidNext, highestModseq, base);
      const newUids: number[] = [];
      const reused: FolderMessage[] = [];
      const known = new Map((base?.messages ?? []).map((m) => [m.uid, m]));
      for (const m of listing) {
        const old = known.get(m.uid);
        if (old) {
          reused.push(m);
          if (!sameFlags(old.flags, m.flags)) this.stats.flagsChanged++;
        } else newUids.push(m.uid);
      }
      if (base) {
        const present = new Set(listing.map((m) => m.uid));
        for (const m of base.messages) if (!present.has(m.uid)) this.stats.messagesRemoved++;
      }

      const stored = new Map<number, FolderMessage>();
      let newest = 0;
      const dateOf = (m: FolderMessage) => {
        const d = new Date(m.date);
        newest = Math.max(newest, d.getTime());
        return d;
      };
      // Unchanged messages first, before any FETCH of new ones is running, so that the rare
      // fallback read (parent blobs gone from the repository) can issue its own FETCH.
      for (const m of reused) {
        const path = `${dir}/${messageFileName(m.uid)}`;
        const node = await parent(path);
        if (!node || node.type !== "file") {
          newUids.push(m.uid);
          continue;
        }
        stored.set(m.uid, m);
        this.stats.messagesReused++;
        yield {
          kind: "file",
          path,
          mtime: dateOf(m),
          reuse: node,
          read: () => this.fetchOne(f.path, m.uid, m.size),
        };
      }

      const byUid = new Map(listing.map((m) => [m.uid, m]));
      for await (const msg of this.fetchSources(newUids, byUid)) {
        const meta = byUid.get(msg.uid)!;
        const src = msg.source!;
        stored.set(msg.uid, meta);
        this.stats.messagesFetched++;
        this.stats.bytesFetched += src.length;
        yield {
          kind: "file",
          path: `${dir}/${messageFileName(msg.uid)}`,
          mtime: dateOf(meta),
          read: async function* () {
            yield src;
          },
        };
      }
      this.stats.messages += stored.size;

      const state: FolderState = {
        version: 1,
        path: f.path,
        delimiter: f.delimiter ?? "",
        ...(f.specialUse ? { specialUse: f.specialUse } : {}),
        uidValidity,
        uidNext: mb.uidNext,
        ...(highestModseq !== undefined ? { highestModseq: highestModseq.toString() } : {}),
        // Only what is in the snapshot: a message expunged between listing and FETCH is left out.
        messages: listing.filter((m) => stored.has(m.uid)),
      };
      // A stable time (the newest message) keeps an unchanged folder's tree byte-identical.
      const mtime = new Date(newest);
      yield { kind: "dir", path: dir, mtime };
      const json = encodeFolderState(state);
      yield {
        kind: "file",
        path: `${dir}/${FOLDER_STATE_FILE}`,
        mtime,
        read: async function* () {
          yield json;
        },
      };
    } catch (e) {
      throw imapError(e, t);
    } finally {
      lock.release();
    }
  }

  /**
   * UID, flags, date and size of every message in the open folder. With an unchanged
   * UIDVALIDITY and CONDSTORE, only UIDs (UID SEARCH ALL), flags changed since the parent's
   * HIGHESTMODSEQ, and the facts of new UIDs are asked for; nothing at all when HIGHESTMODSEQ,
   * UIDNEXT and the message count are unchanged. Otherwise one FETCH (UID FLAGS INTERNALDATE
   * RFC822.SIZE) of all.
   */
  private async listMessages(
    exists: number,
    uidNext: number,
    modseq: bigint | undefined,
    base: FolderState | undefined,
  ): Promise<FolderMessage[]> {
    if (exists === 0) return [];
    const client = this.client;
    const toMessage = (m: FetchMessageObject): FolderMessage => ({
      uid: m.uid,
      flags: cleanFlags(m.flags),
      date: isoDate(m.internalDate),
      size: m.size ?? 0,
    });
    if (base?.highestModseq !== undefined && modseq !== undefined && client.enabled.has("CONDSTORE")) {
      this.stats.condstoreFolders++;
      const since = BigInt(base.highestModseq);
      if (since === modseq && uidNext === base.uidNext && exists === base.messages.length)
        return base.messages.map((m) => ({ ...m }));
      const found = await this.bounded("UID SEARCH ALL", perMessageBudget(exists), () =>
        client.search({ all: true }, { uid: true }),
      );
      if (!Array.isArray(found)) throw new Error("UID SEARCH ALL failed");
      const known = new Map(base.messages.map((m) => [m.uid, m]));
      const out = new Map<number, FolderMessage>();
      for (const uid of found) {
        const k = known.get(uid);
        if (k) out.set(uid, { ...k });
      }
      if (since < modseq) {
        const changed = await this.bounded("FETCH (FLAGS) CHANGEDSINCE", perMessageBudget(exists), () =>
          client.fetchAll("1:*", { uid: true, flags: true }, { uid: true, changedSince: since }),
        );
        for (const m of changed) {
          const k = out.get(m.uid);
          if (k) k.flags = cleanFlags(m.flags);
        }
      }
      const fresh = found.filter((u) => !known.has(u));
      for (const range of uidRanges(fresh)) {
        const got = await this.bounded(
          "FETCH (FLAGS INTERNALDATE RFC822.SIZE)",
          perMessageBudget(fresh.length),
          () =>
            client.fetchAll(range, { uid: true, flags: true, internalDate: true, size: true }, { uid: true }),
        );
        for (const m of got) out.set(m.uid, toMessage(m));
      }
      return [...out.values()].sort((a, b) => a.uid - b.uid);
    }
    const all = await this.bounded("FETCH (FLAGS INTERNALDATE RFC822.SIZE)", perMessageBudget(exists), () =>
      client.fetchAll("1:*", { uid: true, flags: true, internalDate: true, size: true }, { uid: true }),
    );
    return all.map(toMessage).sort((a, b) => a.uid - b.uid);
  }

  /** Message sources in batches of about `batchBytes`, the next batch fetched while one is stored. */
  private async *fetchSources(
    uids: number[],
    byUid: Map<number, FolderMessage>,
  ): AsyncIterable<FetchMessageObject> {
    const limit = this.o.batchBytes ?? 8 << 20;
    const batches: number[][] = [];
    let cur: number[] = [];
    let bytes = 0;
    for (const uid of [...uids].sort((a, b) => a - b)) {
      const size = byUid.get(uid)?.size ?? 0;
      if (cur.length > 0 && (bytes + size > limit || cur.length >= 500)) {
        batches.push(cur);
        cur = [];
        bytes = 0;
      }
      cur.push(uid);
      bytes += size;
    }
    if (cur.length > 0) batches.push(cur);
    const fetchBatch = async (b: number[]) => {
      const out: FetchMessageObject[] = [];
      for (const range of uidRanges(b)) {
        const sizes = b.map((uid) => byUid.get(uid)?.size ?? 0);
        const got = await this.bounded(
          `FETCH (BODY.PEEK[]) of ${b.length} message(s)`,
          sourceBudget(sizes),
          () => this.client.fetchAll(range, { uid: true, source: true }, { uid: true }),
        );
        out.push(...got);
      }
      return out.filter((m) => m.source !== undefined && byUid.has(m.uid)).sort((a, b) => a.uid - b.uid);
    };
    // The next batch is fetched while one is stored: its failure is seen when it is awaited,
    // and must not count as unhandled meanwhile.
    const ahead = (b: number[] | undefined) => {
      if (!b) return undefined;
      const p = fetchBatch(b);
      p.catch(() => {});
      return p;
    };
    let next = ahead(batches[0]);
    try {
      for (let i = 0; i < batches.length; i++) {
        const msgs = await next!;
        next = ahead(batches[i + 1]);
        yield* msgs;
      }
    } finally {
      // Never leave a FETCH running when the folder is closed (e.g. the backup failed).
      await next?.catch(() => {});
    }
  }

  /** Fallback for a reused message whose blobs are no longer in the repository. */
  private async *fetchOne(path: string, uid: number, size: number): AsyncIterable<Buffer> {
    const m = await this.bounded(`FETCH (BODY.PEEK[]) of message ${uid}`, sourceBudget([size]), () =>
      this.client.fetchOne(String(uid), { uid: true, source: true }, { uid: true }),
    );
    if (!m || !m.source)
      throw new LifeboatError(
        "SOURCE_UNREADABLE",
        `message ${uid} of ${path} vanished from the server while it was backed up`,
        "run the pull again",
      );
    this.stats.messagesReused--;
    this.stats.messagesFetched++;
    this.stats.bytesFetched += m.source.length;
    yield m.source;
  }

  meta(): Record<string, unknown> {
    return {
      imap: {
        host: this.o.target.host,
        port: this.o.target.port,
        user: this.o.target.user,
        tls: this.stats.tls,
        uidValidity: this.uidValidities,
        folders: this.stats.folders,
        messages: this.stats.messages,
      },
    };
  }
}
