import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import {
  parseWalName,
  requireWalName,
  segmentName,
  segmentNumber,
  segmentOfLsn,
} from "../../src/sources/pg-pitr/wal-names.js";
import { hostileBytes } from "./mutate.js";
import { expectDecodes, fuzz } from "./support.js";

/** PostgreSQL WAL file names and LSNs (src/sources/pg-pitr/wal-names.ts). */
const names = [
  "000000010000000000000001",
  "00000002000000A3000000FF",
  "00000003.history",
  "000000010000000000000002.00000028.backup",
  "0000000100000000000000FE.partial",
];
const SEG = 16 * 1024 * 1024;

const name = fc.oneof(
  hostileBytes(
    names.map((n) => Buffer.from(n)),
    64,
  ).map((b) => b.toString("latin1")),
  fc.string({ maxLength: 50 }),
  fc.stringMatching(/^[0-9A-Fa-f]{24}(\.[a-z]{0,8})?$/),
);

test("fuzz WAL file names: a parsed name that round-trips, nothing, or a LifeboatError", () => {
  fuzz("parseWalName", [name], (s) => {
    expectDecodes(
      "parseWalName",
      s,
      () => parseWalName(s),
      (w) => {
        if (!w) return;
        assert.equal(w.name, s);
        assert.ok(Number.isInteger(w.timeline) && w.timeline >= 0 && w.timeline <= 0xffffffff);
        if (w.kind === "history") return;
        assert.ok(w.log !== undefined && w.seg !== undefined);
        // The 24-digit part names the same segment when written back (for 16 MiB segments,
        // whose segment half is below 0x100).
        if (w.seg < 0x100) assert.equal(segmentName(w.timeline, segmentNumber(w, SEG), SEG), s.slice(0, 24));
      },
    );
    expectDecodes("requireWalName", s, () => requireWalName(s));
  });
});

test("fuzz LSNs: a segment name or a LifeboatError", () => {
  const lsn = fc.oneof(
    fc
      .tuple(fc.nat({ max: 0xffffffff }), fc.nat({ max: 0xffffffff }))
      .map(([a, b]) => `${a.toString(16)}/${b.toString(16)}`),
    fc.string({ maxLength: 20 }),
  );
  fuzz("segmentOfLsn", [lsn, fc.nat({ max: 0xffffffff })], (l, tl) => {
    expectDecodes(
      "segmentOfLsn",
      l,
      () => segmentOfLsn(l, tl, SEG),
      (n) => {
        assert.match(n, /^[0-9A-F]{24}$/);
        assert.ok(parseWalName(n));
      },
    );
  });
});
