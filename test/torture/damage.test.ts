/**
 * Damaged objects: for every kind of object in a repository (config, key, pack, index, snapshot,
 * prune plan, session, drill, ack, archived WAL record, SQLite segment inline, as blobs or of the
 * layout before levels, SQLite catalog), flip a bit, truncate it, delete it, or replace it with
 * another object of the same kind. Then `check --read-data` must
 * find it and name it (and what needs it), every restore must fail on exactly the damaged files
 * and restore the rest byte for byte (never a wrong byte silently), archived WAL must fetch or
 * fail clearly, and nothing may crash or hang. What cannot be found by design is listed in
 * BY_DESIGN (and in docs/reliability.md).
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { promises as fs } from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import Database from "better-sqlite3";
import { diffDescriptions, removeTempDir, tempDir, treeEntries } from "../support/cli.js";
import { buildGolden, GOLDEN_PW, type Golden, KINDS } from "./golden.js";
import {
  copyTree,
  envFor,
  FULL,
  figure,
  type HookedRun,
  lb,
  PROFILE,
  rng,
  SEED,
  sized,
  rounds as sizedRounds,
  timeUp,
} from "./support.js";

type Damage = "flip" | "truncate" | "delete" | "replace";
const DAMAGES: Damage[] = ["flip", "truncate", "delete", "replace"];

/**
 * Damage that check cannot tell from an intended state, by design: a deleted snapshot is a
 * forgotten one, a deleted drill or ack one that was never made, a deleted session a backup that
 * ended, a deleted plan one that was never written (the next prune marks again).
 */
export const BY_DESIGN: Record<string, string> = {
  "snapshots/delete": "a deleted snapshot looks like a forgotten one",
  "drills/delete": "a deleted drill record looks like a drill never run (status then says so)",
  "acks/delete": "a deleted acknowledgement makes the snapshot flagged again (fail-safe)",
  "sessions/delete": "a deleted session looks like a backup that ended",
  "gc/delete": "a deleted plan looks like one never written; the next prune marks again",
  "keys/delete":
    "a deleted key file of another password looks like a key removed with `key remove`: that password no longer opens the repository; the one check runs with is checked (deleting it makes every command fail to open)",
  "wal/delete":
    "a deleted WAL record looks like a file never archived; `lifeboat pg check` finds the gap it leaves in the chain (not after the newest file)",
};

/** Damage found only where it is not the last of its series (docs/reliability.md). */
const NEWEST_ONLY_BY_DESIGN: Record<string, string> = {
  "sqlite-wal/delete": "the newest segment of a generation deleted looks like one not shipped yet",
  "sqlite-seg/delete":
    "the newest segment of a generation, if its catalog does not list it yet, deleted looks like one not shipped yet",
  "sqlite-segref/delete":
    "the newest segment of a generation, if its catalog does not list it yet, deleted looks like one not shipped yet",
};

let base: string;
let golden: Golden;

before(async () => {
  base = await tempDir("lifeboat-torture-damage-");
  golden = await buildGolden(base);
});
after(async () => {
  if (base) await removeTempDir(base);
});

interface Case {
  folder: string;
  damage: Damage;
  object: string;
}

interface Outcome extends Case {
  kind: string;
  checkExit: number;
  named: boolean;
  dependents: boolean;
  checkMessage: string;
  restores: { id: string; exit: number; failedPaths: string[]; message?: string }[];
  walFetch: { name: string; exit: number }[];
  sqliteExit: number;
  pgCheckExit?: number;
  problems: string[];
  /** Wrong bytes restored or fetched without an error: must never happen. */
  wrong: string[];
}

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

async function applyDamage(repo: string, c: Case, r: () => number): Promise<string> {
  const file = path.join(repo, c.object);
  const bytes = await fs.readFile(file);
  switch (c.damage) {
    case "flip": {
      const at = Math.floor(r() * bytes.length);
      const bit = 1 << Math.floor(r() * 8);
      bytes[at]! ^= bit;
      await fs.writeFile(file, bytes);
      return `bit ${Math.log2(bit)} of byte ${at} of ${bytes.length}`;
    }
    case "truncate": {
      const keep = Math.floor(r() * bytes.length);
      await fs.truncate(file, keep);
      return `kept ${keep} of ${bytes.length} bytes`;
    }
    case "delete":
      await fs.rm(file);
      return "deleted";
    case "replace": {
      // Another object of the same kind: of this repository, or (the config) of an unrelated one.
      const same = (golden.objects.get(c.folder) ?? []).filter((o) => o !== c.object);
      const from =
        c.folder === "config"
          ? path.join(base, "other", "config")
          : path.join(golden.repo, same[Math.floor(r() * same.length)]!);
      await fs.copyFile(from, file);
      return `replaced by ${path.relative(base, from)}`;
    }
  }
}

