import fs from "node:fs";
import path from "node:path";
import type { Mutation } from "./mutation.js";
import { between, keystream, pick, prose, rng, sentence, word, wrap } from "./random.js";

/**
 * A Dovecot-style Maildir++ store: about 30,000 messages of 1–16 KiB (≈300 MiB) in ≈300 folders
 * (INBOX, Sent, Drafts, Trash, Junk, yearly/monthly archives, mailing lists, projects), each with
 * cur/, new/, tmp/ and a dovecot-uidlist. Messages look like RFC 5322 mail: Received chains,
 * DKIM signatures (base64), plain-text, HTML-alternative and base64-attachment bodies,
 * replies quoting earlier messages, list footers. Their mtime is their delivery time.
 */
export interface MailParams {
  messages: number;
  folders: number;
}

export function mailParams(scale: number): MailParams {
  return {
    messages: Math.max(50, Math.round(30_000 * scale)),
    folders: Math.max(5, Math.round(300 * scale)),
  };
}

const ME = "robin.miller@example.net";
const FIRST =
  "anna ben carla david emma felix greta hugo ines jonas karin luca maria nils olga paul rosa simon tina uwe vera walter yara zoe".split(
    " ",
  );
const LAST =
  "adams baker clark davis evans fischer garcia hansen ito jensen keller lopez meyer novak olsen petrov quinn rossi schmidt tanaka ulrich vogel weber young zimmer".split(
    " ",
  );
const DOMAINS =
  "example.org example.com example.net mail.example.de lists.example.org corp.example.com uni.example.edu shop.example.com".split(
    " ",
  );
const LISTS =
  "proj-dev proj-users announce security-discuss infra ops-alerts release-team design-review kernel-patches db-admins".split(
    " ",
  );
const MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(" ");
const DAYS = "Sun Mon Tue Wed Thu Fri Sat".split(" ");

/** The folder names, most used first: special folders, then archives, lists and projects mixed. */
function folderNames(n: number): string[] {
  const special = ["", ".Sent", ".Drafts", ".Trash", ".Junk"];
  const r = rng(31);
  const archives: string[] = [];
  for (let y = 2023; y >= 2014; y--)
    for (let m = 12; m >= 1; m--) archives.push(`.Archive.${y}.${String(m).padStart(2, "0")}`);
  const lists = LISTS.flatMap((l) => [
    `.Lists.${l}`,
    ...[1, 2, 3, 4, 5].map((k) => `.Lists.${l}.${word(r)}${k}`),
  ]);
  const projects: string[] = [];
  for (let i = 0; i < 120; i++) projects.push(`.Projects.${word(r)}-${word(r)}`);
  const out = [...special];
  for (let i = 0; out.length < n && i < 400; i++) {
    for (const group of [archives, lists, projects])
      if (i < group.length && out.length < n) out.push(group[i]!);
  }
  // Past 300 folders (scale > 1) number the projects on.
  for (let i = 0; out.length < n; i++) out.push(`.Projects.extra${i}`);
  return [...new Set(out)].slice(0, n);
}

function rfcDate(t: number): string {
  const d = new Date(t * 1000);
  const p = (x: number) => String(x).padStart(2, "0");
  return `${DAYS[d.getUTCDay()]}, ${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} +0000`;
}

interface Person {
  name: string;
  addr: string;
}

/** Makes one message at a time; keeps recent bodies to quote in replies. */
class MailWriter {
  private readonly r: () => number;
  private readonly pool = keystream(77, 4 << 20);
  private readonly people: Person[] = [];
  private readonly recent: { subject: string; body: string; from: Person; id: string; date: string }[] = [];
  private serial = 0;

  constructor(seed: number) {
    this.r = rng(seed);
    const pr = rng(seed + 1);
    for (let i = 0; i < 400; i++) {
      const f = pick(pr, FIRST);
      const l = pick(pr, LAST);
      const name = `${f.charAt(0).toUpperCase()}${f.slice(1)} ${l.charAt(0).toUpperCase()}${l.slice(1)}`;
      this.people.push({ name, addr: `${f}.${l}${i % 7 === 0 ? i : ""}@${pick(pr, DOMAINS)}` });
    }
  }

