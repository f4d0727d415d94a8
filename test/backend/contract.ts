/**
 * What every backend must do (see src/backend/backend.ts), run against each real backend (local,
 * rest, s3, sftp) and the in-memory one, with and without the fault-injecting wrapper: put, get
 * with ranges (also past the end), stat, recursive list by prefix, delete, errors as
 * LifeboatErrors, concurrent puts, name validation; and what append-only storage refuses.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import path from "node:path";
import type { Backend, ObjectInfo } from "../../src/backend/backend.js";
import { LifeboatError } from "../../src/core/errors.js";
import { jsonLines, prng, run, writeRandomFile } from "../support/cli.js";

export async function collect(it: AsyncIterable<ObjectInfo>): Promise<ObjectInfo[]> {
  const out: ObjectInfo[] = [];
  for await (const o of it) out.push(o);
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

export async function assertRejectsWith(
  p: Promise<unknown>,
  code: string,
  pattern?: RegExp,
): Promise<LifeboatError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof LifeboatError, `expected a LifeboatError, got ${String(e)}`);
    assert.equal(e.code, code, `${e.code}: ${e.message}`);
    assert.ok(!e.message.includes("\n"), `one line: ${JSON.stringify(e.message)}`);
    if (pattern) assert.match(e.message, pattern);
    return e;
  }
  assert.fail(`expected an error ${code}`);
}

/** Names like the repository's (sha-256 hex), the same on every run so a fault plan replays. */
const hexName = (s: string) => createHash("sha256").update(s).digest("hex");

