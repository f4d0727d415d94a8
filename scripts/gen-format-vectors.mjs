#!/usr/bin/env node
// Prints the test vectors of docs/format.md (JSON). Encryption uses random nonces and salts, so
// re-running gives new ciphertexts; the vectors in the doc are one such run, and the tests check
// that this implementation decodes them (and re-derives every deterministic value exactly).
// Usage: npm run build && LIFEBOAT_KDF_N=1024 node scripts/gen-format-vectors.mjs [--write-only | --fleet]
// (--write-only prints the block of "Write-only keys" instead: format version 2; --fleet the
// vectors of the fleet-accounts feature, docs/format.md "Account catalogue".)
import { createCipheriv } from "node:crypto";
import { Chunker, gearTable } from "../dist/src/core/chunker.js";
import { maybeCompress } from "../dist/src/core/compress.js";
import { blobId, deriveKey } from "../dist/src/core/crypto.js";
import { Ed25519Signer } from "../dist/src/repo/asymmetric.js";
import { encodeIndex } from "../dist/src/repo/index-file.js";
import { ownerSecrets } from "../dist/src/repo/key-ring.js";
import { createKeyFile, createWriteOnlyKeyFile } from "../dist/src/repo/keys.js";
import { newPackKey, PackBuilder } from "../dist/src/repo/pack.js";
import { ObjectKind, sealObject, sealToOwner, sealWithIndexKey } from "../dist/src/repo/sealed-object.js";
import { encodeTree } from "../dist/src/repo/tree.js";

const k = (b) => Buffer.alloc(32, b);
const keys = { id: k(3), chunker: k(1), data: k(4), meta: k(2) };
const prng = (n) => createCipheriv("aes-128-ctr", Buffer.alloc(16), Buffer.alloc(16)).update(Buffer.alloc(n));

const params = { min: 2048, avg: 8192, max: 65536 };
const ch = new Chunker(params, gearTable(keys.chunker));
const lengths = [...ch.push(prng(300_000)), ...ch.finish()].map((c) => c.length);

const tree = {
  nodes: [
    {
      name: "b.txt",
      type: "file",
      mode: 420,
      uid: 1000,
      gid: 1000,
      mtime: "1700000000123456789",
      size: 5,
      content: [blobId(keys.id, Buffer.from("hello")).toString("hex")],
    },
    {
      name: "a",
      type: "dir",
      mode: 493,
      uid: 0,
      gid: 0,
      mtime: "1700000000000000000",
      subtree: "00".repeat(32),
    },
    { name: "l", type: "symlink", mode: 511, uid: 0, gid: 0, mtime: "1", target: "../x" },
  ],
};
const treeBytes = encodeTree(tree);

const pb = new PackBuilder(0, keys.data);
const blobs = [Buffer.from("hello world"), Buffer.alloc(1000, 0x61)];
for (const b of blobs) {
  const { data, compression } = maybeCompress(b);
  pb.add(blobId(keys.id, b), data, compression, b.length);
}
const pack = pb.finish();

const snapshot = {
  version: 1,
  time: "2026-01-01T00:00:00.000Z",
  tree: blobId(keys.id, treeBytes).toString("hex"),
  paths: ["/home/ann"],
  hostname: "h",
  username: "ann",
  tags: [],
  incomplete: false,
  errors: [],
  changedWhileReading: [],
  excludes: [],
  program: "lifeboat 0.1.0",
};
const keyFile = await createKeyFile("correct horse battery staple", keys);

