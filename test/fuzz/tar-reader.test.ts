import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { promises as fs } from "node:fs";
import path from "node:path";
import { after, test } from "node:test";
import fc from "fast-check";
import { paxRecord, TarWriter } from "../../src/ops/inspect/tar.js";
import { type TarEntry, TarParser } from "../../src/sources/pg-pitr/tar-reader.js";
import { removeTempDir, tempDir } from "../support/cli.js";
import { prng } from "./fixtures.js";
import { hostileBytes } from "./mutate.js";
import { expectDecodesAsync, fuzzAsync } from "./support.js";

/**
 * The tar reader of pg-pitr (what `pg_basebackup -Ft` writes), fed archives made by GNU tar
 * (pax and gnu formats), by lifeboat's own TarWriter and by hand (pax `size` records), damaged
 * and cut into pieces at random.
 */
const dir = await tempDir("lifeboat-fuzz-tar-");
after(() => removeTempDir(dir));

const tree = path.join(dir, "tree");
const long = `${"d".repeat(60)}/${"n".repeat(120)}`;
await fs.mkdir(path.join(tree, long), { recursive: true });
await fs.writeFile(path.join(tree, long, "file"), prng(700, 3));
await fs.writeFile(path.join(tree, "small"), "hello\n");
await fs.writeFile(path.join(tree, "empty"), "");
await fs.symlink(`../${"t".repeat(150)}`, path.join(tree, "link"));
await fs.link(path.join(tree, "small"), path.join(tree, "hard"));

function gnuTar(format: string): Buffer {
  const r = spawnSync("tar", [`--format=${format}`, "-C", tree, "-cf", "-", "."], { maxBuffer: 1 << 26 });
  assert.equal(r.status, 0, r.stderr.toString());
  return r.stdout;
}

async function ourTar(): Promise<Buffer> {
  const out: Buffer[] = [];
  const t = new TarWriter(async (b) => {
    out.push(Buffer.from(b));
  });
  const h = { mode: 0o700, uid: 1, gid: 1, mtime: 1 };
  await t.addDir({ ...h, name: "base" });
  const body = prng(1500, 4);
  async function* content() {
    yield body;
  }
  // Not ASCII, and ids and times the octal fields cannot hold: pax records.
  await t.addFile(
    { ...h, name: `base/${"ü".repeat(80)}`, size: body.length, uid: 2 ** 22, mtime: -5 },
    content(),
  );
  await t.addSymlink({ ...h, name: "base/l" }, "x");
  await t.addHardLink({ ...h, name: "base/h" }, "base/l");
  await t.finish();
  return Buffer.concat(out);
}

/** A ustar header block (POSIX.1-1988 layout) with a correct checksum. */
function ustar(name: string, flag: string, size: number): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, "utf8");
  h.write("0000644\0", 100, "ascii");
  h.write("0000000\0", 108, "ascii");
  h.write("0000000\0", 116, "ascii");
  h.write(`${size.toString(8).padStart(11, "0")}\0`, 124, "ascii");
  h.write("00000000001\0", 136, "ascii");
  h.write(flag, 156, "latin1");
  h.write("ustar\0" + "00", 257, "latin1");
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "ascii");
  return h;
}
const pad = (b: Buffer) => Buffer.concat([b, Buffer.alloc((512 - (b.length % 512)) % 512)]);

/** A pax header giving path and size, then the entry it describes. */
function paxTar(size = "5", path = "from/pax"): Buffer {
  const records = Buffer.from(paxRecord("path", path) + paxRecord("size", size) + paxRecord("mtime", "1.5"));
  return Buffer.concat([
    ustar("PaxHeader", "x", records.length),
    pad(records),
    ustar("ignored", "0", 0),
    pad(Buffer.from("12345")),
    Buffer.alloc(1024),
  ]);
}

const samples = [gnuTar("pax"), gnuTar("gnu"), await ourTar(), paxTar()];

