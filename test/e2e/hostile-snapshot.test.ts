/**
 * A snapshot written by a hostile key holder (through the library, as anyone holding the
 * password could): names of 4 KB, a tree 10,000 folders deep, and zstd bombs (a few hundred KB
 * of stored blob inflating to 10 GiB) inside files. Restored end to end by the CLI, with the
 * restore's peak RSS measured (GNU time): nothing is written outside --target, memory stays
 * bounded, the bad parts fail with clear errors (exit 14, one line per item) and the rest is
 * restored; `ls`, `find` and `dump` walk the deep tree without overflowing the stack.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { promises as fs } from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import { openBackend } from "../../src/backend/open.js";
import { Compression } from "../../src/core/compress.js";
import { ExitCode } from "../../src/core/errors.js";
import { BlobType, type BlobTypeValue } from "../../src/repo/blob.js";
import { Repository } from "../../src/repo/repository.js";
import type { Snapshot } from "../../src/repo/snapshot.js";
import type { TreeNode } from "../../src/repo/tree.js";
import {
  baseEnv,
  CLI,
  type CliResult,
  run,
  sha256File,
  show,
  snapshotListing,
  useWorkspace,
} from "../support/cli.js";

const PW = "a hostile key holder";
const DEPTH = 10_000;
const LONG = "n".repeat(4096);
/** Generous: a restore of this snapshot takes well under 200 MiB (see docs/reliability.md). */
const RSS_LIMIT_KIB = 1024 * 1024;
/** What the bombs inflate to: 81,920 RLE blocks of 128 KiB, 320 KiB stored. */
const BOMB_BYTES = 10 * 1024 ** 3;

const meta = { mode: 0o644, uid: 0, gid: 0, mtime: "1700000000000000000" };

/**
 * A zstd frame of RLE blocks (4 bytes each, the densest zstd can be) inflating to `total` bytes
 * of "A", without a content size in its header (so nothing warns the decoder up front).
 */
function zstdBomb(total: number): Buffer {
  const BLOCK = 128 * 1024;
  const blocks = Math.ceil(total / BLOCK);
  const out = Buffer.alloc(6 + 4 * blocks);
  out.writeUInt32LE(0xfd2fb528, 0); // magic
  out[4] = 0x00; // no content size, not single segment, no checksum, no dictionary
  out[5] = 7 << 3; // window 2^17 = 128 KiB
  for (let i = 0, o = 6; i < blocks; i++, o += 4) {
    const size = Math.min(BLOCK, total - i * BLOCK);
    const last = i === blocks - 1 ? 1 : 0;
    out.writeUIntLE((size << 3) | (1 << 1) | last, o, 3); // RLE block
    out[o + 3] = 0x41;
  }
  return out;
}

/** The pack writer's private entry point for an already compressed blob: what a hostile writer
 * of its own code would call (the public saveBlob compresses honestly). */
interface RawAdd {
  addToPack(
    type: BlobTypeValue,
    id: Buffer,
    data: Buffer,
    compression: number,
    rawLength: number,
  ): Promise<void>;
}

let snapshotId = "";
let deepPath = "";

