/**
 * `lifeboat pull imap://...` against a real dovecot: first pull, the server left untouched,
 * incremental pulls (new, deleted, re-flagged messages), a no-change pull, a folder recreated
 * with a new UIDVALIDITY, dedup of a message in two folders, and the documented errors.
 */
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import type { ImapFlow } from "imapflow";
import { LifeboatError } from "../../src/core/errors.js";
import { decodeFolderState } from "../../src/sources/imap/folder-state.js";
import { baseEnv, jsonLines, listAll, run, tempDir } from "../support/cli.js";
import { type Dovecot, startDovecot } from "../support/dovecot.js";
import { commandVerbs, recordingProxy } from "./proxy.js";
import { appendTo, makeMessage, type SeededMessage, SHARED_SIZE, seedMailbox, serverState } from "./seed.js";

let dv: Dovecot;
let admin: ImapFlow;
let base: string;
let env: Record<string, string>;
let seeded: SeededMessage[];
let proxy: Awaited<ReturnType<typeof recordingProxy>>;
const snapshots: string[] = [];

before(async () => {
  dv = await startDovecot();
  admin = await dv.client();
  seeded = await seedMailbox(admin);
  proxy = await recordingProxy(dv.port);
  base = await tempDir("lb-mail-");
  env = baseEnv({
    LIFEBOAT_REPOSITORY: path.join(base, "repo"),
    LIFEBOAT_PASSWORD: "repo-pw",
    LIFEBOAT_SOURCE_PASSWORD: dv.password,
  });
  const r = await run(["init"], { env });
  assert.equal(r.code, 0, r.stderr);
});

after(async () => {
  await proxy?.close();
  await admin?.logout().catch(() => {});
  await dv?.stop();
  if (base) await fs.rm(base, { recursive: true, force: true });
});

async function pull(...extra: string[]): Promise<Record<string, unknown>> {
  const started = Date.now();
  const r = await run(["--json", "pull", dv.url, ...extra], { env });
  assert.equal(r.code, 0, `pull failed: ${r.stderr}`);
  const summary = jsonLines(r.stdout).find((l) => l.message_type === "summary");
  assert.ok(summary, r.stdout);
  summary.wall_ms = Date.now() - started;
  snapshots.push(summary.snapshot_id as string);
  return summary;
}

/** The maildir files on disk (names carry dovecot's flags), and dovecot's own UID lists. */
async function diskState(): Promise<string[]> {
  const out: string[] = [];
  for (const p of await listAll(dv.maildir)) {
    const rel = path.relative(dv.maildir, p);
    if (/dovecot\.index|dovecot\.list\.index|\.log/.test(rel)) continue;
    out.push(rel);
    if (path.basename(p) === "dovecot-uidlist") out.push(await fs.readFile(p, "utf8"));
  }
  return out.sort();
}

/** A file of a snapshot, via `lifeboat restore` of one path. */
async function restoreFile(snap: string, rel: string): Promise<Buffer> {
  const target = await tempDir("lb-mail-restore-");
  try {
    const r = await run(["restore", `${snap}:/${rel}`, "--target", target], { env });
    assert.equal(r.code, 0, r.stderr);
    return await fs.readFile(path.join(target, path.basename(rel)));
  } finally {
    await fs.rm(target, { recursive: true, force: true });
  }
}

/** A pull through the recording relay; returns the command verbs, checked against an allowlist. */
async function pullViaProxy(): Promise<string[]> {
  proxy.lines.length = 0;
  const r = await run(["--json", "pull", `imap://${dv.user}@127.0.0.1:${proxy.port}`], { env });
  assert.equal(r.code, 0, r.stderr);
  const verbs = [...commandVerbs(proxy.lines)].sort();
  console.log(`IMAP commands sent by a pull: ${verbs.join(", ")}`);
  const allowed = [
    ...["AUTHENTICATE", "CAPABILITY", "ENABLE", "EXAMINE", "ID", "LIST", "LOGIN", "LOGOUT", "NAMESPACE"],
    ...["NOOP", "UID FETCH", "UID SEARCH"],
  ];
  assert.deepEqual(
    verbs.filter((v) => !allowed.includes(v)),
    [],
    `commands sent: ${verbs.join(", ")}`,
  );
  return verbs;
}