  private base64(n: number, lineLength = 76): string[] {
    const start = Math.floor(this.r() * (this.pool.length - n));
    const b = this.pool.subarray(start, start + n).toString("base64");
    const lines: string[] = [];
    for (let i = 0; i < b.length; i += lineLength) lines.push(b.slice(i, i + lineLength));
    return lines;
  }

  private hex(n: number): string {
    return this.base64(n, 1000)[0]!
      .replace(/[^A-Za-z0-9]/g, "x")
      .slice(0, n);
  }

  /** A message of about `target` bytes, delivered at `t` into `folder`. */
  message(t: number, target: number, folder: string): string {
    const r = this.r;
    const list = folder.startsWith(".Lists.") ? folder.split(".")[2]! : undefined;
    const from =
      folder === ".Sent" || folder === ".Drafts" ? { name: "Robin Miller", addr: ME } : pick(r, this.people);
    const domain = from.addr.split("@")[1]!;
    const id = `${t}.${this.serial++}.${this.hex(10)}@${domain}`;
    const date = rfcDate(t);
    const reply = this.recent.length > 0 && r() < 0.45 ? pick(r, this.recent) : undefined;
    const subject = reply
      ? `Re: ${reply.subject.replace(/^Re: /, "")}`
      : `${list ? `[${list}] ` : ""}${sentence(r)
          .slice(0, between(r, 15, 60))
          .replace(/[.?!,]$/, "")}`;
    const h: string[] = [];
    h.push(`Return-Path: <${from.addr}>`, `Delivered-To: ${ME}`);
    for (let hop = between(r, 1, 3); hop > 0; hop--) {
      h.push(
        `Received: from mx${hop}.${domain} (mx${hop}.${domain} [198.51.${between(r, 0, 255)}.${between(r, 1, 254)}])`,
        `\tby mail.example.net (Postfix) with ESMTPS id ${this.hex(13).toUpperCase()}`,
        `\tfor <${ME}>; ${rfcDate(t - hop * between(r, 1, 30))}`,
      );
    }
    if (r() < 0.8) {
      const b = this.base64(256, 70);
      h.push(
        `DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=${domain}; s=s${between(r, 1, 4)};`,
        `\tt=${t}; bh=${this.base64(32)[0]};`,
        "\th=From:To:Subject:Date:Message-ID:MIME-Version:Content-Type;",
        `\tb=${b[0]}`,
        ...b.slice(1).map((l) => `\t ${l}`),
      );
    }
    h.push(
      `Date: ${date}`,
      `From: ${from.name} <${from.addr}>`,
      `To: ${list ? `${list}@lists.example.org` : `Robin Miller <${ME}>`}`,
    );
    if (r() < 0.25) {
      const cc = pick(r, this.people);
      h.push(`Cc: ${cc.name} <${cc.addr}>`);
    }
    h.push(`Subject: ${subject}`, `Message-ID: <${id}>`);
    if (reply) h.push(`In-Reply-To: <${reply.id}>`, `References: <${reply.id}>`);
    if (list) {
      h.push(
        `List-Id: ${list} <${list}.lists.example.org>`,
        `List-Unsubscribe: <https://lists.example.org/mailman/options/${list}>, <mailto:${list}-request@lists.example.org?subject=unsubscribe>`,
        `Precedence: list`,
      );
    }
    h.push("MIME-Version: 1.0");
    const headers = `${h.join("\n")}\n`;
    let room = Math.max(200, target - headers.length);

    // The text the person wrote, a quote of what they answer, a signature, a list footer.
    const sig = `\n-- \n${from.name}\n${pick(r, ["Operations", "Engineering", "Accounts", "Research", "Support"])}, ${domain}\n`;
    const footer = list
      ? `\n_______________________________________________\n${list} mailing list\n${list}@lists.example.org\nhttps://lists.example.org/mailman/listinfo/${list}\n`
      : "";
    const kind = r();
    const attachment = kind > 0.9 ? Math.floor(room * (0.4 + r() * 0.4) * 0.75) : 0;
    room -= Math.ceil(attachment / 0.75) + sig.length + footer.length;
    const html = kind > 0.6 && kind <= 0.9;
    let quoted = "";
    if (reply && room > 400) {
      const q = reply.body.slice(0, Math.floor(room * 0.4)).split("\n");
      quoted = `\nOn ${reply.date}, ${reply.from.name} wrote:\n${q.map((l) => (l ? `> ${l}` : ">")).join("\n")}\n`;
    }
    const own = prose(r, Math.max(60, (html ? room * 0.45 : room) - quoted.length));
    const plain = `${own}${quoted}${sig}${footer}`;
    this.recent.push({ subject: subject.replace(/^\[[^\]]+\] /, ""), body: own, from, id, date });
    if (this.recent.length > 60) this.recent.shift();