/** Feeds `buf` in pieces of the given sizes and checks every callback against the contract. */
async function read(buf: Buffer, pieces: number[]): Promise<TarEntry[]> {
  const entries: TarEntry[] = [];
  let open: { e: TarEntry; got: number } | undefined;
  const p = new TarParser(
    {
      entry(e) {
        assert.equal(open, undefined, "an entry began before the last one ended");
        open = { e, got: 0 };
        entries.push(e);
      },
      data(piece) {
        assert.ok(open, "data outside an entry");
        open.got += piece.length;
      },
      endEntry() {
        assert.ok(open, "endEntry outside an entry");
        assert.equal(open.got, open.e.size, `entry ${open.e.name} got ${open.got} of ${open.e.size} bytes`);
        open = undefined;
      },
    },
    "base.tar",
  );
  let off = 0;
  for (let i = 0; off < buf.length && !p.finished; i++) {
    const n = Math.max(1, pieces[i % pieces.length]!);
    await p.push(buf.subarray(off, off + n));
    off += n;
  }
  p.end();
  return entries;
}

function validEntries(entries: TarEntry[]): void {
  for (const e of entries) {
    const show = JSON.stringify(e).slice(0, 300);
    assert.equal(typeof e.name, "string", show);
    assert.ok(["file", "dir", "symlink", "hardlink"].includes(e.type), show);
    assert.ok(Number.isSafeInteger(e.size) && e.size >= 0, `size in ${show}`);
    for (const k of ["mode", "uid", "gid", "mtime"] as const)
      assert.ok(Number.isFinite(e[k]) && e[k] >= 0, `${k} in ${show}`);
  }
}

test("fuzz tar reader: entries whose data matches their size, or a LifeboatError", async () => {
  const pieces = fc.array(fc.integer({ min: 1, max: 3000 }), { minLength: 1, maxLength: 4 });
  await fuzzAsync("readTar", [hostileBytes(samples), pieces], async (buf, sizes) => {
    await expectDecodesAsync("TarParser", buf, () => read(buf, sizes), validEntries);
  });
});

test("tar reader: the valid archives read whole", async () => {
  for (const s of samples) validEntries(await read(s, [s.length]));
  const pax = await read(paxTar(), [100]);
  assert.deepEqual(
    pax.map((e) => [e.name, e.size]),
    [["from/pax", 5]],
  );
});

test("fuzz tar reader: pax records with hostile values", async () => {
  const value = fc.oneof(
    fc.constantFrom(
      "-5",
      "-1",
      "1.5",
      "x",
      "",
      " 5",
      "0x10",
      "1e3",
      "Infinity",
      "9007199254740993",
      "99999999999999",
    ),
    fc.string({ maxLength: 12 }),
  );
  const pieces = fc.array(fc.integer({ min: 1, max: 3000 }), { minLength: 1, maxLength: 4 });
  await fuzzAsync(
    "readTar pax",
    [value, fc.string({ maxLength: 300 }), pieces],
    async (size, name, sizes) => {
      const buf = paxTar(size, name);
      await expectDecodesAsync("TarParser", buf, () => read(buf, sizes), validEntries);
    },
  );
});

test("fuzz tar reader: an extended header too large to be one is refused before it is buffered", async () => {
  // pax ('x', 'g') and GNU long name ('L', 'K') bodies are held in memory until they end: a
  // header claiming gigabytes would make the reader hold the rest of the stream.
  const flag = fc.constantFrom("x", "g", "L", "K");
  const size = fc.oneof(fc.integer({ min: 2 ** 20 + 1, max: 8 ** 11 - 1 }), fc.constant(8 ** 11 - 1));
  await fuzzAsync("tar meta bound", [flag, size], async (f, n) => {
    const p = new TarParser({ entry() {}, data() {}, endEntry() {} }, "base.tar");
    await assert.rejects(p.push(ustar("meta", f, n)), /too large|CORRUPTION/);
  });
});