async function judge(c: Case, r: () => number, fullRestores: boolean): Promise<Outcome> {
  const work = path.join(base, `case-${c.folder}-${c.damage}-${Math.floor(r() * 1e9)}`);
  await copyTree(golden.repo, work);
  const env = envFor(work, GOLDEN_PW);
  const detail = await applyDamage(work, c, r);
  const id = c.object.split("/").at(-1)!;
  const out: Outcome = {
    ...c,
    kind: KINDS[c.folder]!,
    checkExit: 0,
    named: false,
    dependents: false,
    checkMessage: detail,
    restores: [],
    walFetch: [],
    sqliteExit: 0,
    problems: [],
    wrong: [],
  };
  const noCrash = (x: HookedRun) => {
    if (/unexpected error|^\s+at .+:\d+:\d+\)?$/m.test(x.stderr))
      out.wrong.push(`${x.cmd} crashed: ${x.stderr.slice(0, 300)}`);
  };
  try {
    // check --read-data: finds it, names it, says what needs it.
    const ck = await lb(["check", "--read-data", "--json"], { env, timeoutMs: 180_000 });
    noCrash(ck);
    out.checkExit = ck.code;
    const text = ck.stdout + ck.stderr;
    out.named =
      text.includes(c.object) || text.includes(id) || (c.folder === "config" && /\bconfig\b/.test(ck.stderr));
    const summary = ck.stdout
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((m) => m.message_type === "summary");
    const problems = (summary?.problems ?? []) as {
      object: string;
      message: string;
      affected: unknown[];
      neededBy?: string[];
    }[];
    out.problems = problems.map((p) => `${p.object}: ${p.message}`);
    out.dependents = problems.some((p) => p.affected.length > 0 || (p.neededBy ?? []).length > 0);
    if (!summary) out.checkMessage += ` | ${ck.stderr.trim().split("\n")[0]}`;

    // Restores: exactly the damaged files fail, the rest is byte for byte right.
    const ids = [...golden.files.keys()];
    const chosen = fullRestores ? ids : [ids[Math.floor(r() * ids.length)]!, ids.at(-1)!];
    for (const sid of new Set(chosen)) {
      const { state, path: srcPath } = golden.files.get(sid)!;
      const target = path.join(work, "..", `${path.basename(work)}-restore-${sid.slice(0, 8)}`);
      const x = await lb(["restore", sid, "--target", target, "--json"], { env, timeoutMs: 180_000 });
      noCrash(x);
      const failed: string[] = [];
      const s = x.stdout
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .find((m) => m.message_type === "summary");
      for (const e of (s?.errors ?? []) as { path: string }[]) failed.push(e.path);
      out.restores.push({
        id: sid,
        exit: x.code,
        failedPaths: failed,
        ...(x.code !== 0 ? { message: x.stderr.trim().split("\n")[0] } : {}),
      });
      if (s) {
        // Whatever restored must be right; what failed must be absent (never a wrong byte).
        const root = path.join(target, srcPath);
        const want = await treeEntries(state);
        const got = await treeEntries(root).catch(() => new Map<string, string>());
        const rel = (p: string) => path.relative(srcPath.slice(1), p).split(path.sep).join("/");
        const failedRel = failed.map((p) => (p === "." ? "" : rel(p)));
        const under = (k: string) => failedRel.some((f) => f === "" || k === f || k.startsWith(`${f}/`));
        const diff = diffDescriptions(
          new Map([...want].filter(([k]) => !under(k))),
          new Map([...got].filter(([k]) => !under(k))),
        ).filter((l) => !/^differs "([^"]*)":\n\s+expected dir/.test(l)); // a folder's mtime changes when a file in it fails
        if (diff.length > 0)
          out.wrong.push(
            `restore ${sid.slice(0, 8)} (exit ${x.code}): ${diff.length} wrong or missing beyond ${failed.length} reported: ${diff.slice(0, 3).join("; ")}`,
          );
        for (const [k, v] of got)
          if (under(k) && v.startsWith("file") && want.get(k) !== v)
            out.wrong.push(`restore ${sid.slice(0, 8)}: ${k} has wrong bytes`);
      }
      await removeTempDir(target);
    }
    // Archived WAL: fetches right or fails clearly.
    for (const [name, digest] of golden.wal) {
      const dest = path.join(base, `fetch-${name}-${Math.floor(r() * 1e9)}`);
      const f = await lb(["pg", "wal-fetch", name, dest], { env, timeoutMs: 120_000 });
      noCrash(f);
      out.walFetch.push({ name, exit: f.code });
      if (f.code === 0 && sha(await fs.readFile(dest)) !== digest)
        out.wrong.push(`wal-fetch ${name} returned wrong bytes`);
      await fs.rm(dest, { force: true });
    }
    // The archive's own check finds a gap in the WAL chain.
    if (c.folder === "wal") {
      const pc = await lb(["pg", "check"], { env, timeoutMs: 120_000 });
      noCrash(pc);
      out.pgCheckExit = pc.code;
    }
    // The replicated database, latest and at a time in the first generation: restores whole or
    // fails clearly (a segment not found by design may only take the newest rows away).
    const newestGone = c.damage === "delete" && golden.newestSegments.has(c.object);
    for (const [time, rows] of [
      [undefined, golden.sqlite.rows],
      [golden.sqlite.firstTime, golden.sqlite.firstRows],
    ] as const) {
      const db = path.join(base, `sqlite-${Math.floor(r() * 1e9)}.db`);
      const q = await lb(
        ["restore", `sqlite:${golden.sqlite.file}`, "--target", db, ...(time ? ["--time", time] : [])],
        { env, timeoutMs: 120_000 },
      );
      noCrash(q);
      out.sqliteExit = Math.max(out.sqliteExit, q.code);
      if (q.code === 0) {
        const got = new Database(db, { readonly: true });
        const n = (got.prepare("SELECT count(*) AS n FROM t").get() as { n: number }).n;
        got.close();
        if (n !== rows && !(newestGone && n < rows))
          out.wrong.push(`restore sqlite:${time ? ` --time ${time}` : ""} holds ${n} rows, not ${rows}`);
      }
      await fs.rm(db, { force: true });
    }
  } finally {
    await removeTempDir(work);
  }
  return out;
}

