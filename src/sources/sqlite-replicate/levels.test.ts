import assert from "node:assert/strict";
import { test } from "node:test";
import { cheapestChain, levelsInUse, parseLevels } from "./levels.js";
import { mergePages, type Page } from "./merge.js";

const ms = (s: string) => {
  const m = /^(\d+)(ms|s|m|h)$/.exec(s);
  if (!m) throw new Error(`bad ${s}`);
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as "s"];
};

test("levels: parsed from KEEP0,WINDOW:KEEP,...; windows nest; only levels whose finer one expires are made", () => {
  const l = parseLevels("5m,30s:1h,5m:24h,1h", ms);
  assert.deepEqual(
    l.map((x) => [x.windowMs, x.keepMs]),
    [
      [0, 300_000],
      [30_000, 3_600_000],
      [300_000, 86_400_000],
      [3_600_000, Number.POSITIVE_INFINITY],
    ],
  );
  assert.equal(levelsInUse(l, 86_400_000), 3, "5-minute segments last the 24 h retention: no hourly ones");
  assert.equal(levelsInUse(l, 7 * 86_400_000), 4);
  assert.equal(levelsInUse(l, 60_000), 1);
  assert.throws(() => parseLevels("5m,30s:1h,45s:2h", ms), /multiple/);
  assert.throws(() => parseLevels("5m,30s,5m:1h", ms), /only the last/);
  assert.throws(() => parseLevels("5m,5m:1h,30s", ms), /multiple|grow/);
});

const seg = (level: number, first: number, last: number, t: number, size = 1000) => ({
  level,
  first,
  last,
  commitsBefore: t,
  size,
});

test("cheapestChain: coarse segments where they reach, finer after them, nothing past the limit", () => {
  const all = [
    ...Array.from({ length: 12 }, (_, i) => seg(0, i, i, 100 + i * 10)),
    seg(1, 0, 3, 130, 2500),
    seg(1, 4, 7, 170, 2500),
    seg(2, 0, 7, 170, 4000),
  ];
  const ids = (c: typeof all | undefined) => c?.map((x) => `${x.level}:${x.first}-${x.last}`);
  assert.deepEqual(ids(cheapestChain(all, 0)), ["2:0-7", "0:8-8", "0:9-9", "0:10-10", "0:11-11"]);
  // T inside the level-2 range: level 1 up to where it reaches, then interval segments.
  assert.deepEqual(ids(cheapestChain(all, 0, { limit: 165 })), ["1:0-3", "0:4-4", "0:5-5", "0:6-6"]);
  assert.deepEqual(ids(cheapestChain(all, 0, { limit: 99 })), []);
  // With a gap (segment 9 missing) the chain stops before it.
  assert.deepEqual(
    ids(
      cheapestChain(
        all.filter((x) => !(x.level === 0 && x.first === 9)),
        0,
      ),
    ),
    ["2:0-7", "0:8-8"],
  );
  // Compaction: exactly first..last, or nothing.
  assert.deepEqual(ids(cheapestChain(all, 4, { to: 7 })), ["1:4-7"]);
  assert.equal(
    cheapestChain(
      all.filter((x) => x.level === 0 && x.first !== 5),
      4,
      { to: 7 },
    ),
    undefined,
  );
});

async function* pagesFrom(list: [number, string][]): AsyncGenerator<Page> {
  for (const [pgno, text] of list) yield { pgno, page: Buffer.from(text) };
}

test("mergePages: last version of each page, minus pages a later segment cut off and did not write again", async () => {
  const merged: [number, string][] = [];
  for await (const p of mergePages([
    {
      minDbPages: 10,
      dbPages: 10,
      pages: pagesFrom([
        [2, "a2"],
        [7, "a7"],
        [9, "a9"],
      ]),
    },
    // Cut to 6 pages (VACUUM), then grown to 8: 7 written again, 9 gone.
    {
      minDbPages: 6,
      dbPages: 8,
      pages: pagesFrom([
        [2, "b2"],
        [7, "b7"],
        [8, "b8"],
      ]),
    },
    {
      minDbPages: 8,
      dbPages: 8,
      pages: pagesFrom([
        [3, "c3"],
        [8, "c8"],
      ]),
    },
  ]))
    merged.push([p.pgno, p.page.toString()]);
  assert.deepEqual(merged, [
    [2, "b2"],
    [3, "c3"],
    [7, "b7"],
    [8, "c8"],
  ]);
});
