import { spawnSync } from "node:child_process";
import { promises as fs, readFileSync } from "node:fs";
import path from "node:path";
import type { Dataset } from "./dataset-cache.js";
import { log } from "./log.js";
import { dropCaches, sync } from "./machine.js";
import { type Command, lineCount, type Measure, measure } from "./measure.js";
import { Mutation } from "./mutation.js";
import type { TreeProfile, ZerosProfile } from "./profiles.js";
import type { Results } from "./results.js";
import type { Tool, ToolName } from "./tools.js";
import { toolEnv } from "./tools.js";
import type { Trash } from "./trash.js";
import { sizeOf, summarize, type TreeSummary } from "./tree.js";

export type CacheState = "warm" | "cold";

/** What one profile's pairs share in one cache state. */
export interface PairContext {
  tools: Tool[];
  cache: CacheState;
  /** Scratch folder of the pair: repositories, restores, tool homes, captured output. */
  work: string;
  results: Results;
  /** Where finished trees go until no step is measured (bench/trash.ts says why). */
  trash: Trash;
  label: string;
  pairs: number;
}

const MiB = 2 ** 20;

/**
 * Runs one step for every tool in turn (lifeboat, restic, borg: the order given), each right after
 * the other so that they see the same machine. Before each command: `sync` (so that one tool's
 * dirty pages are not written back on the next tool's time), and on a cold run the page cache,
 * dentries and inodes dropped. `check` looks at a successful result (the restored tree, the
 * listing) and returns what is wrong with it, if anything.
 */
async function step(
  ctx: PairContext,
  pair: number,
  name: string,
  command: (t: Tool) => Command | string,
  check?: (t: Tool, stdout: string) => Promise<string | undefined> | string | undefined,
): Promise<void> {
  for (const t of ctx.tools) {
    const c = command(t);
    let m: Measure;
    if (typeof c === "string") m = { wall: Number.NaN, cpu: Number.NaN, rssKiB: 0, ok: false, note: c };
    else {
      if (ctx.cache === "cold") dropCaches();
      else sync();
      m = measure(c);
      if (m.ok && check) {
        const wrong = await check(t, c.stdout);
        if (wrong) {
          m.ok = false;
          m.note = wrong;
        }
      }
    }
    ctx.results.record(name, t.name, pair, m);
    log(
      `${ctx.label} ${pair + 1}/${ctx.pairs}  ${name.padEnd(26)} ${t.name.padEnd(8)} ${m.wall.toFixed(2).padStart(7)} s ${m.cpu.toFixed(2).padStart(7)} cpu ${(m.rssKiB / 1024).toFixed(0).padStart(5)} MiB${m.ok ? "" : `  FAILED: ${m.note}`}`,
    );
  }
}

function paths(ctx: PairContext, t: Tool, repoSuffix = "") {
  return {
    repo: path.join(ctx.work, `repo-${t.name}${repoSuffix}`),
    home: path.join(ctx.work, `home-${t.name}`),
    out: path.join(ctx.work, `out-${t.name}.txt`),
    target: path.join(ctx.work, `restore-${t.name}`),
  };
}

function cmd(ctx: PairContext, t: Tool, argv: string[], cwd?: string): Command {
  const p = paths(ctx, t);
  return { argv, env: toolEnv(p.home), stdout: p.out, ...(cwd ? { cwd } : {}) };
}

async function freshWork(ctx: PairContext): Promise<void> {
  ctx.trash.discard(ctx.work);
  await fs.mkdir(ctx.work, { recursive: true });
  for (const t of ctx.tools) await fs.mkdir(paths(ctx, t).home, { recursive: true });
}

/** Snapshot refs of a tool's repository, or why there are none (not measured). */
function refsOf(ctx: PairContext, t: Tool, repo: string): string[] | string {
  try {
    return t.snapshots(repo, toolEnv(paths(ctx, t).home));
  } catch (e) {
    return `could not list snapshots: ${(e as Error).message.split("\n")[0]}`;
  }
}

