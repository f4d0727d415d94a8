// How much a backup holds while packs upload: full packs wait for an upload slot instead of
// piling up, and a stored pack's memory carries the next one (nothing of it leaks into it); on
// storage that takes objects in pieces, packs are streamed and never held whole.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { promises as fs } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import type { Backend } from "../../src/backend/backend.js";
import { localBackend } from "../../src/backend/local.js";
import { memoryBackend } from "../../src/backend/memory.js";
import { BlobType } from "../../src/repo/blob.js";
import { PackBuilder } from "../../src/repo/pack.js";
import { Repository } from "../../src/repo/repository.js";
import { tempDir } from "../support/cli.js";
import { noise, PW, SMALL } from "./support.js";

/** A memory backend whose pack uploads wait until `open()` is called. */
function slowPacks() {
  const mem = memoryBackend();
  let open = () => {};
  const opened = new Promise<void>((r) => {
    open = r;
  });
  let waiting = 0;
  const be: Backend = {
    ...mem,
    async put(name, data, o) {
      if (name.startsWith("data/")) {
        waiting++;
        await opened;
        waiting--;
      }
      return mem.put(name, data, o);
    },
  };
  return { be, open, waiting: () => waiting };
}

const turns = async (n: number) => {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
};

test("full packs wait for an upload slot: while uploads stall, at most two upload, one waits and one fills", async () => {
  const { be, open, waiting } = slowPacks();
  const repo = await Repository.init(be, PW, SMALL); // 64 KiB packs
  const blobs = Array.from({ length: 40 }, () => noise(16 * 1024)); // 4 fill a pack
  let saved = 0;
  const ids = await repo.withWriter(async (w) => {
    const all = blobs.map((b) =>
      w.saveBlob(BlobType.data, b).then((r) => {
        saved++;
        return r.id;
      }),
    );
    try {
      await turns(50);
      assert.equal(waiting(), 2, "two uploads in flight");
      // Two packs uploading (8 blobs) and three blobs of a third that is full and waits: the
      // blob that filled it waits with it, and nothing starts a fourth. Without the bound every
      // producer that found its pack full started another: 32 of the 40 had returned.
      assert.ok(saved <= 12, `${saved} of 40 blobs accepted while uploads stall`);
    } finally {
      open();
    }
    return Promise.all(all);
  });
  assert.equal(saved, 40);
  // Every pack after the first two was built in the memory of one already stored: all read back.
  for (const [i, id] of ids.entries()) assert.deepEqual(await repo.loadBlob(id), blobs[i]);
  await repo.close();
});

test("a pack builder builds in memory it is given when that is large enough, and in its own otherwise", () => {
  const key = Buffer.alloc(32, 7);
  const memory = Buffer.alloc(64 * 1024, 0xee);
  const a = new PackBuilder(BlobType.data, key, 32 * 1024, memory);
  assert.equal(a.memory, memory);
  a.add(Buffer.alloc(32, 1), noise(1000), 0, 1000);
  const first = Buffer.from(a.finish().bytes);
  // The same memory again: what the earlier pack left there never shows in the next one.
  const b = new PackBuilder(BlobType.data, key, 32 * 1024, a.memory);
  b.add(Buffer.alloc(32, 2), noise(10), 0, 10);
  const second = b.finish().bytes;
  assert.ok(second.length < first.length);
  assert.equal(second.buffer, memory.buffer);
  const small = new PackBuilder(BlobType.data, key, 128 * 1024, memory);
  assert.notEqual(small.memory, memory, "too small to reuse");
});

test("a writer lets go of spare pack memory when it flushes", async () => {
  const be = memoryBackend();
  const repo = await Repository.init(be, PW, SMALL);
  await repo.withWriter(async (w) => {
    for (let i = 0; i < 12; i++) await w.saveBlob(BlobType.data, noise(16 * 1024));
  });
  const writer = (repo as unknown as { writer?: { spare?: Buffer } }).writer;
  assert.equal(writer?.spare, undefined);
  await repo.close();
});

