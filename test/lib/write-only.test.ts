// Write-only keys, below the CLI: each claim of docs/format.md, "Write-only keys" (what a stolen
// write-only key can and cannot do), the migration from version 1, incremental backups from the
// host cache, and full-key restore, check and prune on a repository both kinds of key wrote.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import type { Backend, ObjectInfo } from "../../src/backend/backend.js";
import { type MemoryBackend, memoryBackend } from "../../src/backend/memory.js";
import { Chunker, gearTable } from "../../src/core/chunker.js";
import { blobId } from "../../src/core/crypto.js";
import { CorruptionError, isLifeboatError } from "../../src/core/errors.js";
import { acknowledge, listAcks, pinnedIds } from "../../src/ops/acks/acks.js";
import { check } from "../../src/ops/check/check.js";
import { forget, forgetIds } from "../../src/ops/forget/forget.js";
import { prune } from "../../src/ops/prune/prune.js";
import { Ed25519Signer, X25519Secret } from "../../src/repo/asymmetric.js";
import { BlobType } from "../../src/repo/blob.js";
import { names } from "../../src/repo/config.js";
import { FEATURES } from "../../src/repo/features.js";
import { listPlans } from "../../src/repo/gc-plan.js";
import { encodeIndex } from "../../src/repo/index-file.js";
import { parseKeyFile, unwrapKeyFile, unwrapWriteOnlyKeyFile } from "../../src/repo/keys.js";
import { newPackKey, PackBuilder, readPackHeader } from "../../src/repo/pack.js";
import { ackKind } from "../../src/repo/records-ack.js";
import { planKind } from "../../src/repo/records-gc.js";
import { Repository } from "../../src/repo/repository.js";
import {
  ObjectKind,
  openObject,
  openToOwner,
  openWithIndexKey,
  sealObject,
  sealToOwner,
  sealWithIndexKey,
} from "../../src/repo/sealed-object.js";
import { encodeTree } from "../../src/repo/tree.js";
import { addWriteOnlyKey } from "../../src/repo/write-only-keys.js";
import { type SnapshotOptions, takeSnapshot } from "../../src/snapshot/take.js";
import { walkTree } from "../../src/snapshot/walker.js";
import { assertWhole, file, type MemDir, memSource, noise, PW, SMALL } from "./support.js";

const WO = "write-only password";
const WO2 = "second write-only password";
const opts: SnapshotOptions = { host: "owner", anomaly: false };

let tmp = "";
let caches = 0;
before(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), "lifeboat-wo-"));
});
after(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});
const newCache = () => path.join(tmp, `cache-${++caches}`);

/** A version-1 repository (no write-only key yet) with one full-key snapshot of `spec`. */
async function v1Repo(spec: MemDir) {
  const be = memoryBackend();
  const full = await Repository.init(be, PW, { ...SMALL, features: { read: [], write: [] } });
  const first = await takeSnapshot(full, memSource(spec, ["/srv"]).source, opts);
  return { be, full, first };
}

/** A repository with a full-key snapshot and a write-only key (password WO). */
async function withWriteOnlyKey(spec: MemDir = ownerSpec()) {
  const r = await v1Repo(spec);
  const key = await addWriteOnlyKey(r.full, WO);
  return { ...r, woKeyId: key.id };
}

const openWo = (be: Backend, cacheDir: string, password = WO) => Repository.open(be, password, { cacheDir });

const ownerSpec = (): MemDir => ({
  etc: { passwd: file("root:x:0:0::/root:/bin/sh\n"), big: file(noise(40_000)) },
  secret: file("the owner's secret\n"),
});

/** Every secret a write-only key file holds, as a thief would have them. */
async function stolen(be: MemoryBackend, keyId: string, password = WO) {
  const f = parseKeyFile(be.objects().get(names.key(keyId))!, keyId);
  const s = await unwrapWriteOnlyKeyFile(f, password);
  assert.ok(s);
  return s;
}

async function masterKeys(be: MemoryBackend) {
  for (const [name, bytes] of be.objects()) {
    if (!name.startsWith("keys/")) continue;
    const k = await unwrapKeyFile(parseKeyFile(bytes, name), PW);
    if (k) return k;
  }
  throw new Error("no full key file");
}

/** Whether `f` fails for every candidate secret (as a key, as an X25519 secret). */
function refusedByAll(candidates: Buffer[], f: (k: Buffer, x: X25519Secret) => unknown): boolean {
  for (const c of candidates) {
    try {
      f(c, new X25519Secret(c));
      return false;
    } catch {}
  }
  return true;
}

const rejectsCode = async (p: Promise<unknown>, code: string) =>
  assert.rejects(p, (e: unknown) => isLifeboatError(e) && e.code === code);

