import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { promises as fs } from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { paxRecord, TarWriter } from "../../src/ops/inspect/tar.js";
import { tempDir } from "../support/cli.js";

let dir: string;
before(async () => {
  dir = await tempDir("lifeboat-tar-");
});
after(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

async function* chunks(...parts: string[]): AsyncGenerator<Buffer> {
  for (const p of parts) yield Buffer.from(p);
}

async function build(file: string, fill: (t: TarWriter) => Promise<void>): Promise<Buffer> {
  const out: Buffer[] = [];
  const t = new TarWriter(async (b) => {
    out.push(Buffer.from(b));
  });
  await fill(t);
  await t.finish();
  const all = Buffer.concat(out);
  await fs.writeFile(file, all);
  return all;
}

function tar(args: string[]): string {
  const r = spawnSync("tar", args, { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr, "", "tar printed warnings");
  return r.stdout;
}

test("pax records count their own length, across digit boundaries", () => {
  for (const v of ["a", "x".repeat(3), "y".repeat(89), "z".repeat(90), "w".repeat(991), "ü".repeat(500)]) {
    const r = paxRecord("path", v);
    const len = Number(r.slice(0, r.indexOf(" ")));
    assert.equal(Buffer.byteLength(r), len, `record for ${v.length} chars`);
    assert.ok(r.endsWith(`path=${v}\n`));
  }
});

test("the archive is whole records with a valid checksum, and GNU tar lists and extracts it", async () => {
  const long = `${"long-name-".repeat(15)}end.txt`; // 157 bytes
  const deepDir = `top/${"d".repeat(60)}/${"e".repeat(60)}`; // path > 100 bytes, each name short
  const file = path.join(dir, "a.tar");
  const bytes = await build(file, async (t) => {
    const m = { uid: 1000, gid: 1000, mtime: 1_700_000_000 };
    await t.addDir({ name: "top", mode: 0o755, ...m });
    await t.addFile({ name: "top/hello.txt", mode: 0o640, size: 11, ...m }, chunks("hello ", "world"));
    await t.addFile({ name: `top/${long}`, mode: 0o600, size: 0, ...m }, chunks());
    await t.addDir({ name: "top/empty", mode: 0o700, ...m });
    await t.addDir({ name: `top/${"d".repeat(60)}`, mode: 0o755, ...m });
    await t.addDir({ name: deepDir, mode: 0o755, ...m });
    await t.addFile({ name: `${deepDir}/f`, mode: 0o644, size: 3, ...m }, chunks("abc"));
    await t.addSymlink({ name: "top/link", mode: 0o777, ...m }, "hello.txt");
    await t.addSymlink({ name: "top/longlink", mode: 0o777, ...m }, `${"t".repeat(120)}/target`);
    await t.addHardLink({ name: "top/hard", mode: 0o640, ...m }, "top/hello.txt");
    await t.addFile({ name: "top/ümlaut ✓.txt", mode: 0o644, size: 2, ...m }, chunks("ü"));
  });
  assert.equal(bytes.length % 10240, 0);
  // First header: checksum = sum of bytes with the checksum field taken as spaces.
  const h = bytes.subarray(0, 512);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i]!;
  assert.equal(Number.parseInt(h.subarray(148, 154).toString("ascii"), 8), sum);
  assert.equal(h.subarray(257, 265).toString("latin1"), "ustar\u000000");

  const listing = tar(["-tvf", file]);
  assert.match(listing, /^drwxr-xr-x 1000\/1000\s+0 2023-11-1\d \d\d:\d\d top\/$/m);
  assert.match(listing, /^-rw-r----- 1000\/1000\s+11 .* top\/hello\.txt$/m);
  assert.ok(listing.includes(`top/${long}\n`), listing);
  assert.ok(listing.includes(`${deepDir}/f\n`), listing);
  assert.match(listing, /top\/link -> hello\.txt$/m);
  assert.ok(listing.includes(`top/longlink -> ${"t".repeat(120)}/target`), listing);
  assert.match(listing, /^hrw-r----- .* top\/hard link to top\/hello\.txt$/m);
  assert.ok(listing.includes("top/ümlaut ✓.txt"), listing);

  const out = path.join(dir, "x");
  await fs.mkdir(out);
  tar(["-xpf", file, "-C", out]);
  assert.equal(await fs.readFile(path.join(out, "top/hello.txt"), "utf8"), "hello world");
  assert.equal(await fs.readFile(path.join(out, deepDir, "f"), "utf8"), "abc");
  assert.equal(await fs.readFile(path.join(out, "top/ümlaut ✓.txt"), "utf8"), "ü");
  assert.equal((await fs.stat(path.join(out, "top", long))).size, 0);
  assert.deepEqual(await fs.readdir(path.join(out, "top/empty")), []);
  assert.equal((await fs.stat(path.join(out, "top/empty"))).mode & 0o7777, 0o700);
  assert.equal((await fs.stat(path.join(out, "top/hello.txt"))).mode & 0o7777, 0o640);
  assert.equal((await fs.stat(path.join(out, "top/hello.txt"))).mtimeMs, 1_700_000_000_000);
  assert.equal(await fs.readlink(path.join(out, "top/link")), "hello.txt");
  const a = await fs.stat(path.join(out, "top/hello.txt"));
  const b = await fs.stat(path.join(out, "top/hard"));
  assert.equal(a.ino, b.ino);
});

test("content shorter or longer than the declared size is refused", async () => {
  const t = new TarWriter(async () => {});
  await assert.rejects(
    t.addFile({ name: "f", mode: 0o644, uid: 0, gid: 0, mtime: 0, size: 5 }, chunks("abc")),
    /content has 3 bytes, expected 5/,
  );
  const u = new TarWriter(async () => {});
  await assert.rejects(
    u.addFile({ name: "f", mode: 0o644, uid: 0, gid: 0, mtime: 0, size: 2 }, chunks("abc")),
    /content has more bytes, expected 2/,
  );
});
