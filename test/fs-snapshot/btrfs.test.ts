/**
 * `backup --fs-snapshot btrfs` and `guard --fs-snapshot btrfs` on a real btrfs in a loop file:
 * the backup reads one point in time while a writer keeps changing the files, records the
 * original paths (the next backup, with or without a snapshot, reads no unchanged file), takes
 * nested subvolumes along, leaves lifeboat's own files out, and never leaves a snapshot behind —
 * not after SIGTERM, and after SIGKILL not past the next start, which removes only lifeboat's
 * own. The errors users meet are one line naming the fix. The hook options are run with the
 * btrfs recipe shipped in docs/fs-snapshot-recipes/.
 */
import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { promises as fs } from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { type LoopBtrfs, loopBtrfs } from "../support/btrfs.js";
import {
  baseEnv,
  type CliResult,
  jsonLines,
  prng,
  run,
  runOk,
  show,
  startCli,
  summaryOf,
  treeEntries,
  writeRandomFile,
} from "../support/cli.js";

const RECIPES = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  "..",
  "..",
  "..",
  "docs",
  "fs-snapshot-recipes",
);

let fsys: LoopBtrfs | string;
/** Every process a test started: killed before unmounting, whatever the test did. */
const children = new Set<ChildProcess>();
function track<T extends ChildProcess>(c: T): T {
  children.add(c);
  c.once("exit", () => children.delete(c));
  return c;
}
before(async () => {
  fsys = await loopBtrfs(1536);
});
after(async () => {
  await Promise.all(
    [...children].map((c) => {
      const gone = new Promise((r) => c.once("exit", r));
      c.kill("SIGKILL");
      return gone;
    }),
  );
  if (typeof fsys !== "string") await fsys.close();
});

/** Waits for `cond`, polling, for up to `ms` (generous: CI machines are loaded). */
async function waitFor(cond: () => Promise<boolean>, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
}

/** The mounted btrfs, or skips the test saying why there is none. */
function need(t: { skip: (m: string) => void }): LoopBtrfs | undefined {
  if (typeof fsys === "string") {
    t.skip(`btrfs loop device unavailable: ${fsys}`);
    return undefined;
  }
  return fsys;
}

/** A repository and a state folder of the test's own, both outside the btrfs. */
async function setup(b: LoopBtrfs, name: string) {
  const repo = path.join(b.dir, `repo-${name}`);
  const state = path.join(b.dir, `state-${name}`);
  const env = baseEnv({ LIFEBOAT_REPOSITORY: repo, LIFEBOAT_PASSWORD: "pw", XDG_STATE_HOME: state });
  await runOk(["init"], { env });
  return { env, state, records: path.join(state, "lifeboat", "fs-snapshots") };
}

/** A subvolume with a few folders of small files, a symlink and a hard link. */
async function makeTree(b: LoopBtrfs, sub: string, files = 40): Promise<string> {
  const root = path.join(b.mnt, sub);
  b.btrfs("subvolume", "create", root);
  for (let i = 0; i < files; i++) {
    const d = path.join(root, `d${i % 4}`);
    await fs.mkdir(d, { recursive: true });
    await fs.writeFile(path.join(d, `f${i}.txt`), prng(1000 + i * 37, `${sub}-${i}`));
  }
  await fs.symlink("d0/f0.txt", path.join(root, "link"));
  await fs.link(path.join(root, "d1", "f1.txt"), path.join(root, "hard"));
  return root;
}

const snapDir = (root: string) => path.join(root, ".lifeboat-snapshots");
const list = async (d: string) => (await fs.readdir(d).catch(() => [] as string[])).sort();
const fsSnap = (r: CliResult) => summaryOf(r).fs_snapshot as Record<string, unknown>;

