import assert from "node:assert/strict";
import { createCipheriv } from "node:crypto";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { Chunker, gearTable } from "../core/chunker.js";
import { blobId, deriveKey, storageId } from "../core/crypto.js";
import { displayName, nameToBytes } from "../core/names.js";
import { Ed25519Signer, X25519Secret } from "./asymmetric.js";
import { decodeIndex, encodeIndex } from "./index-file.js";
import { ownerSecrets } from "./key-ring.js";
import { parseKeyFile, unwrapKeyFile, unwrapWriteOnlyKeyFile } from "./keys.js";
import { decodeBlob, openPackKey, packKey, parsePrefix, readPackHeader } from "./pack.js";
import { accountEntryKind } from "./records-account.js";
import { ObjectKind, openObject, openToOwner, openWithIndexKey } from "./sealed-object.js";
import { decodeSnapshot } from "./snapshot.js";
import { decodeTree, encodeTree, nodeFeatures } from "./tree.js";

// The vectors live in docs/format.md so the specification and the code are checked together.
const doc = readFileSync(new URL("../../../docs/format.md", import.meta.url), "utf8");
const block = /<!-- vectors:begin -->\s*```json\n([\s\S]*?)```\s*<!-- vectors:end -->/.exec(doc);
if (!block) throw new Error("docs/format.md has no vectors block");
const v = JSON.parse(block[1]!);
const hex = (s: string) => Buffer.from(s, "hex");
const keys = {
  id: hex(v.keys.id),
  chunker: hex(v.keys.chunker),
  data: hex(v.keys.data),
  meta: hex(v.keys.meta),
};

test("gear table and chunk boundaries", () => {
  assert.deepEqual([...gearTable(keys.chunker).slice(0, 4)], v.gear.first4);
  const input = createCipheriv("aes-128-ctr", Buffer.alloc(16), Buffer.alloc(16)).update(
    Buffer.alloc(300_000),
  );
  const c = new Chunker(v.chunks.params, gearTable(keys.chunker));
  const lens = [...c.push(input), ...c.finish()].map((x) => x.length);
  assert.deepEqual(lens, v.chunks.lengths);
});

test("blob id and HKDF", () => {
  assert.equal(blobId(keys.id, Buffer.from(v.blobId.plaintext)).toString("hex"), v.blobId.id);
  assert.equal(deriveKey(hex(v.hkdf.key), hex(v.hkdf.salt), v.hkdf.info).toString("hex"), v.hkdf.out);
});

test("canonical tree encoding", () => {
  const tree = decodeTree(Buffer.from(v.tree.json), "vector");
  const shuffled = { nodes: [...tree.nodes].reverse() };
  assert.equal(encodeTree(shuffled).toString("utf8"), v.tree.json);
  assert.equal(blobId(keys.id, Buffer.from(v.tree.json)).toString("hex"), v.tree.id);
});

test("pack decodes to the listed blobs and matches its storage id", () => {
  const bytes = hex(v.pack.hex);
  assert.equal(storageId(bytes), v.pack.id);
  const entries = readPackHeader(bytes, keys, "vector pack");
  const prefix = parsePrefix(bytes, "vector pack");
  const key = packKey(keys.data, prefix.salt);
  const plain = entries.map((e) =>
    decodeBlob(bytes.subarray(e.offset, e.offset + e.length), e, key, keys.id, "vector"),
  );
  assert.deepEqual(
    plain.map((p) => p.toString("utf8")),
    v.pack.blobs,
  );
  const index = encodeIndex({ supersedes: [], packs: [{ id: v.pack.id, blobs: entries }] });
  assert.equal(index.toString("hex"), v.index.hex);
  assert.deepEqual(decodeIndex(index, "vector").packs[0]!.blobs, entries);
});

test("a flipped byte anywhere in the pack is detected", () => {
  const bytes = hex(v.pack.hex);
  const entries = readPackHeader(bytes, keys, "vector pack");
  const key = packKey(keys.data, parsePrefix(bytes, "p").salt);
  const e = entries[0]!;
  const damaged = Buffer.from(bytes);
  damaged[e.offset + 15] = damaged[e.offset + 15]! ^ 1;
  assert.throws(
    () => decodeBlob(damaged.subarray(e.offset, e.offset + e.length), e, key, keys.id, "p"),
    /authentication failed/,
  );
  const hdr = Buffer.from(bytes);
  hdr[hdr.length - 10] = hdr[hdr.length - 10]! ^ 1;
  assert.throws(() => readPackHeader(hdr, keys, "p"), /authentication failed/);
});

