/**
 * Injected storage faults (src/backend/faulty.ts) under every operation that touches storage:
 * backup, forget + prune, copy (faults on either side), restore and check --read-data, through
 * the library on memory storage, with and without retries (withRetries, as the sftp and rest
 * backends have; S3's SDK retries itself). Each fault is either survived or reported as a
 * LifeboatError whose exit code is the documented one for it; afterwards the storage, read
 * without faults, checks clean with every snapshot restoring byte for byte, and the same
 * operation run again without faults completes.
 */
import assert from "node:assert/strict";
import path from "node:path";
import { after, before, test } from "node:test";
import { backup } from "../../src/app/backup.js";
import type { Backend } from "../../src/backend/backend.js";
import { type FaultKind, faultyBackend } from "../../src/backend/faulty.js";
import { type MemoryStore, memoryBackend } from "../../src/backend/memory.js";
import { withRetries } from "../../src/backend/retry.js";
import { isLifeboatError } from "../../src/core/errors.js";
import { check } from "../../src/ops/check/check.js";
import { copySnapshots } from "../../src/ops/copy/copy.js";
import { forget } from "../../src/ops/forget/forget.js";
import { prune } from "../../src/ops/prune/prune.js";
import { restore } from "../../src/ops/restore/restore.js";
import { Repository } from "../../src/repo/repository.js";
import { diffDescriptions, removeTempDir, tempDir, treeEntries } from "../support/cli.js";
import {
  copyTree,
  figure,
  PROFILE,
  rng,
  SEED,
  SMALL,
  sized,
  rounds as sizedRounds,
  timeUp,
} from "./support.js";
import { evolve } from "./tree.js";

const PW = "faults";
const FAULTS: FaultKind[] = [
  "put-error",
  "put-cut",
  "put-torn",
  "put-ack-lost",
  "storage-full",
  "short-read",
  "transient",
  "timeout",
  "delay",
  "stale-list",
];
type Op = "backup" | "forget+prune" | "copy to" | "copy from" | "restore" | "check";
const OPS: Op[] = ["backup", "forget+prune", "copy to", "copy from", "restore", "check"];

/** The exit code each fault may end an operation with when it is not survived (README "Exit codes"). */
const ALLOWED: Record<FaultKind, number[]> = {
  "put-error": [1],
  "put-cut": [16],
  "put-torn": [16],
  "put-ack-lost": [16],
  "storage-full": [15],
  "short-read": [14],
  transient: [16],
  timeout: [16],
  delay: [],
  "stale-list": [],
};

let base: string;
let src: string;
/** Torn objects (put-torn) that check named, by object name. */
const tornFound: string[] = [];
const states = new Map<string, string>(); // snapshot id → expected tree
let repoStore: MemoryStore;
let copyStore: MemoryStore;

function clone(s: MemoryStore): MemoryStore {
  const objects = new Map([...s.objects].map(([k, v]) => [k, { ...v, data: Buffer.from(v.data) }]));
  return { objects, created: s.created };
}

before(async () => {
  process.env.LIFEBOAT_KDF_N ??= "1024";
  base = await tempDir("lifeboat-torture-faults-");
  src = path.join(base, "src");
  const shape = { bigBytes: 1024 * 1024, docs: 12, media: 2 };
  const mem = memoryBackend({ label: "faults" });
  const repo = await Repository.init(mem, PW, SMALL);
  for (let round = 0; round < 3; round++) {
    await evolve(src, round, `${SEED}-faults`, shape);
    const r = await backup(repo, [src], { tags: [`r${round}`] });
    const state = path.join(base, "states", `r${round}`);
    await copyTree(src, state);
    states.set(r.snapshotId, state);
  }
  await repo.close();
  repoStore = mem.store;
  const dst = memoryBackend({ label: "copy" });
  await (await Repository.init(dst, PW, SMALL)).close();
  copyStore = dst.store;
  // The next backups read a changed tree.
  await evolve(src, 3, `${SEED}-faults`, shape);
});
after(async () => {
  if (base) await removeTempDir(base);
});

interface Outcome {
  fault: FaultKind;
  op: Op;
  retries: boolean;
  seed: number;
  injected: number;
  result: "survived" | `exit ${number}`;
  code?: string;
  message?: string;
}

