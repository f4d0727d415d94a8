import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { TarWriter } from "../../ops/inspect/tar.js";
import { checkChain } from "./check.js";
import { extractTar, parseTargetTime } from "./restore.js";
import { readTar, type TarEntry } from "./tar-reader.js";
import type { WalRecord } from "./wal-archive.js";
import { parseWalName, segmentName, segmentNumber, segmentOfLsn } from "./wal-names.js";

const SEG = 16 * 1024 * 1024;
let dir: string;
before(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), "lifeboat-pitr-units-"));
});
after(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

test("WAL names: segments, history, backup and partial files; numbering rolls over the log id", () => {
  assert.deepEqual(parseWalName("000000010000000000000002"), {
    name: "000000010000000000000002",
    kind: "segment",
    timeline: 1,
    log: 0,
    seg: 2,
  });
  assert.equal(parseWalName("00000002.history")?.kind, "history");
  assert.equal(parseWalName("000000010000000000000002.00000028.backup")?.kind, "backup");
  assert.equal(parseWalName("000000010000000000000002.partial")?.kind, "partial");
  for (const bad of ["00000001000000000000000g", "RECOVERYXLOG", "../000000010000000000000002", ""])
    assert.equal(parseWalName(bad), undefined, bad);
  const last = parseWalName("0000000100000000000000FF")!;
  assert.equal(segmentName(1, segmentNumber(last, SEG) + 1, SEG), "000000010000000100000000");
  assert.equal(segmentOfLsn("0/2000028", 1, SEG), "000000010000000000000002");
  assert.equal(segmentOfLsn("1/FF000000", 3, SEG), "0000000300000001000000FF");
});

test("recovery target times keep microseconds and become a numeric zone PostgreSQL can read", () => {
  const a = parseTargetTime("2026-11-26T01:55:07.556233Z");
  assert.equal(a.text, "2026-11-26 01:55:07.556233+00:00");
  assert.equal(a.date.toISOString(), "2026-11-26T01:55:07.556Z");
  assert.equal(parseTargetTime("2026-03-01 12:30+01").text, "2026-03-01 12:30:00+01:00");
  assert.equal(parseTargetTime("2026-03-01 12:30:00+01").date.toISOString(), "2026-03-01T11:30:00.000Z");
  assert.throws(() => parseTargetTime("2026-03-01 12:30:00"), /time zone/);
  assert.throws(() => parseTargetTime("yesterday"), /time zone/);
});

const rec = (name: string, extra: Partial<WalRecord> = {}): WalRecord => {
  const w = parseWalName(name)!;
  return {
    version: 1,
    cluster: "main",
    name,
    kind: w.kind,
    timeline: w.timeline,
    size: w.kind === "segment" ? SEG : 100,
    sha256: "",
    content: [],
    blobs: [],
    time: "",
    host: "h",
    ...(w.kind === "segment" ? { systemId: "42", segmentSize: SEG } : {}),
    ...extra,
  };
};
const base = (startWalFile: string, extra: Record<string, unknown> = {}) => ({
  id: "ab".repeat(32),
  time: "2026-01-01T00:00:00Z",
  meta: { cluster: "main", walSegmentSize: SEG, startWalFile, systemId: "42", ...extra },
});

test("pg check: consecutive segments pass; a gap is named; a new timeline needs its history", () => {
  const names = ["0000000100000000000000FE", "0000000100000000000000FF", "000000010000000100000000"];
  const ok = checkChain("main", base("0000000100000000000000FE"), [
    rec("000000010000000000000003"), // older than the base backup: ignored
    ...names.map((n) => rec(n)),
    rec("0000000100000000000000FE.00000028.backup"),
  ]);
  assert.equal(ok.ok, true, JSON.stringify(ok));
  assert.equal(ok.segments, 3);
  assert.equal(ok.newest, "000000010000000100000000");

  const gap = checkChain("main", base("0000000100000000000000FE"), [rec(names[0]!), rec(names[2]!)]);
  assert.equal(gap.ok, false);
  assert.deepEqual(gap.gaps, ["0000000100000000000000FF"]);

  const range = checkChain("main", base("000000010000000000000002"), [
    rec("000000010000000000000002"),
    rec("000000010000000000000006"),
  ]);
  assert.deepEqual(range.gaps, ["000000010000000000000003..000000010000000000000005 (3 segments)"]);

  const first = checkChain("main", base("000000010000000000000002"), [rec("000000010000000000000003")]);
  assert.deepEqual(first.gaps, ["000000010000000000000002"]);

  // Promotion: timeline 2 continues in the segment where timeline 1 switched.
  const tl = [
    rec("000000010000000000000002"),
    rec("000000010000000000000003"),
    rec("000000020000000000000003"),
    rec("000000020000000000000004"),
  ];
  assert.equal(
    checkChain("main", base("000000010000000000000002"), [...tl, rec("00000002.history")]).ok,
    true,
  );
  const noHistory = checkChain("main", base("000000010000000000000002"), tl);
  assert.match(noHistory.problems.join(), /timeline 2 has segments but no 00000002\.history/);
  const late = checkChain("main", base("000000010000000000000002"), [
    rec("000000010000000000000002"),
    rec("000000020000000000000005"),
    rec("00000002.history"),
  ]);
  assert.deepEqual(late.gaps, ["000000020000000000000003..000000020000000000000004 (2 segments)"]);

  const foreign = checkChain("main", base("000000010000000000000002"), [
    rec("000000010000000000000002", { systemId: "7" }),
  ]);
  assert.match(foreign.problems.join(), /from database system 7, the base backup from 42/);
  const short = checkChain(
    "main",
    base("000000010000000000000002", { stopWalFile: "000000010000000000000003" }),
    [rec("000000010000000000000002")],
  );
  assert.match(short.problems.join(), /needs WAL up to 000000010000000000000003/);
  assert.match(checkChain("main", undefined, []).problems.join(), /no base backup/);
});

/** Feeds a buffer in pieces of varying size (headers and bodies split anywhere). */
async function* pieces(b: Buffer): AsyncGenerator<Buffer> {
  const sizes = [1, 7, 511, 512, 513, 1000, 4096, 3];
  let off = 0;
  for (let i = 0; off < b.length; i++) {
    const n = sizes[i % sizes.length]!;
    yield b.subarray(off, off + n);
    off += n;
  }
}

test("tar reader: GNU tar archives (long names, symlinks, empty files) read in any piece sizes", async () => {
  const src = path.join(dir, "src");
  const long = `${"long-name-".repeat(15)}end`;
  await fs.mkdir(path.join(src, "global", "deep"), { recursive: true });
  await fs.writeFile(path.join(src, "PG_VERSION"), "15\n");
  await fs.writeFile(path.join(src, "global", "empty"), "");
  const big = Buffer.alloc(70_000);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7919) % 251;
  await fs.writeFile(path.join(src, "global", "deep", long), big);
  await fs.symlink("PG_VERSION", path.join(src, "link"));
  await fs.chmod(path.join(src, "PG_VERSION"), 0o600);
  const file = path.join(dir, "gnu.tar");
  const r = spawnSync("tar", ["--format=gnu", "-cf", file, "-C", src, "."], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  const archive = await fs.readFile(file);

  const seen: TarEntry[] = [];
  const content = new Map<string, Buffer[]>();
  await readTar(pieces(archive), {
    entry(e) {
      seen.push(e);
      content.set(e.name, []);
    },
    data(p) {
      content.get(seen.at(-1)!.name)!.push(Buffer.from(p));
    },
    endEntry() {},
  });
  const byName = new Map(seen.map((e) => [e.name, e]));
  assert.equal(byName.get(`global/deep/${long}`)?.size, big.length);
  assert.ok(Buffer.concat(content.get(`global/deep/${long}`)!).equals(big));
  assert.equal(byName.get("link")?.type, "symlink");
  assert.equal(byName.get("link")?.linkname, "PG_VERSION");
  assert.equal(byName.get("PG_VERSION")?.mode, 0o600);
  assert.equal(byName.get("global/empty")?.size, 0);
  assert.equal(byName.get("global")?.type, "dir");

  const out = path.join(dir, "out");
  await fs.mkdir(out);
  const x = await extractTar(pieces(archive), out);
  assert.equal(x.bytes, big.length + 3);
  assert.ok((await fs.readFile(path.join(out, "global", "deep", long))).equals(big));
  assert.equal(await fs.readlink(path.join(out, "link")), "PG_VERSION");
  assert.equal((await fs.stat(path.join(out, "PG_VERSION"))).mode & 0o777, 0o600);
  assert.equal((await fs.stat(out)).mode & 0o777, 0o700);

  // Cut anywhere before the end-of-archive marker: an error, never a silent partial read.
  const cut = archive.subarray(0, archive.indexOf(big.subarray(0, 64)) + 1000);
  await assert.rejects(readTar(pieces(cut), { entry() {}, data() {}, endEntry() {} }), /truncated/);
  const bad = Buffer.from(archive);
  bad[10] = bad[10]! ^ 1;
  await assert.rejects(readTar(pieces(bad), { entry() {}, data() {}, endEntry() {} }), /checksum/);
});

test("tar extraction: pax names; paths leaving the folder are refused and nothing is written outside", async () => {
  const build = async (fill: (t: TarWriter) => Promise<void>) => {
    const parts: Buffer[] = [];
    const t = new TarWriter(async (b) => {
      parts.push(Buffer.from(b));
    });
    await fill(t);
    await t.finish();
    return Buffer.concat(parts);
  };
  async function* one(s: string): AsyncGenerator<Buffer> {
    yield Buffer.from(s);
  }
  const m = { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, mtime: 1_700_000_000 };
  const name = `base/${"ü".repeat(80)}/f`;
  const good = await build(async (t) => {
    await t.addFile({ name, mode: 0o640, size: 2, ...m }, one("ok"));
  });
  const out = path.join(dir, "pax");
  await extractTar(pieces(good), out);
  assert.equal(await fs.readFile(path.join(out, ...name.split("/")), "utf8"), "ok");

  for (const evil of ["../escaped", "a/../../escaped", "/tmp/escaped-abs"]) {
    const arch = await build(async (t) => {
      await t.addFile({ name: evil, mode: 0o644, size: 1, ...m }, one("x"));
    });
    const target = path.join(dir, `evil-${Math.random().toString(36).slice(2)}`);
    await fs.mkdir(target);
    await assert.rejects(extractTar(pieces(arch), target), /unsafe path/);
    await assert.rejects(fs.stat(path.join(dir, "escaped")));
  }
  // A symlink in the archive is made last: a file "through" it lands in a real folder.
  const outside = path.join(dir, "outside");
  await fs.mkdir(outside);
  const linked = await build(async (t) => {
    await t.addSymlink({ name: "pg_wal", mode: 0o777, ...m }, outside);
    await t.addFile({ name: "pg_wal/x", mode: 0o644, size: 1, ...m }, one("y"));
  });
  const lt = path.join(dir, "linked");
  await assert.rejects(extractTar(pieces(linked), lt), /EEXIST|exists/);
  assert.deepEqual(await fs.readdir(outside), []);
  assert.equal((await fs.lstat(path.join(lt, "pg_wal"))).isDirectory(), true);
});