    if (!html && attachment === 0) {
      return `${headers}Content-Type: text/plain; charset="utf-8"\nContent-Transfer-Encoding: 8bit\n\n${plain}`;
    }
    const boundary = `----=_Part_${this.hex(16)}`;
    const parts: string[] = [];
    parts.push(`Content-Type: text/plain; charset="utf-8"\nContent-Transfer-Encoding: 8bit\n\n${plain}`);
    if (html) {
      const paras = own
        .split("\n\n")
        .map(
          (p) =>
            `<p style="margin:0 0 12px 0;font-family:Arial,Helvetica,sans-serif;font-size:14px;line-height:20px">${p.replace(/\n/g, " ")}</p>`,
        );
      parts.push(
        `Content-Type: text/html; charset="utf-8"\nContent-Transfer-Encoding: 8bit\n\n<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>\n${wrap(paras.join("\n"), 76).join("\n")}\n</body></html>`,
      );
    }
    if (attachment > 0) {
      const name = `${word(r)}-${between(r, 1000, 9999)}.${pick(r, ["pdf", "png", "zip", "docx"])}`;
      parts.push(
        `Content-Type: application/octet-stream; name="${name}"\nContent-Disposition: attachment; filename="${name}"\nContent-Transfer-Encoding: base64\n\n${this.base64(attachment).join("\n")}`,
      );
    }
    const type = attachment > 0 ? "mixed" : "alternative";
    return `${headers}Content-Type: multipart/${type}; boundary="${boundary}"\n\nThis is a multi-part message in MIME format.\n\n${parts.map((p) => `--${boundary}\n${p}\n`).join("\n")}--${boundary}--\n`;
  }
}

/** Delivery time of message i: ten years of mail, one every few hours, in order. */
function deliveryTime(i: number, n: number): number {
  const span = 315_000_000;
  const step = Math.floor(span / n);
  return 1_390_000_000 + i * step + ((i * 7919) % Math.max(1, step));
}

function fileName(t: number, i: number, size: number, flags: string | undefined): string {
  const base = `${t}.M${(i * 104729) % 1_000_000}P${1000 + (i % 30000)}.mail.example.net,S=${size},W=${size + Math.floor(size / 60)}`;
  return flags === undefined ? base : `${base}:2,${flags}`;
}

/** The glob `find` looks for: the name of one message in the middle of the store. */
export function mailFindPattern(p: MailParams): string {
  return `${deliveryTime(Math.floor(p.messages / 2), p.messages)}.M*`;
}

