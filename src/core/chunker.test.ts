import assert from "node:assert/strict";
import { createCipheriv } from "node:crypto";
import { test } from "node:test";
import { Chunker, type ChunkerParams, gearTable } from "./chunker.js";

const small: ChunkerParams = { min: 2048, avg: 8192, max: 65536 };

/** Deterministic pseudo-random bytes: AES-128-CTR over zeros with a zero key. */
export function prng(n: number, seed = 0): Buffer {
  const key = Buffer.alloc(16, seed);
  return createCipheriv("aes-128-ctr", key, Buffer.alloc(16)).update(Buffer.alloc(n));
}

function chunkAll(data: Buffer, params: ChunkerParams, seed: Buffer, piece: number): number[] {
  const c = new Chunker(params, gearTable(seed));
  const out: number[] = [];
  for (let i = 0; i < data.length; i += piece)
    for (const ch of c.push(data.subarray(i, i + piece))) out.push(ch.length);
  for (const ch of c.finish()) out.push(ch.length);
  return out;
}

test("chunks cover the input exactly and respect min/max", () => {
  const data = prng(1_000_000);
  const lens = chunkAll(data, small, Buffer.alloc(32), 10_000);
  assert.equal(
    lens.reduce((a, b) => a + b, 0),
    data.length,
  );
  for (const l of lens.slice(0, -1)) {
    assert.ok(l >= small.min && l <= small.max, `chunk length ${l}`);
  }
  const avg = data.length / lens.length;
  assert.ok(avg > small.avg / 2 && avg < small.avg * 2, `average ${avg}`);
});

test("boundaries do not depend on how the stream is split into reads", () => {
  const data = prng(600_000, 7);
  const a = chunkAll(data, small, Buffer.alloc(32, 1), 1);
  const b = chunkAll(data, small, Buffer.alloc(32, 1), 65_536);
  const c = chunkAll(data, small, Buffer.alloc(32, 1), 600_000);
  assert.deepEqual(a, b);
  assert.deepEqual(b, c);
});

test("an insertion near the start only changes the first chunks (content-defined)", () => {
  const data = prng(800_000, 3);
  const shifted = Buffer.concat([Buffer.from("inserted bytes"), data]);
  const seed = Buffer.alloc(32, 2);
  const a = chunkAll(data, small, seed, 4096);
  const b = chunkAll(shifted, small, seed, 4096);
  const tailA = a.slice(-Math.floor(a.length * 0.8)).join(",");
  const tailB = b.slice(-Math.floor(a.length * 0.8)).join(",");
  assert.equal(tailA, tailB);
});

test("a different secret gives different boundaries", () => {
  const data = prng(400_000, 5);
  assert.notDeepEqual(
    chunkAll(data, small, Buffer.alloc(32, 1), 4096),
    chunkAll(data, small, Buffer.alloc(32, 9), 4096),
  );
});

test("inputs at or below the minimum are one chunk; empty input is none", () => {
  assert.deepEqual(chunkAll(prng(2048), small, Buffer.alloc(32), 100), [2048]);
  assert.deepEqual(chunkAll(Buffer.alloc(0), small, Buffer.alloc(32), 100), []);
  assert.deepEqual(
    chunkAll(Buffer.alloc(200_000), small, Buffer.alloc(32), 100_000).slice(0, 2),
    [65536, 65536],
  );
});
