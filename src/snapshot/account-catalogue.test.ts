import assert from "node:assert/strict";
import { test } from "node:test";
import { memoryBackend } from "../backend/memory.js";
import { Repository } from "../repo/repository.js";
import { accountEntries, accountSnapshots, latestAccountSnapshot } from "./account-catalogue.js";
import type { VirtualSource } from "./source.js";
import { takeSnapshot } from "./take.js";

const params = { chunker: { min: 1024, avg: 4096, max: 16384 }, packSize: 64 * 1024 };

const source = (account: string, body: string): VirtualSource => ({
  name: `test:${account}`,
  type: "test",
  async *entries() {
    yield {
      kind: "file",
      path: "data.txt",
      read: async function* () {
        yield Buffer.from(body);
      },
    };
  },
});

test("account snapshots: the feature is enabled, each account's series is found in its own catalogue folder", async () => {
  const be = memoryBackend();
  const repo = await Repository.init(be, "pw", params);
  assert.equal(repo.hasFeature("fleet-accounts"), false);
  const before = repo.config.features;
  const plain = await takeSnapshot(repo, source("none", "x"), { host: "h" });
  assert.equal(plain.snapshot.account, undefined);
  assert.deepEqual(repo.config.features, before, "a plain snapshot adds no feature");
  const times = ["2026-01-01T02:00:00Z", "2026-01-02T02:00:00Z", "2026-01-03T02:00:00Z"];
  for (const [i, t] of times.entries())
    for (const a of ["ann", "bob"])
      await takeSnapshot(repo, source(a, `${a} ${i}`), {
        host: "mail",
        time: new Date(t),
        parent: false,
        account: { fleet: "mail", id: a, window: `w${i}`, kind: "test", fingerprint: `f${i}` },
      });
  assert.ok(repo.hasFeature("fleet-accounts"));
  assert.deepEqual(repo.config.features?.write, ["fleet-accounts"]);
  assert.deepEqual(repo.config.features?.read, before?.read ?? []);
  const ann = await accountSnapshots(repo, "ann");
  assert.equal(ann.length, 3);
  assert.ok(ann.every((s) => s.account === "ann" && s.fleet === "mail" && s.hostname === "mail"));
  // Storage never sees the account id: entries live under an HMAC label folder.
  const names: string[] = [];
  for await (const o of be.list("accounts/")) names.push(o.name);
  assert.equal(names.length, 6);
  assert.ok(names.every((n) => !n.includes("ann") && !n.includes("bob")));
  const at = await latestAccountSnapshot(repo, "bob", { at: new Date("2026-01-02T12:00:00Z") });
  assert.equal(at?.snapshot.time, "2026-01-02T02:00:00.000Z");
  assert.equal(at?.entry.window, "w1");
  // A snapshot forgotten without its entry (a plain `forget`) is skipped, never shown.
  const newest = await latestAccountSnapshot(repo, "ann");
  await repo.deleteSnapshot(newest!.snapshot.id);
  assert.equal((await latestAccountSnapshot(repo, "ann"))?.entry.window, "w1");
  assert.equal((await accountEntries(repo, "ann", "other-fleet")).length, 0);
  assert.equal(await latestAccountSnapshot(repo, "carol"), undefined);
  await repo.close();
  // Reopened: everything read back, older repositories' snapshots unchanged.
  const again = await Repository.open(be, "pw");
  assert.equal((await again.listSnapshots()).length, 6);
  await again.close();
});
