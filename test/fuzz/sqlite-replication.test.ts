import assert from "node:assert/strict";
import { promises as fs, readFileSync } from "node:fs";
import path from "node:path";
import { after, test } from "node:test";
import Database from "better-sqlite3";
import { localBackend } from "../../src/backend/local.js";
import { storageId } from "../../src/core/crypto.js";
import { parseKeyFile, unwrapKeyFile } from "../../src/repo/keys.js";
import { Repository } from "../../src/repo/repository.js";
import { ObjectKind, sealObject } from "../../src/repo/sealed-object.js";
import {
  listSegments,
  SEGMENT_PREFIX,
  type SegmentDoc,
  segmentPages,
  storePages,
  writeSegment,
} from "../../src/sources/sqlite-replicate/segments.js";
import {
  parseWalHeader,
  scanWal,
  WAL_HEADER,
  type WalHeader,
} from "../../src/sources/sqlite-replicate/wal.js";
import { removeTempDir, tempDir } from "../support/cli.js";
import { hostileBytes, hostileJson } from "./mutate.js";
import { expectDecodes, expectDecodesAsync, fuzz, fuzzAsync } from "./support.js";

/**
 * SQLite replication (src/sources/sqlite-replicate): the WAL reader over damaged WAL files, and
 * segment documents and their page records read back from a real repository. The valid inputs
 * come from SQLite itself (a database in WAL mode) and from the segment writer.
 */
const dir = await tempDir("lifeboat-fuzz-sqlite-");
after(() => removeTempDir(dir));

/** WAL files as SQLite writes them: page sizes 512 and 4096, several commits, an open transaction's frames. */
function makeWal(name: string, pageSize: number): Buffer {
  const file = path.join(dir, name);
  const db = new Database(file);
  db.pragma(`page_size = ${pageSize}`);
  db.pragma("journal_mode = WAL");
  db.pragma("wal_autocheckpoint = 0");
  db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)");
  const ins = db.prepare("INSERT INTO t (v) VALUES (?)");
  for (let i = 0; i < 6; i++) db.transaction(() => ins.run("row ".repeat(20 + i * 50)))();
  db.exec("UPDATE t SET v = 'changed' WHERE id = 2");
  const wal = readFileSync(`${file}-wal`);
  db.close();
  return wal;
}

const wals = [makeWal("a.db", 4096), makeWal("b.db", 512)];
const headers = wals.map((w) => parseWalHeader(w)!);
assert.ok(
  headers.every((h) => h !== undefined),
  "SQLite wrote a WAL header we cannot read",
);

test("fuzz WAL header: a checked header or nothing", () => {
  fuzz(
    "parseWalHeader",
    [
      hostileBytes(
        wals.map((w) => w.subarray(0, WAL_HEADER)),
        64,
      ),
    ],
    (buf) => {
      expectDecodes(
        "parseWalHeader",
        buf,
        () => parseWalHeader(buf),
        (h) => {
          if (h === undefined) return;
          assert.ok(h.pageSize >= 512 && h.pageSize <= 65536 && (h.pageSize & (h.pageSize - 1)) === 0);
        },
      );
    },
  );
});

test("fuzz WAL scan: damaged logs give their committed frames and nothing else", async () => {
  const file = path.join(dir, "fuzz.db-wal");
  await fuzzAsync("scanWal", [hostileBytes(wals)], async (buf) => {
    await fs.writeFile(file, buf);
    // The header as read from the damaged file, or (when it no longer checks) the original.
    const hdr: WalHeader = parseWalHeader(buf) ?? headers[buf.length % headers.length]!;
    const fh = await fs.open(file, "r");
    try {
      await expectDecodesAsync(
        "scanWal",
        buf,
        () => scanWal(fh, hdr, WAL_HEADER, hdr.checksum),
        (scan) => {
          const frame = 24 + hdr.pageSize;
          assert.ok(scan.end >= WAL_HEADER && scan.end <= Math.max(buf.length, WAL_HEADER));
          assert.equal((scan.end - WAL_HEADER) % frame, 0);
          assert.equal(scan.commits > 0, scan.dbPages > 0);
          for (const [pgno, page] of scan.pages) {
            assert.ok(pgno >= 1 && page.length === hdr.pageSize);
          }
        },
      );
    } finally {
      await fh.close();
    }
  });
});

// --- segments in a repository ----------------------------------------------------------------

process.env.LIFEBOAT_KDF_N = "1024";
const repo = await Repository.init(localBackend({ path: path.join(dir, "repo"), fsync: false }), "pw", {
  chunker: { min: 512, avg: 1024, max: 4096 },
});
/** The metadata key, from the key file and its password, to seal damaged documents as the repository would. */
const meta = (await unwrapKeyFile(parseKeyFile(await repo.backend.get(`keys/${repo.keyId}`), "key"), "pw"))!
  .meta;

