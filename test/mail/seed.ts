import type { ImapFlow } from "imapflow";
import { prng } from "../support/cli.js";

/** What the test put on the server, to compare exports and snapshots with. */
export interface SeededMessage {
  folder: string;
  uid: number;
  raw: Buffer;
  flags: string[];
  date: Date;
}

const crlf = (s: string) => Buffer.from(s.replace(/\r?\n/g, "\r\n"), "latin1");

/** A deterministic message; `kind` picks plain, 8-bit, broken MIME, From-lines or a ~1 MB attachment. */
export function makeMessage(
  id: string,
  kind: "plain" | "8bit" | "broken" | "fromlines" | "large",
  n = 0,
): Buffer {
  const head = `Return-Path: <sender-${id}@example.org>
From: Sender ${id} <sender-${id}@example.org>
To: ann@example.org
Subject: message ${id} (${kind})
Date: Mon, 02 Mar 2020 10:${String(n % 60).padStart(2, "0")}:00 +0000
Message-ID: <${id}@example.org>
MIME-Version: 1.0
`;
  const filler = `${"Lorem ipsum dolor sit amet, consectetur adipiscing elit. ".repeat(3)}${id}\n`.repeat(
    8 + (n % 20),
  );
  switch (kind) {
    case "plain":
      return crlf(`${head}Content-Type: text/plain; charset=us-ascii\n\n${filler}`);
    case "8bit":
      return Buffer.concat([
        crlf(`${head}Content-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: 8bit\n\n`),
        Buffer.from([0x47, 0x72, 0xfc, 0xdf, 0x65, 0x20, 0xe9, 0xe8, 0xff, 0xa0, 0x80, 0x0d, 0x0a]),
        crlf(`caf\xe9 na\xefve ${filler}`),
      ]);
    case "broken":
      return crlf(
        `${head}Content-Type: multipart/mixed; boundary="never-closed"\n\n--never-closed\nContent-Type: text/plain\nContent-Transfer-Encoding: base64\n\n!!!not base64###\n--never-closed\nContent-Type: application/octet-stream; name=\n\n${filler}`,
      );
    case "fromlines":
      return crlf(
        `${head}Content-Type: text/plain\n\nFrom the start of a line\n>From already quoted once\n>>From quoted twice\n From not at the start\nFromage is not a From_ line\n${filler}From the end`,
      );
    case "large": {
      const data = prng(1_000_000 + n, 4242 + n)
        .toString("base64")
        .replace(/.{76}/g, "$&\n");
      return crlf(
        `${head}Content-Type: multipart/mixed; boundary="b1"\n\n--b1\nContent-Type: text/plain\n\nsee attachment\n--b1\nContent-Type: application/octet-stream; name="data.bin"\nContent-Transfer-Encoding: base64\n\n${data}\n--b1--\n`,
      );
    }
  }
}

export function flagsFor(i: number): string[] {
  const f = [[], ["\\Seen"], ["\\Seen", "\\Answered"], ["\\Seen", "\\Flagged"], ["\\Draft"], ["$Label1"]][
    i % 6
  ]!;
  return i % 25 === 0 ? [...f, "\\Deleted"] : [...f];
}

const kinds = ["plain", "plain", "8bit", "broken", "fromlines", "plain", "plain"] as const;

export async function appendTo(
  c: ImapFlow,
  folder: string,
  raw: Buffer,
  flags: string[],
  date: Date,
): Promise<SeededMessage> {
  const r = await c.append(folder, raw, flags, date);
  if (!r || r.uid === undefined) throw new Error(`APPEND to ${folder} returned no UID`);
  return { folder, uid: r.uid, raw, flags, date };
}

/**
 * INBOX with `inbox` messages, `Archive/2024` with 30 plus 3 of ~1 MB, `Entwürfe` (non-ASCII
 * name), `Sent`, an empty folder; one ~1 MB message is in both INBOX and Archive/2024.
 */
export async function seedMailbox(c: ImapFlow, inbox = 250): Promise<SeededMessage[]> {
  const out: SeededMessage[] = [];
  for (const f of ["Archive/2024", "Entwürfe", "Sent", "Empty"]) await c.mailboxCreate(f);
  const day = (i: number) => new Date(Date.UTC(2020, 0, 1) + i * 3_600_000);
  for (let i = 0; i < inbox; i++)
    out.push(
      await appendTo(c, "INBOX", makeMessage(`in${i}`, kinds[i % kinds.length]!, i), flagsFor(i), day(i)),
    );
  for (let i = 0; i < 30; i++)
    out.push(
      await appendTo(
        c,
        "Archive/2024",
        makeMessage(`ar${i}`, kinds[i % kinds.length]!, i),
        flagsFor(i + 1),
        day(i),
      ),
    );
  for (let i = 0; i < 3; i++)
    out.push(await appendTo(c, "Archive/2024", makeMessage(`big${i}`, "large", i), ["\\Seen"], day(500 + i)));
  const shared = makeMessage("shared", "large", 7);
  out.push(await appendTo(c, "INBOX", shared, ["\\Seen"], day(900)));
  out.push(await appendTo(c, "Archive/2024", shared, ["\\Flagged"], day(900)));
  for (let i = 0; i < 5; i++)
    out.push(await appendTo(c, "Entwürfe", makeMessage(`dr${i}`, "8bit", i), ["\\Draft"], day(i)));
  for (let i = 0; i < 10; i++)
    out.push(await appendTo(c, "Sent", makeMessage(`se${i}`, "plain", i), ["\\Seen"], day(i)));
  return out;
}

export const SHARED_SIZE = makeMessage("shared", "large", 7).length;

/** Flags and HIGHESTMODSEQ of every folder, read with EXAMINE (changes nothing). */
export async function serverState(c: ImapFlow): Promise<Record<string, unknown>> {
  const state: Record<string, unknown> = {};
  for (const f of await c.list()) {
    if (f.flags.has("\\Noselect") || f.flags.has("\\NonExistent")) continue;
    const lock = await c.getMailboxLock(f.path, { readOnly: true });
    try {
      const mb = c.mailbox;
      if (!mb) throw new Error("no mailbox");
      const msgs = mb.exists === 0 ? [] : await c.fetchAll("1:*", { uid: true, flags: true }, { uid: true });
      state[f.path] = {
        uidValidity: mb.uidValidity.toString(),
        highestModseq: mb.highestModseq?.toString(),
        uidNext: mb.uidNext,
        messages: msgs.map((m) => `${m.uid} ${[...(m.flags ?? [])].sort().join(" ")}`),
      };
    } finally {
      lock.release();
    }
  }
  return state;
}
