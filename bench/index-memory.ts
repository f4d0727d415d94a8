/**
 * `npm run bench:index [-- COUNT]`: fills the in-memory index with COUNT random blobs (default
 * 10 million) and reports the bytes it takes per blob, and lookup speed.
 */
import { randomFillSync } from "node:crypto";
import { MasterIndex } from "../src/repo/master-index.js";

const count = Number(process.argv[2] ?? 10_000_000);
const before = process.memoryUsage();
const idx = new MasterIndex();
const id = Buffer.alloc(32);
const t0 = performance.now();
for (let i = 0; i < count; i++) {
  randomFillSync(id);
  idx.add({ type: 0, compression: 1, id, offset: i, length: 1000, rawLength: 2000 }, `pack${i >> 10}`);
}
const t1 = performance.now();
const after = process.memoryUsage();
const bytes = after.arrayBuffers + after.heapUsed - before.arrayBuffers - before.heapUsed;
let hits = 0;
const t2 = performance.now();
for (let i = 0; i < 1_000_000; i++) {
  randomFillSync(id);
  if (idx.has(id)) hits++;
}
const t3 = performance.now();
console.log(
  JSON.stringify({
    blobs: idx.size,
    bytesPerBlob: +(bytes / count).toFixed(1),
    insertsPerSecond: Math.round(count / ((t1 - t0) / 1000)),
    lookupsPerSecond: Math.round(1_000_000 / ((t3 - t2) / 1000)),
    falseHits: hits,
  }),
);
