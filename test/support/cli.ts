/**
 * Helpers for the tests that drive the built CLI (test/cli, test/e2e and the others): run it in a
 * child process exactly as a user would, give each suite a temporary folder and repository,
 * generate deterministic data, compare folder trees (content, mode, owner, mtime to the second,
 * symlink targets, hard-link groups, empty folders) and check the shape of error output.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createCipheriv, createHash } from "node:crypto";
import { type BigIntStats, createWriteStream, promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import { after, before } from "node:test";
import { fileURLToPath } from "node:url";

/** The CLI as it ships: bundled into dist/cli/ by scripts/bundle.mjs (tests run from
 * dist/test/...). */
export const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "cli", "main.js");

/** The checkout the tests run from (its package.json and node_modules). */
export const PROJECT_ROOT = path.resolve(path.dirname(CLI), "..", "..");

export const MiB = 1024 * 1024;

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** A finished CLI run. */
export interface CliResult extends RunResult {
  /** The signal that ended the child, if one did (`code` is then -1). */
  signal: NodeJS.Signals | null;
  /** stdout as bytes (for binary output such as `cat blob`). */
  stdoutRaw: Buffer;
  /** The command line, for assertion messages. */
  cmd: string;
}

export interface RunOptions {
  env?: Record<string, string>;
  /** Bytes written to the child's stdin (stdin is always a pipe, never a terminal). */
  input?: Buffer | string;
  cwd?: string;
  /** Kill the child (SIGKILL) after this many ms; default 10 minutes, a guard against hangs. */
  timeoutMs?: number;
  /** Run the CLI through this wrapper, e.g. ["setpriv", "--reuid=65534", ...]. */
  wrapper?: string[];
}

/**
 * A clean environment for the child: the parent's variables minus every LIFEBOAT_* and XDG_* one
 * (so nothing leaks in from the machine running the tests: repository, password, config file,
 * default repository), plus LIFEBOAT_KDF_N=1024 so key derivation is fast, plus `extra`.
 */
export function baseEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v === undefined || k.startsWith("LIFEBOAT_") || k.startsWith("XDG_")) continue;
    env[k] = v;
  }
  return { ...env, LIFEBOAT_KDF_N: "1024", ...extra };
}

/** Environment for a repository at `repo` opened with `password`. */
export function repoEnv(repo: string, password: string, extra: Record<string, string> = {}) {
  return baseEnv({ LIFEBOAT_REPOSITORY: repo, LIFEBOAT_PASSWORD: password, ...extra });
}

/** Starts the CLI without waiting (for kill -9 tests). stdout/stderr are collected. */
export function startCli(
  args: string[],
  opts: RunOptions = {},
): { child: ChildProcess; done: Promise<CliResult> } {
  const argv = [...(opts.wrapper ?? []), process.execPath, CLI, ...args];
  const child = spawn(argv[0]!, argv.slice(1), {
    env: opts.env ?? baseEnv(),
    cwd: opts.cwd,
    stdio: ["pipe", "pipe", "pipe"],
  });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout!.on("data", (d: Buffer) => out.push(d));
  child.stderr!.on("data", (d: Buffer) => err.push(d));
  child.stdin!.on("error", () => {}); // the child may exit before reading its stdin
  child.stdin!.end(opts.input ?? "");
  const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 600_000);
  const cmd = `lifeboat ${args.map((a) => JSON.stringify(a)).join(" ")}`;
  const done = new Promise<CliResult>((resolve, reject) => {
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      const raw = Buffer.concat(out);
      resolve({
        code: code ?? -1,
        signal,
        stdout: raw.toString("utf8"),
        stdoutRaw: raw,
        stderr: Buffer.concat(err).toString("utf8"),
        cmd,
      });
    });
  });
  return { child, done };
}

/** Runs the CLI to completion and returns its exit code and output. */
export function run(args: string[], opts: RunOptions = {}): Promise<CliResult> {
  return startCli(args, opts).done;
}

/** A description of a result for assertion messages. */
export function show(r: CliResult): string {
  return `${r.cmd}\n  exit ${r.code}${r.signal ? ` (signal ${r.signal})` : ""}\n  stdout: ${clip(r.stdout)}\n  stderr: ${clip(r.stderr)}`;
}

function clip(s: string, n = 1500): string {
  return JSON.stringify(s.length > n ? `${s.slice(0, n)}...` : s);
}