/** Runs the contract on a backend whose location holds nothing yet. */
export async function backendContract(be: Backend): Promise<void> {
  assert.equal(await be.exists(), false, "a fresh location holds no repository");
  await be.create();
  await be.create(); // idempotent

  // put / get / stat of small, empty and larger objects, in nested folders made on demand.
  const config = Buffer.from("config bytes");
  await be.put("config", config);
  assert.equal(await be.exists(), true);
  assert.deepEqual(await be.get("config"), config);
  await be.put("keys/empty", Buffer.alloc(0));
  assert.equal((await be.get("keys/empty")).length, 0);
  assert.deepEqual(await be.stat("keys/empty"), { name: "keys/empty", size: 0 });
  const big = prng(3 * 1024 * 1024 + 17, 42);
  const bigName = `data/ab/ab${hexName("big").slice(2)}`;
  await be.put(bigName, big);
  assert.ok((await be.get(bigName)).equals(big), "3 MiB object comes back byte for byte");
  assert.deepEqual(await be.stat(bigName), { name: bigName, size: big.length });
  assert.equal(await be.stat("data/ab/missing"), undefined);
  assert.equal(await be.stat("nowhere/at/all"), undefined);

  // Ranged reads, including one that runs past the end (short, like a file read).
  assert.ok((await be.get(bigName, { offset: 1000, length: 5000 })).equals(big.subarray(1000, 6000)));
  assert.ok((await be.get(bigName, { offset: big.length - 10 })).equals(big.subarray(big.length - 10)));
  assert.ok((await be.get(bigName, { offset: 0, length: 1 })).equals(big.subarray(0, 1)));
  assert.equal((await be.get(bigName, { offset: 5, length: 0 })).length, 0);
  assert.ok(
    (await be.get(bigName, { offset: big.length - 3, length: 10 })).equals(big.subarray(big.length - 3)),
  );

  // A range that starts at or past the end is empty, as a file read there is.
  assert.equal((await be.get(bigName, { offset: big.length })).length, 0);
  assert.equal((await be.get(bigName, { offset: big.length + 100 })).length, 0);
  assert.equal((await be.get(bigName, { offset: big.length + 100, length: 10 })).length, 0);

  // Missing objects are NOT_FOUND errors with one line.
  await assertRejectsWith(be.get("data/ab/missing"), "NOT_FOUND", /does not exist/);
  await assertRejectsWith(be.get("data/ab/missing", { offset: 3, length: 4 }), "NOT_FOUND", /does not exist/);

  // Overwriting with identical content (content-addressed names) is allowed, also by two
  // writers at once (two hosts uploading the same pack).
  await be.put(bigName, big);
  assert.ok((await be.get(bigName)).equals(big));
  const twice = prng(200_000, 7);
  await Promise.all([be.put("data/cd/same", twice), be.put("data/cd/same", Buffer.from(twice))]);
  assert.ok((await be.get("data/cd/same")).equals(twice), "concurrent identical puts leave one whole object");

  // What was stored is a copy: changing the caller's buffers afterwards changes nothing.
  const mine = Buffer.from("mutable bytes");
  await be.put("keys/copy", mine);
  mine.fill(0);
  const got = await be.get("keys/copy");
  got.fill(1);
  assert.equal((await be.get("keys/copy")).toString(), "mutable bytes");
  await be.delete("keys/copy");

  // Concurrent puts into many folders, then a recursive list by prefix.
  const names: string[] = [];
  await Promise.all(
    Array.from({ length: 24 }, async (_, i) => {
      const hex = hexName(`object ${i}`);
      const name = `data/${hex.slice(0, 2)}/${hex}`;
      names.push(name);
      await be.put(name, prng(1000 + i, i));
    }),
  );
  await be.put("snapshots/s1", Buffer.from("one"));
  await be.put("snapshots/s2", Buffer.from("two!"));
  await be.put("snapshots-old/s0", Buffer.from("a sibling folder with a longer name"));
  await be.put("wal/k1/k2/w", Buffer.from("three levels down"));
  const data = await collect(be.list("data/"));
  assert.deepEqual(
    data.map((o) => o.name),
    [...names, bigName, "data/cd/same"].sort(),
  );
  for (const o of data) {
    if (names.includes(o.name)) assert.equal(o.size, 1000 + names.indexOf(o.name));
  }
  assert.deepEqual(await collect(be.list("snapshots/")), [
    { name: "snapshots/s1", size: 3 },
    { name: "snapshots/s2", size: 4 },
  ]);
  assert.deepEqual(await collect(be.list("keys/")), [{ name: "keys/empty", size: 0 }]);
  assert.deepEqual(await collect(be.list("wal/")), [{ name: "wal/k1/k2/w", size: 17 }]);
  assert.deepEqual(
    (await collect(be.list("data/cd/"))).map((o) => o.name),
    ["data/cd/same"],
  );
  assert.deepEqual(await collect(be.list("index/")), [], "a folder never written lists as empty");
  const all = await collect(be.list(""));
  assert.equal(all.length, names.length + 8);
  assert.ok(
    all.every((o) => !o.name.split("/").some((p) => p.startsWith("."))),
    "no temporary names are listed",
  );

  // Delete: gone from stat, get and list; deleting twice is fine.
  await be.delete("snapshots/s1");
  await be.delete("snapshots/s1");
  assert.equal(await be.stat("snapshots/s1"), undefined);
  await assertRejectsWith(be.get("snapshots/s1"), "NOT_FOUND");
  assert.deepEqual(
    (await collect(be.list("snapshots/"))).map((o) => o.name),
    ["snapshots/s2"],
  );

  // Names outside the allowed alphabet never reach the storage.
  await assert.rejects(be.put("../escape", Buffer.from("x")));
  await assert.rejects(be.get("data/../../etc/passwd"));
  for (const bad of ["", "/abs", "data//x", "data/./x", "data/x/", "sp ace", "data/ü"]) {
    await assert.rejects(be.put(bad, Buffer.from("x")), bad);
    await assert.rejects(be.stat(bad), bad);
    await assert.rejects(be.delete(bad), bad);
  }
  assert.equal((await collect(be.list(""))).length, all.length - 1, "nothing was stored by a bad name");

  if (be.openWriter) await streamedObjects(be, all.length - 1);
}

/** `openWriter` (backends that have it): an object written in pieces appears whole under its
 * name at commit and not before; an aborted one never appears. */