test("snapshot object and key file open with the given keys and password", async () => {
  const snap = openObject(keys.meta, ObjectKind.snapshot, hex(v.snapshot.hex), "vector");
  assert.deepEqual(JSON.parse(snap.toString("utf8")), v.snapshot.json);
  assert.throws(() => openObject(keys.meta, ObjectKind.index, hex(v.snapshot.hex), "vector"), /kind/);
  const file = parseKeyFile(Buffer.from(JSON.stringify(v.keyFile.json)), "vector key");
  const opened = await unwrapKeyFile(file, v.keyFile.password);
  assert.ok(opened);
  assert.deepEqual(
    Object.fromEntries(Object.entries(opened).map(([n, k]) => [n, k.toString("hex")])),
    v.keys,
  );
  assert.equal(await unwrapKeyFile(file, "wrong password"), undefined);
});

const featureBlock =
  /<!-- feature-vectors:begin -->\s*```json\n([\s\S]*?)```\s*<!-- feature-vectors:end -->/.exec(doc);
if (!featureBlock) throw new Error("docs/format.md has no feature-vectors block");
const fv = JSON.parse(featureBlock[1]!);

test("tree with byte names, extended attributes and special files: canonical bytes and id", () => {
  const tree = decodeTree(Buffer.from(fv.tree.json), "feature vector");
  for (const [shown, bytes] of Object.entries(fv.names as Record<string, string>)) {
    const n = tree.nodes.find((x) => displayName(x.name) === shown);
    assert.ok(n, shown);
    assert.equal(nameToBytes(n.name).toString("hex"), bytes);
  }
  assert.equal(
    nameToBytes(tree.nodes.find((n) => n.type === "symlink")!.target!).toString("hex"),
    fv.names["caf\\xE9.txt"],
  );
  const shuffled = { nodes: [...tree.nodes].reverse() };
  assert.equal(encodeTree(shuffled).toString("utf8"), fv.tree.json);
  assert.equal(blobId(hex(fv.key), Buffer.from(fv.tree.json)).toString("hex"), fv.tree.id);
  assert.deepEqual([...new Set(tree.nodes.flatMap(nodeFeatures))].sort(), [
    "byte-names",
    "special-files",
    "xattrs",
  ]);
  // The version-1 vector needs none of them: old trees encode as before.
  assert.deepEqual(decodeTree(Buffer.from(v.tree.json), "vector").nodes.flatMap(nodeFeatures), []);
});

// Format version 2: write-only keys (docs/format.md, "Write-only keys").
const woBlock =
  /<!-- write-only-vectors:begin -->\s*```json\n([\s\S]*?)```\s*<!-- write-only-vectors:end -->/.exec(doc);
if (!woBlock) throw new Error("docs/format.md has no write-only-vectors block");
const wv = JSON.parse(woBlock[1]!);

test("write-only keys: what a full key derives from its metadata key, and the key file", async () => {
  const owner = ownerSecrets(hex(wv.meta));
  assert.equal(owner.index.toString("hex"), wv.derived.index);
  assert.equal(owner.owner.publicKey.toString("hex"), wv.derived.ownerPublic);
  assert.equal(owner.authority.publicKey.toString("hex"), wv.derived.authorityPublic);
  assert.equal(
    new Ed25519Signer(hex(wv.writeOnlyKey.secrets.sign)).publicKey.toString("hex"),
    wv.writeOnlyKey.signerPublic,
  );
  const file = parseKeyFile(Buffer.from(JSON.stringify(wv.writeOnlyKey.json)), "vector key");
  assert.equal(await unwrapKeyFile(file, wv.writeOnlyKey.password), undefined, "not a full key");
  const s = await unwrapWriteOnlyKeyFile(file, wv.writeOnlyKey.password);
  assert.ok(s);
  assert.deepEqual(
    Object.fromEntries(Object.entries(s).map(([n, k]) => [n, k.toString("hex")])),
    wv.writeOnlyKey.secrets,
  );
  assert.equal(await unwrapWriteOnlyKeyFile(file, "wrong password"), undefined);
});

