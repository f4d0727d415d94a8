import assert from "node:assert/strict";
import { Worker } from "node:worker_threads";
import fc from "fast-check";
import { LifeboatError } from "../../src/core/errors.js";

/**
 * Shared machinery of the property-based fuzz tests (test/fuzz/*.test.ts).
 *
 * Reproducible: every property runs from one seed, LIFEBOAT_FUZZ_SEED (default below), for
 * LIFEBOAT_FUZZ_RUNS runs times the property's scale (the default keeps all fuzz files near
 * 20 s on 2 cores; a long run sets, say, 3000). A failure prints the seed, fast-check's replay
 * path and the shrunk counterexample. Valid samples sealed with random salts and nonces differ
 * between runs; the printed counterexample is the exact input.
 */
export const FUZZ_SEED = envInt("LIFEBOAT_FUZZ_SEED", 20261201);
export const FUZZ_RUNS = envInt("LIFEBOAT_FUZZ_RUNS", 150);

/** No decoder may take longer than this on one (small) input: it is taken to hang. */
const HANG_MS = envInt("LIFEBOAT_FUZZ_HANG_MS", 20_000);
/** No single allocation while decoding a fuzz input (all at most a few hundred KiB) may exceed this. */
export const ALLOC_LIMIT = 64 * 1024 * 1024;

function envInt(name: string, fallback: number): number {
  const v = process.env[name];
  if (v === undefined || v === "") return fallback;
  const n = Number(v);
  if (!Number.isSafeInteger(n)) throw new Error(`${name} must be an integer, got ${JSON.stringify(v)}`);
  return n;
}

function report<T>(name: string, details: fc.RunDetails<T>, runs: number): never {
  const e = details.errorInstance;
  const why = e instanceof Error ? e.message : String(e);
  const replay = `LIFEBOAT_FUZZ_SEED=${details.seed} LIFEBOAT_FUZZ_RUNS=${runs} node scripts/run-tests.mjs fuzz`;
  throw new assert.AssertionError({
    message: `fuzz property "${name}" failed (seed ${details.seed}): ${why}\n${fc.defaultReportMessage(details)}\nreplay: ${replay}`,
  });
}

/** Runs a synchronous property `FUZZ_RUNS × scale` times (at least once) from the fixed seed. */
export function fuzz<Ts extends [unknown, ...unknown[]]>(
  name: string,
  arbs: { [K in keyof Ts]: fc.Arbitrary<Ts[K]> },
  predicate: (...args: Ts) => void,
  scale = 1,
): void {
  const runs = Math.max(1, Math.round(FUZZ_RUNS * scale));
  const details = fc.check(fc.property(...arbs, predicate), { seed: FUZZ_SEED, numRuns: runs });
  if (details.failed) report(name, details, FUZZ_RUNS);
}

/** The same for an asynchronous property. */
export async function fuzzAsync<Ts extends [unknown, ...unknown[]]>(
  name: string,
  arbs: { [K in keyof Ts]: fc.Arbitrary<Ts[K]> },
  predicate: (...args: Ts) => Promise<void>,
  scale = 1,
): Promise<void> {
  const runs = Math.max(1, Math.round(FUZZ_RUNS * scale));
  const details = await fc.check(fc.asyncProperty(...arbs, predicate), { seed: FUZZ_SEED, numRuns: runs });
  if (details.failed) report(name, details, FUZZ_RUNS);
}

// --- allocation bound ------------------------------------------------------------------------

let allocViolation: string | undefined;
let allocLimit = ALLOC_LIMIT;
const original = {
  alloc: Buffer.alloc,
  allocUnsafe: Buffer.allocUnsafe,
  allocUnsafeSlow: Buffer.allocUnsafeSlow,
};

function checked<F extends (size: number, ...rest: never[]) => Buffer>(name: string, f: F): F {
  return ((size: number, ...rest: never[]) => {
    if (size > allocLimit) {
      allocViolation ??= `Buffer.${name}(${size}) (limit ${allocLimit})`;
      // Refused here so the machine survives; the property fails on the record above even if
      // the decoder swallows this error.
      throw new Error(`fuzz: refused Buffer.${name}(${size})`);
    }
    return f(size, ...rest);
  }) as F;
}

function patchAlloc(limit: number): void {
  allocLimit = limit;
  allocViolation = undefined;
  Buffer.alloc = checked("alloc", original.alloc);
  Buffer.allocUnsafe = checked("allocUnsafe", original.allocUnsafe);
  Buffer.allocUnsafeSlow = checked("allocUnsafeSlow", original.allocUnsafeSlow);
}

function unpatchAlloc(): string | undefined {
  Buffer.alloc = original.alloc;
  Buffer.allocUnsafe = original.allocUnsafe;
  Buffer.allocUnsafeSlow = original.allocUnsafeSlow;
  return allocViolation;
}

