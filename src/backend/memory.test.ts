import assert from "node:assert/strict";
import { test } from "node:test";
import { LifeboatError } from "../core/errors.js";
import type { ObjectInfo } from "./backend.js";
import { memoryBackend } from "./memory.js";

async function rejects(p: Promise<unknown>, code: string, pattern?: RegExp): Promise<LifeboatError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof LifeboatError, String(e));
    assert.equal(e.code, code, e.message);
    assert.ok(!e.message.includes("\n"));
    if (pattern) assert.match(e.message, pattern);
    return e;
  }
  assert.fail(`expected ${code}`);
}

async function names(it: AsyncIterable<ObjectInfo>): Promise<string[]> {
  const out: string[] = [];
  for await (const o of it) out.push(o.name);
  return out;
}

const bytes = (s: string) => Buffer.from(s);

test("location, capabilities, exists and create", async () => {
  const be = memoryBackend({ label: "t1" });
  assert.equal(be.location, "memory:t1");
  assert.deepEqual(be.capabilities, { retention: false, appendOnly: false });
  assert.deepEqual(memoryBackend({ appendOnly: true, retention: true }).capabilities, {
    retention: true,
    appendOnly: true,
  });
  assert.notEqual(memoryBackend().location, memoryBackend().location, "each gets its own label");
  assert.equal(await be.exists(), false);
  await be.create();
  assert.equal(await be.exists(), true);
  const other = memoryBackend();
  await other.put("config", bytes("c"));
  assert.equal(await other.exists(), true, "objects make a location exist, as on S3");
});

test("errors: NOT_FOUND in the local backend's words; bad names and ranges", async () => {
  const be = memoryBackend({ label: "t2" });
  await rejects(be.get("data/ab/x"), "NOT_FOUND", /^memory:t2\/data\/ab\/x does not exist$/);
  assert.equal(await be.stat("data/ab/x"), undefined);
  await be.delete("data/ab/x"); // deleting a missing object is fine
  await assert.rejects(be.get("../x"), /invalid object name/);
  await be.put("o", bytes("0123456789"));
  await assert.rejects(be.get("o", { offset: -1 }), /invalid offset/);
  await assert.rejects(be.get("o", { offset: 0, length: 1.5 }), /invalid length/);
  assert.equal((await be.get("o", { offset: 8, length: 5 })).toString(), "89");
  assert.equal((await be.get("o", { offset: 20 })).length, 0);
});

test("objects(), corrupt() and a store shared by two backends; close keeps the data", async () => {
  const a = memoryBackend();
  const b = memoryBackend({ store: a.store });
  await a.put("snapshots/2", bytes("two"));
  await b.put("snapshots/1", bytes("one"));
  assert.deepEqual([...a.objects().keys()], ["snapshots/1", "snapshots/2"]);
  assert.deepEqual(await names(b.list("snapshots/")), ["snapshots/1", "snapshots/2"]);
  const stored = a.objects().get("snapshots/1")!; // the stored buffer itself, not a copy
  stored[0] = stored[0]! ^ 1;
  assert.equal((await b.get("snapshots/1")).toString(), "nne");
  a.corrupt("snapshots/2", (d) => d.subarray(0, 1));
  assert.deepEqual(await b.stat("snapshots/2"), { name: "snapshots/2", size: 1 });
  assert.throws(() => a.corrupt("snapshots/3", () => undefined), /does not exist/);
  await a.close();
  assert.equal((await a.get("snapshots/2")).toString(), "t");
  assert.equal(a.usedBytes(), 4);
});

test("append-only: the refusals of lifeboat serve --append-only, as the rest backend reports them", async () => {
  const be = memoryBackend({ label: "ao", appendOnly: true });
  await be.put("snapshots/a", bytes("a"));
  await be.put("snapshots/a", bytes("a"));
  const del = await rejects(
    be.delete("snapshots/a"),
    "PERMISSION_DENIED",
    /^memory:ao: snapshots\/a: append-only: refusing to delete; run forget\/prune on the server itself$/,
  );
  assert.match(del.hint!, /append-only/);
  await rejects(be.delete("snapshots/never-stored"), "PERMISSION_DENIED", /append-only/);
  await rejects(be.put("snapshots/a", bytes("b")), "PERMISSION_DENIED", /refusing to overwrite/);
  await be.put("sessions/s", bytes("s"));
  await be.delete("sessions/s");
  const strict = memoryBackend({ appendOnly: true, appendOnlyDeletable: [] });
  await strict.put("sessions/s", bytes("s"));
  await rejects(strict.delete("sessions/s"), "PERMISSION_DENIED");
  // Damage is not a write through the API: corrupt() still works.
  be.corrupt("snapshots/a", () => bytes("z"));
  assert.equal((await be.get("snapshots/a")).toString(), "z");
});

test("retention: retainUntil is kept per object; deletes and overwrites refused until then", async () => {
  let now = Date.parse("2030-01-01T00:00:00Z");
  const be = memoryBackend({ label: "lock", retention: true, now: () => now });
  const until = new Date(now + 86_400_000);
  await be.put("data/ab/p", bytes("pack"), { retainUntil: until, retentionMode: "governance" });
  await be.put("data/ab/free", bytes("no retention"));
  assert.deepEqual(be.store.objects.get("data/ab/p")!.retainUntil, until);
  assert.equal(be.store.objects.get("data/ab/p")!.retentionMode, "governance");
  const e = await rejects(
    be.delete("data/ab/p"),
    "PERMISSION_DENIED",
    /^access denied to memory:lock\/data\/ab\/p: cannot delete it, it is under governance retention until 2030-01-02T00:00:00\.000Z$/,
  );
  assert.match(e.hint!, /retention/);
  await rejects(be.put("data/ab/p", bytes("other")), "PERMISSION_DENIED", /cannot overwrite/);
  // An identical re-upload with an earlier date does not shorten the retention.
  await be.put("data/ab/p", bytes("pack"), { retainUntil: new Date(now + 1000) });
  assert.deepEqual(be.store.objects.get("data/ab/p")!.retainUntil, until);
  await be.delete("data/ab/free");
  now = until.getTime() + 1;
  await be.delete("data/ab/p");
  assert.equal(await be.stat("data/ab/p"), undefined);

  // Without the capability the option is ignored, as backend.ts says.
  const plain = memoryBackend();
  await plain.put("x", bytes("x"), { retainUntil: new Date(Date.now() + 1e9) });
  assert.equal(plain.store.objects.get("x")!.retainUntil, undefined);
  await plain.delete("x");
});

test("capacity: a put beyond it is STORAGE_FULL and stores nothing; deleting frees space", async () => {
  const be = memoryBackend({ label: "small", capacity: 10 });
  await be.put("a", Buffer.alloc(6));
  const e = await rejects(be.put("b", Buffer.alloc(5)), "STORAGE_FULL", /no space left .* memory:small\/b/);
  assert.match(e.hint!, /free space/);
  assert.equal(await be.stat("b"), undefined);
  await be.put("a", Buffer.alloc(10)); // replacing counts the new size only
  await be.delete("a");
  await be.put("b", Buffer.alloc(5));
  assert.equal(be.usedBytes(), 5);
});