/** Runs the CLI and fails the test with the whole output unless it exits 0. */
export async function runOk(args: string[], opts: RunOptions = {}): Promise<CliResult> {
  const r = await run(args, opts);
  if (r.code !== 0) throw new Error(`expected exit 0:\n${show(r)}`);
  return r;
}

/** Parses stdout (or stderr) as JSON lines; every non-blank line must be one JSON document. */
export function jsonLines(text: string): Record<string, unknown>[] {
  return text
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => {
      try {
        return JSON.parse(l) as Record<string, unknown>;
      } catch {
        throw new Error(`not a JSON line: ${JSON.stringify(l)}`);
      }
    });
}

/** The `summary` message of a `--json` run (exactly one must be present). */
export function summaryOf(r: CliResult): Record<string, unknown> {
  const s = jsonLines(r.stdout).filter((m) => m.message_type === "summary");
  if (s.length !== 1) throw new Error(`expected one summary line:\n${show(r)}`);
  return s[0]!;
}

// --- temporary folders ---------------------------------------------------------------------

/** A new empty folder under os.tmpdir() (remove it with `removeTempDir`). */
export async function tempDir(prefix = "lifeboat-test-"): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), prefix));
}

export async function removeTempDir(d: string): Promise<void> {
  // Restored trees may hold read-only folders; as root rm copes, as a user chmod first.
  await fs.rm(d, { recursive: true, force: true }).catch(async () => {
    await chmodTree(d);
    await fs.rm(d, { recursive: true, force: true });
  });
}

async function chmodTree(d: string): Promise<void> {
  const st = await fs.lstat(d).catch(() => undefined);
  if (!st?.isDirectory()) return;
  await fs.chmod(d, 0o700).catch(() => {});
  for (const n of await fs.readdir(d).catch(() => [] as string[])) await chmodTree(path.join(d, n));
}

/** Runs `fn` with a fresh temporary folder that is removed afterwards, whatever happens. */
export async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const d = await tempDir();
  try {
    return await fn(d);
  } finally {
    await removeTempDir(d);
  }
}

/** What `useWorkspace` sets up. Reading a field before its `before` hook ran throws. */
export interface Workspace {
  /** A fresh temporary folder, removed after the suite. */
  readonly base: string;
  /** `base/src` (not created). */
  readonly src: string;
  /** `base/repo`. */
  readonly repo: string;
  /** Opens `repo` with the suite's password (without a password: `baseEnv()`). */
  readonly env: Record<string, string>;
}

export interface WorkspaceOptions {
  /** The password of the repository at base/repo, which `env` then opens. */
  password?: string;
  /** Run `init` for base/repo (default: when a password is given). */
  init?: boolean;
  /** The suite's own preparation, once the workspace is ready. */
  setup?: (ws: Workspace) => Promise<void>;
  /** The suite's own cleanup, before the folder is removed (also when `setup` failed). */
  teardown?: (ws: Workspace) => Promise<void>;
}

/**
 * Registers a `before` and an `after` hook on the current suite (the file, or the `describe` it
 * is called in): a fresh temporary folder, removed afterwards whatever happens, and, given a
 * `password`, the environment of a repository at base/repo, initialised there. Put the suite's
 * own preparation in `setup`, not in another `before` hook: node 20 does not wait for one
 * file-level `before` hook before starting the next.
 */
export function useWorkspace(opts: WorkspaceOptions = {}): Workspace {
  const { password } = opts;
  let ready: Workspace | undefined;
  const get = <K extends keyof Workspace>(k: K): Workspace[K] => {
    if (!ready) throw new Error(`workspace.${k} read before the workspace was set up`);
    return ready[k];
  };
  const ws: Workspace = {
    get base() {
      return get("base");
    },
    get src() {
      return get("src");
    },
    get repo() {
      return get("repo");
    },
    get env() {
      return get("env");
    },
  };
  before(async () => {
    const base = await tempDir();
    const repo = path.join(base, "repo");
    const env = password === undefined ? baseEnv() : repoEnv(repo, password);
    ready = { base, src: path.join(base, "src"), repo, env };
    if (password !== undefined && opts.init !== false) await runOk(["init"], { env });
    await opts.setup?.(ws);
  });
  after(async () => {
    if (!ready) return;
    try {
      await opts.teardown?.(ws);
    } finally {
      await removeTempDir(ready.base);
    }
  });
  return ws;
}