async function run(op: Op, repoB: Backend, copyB: Backend, target: string): Promise<void> {
  if (op === "copy to" || op === "copy from") {
    const from = await Repository.open(repoB, PW);
    try {
      const to = await Repository.open(copyB, PW);
      try {
        await copySnapshots(from, to);
      } finally {
        await to.close();
      }
    } finally {
      await from.close();
    }
    return;
  }
  const repo = await Repository.open(repoB, PW);
  try {
    switch (op) {
      case "backup":
        await backup(repo, [src], { tags: ["after"] });
        break;
      case "forget+prune":
        await forget(repo, { policy: { last: 2 } });
        await prune(repo, { maxUnusedPercent: 0 });
        break;
      case "restore": {
        const snaps = await repo.listSnapshots();
        for (const s of snaps) {
          const r = await restore(repo, s, { target: path.join(target, s.id) });
          // What restored is right; what failed is named.
          const state = states.get(s.id);
          if (!state) continue;
          const failed = r.errors.map((e) => e.path);
          const under = (k: string) => failed.some((f) => f === "." || k === f || k.startsWith(`${f}/`));
          const rel = (k: string) => path.join(src.slice(1), k);
          const want = new Map([...(await treeEntries(state))].filter(([k]) => !under(rel(k))));
          const got = await treeEntries(path.join(target, s.id, src)).catch(() => new Map<string, string>());
          const diff = diffDescriptions(want, new Map([...got].filter(([k]) => !under(rel(k))))).filter(
            (l) => !/expected dir/.test(l),
          );
          assert.deepEqual(diff, [], `restore ${s.id} restored wrong bytes without saying so`);
          if (r.errors.length > 0)
            throw Object.assign(new Error(`${r.errors.length} item errors`), { itemErrors: r.errors });
        }
        break;
      }
      case "check": {
        const r = await check(repo, { readData: true });
        if (r.problems.length > 0)
          throw Object.assign(new Error(r.problems[0]!.message), { problems: r.problems });
        break;
      }
    }
  } finally {
    await repo.close();
  }
}

/** The storage without faults: checks clean, and every snapshot that was there restores exactly. */
async function assertIntact(
  store: MemoryStore,
  what: string,
  scratch: string,
  torn: ReadonlySet<string> = new Set(),
): Promise<void> {
  const repo = await Repository.open(memoryBackend({ store }), PW);
  try {
    const r = await check(repo, { readData: true });
    // Storage that is not atomic (put-torn) keeps the first bytes of a failed upload under its
    // name: every writer (records, index files, snapshots) deletes what a failed write may have
    // left, so check must find nothing. Anything torn it still names is counted in the figures.
    const found = r.problems.filter((p) => torn.has(p.object) && /does not match its name/.test(p.message));
    tornFound.push(...found.map((p) => p.object));
    assert.deepEqual(
      r.problems.map((p) => `${p.object}: ${p.message}`),
      [],
      `${what}: check --read-data on the storage without faults`,
    );
    const ids = new Set((await repo.listSnapshots()).map((s) => s.id));
    for (const [id, state] of states) {
      if (!ids.has(id)) continue; // forgotten on purpose by forget+prune
      const target = path.join(scratch, `intact-${id}`);
      const x = await restore(repo, await repo.loadSnapshot(id), { target });
      assert.deepEqual(x.errors, [], `${what}: restore ${id}`);
      const d = diffDescriptions(await treeEntries(state), await treeEntries(path.join(target, src)));
      assert.deepEqual(d, [], `${what}: snapshot ${id} restores exactly`);
      await removeTempDir(target);
    }
  } finally {
    await repo.close();
  }
}

