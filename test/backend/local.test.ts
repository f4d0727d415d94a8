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
