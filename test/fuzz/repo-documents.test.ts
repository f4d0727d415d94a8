import assert from "node:assert/strict";
import { test } from "node:test";
import { decodeConfig } from "../../src/repo/config.js";
import { decodeSnapshot, type Snapshot } from "../../src/repo/snapshot.js";
import { decodeTree, encodeTree, type Tree } from "../../src/repo/tree.js";
import { sampleTree } from "./fixtures.js";
import { hostileJson } from "./mutate.js";
import { expectDecodes, fuzz } from "./support.js";

/** The JSON documents of a repository: trees, snapshots, the config. */

const hex64 = /^[0-9a-f]{64}$/;
const decimal = /^-?[0-9]+$/;
const isInt = (v: unknown) => typeof v === "number" && Number.isSafeInteger(v);

/** Every field as src/repo/tree.ts declares it, so code that reads a node can trust it. */
function validTree(t: Tree): void {
  for (const n of t.nodes) {
    const show = JSON.stringify(n);
    assert.equal(typeof n.name, "string", show);
    assert.ok(["file", "dir", "symlink"].includes(n.type), show);
    for (const k of ["mode", "uid", "gid"] as const)
      assert.ok(isInt(n[k]) && n[k] >= 0 && n[k] <= 0xffffffff, `${k} in ${show}`);
    assert.ok(typeof n.mtime === "string" && decimal.test(n.mtime), `mtime in ${show}`);
    for (const k of ["ctime", "inode", "device"] as const)
      if (n[k] !== undefined) assert.ok(typeof n[k] === "string" && decimal.test(n[k]), `${k} in ${show}`);
    if (n.links !== undefined) assert.ok(isInt(n.links) && n.links >= 0, `links in ${show}`);
    if (n.size !== undefined) assert.ok(isInt(n.size) && n.size >= 0, `size in ${show}`);
    if (n.content !== undefined)
      assert.ok(Array.isArray(n.content) && n.content.every((c) => hex64.test(c)), `content in ${show}`);
    if (n.subtree !== undefined) assert.ok(typeof n.subtree === "string" && hex64.test(n.subtree), show);
    if (n.target !== undefined) assert.equal(typeof n.target, "string", `target in ${show}`);
    if (n.type === "file") assert.ok(n.size !== undefined && n.content !== undefined, show);
    if (n.type === "dir") assert.ok(n.subtree !== undefined, show);
    if (n.type === "symlink") assert.ok(n.target !== undefined, show);
  }
}

test("fuzz tree: a tree whose nodes are what they claim, or a LifeboatError", () => {
  const samples = [sampleTree, { nodes: [] }, { nodes: [sampleTree.nodes[0]] }];
  // The encoder's own bytes are among the samples (canonical order and key order).
  assert.ok(decodeTree(encodeTree(sampleTree), "t").nodes.length === 3);
  fuzz("decodeTree", [hostileJson(samples)], (buf) => {
    expectDecodes("decodeTree", buf, () => decodeTree(buf, "tree fuzz"), validTree);
  });
});

const snapshot: Snapshot = {
  version: 1,
  time: "2026-01-02T03:04:05.678Z",
  tree: "ab".repeat(32),
  paths: ["/home/a", "/etc"],
  hostname: "host",
  username: "root",
  uid: 0,
  gid: 0,
  tags: ["daily"],
  parent: "cd".repeat(32),
  incomplete: true,
  errors: ["/home/a/x: EACCES"],
  changedWhileReading: [],
  excludes: ["*.tmp"],
  anomalies: ["90% of files deleted"],
  program: "lifeboat 0.1.0",
  source: "sqlite",
  meta: { replication: { generation: "00ff", wal: { salt1: 1, salt2: 2, checkpointSeq: 3, offset: 32 } } },
  summary: {
    files: 1,
    dirs: 2,
    bytes: 3,
    filesNew: 1,
    filesChanged: 0,
    filesUnchanged: 0,
    blobsAdded: 4,
    bytesAdded: 5,
    bytesStored: 6,
    durationMs: 7,
  },
};

test("fuzz snapshot: a snapshot document or a LifeboatError", () => {
  const minimal = {
    version: 1,
    time: "t",
    tree: "00".repeat(32),
    paths: [],
    hostname: "h",
    username: "u",
    program: "p",
  };
  fuzz("decodeSnapshot", [hostileJson([snapshot, minimal])], (buf) => {
    expectDecodes(
      "decodeSnapshot",
      buf,
      () => decodeSnapshot(buf, "snapshots/fuzz"),
      (s) => {
        assert.equal(s.version, 1);
        assert.match(s.tree, hex64);
        for (const k of ["paths", "tags", "errors", "changedWhileReading", "excludes"] as const)
          assert.ok(Array.isArray(s[k]) && s[k].every((x) => typeof x === "string"), k);
      },
    );
  });
});

test("fuzz config: a config the chunker and packer can use, or a LifeboatError", () => {
  const config = {
    version: 1,
    id: "ef".repeat(32),
    created: "2026-01-01T00:00:00.000Z",
    chunker: { min: 524288, avg: 1048576, max: 8388608 },
    packSize: 16777216,
  };
  fuzz(
    "decodeConfig",
    [hostileJson([config, { ...config, version: 2, features: { read: ["future-read"], write: [] } }])],
    (buf) => {
      expectDecodes(
        "decodeConfig",
        buf,
        () => decodeConfig(buf),
        (c) => {
          assert.match(c.id, hex64);
          const { min, avg, max } = c.chunker;
          assert.ok([min, avg, max, c.packSize].every(isInt), "integers");
          assert.ok(64 <= min && min < avg && avg < max, "chunker sizes in order");
          // Blob lengths and pack offsets are u32 in the format (docs/format.md).
          assert.ok(
            max <= 2 ** 31 && c.packSize <= 2 ** 31,
            `sizes the format can hold: ${max}, ${c.packSize}`,
          );
        },
      );
    },
    10, // cheap, and few of its mutations reach the sizes
  );
});
