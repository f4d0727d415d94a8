import { setTimeout as sleep } from "node:timers/promises";
import { LifeboatError } from "../core/errors.js";
import { type Backend, type GetOptions, type ObjectInfo, objectName, type PutOptions } from "./backend.js";
import { storageError } from "./storage-error.js";

export type BackendOp = "exists" | "create" | "get" | "stat" | "put" | "list" | "delete";

/**
 * What can go wrong, each as real storage shows it (the errors are the LifeboatErrors the real
 * backends report for the same event):
 * - `put-error`: the put fails before anything is stored (EIO → STORAGE_ERROR).
 * - `put-cut`: the connection drops mid-upload on atomic storage: nothing becomes visible
 *   (ECONNRESET → UNREACHABLE).
 * - `put-torn`: the same drop on storage with a bug that is not atomic: the first bytes become
 *   visible under the final name (UNREACHABLE); readers must detect the truncated object.
 * - `put-ack-lost`: the whole object is stored but the answer is lost (UNREACHABLE).
 * - `storage-full`: no space left (ENOSPC → STORAGE_FULL); nothing stored.
 * - `short-read`: a get answers fewer bytes than the object (or range) holds, without an error.
 * - `transient`: a 5xx answer (UNREACHABLE, as rest and s3 report one); the request had no
 *   effect. A list fails partway through, after yielding some names.
 * - `timeout`: no answer for `ms`, then ETIMEDOUT (UNREACHABLE); the request had no effect.
 * - `delay`: the request waits up to `ms` before it runs, so concurrent requests are answered
 *   out of order. Combines with any other fault.
 * - `stale-list`: eventual consistency: after this put (or delete), the next `lag` listings
 *   that cover the name still show the old state (the new object missing, the deleted one
 *   present). Combines with any other fault.
 */
export type FaultKind =
  | "put-error"
  | "put-cut"
  | "put-torn"
  | "put-ack-lost"
  | "storage-full"
  | "short-read"
  | "transient"
  | "timeout"
  | "delay"
  | "stale-list";

const ALL_OPS: readonly BackendOp[] = ["exists", "create", "get", "stat", "put", "list", "delete"];

/** The operations each fault can happen to (and applies to when a rule names no `ops`). */
export const FAULT_OPS: Readonly<Record<FaultKind, readonly BackendOp[]>> = {
  "put-error": ["put"],
  "put-cut": ["put"],
  "put-torn": ["put"],
  "put-ack-lost": ["put"],
  "storage-full": ["put"],
  "short-read": ["get"],
  transient: ALL_OPS,
  timeout: ALL_OPS,
  delay: ALL_OPS,
  "stale-list": ["put", "delete"],
};

/**
 * When one fault is injected. A rule matches a call by operation and name prefix; among the
 * calls it matches (counted from 1, whatever other rules did to them) it fires on the `nth`
 * ones, or on every one after the first `after`, or on every one, each time with
 * `probability` (default 1), at most `limit` times.
 */
export interface FaultRule {
  fault: FaultKind;
  /** Default: every operation the fault applies to (FAULT_OPS). */
  ops?: readonly BackendOp[];
  /** Only names (for list: prefixes) that start with this, e.g. `data/`. */
  prefix?: string;
  nth?: number | readonly number[];
  after?: number;
  probability?: number;
  limit?: number;
  /** `delay`: the longest wait (default 20 ms); `timeout`: the wait before failing (default 10 ms). */
  ms?: number;
  /** `stale-list`: how many listings still show the old state (default 2). */
  lag?: number;
}

export interface FaultPlan {
  /** Every decision derives from it: the same seed and calls give the same faults. */
  seed: number;
  rules: readonly FaultRule[];
}

/** One injected fault, in the order they happened. */
export interface FaultRecord {
  seq: number;
  op: BackendOp;
  /** The object name (for list: the prefix listed, or the object a stale listing hid/showed). */
  name: string;
  fault: FaultKind;
  /** What exactly happened, e.g. `kept 1000 of 4096 bytes`, `12 ms`. */
  detail?: string;
}

export interface FaultyBackend extends Backend {
  readonly inner: Backend;
  /** Every fault injected so far, oldest first. */
  readonly log: readonly FaultRecord[];
  /** How many faults (of one kind) were injected so far. */
  count(kind?: FaultKind): number;
}

/** A small seeded PRNG (mulberry32): numbers in [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** FNV-1a of a string, to seed one decision. */
function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

interface Firing {
  rule: FaultRule;
  index: number;
  /** The rest of this decision's random stream (cut points, waits). */
  random: () => number;
}

