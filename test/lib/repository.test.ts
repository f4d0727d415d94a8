// The Repository facade below the CLI: opening, keys, the writer scope (dedup, write order,
// periodic index files) and the typed record store.
import assert from "node:assert/strict";
import { test } from "node:test";
import { z } from "zod";
import type { Backend } from "../../src/backend/backend.js";
import { faultyBackend } from "../../src/backend/faulty.js";
import { memoryBackend } from "../../src/backend/memory.js";
import { LifeboatError } from "../../src/core/errors.js";
import { BlobType } from "../../src/repo/blob.js";
import { defineRecordKind } from "../../src/repo/record-kind.js";
import { RECORD_KINDS } from "../../src/repo/record-store.js";
import { ackKind } from "../../src/repo/records-ack.js";
import { drillKind } from "../../src/repo/records-drill.js";
import { planKind, sessionKind } from "../../src/repo/records-gc.js";
import { type SegmentRecord, segmentKind } from "../../src/repo/records-segment.js";
import { type WalRecord, walKind, walLabel } from "../../src/repo/records-wal.js";
import { Repository } from "../../src/repo/repository.js";
import { ObjectKind } from "../../src/repo/sealed-object.js";
import { takeSnapshot } from "../../src/snapshot/take.js";
import {
  assertWhole,
  file,
  memSource,
  newRepo,
  noise,
  objectsUnder,
  PW,
  recordingBackend,
  rejectsWith,
  SMALL,
} from "./support.js";

// --- open, passwords, keys ------------------------------------------------------------------------

test("init, open, wrong password, no repository, init twice", async () => {
  const be = memoryBackend();
  assert.equal(await Repository.exists(be), false);
  const nf = await rejectsWith(Repository.open(be, PW), "REPO_NOT_FOUND");
  assert.equal(nf.exitCode, 10);
  const repo = await Repository.init(be, PW, SMALL);
  assert.deepEqual(repo.config.chunker, SMALL.chunker);
  // A new repository starts with the read features a backup may need (docs/format.md).
  assert.equal(repo.config.version, 2);
  assert.deepEqual(repo.config.features, { read: ["byte-names", "special-files", "xattrs"], write: [] });
  await repo.close();
  assert.equal(await Repository.exists(be), true);
  await rejectsWith(Repository.init(be, PW, SMALL), "REPO_EXISTS");
  const wrong = await rejectsWith(Repository.open(be, "not it"), "WRONG_PASSWORD");
  assert.equal(wrong.exitCode, 12);
  assert.match(wrong.message, /tried 1 key\)/);
  const again = await Repository.open(be, PW);
  assert.equal(again.config.id, repo.config.id);
  assert.equal(again.keyId, repo.keyId);
  await again.close();
});

test("keys: a second password opens the same data; the key in use cannot be removed; a removed one stops working", async () => {
  const { be, repo } = await newRepo();
  const blob = Buffer.from("written with the first password");
  const { id } = await repo.withWriter((w) => w.saveBlob(BlobType.data, blob));
  const second = await repo.addKey("second password");
  const keys = await repo.listKeys();
  assert.deepEqual(keys.map((k) => k.id).sort(), [repo.keyId, second].sort());
  assert.deepEqual(
    keys.filter((k) => k.current).map((k) => k.id),
    [repo.keyId],
  );
  await rejectsWith(repo.removeKey(repo.keyId), "KEY_ERROR");
  await rejectsWith(repo.removeKey("0".repeat(64)), "KEY_ERROR");
  await repo.close();

  const other = await Repository.open(be, "second password");
  assert.equal(other.keyId, second);
  assert.equal(other.config.id, repo.config.id);
  assert.deepEqual(await other.loadBlob(id), blob, "the same master keys: old data reads");
  await other.removeKey(repo.keyId);
  assert.deepEqual(
    (await other.listKeys()).map((k) => k.id),
    [second],
  );
  await other.close();
  await rejectsWith(Repository.open(be, PW), "WRONG_PASSWORD");
  const last = await Repository.open(be, "second password");
  assert.deepEqual(await last.loadBlob(id), blob);
  await last.close();
});