test("write-only keys: a key mode 1 pack opens with the owner's private key only", () => {
  const bytes = hex(wv.pack.hex);
  assert.equal(storageId(bytes), wv.pack.id);
  const prefix = parsePrefix(bytes, "vector pack");
  assert.equal(prefix.keyMode, 1);
  const owner = ownerSecrets(hex(wv.meta)).owner;
  const roots = { data: keys.data, meta: keys.meta, owner };
  const entries = readPackHeader(bytes, roots, "vector pack");
  const key = openPackKey(prefix, roots, "vector pack");
  assert.deepEqual(
    entries.map((e) =>
      decodeBlob(bytes.subarray(e.offset, e.offset + e.length), e, key, keys.id, "v").toString(),
    ),
    wv.pack.blobs,
  );
  // Nothing the write-only key holds opens it.
  for (const secret of Object.values(wv.writeOnlyKey.secrets as Record<string, string>)) {
    const k = hex(secret);
    assert.throws(() => readPackHeader(bytes, { data: k, meta: k, owner: new X25519Secret(k) }, "p"));
  }
});

test("write-only keys: the claim index (plaintext version 2) and its mode 2 envelope; a mode 1 snapshot", () => {
  const owner = ownerSecrets(hex(wv.meta));
  const opened = openWithIndexKey(owner.index, ObjectKind.index, hex(wv.index.hex), "vector index");
  assert.equal(opened.plain.toString("hex"), wv.index.plain);
  assert.ok(opened.signer.equals(owner.authority.publicKey), "signed by the owner");
  const file = decodeIndex(opened.plain, "vector index");
  assert.equal(file.packs[0]!.id, wv.pack.id);
  assert.equal(file.packs[0]!.claim, true);
  assert.equal(encodeIndex(file).toString("hex"), wv.index.plain);
  const snap = openToOwner(owner.owner, ObjectKind.snapshot, hex(wv.snapshot.hex), "vector snapshot");
  assert.deepEqual(JSON.parse(snap.plain.toString("utf8")), wv.snapshot.json);
  assert.equal(snap.signer.toString("hex"), wv.writeOnlyKey.signerPublic);
  // A flipped byte of the signed part fails the signature.
  const bad = hex(wv.snapshot.hex);
  bad[30] = bad[30]! ^ 1;
  assert.throws(() => openToOwner(owner.owner, ObjectKind.snapshot, bad, "s"), /signature/);
});

// Format feature fleet-accounts: the account catalogue's label folder and sealed records.
const fleetBlock = /<!-- fleet-vectors:begin -->\s*```json\n([\s\S]*?)```\s*<!-- fleet-vectors:end -->/.exec(
  doc,
);
if (!fleetBlock) throw new Error("docs/format.md has no fleet-vectors block");
const flv = JSON.parse(fleetBlock[1]!);

test("account catalogue: label folder, account snapshot and catalogue entry", () => {
  assert.equal(blobId(keys.id, Buffer.from(flv.labelText)).toString("hex"), flv.labelKey);
  const snap = decodeSnapshot(
    openObject(keys.meta, ObjectKind.snapshot, hex(flv.snapshot.hex), "vector"),
    "vector",
  );
  assert.equal(snap.account, "ann");
  assert.equal(snap.fleet, "mail");
  assert.deepEqual(
    JSON.parse(openObject(keys.meta, ObjectKind.snapshot, hex(flv.snapshot.hex), "v").toString()),
    flv.snapshot.json,
  );
  const entry = accountEntryKind.schema.parse(
    JSON.parse(openObject(keys.meta, ObjectKind.accountEntry, hex(flv.entry.hex), "vector").toString("utf8")),
  );
  assert.deepEqual(entry, flv.entry.json);
  assert.equal(ObjectKind.accountEntry, 10);
  assert.throws(() => openObject(keys.meta, ObjectKind.snapshot, hex(flv.entry.hex), "vector"), /kind/);
});
