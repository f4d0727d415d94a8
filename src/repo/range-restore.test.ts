import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { Compression, maybeCompress } from "../core/compress.js";
import { blobId } from "../core/crypto.js";
import { BlobType } from "./blob.js";
import type { RangeJob } from "./blob-pool.js";
import { newPackKey, PackBuilder } from "./pack.js";
import { restoreRange } from "./range-restore.js";

test("a range of stored and compressed blobs restores whole, round after round, the stored ones freed as they are written", async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "lifeboat-range-"));
  try {
    const idKey = randomBytes(32);
    const k = newPackKey({ root: randomBytes(32) });
    // Incompressible (stored as is: decrypted into memory of its own), compressible (into the
    // scratch buffer, 1 MiB at first), and one exactly the scratch's size.
    const plains = [
      randomBytes(1536 * 1024),
      Buffer.alloc(3 * 1024 * 1024, "line of a log\n"),
      randomBytes(1024 * 1024),
    ];
    const pack = new PackBuilder(BlobType.data, k, 8 * 1024 * 1024);
    const ids = plains.map((p) => {
      const id = blobId(idKey, p);
      const { data, compression } = maybeCompress(p);
      pack.add(id, data, compression, p.length);
      return { id, compression };
    });
    assert.deepEqual(
      ids.map((i) => i.compression),
      [Compression.none, Compression.zstd, Compression.none],
    );
    const { bytes, entries } = pack.finish();
    const meta = { mode: 0o644, uid: 0, gid: 0, mtimeNs: "1700000000000000000", chown: false };
    for (const round of [1, 2, 3]) {
      const job: RangeJob = {
        sealed: Buffer.from(bytes), // each job's own copy, as a worker gets it
        key: k.key,
        what: "data/test",
        blobs: entries.map((e, i) => ({
          at: e.offset,
          length: e.length,
          blob: e.id,
          type: e.type,
          compression: e.compression,
          rawLength: e.rawLength,
          to: [i, 0],
        })),
        files: plains.map((p, i) => ({
          kind: "new" as const,
          dest: path.join(dir, `r${round}-f${i}`),
          direct: true,
          size: p.length,
          meta,
        })),
      };
      const outcomes = restoreRange(job, idKey);
      assert.ok(
        outcomes.every((o) => !o.failure),
        JSON.stringify(outcomes.map((o) => o.failure?.message)),
      );
      for (const [i, p] of plains.entries())
        assert.ok(
          (await fs.readFile(path.join(dir, `r${round}-f${i}`))).equals(p),
          `round ${round}, file ${i}`,
        );
    }
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});