test("a backup from a btrfs snapshot records the original paths; the next one reads no file again", async (t) => {
  const b = need(t);
  if (!b) return;
  const { env, records } = await setup(b, "basic");
  const root = await makeTree(b, "basic");
  const inner = path.join(root, "d2", "inner");
  b.btrfs("subvolume", "create", inner);
  await fs.writeFile(path.join(inner, "nested.txt"), "in a nested subvolume\n");

  const first = await run(["backup", "--fs-snapshot", "btrfs", root, "--json"], { env });
  assert.equal(first.code, 0, show(first));
  const f = fsSnap(first);
  assert.equal(f.kind, "btrfs");
  assert.ok(typeof f.freeze_ms === "number" && f.freeze_ms > 0, show(first));
  assert.deepEqual(
    (f.snapshots as { of: string }[]).map((s) => s.of),
    [root, inner],
  );
  assert.deepEqual(f.nested_subvolumes, [inner]);
  assert.equal(f.removed, true);
  const s1 = summaryOf(first);
  assert.equal(s1.files_new, 42); // 40 files, the nested one, the hard link (the symlink is no file)

  // Recorded under the original path; the snapshot folder is not in it; restores as it is.
  const snaps = JSON.parse((await runOk(["snapshots", "--json"], { env })).stdout) as { paths: string[] }[];
  assert.deepEqual(snaps.at(-1)!.paths, [root]);
  const target = path.join(b.dir, "restored-basic");
  await runOk(["restore", "latest", "--target", target], { env });
  const skip = (rel: string) => rel === ".lifeboat-snapshots";
  assert.deepEqual(await treeEntries(path.join(target, root), { skip }), await treeEntries(root, { skip }));
  assert.deepEqual(await list(path.join(target, root, ".lifeboat-snapshots")), []);

  // Nothing changed: nothing read, and the same tree — from a new snapshot (other device,
  // other mount path), and then without one (which sees the empty snapshot folder). Only the
  // folders above the path, read live, may differ (this test writes into them).
  let prev = summaryOf(first).snapshot_id as string;
  for (const args of [["--fs-snapshot", "btrfs"], []]) {
    const again = summaryOf(await runOk(["backup", ...args, root, "--json"], { env }));
    assert.equal(again.files_new, 0, JSON.stringify(again));
    assert.equal(again.files_changed, 0, JSON.stringify(again));
    assert.equal(again.files_unmodified, 42);
    const diff = jsonLines(
      (await runOk(["diff", prev, again.snapshot_id as string, "--json"], { env })).stdout,
    )
      .filter((m) => m.message_type === "change")
      .map((m) => m.path as string)
      .filter((p) => !root.startsWith(`${p}/`));
    assert.deepEqual(diff, args.length > 0 ? [] : [snapDir(root)]);
    prev = again.snapshot_id as string;
  }
  // A change is seen as one.
  await fs.appendFile(path.join(root, "d3", "f3.txt"), "more\n");
  const changed = summaryOf(await runOk(["backup", "--fs-snapshot", "btrfs", root, "--json"], { env }));
  assert.equal(changed.files_changed, 1);
  assert.equal(changed.files_unmodified, 41);

  // Nothing left behind: no snapshot, no record.
  assert.deepEqual(await list(snapDir(root)), []);
  assert.ok(!b.subvolumes().some((s) => s.includes("lifeboat-")), b.subvolumes().join(" "));
  assert.deepEqual(await list(records), []);
});

test("a path inside a subvolume is read at the same place in its snapshot; -x leaves nested subvolumes out", async (t) => {
  const b = need(t);
  if (!b) return;
  const { env } = await setup(b, "inside");
  const root = await makeTree(b, "inside");
  const inner = path.join(root, "d1", "inner");
  b.btrfs("subvolume", "create", inner);
  await fs.writeFile(path.join(inner, "x.txt"), "x\n");
  const part = path.join(root, "d1");

  const r = await runOk(["backup", "--fs-snapshot", "btrfs", part, "--json"], { env });
  const f = fsSnap(r);
  assert.deepEqual(
    (f.snapshots as { of: string }[]).map((s) => s.of),
    [root, inner],
  );
  const ls = jsonLines((await runOk(["ls", "latest", "--json"], { env })).stdout)
    .map((m) => m.path)
    .filter((p): p is string => typeof p === "string");
  assert.ok(ls.includes(path.join(part, "f1.txt")), ls.join("\n"));
  assert.ok(ls.includes(path.join(inner, "x.txt")), ls.join("\n"));
  assert.ok(!ls.some((p) => p.startsWith(path.join(root, "d0"))), "only the path given is backed up");
  const again = summaryOf(await runOk(["backup", "--fs-snapshot", "btrfs", part, "--json"], { env }));
  assert.equal(again.files_new, 0);
  assert.equal(again.files_changed, 0);

  // --one-file-system: the nested subvolume is not frozen and stays empty, as without a snapshot.
  const x = await runOk(["backup", "--fs-snapshot", "btrfs", "-x", part, "--json"], { env });
  assert.deepEqual(
    (fsSnap(x).snapshots as { of: string }[]).map((s) => s.of),
    [root],
  );
  const lsx = jsonLines((await runOk(["ls", "latest", "--json"], { env })).stdout).map((m) => m.path);
  assert.ok(lsx.includes(inner) && !lsx.includes(path.join(inner, "x.txt")), lsx.join("\n"));
  const plainX = summaryOf(await runOk(["backup", "-x", part, "--json"], { env }));
  assert.equal(plainX.files_new, 0, "the same tree as without a snapshot");
  assert.equal(plainX.files_changed, 0);
});

