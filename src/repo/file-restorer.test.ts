import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { memoryBackend } from "../backend/memory.js";
import { BlobType } from "./blob.js";
import { names } from "./config.js";
import type { FileOutcome, FileToRestore } from "./file-restorer.js";
import { Repository } from "./repository.js";

process.env.LIFEBOAT_KDF_N = "1024";

/**
 * Ranges of small files are restored in slices (sliceRange), shared between the worker and the
 * main thread. Packs of 256 KiB hold ~200 one-KiB blobs each, so every range is several slices:
 * a blob shared by files of different slices, files fed by blobs in several packs (kept open
 * between ranges), empty files and a damaged blob all have to come out as they did whole.
 */
test("a range of hundreds of small files restores in slices: shared blobs, files over several packs, a damaged blob", async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "lifeboat-slices-"));
  const be = memoryBackend();
  const repo = await Repository.init(be, "pw", {
    chunker: { min: 512, avg: 1024, max: 4096 },
    packSize: 256 * 1024,
  });
  try {
    const shared = randomBytes(1024);
    const contents: Buffer[][] = [];
    const late: [number, Buffer][] = [];
    for (let i = 0; i < 700; i++) {
      if (i % 100 === 7) contents.push([]);
      else if (i % 10 === 3) contents.push([shared, randomBytes(900)]);
      else if (i % 50 === 11) {
        // Its second blob is stored after hundreds of others: in a later pack.
        const second = randomBytes(1000);
        contents.push([randomBytes(700), second]);
        late.push([i, second]);
      } else contents.push([randomBytes(600 + (i % 1400))]);
    }
    const ids = new Map<Buffer, string>();
    await repo.withWriter(async (w) => {
      const lateSet = new Set(late.map(([, b]) => b));
      for (const blobs of contents)
        for (const b of blobs)
          if (!lateSet.has(b) && !ids.has(b))
            ids.set(b, (await w.saveBlob(BlobType.data, b)).id.toString("hex"));
      for (const [, b] of late) ids.set(b, (await w.saveBlob(BlobType.data, b)).id.toString("hex"));
    });
    const packs = [...be.objects().keys()].filter((n) => n.startsWith("data/"));
    assert.ok(packs.length >= 3, `${packs.length} packs`);
    // One blob of file 500 is damaged: that file fails, its neighbours in the range do not.
    const damaged = repo.lookup(Buffer.from(ids.get(contents[500]![0]!)!, "hex"))!;
    be.objects().get(names.pack(damaged.packId))![damaged.offset + 20]! ^= 1;

    const meta = { mode: 0o640, uid: 0, gid: 0, mtimeNs: "1700000000000000000", chown: false };
    const files: FileToRestore[] = contents.map((blobs, i) => ({
      dest: path.join(dir, `f${i}`),
      direct: true,
      size: blobs.reduce((n, b) => n + b.length, 0),
      meta,
      label: `file f${i}`,
      content: blobs.map((b) => ids.get(b)!),
    }));
    const outcomes = new Map<number, FileOutcome>();
    let bytes = 0;
    await repo.restoreFiles(files, {
      onFile: (i, o) => {
        assert.ok(!outcomes.has(i), `file ${i} reported twice`);
        outcomes.set(i, o);
      },
      onBytes: (n) => {
        bytes += n;
      },
    });
    assert.equal(outcomes.size, files.length);
    for (const [i, blobs] of contents.entries()) {
      const o = outcomes.get(i)!;
      if (i === 500) {
        assert.equal(o.ok, false);
        await assert.rejects(fs.stat(files[i]!.dest), { code: "ENOENT" });
        continue;
      }
      assert.ok(o.ok, `file ${i}: ${o.ok ? "" : String(o.error)}`);
      assert.deepEqual(await fs.readFile(files[i]!.dest), Buffer.concat(blobs), `file ${i}`);
      assert.equal((await fs.stat(files[i]!.dest)).mode & 0o777, 0o640);
    }
    const expected = contents.reduce(
      (n, blobs, i) => (i === 500 ? n : n + blobs.reduce((m, b) => m + b.length, 0)),
      0,
    );
    assert.ok(bytes >= expected, `${bytes} bytes counted, ${expected} written`);
  } finally {
    await repo.close();
    await fs.rm(dir, { recursive: true, force: true });
  }
});
