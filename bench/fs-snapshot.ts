/**
 * `node dist/bench/fs-snapshot.js [--files 10000] [--runs 7] [--nested 4] [--mib 2048]` (as
 * root): what freezing with `backup --fs-snapshot btrfs` costs, on a btrfs in a loop file
 * (made here, removed at the end). Prints the median and worst freeze time reported by the
 * backup (`fs_snapshot.freeze_ms`) for FILES small files in one subvolume, idle and while a
 * writer keeps 64 MiB of data dirty; the same with NESTED nested subvolumes; the wall time of
 * an unchanged re-backup with and without the snapshot; and how long the instant rollback of a
 * failed guard (reflink copies from the kept snapshot) takes for those FILES files against a
 * restore of them from the repository.
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const cli = path.join(here, "..", "src", "cli", "main.js");

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : dflt;
}
const FILES = Number(arg("files", "10000"));
const RUNS = Number(arg("runs", "7"));
const NESTED = Number(arg("nested", "4"));
const MIB = Number(arg("mib", "2048"));

const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: "utf8" });

/** Runs lifeboat; exit 4 (a snapshot flagged: the writer's file went away) is fine here. */
function lifeboat(args: string[], env: NodeJS.ProcessEnv, codes = [0, 4]): { ms: number; out: string } {
  const t = performance.now();
  const r = spawnSync(process.execPath, [cli, ...args], { env, encoding: "utf8", maxBuffer: 1 << 28 });
  if (!codes.includes(r.status ?? -1))
    throw new Error(`lifeboat ${args.join(" ")}: exit ${r.status}\n${r.stderr}`);
  return { ms: performance.now() - t, out: r.stdout };
}

const summary = (out: string) =>
  out
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .find((m) => m.message_type === "summary")!;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (x: number) => x.toFixed(1);

async function fill(root: string, files: number): Promise<void> {
  for (let i = 0; i < files; i++) {
    const d = path.join(root, `d${Math.floor(i / 100)}`);
    if (i % 100 === 0) await fs.mkdir(d, { recursive: true });
    await fs.writeFile(path.join(d, `f${i}`), `file ${i} `.repeat(1 + (i % 100)));
  }
}

/** Keeps ~64 MiB of data dirty: rewrites a file in 1 MiB pieces, without fsync. */
function startWriter(file: string): ChildProcess {
  const code = `
    const fs = require("node:fs");
    const fd = fs.openSync(${JSON.stringify(file)}, "w");
    const buf = Buffer.alloc(1 << 20, 7);
    for (let i = 0; ; i = (i + 1) % 64) { buf[0] = i; fs.writeSync(fd, buf, 0, buf.length, i << 20); }`;
  return spawn(process.execPath, ["-e", code], { stdio: "ignore" });
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error("run as root (it mounts a loop device)");
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "lifeboat-bench-fssnap-"));
  const img = path.join(dir, "img");
  const mnt = path.join(dir, "mnt");
  await fs.mkdir(mnt);
  await fs.writeFile(img, "");
  await fs.truncate(img, MIB * 1024 * 1024);
  sh("mkfs.btrfs", ["-q", img]);
  sh("mount", ["-o", "loop", img, mnt]);
  const env = {
    ...process.env,
    LIFEBOAT_REPOSITORY: path.join(dir, "repo"),
    LIFEBOAT_PASSWORD: "bench",
    LIFEBOAT_KDF_N: "1024",
    XDG_STATE_HOME: path.join(dir, "state"),
  };
  const rows: string[][] = [];
  try {
    lifeboat(["init"], env);
    const data = path.join(mnt, "data");
    sh("btrfs", ["subvolume", "create", data]);
    await fill(data, FILES);
    sh("sync", []);
    lifeboat(["backup", data], env);

    const freezes = async (label: string, root: string, during?: () => ChildProcess) => {
      const ms: number[] = [];
      const wall: number[] = [];
      for (let i = 0; i < RUNS; i++) {
        const w = during?.();
        if (w) await new Promise((r) => setTimeout(r, 1000));
        const r = lifeboat(["backup", "--fs-snapshot", "btrfs", root, "--json"], env);
        w?.kill("SIGKILL");
        if (w) await new Promise((r) => w.once("exit", r));
        const s = summary(r.out);
        ms.push((s.fs_snapshot as { freeze_ms: number }).freeze_ms);
        wall.push(r.ms);
      }
      rows.push([label, fmt(median(ms)), fmt(Math.max(...ms)), fmt(median(wall))]);
    };

    await freezes(`${FILES} files, one subvolume, idle`, data);
    await freezes(`${FILES} files, one subvolume, a writer keeping 64 MiB dirty`, data, () =>
      startWriter(path.join(data, "busy")),
    );
    await fs.rm(path.join(data, "busy"), { force: true });
    for (let i = 0; i < NESTED; i++) {
      const n = path.join(data, `d${i}`, `nested${i}`);
      sh("btrfs", ["subvolume", "create", n]);
      await fs.writeFile(path.join(n, "x"), "x");
    }
    lifeboat(["backup", "--fs-snapshot", "btrfs", data], env);
    await freezes(`${FILES} files, ${NESTED} nested subvolumes (${NESTED + 1} snapshots), idle`, data);

    // An unchanged re-backup, with and without the snapshot (wall time, medians).
    const plain: number[] = [];
    for (let i = 0; i < RUNS; i++) plain.push(lifeboat(["backup", data, "--json"], env).ms);
    rows.push([`${FILES} files, unchanged re-backup WITHOUT --fs-snapshot`, "", "", fmt(median(plain))]);

    // The instant rollback of a failed guard against a restore from the repository (guard
    // exits non-zero: its output comes with the error).
    const guardOut = lifeboat(
      [
        "guard",
        "--fs-snapshot",
        "btrfs",
        "--source",
        data,
        "--json",
        "--",
        "sh",
        "-c",
        `rm -r ${data}/d*; exit 1`,
      ],
      env,
      [1],
    ).out;
    const g = summary(guardOut);
    const before = g.before as string;
    const rollback = (g.fs_snapshot as { instant_rollback: string }).instant_rollback;
    let t = performance.now();
    sh("sh", ["-c", rollback]);
    const rollbackMs = performance.now() - t;
    const target = path.join(mnt, "restored");
    t = performance.now();
    lifeboat(["restore", before.slice(0, 8), "--target", target], env);
    const restoreMs = performance.now() - t;
    lifeboat(["ack", before.slice(0, 8)], env);
    rows.push([
      `${FILES} files: instant rollback (reflinks from the kept snapshot)`,
      "",
      "",
      fmt(rollbackMs),
    ]);
    rows.push([`${FILES} files: restore of the same from the repository`, "", "", fmt(restoreMs)]);
  } finally {
    let mounted = true;
    for (let i = 0; i < 40 && mounted; i++) {
      try {
        sh("umount", [mnt]);
        mounted = false;
      } catch {
        await new Promise((r) => setTimeout(r, 250));
      }
    }
    // A straggler still holds a file: detach now, the loop device goes when it lets go.
    if (mounted) sh("umount", ["-l", mnt]);
    await fs.rm(dir, { recursive: true, force: true });
  }
  const load = os
    .loadavg()
    .map((x) => x.toFixed(1))
    .join(" ");
  console.log(
    `Node ${process.version}, ${os.cpus().length} cores, load average ${load}, ${RUNS} runs each\n`,
  );
  console.log("| case | freeze ms, median | freeze ms, worst | backup wall ms, median |");
  console.log("|---|---|---|---|");
  for (const r of rows) console.log(`| ${r.join(" | ")} |`);
}

await main();