async function readFiles(repo: Repository, tree: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  await walkTree(repo, tree, {
    node: async (n, p) => {
      if (n.type !== "file") return undefined;
      const parts: Buffer[] = [];
      for (const c of n.content ?? []) parts.push(await repo.loadBlob(Buffer.from(c, "hex")));
      out.set(p, Buffer.concat(parts).toString("hex"));
      return undefined;
    },
  });
  return out;
}

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");
const storeState = (be: MemoryBackend) => new Map([...be.objects()].map(([n, b]) => [n, sha(b)]));

/** A backend that records every name read and every prefix listed. */
function spying(inner: Backend) {
  const reads: string[] = [];
  const lists: string[] = [];
  const b: Backend = {
    ...inner,
    location: inner.location,
    capabilities: inner.capabilities,
    exists: () => inner.exists(),
    create: () => inner.create(),
    get: (name, o) => {
      reads.push(name);
      return inner.get(name, o);
    },
    stat: (name) => inner.stat(name),
    put: (name, data, o) => inner.put(name, data, o),
    list: (prefix): AsyncIterable<ObjectInfo> => {
      lists.push(prefix);
      return inner.list(prefix);
    },
    delete: (name) => inner.delete(name),
    close: () => inner.close(),
  };
  return { backend: b, reads, lists };
}

// --- migration ------------------------------------------------------------------------------

test("key add --write-only on a version-1 repository re-encrypts nothing: packs, snapshots and keys stay byte for byte; config, config.wo, the index and plans are rewritten", async () => {
  const { be, full } = await v1Repo(ownerSpec());
  const before = storeState(be);
  assert.equal(full.config.version, 1);
  const r = await addWriteOnlyKey(full, WO);
  const afterState = storeState(be);
  for (const [name, hash] of before) {
    if (name.startsWith("data/") || name.startsWith("snapshots/") || name.startsWith("keys/"))
      assert.equal(afterState.get(name), hash, `${name} must be untouched`);
  }
  const added = [...afterState.keys()].filter((n) => !before.has(n));
  const gone = [...before.keys()].filter((n) => !afterState.has(n));
  assert.deepEqual(
    added.map((n) => n.split("/")[0]).sort(),
    ["config.wo", "index", "keys"],
    `added: ${added.join(", ")}`,
  );
  assert.deepEqual(
    gone.map((n) => n.split("/")[0]),
    ["index"],
  );
  assert.notEqual(afterState.get("config"), before.get("config"), "the config gains the feature");
  assert.equal(r.indexFilesResealed, 1);
  assert.ok(full.hasFeature("write-only"));
  assert.equal(full.config.version, 2);
  assert.ok(full.config.writeOnly?.keys[r.id]);
  // The full key still reads everything, from a fresh open.
  await full.close();
  assert.equal((await assertWhole(be)).snapshots, 1);
  // A second write-only key finds nothing left to re-seal.
  const again = await Repository.open(be, PW);
  const r2 = await addWriteOnlyKey(again, WO2);
  assert.equal(r2.indexFilesResealed + r2.plansResealed, 0);
  await again.close();
});

test("a lifeboat that does not know format feature write-only refuses the repository (a read feature)", async () => {
  const { be, full } = await withWriteOnlyKey();
  await full.close();
  assert.equal(FEATURES["write-only"].gates, "read");
  const saved = FEATURES["write-only"];
  // An older version is this one without the feature.
  delete (FEATURES as Record<string, unknown>)["write-only"];
  try {
    await rejectsCode(Repository.open(be, PW), "NEWER_FORMAT");
    await rejectsCode(Repository.open(be, WO, { cacheDir: newCache() }), "NEWER_FORMAT");
  } finally {
    (FEATURES as Record<string, unknown>)["write-only"] = saved;
  }
  await (await Repository.open(be, PW)).close();
});

// --- what a stolen write-only key cannot do --------------------------------------------------

