/**
 * `lifeboat export mail`: Maildir++ (bytes and flags read back from the files), mboxrd (parsed
 * back, quoting of From lines), a plain .eml tree, and re-export after a flag change.
 */
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import type { ImapFlow } from "imapflow";
import { baseEnv, jsonLines, run, tempDir } from "../support/cli.js";
import { type Dovecot, startDovecot } from "../support/dovecot.js";
import { type SeededMessage, seedMailbox } from "./seed.js";

let dv: Dovecot;
let admin: ImapFlow;
let base: string;
let env: Record<string, string>;
let seeded: SeededMessage[];

before(async () => {
  dv = await startDovecot();
  admin = await dv.client();
  seeded = await seedMailbox(admin, 60);
  base = await tempDir("lb-mail-export-");
  env = baseEnv({
    LIFEBOAT_REPOSITORY: path.join(base, "repo"),
    LIFEBOAT_PASSWORD: "repo-pw",
    LIFEBOAT_SOURCE_PASSWORD: dv.password,
  });
  assert.equal((await run(["init"], { env })).code, 0);
  await pull();
});

after(async () => {
  await admin?.logout().catch(() => {});
  await dv?.stop();
  if (base) await fs.rm(base, { recursive: true, force: true });
});

async function pull(): Promise<void> {
  const r = await run(["pull", dv.url], { env });
  assert.equal(r.code, 0, r.stderr);
}

async function exportMail(...args: string[]): Promise<Record<string, unknown>> {
  const r = await run(["--json", "export", "mail", "latest", ...args], { env });
  assert.equal(r.code, 0, r.stderr);
  return jsonLines(r.stdout).find((l) => l.message_type === "summary")!;
}

/** Maildir info letters, written out independently of the code under test. */
function letters(flags: string[]): string {
  const out: string[] = [];
  if (flags.includes("\\Draft")) out.push("D");
  if (flags.includes("\\Flagged")) out.push("F");
  if (flags.includes("\\Answered")) out.push("R");
  if (flags.includes("\\Seen")) out.push("S");
  if (flags.includes("\\Deleted")) out.push("T");
  return out.join("");
}

const MAILDIR_OF: Record<string, string> = {
  INBOX: "",
  "Archive/2024": ".Archive.2024",
  Entwürfe: ".Entw&APw-rfe",
  Sent: ".Sent",
  Empty: ".Empty",
};

async function readMaildir(dir: string): Promise<Map<string, { name: string; data: Buffer; mtime: number }>> {
  const out = new Map<string, { name: string; data: Buffer; mtime: number }>();
  for (const [folder, sub] of Object.entries(MAILDIR_OF)) {
    const d = path.join(dir, sub);
    for (const s of ["new", "cur", "tmp"])
      assert.ok((await fs.stat(path.join(d, s))).isDirectory(), `${d}/${s}`);
    if (sub) assert.ok((await fs.stat(path.join(d, "maildirfolder"))).isFile());
    assert.deepEqual(await fs.readdir(path.join(d, "tmp")), [], "no temporary files left");
    for (const name of await fs.readdir(path.join(d, "cur"))) {
      const m = /^\d+\.U(\d+)V\d+\.lifeboat:2,([A-Z]*)$/.exec(name);
      assert.ok(m, name);
      const p = path.join(d, "cur", name);
      out.set(`${folder} ${m[1]}`, { name, data: await fs.readFile(p), mtime: (await fs.stat(p)).mtimeMs });
    }
  }
  return out;
}

test("Maildir++: every message byte-identical, flags in the file names, folders as .Folder.Sub", async () => {
  const dir = path.join(base, "Maildir");
  const s = await exportMail("--maildir", dir);
  assert.equal(s.messages, seeded.length);
  assert.equal(s.folders, 5);
  const files = await readMaildir(dir);
  assert.equal(files.size, seeded.length);
  for (const m of seeded) {
    const f = files.get(`${m.folder} ${m.uid}`);
    assert.ok(f, `${m.folder} ${m.uid} exported`);
    assert.ok(f.data.equals(m.raw), `bytes of ${m.folder} ${m.uid}`);
    assert.ok(f.name.endsWith(`:2,${letters(m.flags)}`), `${f.name} for ${m.flags.join(" ")}`);
    assert.equal(Math.floor(f.mtime / 1000), Math.floor(m.date.getTime() / 1000));
  }
  assert.ok(seeded.some((m) => letters(m.flags).length >= 2));

  // A flag changed on the server: the next export into the same Maildir only renames that file.
  const target = seeded.find((m) => m.folder === "INBOX" && !m.flags.includes("\\Seen"))!;
  const lock = await admin.getMailboxLock("INBOX");
  try {
    await admin.messageFlagsAdd(String(target.uid), ["\\Seen", "\\Answered"], { uid: true });
  } finally {
    lock.release();
  }
  target.flags = [...target.flags, "\\Seen", "\\Answered"];
  await pull();
  const again = await exportMail("--maildir", dir);
  assert.equal(again.messages, 0);
  assert.equal(again.messages_unchanged, seeded.length);
  const after = await readMaildir(dir);
  assert.equal(after.size, seeded.length);
  assert.ok(after.get(`INBOX ${target.uid}`)!.name.endsWith(`:2,${letters(target.flags)}`));
  assert.ok(after.get(`INBOX ${target.uid}`)!.data.equals(target.raw));
});

