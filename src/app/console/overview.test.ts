import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import type { Backend } from "../../backend/backend.js";
import { memoryBackend } from "../../backend/memory.js";
import { Repository } from "../../repo/repository.js";
import { takeSnapshot } from "../../snapshot/take.js";
import { stdinSource } from "../../sources/stdin.js";
import { fleetDef } from "../fleet/fleet-config.js";
import { FleetStore } from "../fleet/store.js";
import { makeFleets } from "./fleets.js";
import { repositoryCard } from "./overview.js";
import { ConsoleRepo, repoSpecs } from "./repos.js";
import { buildSources } from "./sources.js";

process.env.LIFEBOAT_KDF_N ??= "1024";

/** A memory backend that counts the snapshot documents read from it. */
function countingBackend(): { backend: Backend; reads: () => number } {
  const inner = memoryBackend();
  let reads = 0;
  const backend = new Proxy(inner, {
    get(t, k) {
      if (k === "get")
        return (name: string, o?: Parameters<Backend["get"]>[1]) => {
          if (name.startsWith("snapshots/")) reads++;
          return t.get(name, o);
        };
      const v = Reflect.get(t, k);
      return typeof v === "function" ? v.bind(t) : v;
    },
  });
  return { backend, reads: () => reads };
}

async function* bytes(s: string) {
  yield Buffer.from(s);
}

test("the overview's repository card reads no account snapshot a fleet's runs name, and an unchanged repository nothing", async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "lifeboat-console-overview-"));
  const store = await FleetStore.sqlite(path.join(dir, "fleet-mail.db"));
  try {
    const { backend, reads } = countingBackend();
    const repo = await Repository.init(backend, "pw");
    const now = Date.now();
    await takeSnapshot(repo, stdinSource(bytes("docs"), "docs.txt", new Date(now - 60_000)), {
      host: "web1",
      time: new Date(now - 60_000),
    });
    const ACCOUNTS = 120;
    const accountSnap = async (i: number, at: number) =>
      (
        await takeSnapshot(repo, stdinSource(bytes(`mail of ${i}`), `u${i}.mbox`, new Date(at)), {
          host: "mail",
          time: new Date(at),
          account: { fleet: "mail", id: `u${i}`, kind: "folder" },
        })
      ).snapshotId;
    for (let i = 0; i < ACCOUNTS; i++) {
      const at = now - 30_000 + i;
      const id = await accountSnap(i, at);
      // As the fleet's scheduler logs a run that wrote a snapshot.
      await store.addRun({ fleet: "mail", id: `u${i}`, window: "w", at, outcome: "snapshot", snapshot: id });
    }
    // One account snapshot the fleet's state does not name (written by another host's state).
    const stray = await accountSnap(ACCOUNTS, now - 1000);

    const def = fleetDef({ name: "mail", accounts: { glob: "/srv/mail/*" } }, "test");
    const [spec] = repoSpecs("memory:test", undefined, []);
    const r = new ConsoleRepo(spec!, async () => repo);
    makeFleets([{ def, store }], [r]);
    const overview = async () => {
      const rows = await buildSources({ repos: [r], jobs: [], jobState: {}, defaultRpoMs: 86_400_000 });
      return { rows, card: await repositoryCard(r, rows, undefined) };
    };
    const before = reads();
    const first = await overview();
    // The plain snapshot and the one account snapshot no run names; none of the 120 others.
    assert.equal(reads() - before, 2);
    assert.equal(first.card.error, null);
    assert.equal(first.card.snapshots, ACCOUNTS + 2);
    assert.equal(first.card.accountSnapshots, ACCOUNTS + 1);
    assert.equal(first.card.sources, 1);
    assert.deepEqual(
      first.rows.map((x) => x.name),
      ["web1:/docs.txt"],
    );
    assert.equal(first.card.sizeHistory?.length, 1);

    // Listed again (as after FRESH_MS): nothing new, nothing read.
    await r.snapshots(true);
    const again = await overview();
    assert.equal(reads() - before, 2);
    assert.deepEqual(again.card, first.card);

    // A new account snapshot the fleet logs is counted without being read.
    const late = await accountSnap(ACCOUNTS + 1, now);
    await store.addRun({
      fleet: "mail",
      id: "late",
      window: "w",
      at: now,
      outcome: "snapshot",
      snapshot: late,
    });
    const beforeLate = reads();
    await r.snapshots(true);
    assert.equal((await overview()).card.accountSnapshots, ACCOUNTS + 2);
    assert.equal(reads() - beforeLate, 0);

    // An account snapshot asked for by id (browsing it) is read then, and kept.
    const doc = await r.snapshot(stray);
    assert.equal(doc.account, `u${ACCOUNTS}`);
    await r.snapshot(stray);
    assert.equal(reads() - beforeLate, 1);
    assert.equal(r.snapshotReads, 3);
  } finally {
    await store.close();
    await fs.rm(dir, { recursive: true, force: true });
  }
});
