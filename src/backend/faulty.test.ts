import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { LifeboatError } from "../core/errors.js";
import type { ObjectInfo } from "./backend.js";
import { type FaultPlan, type FaultRule, faultyBackend, seededRandom } from "./faulty.js";
import { memoryBackend } from "./memory.js";
import { withRetries } from "./retry.js";

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

const data = Buffer.from("0123456789abcdefghijklmnopqrstuvwxyz");

/** A memory backend under one rule. */
function one(rule: FaultRule, seed = 1) {
  const inner = memoryBackend({ label: "f" });
  return { inner, be: faultyBackend(inner, { seed, rules: [rule] }) };
}

describe("each fault kind", () => {
  test("put-error: STORAGE_ERROR, nothing stored", async () => {
    const { inner, be } = one({ fault: "put-error" });
    await rejects(be.put("data/ab/p", data), "STORAGE_ERROR", /^storage error at memory:f\/data\/ab\/p: EIO/);
    assert.equal(await inner.stat("data/ab/p"), undefined);
    assert.deepEqual(be.log, [{ seq: 1, op: "put", name: "data/ab/p", fault: "put-error" }]);
  });

  test("storage-full: STORAGE_FULL with the local backend's message and hint, nothing stored", async () => {
    const { inner, be } = one({ fault: "storage-full" });
    const e = await rejects(be.put("p", data), "STORAGE_FULL", /no space left on the repository storage/);
    assert.match(e.hint!, /free space/);
    assert.equal(await inner.stat("p"), undefined);
  });

  test("put-cut on atomic storage: UNREACHABLE, nothing visible", async () => {
    const { inner, be } = one({ fault: "put-cut" });
    await rejects(be.put("p", data), "UNREACHABLE", /^cannot reach memory:f\/p: ECONNRESET/);
    assert.deepEqual(await names(inner.list("")), []);
    assert.equal(be.log[0]!.detail, `nothing stored of ${data.length} bytes`);
  });

  test("put-torn (non-atomic storage bug): UNREACHABLE, and a truncated object is visible", async () => {
    const { inner, be } = one({ fault: "put-torn", limit: 1 }, 3);
    await rejects(be.put("p", data), "UNREACHABLE", /ECONNRESET/);
    const stored = await inner.get("p");
    assert.ok(stored.length < data.length, `kept ${stored.length}`);
    assert.ok(data.subarray(0, stored.length).equals(stored), "the first bytes, as a cut upload leaves them");
    assert.equal(be.log[0]!.detail, `kept ${stored.length} of ${data.length} bytes`);
    // A later whole put (the retry) replaces it.
    await be.put("p", data);
    assert.ok((await inner.get("p")).equals(data));
  });

  test("put-ack-lost: UNREACHABLE although the whole object is stored", async () => {
    const { inner, be } = one({ fault: "put-ack-lost" });
    await rejects(be.put("p", data), "UNREACHABLE");
    assert.ok((await inner.get("p")).equals(data));
  });

  test("short-read: fewer bytes than asked, no error; an empty object cannot be shorter", async () => {
    const { inner, be } = one({ fault: "short-read" });
    await inner.put("p", data);
    await inner.put("empty", Buffer.alloc(0));
    const whole = await be.get("p");
    assert.ok(whole.length < data.length && data.subarray(0, whole.length).equals(whole));
    const ranged = await be.get("p", { offset: 10, length: 20 });
    assert.ok(ranged.length < 20 && data.subarray(10, 10 + ranged.length).equals(ranged));
    assert.equal((await be.get("empty")).length, 0);
    assert.deepEqual(
      be.log.map((r) => [r.op, r.name, r.fault]),
      [
        ["get", "p", "short-read"],
        ["get", "p", "short-read"],
      ],
    );
  });

  test("transient: a 5xx-like UNREACHABLE on every operation, without effect", async () => {
    const { inner, be } = one({ fault: "transient" });
    await inner.put("old", data);
    for (const p of [
      be.exists(),
      be.create(),
      be.get("old"),
      be.stat("old"),
      be.put("new", data),
      be.delete("old"),
    ])
      await rejects(p, "UNREACHABLE", /^memory:f: server error 503 on \S+: injected transient fault$/);
    assert.equal(await inner.exists(), true);
    assert.equal(await inner.stat("new"), undefined, "the put had no effect");
    assert.ok(await inner.stat("old"), "the delete had no effect");
    assert.deepEqual(
      be.log.map((r) => r.op),
      ["exists", "create", "get", "stat", "put", "delete"],
    );
  });

  test("transient on list: fails partway; withRetries starts again and skips what it had", async () => {
    const inner = memoryBackend();
    for (let i = 0; i < 20; i++) await inner.put(`index/${String(i).padStart(2, "0")}`, data);
    const be = faultyBackend(inner, { seed: 5, rules: [{ fault: "transient", ops: ["list"], nth: 1 }] });
    const seen: string[] = [];
    await rejects(
      (async () => {
        for await (const o of be.list("index/")) seen.push(o.name);
      })(),
      "UNREACHABLE",
      /list index\/: injected transient fault after \d+ names/,
    );
    assert.ok(seen.length < 20);
    const retried = faultyBackend(inner, { seed: 5, rules: [{ fault: "transient", ops: ["list"], nth: 1 }] });
    const all = await names(withRetries(retried, { delays: [1] }).list("index/"));
    assert.equal(all.length, 20);
    assert.equal(new Set(all).size, 20);
  });

  test("timeout: waits, then UNREACHABLE (ETIMEDOUT), without effect", async () => {
    const { inner, be } = one({ fault: "timeout", ms: 30 });
    const t0 = performance.now();
    await rejects(be.put("p", data), "UNREACHABLE", /ETIMEDOUT/);
    assert.ok(performance.now() - t0 >= 25, "the caller waited for the timeout");
    assert.equal(await inner.stat("p"), undefined);
    assert.equal(be.log[0]!.detail, "30 ms");
  });

  test("delay: concurrent requests are answered out of order, the same way for the same seed", async () => {
    const run = async (seed: number) => {
      const inner = memoryBackend();
      for (let i = 0; i < 12; i++) await inner.put(`o${i}`, Buffer.from([i]));
      const be = faultyBackend(inner, { seed, rules: [{ fault: "delay", ms: 40 }] });
      const done: number[] = [];
      await Promise.all(Array.from({ length: 12 }, (_, i) => be.get(`o${i}`).then((b) => done.push(b[0]!))));
      const waits = be.log.map((r) => Number(r.detail!.replace(" ms", "")));
      return { done, waits };
    };
    const a = await run(11);
    assert.notDeepEqual(
      a.done,
      Array.from({ length: 12 }, (_, i) => i),
      "answers came out of order",
    );
    // (Node may run timers a millisecond apart in either order, so only the extremes are sure.)
    const shortest = a.waits.indexOf(Math.min(...a.waits));
    const longest = a.waits.indexOf(Math.max(...a.waits));
    assert.ok(a.done.indexOf(shortest) < a.done.indexOf(longest), "answers follow their waits");
    assert.deepEqual((await run(11)).waits, a.waits);
    assert.notDeepEqual((await run(12)).waits, a.waits);
  });

  test("stale-list: a new object is missing from the next listings, a deleted one still listed", async () => {
    const { inner, be } = one({ fault: "stale-list", lag: 2, prefix: "snapshots/" });
    await inner.put("snapshots/old", data);
    await be.put("snapshots/new", data);
    // Direct reads see it at once; only listings lag.
    assert.ok(await be.stat("snapshots/new"));
    assert.deepEqual(await names(be.list("snapshots/")), ["snapshots/old"]);
    assert.deepEqual(await names(be.list("")), ["snapshots/old"]);
    assert.deepEqual(await names(be.list("snapshots/")), ["snapshots/new", "snapshots/old"]);
    await be.delete("snapshots/old");
    await rejects(be.get("snapshots/old"), "NOT_FOUND");
    assert.deepEqual(await names(be.list("snapshots/")), ["snapshots/new", "snapshots/old"]);
    assert.deepEqual(await names(be.list("snapshots/")), ["snapshots/new", "snapshots/old"]);
    assert.deepEqual(await names(be.list("snapshots/")), ["snapshots/new"]);
    assert.deepEqual(
      be.log.map((r) => `${r.op} ${r.name} ${r.fault}`),
      [
        "put snapshots/new stale-list",
        "list snapshots/new stale-list",
        "list snapshots/new stale-list",
        "delete snapshots/old stale-list",
        "list snapshots/old stale-list",
        "list snapshots/old stale-list",
      ],
    );
    // A listing of another folder neither shows nor uses up the lag.
    await be.put("snapshots/newer", data);
    assert.deepEqual(await names(be.list("index/")), []);
    assert.deepEqual(await names(be.list("snapshots/")), ["snapshots/new"]);
  });
});