/**
 * A writer that keeps 200 files of one counter mutually consistent: step n writes n into every
 * file, in name order, in place (never an empty file). At any one moment the files read, in name
 * order, n+1 ... n+1 n ... n. Returns the child and a way to stop it.
 */
function startWriter(dir: string, count: number): ChildProcess {
  const code = `
    const fs = require("node:fs"), path = require("node:path");
    const dir = ${JSON.stringify(dir)}, count = ${count};
    const fds = [];
    for (let i = 0; i < count; i++) fds.push(fs.openSync(path.join(dir, "c" + String(i).padStart(3, "0")), "r+"));
    for (let n = 1; ; n++) {
      const buf = Buffer.alloc(4096, (String(n).padStart(15, "0") + "\\n"));
      for (const fd of fds) fs.writeSync(fd, buf, 0, buf.length, 0);
    }`;
  return track(spawn(process.execPath, ["-e", code], { stdio: "ignore" }));
}

/** The counters of the files, in name order; each file must hold one counter throughout. */
async function counters(dir: string, count: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    const text = await fs.readFile(path.join(dir, `c${String(i).padStart(3, "0")}`), "utf8");
    const values = new Set(text.split("\n").filter(Boolean));
    assert.equal(values.size, 1, `file ${i} holds one counter, not ${[...values].slice(0, 3).join(", ")}`);
    out.push(Number([...values][0]));
  }
  return out;
}

/** Whether the counters are one moment of the writer: non-increasing, at most one step apart. */
const oneMoment = (c: number[]) => c.every((v, i) => i === 0 || v <= c[i - 1]!) && c[0]! - c.at(-1)! <= 1;

test("while a writer keeps changing 200 files, the backup from the snapshot holds one moment", async (t) => {
  const b = need(t);
  if (!b) return;
  const { env } = await setup(b, "writer");
  const root = path.join(b.mnt, "writer");
  b.btrfs("subvolume", "create", root);
  const dir = path.join(root, "counters");
  await fs.mkdir(dir);
  const count = 200;
  for (let i = 0; i < count; i++)
    await fs.writeFile(
      path.join(dir, `c${String(i).padStart(3, "0")}`),
      Buffer.alloc(4096, "000000000000000\n"),
    );
  // Big files beside them, so that reading takes a while.
  await writeRandomFile(path.join(root, "big1"), 24, 1);
  await writeRandomFile(path.join(root, "big2"), 24, 2);
  const writer = startWriter(dir, count);
  try {
    // The writer is under way (node may take seconds to start on a loaded machine).
    const first = path.join(dir, "c000");
    await waitFor(async () => (await fs.readFile(first, "utf8")).split("\n")[0] !== "000000000000000");
    const frozen = await runOk(["backup", "--fs-snapshot", "btrfs", root, "--json"], { env });
    const target = path.join(b.dir, "restored-writer");
    const restored = async (id: string, name: string) => {
      await runOk(["restore", id, "--target", path.join(target, name)], { env });
      return path.join(target, name, dir);
    };
    const c = await counters(await restored(summaryOf(frozen).snapshot_id as string, "frozen"), count);
    assert.ok(c[0]! > 0, "the writer was running");
    assert.ok(oneMoment(c), `one moment: ${c.join(" ")}`);
    assert.deepEqual(summaryOf(frozen).changed_while_reading, []);
    // The same check on a backup of the live files fails: the test can tell. (A loaded machine
    // may pause the writer for a whole read now and then: one of a few live backups will do.)
    const live: string[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await runOk(["backup", root, "--json", "--tag", "live"], { env });
      const l = await counters(await restored(summaryOf(r).snapshot_id as string, `live${i}`), count).catch(
        () => [] as number[],
      );
      if (l.length === 0 || !oneMoment(l)) break;
      live.push(l.join(" "));
    }
    assert.ok(live.length < 5, `every live backup happened to be consistent: ${live.join("\n")}`);
    // And the writer went on meanwhile.
    const gone = new Promise((r) => writer.once("exit", r));
    writer.kill("SIGKILL");
    await gone;
    assert.ok((await counters(dir, count))[0]! > c[0]!, "the writer went on during the backup");
  } finally {
    writer.kill("SIGKILL");
  }
});

