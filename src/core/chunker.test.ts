import assert from "node:assert/strict";
import { createCipheriv } from "node:crypto";
import { test } from "node:test";
import {
  Chunker,
  type ChunkerParams,
  chunkerMasks,
  constantByte,
  findCut,
  gearTable,
  isSharedZeroes,
} from "./chunker.js";

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

/** findCut as it was before runs of one byte were skipped: every byte hashed. */
function findCutByteByByte(
  buf: Buffer,
  start: number,
  end: number,
  params: ChunkerParams,
  gear: Uint32Array,
) {
  const n = end - start;
  if (n <= params.min) return n;
  const { maskS, maskL } = chunkerMasks(params);
  const limit = Math.min(n, params.max);
  const normal = Math.min(limit, params.avg);
  let h = 0;
  for (let i = params.min; i < limit; i++) {
    h = ((h << 1) + gear[buf[start + i]!]!) >>> 0;
    if ((h & (i < normal ? maskS : maskL)) === 0) return i + 1;
  }
  return limit;
}

function cutsOf(data: Buffer, cut: (start: number) => number): number[] {
  const out: number[] = [];
  for (let at = 0; at < data.length; ) {
    const n = cut(at);
    out.push(n);
    at += n;
  }
  return out;
}

/** A byte value whose run cuts at its first byte past `avg` (its fixed point `-gear[c]` has
 * the large mask's bits clear), and the secret that makes it so. */
function cuttingRun(params: ChunkerParams): { seed: Buffer; byte: number } {
  const { maskL } = chunkerMasks(params);
  for (let s = 0; ; s++) {
    const seed = Buffer.alloc(32, s);
    const gear = gearTable(seed);
    for (let c = 0; c < 256; c++) if ((-gear[c]! & maskL) >>> 0 === 0) return { seed, byte: c };
  }
}

test("runs of one byte are skipped with the same cuts as hashing every byte", () => {
  const { seed, byte } = cuttingRun(small);
  const parts: Buffer[] = [];
  for (const [i, len] of [10, 31, 32, 33, 4095, 4096, 5000, 9000, 70_000, 200_000, 1].entries()) {
    parts.push(prng(3000 + i * 997, i));
    parts.push(Buffer.alloc(len, [0, 0xff, byte, 7][i % 4]!));
  }
  // A run that starts before `avg` and goes on past it: cut at its first byte after `avg`.
  parts.push(prng(2500, 99), Buffer.alloc(100_000, byte));
  const data = Buffer.concat(parts);
  for (const s of [seed, Buffer.alloc(32, 3)]) {
    const gear = gearTable(s);
    const masks = chunkerMasks(small);
    const fast = cutsOf(data, (at) => findCut(data, at, data.length, small, gear, masks));
    assert.deepEqual(
      fast,
      cutsOf(data, (at) => findCutByteByByte(data, at, data.length, small, gear)),
    );
  }
  const runAt = data.length - 100_000;
  const cuts = cutsOf(data, (at) =>
    findCut(data, at, data.length, small, gearTable(seed), chunkerMasks(small)),
  );
  const ends: number[] = [];
  for (const n of cuts) ends.push((ends.at(-1) ?? 0) + n);
  assert.ok(
    ends.some((e) => e > runAt && e < data.length && e - runAt < small.avg),
    "a cut inside the last run",
  );
});

test("pushZeroes gives the chunks pushEach gives for the same zeroes", () => {
  const seed = Buffer.alloc(32, 4);
  for (const zeros of [0, 100, 2048, 65_535, 65_536, 65_537, 300_001]) {
    for (const lead of [0, 1, 5000, 70_000]) {
      const head = prng(lead, 1);
      const tail = prng(3333, 2);
      const plain = new Chunker(small, gearTable(seed));
      const sparse = new Chunker(small, gearTable(seed));
      const a: Buffer[] = [];
      const b: Buffer[] = [];
      plain.pushEach(Buffer.concat([head, Buffer.alloc(zeros), tail]), (c) => a.push(Buffer.from(c)));
      plain.finishEach((c) => a.push(Buffer.from(c)));
      sparse.pushEach(head, (c) => b.push(Buffer.from(c)));
      sparse.pushZeroes(zeros, (c) => b.push(Buffer.from(c)));
      sparse.pushEach(tail, (c) => b.push(Buffer.from(c)));
      sparse.finishEach((c) => b.push(Buffer.from(c)));
      assert.deepEqual(
        b.map((c) => c.length),
        a.map((c) => c.length),
        `${lead} bytes, then ${zeros} zeroes`,
      );
      assert.ok(Buffer.concat(b).equals(Buffer.concat(a)));
    }
  }
  // Zeroes at the end of the stream, and chunks of zeroes that are views of the shared buffer.
  const c = new Chunker(small, gearTable(seed));
  const out: Buffer[] = [];
  c.pushZeroes(200_000, (x) => out.push(x));
  assert.ok(out.length >= 2 && out.every((x) => isSharedZeroes(x) && constantByte(x) === 0));
  c.finishEach((x) => out.push(Buffer.from(x)));
  assert.equal(
    out.reduce((n, x) => n + x.length, 0),
    200_000,
  );
});

test("constantByte names the one byte value of a buffer, or -1", () => {
  assert.equal(constantByte(Buffer.alloc(0)), -1);
  assert.equal(constantByte(Buffer.alloc(1, 9)), 9);
  assert.equal(constantByte(Buffer.alloc(10_000, 0xff)), 0xff);
  const b = Buffer.alloc(10_000);
  b[5000] = 1;
  assert.equal(constantByte(b), -1);
  assert.equal(constantByte(b.subarray(0, 5000)), 0);
});

test("a disposed chunker frees its arena at once and chunks the next stream the same way", () => {
  const params = { min: 2048, avg: 8192, max: 32768 };
  const gear = gearTable(Buffer.alloc(32, 3));
  const data = Buffer.alloc(300_000);
  for (let i = 0; i < data.length; i++) data[i] = (i * 2654435761) >>> 24;
  const lengths = (c: Chunker) => {
    const out: number[] = [];
    for (let o = 0; o < data.length; o += 10_000)
      c.pushEach(data.subarray(o, o + 10_000), (x) => out.push(x.length));
    c.finishEach((x) => out.push(x.length));
    return out;
  };
  const c = new Chunker(params, gear);
  const first = lengths(c);
  const arena = (c as unknown as { arena: Buffer }).arena;
  assert.ok(arena.length >= 32768, "the arena grew to hold a maximum chunk");
  c.dispose();
  assert.equal(arena.length, 0, "its memory is detached, not left for the collector");
  assert.deepEqual(lengths(c), first);
  assert.deepEqual(lengths(new Chunker(params, gear)), first);
});