test("each storage fault under each operation: survived, or the documented exit code; never damage", async () => {
  const seeds = sizedRounds(1, 6);
  const outcomes: Outcome[] = [];
  const r = rng(`${SEED}/faults`);
  const cases: { fault: FaultKind; op: Op; retries: boolean }[] = [];
  for (const fault of FAULTS) {
    // Quick: two operations per fault, with or without retries (turning with the seed).
    const ops = sized([...OPS].sort(() => r() - 0.5).slice(0, 2), OPS);
    for (const op of ops)
      for (const retries of sized([r() < 0.5], [false, true]))
        for (let k = 0; k < seeds; k++) cases.push({ fault, op, retries });
  }
  // Round robin over the faults, so a run cut short by LIFEBOAT_TORTURE_DEADLINE has met each.
  const nth = new Map<FaultKind, number>();
  const order = cases.map((c) => {
    const k = nth.get(c.fault) ?? 0;
    nth.set(c.fault, k + 1);
    return { c, k };
  });
  order.sort((a, b) => a.k - b.k || FAULTS.indexOf(a.c.fault) - FAULTS.indexOf(b.c.fault));
  for (const { fault, op, retries } of order.map((o) => o.c)) {
    if (timeUp()) break;
    outcomes.push(await runCase(fault, op, retries, r));
  }
  const table: Record<string, Record<string, string>> = {};
  for (const o of outcomes) {
    const row = table[o.fault] ?? {};
    table[o.fault] = row;
    const key = `${o.op}${o.retries ? " +retries" : ""}`;
    const what = `${o.result}${o.code ? ` ${o.code}` : ""}${o.message ? ` (${o.message.slice(0, 90)})` : ""}`;
    row[key] = row[key] ? `${row[key]}; ${what}` : what;
  }
  for (const [f, row] of Object.entries(table)) console.log(`# ${f}: ${JSON.stringify(row)}`);
  const injected = outcomes.reduce((n, o) => n + o.injected, 0);
  await figure("faults", {
    cases: outcomes.length,
    planned: cases.length,
    survived: outcomes.filter((o) => o.result === "survived").length,
    withoutAnyFault: outcomes.filter((o) => o.injected === 0).length,
    injected,
    tornObjectsNamedByCheck: tornFound,
    table,
  });
  console.log(`# faults (${PROFILE}): ${outcomes.length} cases, ${injected} faults injected`);
});

async function runCase(fault: FaultKind, op: Op, retries: boolean, r: () => number): Promise<Outcome> {
  const seed = Math.floor(r() * 1e9);
  const store = clone(repoStore);
  const cstore = clone(copyStore);
  // One to three faults from a random call on (every case meets one if the operation makes that
  // many calls); delays and lagging listings on half the calls.
  const rule =
    fault === "delay" || fault === "stale-list"
      ? { fault, probability: 0.5, ms: 20, ...(fault === "stale-list" ? { lag: 2 } : {}) }
      : { fault, after: Math.floor(r() * 8), limit: 1 + Math.floor(r() * 3), ms: 5 };
  const onRepo = op !== "copy to";
  const faulty = faultyBackend(memoryBackend({ store: onRepo ? store : cstore }), { seed, rules: [rule] });
  const b = retries ? withRetries(faulty, { delays: [1, 2, 4, 8] }) : faulty;
  const repoB = onRepo ? b : memoryBackend({ store });
  const copyB = onRepo ? memoryBackend({ store: cstore }) : b;
  const scratch = path.join(base, `case-${seed}`);
  const o: Outcome = { fault, op, retries, seed, injected: 0, result: "survived" };
  const what = `${fault} under ${op}${retries ? " with retries" : ""} (seed ${seed})`;
  try {
    await run(op, repoB, copyB, scratch);
  } catch (e) {
    if (e instanceof assert.AssertionError) throw e;
    const items = (e as { itemErrors?: { code: string; message: string }[] }).itemErrors;
    const problems = (e as { problems?: { kind: string; message: string }[] }).problems;
    if (items) {
      o.result = `exit ${items.some((i) => i.code === "DAMAGED") ? 14 : 1}`;
      o.code = [...new Set(items.map((i) => i.code))].join(",");
      o.message = items[0]!.message;
    } else if (problems) {
      o.result = "exit 14";
      o.code = problems[0]!.kind;
      o.message = problems[0]!.message;
    } else if (isLifeboatError(e)) {
      o.result = `exit ${e.exitCode}`;
      o.code = e.code;
      o.message = e.message;
    } else assert.fail(`${what}: crashed with ${(e as Error)?.stack ?? e}`);
  }
  o.injected = faulty.log.length;
  if (o.result !== "survived")
    assert.ok(
      ALLOWED[fault].includes(Number(o.result.slice(5))),
      `${what} ended with ${o.result} ${o.code}: ${o.message}`,
    );
  const torn = new Set(faulty.log.filter((l) => l.fault === "put-torn").map((l) => l.name));
  await assertIntact(onRepo ? store : cstore, what, scratch, torn);
  if (!onRepo) await assertIntact(store, `${what} (source)`, scratch);
  // The same operation again, without faults, completes.
  await run(op, memoryBackend({ store }), memoryBackend({ store: cstore }), path.join(scratch, "again"));
  await removeTempDir(scratch);
  return o;
}