test("SIGTERM removes the snapshot on the way out; after SIGKILL the next start removes only lifeboat's own", async (t) => {
  const b = need(t);
  if (!b) return;
  const { env, records } = await setup(b, "kill");
  const root = path.join(b.mnt, "kill");
  b.btrfs("subvolume", "create", root);
  await writeRandomFile(path.join(root, "big"), 16, 3);
  const slow = ["--limit-upload", "1024", "backup", "--fs-snapshot", "btrfs", root];

  /** Starts a slow backup and waits until its snapshot exists. */
  async function startFrozen() {
    const started = startCli(slow, { env });
    track(started.child);
    await waitFor(async () => (await list(snapDir(root))).length > 0);
    await new Promise((r) => setTimeout(r, 500)); // well into reading
    const snaps = await list(snapDir(root));
    assert.equal(snaps.length, 1, `a snapshot while the backup runs: ${snaps.join(" ")}`);
    return { ...started, snap: snaps[0]! };
  }

  const term = await startFrozen();
  term.child.kill("SIGTERM");
  assert.equal((await term.done).code, 130);
  assert.deepEqual(await list(snapDir(root)), [], "SIGTERM: removed on exit");
  assert.deepEqual(await list(records), []);

  const killed = await startFrozen();
  killed.child.kill("SIGKILL");
  await killed.done;
  assert.deepEqual(await list(snapDir(root)), [killed.snap], "SIGKILL leaves it (and its record)");
  assert.equal((await list(records)).length, 1);

  // Beside it: a snapshot of the user's, and one of a lifeboat that still runs (this test's own
  // process stands in for it).
  const stat = await fs.readFile(`/proc/${process.pid}/stat`, "utf8");
  const start = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  const alive = `lifeboat-fs-${process.pid}-${start}-0badcafe-0`;
  b.btrfs("subvolume", "snapshot", "-r", root, path.join(snapDir(root), "mine"));
  b.btrfs("subvolume", "snapshot", "-r", root, path.join(snapDir(root), alive));

  const next = await run(["backup", "--fs-snapshot", "btrfs", root, "--json"], { env });
  assert.equal(next.code, 0, show(next));
  const warnings = summaryOf(next).warnings as string[];
  assert.ok(
    warnings.some((w) => w.includes(killed.snap) && w.includes("left behind")),
    warnings.join("\n"),
  );
  assert.deepEqual(
    await list(snapDir(root)),
    [alive, "mine"].sort(),
    "only the dead lifeboat's snapshot went",
  );
  assert.deepEqual(await list(records), []);
  b.btrfs("subvolume", "delete", path.join(snapDir(root), "mine"), path.join(snapDir(root), alive));
});

test("lifeboat's own repository, state and cache below the path are left out", async (t) => {
  const b = need(t);
  if (!b) return;
  const root = path.join(b.mnt, "own");
  b.btrfs("subvolume", "create", root);
  await fs.writeFile(path.join(root, "data.txt"), "data\n");
  const repo = path.join(root, "repo");
  const state = path.join(root, "state");
  const cache = path.join(root, "cache");
  await fs.mkdir(cache);
  await fs.writeFile(path.join(cache, "cached.json"), "{}");
  const env = baseEnv({
    LIFEBOAT_REPOSITORY: repo,
    LIFEBOAT_PASSWORD: "pw",
    XDG_STATE_HOME: state,
    LIFEBOAT_CACHE_DIR: cache,
  });
  await runOk(["init"], { env });
  const r = await runOk(["backup", "--fs-snapshot", "btrfs", root, "--json"], { env });
  const w = summaryOf(r).warnings as string[];
  assert.ok(
    w.some((x) => x.includes(`left out ${cache}`) && x.includes("cache")),
    w.join("\n"),
  );
  assert.ok(
    w.some((x) => x.includes(`left out ${repo}`) && x.includes("repository")),
    w.join("\n"),
  );
  assert.ok(
    w.some((x) => x.includes(`left out ${path.join(state, "lifeboat")}`)),
    w.join("\n"),
  );
  const ls = jsonLines((await runOk(["ls", "latest", "--json"], { env })).stdout).map((m) => m.path);
  assert.ok(ls.includes(path.join(root, "data.txt")));
  assert.ok(
    !ls.some(
      (p) =>
        typeof p === "string" &&
        (p.startsWith(repo) || p.startsWith(path.join(state, "lifeboat")) || p.startsWith(cache)),
    ),
    ls.join("\n"),
  );
});