/** Splits an mboxrd file into From_ lines and the messages they introduce, undoing the quoting. */
function parseMboxrd(text: Buffer): { fromLine: string; raw: Buffer }[] {
  const lines = text.toString("latin1").split("\n");
  assert.equal(lines.pop(), "", "ends with a newline");
  const out: { fromLine: string; body: string[] }[] = [];
  for (const line of lines) {
    if (line.startsWith("From ")) out.push({ fromLine: line, body: [] });
    else {
      assert.ok(out.length > 0, "starts with a From_ line");
      out.at(-1)!.body.push(line.replace(/^>(>*From )/, "$1"));
    }
  }
  return out.map((e) => {
    assert.equal(e.body.pop(), "", "an empty line ends each message");
    return { fromLine: e.fromLine, raw: Buffer.from(`${e.body.join("\r\n")}\r\n`, "latin1") };
  });
}

test("mboxrd: From_ lines, >From quoting, every message parsed back", async () => {
  const file = path.join(base, "out", "all.mbox");
  const s = await exportMail("--mbox", file);
  assert.equal(s.messages, seeded.length);
  const data = await fs.readFile(file);
  const entries = parseMboxrd(data);
  assert.equal(entries.length, seeded.length);
  // mbox cannot say that a message lacks a final line break; one is added ("From the end").
  const key = (b: Buffer) =>
    b.subarray(-2).toString() === "\r\n" ? b : Buffer.concat([b, Buffer.from("\r\n")]);
  const want = new Set(seeded.map((m) => key(m.raw).toString("base64")));
  assert.ok(seeded.some((m) => !m.raw.subarray(-2).equals(Buffer.from("\r\n"))));
  const missing = entries.filter((e) => !want.has(e.raw.toString("base64")));
  assert.equal(missing.length, 0, `not parsed back exactly: ${missing.map((e) => e.fromLine).join(", ")}`);
  assert.equal(new Set(entries.map((e) => e.raw.toString("base64"))).size, want.size);
  for (const e of entries) {
    assert.match(
      e.fromLine,
      /^From sender-[a-z0-9]+@example\.org [A-Z][a-z]{2} [A-Z][a-z]{2} [ 1-3]\d \d\d:\d\d:\d\d \d{4}$/,
    );
  }
  const text = data.toString("latin1");
  assert.match(
    text,
    /\n>From the start of a line\n>>From already quoted once\n>>>From quoted twice\n From not at the start\nFromage/,
  );
  assert.match(text, /\n>From the end\n\n/);
  assert.deepEqual(
    (await fs.readdir(path.dirname(file))).filter((n) => n.includes("tmp")),
    [],
    "no temporary file left",
  );

  const inbox = await exportMail("--mbox", path.join(base, "out", "inbox.mbox"), "--folder", "INBOX");
  assert.equal(inbox.messages, seeded.filter((m) => m.folder === "INBOX").length);
});

test("plain .eml tree", async () => {
  const dir = path.join(base, "eml");
  const s = await exportMail("--eml", dir);
  assert.equal(s.messages, seeded.length);
  for (const m of seeded) {
    const p = path.join(dir, ...m.folder.split("/"), `${m.uid}.eml`);
    assert.ok((await fs.readFile(p)).equals(m.raw), p);
  }
});

test("export errors: no or two formats, a snapshot that is not mail", async () => {
  const none = await run(["export", "mail", "latest"], { env });
  assert.equal(none.code, 2);
  assert.match(none.stderr, /exactly one of --maildir/);
  const two = await run(["export", "mail", "latest", "--eml", "a", "--mbox", "b"], { env });
  assert.equal(two.code, 2);
  const src = path.join(base, "plainfiles");
  await fs.mkdir(src);
  await fs.writeFile(path.join(src, "x"), "x");
  assert.equal((await run(["backup", src], { env })).code, 0);
  const notMail = await run(["export", "mail", "latest", "--eml", path.join(base, "e2")], { env });
  assert.equal(notMail.code, 2);
  assert.match(notMail.stderr, /not a mail snapshot/);
});