const total = () => seeded.length;
const bytesOf = (msgs: SeededMessage[]) => msgs.reduce((n, m) => n + m.raw.length, 0);

test("first pull: every folder and message, read-only on the server, the shared message stored once", async () => {
  const serverBefore = await serverState(admin);
  const diskBefore = await diskState();
  const s = await pull();
  // The same account through a relay that records every command the client sends.
  const verbs = await pullViaProxy();
  assert.ok(verbs.includes("EXAMINE"));
  const fetches = proxy.lines.filter((l) => /^\S+ UID FETCH .*BODY/i.test(l));
  assert.ok(fetches.length > 0);
  for (const l of fetches) assert.match(l, /BODY\.PEEK\[\]/, l);
  const secs = (s.duration_ms as number) / 1000;
  console.log(
    `first pull: ${s.messages_fetched} messages, ${(s.bytes_fetched as number) / 1e6} MB in ${secs.toFixed(2)} s = ${Math.round((s.messages_fetched as number) / secs)} messages/s (wall ${s.wall_ms} ms)`,
  );
  assert.equal(s.messages, total());
  assert.equal(s.messages_fetched, total());
  assert.equal(s.messages_reused, 0);
  assert.equal(s.folders, 5); // INBOX, Archive/2024, Entwürfe, Sent, Empty
  assert.equal(s.tls, false); // ssl = no on this server
  assert.equal(s.bytes_fetched, bytesOf(seeded));
  // The ~1 MB message in INBOX and Archive/2024 is downloaded twice but stored once.
  const added = s.data_added as number;
  // Without dedup it would be at least bytesOf(seeded); trees and folder states add < 200 kB.
  assert.ok(added >= bytesOf(seeded) - SHARED_SIZE, `added ${added}`);
  assert.ok(added < bytesOf(seeded) - SHARED_SIZE + 200_000, `added ${added}`);

  // Nothing changed on the server: flags (incl. \Seen), MODSEQs, UIDs, files on disk.
  assert.deepEqual(await serverState(admin), serverBefore);
  assert.deepEqual(await diskState(), diskBefore);
  const unseen = seeded.filter((m) => !m.flags.includes("\\Seen")).length;
  assert.ok(unseen > 50);
  const st = await admin.status("INBOX", { unseen: true, messages: true });
  assert.equal(
    st ? st.unseen : undefined,
    seeded.filter((m) => m.folder === "INBOX" && !m.flags.includes("\\Seen")).length,
  );

  // Layout: <folder>/<uid>.eml with the exact bytes, and .folder.json with flags and dates.
  const m = seeded.find((x) => x.folder === "Entwürfe")!;
  assert.deepEqual(await restoreFile(s.snapshot_id as string, `Entwürfe/${m.uid}.eml`), m.raw);
  const big = seeded.find((x) => x.folder === "Archive/2024" && x.raw.length > 1e6)!;
  assert.deepEqual(await restoreFile(s.snapshot_id as string, `Archive/2024/${big.uid}.eml`), big.raw);
  const state = decodeFolderState(await restoreFile(s.snapshot_id as string, "INBOX/.folder.json"), "INBOX");
  const inbox = seeded.filter((x) => x.folder === "INBOX");
  assert.equal(state.messages.length, inbox.length);
  for (const x of inbox) {
    const e = state.messages.find((y) => y.uid === x.uid)!;
    assert.deepEqual(e.flags, [...x.flags].sort(), `flags of ${x.uid}`);
    assert.equal(e.date, x.date.toISOString());
  }
  assert.ok(state.highestModseq);
});

test("no-change pull downloads nothing and adds almost nothing", async () => {
  const s = await pull();
  console.log(`no-change pull: ${s.duration_ms} ms in the backup, ${s.wall_ms} ms wall`);
  assert.equal(s.messages_fetched, 0);
  assert.equal(s.messages_reused, total());
  assert.equal(s.flags_changed, 0);
  assert.equal(s.condstore_folders, 4); // every non-empty folder short-cut by HIGHESTMODSEQ
  assert.ok((s.data_added as number) < 4096, `added ${s.data_added}`);
});

