import { promises as fs } from "node:fs";
import path from "node:path";
import type { Repository } from "../../repo/repository.js";
import { type ExportStats, emptyExportStats, type MailFolder, readNode } from "./mail-snapshot.js";

const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** asctime(3) in UTC, as From_ lines carry it: `Thu Nov 26 01:05:01 2026`. */
export function asctime(d: Date): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${DAYS[d.getUTCDay()]} ${MONTHS[d.getUTCMonth()]} ${String(d.getUTCDate()).padStart(2, " ")} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} ${d.getUTCFullYear()}`;
}

/** The envelope sender for the From_ line: Return-Path if it is one plain address. */
export function envelopeSender(raw: Buffer): string {
  const end = raw.indexOf("\r\n\r\n");
  const head = raw.subarray(0, end < 0 ? Math.min(raw.length, 65536) : end).toString("latin1");
  const m = /^Return-Path:[ \t]*<([^<>\s]+)>/im.exec(head);
  return m?.[1] ?? "MAILER-DAEMON";
}

/**
 * One message in mboxrd form: a From_ line, the message with CRLF turned into LF and every line
 * matching /^>*From / given one more `>`, then an empty line. Readers undo the quoting by
 * removing one `>` from lines matching /^>+From /, so the message comes back exactly
 * (line endings aside).
 */
export function mboxrdEntry(raw: Buffer, date: Date): Buffer {
  let text = raw.toString("latin1").replace(/\r\n/g, "\n");
  text = text.replace(/^(>*From )/gm, ">$1");
  if (!text.endsWith("\n")) text += "\n";
  return Buffer.from(`From ${envelopeSender(raw)} ${asctime(date)}\n${text}\n`, "latin1");
}

/**
 * All selected folders into one mboxrd file (folder by folder, by UID), written to a temporary
 * file next to `file`, fsynced and renamed over it at the end.
 */
export async function exportMbox(
  repo: Repository,
  folders: AsyncIterable<MailFolder>,
  file: string,
): Promise<ExportStats> {
  const stats = emptyExportStats();
  await fs.mkdir(path.dirname(path.resolve(file)), { recursive: true });
  const tmp = path.join(path.dirname(path.resolve(file)), `.${path.basename(file)}.tmp-${process.pid}`);
  const fh = await fs.open(tmp, "w", 0o600);
  let ok = false;
  try {
    for await (const f of folders) {
      stats.folders++;
      for (const m of f.state.messages) {
        const node = f.messages.get(m.uid);
        if (!node) continue;
        const data = await readNode(repo, node, `${f.dir}/${node.name}`);
        await fh.write(mboxrdEntry(data, new Date(m.date)));
        stats.messages++;
        stats.bytes += data.length;
      }
    }
    await fh.sync();
    ok = true;
  } finally {
    await fh.close();
    if (!ok) await fs.rm(tmp, { force: true });
  }
  await fs.rename(tmp, file);
  return stats;
}