/** A local backend whose streamed writes go through `hook` first (which may throw). */
function hookedWrites(root: string, hook: (d: Uint8Array) => void): Backend {
  const local = localBackend({ path: root, fsync: false });
  return {
    ...local,
    async openWriter(folder) {
      const w = await local.openWriter!(folder);
      return {
        ...w,
        async write(d) {
          hook(d);
          return w.write(d);
        },
      };
    },
  };
}

/** Every file below `root` whose name marks it temporary. */
async function temporaries(root: string): Promise<string[]> {
  return (await fs.readdir(root, { recursive: true })).filter((n) => n.includes(".tmp-"));
}

test("on storage that takes objects in pieces, packs are streamed as they fill and come back whole", async () => {
  const root = await tempDir();
  try {
    const writes: number[] = [];
    const be = hookedWrites(root, (d) => writes.push(d.length));
    // 4 MiB packs of 256 KiB-1 MiB blobs: many pieces per pack, and blobs larger than a piece.
    const repo = await Repository.init(be, PW, {
      chunker: { min: 64 * 1024, avg: 256 * 1024, max: 2 * 1024 * 1024 },
      packSize: 4 * 1024 * 1024,
    });
    const blobs = Array.from({ length: 40 }, (_, i) => noise(256 * 1024 + i * 20 * 1024));
    const ids = await repo.withWriter(async (w) => {
      const out: Buffer[] = [];
      for (const b of blobs) out.push((await w.saveBlob(BlobType.data, b)).id);
      return out;
    });
    const packs = (await fs.readdir(path.join(root, "data"), { recursive: true })).filter((n) =>
      /^[0-9a-f]{2}\/[0-9a-f]{64}$/.test(n),
    );
    assert.ok(packs.length >= 5, `${packs.length} packs`);
    assert.ok(writes.length > packs.length * 3, `${writes.length} pieces written for ${packs.length} packs`);
    assert.ok(Math.max(...writes) <= 2 * 1024 * 1024, "no piece holds a whole pack");
    assert.deepEqual(await temporaries(root), []);
    await repo.close();
    // Read back by a fresh process's view: each pack's name is the hash of its bytes, its header
    // lists its blobs, and every blob decrypts and verifies.
    const again = await Repository.open(localBackend({ path: root }), PW);
    for (const [i, id] of ids.entries()) assert.deepEqual(await again.loadBlob(id), blobs[i]);
    for (const p of packs) {
      const bytes = await fs.readFile(path.join(root, "data", p));
      assert.equal(createHash("sha256").update(bytes).digest("hex"), path.basename(p));
    }
    await again.close();
  } finally {
    await fs.rm(root, { recursive: true, force: true });
  }
});

test("a streamed pack that fails to write leaves no half-written object and no temporary file", async () => {
  const root = await tempDir();
  try {
    let pieces = 0;
    const be = hookedWrites(root, () => {
      if (++pieces === 3) throw new Error("disk on fire"); // the writer must clean up
    });
    const repo = await Repository.init(be, PW, SMALL); // 64 KiB packs
    await assert.rejects(
      repo.withWriter(async (w) => {
        for (let i = 0; i < 40; i++) await w.saveBlob(BlobType.data, noise(20 * 1024));
      }),
      /disk on fire/,
    );
    assert.ok(pieces >= 3);
    assert.deepEqual(await temporaries(root), []);
    await repo.close();
    const again = await Repository.open(localBackend({ path: root }), PW);
    // Whatever packs were stored before the failure are whole and indexed; none is half there.
    for (const p of await collectNames(again.backend, "data/")) {
      const bytes = await again.backend.get(p);
      assert.equal(createHash("sha256").update(bytes).digest("hex"), path.basename(p));
    }
    await again.close();
  } finally {
    await fs.rm(root, { recursive: true, force: true });
  }
});

async function collectNames(be: Backend, prefix: string): Promise<string[]> {
  const out: string[] = [];
  for await (const o of be.list(prefix)) out.push(o.name);
  return out;
}
