import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { blobId, seal } from "../../src/core/crypto.js";
import { type BlobLocation, BlobType } from "../../src/repo/blob.js";
import {
  decodeBlob,
  PACK_PREFIX,
  PackBuilder,
  packKey,
  parsePrefix,
  readPackHeader,
} from "../../src/repo/pack.js";
import { blobOf, idKey, plaintexts, plausibleEntry, roots } from "./fixtures.js";
import { hostileBytes, mutated } from "./mutate.js";
import { expectDecodes, fuzz } from "./support.js";

/** Packs written by the real PackBuilder with the test keys. */
function buildPack(type: 0 | 1, count: number) {
  const b = new PackBuilder(type, type === BlobType.tree ? roots.meta : roots.data);
  const blobs = plaintexts.filter((p) => p.type === type).slice(0, count);
  for (const p of blobs) {
    const { id, stored, compression } = blobOf(p.plain);
    b.add(id, stored, compression, p.plain.length);
  }
  return b.finish();
}
const packs = [buildPack(0, 5), buildPack(0, 1), buildPack(1, 1), buildPack(0, 0)];
const packBytes = packs.map((p) => p.bytes);
const prefixes = packBytes.map((b) => b.subarray(0, PACK_PREFIX));

function rootFor(prefix: Buffer): Buffer {
  return prefix[5] === BlobType.tree ? roots.meta : roots.data;
}

/** The plaintext of a pack header, in the documented layout (docs/format.md). */
function headerPlain(entries: BlobLocation[]): Buffer {
  const buf = Buffer.alloc(4 + entries.length * 46);
  buf.writeUInt32LE(entries.length, 0);
  entries.forEach((e, i) => {
    const o = 4 + i * 46;
    buf[o] = e.type;
    buf[o + 1] = e.compression;
    e.id.copy(buf, o + 2);
    buf.writeUInt32LE(e.offset, o + 34);
    buf.writeUInt32LE(e.length, o + 38);
    buf.writeUInt32LE(e.rawLength, o + 42);
  });
  return buf;
}

/** A pack whose (authentic) header was sealed from damaged plaintext: reaches the entry parser. */
function withHeader(pack: Buffer, plain: Buffer): Buffer {
  const hlen = pack.readUInt32LE(pack.length - 4);
  const body = pack.subarray(0, pack.length - 4 - hlen);
  const key = packKey(rootFor(pack), pack.subarray(8, 40));
  const header = seal(key, plain, Buffer.from("LBP1 header", "latin1"));
  const len = Buffer.alloc(4);
  len.writeUInt32LE(header.length, 0);
  return Buffer.concat([body, header, len]);
}

const headerPlains = packs.map((p) => headerPlain(p.entries));

test("fuzz pack prefix: a valid prefix or a LifeboatError", () => {
  fuzz("pack prefix", [hostileBytes(prefixes, 64)], (buf) => {
    expectDecodes(
      "parsePrefix",
      buf,
      () => parsePrefix(buf, "data/fuzz"),
      (p) => {
        assert.ok(p.type === BlobType.data || p.type === BlobType.tree);
        assert.equal(p.salt.length, 32);
      },
    );
  });
});

test("fuzz pack header: damaged packs give their entries or a LifeboatError", () => {
  fuzz("pack header (damaged pack)", [hostileBytes(packBytes)], (buf) => {
    expectDecodes(
      "readPackHeader",
      buf,
      () => readPackHeader(buf, roots, "data/fuzz"),
      (entries) => validEntries(entries),
    );
  });
});

test("fuzz pack header: authentic headers with damaged entries", () => {
  const arb = fc.tuple(fc.nat(packs.length - 1), mutated(headerPlains));
  fuzz("pack header (damaged entries)", [arb], ([i, plain]) => {
    const bytes = withHeader(packBytes[i]!, plain);
    expectDecodes(
      "readPackHeader",
      plain,
      () => readPackHeader(bytes, roots, "data/fuzz"),
      (entries) => validEntries(entries),
    );
  });
});

/**
 * Entries the rest of the program can use: known type and compression, long enough to hold a
 * nonce and a tag, and a raw length the stored bytes can produce (see `plausibleEntry`). Where
 * an entry lies is checked when it is read (`repair index` decodes a header without the blobs).
 */
function validEntries(entries: BlobLocation[]): void {
  for (const e of entries) plausibleEntry(e);
}

// --- blobs ------------------------------------------------------------------------------------

interface Case {
  sealed: Buffer;
  loc: BlobLocation;
  key: Buffer;
}

const cases: Case[] = packs.flatMap((p) => {
  const key = packKey(rootFor(p.bytes), p.bytes.subarray(8, 40));
  return p.entries.map((loc) => ({
    sealed: p.bytes.subarray(loc.offset, loc.offset + loc.length),
    loc,
    key,
  }));
});

/** The stored (maybe compressed) bytes of each case, to damage and seal again. */
const stored = plaintexts.map((p) => blobOf(p.plain).stored);

const EXTREME_LENGTHS = [0, 1, 63, 64, 4096, 1 << 20, 64 << 20, 0x7fffffff, 0xffffffff];

const locChange = fc.oneof(
  fc.constant({}),
  fc.record({ rawLength: fc.oneof(fc.constantFrom(...EXTREME_LENGTHS), fc.nat({ max: 0xffffffff })) }),
  fc.record({ compression: fc.nat(255) }),
  fc.record({ type: fc.constantFrom(0, 1) }),
);

const blobInput = fc.oneof(
  // Damaged sealed bytes (authentication must catch them).
  fc.tuple(fc.nat(cases.length - 1), hostileBytes(cases.map((c) => c.sealed)), locChange, fc.constant(false)),
  // Authentic blobs holding damaged or hostile stored bytes: reaches decompression and the id check.
  fc.tuple(
    fc.nat(cases.length - 1),
    hostileBytes(stored.filter((s) => s.length > 0)),
    locChange,
    fc.constant(true),
  ),
);

test("fuzz blob: damaged blobs decode to their plaintext or a LifeboatError, bounded by the raw length", () => {
  fuzz("decodeBlob", [blobInput, fc.boolean()], ([i, bytes, change, reseal], useScratch) => {
    const c = cases[i]!;
    const loc = { ...c.loc, ...change } as BlobLocation;
    const sealed = reseal ? sealBlob(c.key, loc, bytes) : bytes;
    const scratch = useScratch ? Buffer.alloc(Math.min(loc.rawLength, 1 << 20)) : undefined;
    expectDecodes(
      "decodeBlob",
      bytes,
      () => decodeBlob(sealed, loc, c.key, idKey, "data/fuzz", scratch),
      (plain) => {
        assert.equal(plain.length, loc.rawLength);
        assert.ok(blobId(idKey, plain).equals(loc.id), "returned plaintext does not match the id");
      },
    );
  });
});

function sealBlob(key: Buffer, loc: BlobLocation, stored: Buffer): Buffer {
  const aad = Buffer.alloc(33);
  aad[0] = loc.type;
  loc.id.copy(aad, 1);
  return seal(key, stored, aad);
}