test("a write-only key cannot decrypt an existing pack, tree or snapshot: not through the repository, and not with any secret its key file holds", async () => {
  const { be, full, first, woKeyId } = await withWriteOnlyKey();
  await full.close();
  const wo = await openWo(be, newCache());
  // Through the facade.
  await rejectsCode(wo.loadSnapshot(first.snapshotId), "NEEDS_FULL_KEY");
  await rejectsCode(wo.loadTree(first.snapshot.tree), "NEEDS_FULL_KEY");
  const someBlob = [...wo.indexEntries()].find((e) => e.type === BlobType.data)!;
  await rejectsCode(wo.loadBlob(someBlob.id), "NEEDS_FULL_KEY");
  await rejectsCode(wo.backend.get(names.pack(someBlob.packId)), "NEEDS_FULL_KEY");
  await rejectsCode(wo.backend.get(names.snapshot(first.snapshotId)), "NEEDS_FULL_KEY");
  await rejectsCode(wo.backend.get(names.config), "NEEDS_FULL_KEY");
  assert.deepEqual(await wo.listSnapshots(), [], "it lists no snapshot it did not write");
  // It backs up, so its own packs (key mode 1) and snapshot (mode 1) exist too.
  const mine = await takeSnapshot(wo, memSource({ x: file(noise(9000)) }, ["/w"]).source, {
    host: "w",
    anomaly: false,
  });
  await wo.close();
  // With every secret of the key file, as keys and as X25519 secrets.
  const s = await stolen(be, woKeyId);
  const candidates = Object.values(s);
  let packs = 0;
  for (const [name, bytes] of be.objects()) {
    if (name.startsWith("data/")) {
      packs++;
      assert.ok(
        refusedByAll(candidates, (k, x) => readPackHeader(bytes, { data: k, meta: k, owner: x }, name)),
        `${name} opened with a write-only key's secret`,
      );
    }
  }
  assert.ok(packs >= 4, "data and tree packs of both kinds of key");
  for (const id of [first.snapshotId, mine.snapshotId]) {
    const bytes = be.objects().get(names.snapshot(id))!;
    assert.ok(
      refusedByAll(candidates, (k, x) => {
        try {
          return openObject(k, ObjectKind.snapshot, bytes, "s");
        } catch {
          return openToOwner(x, ObjectKind.snapshot, bytes, "s");
        }
      }),
      `snapshot ${id.slice(0, 8)} opened with a write-only key's secret`,
    );
  }
  // The full key opens all of them.
  const again = await Repository.open(be, PW);
  assert.equal((await again.loadSnapshot(mine.snapshotId)).writer, woKeyId);
  await again.close();
});

test("a write-only key cannot open another write-only host's snapshot, nor its own once stored", async () => {
  const { be, full } = await withWriteOnlyKey();
  const second = await addWriteOnlyKey(full, WO2);
  await full.close();
  const a = await openWo(be, newCache());
  const snapA = await takeSnapshot(a, memSource({ mail: file("host A's mail\n") }, ["/a"]).source, {
    host: "a",
    anomaly: false,
  });
  await a.close();
  const b = await openWo(be, newCache(), WO2);
  await rejectsCode(b.loadSnapshot(snapA.snapshotId), "NEEDS_FULL_KEY");
  await rejectsCode(b.loadTree(snapA.snapshot.tree), "NEEDS_FULL_KEY");
  assert.deepEqual(await b.listSnapshots(), []);
  await b.close();
  const bytes = be.objects().get(names.snapshot(snapA.snapshotId))!;
  for (const id of [
    second.id,
    (await Repository.open(be, WO, { cacheDir: newCache(), loadIndex: false })).keyId,
  ]) {
    const s = await stolen(be, id, id === second.id ? WO2 : WO);
    assert.ok(
      refusedByAll(Object.values(s), (_k, x) => openToOwner(x, ObjectKind.snapshot, bytes, "s")),
      "a write-only key's secrets open a stored snapshot",
    );
  }
});

test("a write-only key only adds: nothing stored before changes, it deletes only its own session, and it reads and lists only keys/, index/, gc/ and config.wo", async () => {
  const { be, full, first } = await withWriteOnlyKey();
  await full.close();
  const before = storeState(be);
  const spy = spying(be);
  const wo = await Repository.open(spy.backend, WO, { cacheDir: newCache() });
  const r = await takeSnapshot(wo, memSource({ f: file(noise(20_000)), g: file("g") }, ["/w"]).source, {
    host: "w",
    anomaly: false,
  });
  await acknowledge(wo, r.snapshotId, "guard: a pin from the host", "pin");
  // Everything that would take something away is refused by the key, whatever the storage allows.
  await rejectsCode(wo.deleteSnapshot(first.snapshotId), "NEEDS_FULL_KEY");
  await rejectsCode(forgetIds(wo, [r.snapshotId]), "NEEDS_FULL_KEY");
  await rejectsCode(prune(wo), "NEEDS_FULL_KEY");
  await rejectsCode(wo.removeKey((await wo.listKeys()).find((k) => k.kind === "full")!.id), "NEEDS_FULL_KEY");
  await rejectsCode(wo.addKey("another"), "NEEDS_FULL_KEY");
  await rejectsCode(wo.enableFeature("retention"), "NEEDS_FULL_KEY");
  await rejectsCode(wo.setRetention({ days: 1, mode: "governance" }), "NEEDS_FULL_KEY");
  await rejectsCode(wo.records.delete(names.snapshot(first.snapshotId)), "NEEDS_FULL_KEY");
  await rejectsCode(wo.backend.delete(names.snapshot(first.snapshotId)), "NEEDS_FULL_KEY");
  await rejectsCode(wo.backend.put(names.config, Buffer.from("x"), { overwrite: true }), "NEEDS_FULL_KEY");
  await rejectsCode(wo.writeIndexFile({ supersedes: [], packs: [] }), "NEEDS_FULL_KEY");
  await wo.close();
  const afterState = storeState(be);
  for (const [name, hash] of before) assert.equal(afterState.get(name), hash, `${name} changed or went`);
  const added = [...afterState.keys()].filter((n) => !before.has(n)).map((n) => n.split("/")[0]);
  assert.deepEqual([...new Set(added)].sort(), ["acks", "data", "index", "snapshots"]);
  const readable = (n: string) => /^(keys|index|gc)\//.test(n) || n === "config.wo";
  assert.deepEqual(
    spy.reads.filter((n) => !readable(n) && !n.startsWith("keys/")),
    [],
    "it read only what it may",
  );
  assert.deepEqual(
    [...new Set(spy.lists)].filter((p) => !["keys/", "index/", "gc/"].includes(p)),
    [],
    "it listed only what it may",
  );
  assert.ok(spy.lists.includes("index/") && spy.lists.includes("gc/"));
});

