/**
 * Retention as the repository remembers it, at the library level on memory storage with Object
 * Lock: every writer locks what it writes except sessions and prune plans; a session whose
 * delete is refused does not hold prune back in the process that ended it; storage that cannot
 * lock may read such a repository but never writes into it; compliance-locked packs are not
 * tried before their date.
 */
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { backup } from "../../src/app/backup.js";
import type { Backend } from "../../src/backend/backend.js";
import { memoryBackend, memoryStore } from "../../src/backend/memory.js";
import { LifeboatError, RetainedError } from "../../src/core/errors.js";
import { check } from "../../src/ops/check/check.js";
import { forget } from "../../src/ops/forget/forget.js";
import { prune } from "../../src/ops/prune/prune.js";
import { Repository } from "../../src/repo/repository.js";
import { removeTempDir, tempDir, writeRandomFile } from "../support/cli.js";

process.env.LIFEBOAT_KDF_N = "1024";

const params = { chunker: { min: 4096, avg: 16384, max: 65536 }, packSize: 256 * 1024 };
let dir: string;
before(async () => {
  dir = await tempDir("lifeboat-retention-sessions-");
});
after(async () => {
  if (dir) await removeTempDir(dir);
});

async function tree(name: string, seed: number): Promise<string> {
  const src = path.join(dir, name);
  await fs.mkdir(src, { recursive: true });
  await writeRandomFile(path.join(src, "a.bin"), 1, seed);
  return src;
}

test("every writer locks what it writes, except sessions and prune plans", async () => {
  const be = memoryBackend({ retention: true });
  const repo = await Repository.init(be, "pw", { ...params, retention: { days: 3, mode: "compliance" } });
  // With the read features every new repository starts with (docs/format.md).
  assert.deepEqual(repo.config.features, {
    read: ["byte-names", "special-files", "xattrs"],
    write: ["retention"],
  });
  const src = await tree("locks", 1);
  const started = Date.now();
  await backup(repo, [src]);
  await repo.close();
  const names = [...be.store.objects.keys()];
  assert.ok(!names.some((n) => n.startsWith("sessions/")), "the session was deleted");
  for (const [name, o] of be.store.objects) {
    assert.equal(o.retentionMode, "compliance", name);
    const ahead = o.retainUntil!.getTime() - started;
    assert.ok(ahead > 3 * 86_400_000 - 60_000 && ahead < 3 * 86_400_000 + 60_000, name);
  }
  for (const k of ["config", "keys/", "data/", "index/", "snapshots/"])
    assert.ok(
      names.some((n) => n.startsWith(k)),
      k,
    );
  // Reopened without any option, it still locks: the config remembers.
  const again = await Repository.open(be, "pw");
  assert.deepEqual(again.retention, { days: 3, mode: "compliance" });
  await fs.writeFile(path.join(src, "b.txt"), "more\n");
  const r = await backup(again, [src]);
  assert.ok(be.store.objects.get(`snapshots/${r.snapshotId}`)!.retainUntil, "locked");
  await again.close();
});

test("storage that cannot lock reads such a repository but writes nothing into it", async () => {
  const store = memoryStore();
  const locking = memoryBackend({ retention: true, store });
  const repo = await Repository.init(locking, "pw", {
    ...params,
    retention: { days: 1, mode: "governance" },
  });
  const src = await tree("nolock", 2);
  await backup(repo, [src]);
  await repo.close();
  const before = [...store.objects.keys()];
  const plain = await Repository.open(memoryBackend({ store }), "pw");
  assert.equal((await plain.listSnapshots()).length, 1, "reading is fine");
  await fs.writeFile(path.join(src, "c.txt"), "c\n");
  await assert.rejects(
    backup(plain, [src]),
    (e: unknown) =>
      e instanceof LifeboatError && e.code === "USAGE" && /cannot do, so nothing is written/.test(e.message),
  );
  await plain.close();
  assert.deepEqual([...store.objects.keys()], before, "nothing was written");
  await assert.rejects(
    Repository.init(memoryBackend(), "pw", { retention: { days: 1, mode: "governance" } }),
    /cannot do/,
  );
});

test("a session whose delete storage refuses does not hold prune back in the process that ended it", async () => {
  // Sessions locked by an older lifeboat (which locked every put): their deletes are refused.
  const inner = memoryBackend();
  const be: Backend = {
    ...inner,
    delete: async (name: string) => {
      if (name.startsWith("sessions/"))
        throw new RetainedError(name, `${name} is locked`, new Date(Date.now() + 86_400_000), "governance");
      return inner.delete(name);
    },
  };
  const repo = await Repository.init(be, "pw", params);
  const src = await tree("stale", 3);
  await backup(repo, [src]);
  await writeRandomFile(path.join(src, "a.bin"), 1, 4);
  await backup(repo, [src]);
  assert.equal([...inner.store.objects.keys()].filter((n) => n.startsWith("sessions/")).length, 2);
  await forget(repo, { policy: { last: 1 } });
  const r = await prune(repo, { maxUnusedPercent: 0 });
  assert.deepEqual(r.waiting, [], "the ended sessions (same pid) do not count");
  assert.equal(r.swept.length, 1);
  assert.ok(r.swept[0]!.deletedPacks > 0);
  assert.deepEqual((await check(repo, { readData: true })).problems, []);
  await repo.close();
});

test("packs under compliance retention stay in the plan and are not tried before their date", async () => {
  const inner = memoryBackend({ retention: true });
  let packDeletes = 0;
  const be: Backend = {
    ...inner,
    delete: (name: string) => {
      if (name.startsWith("data/")) packDeletes++;
      return inner.delete(name);
    },
  };
  const repo = await Repository.init(be, "pw", { ...params, retention: { days: 2, mode: "compliance" } });
  const src = await tree("compliance", 5);
  await backup(repo, [src]);
  await writeRandomFile(path.join(src, "a.bin"), 1, 6);
  await backup(repo, [src]);
  // The first snapshot's own lock has passed (as if written long ago); its packs' has not.
  const first = (await repo.listSnapshots())[0]!;
  delete inner.store.objects.get(`snapshots/${first.id}`)!.retainUntil;
  const f = await forget(repo, { policy: { last: 1 } });
  assert.deepEqual(f.removed, [first.id]);
  const r1 = await prune(repo, { maxUnusedPercent: 0 });
  const s = r1.swept[0]!;
  assert.equal(s.deletedPacks, 0);
  assert.equal(s.bytesFreed, 0);
  const packs = s.retainedObjects.filter((o) => o.object.startsWith("data/"));
  assert.ok(packs.length > 0);
  assert.ok(packs.every((o) => o.mode === "compliance" && Date.parse(o.until!) > Date.now() + 86_400_000));
  assert.ok(s.replacedBy);
  const tried = packDeletes;
  const r2 = await prune(repo, { maxUnusedPercent: 0 });
  assert.deepEqual(r2.swept, []);
  assert.match(r2.waiting[0]!.reason, /under compliance retention, the first until /);
  assert.equal(packDeletes, tried, "no delete was tried before the date");
  assert.deepEqual((await check(repo)).problems, []);
  await repo.close();
});