/** Segment documents as the replicator writes them (replicator.ts `ship`). */
async function segmentOf(wal: Buffer, hdr: WalHeader, index: number): Promise<SegmentDoc> {
  const file = path.join(dir, `seg-${index}.db-wal`);
  await fs.writeFile(file, wal);
  const fh = await fs.open(file, "r");
  const scan = await scanWal(fh, hdr, WAL_HEADER, hdr.checksum).finally(() => fh.close());
  const stored = await repo.withWriter((w) => storePages(w, scan.pages, scan.dbPages));
  return {
    version: 1,
    source: "sqlite:/srv/app.db",
    hostname: "host",
    generation: "0123456789abcdef",
    index,
    wal: {
      salt1: hdr.salt1,
      salt2: hdr.salt2,
      checkpointSeq: hdr.checkpointSeq,
      start: WAL_HEADER,
      end: scan.end,
    },
    walRestarted: false,
    pageSize: hdr.pageSize,
    dbPages: scan.dbPages,
    frames: scan.frames,
    commits: scan.commits,
    pages: stored.count,
    commitsAfter: "2026-01-01T00:00:00.000Z",
    commitsBefore: "2026-01-01T00:00:01.000Z",
    storedAt: "2026-01-01T00:00:02.000Z",
    size: stored.size,
    content: stored.content,
  };
}
const segDocs = [await segmentOf(wals[0]!, headers[0]!, 0), await segmentOf(wals[1]!, headers[1]!, 1)];
assert.ok(
  segDocs.every((d) => d.content.length > 1),
  "segments should span several blobs",
);

const isCount = (v: unknown) => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;

/** A segment document as SegmentDoc declares it, so restore and prune can trust its fields. */
function validSegment(d: SegmentDoc): void {
  const show = JSON.stringify(d).slice(0, 300);
  assert.equal(d.version, 1, show);
  for (const k of ["source", "hostname", "generation"] as const)
    assert.equal(typeof d[k], "string", `${k}: ${show}`);
  for (const k of ["index", "dbPages", "frames", "commits", "pages", "size"] as const)
    assert.ok(isCount(d[k]), `${k}: ${show}`);
  for (const k of ["salt1", "salt2", "checkpointSeq", "start", "end"] as const)
    assert.ok(isCount(d.wal?.[k]), `wal.${k}: ${show}`);
  assert.equal(typeof d.walRestarted, "boolean", show);
  assert.ok([512, 1024, 2048, 4096, 8192, 16384, 32768, 65536].includes(d.pageSize), `pageSize: ${show}`);
  for (const k of ["commitsAfter", "commitsBefore", "storedAt"] as const)
    assert.ok(typeof d[k] === "string" && !Number.isNaN(Date.parse(d[k])), `${k}: ${show}`);
  assert.ok(Array.isArray(d.content) && d.content.every((c) => /^[0-9a-f]{64}$/.test(c)), `content: ${show}`);
}

test("fuzz segment documents and page records: valid segments and pages, or a LifeboatError", async () => {
  await fuzzAsync(
    "segments",
    [hostileJson(segDocs)],
    async (buf) => {
      const stored = sealObject(meta, ObjectKind.sqliteWal, buf);
      const id = storageId(stored);
      await repo.backend.put(`${SEGMENT_PREFIX}${id}`, stored);
      try {
        const segs = await expectDecodesAsync(
          "listSegments",
          buf,
          () => listSegments(repo, undefined),
          (list) => {
            for (const s of list) validSegment(s.doc);
          },
        );
        for (const s of segs ?? []) {
          await expectDecodesAsync("segmentPages", buf, async () => {
            let n = 0;
            for await (const { pgno, page } of segmentPages(repo, s.doc, s.id)) {
              assert.ok(Number.isInteger(pgno) && pgno >= 0);
              assert.equal(page.length, s.doc.pageSize);
              n++;
            }
            return n;
          });
        }
      } finally {
        await repo.backend.delete(`${SEGMENT_PREFIX}${id}`);
      }
    },
    0.5,
  );
});

test("segments: the writer's documents read back with their pages", async () => {
  const written = await Promise.all(segDocs.map((d) => writeSegment(repo, d)));
  const segs = await listSegments(repo, undefined);
  assert.equal(segs.length, 2);
  for (const s of segs) {
    validSegment(s.doc);
    let n = 0;
    for await (const _ of segmentPages(repo, s.doc, s.id)) n++;
    assert.equal(n, s.doc.pages);
  }
  for (const w of written) await repo.records.delete(w.object);
});