if (process.argv.includes("--write-only")) {
  // Format version 2: what a full key derives from its metadata key, a write-only key file, a
  // pack and a snapshot a write-only key wrote (key mode 1), and the index file of that pack as a
  // full key rewrites it (mode 2, a claim).
  const owner = ownerSecrets(keys.meta);
  const sign = k(5);
  const signer = new Ed25519Signer(sign);
  const secrets = {
    id: keys.id,
    chunker: keys.chunker,
    index: owner.index,
    owner: owner.owner.publicKey,
    authority: owner.authority.publicKey,
    sign,
  };
  const woPack = new PackBuilder(0, newPackKey({ owner: owner.owner.publicKey }));
  const woBlobs = [Buffer.from("written by a write-only key"), Buffer.alloc(500, 0x62)];
  for (const b of woBlobs) {
    const { data, compression } = maybeCompress(b);
    woPack.add(blobId(keys.id, b), data, compression, b.length);
  }
  const p = woPack.finish();
  const index = encodeIndex({ supersedes: [], packs: [{ id: p.id, blobs: p.entries, claim: true }] });
  const woSnapshot = { ...snapshot, hostname: "w", paths: ["/srv"] };
  const woKey = await createWriteOnlyKeyFile("write-only horse", secrets);
  const hexOf = (o) => Object.fromEntries(Object.entries(o).map(([n, v]) => [n, v.toString("hex")]));
  console.log(
    JSON.stringify(
      {
        meta: keys.meta.toString("hex"),
        derived: {
          index: owner.index.toString("hex"),
          ownerPublic: owner.owner.publicKey.toString("hex"),
          authorityPublic: owner.authority.publicKey.toString("hex"),
        },
        writeOnlyKey: {
          password: "write-only horse",
          secrets: hexOf(secrets),
          signerPublic: signer.publicKey.toString("hex"),
          json: JSON.parse(woKey.bytes.toString("utf8")),
        },
        pack: { id: p.id, hex: p.bytes.toString("hex"), blobs: woBlobs.map((b) => b.toString("utf8")) },
        index: {
          plain: index.toString("hex"),
          hex: sealWithIndexKey(owner.index, owner.authority, ObjectKind.index, index, false).toString("hex"),
        },
        snapshot: {
          json: woSnapshot,
          hex: sealToOwner(
            owner.owner.publicKey,
            signer,
            ObjectKind.snapshot,
            Buffer.from(JSON.stringify(woSnapshot)),
          ).toString("hex"),
        },
      },
      null,
      1,
    ),
  );
  process.exit(0);
}

const out = {
  keys: Object.fromEntries(Object.entries(keys).map(([n, v]) => [n, v.toString("hex")])),
  gear: { seed: keys.chunker.toString("hex"), first4: [...gearTable(keys.chunker).slice(0, 4)] },
  chunks: {
    params,
    input: "AES-128-CTR keystream, key 16 zero bytes, counter block 16 zero bytes, first 300000 bytes",
    lengths,
  },
  blobId: {
    key: keys.id.toString("hex"),
    plaintext: "hello",
    id: blobId(keys.id, Buffer.from("hello")).toString("hex"),
  },
  hkdf: {
    key: keys.data.toString("hex"),
    salt: "00".repeat(32),
    info: "lifeboat pack v1",
    out: deriveKey(keys.data, Buffer.alloc(32), "lifeboat pack v1").toString("hex"),
  },
  tree: { json: treeBytes.toString("utf8"), id: blobId(keys.id, treeBytes).toString("hex") },
  pack: { id: pack.id, hex: pack.bytes.toString("hex"), blobs: blobs.map((b) => b.toString("utf8")) },
  index: {
    hex: encodeIndex({ supersedes: [], packs: [{ id: pack.id, blobs: pack.entries }] }).toString("hex"),
  },
  snapshot: {
    hex: sealObject(keys.meta, ObjectKind.snapshot, Buffer.from(JSON.stringify(snapshot))).toString("hex"),
    json: snapshot,
  },
  keyFile: { password: "correct horse battery staple", json: JSON.parse(keyFile.bytes.toString("utf8")) },
};
if (process.argv.includes("--fleet")) {
  // Format feature fleet-accounts (docs/format.md, "Account catalogue"): an account snapshot and
  // its catalogue entry, and the label folder the entry lives in.
  const accountSnapshot = {
    ...snapshot,
    hostname: "mail",
    tags: ["fleet:mail"],
    account: "ann",
    fleet: "mail",
  };
  const sealedSnapshot = sealObject(
    keys.meta,
    ObjectKind.snapshot,
    Buffer.from(JSON.stringify(accountSnapshot)),
  );
  const entry = {
    version: 1,
    fleet: "mail",
    account: "ann",
    snapshot: "ab".repeat(32),
    time: accountSnapshot.time,
    window: "2026-01-01T01:00[Europe/Berlin]",
    kind: "folder",
    paths: accountSnapshot.paths,
    fingerprint: "mtime:0123456789abcdef0123456789abcdef",
  };
  const sealedEntry = sealObject(keys.meta, ObjectKind.accountEntry, Buffer.from(JSON.stringify(entry)));
  console.log(
    JSON.stringify(
      {
        labelText: "lifeboat account ann",
        labelKey: blobId(keys.id, Buffer.from("lifeboat account ann")).toString("hex"),
        snapshot: { hex: sealedSnapshot.toString("hex"), json: accountSnapshot },
        entry: { hex: sealedEntry.toString("hex"), json: entry },
      },
      null,
      1,
    ),
  );
} else console.log(JSON.stringify(out, null, 1));