// --- the writer scope ---------------------------------------------------------------------------

test("withWriter: the same plaintext is stored once; hasBlob is true while pending and after the flush", async () => {
  const { be, repo } = await newRepo();
  const plain = noise(3000);
  const id = repo.blobId(plain);
  assert.equal(repo.hasBlob(id), false);
  await repo.withWriter(async (w) => {
    const a = await w.saveBlob(BlobType.data, plain);
    assert.equal(a.added, true);
    assert.equal(w.hasBlob(id), true, "pending in an open pack");
    assert.equal(repo.hasBlob(id), true, "the repository answers for its writer");
    assert.equal(repo.isStored(id), false, "not in storage yet");
    assert.deepEqual(objectsUnder(be, "data/"), [], "no pack uploaded yet");
    const b = await w.saveBlob(BlobType.data, Buffer.from(plain));
    assert.equal(b.added, false, "the second copy is deduplicated");
    // Large blobs are hashed on worker threads: dedup is decided once the id is known.
    // (The caller gives up a buffer it hands over: the copy is taken first.)
    const big = noise(10_000);
    const copy = Buffer.from(big);
    const d1 = await w.saveBlobDeferred(BlobType.data, big);
    const d2 = await w.saveBlobDeferred(BlobType.data, copy);
    assert.deepEqual(await d1.id, await d2.id);
  });
  assert.equal(repo.isStored(id), true);
  assert.equal(repo.hasBlob(id), true);
  assert.equal(repo.writeStats.blobsAdded, 2);
  const packs = objectsUnder(be, "data/");
  assert.equal(packs.length, 1);
  assert.equal(objectsUnder(be, "index/").length, 1);
  // A later scope deduplicates against storage, not only against what is pending.
  await repo.withWriter(async (w) => assert.equal((await w.saveBlob(BlobType.data, plain)).added, false));
  assert.deepEqual(objectsUnder(be, "data/"), packs, "nothing new uploaded");
  assert.equal(objectsUnder(be, "index/").length, 1, "and no empty index file");
  await repo.close();
  // Another process sees it in the index.
  const fresh = await Repository.open(be, PW);
  assert.equal(fresh.hasBlob(id), true);
  assert.deepEqual(await fresh.loadBlob(id), plain);
  await fresh.close();
});

test("write order: a snapshot and a pinning record are stored after the pack and index of what they reference", async () => {
  const mem = memoryBackend();
  const be = recordingBackend(mem);
  const repo = await Repository.init(be, PW, SMALL);
  const plain = noise(2000);
  let snapshotId = "";
  let segmentObject = "";
  await repo.withWriter(async (w) => {
    const { id } = await w.saveBlob(BlobType.data, plain);
    const tree = await w.saveTree({
      nodes: [
        {
          name: "f",
          type: "file",
          mode: 0o644,
          uid: 0,
          gid: 0,
          mtime: "0",
          size: 2000,
          content: [id.toString("hex")],
        },
      ],
    });
    assert.deepEqual(objectsUnder(mem, "data/"), [], "still pending inside the scope");
    // Non-pinning records do not flush (nothing they name is a blob).
    await repo.records.write(ackKind, {
      snapshot: "x",
      kind: "ack",
      time: "t",
      host: "h",
      user: "u",
      note: "",
    });
    assert.deepEqual(objectsUnder(mem, "data/"), [], "an ack does not flush");
    snapshotId = await repo.writeSnapshot({
      version: 1,
      time: new Date().toISOString(),
      tree: tree.id,
      paths: ["/x"],
      hostname: "h",
      username: "u",
      tags: [],
      incomplete: false,
      errors: [],
      changedWhileReading: [],
      excludes: [],
      program: "test",
    });
    const more = await w.saveBlob(BlobType.data, noise(1500));
    segmentObject = (await repo.records.write(segmentKind, segment([more.id.toString("hex")]))).object;
  });
  const order = be.ops.map((o) => o.name);
  const at = (name: string) => order.indexOf(name);
  const snap = at(`snapshots/${snapshotId}`);
  const seg = at(segmentObject);
  assert.ok(snap > 0 && seg > snap);
  const before = (i: number, prefix: string) => order.slice(0, i).filter((n) => n.startsWith(prefix)).length;
  // The snapshot's data and tree blobs: two packs (data, tree) and one index file before it.
  assert.equal(before(snap, "data/"), 2, `order: ${order.join(" ")}`);
  assert.equal(before(snap, "index/"), 1, `order: ${order.join(" ")}`);
  assert.ok(
    at(order.filter((n) => n.startsWith("index/"))[0]!) > at(order.filter((n) => n.startsWith("data/"))[1]!),
  );
  // The segment's blob: its pack and a second index file before the record.
  assert.equal(before(seg, "data/"), 3);
  assert.equal(before(seg, "index/"), 2);
  await repo.close();
  await assertWhole(mem);
});

