import { promises as fs } from "node:fs";
import path from "node:path";
import { NameClaims } from "../../core/names.js";
import type { Repository } from "../../repo/repository.js";
import { maildirFlags } from "./folder-state.js";
import {
  type ExportStats,
  emptyExportStats,
  type MailFolder,
  readNode,
  writeFileAtomic,
} from "./mail-snapshot.js";

/**
 * IMAP modified UTF-7 (RFC 3501 5.1.3), as Maildir++ folder names use it. `.` (the Maildir++
 * hierarchy separator) and `/` inside a name are written in the encoded form (`&AC4-`, `&AC8-`),
 * which mUTF-7 decoders read back as the character itself.
 */
export function encodeMailboxComponent(name: string): string {
  let out = "";
  let run = "";
  const flush = () => {
    if (!run) return;
    const utf16 = Buffer.alloc(run.length * 2);
    for (let i = 0; i < run.length; i++) utf16.writeUInt16BE(run.charCodeAt(i), i * 2);
    out += `&${utf16.toString("base64").replace(/=+$/, "").replace(/\//g, ",")}-`;
    run = "";
  };
  for (const ch of name) {
    const c = ch.charCodeAt(0);
    if (ch.length === 1 && c >= 0x20 && c <= 0x7e && ch !== "." && ch !== "/") {
      flush();
      out += ch === "&" ? "&-" : ch;
    } else run += ch;
  }
  flush();
  return out;
}

/** `INBOX` → the Maildir root; `A<delim>B` → `.A.B` (a leading `INBOX<delim>` is dropped). */
export function maildirFolderName(imapPath: string, delimiter: string): string | undefined {
  let parts = delimiter ? imapPath.split(delimiter) : [imapPath];
  if (parts[0]?.toUpperCase() === "INBOX") parts = parts.slice(1);
  if (parts.length === 0) return undefined;
  return `.${parts.map(encodeMailboxComponent).join(".")}`;
}

async function ensureMaildir(dir: string, isSubfolder: boolean): Promise<void> {
  for (const sub of ["cur", "new", "tmp"]) await fs.mkdir(path.join(dir, sub), { recursive: true });
  if (isSubfolder) await fs.writeFile(path.join(dir, "maildirfolder"), "", { flag: "a" });
}

/**
 * Maildir++: INBOX in `DIR/{cur,new,tmp}`, other folders in `DIR/.Folder.Sub/`. Each message is
 * written to `tmp/`, fsynced, and renamed into `cur/` as `<date>.U<uid>V<uidvalidity>.lifeboat:2,<flags>`
 * (the Maildir delivery protocol, so a reader never sees half a message). The base name depends
 * only on the message, so exporting again only renames files whose flags changed.
 * Keywords are kept in the snapshot but not written (Maildir keywords need a per-folder table).
 */
export async function exportMaildir(
  repo: Repository,
  folders: AsyncIterable<MailFolder>,
  target: string,
): Promise<ExportStats> {
  const stats = emptyExportStats();
  await ensureMaildir(target, false);
  // Maildir++ puts a whole hierarchy in one name: it may outgrow NAME_MAX, and `INBOX/x` and
  // `x` both give `.x`; each folder still gets a directory of its own (core/names.ts).
  const claims = new NameClaims();
  for await (const f of folders) {
    const wanted = maildirFolderName(f.state.path, f.state.delimiter);
    const name = wanted === undefined ? undefined : claims.claim(wanted, f.state.path);
    const dir = name ? path.join(target, name) : target;
    await ensureMaildir(dir, name !== undefined);
    stats.folders++;
    const cur = path.join(dir, "cur");
    const existing = new Map<string, string>();
    for (const n of await fs.readdir(cur)) existing.set(n.replace(/:2,.*$/, ""), n);
    for (const m of f.state.messages) {
      const node = f.messages.get(m.uid);
      if (!node) continue;
      const date = new Date(m.date);
      const base = `${Math.floor(date.getTime() / 1000)}.U${m.uid}V${f.state.uidValidity}.lifeboat`;
      const fileName = `${base}:2,${maildirFlags(m.flags)}`;
      const old = existing.get(base);
      if (old !== undefined) {
        if (old !== fileName) await fs.rename(path.join(cur, old), path.join(cur, fileName));
        stats.unchanged++;
        continue;
      }
      const data = await readNode(repo, node, `${f.dir}/${node.name}`);
      // Maildir delivery: written under tmp/, then renamed into cur/.
      await writeFileAtomic(
        path.join(cur, fileName),
        data,
        date,
        path.join(dir, "tmp", `${base}.${process.pid}`),
      );
      stats.messages++;
      stats.bytes += data.length;
    }
  }
  return stats;
}