/** Restores into a fresh folder; the check compares the restored tree with the expected one. */
function restoreStep(
  ctx: PairContext,
  t: Tool,
  repo: string,
  ref: string | undefined,
  sparse: boolean,
): Command | string {
  if (ref === undefined) return "no snapshot to restore (the backup failed)";
  const p = paths(ctx, t);
  ctx.trash.discard(p.target);
  spawnSync("mkdir", ["-p", p.target]);
  const r = t.restore(repo, ref, p.target, sparse);
  return cmd(ctx, t, r.argv, r.cwd);
}

/** Where a tool put `src` when restoring into `target` (all three recreate the absolute path). */
function restoredPath(target: string, src: string): string {
  return path.join(target, src.replace(/^\//, ""));
}

function verify(restored: string, expected: TreeSummary): { wrong?: string; summary?: TreeSummary } {
  let got: TreeSummary;
  try {
    got = summarize(restored);
  } catch (e) {
    return { wrong: `restored tree unreadable: ${(e as Error).message}` };
  }
  if (got.hash !== expected.hash)
    return {
      wrong: `restored tree differs from the source (${got.files} files, ${got.bytes} bytes; expected ${expected.files}, ${expected.bytes})`,
      summary: got,
    };
  return { summary: got };
}

/** State kept across the pairs of one profile: the changed tree's summary, computed once. */
export interface TreeState {
  changed?: TreeSummary;
  sourceChecked?: boolean;
}

/**
 * One pair of a tree profile: init, first backup, unchanged re-backup, the profile's change,
 * backup after it, restore of that snapshot (verified), `ls -l` of it, `find` of one name in it,
 * `diff` of the first and last snapshot, check with a full data read, repository size. The
 * dataset's change is undone at the end, even when a step throws.
 */
export async function treePair(
  ctx: PairContext,
  p: TreeProfile,
  ds: Dataset,
  pair: number,
  state: TreeState,
): Promise<void> {
  await freshWork(ctx);
  // Warm: read every byte of the source first (and check it is the tree the manifest describes).
  if (ctx.cache === "warm" || !state.sourceChecked) {
    log(`${ctx.label} ${pair + 1}/${ctx.pairs}  reading the source`);
    const s = summarize(ds.root);
    if (s.hash !== ds.summary.hash)
      throw new Error(`the cached dataset ${ds.root} is not what its manifest says; delete it and run again`);
    state.sourceChecked = true;
  }
  const src = ds.root;
  const repo = (t: Tool) => paths(ctx, t).repo;
  await step(ctx, pair, "init", (t) => cmd(ctx, t, t.init(repo(t))));
  await step(ctx, pair, "first backup", (t) => cmd(ctx, t, t.backup(repo(t), src, 1)));
  await step(ctx, pair, "unchanged re-backup", (t) => cmd(ctx, t, t.backup(repo(t), src, 2)));
  const m = new Mutation(ds.marker);
  try {
    await p.mutate(src, m);
    state.changed ??= summarize(src);
    log(`${ctx.label} ${pair + 1}/${ctx.pairs}  changed ${m.changed.size} files`);
    const changed = state.changed;
    await step(ctx, pair, "1% change re-backup", (t) => cmd(ctx, t, t.backup(repo(t), src, 3)));
    const refs = new Map<ToolName, string[] | string>();
    for (const t of ctx.tools) refs.set(t.name, refsOf(ctx, t, repo(t)));
    const ref = (t: Tool, i: number): string | undefined => {
      const r = refs.get(t.name);
      return Array.isArray(r) && r.length === 3 ? r[i] : undefined;
    };
    const missing = (t: Tool) => {
      const r = refs.get(t.name)!;
      return typeof r === "string" ? r : `expected 3 snapshots, found ${r.length}`;
    };
    await step(
      ctx,
      pair,
      "restore (verified)",
      (t) => restoreStep(ctx, t, repo(t), ref(t, 2), false),
      (t) => {
        const target = paths(ctx, t).target;
        const v = verify(restoredPath(target, src), changed);
        ctx.trash.discard(target);
        return v.wrong;
      },
    );
    await step(
      ctx,
      pair,
      "ls -l (whole snapshot)",
      (t) => (ref(t, 2) ? cmd(ctx, t, t.ls(repo(t), ref(t, 2)!)) : missing(t)),
      (_t, out) => {
        const n = lineCount(out);
        return n < changed.files ? `listed ${n} lines for ${changed.files} files` : undefined;
      },
    );
    const stem = p.findPattern.replace(/\*.*$/, "");
    await step(
      ctx,
      pair,
      "find (one name)",
      (t) => (ref(t, 2) ? cmd(ctx, t, t.find(repo(t), ref(t, 2)!, p.findPattern)) : missing(t)),
      (_t, out) => (readFileSync(out, "utf8").includes(stem) ? undefined : `${stem} not in the output`),
    );
    await step(
      ctx,
      pair,
      "diff first..last",
      (t) => (ref(t, 0) && ref(t, 2) ? cmd(ctx, t, t.diff(repo(t), ref(t, 0)!, ref(t, 2)!)) : missing(t)),
      (_t, out) => {
        const n = lineCount(out);
        return n < m.changed.size ? `printed ${n} lines for ${m.changed.size} changed files` : undefined;
      },
    );
    await step(ctx, pair, "check --read-data", (t) => cmd(ctx, t, t.check(repo(t))));
    for (const t of ctx.tools) {
      const size = repoMiB(repo(t));
      if (size !== undefined) ctx.results.recordExtra("repository size", t.name, pair, size);
    }
  } finally {
    await m.undo();
    ctx.trash.discard(ctx.work);
  }
}

/**
 * One pair of the zeros profile: for each file, a fresh repository per tool (init not measured),
 * backup, restore (verified; borg with --sparse, lifeboat always makes holes, restic 0.14
 * cannot), the repository's size and what the restored file takes on disk.
 */
export async function zerosPair(ctx: PairContext, p: ZerosProfile, ds: Dataset, pair: number): Promise<void> {
  await freshWork(ctx);
  try {
    for (const c of p.cases) {
      const src = path.join(ds.root, c.folder);
      const expected = ds.parts[c.folder]!;
      // Warm: read the file first; either way, check it is what the manifest describes.
      if ((ctx.cache === "warm" || pair === 0) && summarize(src).hash !== expected.hash)
        throw new Error(`the cached dataset ${src} is not what its manifest says; delete it and run again`);
      const repo = (t: Tool) => paths(ctx, t, `-${c.folder}`).repo;
      const initFailed = new Map<ToolName, string>();
      for (const t of ctx.tools) {
        const r = measure(cmd(ctx, t, t.init(repo(t))));
        if (!r.ok) initFailed.set(t.name, `init failed: ${r.note}`);
      }
      await step(
        ctx,
        pair,
        `${c.label}: backup`,
        (t) => initFailed.get(t.name) ?? cmd(ctx, t, t.backup(repo(t), src, 1)),
      );
      const refs = new Map<ToolName, string | undefined>();
      for (const t of ctx.tools) {
        const r = refsOf(ctx, t, repo(t));
        refs.set(t.name, Array.isArray(r) ? r[0] : undefined);
      }
      await step(
        ctx,
        pair,
        `${c.label}: restore (verified)`,
        (t) => restoreStep(ctx, t, repo(t), refs.get(t.name), true),
        (t) => {
          const target = paths(ctx, t).target;
          const v = verify(restoredPath(target, src), expected);
          if (v.summary)
            ctx.results.recordExtra(`restored on disk, ${c.label}`, t.name, pair, v.summary.allocated / MiB);
          ctx.trash.discard(target);
          return v.wrong;
        },
      );
      for (const t of ctx.tools) {
        const size = repoMiB(repo(t));
        if (size !== undefined) ctx.results.recordExtra(`repository size, ${c.label}`, t.name, pair, size);
        ctx.trash.discard(repo(t));
      }
    }
  } finally {
    ctx.trash.discard(ctx.work);
  }
}

/** A repository's size in MiB, or nothing when the tool never made one. */
function repoMiB(repo: string): number | undefined {
  try {
    return sizeOf(repo) / MiB;
  } catch {
    return undefined;
  }
}