test("a writer scope that throws midway: what was stored is flushed and indexed, nothing references the rest", async () => {
  const { be, repo } = await newRepo({ packSize: 8 * 1024 });
  const saved: Buffer[] = [];
  await assert.rejects(
    repo.withWriter(async (w) => {
      for (let i = 0; i < 10; i++) saved.push((await w.saveBlob(BlobType.data, noise(3000))).id);
      throw new Error("killed midway");
    }),
    /killed midway/,
  );
  // Everything that reached storage is indexed (the scope still flushed), so a retry reuses it.
  const fresh = await Repository.open(be, PW);
  for (const id of saved) assert.equal(fresh.isStored(id), true);
  assert.deepEqual(
    new Set(fresh.indexedPacks()),
    new Set(objectsUnder(be, "data/").map((n) => n.split("/")[2]!)),
  );
  assert.deepEqual(await fresh.listSnapshots(), []);
  await fresh.close();
  await repo.close();
});

test("a backup stopped after its Nth write, for every N: no snapshot ever references a missing blob", async () => {
  // The same backup, replayed against storage that stops accepting writes after N of them (as if
  // the process died there). Reads keep working, so the session's own cleanup may fail too.
  const spec = {
    a: { one: file(noise(5000)), two: file(noise(20_000)) },
    b: { three: file(noise(9000)), four: file("small") },
    five: file(noise(40_000)),
  };
  let completed = false;
  for (let n = 0; !completed && n < 200; n++) {
    const mem = memoryBackend();
    const init = await Repository.init(mem, PW, { ...SMALL, packSize: 16 * 1024 });
    await init.close();
    const writes = { count: 0 };
    const dying: Backend = {
      ...mem,
      async put(name, data, o) {
        if (writes.count++ >= n) throw new LifeboatError("UNREACHABLE", `died before writing ${name}`);
        return mem.put(name, data, o);
      },
    };
    const repo = await Repository.open(dying, PW);
    try {
      await takeSnapshot(repo, memSource(spec).source, { host: "h" });
      completed = true;
    } catch (e) {
      assert.ok(e instanceof LifeboatError, String(e));
    }
    await repo.close();
    // Snapshots present only when complete, and readable whatever N was.
    const whole = await assertWhole(mem, `after ${n} writes`);
    assert.equal(whole.snapshots, completed ? 1 : 0);
  }
  assert.ok(completed, "the backup never completed");
});