interface Decision {
  error?: Firing;
  delay?: Firing;
  stale?: Firing;
}

function checkPlan(plan: FaultPlan): void {
  const bad = (i: number, why: string) =>
    new LifeboatError(
      "USAGE",
      `fault rule ${i} (${plan.rules[i]?.fault}): ${why}`,
      "see src/backend/faulty.ts",
    );
  plan.rules.forEach((r, i) => {
    const allowed = FAULT_OPS[r.fault];
    if (!allowed) throw bad(i, "unknown fault");
    for (const op of r.ops ?? []) if (!allowed.includes(op)) throw bad(i, `cannot happen to ${op}`);
    if (r.probability !== undefined && !(r.probability >= 0 && r.probability <= 1))
      throw bad(i, "probability must be between 0 and 1");
    const nth = r.nth === undefined ? [] : typeof r.nth === "number" ? [r.nth] : r.nth;
    if (nth.some((n) => !Number.isInteger(n) || n < 1)) throw bad(i, "nth counts from 1");
    if (r.nth !== undefined && r.after !== undefined) throw bad(i, "give nth or after, not both");
  });
}

/**
 * Wraps a backend so it fails the way real storage does, deterministically: each decision is
 * drawn from a PRNG seeded by the plan's seed, the rule, the operation, the name and how many
 * times that operation was called for that name. So concurrent callers that interleave
 * differently still meet the same faults on the same objects (only `nth`/`after` rules count
 * calls in the order they arrive). Every fault is recorded in `log`.
 */