test("with the id key a write-only key can test whether a known plaintext is stored (the leak), and deduplicates against what the repository holds", async () => {
  const known = noise(30_000);
  const { be, full, woKeyId } = await withWriteOnlyKey({ doc: file(known), other: file(noise(5000)) });
  await full.close();
  const s = await stolen(be, woKeyId);
  const wo = await openWo(be, newCache());
  // The thief chunks a file it knows exactly as lifeboat would (the chunker key) and looks the
  // keyed ids up in the index it may read.
  const idsOf = (data: Buffer) => {
    const c = new Chunker(SMALL.chunker, gearTable(s.chunker));
    return [...c.push(data), ...c.finish()].map((chunk) => blobId(s.id, chunk));
  };
  assert.ok(
    idsOf(known).every((id) => wo.isIndexed(id)),
    "a known stored file is recognised",
  );
  assert.ok(!idsOf(noise(30_000)).some((id) => wo.isIndexed(id)), "an unknown one is not");
  // The same property deduplicates: backing up the stored file adds nothing but a tree.
  const r = await takeSnapshot(wo, memSource({ copy: file(known) }, ["/w"]).source, {
    host: "w",
    anomaly: false,
  });
  assert.equal(r.summary.blobsAdded, 1, "only the new root tree");
  await wo.close();
});

// --- what a stolen write-only key could try to forge ---------------------------------------------