// --- data ----------------------------------------------------------------------------------

/** A deterministic keystream (AES-128-CTR over zeroes) seeded by `seed`. */
function keystream(seed: number | string) {
  let key: Buffer;
  if (typeof seed === "number") {
    key = Buffer.alloc(16);
    key.writeUInt32LE(seed, 0);
  } else {
    key = createHash("sha256").update(`lifeboat-test:${seed}`).digest().subarray(0, 16);
  }
  return createCipheriv("aes-128-ctr", key, Buffer.alloc(16));
}

/** `n` deterministic pseudo-random bytes. */
export function prng(n: number, seed: number | string = 1): Buffer {
  return keystream(seed).update(Buffer.alloc(n));
}

/** Writes `mib` MiB of pseudo-random data in 1 MiB pieces (no whole file in memory). */
export async function writeRandomFile(file: string, mib: number, seed = 1): Promise<void> {
  const fh = await fs.open(file, "w");
  try {
    for (let i = 0; i < mib; i++) await fh.write(prng(1 << 20, seed * 1_000_000 + i));
  } finally {
    await fh.close();
  }
}

/** Streams `size` deterministic pseudo-random bytes to `file` (any size, constant memory). */
export async function writeRandomBytes(file: string, size: number, seed: number | string = 1): Promise<void> {
  const cipher = keystream(seed);
  const piece = 4 * MiB;
  async function* gen() {
    const zero = Buffer.alloc(piece);
    for (let left = size; left > 0; left -= piece)
      yield cipher.update(left >= piece ? zero : zero.subarray(0, left));
  }
  await pipeline(gen(), createWriteStream(file));
}

export async function sha256File(file: string): Promise<string> {
  const h = createHash("sha256");
  const fh = await fs.open(file, "r");
  try {
    const buf = Buffer.allocUnsafe(4 * MiB);
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      h.update(buf.subarray(0, bytesRead));
    }
  } finally {
    await fh.close();
  }
  return h.digest("hex");
}

// --- walking and comparing trees -------------------------------------------------------------

interface Entry {
  /** The full path. */
  path: string;
  /** The path relative to the root, "/"-separated. */
  rel: string;
  st: BigIntStats;
}

interface WalkOptions {
  /** Leave this entry out, with everything below it. */
  prune?: (e: Entry) => boolean;
  /** Pass over folders that cannot be read and entries that vanish meanwhile (a repository
   * being written to), instead of failing. */
  lenient?: boolean;
}

/** Every entry below `root` (not `root` itself), each folder before its contents, names sorted. */
async function* walk(root: string, opts: WalkOptions = {}, rel = ""): AsyncGenerator<Entry> {
  const dir = rel ? path.join(root, rel) : root;
  let names: string[];
  try {
    names = (await fs.readdir(dir)).sort();
  } catch (e) {
    if (opts.lenient) return;
    throw e;
  }
  for (const name of names) {
    const p = path.join(dir, name);
    const r = rel ? `${rel}/${name}` : name;
    let st: BigIntStats;
    try {
      st = await fs.lstat(p, { bigint: true });
    } catch (e) {
      if (opts.lenient) continue;
      throw e;
    }
    const entry = { path: p, rel: r, st };
    if (opts.prune?.(entry)) continue;
    yield entry;
    if (st.isDirectory()) yield* walk(root, opts, r);
  }
}

/** Everything a restore must reproduce, as one comparable listing (content by SHA-256). */
export async function describeTree(root: string): Promise<string[]> {
  const out: string[] = [];
  const inodes = new Map<string, string>();
  for await (const { path: p, rel: r, st } of walk(root)) {
    const mode = (st.mode & 0o7777n).toString(8);
    const mtime = Math.floor(Number(st.mtimeMs) / 1000);
    if (st.isSymbolicLink()) out.push(`L ${JSON.stringify(r)} -> ${await fs.readlink(p)}`);
    else if (st.isDirectory()) out.push(`D ${JSON.stringify(r)} ${mode} ${mtime}`);
    else if (st.isFile()) {
      let link = "";
      if (st.nlink > 1n) {
        const key = `${st.dev}:${st.ino}`;
        link = ` link-group=${inodes.get(key) ?? r}`;
        if (!inodes.has(key)) inodes.set(key, r);
      }
      out.push(`F ${JSON.stringify(r)} ${mode} ${st.size} ${mtime} ${await sha256File(p)}${link}`);
    }
  }
  return out;
}