test("incremental pull: only new messages are fetched; deletions and flag changes are recorded", async () => {
  const added: SeededMessage[] = [];
  for (let i = 0; i < 4; i++)
    added.push(
      await appendTo(
        admin,
        "INBOX",
        makeMessage(`new${i}`, "plain", i),
        [],
        new Date(Date.UTC(2021, 0, i + 1)),
      ),
    );
  added.push(
    await appendTo(
      admin,
      "Sent",
      makeMessage("new-sent", "8bit", 1),
      ["\\Seen"],
      new Date(Date.UTC(2021, 1, 1)),
    ),
  );
  const inbox = seeded.filter((m) => m.folder === "INBOX");
  const gone = inbox[10]!;
  const flagged = inbox[11]!;
  const unseen = inbox[13]!; // flagsFor(13) = \Seen
  assert.ok(unseen.flags.includes("\\Seen"));
  const lock = await admin.getMailboxLock("INBOX");
  try {
    await admin.messageDelete(String(gone.uid), { uid: true });
    await admin.messageFlagsAdd(String(flagged.uid), ["\\Flagged"], { uid: true });
    await admin.messageFlagsRemove(String(unseen.uid), ["\\Seen"], { uid: true });
  } finally {
    lock.release();
  }
  const previous = snapshots.at(-1)!;
  const s = await pull();
  // Incremental through the relay too (its parent is the relayed first pull): still read-only.
  const verbs = await pullViaProxy();
  assert.ok(verbs.includes("UID SEARCH"), verbs.join(", "));
  assert.equal(s.messages_fetched, 5);
  assert.equal(s.messages_removed, 1);
  assert.equal(s.flags_changed, 2);
  assert.equal(s.messages, total() + 5 - 1);
  assert.ok((s.condstore_folders as number) >= 2);

  const snap = s.snapshot_id as string;
  const state = decodeFolderState(await restoreFile(snap, "INBOX/.folder.json"), "INBOX");
  assert.equal(
    state.messages.find((m) => m.uid === gone.uid),
    undefined,
  );
  assert.ok(state.messages.find((m) => m.uid === flagged.uid)!.flags.includes("\\Flagged"));
  assert.ok(!state.messages.find((m) => m.uid === unseen.uid)!.flags.includes("\\Seen"));
  assert.deepEqual(await restoreFile(snap, `INBOX/${added[0]!.uid}.eml`), added[0]!.raw);
  // The deleted message is gone from the new snapshot only.
  const r = await run(["restore", `${snap}:/INBOX/${gone.uid}.eml`, "--target", path.join(base, "x")], {
    env,
  });
  assert.notEqual(r.code, 0);
  assert.deepEqual(await restoreFile(previous, `INBOX/${gone.uid}.eml`), gone.raw);
  seeded = seeded.filter((m) => m !== gone).concat(added);
});

test("a folder recreated with a new UIDVALIDITY is fetched again, cheaply, without losing mail", async () => {
  const folder = "Archive/2024";
  const old = seeded.filter((m) => m.folder === folder);
  await admin.mailboxDelete(folder);
  await admin.mailboxCreate(folder);
  const again: SeededMessage[] = [];
  for (const m of old) again.push(await appendTo(admin, folder, m.raw, m.flags, m.date));
  const s = await pull();
  assert.equal(s.folders_refetched, 1);
  assert.equal(s.messages_fetched, old.length);
  assert.equal(s.messages, seeded.length);
  // Same bytes as before: only trees and the folder state are new.
  assert.ok((s.data_added as number) < 64 * 1024, `added ${s.data_added}`);
  const state = decodeFolderState(
    await restoreFile(s.snapshot_id as string, "Archive/2024/.folder.json"),
    "x",
  );
  assert.deepEqual(
    state.messages.map((m) => m.uid),
    again.map((m) => m.uid),
  );
  const big = again.find((m) => m.raw.length > 1e6)!;
  assert.deepEqual(await restoreFile(s.snapshot_id as string, `Archive/2024/${big.uid}.eml`), big.raw);
  seeded = seeded.filter((m) => m.folder !== folder).concat(again);
});