test("forgeries signed with a write-only key are refused: a prune plan, a superseding index, an acknowledgement, a parent for a full-key host, an object signed by an unlisted key", async () => {
  const { be, full, first, woKeyId } = await withWriteOnlyKey();
  await full.close();
  const s = await stolen(be, woKeyId);
  const thief = new Ed25519Signer(s.sign);
  const packsBefore = [...be.objects().keys()].filter((n) => n.startsWith("data/"));
  const indexBefore = [...be.objects().keys()].filter((n) => n.startsWith("index/")).map((n) => n.slice(6));
  // 1. a prune plan dooming every pack, signed by the write-only key
  const planJson = Buffer.from(
    JSON.stringify({
      created: "2000-01-01T00:00:00.000Z",
      host: "thief",
      packs: packsBefore.map((n) => n.split("/").at(-1)),
      waitFor: [],
    }),
  );
  const planBytes = sealWithIndexKey(s.index, thief, ObjectKind.gcPlan, planJson);
  await be.put(`gc/${sha(planBytes)}`, planBytes);
  // 2. an index file that supersedes every index file and lists nothing
  const idxBytes = sealWithIndexKey(
    s.index,
    thief,
    ObjectKind.index,
    encodeIndex({ supersedes: indexBefore, packs: [] }),
    false,
  );
  await be.put(`index/${sha(idxBytes)}`, idxBytes);
  // 3. a snapshot posing as the owner's host and paths, whose file list points at other data
  const fakeTree = encodeTree({ nodes: [] });
  const fakeSnap = {
    ...first.snapshot,
    time: new Date(Date.now() + 60_000).toISOString(),
    tree: blobId(s.id, fakeTree).toString("hex"),
  };
  const snapBytes = sealToOwner(s.owner, thief, ObjectKind.snapshot, Buffer.from(JSON.stringify(fakeSnap)));
  await be.put(names.snapshot(sha(snapBytes)), snapBytes);
  // 4. an acknowledgement (it would let a pinned snapshot go) and a pin
  const owner = await Repository.open(be, PW);
  await acknowledge(owner, first.snapshotId, "pinned by the owner", "pin");
  await owner.close();
  for (const kind of ["ack", "pin"] as const) {
    const doc = {
      snapshot: first.snapshotId,
      kind,
      time: new Date().toISOString(),
      host: "thief",
      user: "x",
      note: "",
    };
    const bytes = sealToOwner(s.owner, thief, ObjectKind.ack, Buffer.from(JSON.stringify(doc)));
    await be.put(`acks/${sha(bytes)}`, bytes);
  }
  // 5. a snapshot signed by a key the config does not list
  const stranger = new Ed25519Signer(Buffer.alloc(32, 9));
  const strangeBytes = sealToOwner(
    s.owner,
    stranger,
    ObjectKind.snapshot,
    Buffer.from(JSON.stringify(fakeSnap)),
  );
  await be.put(names.snapshot(sha(strangeBytes)), strangeBytes);

  const repo = await Repository.open(be, PW);
  assert.deepEqual(await listPlans(repo), [], "the forged plan is not a plan");
  assert.equal(repo.indexFiles().superseded.length, 0, "a write-only key's index file supersedes nothing");
  assert.ok(packsBefore.every((n) => [...repo.indexedPacks()].includes(n.split("/").at(-1)!)));
  assert.ok(
    (await listAcks(repo)).every((a) => a.kind === "pin"),
    "an acknowledgement from a write-only key does not count",
  );
  assert.ok((await pinnedIds(repo)).has(first.snapshotId), "the owner's pin stands");
  await assert.rejects(repo.loadSnapshot(sha(strangeBytes)), (e: unknown) => e instanceof CorruptionError);
  // The forged snapshot carries the thief's key id for anyone who looks...
  assert.equal((await repo.loadSnapshot(sha(snapBytes))).writer, woKeyId);
  await repo.deleteSnapshot(sha(strangeBytes)); // (the owner removes the unreadable one)
  // ...and the owner's next backup does not take it as its parent, but the owner's own last
  // snapshot: nothing of the forged file list is taken over.
  const src = memSource(ownerSpec(), ["/srv"]);
  const next = await takeSnapshot(repo, src.source, opts);
  assert.equal(next.snapshot.parent, first.snapshotId);
  // A snapshot pointing at data that is not there holds prune back (nothing is deleted while a
  // snapshot cannot be read in full: docs/format.md says so); the owner forgets it.
  await rejectsCode(prune(repo), "CORRUPTION");
  await repo.deleteSnapshot(sha(snapBytes));
  // A prune (twice: plan, then sweep) then keeps every pack the owner's snapshots need.
  await prune(repo);
  await prune(repo);
  await repo.close();
  assert.equal((await assertWhole(be)).snapshots, 2);
});

test("a full key never deduplicates against what a write-only key wrote: a claim for data it does not hold cannot make a full-key backup lose it", async () => {
  const { be, full, woKeyId } = await withWriteOnlyKey();
  await full.close();
  const s = await stolen(be, woKeyId);
  const victim = noise(1000); // a file the thief expects the owner to back up later (one chunk: below the minimum)
  const id = blobId(s.id, victim);
  // A pack of garbage (sealed to the owner, as a write-only key does) claiming to hold it.
  const pb = new PackBuilder(BlobType.data, {
    keyMode: 1,
    salt: Buffer.alloc(32, 5),
    key: Buffer.alloc(32, 6),
  });
  pb.add(id, noise(1000), 0, 1000);
  const pack = pb.finish();
  await be.put(names.pack(pack.id), pack.bytes);
  const idx = sealWithIndexKey(
    s.index,
    new Ed25519Signer(s.sign),
    ObjectKind.index,
    encodeIndex({ supersedes: [], packs: [{ id: pack.id, blobs: pack.entries }] }),
    false,
  );
  await be.put(`index/${sha(idx)}`, idx);
  // A write-only host shares what write-only keys wrote (docs/format.md: the risk it takes)...
  const wo = await openWo(be, newCache());
  assert.ok(wo.isStored(id));
  await wo.close();
  // ...a full key does not.
  const repo = await Repository.open(be, PW);
  assert.ok(repo.isIndexed(id) && !repo.isStored(id), "indexed, but a claim");
  const r = await takeSnapshot(repo, memSource({ victim: file(victim) }, ["/v"]).source, opts);
  assert.ok(r.summary.blobsAdded >= 2, "the file's blob is stored by the full key");
  assert.ok(repo.isStored(id));
  assert.notEqual(repo.lookup(id)?.packId, pack.id, "the full key's copy is the one read");
  assert.equal((await readFiles(repo, r.snapshot.tree)).get("/victim"), victim.toString("hex"));
  await repo.close();
});

