import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { blobId } from "../../core/crypto.js";
import { catalogKind, segmentCodec, segmentPagesKind } from "../../repo/records-segment-levels.js";
import { ObjectKind, openObject } from "../../repo/sealed-object.js";
import { windowOf } from "./levels.js";
import { mergedHeader, mergePages, type Page, pageRecord } from "./merge.js";

// The vectors of docs/format.md, "Replication segments in levels" (scripts/gen-level-vectors.mjs).
const doc = readFileSync(new URL("../../../../docs/format.md", import.meta.url), "utf8");
const block = /<!-- vectors:levels:begin -->\s*```json\n([\s\S]*?)```\s*<!-- vectors:levels:end -->/.exec(
  doc,
);
if (!block) throw new Error("docs/format.md has no levels vectors block");
const v = JSON.parse(block[1]!);
const hex = (s: string) => Buffer.from(s, "hex");
const keys = { id: hex(v.keys.id), meta: hex(v.keys.meta) };

test("levels vectors: the generation label key and windows", () => {
  assert.equal(blobId(keys.id, Buffer.from(v.label.text)).toString("hex"), v.label.key);
  assert.equal(v.label.text, `lifeboat sqlite-gen ${v.label.generation}`);
  for (const w of v.windows) assert.equal(windowOf(w.time, w.window), w.index, JSON.stringify(w));
});

test("levels vectors: a segment with inline pages opens, decodes and encodes to the same plaintext", () => {
  assert.equal(v.segment.kind, ObjectKind.sqliteSegment);
  const plain = openObject(keys.meta, ObjectKind.sqliteSegment, hex(v.segment.sealed), "vector");
  assert.equal(plain.toString("hex"), v.segment.plaintext);
  const parsed = segmentPagesKind.schema.parse(segmentCodec.decode(plain));
  const { data, ...header } = parsed;
  assert.deepEqual(header, v.segment.header);
  assert.equal(data.toString("hex"), v.segment.data);
  assert.equal(segmentCodec.encode(parsed).toString("hex"), v.segment.plaintext);
  assert.equal(header.size, data.length);
  assert.equal(data.length, header.pages * (4 + header.pageSize));
});

test("levels vectors: merging interval segments keeps each page's last version above no later cut", async () => {
  const ps = v.merge.pageSize as number;
  const page = (c: number) => Buffer.alloc(ps, c);
  async function* pages(list: [number, number][]): AsyncGenerator<Page> {
    for (const [n, c] of list) yield { pgno: n, page: page(c) };
  }
  const got: [number, number][] = [];
  for await (const p of mergePages(
    v.merge.parts.map((p: { minDbPages: number; dbPages: number; pages: [number, number][] }) => ({
      minDbPages: p.minDbPages,
      dbPages: p.dbPages,
      pages: pages(p.pages),
    })),
  ))
    got.push([p.pgno, p.page[0]!]);
  assert.deepEqual(got, v.merge.pages);
  const parts = v.merge.parts.map(
    (p: { minDbPages: number; dbPages: number; pages: [number, number][] }, i: number) => ({
      ...v.segment.header,
      first: i,
      last: i,
      minDbPages: p.minDbPages,
      dbPages: p.dbPages,
    }),
  );
  const size = Buffer.concat(got.flatMap(([n, c]) => pageRecord(n, page(c)))).length;
  const h = mergedHeader(parts, 1, "2026-01-01T00:00:30.000Z", got.length, size);
  assert.deepEqual(
    {
      minDbPages: h.minDbPages,
      dbPages: h.dbPages,
      first: h.first,
      last: h.last,
      pages: h.pages,
      size: h.size,
    },
    v.merge.header,
  );
});

test("levels vectors: a catalog opens to its JSON and matches its schema", () => {
  const plain = openObject(keys.meta, ObjectKind.sqliteCatalog, hex(v.catalog.sealed), "vector");
  const json = JSON.parse(plain.toString("utf8"));
  assert.deepEqual(json, v.catalog.json);
  assert.deepEqual(catalogKind.schema.parse(json), v.catalog.json);
  assert.throws(
    () => openObject(keys.meta, ObjectKind.sqliteSegment, hex(v.catalog.sealed), "vector"),
    /kind/,
  );
});
