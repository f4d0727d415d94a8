/** Pure pieces of the mail source and exports: names, URL parsing, ranges, mboxrd, folder state. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { encodeMailboxComponent, maildirFolderName } from "../../src/sources/imap/export-maildir.js";
import { asctime, mboxrdEntry } from "../../src/sources/imap/export-mbox.js";
import {
  decodeFolderState,
  encodeFolderComponent,
  encodeFolderState,
  type FolderState,
  folderDir,
  maildirFlags,
} from "../../src/sources/imap/folder-state.js";
import { folderGlob, imapSourceName, parseImapUrl, uidRanges } from "../../src/sources/imap/imap-source.js";

test("folder names become safe, unambiguous directory names", () => {
  assert.equal(folderDir("Archive/2024", "/"), "Archive/2024");
  assert.equal(folderDir("Archive.2024", "."), "Archive/2024");
  assert.equal(folderDir("a/b", "."), "a%2Fb");
  assert.equal(encodeFolderComponent(".folder.json"), "%2Efolder.json");
  assert.equal(encodeFolderComponent(".."), "%2E.");
  assert.equal(encodeFolderComponent("12.eml"), "12%2Eeml");
  assert.equal(encodeFolderComponent("100%"), "100%25");
  assert.equal(encodeFolderComponent(""), "%");
  assert.equal(encodeFolderComponent("Entwürfe"), "Entwürfe");
});

test("Maildir++ names in modified UTF-7", () => {
  assert.equal(encodeMailboxComponent("Entwürfe"), "Entw&APw-rfe");
  assert.equal(encodeMailboxComponent("日本語"), "&ZeVnLIqe-");
  assert.equal(encodeMailboxComponent("R&D"), "R&-D");
  assert.equal(encodeMailboxComponent("v1.2"), "v1&AC4-2");
  assert.equal(maildirFolderName("INBOX", "/"), undefined);
  assert.equal(maildirFolderName("INBOX.Sub", "."), ".Sub");
  assert.equal(maildirFolderName("Archive/2024", "/"), ".Archive.2024");
  assert.equal(maildirFlags(["\\Seen", "\\Answered", "\\Draft", "\\Flagged", "\\Deleted", "$x"]), "DFRST");
  assert.equal(maildirFlags([]), "");
});

test("mboxrd entry: From_ line, quoting, LF line ends", () => {
  const raw = Buffer.from(
    "Return-Path: <a@b.c>\r\nSubject: x\r\n\r\nFrom me\r\n>From you\r\nFromage\r\n",
    "latin1",
  );
  const d = new Date(Date.UTC(2026, 10, 6, 1, 5, 1));
  assert.equal(asctime(d), "Fri Nov  6 01:05:01 2026");
  assert.equal(
    mboxrdEntry(raw, d).toString("latin1"),
    "From a@b.c Fri Nov  6 01:05:01 2026\nReturn-Path: <a@b.c>\nSubject: x\n\n>From me\n>>From you\nFromage\n\n",
  );
  assert.match(
    mboxrdEntry(Buffer.from("Subject: y\r\n\r\nno final break"), d).toString(),
    /^From MAILER-DAEMON .*\nno final break\n\n$/s,
  );
});

test("URLs, globs and UID ranges", () => {
  assert.deepEqual(parseImapUrl("imap://ann@mail.example.org"), {
    secure: false,
    user: "ann",
    host: "mail.example.org",
    port: 143,
  });
  const t = parseImapUrl("imaps://ann%40corp@[::1]");
  assert.equal(t.port, 993);
  assert.equal(t.user, "ann@corp");
  assert.equal(imapSourceName(t), "imaps://ann%40corp@[::1]:993");
  assert.throws(() => parseImapUrl("imap://ann:secret@host"), /password/);
  assert.throws(() => parseImapUrl("http://ann@host"), /only imap/);
  assert.throws(() => parseImapUrl("imap://host"), /user/);
  assert.ok(folderGlob("Archive/*").test("Archive/2024"));
  assert.ok(!folderGlob("Archive/*").test("Archived"));
  assert.ok(folderGlob("S?nt").test("Sent"));
  assert.ok(!folderGlob("a.b").test("axb"));
  assert.deepEqual(uidRanges([5, 1, 2, 3, 9, 10, 7]), ["1:3,5,7,9:10"]);
  assert.deepEqual(uidRanges([1, 3, 5], 2), ["1,3", "5"]);
  assert.deepEqual(uidRanges([]), []);
});

test("folder state: stable encoding that decodes back; malformed state is corruption", () => {
  const s: FolderState = {
    version: 1,
    path: "INBOX",
    delimiter: "/",
    uidValidity: "4294967295",
    uidNext: 4,
    highestModseq: "18446744073709551615",
    messages: [
      { uid: 3, flags: ["\\Seen", "$a"], date: "2020-01-01T00:00:00.000Z", size: 10 },
      { uid: 1, flags: [], date: "2020-01-02T00:00:00.000Z", size: 20 },
    ],
  };
  const enc = encodeFolderState(s);
  assert.deepEqual(encodeFolderState(decodeFolderState(enc, "x")), enc);
  const back = decodeFolderState(enc, "x");
  assert.deepEqual(
    back.messages.map((m) => [m.uid, m.flags]),
    [
      [1, []],
      [3, ["$a", "\\Seen"]],
    ],
  );
  assert.throws(() => decodeFolderState(Buffer.from("{"), "x"), /not valid JSON/);
  assert.throws(() => decodeFolderState(Buffer.from('{"version":2}'), "x"), /version/);
});