test("--folder and --exclude-folder select folders by glob", async () => {
  const s = await pull("--folder", "Archive/*", "--folder", "S?nt");
  assert.equal(s.folders, 2);
  const t = await pull("--exclude-folder", "INBOX", "--exclude-folder", "Archive*");
  assert.equal(t.folders, 3); // Entwürfe, Sent, Empty
});

test("errors: wrong password, unreachable server, no password", async () => {
  const wrong = await run(["pull", dv.url], { env: { ...env, LIFEBOAT_SOURCE_PASSWORD: "nope" } });
  assert.equal(wrong.code, new LifeboatError("AUTH_FAILED", "").exitCode, wrong.stderr);
  assert.match(wrong.stderr, /^error: IMAP login as ann at 127\.0\.0\.1:\d+ failed/);
  assert.equal(wrong.stderr.split("\n").filter((l) => l.startsWith("error:")).length, 1);

  const closed = await run(["pull", "imap://ann@127.0.0.1:1"], { env });
  assert.equal(closed.code, 16, closed.stderr);
  assert.match(closed.stderr, /cannot reach the IMAP server 127\.0\.0\.1:1/);

  const { LIFEBOAT_SOURCE_PASSWORD: _, ...noPw } = env;
  const none = await run(["pull", dv.url], { env: noPw });
  assert.equal(none.code, 12, none.stderr);
  assert.match(none.stderr, /LIFEBOAT_SOURCE_PASSWORD.*--source-password-file.*--source-password-command/);

  const file = path.join(base, "imap-pw");
  await fs.writeFile(file, `${dv.password}\n`);
  const viaFile = await run(["pull", dv.url, "--source-password-file", file, "--folder", "Sent"], {
    env: noPw,
  });
  assert.equal(viaFile.code, 0, viaFile.stderr);
  const viaCmd = await run(["pull", dv.url, "--source-password-command", `cat ${file}`, "--folder", "Sent"], {
    env: noPw,
  });
  assert.equal(viaCmd.code, 0, viaCmd.stderr);

  const bad = await run(["pull", "imap://ann:pw@127.0.0.1:1"], { env });
  assert.equal(bad.code, 2);
});

test("folders deleted or renamed on the server: their messages count as removed", async () => {
  // A full pull as the parent (the tests before pulled selections).
  const first = await pull();
  assert.equal(first.folders_removed, 0);
  const count = (folder: string) => seeded.filter((m) => m.folder === folder).length;
  const drafts = count("Entwürfe");
  const sent = count("Sent");
  const archive = count("Archive/2024");
  assert.ok(drafts > 0 && sent > 0 && archive > 0);
  await admin.mailboxDelete("Entwürfe");
  await admin.mailboxRename("Sent", "Sent Items");
  await admin.mailboxRename("Archive/2024", "Archive/2023");
  const s = await pull();
  assert.equal(s.folders_removed, 3);
  assert.equal(s.messages_removed, drafts + sent + archive);
  assert.equal(s.folders_new, 2);
  assert.equal(s.messages, (first.messages as number) - drafts);
  assert.equal(s.messages_fetched, sent + archive);
  for (const m of seeded)
    if (m.folder === "Sent" || m.folder === "Archive/2024")
      m.folder = m.folder === "Sent" ? "Sent Items" : "Archive/2023";
  seeded = seeded.filter((m) => m.folder !== "Entwürfe");

  // A selection leaves folders out without their being removed from the server.
  const only = await pull("--folder", "INBOX");
  assert.equal(only.folders_removed, 0);
  assert.equal(only.messages_removed, 0);

  // The summary for people says the same (after a full pull as the parent).
  await pull();
  await admin.mailboxDelete("Sent Items");
  const human = await run(["pull", dv.url], { env });
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stdout, /, 1 deleted or renamed on the server\)/);
  assert.match(human.stdout, new RegExp(`, ${sent} gone from the server,`));
});
