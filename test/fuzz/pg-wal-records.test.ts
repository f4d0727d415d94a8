import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import path from "node:path";
import { after, test } from "node:test";
import { localBackend } from "../../src/backend/local.js";
import { storageId } from "../../src/core/crypto.js";
import { parseKeyFile, unwrapKeyFile } from "../../src/repo/keys.js";
import { walKind } from "../../src/repo/records-wal.js";
import { Repository } from "../../src/repo/repository.js";
import { ObjectKind, sealObject } from "../../src/repo/sealed-object.js";
import {
  listWal,
  readWalRecordBytes,
  type WalRecord,
  walPush,
} from "../../src/sources/pg-pitr/wal-archive.js";
import { removeTempDir, tempDir } from "../support/cli.js";
import { plausibleEntry, prng } from "./fixtures.js";
import { hostileJson } from "./mutate.js";
import { expectDecodesAsync, fuzzAsync } from "./support.js";

/**
 * PostgreSQL WAL archive records (src/repo/records-wal.ts, read by the record store):
 * records written by walPush, damaged, read back, and the file bytes they lead to. A record's
 * blob hints go straight into the repository's index (readWalRecordBytes), so they must be as
 * plausible as an index entry.
 */
const dir = await tempDir("lifeboat-fuzz-wal-");
after(() => removeTempDir(dir));

process.env.LIFEBOAT_KDF_N = "1024";
const repo = await Repository.init(localBackend({ path: path.join(dir, "repo"), fsync: false }), "pw", {
  chunker: { min: 512, avg: 1024, max: 4096 },
});

// A timeline history file and a (small) segment with a long page header, pushed as archive_command would.
await fs.writeFile(path.join(dir, "00000002.history"), "1\t0/3000000\tno recovery target specified\n");
const segment = Buffer.concat([Buffer.alloc(40), prng(6000, 5), Buffer.alloc(6000, 1)]);
segment.writeUInt16LE(0xd113, 0);
segment.writeUInt16LE(0x0002, 2);
segment.writeBigUInt64LE(7000000000000000001n, 24);
segment.writeUInt32LE(16 * 1024 * 1024, 32);
await fs.writeFile(path.join(dir, "000000010000000000000001"), segment);
for (const f of ["00000002.history", "000000010000000000000001"]) await walPush(repo, path.join(dir, f));
const records = (await listWal(repo)).map((w) => w.record);
assert.equal(records.length, 2);
/** The metadata key, from the key file and its password, to seal damaged records as the repository would. */
const meta = (await unwrapKeyFile(parseKeyFile(await repo.backend.get(`keys/${repo.keyId}`), "key"), "pw"))!
  .meta;

function validRecord(r: WalRecord): void {
  const show = JSON.stringify(r).slice(0, 300);
  assert.equal(r.version, 1, show);
  for (const k of ["cluster", "name", "kind", "time", "host"] as const)
    assert.equal(typeof r[k], "string", `${k}: ${show}`);
  assert.ok(Number.isSafeInteger(r.size) && r.size >= 0, `size: ${show}`);
  assert.ok(Number.isSafeInteger(r.timeline) && r.timeline >= 0, `timeline: ${show}`);
  assert.match(r.sha256, /^[0-9a-f]{64}$/, show);
  assert.ok(Array.isArray(r.content) && r.content.every((c) => /^[0-9a-f]{64}$/.test(c)), `content: ${show}`);
  assert.ok(Array.isArray(r.blobs), `blobs: ${show}`);
  for (const b of r.blobs) {
    assert.match(b.id, /^[0-9a-f]{64}$/, show);
    assert.match(b.pack, /^[0-9a-f]{64}$/, show);
    plausibleEntry({ ...b, type: 0, id: Buffer.from(b.id, "hex") });
  }
}

test("fuzz WAL archive records: a record whose hints are plausible, or a LifeboatError", async () => {
  await fuzzAsync(
    "WAL record",
    [hostileJson(records)],
    async (buf) => {
      const stored = sealObject(meta, ObjectKind.wal, buf);
      const object = `wal/${"f".repeat(64)}/${storageId(stored)}`;
      await repo.backend.put(object, stored);
      try {
        const r = await expectDecodesAsync(
          "WAL record",
          buf,
          () => repo.records.read(walKind, object),
          validRecord,
        );
        if (r) await expectDecodesAsync("readWalRecordBytes", buf, () => readWalRecordBytes(repo, r));
      } finally {
        await repo.backend.delete(object);
        await repo.reloadIndex();
      }
    },
    0.5,
  );
});

test("WAL archive: the pushed records read back with their bytes", async () => {
  for (const r of records) {
    validRecord(r);
    assert.equal((await readWalRecordBytes(repo, r)).length, r.size);
  }
});
