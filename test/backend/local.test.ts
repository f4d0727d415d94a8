/**
 * The local backend (a folder) under the backend contract, with and without fsync, and through
 * the fault-injecting wrapper with no faults planned.
 */
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { faultyBackend } from "../../src/backend/faulty.js";
import { localBackend } from "../../src/backend/local.js";
import { tempDir } from "../support/cli.js";
import { backendContract } from "./contract.js";

let dir: string;
before(async () => {
  dir = await tempDir("lifeboat-local-test-");
});
after(async () => {
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

test("contract: put, get, ranges, stat, list, delete (fsync on)", async () => {
  const root = path.join(dir, "synced", "repo");
  await backendContract(localBackend({ path: root }));
  const leftovers = (await fs.readdir(root, { recursive: true })).filter((n) => n.includes(".tmp-"));
  assert.deepEqual(leftovers, [], "no temporary file is left behind");
});

test("contract with fsync off, through the fault wrapper with no faults planned", async () => {
  const be = faultyBackend(localBackend({ path: path.join(dir, "unsynced"), fsync: false }), {
    seed: 1,
    rules: [],
  });
  await backendContract(be);
  assert.deepEqual(be.log, []);
});

test("removeTemporaries removes temporary files older than the given time, anywhere, and nothing else", async () => {
  const root = path.join(dir, "temporaries");
  const be = localBackend({ path: root, fsync: false });
  await be.create();
  await be.put("data/ab/ab01", Buffer.from("pack"));
  await be.put("index/ix", Buffer.from("index"));
  const old = new Date(Date.now() - 3_600_000);
  const made = async (rel: string, bytes: number, mtime?: Date) => {
    await fs.mkdir(path.dirname(path.join(root, rel)), { recursive: true });
    await fs.writeFile(path.join(root, rel), Buffer.alloc(bytes));
    if (mtime) await fs.utimes(path.join(root, rel), mtime, mtime);
  };
  await made("data/.tmp-streamed", 1000, old); // a killed writer's pack
  await made("data/ab/.tmp-put", 10, old); // a killed put
  await made("data/.tmp-fresh", 5); // a writer at work
  await made("data/ab/.tmpnot", 7, old); // not a temporary name
  assert.deepEqual(await be.removeTemporaries!(Date.now() - 60_000), { files: 2, bytes: 1010 });
  const left = (await fs.readdir(root, { recursive: true })).sort();
  assert.deepEqual(left, [
    "data",
    "data/.tmp-fresh",
    "data/ab",
    "data/ab/.tmpnot",
    "data/ab/ab01",
    "index",
    "index/ix",
  ]);
  assert.deepEqual(await be.removeTemporaries!(Date.now() - 60_000), { files: 0, bytes: 0 });
});