test("an index file is written every 8 packs inside one scope, not only at its end", async () => {
  // 2 KiB blobs into packs of at least 1 KiB: one pack per blob.
  const { be, repo } = await newRepo({ packSize: 1024 });
  await repo.withWriter(async (w) => {
    for (let i = 0; i < 20; i++) await w.saveBlob(BlobType.data, noise(2048));
    // At most two uploads are in flight, so at least 18 packs are up: two index files.
    const files = objectsUnder(be, "index/");
    assert.ok(files.length >= 2, `index files inside the scope: ${files.length}`);
    const first = await repo.readIndexFile(files[0]!.slice("index/".length));
    assert.equal(first.packs.length, 8);
    assert.deepEqual(first.supersedes, []);
  });
  const ids = objectsUnder(be, "index/").map((n) => n.slice("index/".length));
  assert.equal(ids.length, 3, "8 + 8 + the remaining 4 at the end");
  let packs = 0;
  for (const id of ids) packs += (await repo.readIndexFile(id)).packs.length;
  assert.equal(packs, 20);
  assert.equal(objectsUnder(be, "data/").length, 20);
  await repo.close();
});

// --- records ------------------------------------------------------------------------------------

function segment(content: string[], extra: Partial<SegmentRecord> = {}): SegmentRecord {
  return {
    version: 1,
    source: "sqlite:/db",
    hostname: "h",
    generation: "g1",
    index: 0,
    wal: { salt1: 1, salt2: 2, checkpointSeq: 0, start: 32, end: 4152 },
    walRestarted: false,
    pageSize: 4096,
    dbPages: 2,
    frames: 1,
    commits: 1,
    pages: 1,
    commitsAfter: "2026-01-01T00:00:00.000Z",
    commitsBefore: "2026-01-01T00:00:01.000Z",
    storedAt: "2026-01-01T00:00:01.100Z",
    size: 4100,
    content,
    ...extra,
  };
}

function wal(name: string, content: string[]): WalRecord {
  return {
    version: 1,
    cluster: "c1",
    name,
    kind: "segment",
    timeline: 1,
    size: 16,
    sha256: "00".repeat(32),
    content,
    blobs: [],
    time: "2026-01-01T00:00:00.000Z",
    host: "h",
  };
}

const samples = {
  plan: () => ({ created: "2026-01-01T00:00:00.000Z", host: "h", packs: ["ab".repeat(32)], waitFor: [] }),
  session: () => ({ started: "2026-01-01T00:00:00.000Z", host: "h", pid: 1, kind: "backup" as const }),
  drill: () => ({
    version: 1 as const,
    time: "t",
    snapshot: "s",
    host: "h",
    paths: ["/"],
    source: "files",
    mode: "full" as const,
    files: 1,
    bytes: 2,
    seconds: 3,
    ok: true,
    failed: 0,
    failures: [],
  }),
  ack: () => ({ snapshot: "s", kind: "pin" as const, time: "t", host: "h", user: "u", note: "n" }),
};

test("records: write, list, read and delete for every family", async () => {
  const { be, repo } = await newRepo();
  const cases = [
    { kind: planKind, record: samples.plan() },
    { kind: sessionKind, record: samples.session() },
    { kind: drillKind, record: samples.drill() },
    { kind: ackKind, record: samples.ack() },
    { kind: segmentKind, record: segment(["cd".repeat(32)]) },
  ] as const;
  // WAL records and fleet account entries are labelled: tested below and in account-catalogue.test.ts.
  assert.equal(RECORD_KINDS.length, cases.length + 2, "every family is covered (wal below)");
  for (const { kind, record } of cases) {
    const stored = await repo.records.write(kind as never, record as never);
    assert.equal(stored.object, `${kind.prefix}${stored.id}`);
    assert.ok(be.objects().has(stored.object));
    const listed = await repo.records.list(kind as never);
    assert.deepEqual(
      listed.map((r: { object: string }) => r.object),
      [stored.object],
      kind.title,
    );
    assert.deepEqual((listed[0] as { record: unknown }).record, record, kind.title);
    assert.deepEqual(await repo.records.read(kind as never, stored.object), record);
    // A record of one family cannot be read as another's (the sealed kind differs).
    const other = kind === ackKind ? drillKind : ackKind;
    await rejectsWith(repo.records.read(other as never, stored.object), "CORRUPTION");
    await repo.records.delete(stored.object);
    assert.deepEqual(await repo.records.list(kind as never), [], kind.title);
  }
  await repo.close();
});

