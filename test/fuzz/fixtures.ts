import assert from "node:assert/strict";
import { createCipheriv } from "node:crypto";
import { maybeCompress } from "../../src/core/compress.js";
import { blobId } from "../../src/core/crypto.js";
import { type BlobLocation, BlobType, type BlobTypeValue } from "../../src/repo/blob.js";
import { encodeTree } from "../../src/repo/tree.js";

/** Fixed test keys: the fuzz inputs are sealed with these where a layer is authenticated. */
export const roots = { data: Buffer.alloc(32, 0xd1), meta: Buffer.alloc(32, 0x3e) };
export const idKey = Buffer.alloc(32, 0x1d);

/** Deterministic pseudo-random bytes. */
export function prng(n: number, seed = 0): Buffer {
  return createCipheriv("aes-128-ctr", Buffer.alloc(16, seed), Buffer.alloc(16)).update(Buffer.alloc(n));
}

export const sampleTree = {
  nodes: [
    {
      name: "a.txt",
      type: "file" as const,
      mode: 0o644,
      uid: 1000,
      gid: 1000,
      mtime: "1700000000123456789",
      ctime: "1700000000123456789",
      inode: "1234",
      device: "2049",
      size: 5,
      content: ["ab".repeat(32)],
    },
    {
      name: "dir",
      type: "dir" as const,
      mode: 0o755,
      uid: 0,
      gid: 0,
      mtime: "1700000000000000000",
      subtree: "cd".repeat(32),
    },
    {
      name: "link",
      type: "symlink" as const,
      mode: 0o777,
      uid: 0,
      gid: 0,
      mtime: "-5",
      target: "../x",
      links: 2,
    },
  ],
};

/** Plaintexts of blobs: compressible and not, empty, a tree. */
export const plaintexts: { type: BlobTypeValue; plain: Buffer }[] = [
  { type: BlobType.data, plain: Buffer.from("hello lifeboat ".repeat(200)) },
  { type: BlobType.data, plain: prng(700, 1) },
  { type: BlobType.data, plain: Buffer.alloc(0) },
  { type: BlobType.data, plain: Buffer.alloc(100_000) },
  { type: BlobType.data, plain: Buffer.concat([prng(3000, 2), Buffer.alloc(3000, 7)]) },
  { type: BlobType.tree, plain: encodeTree(sampleTree) },
];

export function blobOf(plain: Buffer): { id: Buffer; stored: Buffer; compression: number } {
  const { data, compression } = maybeCompress(plain);
  return { id: blobId(idKey, plain), stored: data, compression };
}

/**
 * An index or pack header entry that can describe a real blob: known type and compression,
 * at least nonce + tag long, and a raw length its stored bytes can produce — exactly the stored
 * length when uncompressed, at most 32768 times it for zstd (whose densest block, RLE, turns 4
 * bytes into 128 KiB). Anything else would let a length field drive an allocation.
 */
export function plausibleEntry(e: BlobLocation): void {
  const show = JSON.stringify({ ...e, id: e.id.toString("hex") });
  assert.ok(e.type === BlobType.data || e.type === BlobType.tree, `type in ${show}`);
  assert.ok(e.id.length === 32, `id in ${show}`);
  for (const n of [e.offset, e.length, e.rawLength])
    assert.ok(Number.isInteger(n) && n >= 0 && n <= 0xffffffff, `field in ${show}`);
  assert.ok(e.length >= 28, `length in ${show}`);
  if (e.compression === 0) assert.equal(e.rawLength, e.length - 28, `raw length in ${show}`);
  else if (e.compression === 1) assert.ok(e.rawLength <= (e.length - 28) * 32768, `raw length in ${show}`);
  else assert.fail(`compression in ${show}`);
}