async function craft(repoPath: string): Promise<string> {
  const repo = await Repository.open(await openBackend(repoPath), PW);
  try {
    const root = await repo.withWriter(async (w) => {
      const file = async (name: string, text: string): Promise<TreeNode> => {
        const data = Buffer.from(text);
        const { id } = await w.saveBlob(BlobType.data, data);
        return { name, type: "file", ...meta, size: data.length, content: [id.toString("hex")] };
      };
      const frame = zstdBomb(BOMB_BYTES);
      const bomb = async (name: string, claimed: number, seed: string): Promise<TreeNode> => {
        // The id of some other plaintext: the bomb is caught by its length before any id check.
        const id = repo.blobId(Buffer.from(seed));
        await (w as unknown as RawAdd).addToPack(BlobType.data, id, frame, Compression.zstd, claimed);
        return { name, type: "file", ...meta, size: claimed, content: [id.toString("hex")] };
      };
      // 10,000 nested folders "d", a file at the bottom.
      let deep = await w.saveTree({ nodes: [await file("leaf", "at the bottom\n")] });
      for (let i = 1; i < DEPTH; i++) {
        deep = await w.saveTree({
          nodes: [{ name: "d", type: "dir", ...meta, mode: 0o755, subtree: deep.id }],
        });
      }
      const longDir = await w.saveTree({ nodes: [await file("inside", "below a 4 KB name\n")] });
      return w.saveTree({
        nodes: [
          // The index claims 1 MiB; the frame goes on for 10 GiB.
          await bomb("bomb-lying", 1024 * 1024, "lying"),
          // The index claims the most a uint32 can say (4 GiB - 1), which 320 KiB of zstd could
          // hold: a reader that sizes a buffer by it takes 4 GiB.
          await bomb("bomb-huge", 0xffff_ffff, "huge"),
          { name: "d", type: "dir", ...meta, mode: 0o755, subtree: deep.id },
          await file(LONG, "a file with a 4 KB name\n"),
          { name: `${LONG}.dir`, type: "dir", ...meta, mode: 0o755, subtree: longDir.id },
          { name: "link", type: "symlink", ...meta, mode: 0o777, target: `/${"t".repeat(4096)}` },
          await file("ok.txt", "a harmless file\n"),
        ],
      });
    });
    const snap: Snapshot = {
      version: 1,
      time: new Date().toISOString(),
      tree: root.id,
      paths: ["/crafted"],
      hostname: "attacker",
      username: "attacker",
      tags: [],
      incomplete: false,
      errors: [],
      changedWhileReading: [],
      excludes: [],
      program: "crafted by hand",
    };
    return await repo.writeSnapshot(snap);
  } finally {
    await repo.close();
  }
}

/**
 * Runs the CLI under GNU time (peak RSS in KiB) with stdout counted, not kept (a recursive
 * listing of the deep tree is about 100 MB): the last 64 KiB of it are returned.
 */
async function measured(
  args: string[],
): Promise<CliResult & { maxRssKiB: number; stdoutBytes: number; seconds: number }> {
  const child = spawn("/usr/bin/time", ["-f", "LIFEBOAT_MAX_RSS_KIB=%M", process.execPath, CLI, ...args], {
    env: { ...baseEnv(), ...ws.env },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true, // its own process group: a hang is killed with the CLI under GNU time
  });
  let stdoutBytes = 0;
  let tail = Buffer.alloc(0);
  const err: Buffer[] = [];
  child.stdout.on("data", (d: Buffer) => {
    stdoutBytes += d.length;
    tail = Buffer.concat([tail, d]).subarray(-65536);
  });
  child.stderr.on("data", (d: Buffer) => err.push(d));
  const timer = setTimeout(() => process.kill(-child.pid!, "SIGKILL"), 300_000);
  const t0 = Date.now();
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
    child.on("close", (c, s) => resolve([c, s])),
  );
  clearTimeout(timer);
  const seconds = (Date.now() - t0) / 1000;
  const stderrAll = Buffer.concat(err).toString("utf8");
  // GNU time's own lines come last ("Command exited with non-zero status N", then ours).
  const m = /(?:Command exited with non-zero status \d+\n)?LIFEBOAT_MAX_RSS_KIB=(\d+)\n?$/.exec(stderrAll);
  assert.ok(m, `no peak RSS from GNU time:\n${stderrAll.slice(-2000)}`);
  const stdout = tail.toString("utf8");
  return {
    code: code ?? -1,
    signal,
    stdout,
    stdoutRaw: tail,
    stderr: stderrAll.slice(0, m.index),
    cmd: `lifeboat ${args.join(" ").slice(0, 300)}`,
    maxRssKiB: Number(m[1]),
    stdoutBytes,
    seconds,
  };
}

const ws = useWorkspace({
  password: PW,
  setup: async (w) => {
    snapshotId = await craft(w.repo);
    deepPath = `${"/d".repeat(DEPTH)}/leaf`;
  },
});