/** Writes the store (synchronously: 30,000 small files go much faster without promises). */
export function generateMail(root: string, p: MailParams): void {
  const folders = folderNames(p.folders);
  const r = rng(2024);
  const writer = new MailWriter(99);
  const uidlists = folders.map(() => [] as string[]);
  for (const f of folders)
    for (const sub of ["cur", "new", "tmp"]) fs.mkdirSync(path.join(root, f, sub), { recursive: true });
  for (let i = 0; i < p.messages; i++) {
    // Skewed: INBOX and Sent hold the most, the last project folders a handful.
    const fi = Math.min(folders.length - 1, Math.floor(folders.length * r() ** 2.2));
    const folder = folders[fi]!;
    const t = deliveryTime(i, p.messages);
    const target = Math.floor(1024 + 15 * 1024 * r() ** 0.6);
    const msg = Buffer.from(writer.message(t, target, folder));
    const unread = i > p.messages * 0.98 && r() < 0.5;
    const flags = unread ? undefined : pick(r, ["S", "S", "S", "RS", "FS", "S", "ST"]);
    const name = fileName(t, i, msg.length, flags);
    const file = path.join(root, folder, unread ? "new" : "cur", name);
    fs.writeFileSync(file, msg);
    fs.utimesSync(file, t, t);
    uidlists[fi]!.push(`${uidlists[fi]!.length + 1} :${name.split(":")[0]}`);
  }
  folders.forEach((f, fi) => {
    const lines = uidlists[fi]!;
    fs.writeFileSync(
      path.join(root, f, "dovecot-uidlist"),
      `3 V1390000000 N${lines.length + 1} G${(fi * 2654435761).toString(16).padStart(32, "0")}\n${lines.join("\n")}\n`,
    );
  });
}

/**
 * A day of mail: new messages delivered into new/ (1% of the store, their folders' uidlists
 * grow), 0.5% of messages get a flag (renamed), 0.3% are read (moved new/ → cur/ or flagged),
 * 0.2% are expunged. The message `find` looks for is left alone.
 */
export async function mutateMail(root: string, p: MailParams, m: Mutation): Promise<void> {
  const folders = folderNames(p.folders);
  const r = rng(777);
  const writer = new MailWriter(555);
  const keep = mailFindPattern(p).replace("*", "");
  const t0 = deliveryTime(p.messages, p.messages) + 86_400;
  const delivered = new Map<number, string[]>();
  const deliveries = Math.max(1, Math.round(p.messages * 0.01));
  for (let i = 0; i < deliveries; i++) {
    const fi = Math.min(folders.length - 1, Math.floor(folders.length * r() ** 2.2));
    const t = t0 + i * 60;
    const msg = Buffer.from(writer.message(t, Math.floor(1024 + 15 * 1024 * r() ** 0.6), folders[fi]!));
    const name = fileName(t, p.messages + i, msg.length, undefined);
    await m.create(path.join(root, folders[fi]!, "new", name), msg, t);
    delivered.set(fi, [...(delivered.get(fi) ?? []), name]);
  }
  for (const [fi, names] of delivered) {
    await m.append(
      path.join(root, folders[fi]!, "dovecot-uidlist"),
      `${names.map((n) => `0 :${n}`).join("\n")}\n`,
    );
  }
  // Flag changes and expunges pick messages from sorted listings, so the same ones every time.
  const touched = new Set<string>();
  const choose = (sub: "cur" | "new"): string | undefined => {
    for (let tries = 0; tries < 20; tries++) {
      const dir = path.join(
        root,
        folders[Math.min(folders.length - 1, Math.floor(folders.length * r() ** 2.2))]!,
        sub,
      );
      const names = fs.readdirSync(dir).sort();
      const name = names.length > 0 ? pick(r, names) : undefined;
      const file = name ? path.join(dir, name) : undefined;
      if (file && !touched.has(file) && !name!.startsWith(keep) && !m.changed.has(file)) {
        touched.add(file);
        return file;
      }
    }
    return undefined;
  };
  for (let i = 0; i < Math.round(p.messages * 0.005); i++) {
    const f = choose("cur");
    if (f && /:2,[A-Z]*$/.test(f) && !/:2,[A-Z]*F/.test(f))
      await m.rename(f, f.replace(/:2,([A-Z]*)$/, ":2,F$1"));
  }
  for (let i = 0; i < Math.round(p.messages * 0.003); i++) {
    const f = choose("new");
    if (f) await m.rename(f, path.join(path.dirname(path.dirname(f)), "cur", `${path.basename(f)}:2,S`));
  }
  for (let i = 0; i < Math.round(p.messages * 0.002); i++) {
    const f = choose("cur");
    if (f) await m.remove(f);
  }
}