test("a stolen write-only key can poison deduplication between write-only hosts; check --read-data finds it and names the snapshot", async () => {
  const { be, full, woKeyId } = await withWriteOnlyKey();
  await addWriteOnlyKey(full, WO2);
  await full.close();
  const s = await stolen(be, woKeyId);
  const victim = noise(1000); // a file the thief expects another write-only host to back up (one chunk)
  const id = blobId(s.id, victim);
  // Garbage, sealed to the owner as a write-only key seals its packs, claiming to be that file.
  const pb = new PackBuilder(BlobType.data, newPackKey({ owner: s.owner }));
  pb.add(id, noise(1000), 0, 1000);
  const pack = pb.finish();
  await be.put(names.pack(pack.id), pack.bytes);
  const idx = sealWithIndexKey(
    s.index,
    new Ed25519Signer(s.sign),
    ObjectKind.index,
    encodeIndex({ supersedes: [], packs: [{ id: pack.id, blobs: pack.entries }] }),
    false,
  );
  await be.put(`index/${sha(idx)}`, idx);
  // The other host deduplicates against the claim: its snapshot references the garbage.
  const other = await openWo(be, newCache(), WO2);
  const r = await takeSnapshot(other, memSource({ victim: file(victim) }, ["/o"]).source, {
    host: "other",
    anomaly: false,
  });
  assert.equal(other.lookup(id)?.packId, pack.id, "the file's blob was taken from the claim, not stored");
  await other.close();
  // The owner's check reading all data finds it, and names the snapshot and file that need it.
  const owner = await Repository.open(be, PW);
  const report = await check(owner, { readData: true });
  const bad = report.problems.filter((p) => p.blobs.includes(id.toString("hex")));
  assert.ok(bad.length > 0, JSON.stringify(report.problems));
  assert.ok(
    bad.some((p) => p.affected.some((a) => JSON.stringify(a).includes(r.snapshotId))),
    JSON.stringify(bad),
  );
  await owner.close();
});

test("a stolen write-only key can add misleading snapshots: a count-based policy counts one posing as the owner's series; its writer gives it away", async () => {
  const { be, full, first, woKeyId } = await withWriteOnlyKey();
  await full.close();
  const s = await stolen(be, woKeyId);
  const fake = { ...first.snapshot, time: new Date(Date.now() + 60_000).toISOString() };
  const bytes = sealToOwner(
    s.owner,
    new Ed25519Signer(s.sign),
    ObjectKind.snapshot,
    Buffer.from(JSON.stringify(fake)),
  );
  const fakeId = sha(bytes);
  await be.put(names.snapshot(fakeId), bytes);
  const owner = await Repository.open(be, PW);
  const r = await forget(owner, { policy: { last: 1 }, dryRun: true });
  assert.deepEqual(r.removed, [first.snapshotId], "--keep-last 1 would keep the forgery, not the owner's");
  assert.equal((await owner.loadSnapshot(fakeId)).writer, woKeyId);
  assert.equal((await owner.loadSnapshot(first.snapshotId)).writer, undefined);
  await owner.close();
});

test("a removed write-only key's copied secrets still sign what a full key accepts, attributed to that key", async () => {
  const { be, full, first, woKeyId } = await withWriteOnlyKey();
  const s = await stolen(be, woKeyId);
  await full.removeKey(woKeyId);
  await full.close();
  const doc = { ...first.snapshot, hostname: "after-removal", time: new Date().toISOString() };
  const bytes = sealToOwner(
    s.owner,
    new Ed25519Signer(s.sign),
    ObjectKind.snapshot,
    Buffer.from(JSON.stringify(doc)),
  );
  await be.put(names.snapshot(sha(bytes)), bytes);
  const owner = await Repository.open(be, PW);
  const loaded = await owner.loadSnapshot(sha(bytes));
  assert.equal(loaded.hostname, "after-removal");
  assert.equal(loaded.writer, woKeyId, "attributed to the removed key");
  await owner.close();
});

test("a removed write-only key is refused; a prune plan sealed for full keys only stops a write-only backup until a full key re-seals it", async () => {
  const { be, full, woKeyId } = await withWriteOnlyKey();
  // A plan written by a full key that did not know about write-only keys (sealed with the
  // metadata key, as an older process would).
  const m = await masterKeys(be);
  const plan = { created: new Date().toISOString(), host: "old", packs: [], waitFor: [] };
  const bytes = sealObject(m.meta, ObjectKind.gcPlan, Buffer.from(JSON.stringify(plan)));
  await be.put(`gc/${sha(bytes)}`, bytes);
  const cache = newCache();
  await rejectsCode(openWo(be, cache), "NEEDS_FULL_KEY");
  const r = await addWriteOnlyKey(full, WO2);
  assert.equal(r.plansResealed, 1);
  const wo2 = await openWo(be, cache);
  await takeSnapshot(wo2, memSource({ a: file("a") }, ["/w"]).source, { host: "w", anomaly: false });
  await wo2.close();
  const keyFile = be.objects().get(names.key(woKeyId))!;
  await full.removeKey(woKeyId);
  await full.close();
  await rejectsCode(openWo(be, cache), "WRONG_PASSWORD"); // its key file is gone
  // Its key file put back (storage credentials can): refused, the config marks the key removed.
  await be.put(names.key(woKeyId), keyFile);
  await rejectsCode(openWo(be, cache), "KEY_ERROR");
});

