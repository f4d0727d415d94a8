import assert from "node:assert/strict";
import path from "node:path";
import { test } from "node:test";
import {
  displayName,
  fitName,
  fsPath,
  isByteName,
  joinName,
  jsonName,
  lossyName,
  NAME_MAX,
  NameClaims,
  nameFromBytes,
  nameToBytes,
  parseDisplayName,
  relativeBelow,
} from "./names.js";

const hex = (h: string) => Buffer.from(h.replace(/ /g, ""), "hex");

test("valid UTF-8 names are plain strings, unchanged", () => {
  for (const s of ["", "a", "café.txt", "e\u0301", "日本語", "😀.png", "\uFFFD real replacement char"]) {
    const b = Buffer.from(s, "utf8");
    assert.equal(nameFromBytes(b), s);
    assert.equal(isByteName(s), false);
    assert.deepEqual(nameToBytes(s), b);
    assert.equal(fsPath(s), s);
  }
});

test("bytes that are not UTF-8 round-trip exactly, one lone surrogate per byte", () => {
  const cases = [
    "63 61 66 e9 2e 74 78 74", // Latin-1 café.txt
    "72 e9 73 75 6d e9 73", // résumés
    "61 e2 82", // cut-short 3-byte sequence
    "f0 9f 98", // cut-short emoji
    "ed a0 80", // a UTF-16 surrogate encoded in UTF-8 (invalid)
    "c0 af", // overlong "/"
    "f4 90 80 80", // above U+10FFFF
    "80 ff fe 41 c3", // stray continuation, bytes never valid, truncated
    "f0 9f 98 80 e9", // a valid emoji then a Latin-1 byte
  ];
  for (const h of cases) {
    const b = hex(h);
    const s = nameFromBytes(b);
    assert.equal(isByteName(s), true, h);
    assert.deepEqual(nameToBytes(s), b, h);
    assert.deepEqual(fsPath(s), b, h);
  }
  assert.equal(nameFromBytes(hex("63 61 66 e9")), "caf\udce9");
  assert.equal(nameFromBytes(hex("f0 9f 98 80 e9")), "😀\udce9");
});

test("every single byte and every pair of bytes round-trips", () => {
  for (let a = 0; a < 256; a++) {
    for (let b = 0; b < 256; b++) {
      const buf = Buffer.of(a, b);
      assert.deepEqual(nameToBytes(nameFromBytes(buf)), buf);
    }
  }
});

test("distinct byte strings stay distinct names", () => {
  const a = nameFromBytes(hex("63 61 66 e9"));
  const b = nameFromBytes(hex("63 61 66 ef bf bd")); // a genuine U+FFFD
  assert.notEqual(a, b);
  assert.equal(lossyName(a), "caf\uFFFD");
  assert.equal(lossyName(b), "caf\uFFFD");
});

test("display shows \\xHH and parses back", () => {
  const s = nameFromBytes(hex("72 e9 73 75 6d e9 73 2f 61 e2 82"));
  assert.equal(displayName(s), "r\\xE9sum\\xE9s/a\\xE2\\x82");
  assert.equal(parseDisplayName(displayName(s)), s);
  assert.equal(parseDisplayName("plain"), "plain");
  assert.equal(parseDisplayName("\\xC3\\xA9"), "é", "escaped valid UTF-8 becomes the character");
  assert.deepEqual(jsonName("path", s), {
    path: displayName(s),
    path_bytes: nameToBytes(s).toString("base64"),
  });
  assert.deepEqual(jsonName("path", "/a/b"), { path: "/a/b" });
});

test("fitName keeps names within NAME_MAX bytes, distinct and stable", () => {
  assert.equal(fitName("short"), "short");
  assert.equal(fitName("short", ".ics"), "short.ics");
  const a = fitName("é".repeat(200), ".ics");
  const b = fitName(`${"é".repeat(199)}x`, ".ics");
  for (const n of [a, b]) {
    assert.ok(Buffer.byteLength(n) <= NAME_MAX, n);
    assert.ok(n.endsWith(".ics") && n.isWellFormed());
  }
  assert.notEqual(a, b);
  assert.equal(fitName("é".repeat(200), ".ics"), a);
  const bytes = nameFromBytes(Buffer.alloc(300, 0xe9));
  assert.ok(nameToBytes(fitName(bytes)).length <= NAME_MAX);
});

test("NameClaims: one file name per owner, even when their names collide", () => {
  const c = new NameClaims();
  assert.equal(c.claim(".x", "INBOX/x"), ".x");
  assert.equal(c.claim(".x", "x"), ".x~2");
  assert.equal(c.claim(".x", "INBOX/x"), ".x", "the same owner keeps its name");
  assert.ok(Buffer.byteLength(c.claim(`.${"a".repeat(300)}`, "long")) <= NAME_MAX);
});

test("joinName and relativeBelow give what path.join and path.relative give for normal paths", () => {
  const byteName = nameFromBytes(hex("66 ff 6f"));
  for (const dir of ["/", "/a", "/a/b c", "/srv/mail/.lifeboat-restore-x", `/x/${byteName}`, "rel/dir"])
    for (const name of ["f", "é.txt", " ", "...", ".hidden", byteName, "a\\b"]) {
      assert.equal(joinName(dir, name), path.join(dir, name));
      if (dir.startsWith("/"))
        assert.equal(relativeBelow(dir, joinName(dir, name)), path.relative(dir, path.join(dir, name)));
    }
  assert.equal(relativeBelow("/a", "/a"), "");
  assert.equal(relativeBelow("/", "/"), "");
  assert.equal(relativeBelow("/a", "/ab/c"), undefined, "a sibling that shares a prefix is not below");
  assert.equal(relativeBelow("/a/b", "/a"), undefined);
  assert.equal(relativeBelow("/a", "/a/b/c"), "b/c");
});