export function faultyBackend(inner: Backend, plan: FaultPlan): FaultyBackend {
  checkPlan(plan);
  const log: FaultRecord[] = [];
  const calls = new Map<string, number>();
  const matched = plan.rules.map(() => 0);
  const fired = plan.rules.map(() => 0);
  /** Changes that listings do not show yet (stale-list): name → what they still show. */
  const stale = new Map<string, { left: number; deleted?: ObjectInfo }>();

  const record = (op: BackendOp, name: string, fault: FaultKind, detail?: string) => {
    const r: FaultRecord = { seq: log.length + 1, op, name, fault };
    if (detail !== undefined) r.detail = detail;
    log.push(r);
  };

  /** Decides, synchronously at the call (a list: when its iteration starts), which faults it meets. */
  function decide(op: BackendOp, name: string): Decision {
    const key = `${op}\0${name}`;
    const k = (calls.get(key) ?? 0) + 1;
    calls.set(key, k);
    const d: Decision = {};
    plan.rules.forEach((rule, index) => {
      if (!(rule.ops ?? FAULT_OPS[rule.fault]).includes(op)) return;
      if (rule.prefix !== undefined && !name.startsWith(rule.prefix)) return;
      const n = ++matched[index]!;
      const slot = rule.fault === "delay" ? "delay" : rule.fault === "stale-list" ? "stale" : "error";
      if (d[slot]) return;
      if (rule.nth !== undefined && !(typeof rule.nth === "number" ? [rule.nth] : rule.nth).includes(n))
        return;
      if (rule.after !== undefined && n <= rule.after) return;
      if (rule.limit !== undefined && fired[index]! >= rule.limit) return;
      const random = seededRandom(hash32(`${plan.seed}\0${index}\0${op}\0${name}\0${k}`));
      if (random() >= (rule.probability ?? 1)) return;
      fired[index]!++;
      d[slot] = { rule, index, random };
    });
    return d;
  }

  const at = (name: string) => (name === "" ? inner.location : `${inner.location}/${name}`);
  const errno = (code: string, text: string, fault: FaultKind, name: string) =>
    storageError(Object.assign(new Error(`${code}: ${text} (injected ${fault})`), { code }), at(name));

  /** Waits (delay), then throws the errors that stop a request before it has any effect. */
  async function before(op: BackendOp, name: string, d: Decision): Promise<void> {
    if (d.delay) {
      const ms = Math.floor(d.delay.random() * ((d.delay.rule.ms ?? 20) + 1));
      record(op, name, "delay", `${ms} ms`);
      await sleep(ms);
    }
    const f = d.error?.rule.fault;
    if (f === "transient") {
      record(op, name, f, "HTTP 503");
      if (op === "list") return; // fails partway through the listing instead
      throw new LifeboatError(
        "UNREACHABLE",
        `${inner.location}: server error 503 on ${name || op}: injected transient fault`,
        "try again; if it persists, look at the server's log",
      );
    }
    if (f === "timeout") {
      const ms = d.error!.rule.ms ?? 10;
      record(op, name, f, `${ms} ms`);
      await sleep(ms);
      throw errno("ETIMEDOUT", "operation timed out", f, name);
    }
  }

  /** Runs an operation that only transient faults, timeouts and delays touch. */
  async function plain<T>(op: BackendOp, name: string, fn: () => Promise<T>): Promise<T> {
    const d = decide(op, name);
    await before(op, name, d);
    return fn();
  }

  async function* list(prefix: string): AsyncIterable<ObjectInfo> {
    const d = decide("list", prefix);
    await before("list", prefix, d);
    const hidden = new Set<string>();
    const ghosts: ObjectInfo[] = [];
    for (const [name, s] of stale) {
      if (!name.startsWith(prefix)) continue;
      if (s.deleted) ghosts.push(s.deleted);
      else hidden.add(name);
      record(
        "list",
        name,
        "stale-list",
        s.deleted ? "deleted object still listed" : "new object not listed yet",
      );
      if (--s.left <= 0) stale.delete(name);
    }
    const items: ObjectInfo[] = [];
    for await (const o of inner.list(prefix)) if (!hidden.has(o.name)) items.push(o);
    for (const g of ghosts) if (!items.some((o) => o.name === g.name)) items.push(g);
    const cut = d.error?.rule.fault === "transient";
    const cutAfter = cut ? Math.floor(d.error!.random() * (items.length + 1)) : -1;
    for (let i = 0; i < items.length; i++) {
      if (i === cutAfter) break;
      yield items[i]!;
    }
    if (cut)
      throw new LifeboatError(
        "UNREACHABLE",
        `${inner.location}: server error 503 on list ${prefix}: injected transient fault after ${cutAfter} names`,
        "try again; if it persists, look at the server's log",
      );
  }

  return {
    inner,
    log,
    count: (kind?: FaultKind) => log.filter((r) => kind === undefined || r.fault === kind).length,
    location: inner.location,
    capabilities: inner.capabilities,
    ...(inner.versions ? { versions: inner.versions } : {}),
    exists: () => plain("exists", "", () => inner.exists()),
    create: () => plain("create", "", () => inner.create()),
    stat: async (name: string) => plain("stat", objectName(name), () => inner.stat(name)),

    async get(name: string, opts?: GetOptions) {
      const d = decide("get", objectName(name));
      await before("get", name, d);
      const data = await inner.get(name, opts);
      if (d.error?.rule.fault !== "short-read") return data;
      if (data.length === 0) {
        fired[d.error.index]!--; // nothing to shorten: not a fault
        return data;
      }
      const keep = Math.floor(d.error.random() * data.length);
      record("get", name, "short-read", `returned ${keep} of ${data.length} bytes`);
      return data.subarray(0, keep);
    },

    async put(name: string, data: Buffer, opts?: PutOptions) {
      const d = decide("put", objectName(name));
      await before("put", name, d);
      const f = d.error?.rule.fault;
      switch (f) {
        case "put-error":
          record("put", name, f);
          throw errno("EIO", "i/o error, write", f, name);
        case "storage-full":
          record("put", name, f);
          throw errno("ENOSPC", "no space left on device, write", f, name);
        case "put-cut":
          record("put", name, f, `nothing stored of ${data.length} bytes`);
          throw errno("ECONNRESET", "connection reset by peer", f, name);
        case "put-torn": {
          const keep = Math.floor(d.error!.random() * data.length);
          await inner.put(name, data.subarray(0, keep), opts);
          record("put", name, f, `kept ${keep} of ${data.length} bytes`);
          throw errno("ECONNRESET", "connection reset by peer", f, name);
        }
        case "put-ack-lost":
          await inner.put(name, data, opts);
          record("put", name, f, `stored all ${data.length} bytes`);
          throw errno("ECONNRESET", "connection reset by peer", f, name);
      }
      await inner.put(name, data, opts);
      if (d.stale) {
        const lag = d.stale.rule.lag ?? 2;
        record("put", name, "stale-list", `hidden from the next ${lag} listings`);
        stale.set(name, { left: lag });
      } else if (stale.get(name)?.deleted) stale.delete(name);
    },

    async delete(name: string) {
      const d = decide("delete", objectName(name));
      await before("delete", name, d);
      const was = d.stale ? await inner.stat(name) : undefined;
      await inner.delete(name);
      if (d.stale && was) {
        const lag = d.stale.rule.lag ?? 2;
        record("delete", name, "stale-list", `still listed by the next ${lag} listings`);
        stale.set(name, { left: lag, deleted: was });
      } else stale.delete(name);
    },

    list,
    close: () => inner.close(),
  };
}
