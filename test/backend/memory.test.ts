/**
 * The in-memory backend and the fault-injecting wrapper under the backend contract, and both
 * under a real repository: backup, check --read-data, damage found after a bit flip or a torn
 * (non-atomic) upload, backups on append-only storage and prune by the privileged side.
 */
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { backup } from "../../src/app/backup.js";
import { type FaultRule, faultyBackend } from "../../src/backend/faulty.js";
import { memoryBackend } from "../../src/backend/memory.js";
import { withRetries } from "../../src/backend/retry.js";
import { LifeboatError } from "../../src/core/errors.js";
import { check } from "../../src/ops/check/check.js";
import { forget } from "../../src/ops/forget/forget.js";
import { initRepository, openRepository } from "../../src/ops/open.js";
import { prune } from "../../src/ops/prune/prune.js";
import { tempDir, writeRandomFile } from "../support/cli.js";
import { appendOnlyContract, backendContract } from "./contract.js";

process.env.LIFEBOAT_KDF_N = "1024";

let dir: string;
let src: string;
before(async () => {
  dir = await tempDir("lifeboat-memory-test-");
  src = path.join(dir, "src");
  await fs.mkdir(src);
  await writeRandomFile(path.join(src, "a.bin"), 2, 5);
  await fs.writeFile(path.join(src, "notes.txt"), "in memory\n".repeat(300));
});
after(async () => {
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

/** Every fault a retry wrapper should hide: each leaves the storage whole or fails cleanly. */
const survivable: FaultRule[] = [
  { fault: "delay", probability: 0.3, ms: 3 },
  { fault: "transient", probability: 0.1 },
  { fault: "timeout", probability: 0.05, ms: 2 },
  { fault: "put-cut", probability: 0.12 },
  { fault: "put-torn", probability: 0.12 },
  { fault: "put-ack-lost", probability: 0.12 },
];
const quickRetries = { delays: Array.from({ length: 16 }, () => 1) };

describe("contract", () => {
  test("memory", async () => {
    await backendContract(memoryBackend());
  });

  test("memory, append-only (like lifeboat serve --append-only)", async () => {
    await appendOnlyContract(memoryBackend({ appendOnly: true }));
  });

  test("faulty wrapper with no faults planned", async () => {
    const be = faultyBackend(memoryBackend(), { seed: 1, rules: [] });
    await backendContract(be);
    assert.deepEqual(be.log, []);
  });

  test("faulty wrapper with transient faults, cut uploads and delays, under withRetries", async () => {
    for (const seed of [1, 2, 3]) {
      const faulty = faultyBackend(memoryBackend(), { seed, rules: survivable });
      await backendContract(withRetries(faulty, quickRetries));
      for (const kind of ["delay", "transient", "timeout", "put-cut", "put-torn", "put-ack-lost"] as const)
        assert.ok(faulty.count(kind) > 0, `seed ${seed}: some ${kind} faults were injected`);
      // Same seed, same calls: the same faults.
      const again = faultyBackend(memoryBackend(), { seed, rules: survivable });
      await backendContract(withRetries(again, quickRetries));
      assert.deepEqual(
        again.log.map((r) => `${r.op} ${r.name} ${r.fault} ${r.detail}`).sort(),
        faulty.log.map((r) => `${r.op} ${r.name} ${r.fault} ${r.detail}`).sort(),
      );
    }
  });
});

describe("a repository on memory storage", () => {
  test("backup, reopen, check --read-data; a flipped bit in a pack is found", async () => {
    const be = memoryBackend({ label: "repo" });
    const repo = await initRepository(be, "pw");
    await backup(repo, [src], {});
    await repo.close();
    const again = await openRepository(be, "pw");
    assert.deepEqual((await check(again, { readData: true })).problems, []);
    const pack = [...be.objects().keys()].find((n) => n.startsWith("data/"))!;
    be.corrupt(pack, (b) => {
      b[Math.floor(b.length / 2)]! ^= 0x10;
      return undefined;
    });
    const report = await check(again, { readData: true });
    assert.ok(
      report.problems.some((p) => p.object.includes(pack.split("/").at(-1)!)),
      JSON.stringify(report.problems),
    );
    await again.close();
  });

  test("a torn upload (non-atomic storage) fails the backup; a torn pack waits for prune, a torn index file or snapshot is removed by its writer", async () => {
    for (const prefix of ["data/", "index/", "snapshots/"]) {
      const inner = memoryBackend();
      await (await initRepository(inner, "pw")).close();
      const faulty = faultyBackend(inner, { seed: 7, rules: [{ fault: "put-torn", prefix, nth: 1 }] });
      const torn = await openRepository(faulty, "pw");
      await assert.rejects(
        backup(torn, [src], {}),
        (e: unknown) => e instanceof LifeboatError && e.code === "UNREACHABLE",
      );
      assert.equal(faulty.count(), 1);
      const { name, detail } = faulty.log[0]!;
      assert.ok(name.startsWith(prefix), name);
      const id = name.split("/").at(-1)!;
      const repo = await openRepository(inner, "pw");
      if (prefix === "data/") {
        // The pack is in no index (the backup failed before writing one): check lists it for prune.
        assert.ok(inner.objects().has(name), `${name} is visible (${detail})`);
        assert.ok((await check(repo, { readData: true })).unindexedPacks.includes(id));
      } else {
        // Named by their bytes, so nothing else can stand under the name: the writer deleted it,
        // and no reader ever meets a truncated index file or snapshot (src/repo/whole-put.ts).
        assert.ok(!inner.objects().has(name), `${name} was removed by its writer (${detail})`);
        assert.deepEqual(repo.damagedIndexFiles(), []);
        assert.deepEqual((await check(repo, { readData: true })).problems, []);
      }
      await repo.close();
    }
  });

  test("append-only storage: backups work, prune is refused, the privileged side prunes", async () => {
    const vault = memoryBackend({ label: "vault" });
    const client = memoryBackend({ label: "client", store: vault.store, appendOnly: true });
    const repo = await initRepository(client, "pw");
    await writeRandomFile(path.join(src, "a.bin"), 2, 20);
    await backup(repo, [src], {});
    await writeRandomFile(path.join(src, "a.bin"), 2, 21);
    await backup(repo, [src], {});
    assert.equal([...vault.objects().keys()].filter((n) => n.startsWith("sessions/")).length, 0);
    const before = [...vault.objects().keys()];
    await assert.rejects(
      forget(repo, { policy: { last: 1 } }),
      (e: unknown) =>
        e instanceof LifeboatError && e.code === "PERMISSION_DENIED" && /append-only/.test(e.message),
    );
    await repo.close();
    assert.deepEqual([...vault.objects().keys()], before, "nothing was deleted");
    const owner = await openRepository(vault, "pw");
    await forget(owner, { policy: { last: 1 } });
    const p = await prune(owner, { maxUnusedPercent: 0 });
    assert.ok(p.swept.some((s) => s.deletedPacks > 0));
    assert.deepEqual((await check(owner, { readData: true })).problems, []);
    await owner.close();
  });
});