/** The one-line error of a --json run: code and message. */
function errorOf(r: CliResult): { code: string; message: string; hint: string } {
  const lines = jsonLines(r.stderr).filter((m) => m.message_type === "error");
  assert.equal(lines.length, 1, show(r));
  return lines[0] as unknown as { code: string; message: string; hint: string };
}

test("errors: one line that names the fix", async (t) => {
  const b = need(t);
  if (!b) return;
  const { env, records } = await setup(b, "errors");
  const root = path.join(b.mnt, "errors");
  b.btrfs("subvolume", "create", root);
  await fs.writeFile(path.join(root, "a.txt"), "a\n");

  // Not btrfs (the test folder beside it is not).
  const notBtrfs = await run(["backup", "--fs-snapshot", "btrfs", b.dir, "--json"], { env });
  assert.equal(notBtrfs.code, 2, show(notBtrfs));
  assert.match(errorOf(notBtrfs).message, /not btrfs/);
  assert.match(errorOf(notBtrfs).hint, /--fs-snapshot-command/);

  // Not root.
  await fs.chmod(b.dir, 0o755);
  const user = await run(["backup", "--fs-snapshot", "btrfs", root, "--json"], {
    env,
    wrapper: ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"],
  });
  assert.equal(user.code, 1, show(user));
  assert.match(errorOf(user).message, /needs root/);

  // btrfs-progs missing.
  const bin = path.join(b.dir, "bin-without-btrfs");
  await fs.mkdir(bin, { recursive: true });
  const noTools = await run(["backup", "--fs-snapshot", "btrfs", root, "--json"], {
    env: { ...env, PATH: bin },
  });
  assert.equal(noTools.code, 1, show(noTools));
  assert.equal(errorOf(noTools).code, "NOT_FOUND");
  assert.match(errorOf(noTools).message, /btrfs-progs is not installed/);
  assert.match(errorOf(noTools).hint, /apt-get install btrfs-progs/);

  // Options that do not go together.
  for (const args of [
    ["--fs-snapshot", "zfs", root],
    ["--fs-snapshot-command", "true", root],
    ["--fs-snapshot", "btrfs", "--fs-snapshot-command", "a", "--fs-snapshot-cleanup", "b", root],
    ["--fs-snapshot", "btrfs", "--stdin"],
  ]) {
    const r = await run(["backup", ...args, "--json"], { env });
    assert.equal(r.code, 2, show(r));
    assert.equal(errorOf(r).code, "USAGE");
  }

  // The snapshot command fails: nothing backed up, its cleanup still ran.
  const log = path.join(b.dir, "hook.log");
  const failing = await run(
    [
      "backup",
      root,
      "--json",
      "--fs-snapshot-command",
      "echo no space left >&2; exit 3",
      "--fs-snapshot-cleanup",
      `echo cleanup $LIFEBOAT_FS_SNAPSHOT_NAME >> ${log}`,
    ],
    { env },
  );
  assert.equal(failing.code, 1, show(failing));
  assert.equal(errorOf(failing).code, "FS_SNAPSHOT");
  assert.match(errorOf(failing).message, /--fs-snapshot-command failed for .* \(exit 3\): no space left/);
  assert.match(await fs.readFile(log, "utf8"), /^cleanup lifeboat-fs-\d+-\d+-[0-9a-f]{8}-0\n$/);
  assert.equal(JSON.parse((await runOk(["snapshots", "--json"], { env })).stdout).length, 0);

  // The cleanup fails: the backup is saved, the run fails, the next start cleans up with the
  // fixed command.
  const hook = path.join(RECIPES, "btrfs.sh");
  const badCleanup = await run(
    ["backup", root, "--json", "--fs-snapshot-command", hook, "--fs-snapshot-cleanup", "exit 7"],
    { env },
  );
  assert.equal(badCleanup.code, 1, show(badCleanup));
  assert.equal(summaryOf(badCleanup).incomplete, false);
  assert.equal(errorOf(badCleanup).code, "FS_SNAPSHOT_CLEANUP");
  assert.match(
    errorOf(badCleanup).message,
    /--fs-snapshot-cleanup failed for snapshot lifeboat-fs-.* \(exit 7\)/,
  );
  const hookDir = path.join(root, ".lifeboat-hook-snapshots");
  assert.equal((await list(hookDir)).length, 1);
  assert.equal((await list(records)).length, 1);
  const fixed = await run(
    ["backup", root, "--json", "--fs-snapshot-command", hook, "--fs-snapshot-cleanup", hook],
    {
      env,
    },
  );
  assert.equal(fixed.code, 0, show(fixed));
  assert.deepEqual(await list(hookDir), []);
  assert.deepEqual(await list(records), []);
});

