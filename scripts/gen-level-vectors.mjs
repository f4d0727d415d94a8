#!/usr/bin/env node
// Prints the test vectors of docs/format.md, "Replication segments in levels" (JSON). Sealing
// uses random salts and nonces, so re-running gives new ciphertexts; the vectors in the doc are
// one such run, and src/sources/sqlite-replicate/format-vectors.test.ts checks that this
// implementation opens and decodes them, and re-derives every deterministic value exactly.
// Usage: npm run build && node scripts/gen-level-vectors.mjs
import { blobId } from "../dist/src/core/crypto.js";
import { segmentCodec } from "../dist/src/repo/records-segment-levels.js";
import { ObjectKind, sealObject } from "../dist/src/repo/sealed-object.js";
import { windowOf } from "../dist/src/sources/sqlite-replicate/levels.js";
import { mergedHeader, mergePages, pageRecord } from "../dist/src/sources/sqlite-replicate/merge.js";

const k = (b) => Buffer.alloc(32, b);
const keys = { id: k(3), meta: k(2) };
const generation = "0123456789abcdef";
const pageSize = 512;
const page = (c) => Buffer.alloc(pageSize, c);
const hex = (b) => b.toString("hex");

const header = (level, first, last, minDbPages, dbPages, pages, size, after, before) => ({
  version: 1,
  source: "sqlite:/srv/app.db",
  hostname: "h",
  generation,
  level,
  first,
  last,
  walStart: {
    salt1: 1,
    salt2: 2,
    checkpointSeq: 0,
    offset: first === 0 ? 32 : 32 + first * 2 * (24 + pageSize),
  },
  walEnd: { salt1: 1, salt2: 2, checkpointSeq: 0, offset: 32 + (last + 1) * 2 * (24 + pageSize) },
  walRestarted: false,
  pageSize,
  minDbPages,
  dbPages,
  frames: 2 * (last - first + 1),
  commits: last - first + 1,
  pages,
  commitsAfter: after,
  commitsBefore: before,
  storedAt: before,
  size,
});

// Three interval segments: the second one cuts the database to 3 pages (VACUUM) and grows it to 4.
const parts = [
  {
    pages: [
      [2, 0x61],
      [5, 0x62],
    ],
    min: 5,
    db: 5,
  },
  {
    pages: [
      [2, 0x63],
      [4, 0x64],
    ],
    min: 3,
    db: 4,
  },
  {
    pages: [
      [3, 0x65],
      [4, 0x66],
    ],
    min: 4,
    db: 4,
  },
].map((p, i) => {
  const data = Buffer.concat(p.pages.flatMap(([n, c]) => pageRecord(n, page(c))));
  const t = (s) => `2026-01-01T00:00:${String(s).padStart(2, "0")}.000Z`;
  return { ...p, data, header: header(0, i, i, p.min, p.db, p.pages.length, data.length, t(i), t(i + 1)) };
});
async function* pagesOf(p) {
  for (const [n, c] of p.pages) yield { pgno: n, page: page(c) };
}
const merged = [];
for await (const p of mergePages(parts.map((p) => ({ minDbPages: p.min, dbPages: p.db, pages: pagesOf(p) }))))
  merged.push([p.pgno, p.page[0]]);
const mergedData = Buffer.concat(merged.flatMap(([n, c]) => pageRecord(n, page(c))));
const mh = mergedHeader(
  parts.map((p) => p.header),
  1,
  "2026-01-01T00:00:30.000Z",
  merged.length,
  mergedData.length,
);

const first = parts[0];
const plain = segmentCodec.encode({ ...first.header, data: first.data });
const catalog = {
  version: 1,
  source: "sqlite:/srv/app.db",
  hostname: "h",
  generation,
  seq: 3,
  written: "2026-01-01T00:00:31.000Z",
  machine: "h",
  pid: 4242,
  segments: [
    {
      object: `sqlite-seg/${hex(blobId(keys.id, Buffer.from(`lifeboat sqlite-gen ${generation}`)))}/${"ab".repeat(32)}`,
      level: 1,
      first: 0,
      last: 2,
      commitsAfter: mh.commitsAfter,
      commitsBefore: mh.commitsBefore,
      size: mh.size,
    },
  ],
  replaced: [],
};

const out = {
  keys: { id: hex(keys.id), meta: hex(keys.meta) },
  label: {
    generation,
    text: `lifeboat sqlite-gen ${generation}`,
    key: hex(blobId(keys.id, Buffer.from(`lifeboat sqlite-gen ${generation}`))),
  },
  windows: [
    [30000, 30000],
    [30001, 30000],
    [59999, 30000],
    [300000, 300000],
  ].map(([t, w]) => ({ time: t, window: w, index: windowOf(t, w) })),
  segment: {
    kind: ObjectKind.sqliteSegment,
    header: first.header,
    data: hex(first.data),
    plaintext: hex(plain),
    sealed: hex(sealObject(keys.meta, ObjectKind.sqliteSegment, plain)),
  },
  merge: {
    pageSize,
    parts: parts.map((p) => ({ minDbPages: p.min, dbPages: p.db, pages: p.pages.map(([n, c]) => [n, c]) })),
    pages: merged,
    header: {
      minDbPages: mh.minDbPages,
      dbPages: mh.dbPages,
      first: mh.first,
      last: mh.last,
      pages: mh.pages,
      size: mh.size,
    },
  },
  catalog: {
    kind: ObjectKind.sqliteCatalog,
    json: catalog,
    sealed: hex(sealObject(keys.meta, ObjectKind.sqliteCatalog, Buffer.from(JSON.stringify(catalog)))),
  },
};
console.log(JSON.stringify(out, null, 1));