export interface TreeEntriesOptions {
  /** Compare uid/gid too (default true). */
  owner?: boolean;
  /** Compare mtimes of symlinks too (default true). */
  symlinkMtime?: boolean;
  /** Paths (relative, "/"-separated) to leave out, with everything below them. */
  skip?: (rel: string) => boolean;
}

/**
 * Like `describeTree`, finer and keyed by path (relative to `root`, not including `root`
 * itself): type, permission bits, owner, mtime in whole seconds, size and SHA-256 of the
 * content, the symlink target, and the hard-link group (the other paths in the tree that share
 * the inode). Empty folders appear as entries of their own.
 */
export async function treeEntries(root: string, opts: TreeEntriesOptions = {}): Promise<Map<string, string>> {
  const owner = opts.owner ?? true;
  const out = new Map<string, string>();
  const byInode = new Map<string, string[]>();
  const prune = opts.skip ? (e: Entry) => opts.skip!(e.rel) : undefined;
  for await (const { path: p, rel: r, st } of walk(root, { prune })) {
    const mode = `0${(st.mode & 0o7777n).toString(8).padStart(4, "0")}`;
    const own = owner ? ` ${st.uid}:${st.gid}` : "";
    const mtime = ` mtime=${st.mtimeNs / 1_000_000_000n}`;
    if (st.isSymbolicLink()) {
      const m = opts.symlinkMtime === false ? "" : mtime;
      out.set(r, `symlink -> ${JSON.stringify(await fs.readlink(p))}${own}${m}`);
    } else if (st.isDirectory()) {
      out.set(r, `dir ${mode}${own}${mtime}`);
    } else if (st.isFile()) {
      out.set(r, `file ${mode}${own}${mtime} size=${st.size} sha256=${await sha256File(p)}`);
      if (st.nlink > 1n) {
        const k = `${st.dev}:${st.ino}`;
        byInode.set(k, [...(byInode.get(k) ?? []), r]);
      }
    } else {
      out.set(r, `special ${mode}`);
    }
  }
  for (const group of byInode.values()) {
    if (group.length < 2) continue; // the other links are outside the tree
    for (const r of group) out.set(r, `${out.get(r)} hardlinks=${JSON.stringify(group.sort())}`);
  }
  return out;
}

/** Differences between two `treeEntries` results, as readable lines (empty when equal). */
export function diffDescriptions(a: Map<string, string>, b: Map<string, string>): string[] {
  const lines: string[] = [];
  for (const [k, v] of a) {
    const w = b.get(k);
    if (w === undefined) lines.push(`missing ${JSON.stringify(k)}: ${v}`);
    else if (w !== v) lines.push(`differs ${JSON.stringify(k)}:\n    expected ${v}\n    actual   ${w}`);
  }
  for (const [k, v] of b) if (!a.has(k)) lines.push(`extra ${JSON.stringify(k)}: ${v}`);
  return lines;
}

/** Fails unless the tree at `actual` equals the one at `expected` (see `treeEntries`). */
export async function assertTreesEqual(expected: string, actual: string, opts: TreeEntriesOptions = {}) {
  const d = diffDescriptions(await treeEntries(expected, opts), await treeEntries(actual, opts));
  if (d.length > 0) {
    throw new Error(
      `trees differ (${expected} vs ${actual}), ${d.length} difference(s):\n  ${d.slice(0, 40).join("\n  ")}`,
    );
  }
}

/** Every path below `root`, for proving that nothing appeared or changed elsewhere. */
export async function listAll(root: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of walk(root)) out.push(e.path);
  return out.sort();
}

/**
 * A listing of a folder for "nothing changed" checks: every path below it with type, size,
 * mode, mtime (ns) and a content hash of files. `skip` leaves a path out with all below it.
 */
export async function snapshotListing(root: string, skip?: (p: string) => boolean): Promise<string[]> {
  const out: string[] = [];
  const prune = skip ? (e: Entry) => skip(e.path) : undefined;
  for await (const { path: p, st } of walk(root, { prune, lenient: true })) {
    const kind = st.isDirectory() ? "d" : st.isSymbolicLink() ? "l" : st.isFile() ? "f" : "?";
    let extra = "";
    if (st.isFile()) extra = ` ${st.size} ${await sha256File(p)}`;
    if (st.isSymbolicLink()) extra = ` -> ${await fs.readlink(p)}`;
    out.push(`${kind} ${JSON.stringify(p)} ${(st.mode & 0o7777n).toString(8)} ${st.mtimeNs}${extra}`);
  }
  return out;
}