async function streamedObjects(be: Backend, listed: number): Promise<void> {
  const pieces = [prng(1024 * 1024, 7), prng(17, 8), Buffer.alloc(0), prng(300 * 1024, 9)];
  const whole = Buffer.concat(pieces);
  const name = `data/ef/ef${hexName("streamed").slice(2)}`;
  const w = await be.openWriter!("data");
  const dropped = await be.openWriter!("data");
  await dropped.write(prng(4096, 10));
  for (const p of pieces) {
    await w.write(p);
    assert.equal(await be.stat(name), undefined, "nothing under the name before commit");
    assert.equal((await collect(be.list(""))).length, listed, "nor any other name");
  }
  await w.commit(name);
  assert.ok((await be.get(name)).equals(whole), "the pieces come back as one object");
  assert.deepEqual(await be.stat(name), { name, size: whole.length });
  assert.ok((await be.get(name, { offset: 1024 * 1024, length: 17 })).equals(pieces[1]!));
  await dropped.abort();
  await dropped.abort(); // twice is fine
  assert.equal((await collect(be.list(""))).length, listed + 1, "only the committed object is new");
  const bare = await be.openWriter!("data");
  await bare.commit(`data/ef/ef${hexName("empty").slice(2)}`);
  assert.equal((await be.get(`data/ef/ef${hexName("empty").slice(2)}`)).length, 0);
  const stray = await be.openWriter!("data");
  await assert.rejects(stray.commit("index/elsewhere"), /not below data/);
  assert.equal(await be.stat("index/elsewhere"), undefined);
  await be.delete(name);
  await be.delete(`data/ef/ef${hexName("empty").slice(2)}`);
  assert.equal((await collect(be.list(""))).length, listed);
}

/**
 * What append-only storage (`lifeboat serve --append-only`, memoryBackend({ appendOnly }))
 * refuses, and how: deletes and overwrites with other bytes are PERMISSION_DENIED with one line
 * that says "append-only"; new objects, identical re-uploads and `sessions/` deletes work.
 */
export async function appendOnlyContract(be: Backend): Promise<void> {
  await be.create();
  const bytes = Buffer.from("kept forever");
  await be.put("snapshots/kept", bytes);
  await be.put("snapshots/kept", Buffer.from(bytes)); // a retried upload
  const del = await assertRejectsWith(be.delete("snapshots/kept"), "PERMISSION_DENIED", /append-only/);
  assert.match(del.hint ?? "", /append-only/);
  await assertRejectsWith(
    be.put("snapshots/kept", Buffer.from("replaced")),
    "PERMISSION_DENIED",
    /append-only/,
  );
  assert.ok((await be.get("snapshots/kept")).equals(bytes), "the object is untouched");
  await be.put("sessions/run", Buffer.from("a running backup"));
  await be.delete("sessions/run");
  assert.equal(await be.stat("sessions/run"), undefined, "session markers may be deleted");
  assert.deepEqual(
    (await collect(be.list(""))).map((o) => o.name),
    ["snapshots/kept"],
  );
}

/**
 * forget --prune through the CLI on a backend: a file replaced twice makes the first snapshots'
 * data unneeded; prune must delete packs there, and what is left checks and restores.
 */
export async function forgetPruneRoundTrip(
  env: Record<string, string>,
  src: string,
  target: string,
): Promise<void> {
  await writeRandomFile(path.join(src, "replaced.bin"), 2, 77);
  assert.equal((await run(["backup", src], { env })).code, 0);
  await writeRandomFile(path.join(src, "replaced.bin"), 2, 78);
  assert.equal((await run(["backup", src], { env })).code, 0);
  const f = await run(["forget", "--keep-last", "1", "--prune", "--max-unused", "0", "--json"], { env });
  assert.equal(f.code, 0, f.stderr);
  const p = jsonLines(f.stdout).find((l) => l.action === "prune") as { swept: { deletedPacks: number }[] };
  assert.ok(
    p.swept.some((s) => s.deletedPacks > 0),
    "prune deleted packs on the backend",
  );
  const after = await run(["check", "--read-data"], { env });
  assert.equal(after.code, 0, after.stdout + after.stderr);
  assert.equal((await run(["restore", "latest", "--target", target, "--verify"], { env })).code, 0);
}