test("labelled records (WAL) are found by label, without the label in storage", async () => {
  const { be, repo } = await newRepo();
  const [n1, n2] = ["000000010000000000000001", "000000010000000000000002"];
  // A WAL record is stored under its own label (cluster and file name) unless told otherwise.
  const a1 = await repo.records.write(walKind, wal(n1, []));
  const a2 = await repo.records.write(walKind, { ...wal(n1, []), time: "2026-01-02T00:00:00.000Z" });
  const b = await repo.records.write(walKind, wal(n2, []));
  const other = await repo.records.write(walKind, wal(n2, []), { label: "somewhere else" });
  const folder = (o: string) => o.split("/")[1];
  assert.equal(folder(a1.object), folder(a2.object));
  assert.notEqual(folder(a1.object), folder(b.object));
  assert.notEqual(folder(b.object), folder(other.object));
  for (const name of be.objects().keys())
    assert.ok(!/[ ]|c1|0000000100/.test(name.replace(/[0-9a-f]{64}/g, "")), name);
  const byLabel = await repo.records.list(walKind, { label: walLabel("c1", n1) });
  assert.deepEqual(byLabel.map((r) => r.object).sort(), [a1.object, a2.object].sort());
  assert.deepEqual(
    (await repo.records.list(walKind, { label: walLabel("c1", n2) })).map((r) => r.object),
    [b.object],
  );
  assert.deepEqual(
    (await repo.records.list(walKind, { label: "somewhere else" })).map((r) => r.object),
    [other.object],
  );
  // A labelled family that cannot derive a label refuses a record without one.
  const bare = defineRecordKind({
    title: "test record",
    prefix: "test/",
    objectKind: ObjectKind.ack,
    labelTag: "test",
    schema: z.object({ n: z.number() }),
  });
  await assert.rejects(repo.records.write(bare, { n: 1 }), /need a label/);
  assert.deepEqual(await repo.records.list(walKind, { label: "nothing" }), []);
  assert.equal((await repo.records.list(walKind)).length, 4, "without a label: every label's records");
  // Stray names in a family's folder are ignored, not read.
  await be.put("wal/README", Buffer.from("x"));
  await be.put(`${a1.object}.tmp`, Buffer.from("x"));
  assert.equal((await repo.records.list(walKind, { unreadable: "throw" })).length, 4);
  await repo.close();
});