// --- hang watchdog ---------------------------------------------------------------------------

// A decoder stuck in a loop blocks this thread (and its timers), so a second thread watches a
// shared heartbeat and, when one decode has run for HANG_MS, prints the test, the seed and the
// input with a direct write to fd 2 and kills the process.
const INPUT_CAP = 256 * 1024;
const shared = new SharedArrayBuffer(16 + 1024 + INPUT_CAP);
const words = new Int32Array(shared, 0, 4); // [0] running, [1] run counter, [2] label bytes, [3] input bytes
const labelBytes = new Uint8Array(shared, 16, 1024);
const inputBytes = new Uint8Array(shared, 16 + 1024, INPUT_CAP);
let watchdog: Worker | undefined;

const WATCHDOG = `
const { workerData } = require("node:worker_threads");
const fs = require("node:fs");
const { shared, hangMs, seed } = workerData;
const words = new Int32Array(shared, 0, 4);
const label = new Uint8Array(shared, 16, 1024);
const input = new Uint8Array(shared, 16 + 1024);
let seen = -1, since = Date.now();
setInterval(() => {
  const run = Atomics.load(words, 1);
  if (Atomics.load(words, 0) === 0 || run !== seen) { seen = run; since = Date.now(); return; }
  if (Date.now() - since < hangMs) return;
  const name = Buffer.from(label.subarray(0, words[2])).toString("utf8");
  const bytes = Buffer.from(input.subarray(0, words[3]));
  fs.writeSync(2, "fuzz: " + name + " did not return within " + hangMs + " ms (seed " + seed +
    "); input (base64, first " + bytes.length + " bytes): " + bytes.toString("base64") + "\\n");
  process.kill(process.pid, "SIGKILL");
}, 250);
`;

function startWatchdog(): void {
  if (watchdog) return;
  watchdog = new Worker(WATCHDOG, { eval: true, workerData: { shared, hangMs: HANG_MS, seed: FUZZ_SEED } });
  watchdog.unref();
}

function beginRun(label: string, input: Uint8Array | string): void {
  startWatchdog();
  const l = Buffer.from(label, "utf8").subarray(0, labelBytes.length);
  labelBytes.set(l);
  words[2] = l.length;
  const b = typeof input === "string" ? Buffer.from(input, "utf8") : input;
  const n = Math.min(b.length, INPUT_CAP);
  inputBytes.set(b.subarray(0, n));
  words[3] = n;
  Atomics.add(words, 1, 1);
  Atomics.store(words, 0, 1);
}

function endRun(): void {
  Atomics.store(words, 0, 0);
}

// --- the decoder contract -------------------------------------------------------------------

function judge<T>(
  label: string,
  outcome: { ok: true; value: T } | { ok: false; error: unknown },
  violation: string | undefined,
  valid: (v: T) => void,
): void {
  if (violation) assert.fail(`${label}: allocated too much: ${violation}`);
  if (outcome.ok) {
    valid(outcome.value);
    return;
  }
  const e = outcome.error;
  if (e instanceof LifeboatError) return;
  const what = e instanceof Error ? `${e.constructor.name}: ${e.message}` : String(e);
  assert.fail(`${label}: threw ${what} instead of a LifeboatError\n${e instanceof Error ? e.stack : ""}`);
}

/**
 * The contract every decoder keeps on any input: it returns a value that passes `valid`, or
 * throws a LifeboatError; it never throws anything else, never makes one allocation above
 * `limit` bytes and never hangs (see the watchdog).
 */
export function expectDecodes<T>(
  label: string,
  input: Uint8Array | string,
  decode: () => T,
  valid: (v: T) => void = () => {},
  limit = ALLOC_LIMIT,
): T | undefined {
  let outcome: { ok: true; value: T } | { ok: false; error: unknown };
  beginRun(label, input);
  patchAlloc(limit);
  try {
    outcome = { ok: true, value: decode() };
  } catch (error) {
    outcome = { ok: false, error };
  } finally {
    endRun();
  }
  judge(label, outcome, unpatchAlloc(), valid);
  return outcome.ok ? outcome.value : undefined;
}

/** `expectDecodes` for an asynchronous decoder. */
export async function expectDecodesAsync<T>(
  label: string,
  input: Uint8Array | string,
  decode: () => Promise<T>,
  valid: (v: T) => void = () => {},
  limit = ALLOC_LIMIT,
): Promise<T | undefined> {
  let outcome: { ok: true; value: T } | { ok: false; error: unknown };
  beginRun(label, input);
  patchAlloc(limit);
  try {
    outcome = { ok: true, value: await decode() };
  } catch (error) {
    outcome = { ok: false, error };
  } finally {
    endRun();
  }
  judge(label, outcome, unpatchAlloc(), valid);
  return outcome.ok ? outcome.value : undefined;
}