describe("a hostile snapshot: 4 KB names, 10,000 folders deep, zstd bombs", () => {
  test("restore writes nothing outside the target, stays in bounded memory and names what fails", async () => {
    const target = path.join(ws.base, "t", "target");
    await fs.mkdir(target, { recursive: true });
    const inTarget = (p: string) => p === target || p.startsWith(`${target}/`);
    const before = await snapshotListing(ws.base, inTarget);
    const passwd = await sha256File("/etc/passwd");
    const r = await measured(["restore", snapshotId, "--target", target]);
    console.log(
      `restore of the hostile snapshot: exit ${r.code} in ${r.seconds} s, peak RSS ${Math.round(r.maxRssKiB / 1024)} MiB`,
    );
    assert.equal(r.signal, null, show(r));
    assert.equal(r.code, ExitCode.corruption, show(r));
    assert.ok(r.maxRssKiB < RSS_LIMIT_KIB, `peak RSS ${r.maxRssKiB} KiB\n${show(r)}`);
    assert.deepEqual(
      await snapshotListing(ws.base, inTarget),
      before,
      "something outside the target changed",
    );
    assert.equal(await sha256File("/etc/passwd"), passwd);
    // One error line per item that cannot be restored, naming it; no stack trace anywhere.
    const failed = r.stderr.split("\n").filter((l) => l.startsWith("warning: failed: "));
    const one = (what: string, re: RegExp) => {
      const hits = failed.filter((l) => re.test(l));
      assert.equal(hits.length, 1, `${what}: ${hits.length} lines\n${r.stderr.slice(0, 3000)}`);
    };
    one("the bomb whose index lies", /^warning: failed: bomb-lying: .*cannot decompress/);
    one(
      "the bomb of 4 GiB",
      /^warning: failed: bomb-huge: .*claims 4294967295 bytes, more than any data blob lifeboat writes/,
    );
    // The deep tree stops where paths exceed PATH_MAX (about 2,000 levels), as one error.
    one("the deep tree", /^warning: failed: (d\/)+d: .*ENAMETOOLONG/);
    one("the 4 KB file name", /^warning: failed: n{4096}: .*ENAMETOOLONG/);
    one("the 4 KB folder name", /^warning: failed: n{4096}\.dir: .*ENAMETOOLONG/);
    one("the 4 KB link target", /^warning: failed: link: .*ENAMETOOLONG/);
    assert.equal(failed.length, 6, r.stderr.slice(0, 3000));
    assert.match(r.stderr, /6 path\(s\) could not be restored; everything else was restored/);
    assert.doesNotMatch(r.stderr, /\n\s+at |RangeError|call stack/, "a crash was printed");
    // What the file system takes is restored; the harmless file is there.
    assert.equal(await fs.readFile(path.join(target, "ok.txt"), "utf8"), "a harmless file\n");
    // No bomb left a file (or a partial one) behind.
    const names = await fs.readdir(target);
    assert.ok(!names.some((n) => n.includes("bomb")), `bomb output left: ${names.join(", ")}`);
  });

  test("check --read-data names the bombs as damage in bounded memory", async () => {
    const r = await measured(["check", "--read-data"]);
    console.log(
      `check --read-data: exit ${r.code} in ${r.seconds} s, peak RSS ${Math.round(r.maxRssKiB / 1024)} MiB`,
    );
    assert.equal(r.code, ExitCode.corruption, show(r));
    assert.ok(r.maxRssKiB < RSS_LIMIT_KIB, `peak RSS ${r.maxRssKiB} KiB\n${show(r)}`);
    assert.match(`${r.stdout}${r.stderr}`, /claims 4294967295 bytes|bomb-huge/, show(r));
  });

  test("ls, find and dump walk the tree 10,000 folders deep", async () => {
    const ls = await measured(["ls", snapshotId]);
    assert.equal(ls.code, 0, show(ls));
    assert.ok(
      ls.stdout.includes(`${deepPath}\n`),
      `the deepest file is not listed (${ls.stdoutBytes} bytes)`,
    );
    const found = await measured(["find", "leaf", snapshotId]);
    assert.equal(found.code, 0, show(found));
    assert.ok(found.stdout.includes(deepPath), show(found));
    const one = await run(["dump", snapshotId, deepPath], { env: ws.env });
    assert.equal(one.code, 0, show(one));
    assert.equal(one.stdout, "at the bottom\n");
    const tarFile = path.join(ws.base, "deep.tar");
    const tar = await measured(["dump", snapshotId, "/d", "--target", tarFile]);
    assert.equal(tar.code, 0, show(tar));
    assert.ok((await fs.stat(tarFile)).size > DEPTH * 512, "the tar holds fewer entries than the tree");
    console.log(
      `deep tree: ls ${ls.stdoutBytes} bytes in ${ls.seconds} s, peak RSS ${Math.round(ls.maxRssKiB / 1024)} MiB; find ${found.seconds} s, ${Math.round(found.maxRssKiB / 1024)} MiB; dump as tar ${tar.seconds} s, ${Math.round(tar.maxRssKiB / 1024)} MiB`,
    );
  });
});
