import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { JobStore } from "./jobs.js";
import { openLocalDb } from "./local-state.js";

const dir = mkdtempSync(path.join(os.tmpdir(), "lifeboat-local-state-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const tick = () => new Promise((r) => setImmediate(r));

test("one connection per file and process; transactions with awaits inside never interleave", async () => {
  const file = path.join(dir, "a.db");
  const a = await openLocalDb(file);
  const b = await openLocalDb(path.join(dir, ".", "a.db"));
  assert.equal(a.db, b.db, "the same connection");
  a.db.exec("CREATE TABLE n (v INTEGER NOT NULL); INSERT INTO n VALUES (0)");
  // Read, yield to the event loop, write: two such updates at once lose nothing.
  const bump = (l: typeof a) =>
    l.tx(async () => {
      const v = (l.db.prepare("SELECT v FROM n").get() as { v: number }).v;
      await tick();
      l.db.prepare("UPDATE n SET v = ?").run(v + 1);
    });
  await Promise.all([bump(a), bump(b), bump(a), bump(b)]);
  assert.equal((a.db.prepare("SELECT v FROM n").get() as { v: number }).v, 4);
  // A statement outside any transaction waits for another user's open one (never joins it).
  let seen = -1;
  const t = a.tx(async () => {
    a.db.prepare("UPDATE n SET v = 100").run();
    await tick();
    throw new Error("rolled back");
  });
  const read = b.exclusive(() => {
    seen = (b.db.prepare("SELECT v FROM n").get() as { v: number }).v;
  });
  await assert.rejects(t, /rolled back/);
  await read;
  assert.equal(seen, 4, "the rolled-back write was never seen");
  // Nested transactions join the outer one.
  await a.tx(() => a.tx(async () => a.db.prepare("UPDATE n SET v = 5").run()));
  assert.equal((b.db.prepare("SELECT v FROM n").get() as { v: number }).v, 5);
  a.release();
  assert.equal(b.db.open, true, "open while another user holds it");
  b.release();
  assert.equal(b.db.open, false);
});

test("two processes updating the jobs' state at once lose no update (WAL, busy timeout, transactions)", async () => {
  const file = path.join(dir, "state.db");
  const store = await JobStore.open(file);
  store.close();
  const jobs = new URL("./jobs.js", import.meta.url).href;
  // Each process bumps a counter in the job's state 200 times, one transaction each.
  const script = `
    const { JobStore } = await import(${JSON.stringify(jobs)});
    const s = await JobStore.open(${JSON.stringify(file)});
    for (let i = 0; i < 200; i++) await s.update("j", (c) => ({ ...c, lastExitCode: (c?.lastExitCode ?? 0) + 1 }));
    s.close();`;
  const run = () =>
    new Promise<number | null>((resolve) =>
      spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: "inherit" }).on(
        "close",
        resolve,
      ),
    );
  assert.deepEqual(await Promise.all([run(), run()]), [0, 0]);
  const s = await JobStore.open(file);
  assert.equal((await s.all()).j?.lastExitCode, 400);
  s.close();
});