/** Sum of the sizes of all regular files below `root` (apparent size, like `du -sb`). */
export async function dirBytes(root: string): Promise<number> {
  let n = 0;
  for await (const { st } of walk(root)) if (st.isFile()) n += Number(st.size);
  return n;
}

/** Every path below `root` whose name starts with `prefix` (e.g. ".tmp-"). */
export async function findNamed(root: string, prefix: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of walk(root, { lenient: true }))
    if (path.basename(e.path).startsWith(prefix)) out.push(e.path);
  return out.sort();
}

/** Files (anything but folders) directly or indirectly below `dir` (e.g. packs in data/). */
export async function countFiles(
  dir: string,
  filter: (name: string) => boolean = () => true,
): Promise<number> {
  let n = 0;
  for await (const e of walk(dir, { lenient: true }))
    if (!e.st.isDirectory() && filter(path.basename(e.path))) n++;
  return n;
}

// --- error output ----------------------------------------------------------------------------

/**
 * Checks the shape of a failed command's stderr: exactly one line starting with `error: `,
 * followed by a `  hint: ` line, no stack trace, and (optionally) a message matching `message`.
 */
export function assertCleanError(r: CliResult, exitCode: number, message?: RegExp): void {
  const fail = (why: string) => {
    throw new Error(`${why}\n${show(r)}`);
  };
  if (r.code !== exitCode) fail(`expected exit code ${exitCode}, got ${r.code}`);
  const lines = r.stderr.split("\n").filter((l) => l !== "");
  const errs = lines.filter((l) => l.startsWith("error: "));
  if (errs.length !== 1) fail(`expected exactly one "error: " line on stderr, got ${errs.length}`);
  const i = lines.indexOf(errs[0]!);
  if (!/^ {2}hint: \S/.test(lines[i + 1] ?? "")) fail('expected a "  hint: " line after the error line');
  if (lines.some((l) => /^\s+at .+:\d+:\d+\)?$/.test(l))) fail("stderr holds a stack trace");
  if (message && !message.test(errs[0]!)) fail(`error line does not match ${message}`);
}

/** With --json, an error is exactly one JSON line on stderr: {message_type:"error", code, message, hint}. */
export function assertJsonError(r: CliResult, exitCode: number, code: string): Record<string, unknown> {
  if (r.code !== exitCode) throw new Error(`expected exit code ${exitCode}\n${show(r)}`);
  const lines = r.stderr.split("\n").filter((l) => l !== "");
  if (lines.length !== 1) throw new Error(`expected one JSON line on stderr\n${show(r)}`);
  const doc = JSON.parse(lines[0]!) as Record<string, unknown>;
  if (doc.message_type !== "error" || doc.code !== code || typeof doc.message !== "string")
    throw new Error(`unexpected JSON error ${lines[0]}\n${show(r)}`);
  if (typeof doc.hint !== "string" || doc.hint === "")
    throw new Error(`JSON error without a hint\n${show(r)}`);
  return doc;
}

// --- other processes -------------------------------------------------------------------------

/** Polls `cond` every `everyMs` until it returns true or `timeoutMs` passes. */
export async function waitFor(
  cond: () => Promise<boolean>,
  timeoutMs: number,
  everyMs = 20,
): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await cond()) return true;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  return cond();
}

/** Whether a command is on PATH. */
export async function hasCommand(name: string): Promise<boolean> {
  for (const d of (process.env.PATH ?? "").split(":")) {
    if (
      await fs.access(path.join(d, name), fs.constants.X_OK).then(
        () => true,
        () => false,
      )
    )
      return true;
  }
  return false;
}

/** Runs a plain command (mount, umount, ...) and returns its exit code and output. */
export function runCmd(cmd: string, args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const c = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    c.stdout.on("data", (d) => {
      out += d;
    });
    c.stderr.on("data", (d) => {
      out += d;
    });
    c.on("error", (e) => resolve({ code: -1, out: String(e) }));
    c.on("close", (code) => resolve({ code, out }));
  });
}