describe("rules", () => {
  const plan = (rules: FaultRule[], seed = 1): FaultPlan => ({ seed, rules });

  test("nth, after, prefix, ops, limit and probability select the calls", async () => {
    const be = faultyBackend(
      memoryBackend(),
      plan([
        { fault: "put-error", prefix: "data/", nth: [2, 4] },
        { fault: "storage-full", after: 6, limit: 2 },
        { fault: "transient", ops: ["get"], probability: 0 },
      ]),
    );
    const outcome: string[] = [];
    for (let i = 1; i <= 10; i++) {
      const name = i % 2 === 0 ? `data/${i}` : `keys/${i}`;
      await be.put(name, data).then(
        () => outcome.push("ok"),
        (e: LifeboatError) => outcome.push(e.code),
      );
      await be.get("keys/1");
    }
    // data/ puts are calls 2, 4, 6, 8, 10 → its 2nd and 4th are puts 4 and 8; storage-full hits
    // the puts after the 6th, twice: 7 and 9 (8 was taken by the first rule, one fault a call).
    assert.deepEqual(outcome, [
      "ok",
      "ok",
      "ok",
      "STORAGE_ERROR",
      "ok",
      "ok",
      "STORAGE_FULL",
      "STORAGE_ERROR",
      "STORAGE_FULL",
      "ok",
    ]);
    assert.equal(be.count("transient"), 0);
    assert.equal(be.count(), 4);
  });

  test("the same seed gives the same faults, whatever order the calls come in", async () => {
    const rules: FaultRule[] = [{ fault: "put-cut", probability: 0.3 }];
    const faultsOf = async (seed: number, order: number[]) => {
      const be = faultyBackend(memoryBackend(), plan(rules, seed));
      await Promise.all(order.map((i) => be.put(`data/${i}`, data).catch(() => undefined)));
      return be.log.map((r) => r.name).sort();
    };
    const forward = Array.from({ length: 60 }, (_, i) => i);
    const a = await faultsOf(9, forward);
    assert.ok(a.length > 5 && a.length < 35, `about 30% of 60: ${a.length}`);
    assert.deepEqual(await faultsOf(9, [...forward].reverse()), a);
    assert.notDeepEqual(await faultsOf(10, forward), a);
  });

  test("a rule that cannot apply is refused as a USAGE error", () => {
    for (const rule of [
      { fault: "short-read", ops: ["put"] },
      { fault: "put-cut", probability: 2 },
      { fault: "put-cut", nth: 0 },
      { fault: "put-cut", nth: 1, after: 2 },
      { fault: "no-such-fault" },
    ] as unknown as FaultRule[])
      assert.throws(
        () => faultyBackend(memoryBackend(), plan([rule])),
        (e: unknown) => e instanceof LifeboatError && e.code === "USAGE",
        JSON.stringify(rule),
      );
  });

  test("seededRandom: the same stream for a seed, numbers in [0, 1)", () => {
    const a = seededRandom(42);
    const b = seededRandom(42);
    let sum = 0;
    for (let i = 0; i < 10_000; i++) {
      const x = a();
      assert.equal(x, b());
      assert.ok(x >= 0 && x < 1);
      sum += x;
    }
    assert.ok(Math.abs(sum / 10_000 - 0.5) < 0.02);
    assert.notEqual(seededRandom(1)(), seededRandom(2)());
  });
});
