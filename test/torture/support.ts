/**
 * Shared machinery of the torture campaign (test/torture/*.test.ts, docs/reliability.md).
 *
 * Two profiles: the quick one runs with the normal suite (`node scripts/run-tests.mjs`), the full
 * one with `npm run torture` (LIFEBOAT_TORTURE=full). Everything random is drawn from
 * LIFEBOAT_TORTURE_SEED, so a failure replays with the seed it prints. Figures of each run are
 * appended as JSON lines to LIFEBOAT_TORTURE_FIGURES (default /tmp/lifeboat-torture-<profile>.jsonl).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { promises as fs } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { localBackend } from "../../src/backend/local.js";
import { Repository } from "../../src/repo/repository.js";
import {
  baseEnv,
  type CliResult,
  diffDescriptions,
  jsonLines,
  removeTempDir,
  show,
  treeEntries,
} from "../support/cli.js";

export const FULL = process.env.LIFEBOAT_TORTURE === "full";
export const PROFILE = FULL ? "full" : "quick";
export const SEED = Number(process.env.LIFEBOAT_TORTURE_SEED ?? 20261207);

/** `quick` in the normal suite, `full` in `npm run torture`. */
export function sized<T>(quick: T, full: T): T {
  return FULL ? full : quick;
}

/**
 * A round count: `quick` in the normal suite, `full` in `npm run torture` times
 * LIFEBOAT_TORTURE_SCALE (default 1; a part of the full campaign when time is short), never
 * fewer than `quick`.
 */
export function rounds(quick: number, full: number): number {
  const scale = Number(process.env.LIFEBOAT_TORTURE_SCALE ?? 1);
  return FULL ? Math.max(quick, Math.round(full * (Number.isFinite(scale) && scale > 0 ? scale : 1))) : quick;
}

/** A small seeded PRNG (mulberry32): floats in [0, 1). */
export function rng(seed: number | string): () => number {
  let s = typeof seed === "number" ? seed >>> 0 : hash32(seed);
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** An integer in [lo, hi]. */
export const between = (r: () => number, lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));

const DEADLINE = process.env.LIFEBOAT_TORTURE_DEADLINE
  ? Date.parse(process.env.LIFEBOAT_TORTURE_DEADLINE)
  : Number.POSITIVE_INFINITY;

/**
 * Whether the campaign's time is up (LIFEBOAT_TORTURE_DEADLINE, a date-time): loops then start
 * no more rounds and cases, and their figures say how many ran (a run cut short still counts).
 */
export function timeUp(): boolean {
  return Date.now() >= DEADLINE;
}

// --- figures -----------------------------------------------------------------------------------

const FIGURES = process.env.LIFEBOAT_TORTURE_FIGURES ?? `/tmp/lifeboat-torture-${PROFILE}.jsonl`;

/** Appends one row of figures (what docs/reliability.md reports) and returns it. */
export async function figure(row: string, data: Record<string, unknown>): Promise<void> {
  const line = { row, profile: PROFILE, seed: SEED, at: new Date().toISOString(), ...data };
  await fs.appendFile(FIGURES, `${JSON.stringify(line)}\n`);
}

// --- running the CLI (with the storage hook) -------------------------------------------------

/** dist/test/torture/hooked-cli.js: the real CLI with the campaign's storage hook. */
export const HOOKED_CLI = path.join(path.dirname(fileURLToPath(import.meta.url)), "hooked-cli.js");

export interface HookedRun extends CliResult {
  /** Whether the run ended by SIGKILL (ours, by delay or by write count). */
  killed: boolean;
  /** Storage writes the run made (puts and deletes), when it was not killed. */
  writes?: number;
  ms: number;
}

export interface HookOptions {
  env: Record<string, string>;
  /** SIGKILL after the Nth completed storage write (deterministic kill point). */
  killAfterWrites?: number;
  /** Count (and kill at) writes only to repositories whose URL contains this. */
  killUrl?: string;
  /** SIGKILL after this many ms (random kill point). */
  killAfterMs?: number;
  /** A faultyBackend plan, for repositories whose URL contains `faultUrl`. */
  faults?: { seed: number | string; rules: unknown[] };
  faultUrl?: string;
  /** withRetries around the faulty backend (as sftp and rest have). */
  retries?: boolean;
  input?: string;
  timeoutMs?: number;
}

