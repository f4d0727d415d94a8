import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import { memoryBackend } from "../../backend/memory.js";
import { BlobType } from "../../repo/blob.js";
import { Repository } from "../../repo/repository.js";
import { check } from "./check.js";

process.env.LIFEBOAT_KDF_N = "1024";

/**
 * `check --read-data` reads packs in windows of 2 MiB (BlobReader.verifyPack): a pack of about
 * 6 MiB is read in several, and damage anywhere in it — a blob in a middle window, the header
 * in the last one, a cut end — is found as it was when packs were read whole.
 */
async function sixMiBPack() {
  const be = memoryBackend();
  const repo = await Repository.init(be, "pw", {
    chunker: { min: 16 * 1024, avg: 64 * 1024, max: 256 * 1024 },
    packSize: 16 * 1024 * 1024,
  });
  const ids: Buffer[] = [];
  await repo.withWriter(async (w) => {
    // Random bytes do not compress: 500 blobs of 12 KiB make one pack of about 6 MiB.
    for (let i = 0; i < 500; i++) ids.push((await w.saveBlob(BlobType.data, randomBytes(12 * 1024))).id);
  });
  const packs = [...be.objects().keys()].filter((n) => n.startsWith("data/"));
  assert.equal(packs.length, 1);
  const name = packs[0]!;
  const stored = be.store.objects.get(name)!;
  assert.ok(stored.data.length > 5 * 1024 * 1024);
  return { be, repo, ids, name, stored };
}

test("a whole pack read in windows checks clean; a flipped byte in a middle window names its blob", async () => {
  const { repo, ids, name, stored } = await sixMiBPack();
  const clean = await check(repo, { readData: true });
  assert.deepEqual(clean.problems, []);
  assert.equal(clean.packsRead, 1);
  assert.equal(clean.bytesRead, stored.data.length);

  const loc = repo.lookup(ids[250]!)!;
  assert.ok(loc.offset > 2 * 1024 * 1024, "the blob is past the first window");
  stored.data[loc.offset + 100]! ^= 0x01;
  const r = await check(repo, { readData: true });
  assert.equal(r.problems.length, 1, JSON.stringify(r.problems));
  assert.equal(r.problems[0]!.kind, "damaged-blob");
  assert.equal(r.problems[0]!.object, name);
  assert.deepEqual(r.problems[0]!.blobs, [ids[250]!.toString("hex")]);
  await repo.close();
});

test("windows: a flipped byte in the header, and a cut end, are damage", async () => {
  const { be, repo, ids, name, stored } = await sixMiBPack();
  const original = Buffer.from(stored.data);
  stored.data[stored.data.length - 10]! ^= 0x01;
  const header = await check(repo, { readData: true });
  assert.equal(header.problems.length, 1, JSON.stringify(header.problems));
  assert.equal(header.problems[0]!.kind, "damaged-pack");

  // Cut in the middle of the last blobs: the blobs past the end are damaged, the others not.
  const last = repo.lookup(ids[499]!)!;
  be.store.objects.set(name, { ...stored, data: original.subarray(0, last.offset + 10) });
  const cut = await check(repo, { readData: true });
  const damaged = cut.problems.find((p) => p.kind === "damaged-blob");
  assert.ok(damaged, JSON.stringify(cut.problems));
  assert.deepEqual(damaged.blobs, [ids[499]!.toString("hex")]);
  await repo.close();
});
