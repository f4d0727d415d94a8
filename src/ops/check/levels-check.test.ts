import assert from "node:assert/strict";
import { test } from "node:test";
import { memoryBackend } from "../../backend/memory.js";
import { catalogKind, type SegmentHeader, segmentPagesKind } from "../../repo/records-segment-levels.js";
import { Repository } from "../../repo/repository.js";
import { check } from "./check.js";

const GEN = "00112233aabbccdd";
const SOURCE = "sqlite:/db/app.db";

function header(first: number, last: number, level = 0): SegmentHeader {
  const t = new Date(Date.UTC(2026, 0, 1, 0, 0, last + 1)).toISOString();
  const p = { salt1: 1, salt2: 2, checkpointSeq: 0, offset: 32 };
  return {
    version: 1,
    source: SOURCE,
    hostname: "h",
    generation: GEN,
    level,
    first,
    last,
    walStart: p,
    walEnd: p,
    walRestarted: false,
    pageSize: 4096,
    minDbPages: 1,
    dbPages: 1,
    frames: 1,
    commits: 1,
    pages: 0,
    commitsAfter: t,
    commitsBefore: t,
    storedAt: t,
    size: 0,
  };
}

/** A generation in levels: a catalog listing a merged 0..1 and interval 2, then intervals 3..5 shipped since. */
async function generation() {
  const repo = await Repository.init(memoryBackend(), "pw");
  const seg = async (first: number, last: number, level = 0) =>
    (
      await repo.records.write(
        segmentPagesKind,
        { ...header(first, last, level), data: Buffer.alloc(0) },
        { label: GEN },
      )
    ).object;
  const merged = await seg(0, 1, 1);
  const two = await seg(2, 2);
  const later = [await seg(3, 3), await seg(4, 4), await seg(5, 5)];
  const entry = (object: string, h: SegmentHeader) => ({
    object,
    level: h.level,
    first: h.first,
    last: h.last,
    commitsAfter: h.commitsAfter,
    commitsBefore: h.commitsBefore,
    size: 0,
  });
  const catalog = await repo.records.write(
    catalogKind,
    {
      version: 1,
      source: SOURCE,
      hostname: "h",
      generation: GEN,
      seq: 0,
      written: new Date().toISOString(),
      machine: "h",
      pid: 1,
      segments: [entry(merged, header(0, 1, 1)), entry(two, header(2, 2))],
      replaced: [],
    },
    { label: GEN },
  );
  return { repo, merged, two, later, catalog: catalog.object };
}

const missing = async (repo: Repository) =>
  (await check(repo)).problems
    .filter((p) => p.kind === "missing-record")
    .map((p) => `${p.object}: ${p.message}`);

test("check: a generation in levels whole is clean; its newest unlisted segment deleted looks unshipped", async () => {
  const g = await generation();
  assert.deepEqual(await missing(g.repo), []);
  await g.repo.backend.delete(g.later[2]!);
  assert.deepEqual(
    await missing(g.repo),
    [],
    "the newest segment no catalog lists: not shipped yet, by design",
  );
});

test("check: a segment its catalog lists, deleted, is named", async () => {
  const g = await generation();
  await g.repo.backend.delete(g.two);
  const found = await missing(g.repo);
  assert.equal(found.length, 2, found.join("\n")); // listed and missing; and the hole at interval 2
  assert.ok(found[0]!.startsWith(`${g.two}: replication segment 2..2 (level 0)`), found[0]);
  assert.match(found[1]!, /intervals 2\.\.2 .* are in no stored segment/);
});

test("check: a gap among segments shipped since the catalog (restore --time would stop there) is found", async () => {
  const g = await generation();
  await g.repo.backend.delete(g.later[1]!);
  const found = await missing(g.repo);
  assert.equal(found.length, 1, found.join("\n"));
  assert.match(
    found[0]!,
    /^sqlite-seg\/[0-9a-f]+\/ \(intervals 4\.\.4 of sqlite:\/db\/app\.db, generation 00112233\)/,
  );
});

test("check: a deleted catalog is found once the generation has its snapshot, not before", async () => {
  const g = await generation();
  await g.repo.backend.delete(g.catalog);
  assert.deepEqual(
    await missing(g.repo),
    [],
    "segments without a snapshot: a generation starting, or retention",
  );
});