let counter = 0;

/** Runs `lifeboat ARGS` through the hooked entry; never throws for a non-zero exit. */
export async function lb(args: string[], o: HookOptions): Promise<HookedRun> {
  const countFile = path.join("/tmp", `lifeboat-torture-count-${process.pid}-${counter++}.json`);
  const env: Record<string, string> = { ...o.env, LIFEBOAT_TORTURE_COUNT_FILE: countFile };
  if (o.killAfterWrites) env.LIFEBOAT_TORTURE_KILL_AFTER_WRITES = String(o.killAfterWrites);
  if (o.killUrl) env.LIFEBOAT_TORTURE_KILL_URL = o.killUrl;
  if (o.faults) env.LIFEBOAT_TORTURE_FAULTS = JSON.stringify(o.faults);
  if (o.faultUrl) env.LIFEBOAT_TORTURE_FAULT_URL = o.faultUrl;
  if (o.retries) env.LIFEBOAT_TORTURE_RETRIES = "1";
  const started = Date.now();
  const child = spawn(process.execPath, [HOOKED_CLI, ...args], { env, stdio: ["pipe", "pipe", "pipe"] });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on("data", (d: Buffer) => out.push(d));
  child.stderr.on("data", (d: Buffer) => err.push(d));
  child.stdin.on("error", () => {});
  child.stdin.end(o.input ?? "");
  let ours = false;
  const killer =
    o.killAfterMs !== undefined
      ? setTimeout(() => {
          ours = true;
          child.kill("SIGKILL");
        }, o.killAfterMs)
      : undefined;
  const guard = setTimeout(() => child.kill("SIGKILL"), o.timeoutMs ?? 600_000);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (c, s) => resolve([c, s]));
  });
  clearTimeout(killer);
  clearTimeout(guard);
  const raw = Buffer.concat(out);
  const r: HookedRun = {
    code: code ?? -1,
    signal,
    stdout: raw.toString("utf8"),
    stdoutRaw: raw,
    stderr: Buffer.concat(err).toString("utf8"),
    cmd: `lifeboat ${args.map((a) => JSON.stringify(a)).join(" ")}`,
    killed: signal === "SIGKILL" && (ours || o.killAfterWrites !== undefined),
    ms: Date.now() - started,
  };
  if (signal === "SIGKILL" && !r.killed) throw new Error(`killed by its timeout (a hang?):\n${show(r)}`);
  const counted = await fs.readFile(countFile, "utf8").catch(() => undefined);
  if (counted) {
    r.writes = (JSON.parse(counted) as { writes: number }).writes;
    await fs.rm(countFile, { force: true });
  }
  return r;
}

/** Runs and requires exit 0. */
export async function lbOk(args: string[], o: HookOptions): Promise<HookedRun> {
  const r = await lb(args, o);
  if (r.code !== 0) throw new Error(`expected exit 0:\n${show(r)}`);
  return r;
}

export function summary(r: CliResult): Record<string, unknown> {
  const s = jsonLines(r.stdout).filter((m) => m.message_type === "summary");
  if (s.length !== 1) throw new Error(`expected one summary line:\n${show(r)}`);
  return s[0]!;
}

// --- repositories ----------------------------------------------------------------------------

/** Small chunks and packs, so a few MiB make many blobs, packs and index files (and many
 * places to be killed at). Written with the library, as a library user may. */
export const SMALL = {
  chunker: { min: 16 * 1024, avg: 64 * 1024, max: 256 * 1024 },
  packSize: 512 * 1024,
};

export function envFor(
  repo: string,
  password: string,
  extra: Record<string, string> = {},
): Record<string, string> {
  return baseEnv({ LIFEBOAT_REPOSITORY: repo, LIFEBOAT_PASSWORD: password, ...extra });
}

/** A new local repository with small chunks and packs. */
export async function initSmall(repo: string, password: string): Promise<void> {
  process.env.LIFEBOAT_KDF_N ??= "1024";
  const r = await Repository.init(localBackend({ path: repo, fsync: false }), password, SMALL);
  await r.close();
}