// --- incremental backups, and what the full key does with it all -------------------------------

test("incremental backups from a write-only host: the second reads no unchanged file, from the host cache; a lost cache costs one full read and stores nothing new", async () => {
  const { be, full } = await withWriteOnlyKey();
  await full.close();
  const spec: MemDir = {
    a: { f1: file(noise(3000)), f2: file(noise(5000), { mtime: "2" }) },
    b: { g: file(noise(7000)) },
    top: file("top"),
  };
  const cache = newCache();
  const host = { host: "w", anomaly: false } as const;
  let wo = await openWo(be, cache);
  const src = memSource(spec, ["/w"]);
  const one = await takeSnapshot(wo, src.source, host);
  assert.equal(src.total(), 4);
  const two = await takeSnapshot(wo, src.source, host);
  assert.equal(src.total(), 4, "nothing read again");
  assert.equal(two.snapshot.parent, one.snapshotId);
  assert.equal(two.summary.filesUnchanged, 4);
  assert.equal(two.snapshot.tree, one.snapshot.tree, "unchanged folders reuse the cached trees");
  // A change is read, the rest is not; across a re-open (the cache is on disk).
  await wo.close();
  (spec.b as MemDir).g = file(noise(7000), { mtime: "3" });
  wo = await openWo(be, cache);
  const three = await takeSnapshot(wo, src.source, host);
  assert.equal(src.reads.get("/b/g"), 2);
  assert.equal(src.total(), 5);
  assert.equal(three.summary.filesChanged, 1);
  await wo.close();
  // Without the cache every file is read again, but all of it is in the index already.
  wo = await openWo(be, newCache());
  const four = await takeSnapshot(wo, src.source, host);
  assert.equal(src.total(), 9);
  assert.equal(four.snapshot.parent, undefined);
  assert.equal(four.summary.blobsAdded, 0);
  await wo.close();
  // The cache keeps a few snapshots per series and only their trees.
  const cacheSnaps = await fs.readdir(path.join(cache, "write-only"), { recursive: true });
  assert.ok(cacheSnaps.filter((f) => String(f).endsWith(".json")).length <= 3);
});

test("a snapshot the owner forgot is forgotten by the write-only host too: its next backup takes no parent that prune may have emptied", async () => {
  const { be, full } = await withWriteOnlyKey();
  const cache = newCache();
  const src = memSource({ f: file(noise(8000)) }, ["/w"]);
  let wo = await openWo(be, cache);
  const one = await takeSnapshot(wo, src.source, { host: "w", anomaly: false });
  await wo.close();
  await full.reloadIndex();
  await forgetIds(full, [one.snapshotId]);
  await prune(full);
  await prune(full);
  wo = await openWo(be, cache);
  const two = await takeSnapshot(wo, src.source, { host: "w", anomaly: false });
  assert.equal(two.snapshot.parent, undefined);
  assert.equal(src.total(), 2, "read again");
  await wo.close();
  await full.close();
  assert.equal((await assertWhole(be)).snapshots, 2);
});

test("a full key restores what a write-only host wrote; check (reading all data) and prune work on the mixed repository", async () => {
  const { be, full, first } = await withWriteOnlyKey();
  const spec: MemDir = { docs: { a: file(noise(12_000)), b: file("bee") }, shared: file(noise(40_000)) };
  const cache = newCache();
  let wo = await openWo(be, cache);
  const one = await takeSnapshot(wo, memSource(spec, ["/w"]).source, { host: "w", anomaly: false });
  (spec.docs as MemDir).a = file(noise(12_000), { mtime: "5" });
  const two = await takeSnapshot(wo, memSource(spec, ["/w"]).source, { host: "w", anomaly: false });
  await wo.close();
  await full.reloadIndex();
  const files = await readFiles(full, two.snapshot.tree);
  assert.equal(files.get("/docs/b"), Buffer.from("bee").toString("hex"));
  assert.equal(files.get("/docs/a"), ((spec.docs as MemDir).a as { data: Buffer }).data.toString("hex"));
  const report = await check(full, { readData: true });
  assert.deepEqual(report.problems, []);
  // Forget the write-only host's first snapshot and the owner's; prune (plan, then sweep).
  await forgetIds(full, [one.snapshotId, first.snapshotId]);
  const p1 = await prune(full);
  assert.ok(p1.mark.plan, "something to delete");
  await prune(full);
  assert.deepEqual((await check(full, { readData: true })).problems, []);
  await full.close();
  assert.equal((await assertWhole(be)).snapshots, 1);
  // The write-only host keeps backing up after the prune (it reads the new index and plans).
  wo = await openWo(be, cache);
  const three = await takeSnapshot(wo, memSource(spec, ["/w"]).source, { host: "w", anomaly: false });
  assert.equal(three.snapshot.parent, two.snapshotId);
  await wo.close();
  assert.equal((await assertWhole(be)).snapshots, 2);
});