test("a damaged or malformed record is skipped or reported as `unreadable` says; pinnedBlobs refuses to guess", async () => {
  const { be, repo } = await newRepo();
  const good = await repo.records.write(ackKind, samples.ack());
  const bad = await repo.records.write(ackKind, { ...samples.ack(), note: "damaged" });
  be.corrupt(bad.object, (d) => Buffer.concat([d.subarray(0, -1), Buffer.from([d.at(-1)! ^ 1])]));
  // Sealed correctly but not of the family's schema (a newer or broken writer).
  const malformed = await repo.records.write(ackKind, { snapshot: 1 } as never);
  const listed = await repo.records.list(ackKind);
  assert.deepEqual(
    listed.map((r) => r.object),
    [good.object],
  );
  const damaged = await rejectsWith(repo.records.list(ackKind, { unreadable: "throw" }), "CORRUPTION");
  assert.match(damaged.message, /acks\//);
  await repo.records.delete(bad.object);
  const e = await rejectsWith(repo.records.list(ackKind, { unreadable: "throw" }), "CORRUPTION");
  assert.match(e.message, /malformed acknowledgement/);
  await repo.records.delete(malformed.object);

  // pinnedBlobs: every family that pins, and only those.
  const [x, y, z] = ["11", "22", "33"].map((b) => b.repeat(32));
  await repo.records.write(walKind, wal("000000010000000000000001", [x!, y!]), { label: "c1" });
  const seg = await repo.records.write(segmentKind, segment([z!]));
  await repo.records.write(drillKind, samples.drill());
  assert.deepEqual([...(await repo.records.pinnedBlobs())].sort(), [x, y, z].sort());
  // A damaged ack does not matter to prune; a damaged segment does: prune must not guess.
  const ack = await repo.records.write(ackKind, samples.ack());
  be.corrupt(ack.object, (d) => d.subarray(0, 10));
  assert.equal((await repo.records.pinnedBlobs()).size, 3);
  be.corrupt(seg.object, (d) => d.subarray(0, d.length - 1));
  await rejectsWith(repo.records.pinnedBlobs(), "CORRUPTION");
  await repo.close();
});

test("a record deleted between the listing and its read is left out, even with unreadable: throw", async () => {
  const mem = memoryBackend();
  const repo0 = await Repository.init(mem, PW, SMALL);
  const kept = await repo0.records.write(drillKind, samples.drill());
  const gone = await repo0.records.write(drillKind, { ...samples.drill(), snapshot: "gone" });
  await repo0.close();
  // The listing still shows `gone` (taken before the delete); its read finds nothing.
  const racing: Backend = {
    ...mem,
    async get(name, o) {
      if (name === gone.object) await mem.delete(name);
      return mem.get(name, o);
    },
  };
  const repo = await Repository.open(racing, PW);
  const listed = await repo.records.list(drillKind, { unreadable: "throw" });
  assert.deepEqual(
    listed.map((r) => r.object),
    [kept.object],
  );
  await repo.close();
});

test("a record that pins blobs is not written when the blobs it needs could not be made durable", async () => {
  const mem = memoryBackend();
  const init = await Repository.init(mem, PW, SMALL);
  await init.close();
  const be = faultyBackend(mem, { seed: 1, rules: [{ fault: "put-error", prefix: "data/" }] });
  const repo = await Repository.open(be, PW);
  let id = "";
  await assert.rejects(
    repo.withWriter(async (w) => {
      id = (await w.saveBlob(BlobType.data, noise(100))).id.toString("hex");
    }),
    (e: unknown) => e instanceof LifeboatError && e.code === "STORAGE_ERROR",
  );
  const storageError = (e: unknown) => e instanceof LifeboatError && e.code === "STORAGE_ERROR";
  await assert.rejects(repo.records.write(segmentKind, segment([id])), storageError);
  assert.deepEqual(objectsUnder(mem, "sqlite-wal/"), []);
  await assert.rejects(repo.writeSnapshot({} as never), storageError);
  assert.deepEqual(objectsUnder(mem, "snapshots/"), []);
  await repo.close();
  await assertWhole(mem);
});

test("enableFeature rewrites the stored config, not its own view: a Repository opened before another's change keeps it", async () => {
  // (The memory backend refuses to overwrite a locked object, as an unversioned store would; an
  // S3 bucket with Object Lock is versioned and takes a new version of the config. Here the
  // backend's clock is past every lock, so the config can be replaced.)
  const be = memoryBackend({ retention: true, now: () => Date.now() + 400 * 86_400_000 });
  const a = await Repository.init(be, PW, SMALL);
  const b = await Repository.open(be, PW);
  await a.setRetention({ days: 7, mode: "governance" });
  assert.equal(b.hasFeature("retention"), false, "b's view is from before the change");
  await b.enableFeature("retention");
  assert.deepEqual(b.retention, { days: 7, mode: "governance" }, "b now holds the stored config");
  const c = await Repository.open(be, PW);
  assert.equal(c.config.version, 2);
  assert.deepEqual(c.config.features, {
    read: ["byte-names", "special-files", "xattrs"],
    write: ["retention"],
  });
  assert.deepEqual(c.retention, { days: 7, mode: "governance" }, "a's retention survived b's rewrite");
  // And b locks what it writes from now on.
  await b.withWriter((w) => w.saveBlob(BlobType.data, noise(100)));
  const [pack] = objectsUnder(be, "data/");
  assert.ok(pack);
  assert.equal(be.store.objects.get(pack)?.retentionMode, "governance");
  for (const r of [a, b, c]) await r.close();
});