/** Every blob id listed by the index files in force (read with the library, nothing written). */
export async function indexedBlobs(repo: string, password: string): Promise<Map<string, Set<string>>> {
  const r = await Repository.open(localBackend({ path: repo }), password);
  try {
    const byFile = new Map<string, Set<string>>();
    for (const f of r.indexFiles().loaded) {
      const ids = new Set<string>();
      for (const p of (await r.readIndexFile(f)).packs)
        for (const b of p.blobs) ids.add(b.id.toString("hex"));
      byFile.set(f, ids);
    }
    return byFile;
  } finally {
    await r.close();
  }
}

/** Blobs in index files of `after` that are not in `before` (what a run made durable). */
export function newBlobs(before: Map<string, Set<string>>, after: Map<string, Set<string>>): Set<string> {
  const out = new Set<string>();
  for (const [f, ids] of after) if (!before.has(f)) for (const id of ids) out.add(id);
  return out;
}

// --- checking --------------------------------------------------------------------------------

export interface CheckSummary {
  ok: boolean;
  problems: unknown[];
  pendingPlans: unknown[];
  duplicateBlobs: number;
  unindexedPacks: string[];
  packsRead: number;
}

/** `check --read-data` must exit 0 (information is allowed, damage is not). */
export async function checkClean(env: Record<string, string>, what: string): Promise<CheckSummary> {
  const r = await lb(["check", "--read-data", "--json"], { env });
  assert.equal(r.code, 0, `check --read-data after ${what}:\n${show(r)}`);
  return summary(r) as unknown as CheckSummary;
}

export interface SnapshotInfo {
  id: string;
  tags: string[];
  paths: string[];
  hostname: string;
  time: string;
}

export async function snapshots(env: Record<string, string>): Promise<SnapshotInfo[]> {
  const r = await lb(["snapshots", "--json"], { env });
  assert.equal(r.code, 0, show(r));
  return JSON.parse(r.stdout) as SnapshotInfo[];
}

/**
 * Restores `id` into a fresh folder and compares the whole result with `expected`: the snapshot
 * of `srcPath` lands at target/srcPath, and nothing else may be there (hidden files included).
 */
export async function assertRestores(
  env: Record<string, string>,
  id: string,
  srcPath: string,
  expected: string,
  scratch: string,
): Promise<void> {
  const target = path.join(scratch, `restore-${id}-${counter++}`);
  try {
    const r = await lb(["restore", id, "--target", target], { env });
    assert.equal(r.code, 0, `restore ${id}:\n${show(r)}`);
    await assertSameTree(expected, path.join(target, srcPath), `snapshot ${id}`);
    await assertOnlyChain(target, srcPath);
  } finally {
    await removeTempDir(target);
  }
}

/** The whole tree at `actual` equals `expected` (every entry, hidden ones too, and nothing more). */
export async function assertSameTree(expected: string, actual: string, what: string): Promise<void> {
  const d = diffDescriptions(await treeEntries(expected), await treeEntries(actual));
  if (d.length > 0) assert.fail(`${what}: ${d.length} difference(s):\n  ${d.slice(0, 30).join("\n  ")}`);
}

/** Below `target`, only the folders leading to `rel` exist (a restore puts nothing else there). */
async function assertOnlyChain(target: string, rel: string): Promise<void> {
  const parts = rel.split("/").filter((p) => p !== "");
  let dir = target;
  for (const p of parts) {
    const names = await fs.readdir(dir);
    assert.deepEqual(names, [p], `only ${p} expected in ${dir}`);
    dir = path.join(dir, p);
  }
}

/** A copy of `src` at `dest` as it is now (cp -a: modes, owners, times, links). */
export async function copyTree(src: string, dest: string): Promise<void> {
  await fs.rm(dest, { recursive: true, force: true });
  await fs.mkdir(path.dirname(dest), { recursive: true });
  await new Promise<void>((resolve, reject) => {
    const c = spawn("cp", ["-a", src, dest], { stdio: ["ignore", "ignore", "pipe"] });
    let e = "";
    c.stderr.on("data", (d) => {
      e += d;
    });
    c.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`cp -a ${src} ${dest}: ${e}`))));
  });
}