test("every object kind damaged four ways: check finds and names it, restores fail exactly there", async () => {
  const r = rng(`${SEED}/damage`);
  const cases: Case[] = [];
  // LIFEBOAT_TORTURE_KINDS=sqlite-seg,sqlite-gen: only those kinds (folders), to study them.
  const only = process.env.LIFEBOAT_TORTURE_KINDS?.split(",");
  for (const folder of Object.keys(KINDS).filter((k) => !only || only.includes(k))) {
    const objs = golden.objects.get(folder)!;
    // Quick: one damage per kind (which one turns with the seed); full: all four, on up to 3 objects.
    const damages = sized([DAMAGES[Math.floor(r() * DAMAGES.length)]!], DAMAGES);
    const perDamage = Math.min(sizedRounds(1, 3), objs.length);
    for (const damage of damages)
      for (let k = 0; k < perDamage; k++)
        cases.push({ folder, damage, object: objs[Math.floor(r() * objs.length)]! });
  }
  // Damage by damage, so a run cut short by LIFEBOAT_TORTURE_DEADLINE has covered every kind.
  cases.sort((a, b) => DAMAGES.indexOf(a.damage) - DAMAGES.indexOf(b.damage));
  const outcomes: Outcome[] = [];
  for (const c of cases) {
    if (timeUp()) break;
    // Every snapshot restored where damage can reach file data; two otherwise.
    const o = await judge(c, r, FULL && ["data", "index", "snapshots", "config", "keys"].includes(c.folder));
    outcomes.push(o);
    console.log(`# ${JSON.stringify(row(o))}`);
  }
  const rows = outcomes.map(row);
  await figure("damage", { cases: rows.length, planned: cases.length, rows });
  assert.deepEqual(
    outcomes.flatMap((o) => o.wrong.map((w) => `${o.kind} ${o.damage} (${o.object}): ${w}`)),
    [],
    "wrong bytes restored or fetched without an error",
  );
  // Found: check fails and names the object (a deleted one cannot always be named: then the
  // problem must say what is missing).
  const missed = outcomes.filter(
    (o) =>
      !(`${o.folder}/${o.damage}` in BY_DESIGN) &&
      !(`${o.folder}/${o.damage}` in NEWEST_ONLY_BY_DESIGN && golden.newestSegments.has(o.object)) &&
      // An index file whose every blob another index file also lists (a blob stored twice, after
      // a kill or beside a prune): deleting it loses nothing, and every restore must succeed.
      !(
        o.folder === "index" &&
        o.damage === "delete" &&
        o.checkExit === 0 &&
        o.restores.every((x) => x.exit === 0)
      ) &&
      !(o.checkExit !== 0 && (o.named || (o.damage === "delete" && o.problems.length > 0))),
  );
  assert.deepEqual(
    missed.map(
      (o) =>
        `${o.kind} ${o.damage} (${o.object}): check exit ${o.checkExit}, named ${o.named}; ${o.checkMessage}`,
    ),
    [],
    `check --read-data missed damage (${PROFILE}, seed ${SEED})`,
  );
});

function row(o: Outcome) {
  return {
    kind: o.kind,
    damage: o.damage,
    object: o.object,
    check: o.checkExit,
    named: o.named,
    dependents: o.dependents,
    restores: o.restores
      .map((x) => `${x.exit}${x.failedPaths.length ? `(${x.failedPaths.length} failed)` : ""}`)
      .join(" "),
    wal: o.walFetch.map((w) => w.exit).join(" "),
    sqlite: o.sqliteExit,
    ...(o.pgCheckExit !== undefined ? { pgCheck: o.pgCheckExit } : {}),
    note: o.checkMessage,
    problems: o.problems.slice(0, 3),
    wrong: o.wrong,
  };
}