test("a guard's comparison from a write-only host: the after snapshot is compared with the cached before snapshot, and a wipe is flagged (zeroes found by their ids)", async () => {
  const { be, full } = await withWriteOnlyKey();
  await full.close();
  const files: MemDir = {};
  for (let i = 0; i < 30; i++) files[`f${i}`] = file(noise(6000));
  const wo = await openWo(be, newCache());
  const before = await takeSnapshot(wo, memSource(files, ["/app"]).source, { host: "w" });
  const wiped: MemDir = {};
  for (let i = 0; i < 30; i++) wiped[`f${i}`] = file(Buffer.alloc(6000), { mtime: "9" });
  const afterSnap = await takeSnapshot(wo, memSource(wiped, ["/app"]).source, {
    host: "w",
    parent: before.snapshotId,
  });
  assert.ok(
    (afterSnap.snapshot.anomalies ?? []).some((a) => /zero|constant|overwritten/i.test(a)),
    `anomalies: ${JSON.stringify(afterSnap.snapshot.anomalies)}`,
  );
  await acknowledge(wo, afterSnap.snapshotId, "guard", "pin");
  await wo.close();
  const owner = await Repository.open(be, PW);
  assert.ok((await pinnedIds(owner)).has(afterSnap.snapshotId));
  assert.ok((await owner.records.list(ackKind)).every((r) => r.writer !== undefined));
  await owner.close();
});

test("what a write-only key reads is only what it may: the config copy must be signed by the owner, plans by a full key", async () => {
  const { be, full, woKeyId } = await withWriteOnlyKey();
  await full.close();
  const s = await stolen(be, woKeyId);
  // A config.wo forged with the write-only key (say, without the retention) is refused.
  const cfg = openWithIndexKey(
    s.index,
    ObjectKind.writeOnlyConfig,
    be.objects().get(names.writeOnlyConfig)!,
    "c",
  );
  const forged = sealWithIndexKey(s.index, new Ed25519Signer(s.sign), ObjectKind.writeOnlyConfig, cfg.plain);
  be.corrupt(names.writeOnlyConfig, () => forged);
  await assert.rejects(openWo(be, newCache()), (e: unknown) => e instanceof CorruptionError);
  // (and a plan is read by the write-only key only when a full key signed it: see above)
  const planBytes = sealWithIndexKey(
    s.index,
    new Ed25519Signer(s.sign),
    ObjectKind.gcPlan,
    Buffer.from(JSON.stringify({ created: "x", host: "h", packs: [], waitFor: [] })),
  );
  await be.put(`gc/${sha(planBytes)}`, planBytes);
  const owner = await Repository.open(be, PW);
  await assert.rejects(owner.records.read(planKind, `gc/${sha(planBytes)}`), /may not write a prune plan/);
  await owner.close();
});

test("a process that read the config before a write-only key was made still reads what that key writes (it reads the config again)", async () => {
  const { be, full } = await withWriteOnlyKey();
  await full.close();
  const longRunning = await Repository.open(be, PW);
  const wo1 = await openWo(be, newCache());
  const admin = await Repository.open(be, PW);
  await addWriteOnlyKey(admin, WO2);
  await admin.close();
  const wo2 = await openWo(be, newCache(), WO2);
  const r = await takeSnapshot(wo2, memSource({ n: file(noise(5000)) }, ["/n"]).source, {
    host: "n",
    anomaly: false,
  });
  await wo2.close();
  // The first write-only host loads the new key's index file on its next backup.
  await takeSnapshot(wo1, memSource({ m: file(noise(5000)) }, ["/m"]).source, { host: "m", anomaly: false });
  await wo1.close();
  await longRunning.catchUpIndex();
  assert.equal((await longRunning.loadSnapshot(r.snapshotId)).writer !== undefined, true);
  assert.equal((await readFiles(longRunning, r.snapshot.tree)).size, 1);
  await longRunning.close();
});