test("--fs-snapshot-command/--fs-snapshot-cleanup with the btrfs recipe: read from the snapshot, incremental, removed", async (t) => {
  const b = need(t);
  if (!b) return;
  const { env, records } = await setup(b, "hook");
  const root = await makeTree(b, "hook");
  const part = path.join(root, "d2");
  const hook = path.join(RECIPES, "btrfs.sh");
  const args = ["backup", part, "--json", "--fs-snapshot-command", hook, "--fs-snapshot-cleanup", hook];
  const first = await runOk(args, { env });
  const f = fsSnap(first);
  assert.equal(f.kind, "command");
  const printed = (f.snapshots as { of: string; path: string }[])[0]!;
  assert.equal(printed.of, part);
  assert.match(printed.path, /\/\.lifeboat-hook-snapshots\/lifeboat-fs-[\d-]+[0-9a-f]{8}-0\/d2$/);
  assert.equal(summaryOf(first).files_new, 10);
  const again = summaryOf(await runOk(args, { env }));
  assert.equal(again.files_unmodified, 10);
  assert.equal(again.files_new, 0);
  assert.equal(again.files_changed, 0);
  assert.deepEqual(await list(path.join(root, ".lifeboat-hook-snapshots")), []);
  assert.deepEqual(await list(records), []);
  const snaps = JSON.parse((await runOk(["snapshots", "--json"], { env })).stdout) as { paths: string[] }[];
  assert.deepEqual(snaps.at(-1)!.paths, [part]);
});

test("guard --fs-snapshot btrfs: passed, nothing kept; failed, the before-image is kept, rolls back instantly, and ack removes it", async (t) => {
  const b = need(t);
  if (!b) return;
  const { env, records } = await setup(b, "guard");
  const root = await makeTree(b, "guard");
  const app = path.join(root, "d0");
  const beforeTree = await treeEntries(app);

  const okRun = await run(
    ["guard", "--fs-snapshot", "btrfs", "--source", app, "--json", "--", "touch", path.join(app, "new.txt")],
    { env },
  );
  assert.equal(okRun.code, 0, show(okRun));
  assert.equal((summaryOf(okRun).fs_snapshot as { kept: unknown[] }).kept.length, 0);
  assert.deepEqual(await list(snapDir(root)), []);
  await fs.rm(path.join(app, "new.txt"));

  const wreck = `rm -r ${app}/*; echo broken > ${app}/junk; mkdir ${app}/more; exit 5`;
  const failed = await run(
    ["guard", "--fs-snapshot", "btrfs", "--source", app, "--json", "--", "sh", "-c", wreck],
    {
      env,
    },
  );
  assert.equal(failed.code, 5, show(failed));
  const s = summaryOf(failed);
  const fsj = s.fs_snapshot as { kept: { path: string; at: string }[]; instant_rollback: string };
  assert.equal(fsj.kept.length, 1);
  assert.match(fsj.kept[0]!.at, /\/\.lifeboat-snapshots\/lifeboat-guard-[0-9a-f]{8}-[0-9a-f]{8}-0\/d0$/);
  assert.equal((await list(snapDir(root))).length, 1);
  assert.equal((await list(records)).length, 1);
  // A later backup's sweep leaves the kept snapshot alone.
  await runOk(["backup", "--fs-snapshot", "btrfs", root], { env });
  assert.equal((await list(snapDir(root))).length, 1);

  // The printed rollback puts the tree back exactly.
  assert.notDeepEqual(await treeEntries(app), beforeTree);
  execFileSync("sh", ["-c", fsj.instant_rollback]);
  assert.deepEqual(await treeEntries(app), beforeTree);
  // The restore from the repository is still printed beside it.
  assert.match(s.rollback as string, /restore [0-9a-f]{8} --target \//);

  const ack = await runOk(["ack", (s.before as string).slice(0, 8), "--json"], { env });
  assert.match(JSON.stringify(summaryOf(ack).fs_snapshots), /removed the btrfs snapshot/);
  assert.deepEqual(await list(snapDir(root)), []);
  assert.deepEqual(await list(records), []);
});
