/**
 * `npm run bench [-- --profile small|default|large] [--tools lifeboat,restic,borg] [--dir DIR]
 *  [--no-write]`: runs the same backup workload with lifeboat, restic and borg on this machine,
 * step by step and side by side, and writes the table into docs/benchmarks.md.
 * Steps: init, first backup, unchanged re-backup, backup after ~1% change, full restore (then
 * verified against the source), check with a full data read, repository size.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { promises as fs, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { generate, mutate, PROFILES } from "./dataset.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const projectRoot = path.resolve(here, "..", "..");
const cli = path.join(projectRoot, "dist", "src", "cli", "main.js");

interface Measure {
  wall: number;
  cpu: number;
  maxRssKiB: number;
  ok: boolean;
  note?: string;
}

interface Tool {
  name: string;
  version(): string;
  init(repo: string): string[];
  backup(repo: string, src: string, n: number): string[];
  restore(repo: string, target: string, n: number): { argv: string[]; cwd?: string };
  check(repo: string): string[];
}

const env = {
  ...process.env,
  RESTIC_PASSWORD: "bench-password",
  BORG_PASSPHRASE: "bench-password",
  LIFEBOAT_PASSWORD: "bench-password",
  BORG_RELOCATED_REPO_ACCESS_IS_OK: "yes",
  BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: "yes",
  BORG_BASE_DIR: "",
  RESTIC_CACHE_DIR: "",
};

const tools: Record<string, Tool> = {
  lifeboat: {
    name: "lifeboat",
    version: () =>
      `lifeboat ${JSON.parse(readFileSync(path.join(projectRoot, "package.json"), "utf8")).version}`,
    init: (repo) => [process.execPath, cli, "-r", repo, "init", "-q"],
    backup: (repo, src) => [process.execPath, cli, "-r", repo, "backup", "-q", src],
    restore: (repo, target) => ({
      argv: [process.execPath, cli, "-r", repo, "restore", "latest", "--target", target, "-q"],
    }),
    check: (repo) => [process.execPath, cli, "-r", repo, "check", "--read-data", "-q"],
  },
  restic: {
    name: "restic",
    version: () => execFileSync("restic", ["version"], { encoding: "utf8" }).split(" compiled")[0]!.trim(),
    init: (repo) => ["restic", "-r", repo, "init", "-q"],
    backup: (repo, src) => ["restic", "-r", repo, "backup", "-q", src],
    restore: (repo, target) => ({
      argv: ["restic", "-r", repo, "restore", "latest", "--target", target, "-q"],
    }),
    check: (repo) => ["restic", "-r", repo, "check", "--read-data", "-q"],
  },
  borg: {
    name: "borg",
    version: () => execFileSync("borg", ["--version"], { encoding: "utf8" }).trim(),
    init: (repo) => ["borg", "init", "-e", "repokey", repo],
    backup: (repo, src, n) => ["borg", "create", "--compression", "zstd,3", `${repo}::s${n}`, src],
    restore: (repo, target, n) => ({ argv: ["borg", "extract", `${repo}::s${n}`], cwd: target }),
    check: (repo) => ["borg", "check", "--verify-data", repo],
  },
};

function ensureInstalled(): void {
  const missing: string[] = [];
  const has = (cmd: string) => spawnSync("sh", ["-c", `command -v ${cmd}`]).status === 0;
  if (!has("restic")) missing.push("restic");
  if (!has("borg")) missing.push("borgbackup");
  if (!existsSync("/usr/bin/time")) missing.push("time");
  if (missing.length === 0) return;
  console.error(`installing ${missing.join(", ")} from Debian packages...`);
  spawnSync("apt-get", ["update", "-qq"], { stdio: "inherit" });
  const r = spawnSync("apt-get", ["install", "-y", "-qq", ...missing], {
    stdio: "inherit",
    env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
  });
  if (r.status !== 0) throw new Error(`could not install ${missing.join(", ")}`);
}

function existsSync(p: string): boolean {
  try {
    readFileSync(p, { flag: "r" });
    return true;
  } catch {
    return false;
  }
}

function dropCaches(): void {
  spawnSync("sh", ["-c", "sync; echo 3 > /proc/sys/vm/drop_caches"], { stdio: "ignore" });
}

/** Runs a command under GNU time: wall seconds, user+system CPU seconds, peak RSS. */
function measure(argv: string[], cwd?: string): Measure {
  const out = path.join(os.tmpdir(), `lifeboat-bench-time-${process.pid}`);
  const r = spawnSync("/usr/bin/time", ["-f", "%e %U %S %M", "-o", out, ...argv], {
    env,
    cwd,
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
  });
  const [e, u, s, m] = readFileSync(out, "utf8").trim().split("\n").at(-1)!.split(" ").map(Number);
  const ok = r.status === 0;
  return {
    wall: e!,
    cpu: u! + s!,
    maxRssKiB: m!,
    ok,
    ...(ok ? {} : { note: (r.stderr || r.stdout).trim().split("\n").slice(-2).join(" ").slice(0, 200) }),
  };
}

async function dirSize(dir: string): Promise<number> {
  let total = 0;
  const walk = async (d: string) => {
    for (const e of await fs.readdir(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) total += (await fs.stat(p)).size;
    }
  };
  await walk(dir);
  return total;
}

/** A digest of a tree: relative paths, and the SHA-256 of every file's content. */
async function treeDigest(root: string): Promise<string> {
  const h = createHash("sha256");
  const walk = async (d: string, rel: string) => {
    const entries = (await fs.readdir(d, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const e of entries) {
      const p = path.join(d, e.name);
      const r = `${rel}/${e.name}`;
      if (e.isDirectory()) await walk(p, r);
      else if (e.isFile())
        h.update(
          `${r}\0${createHash("sha256")
            .update(await fs.readFile(p))
            .digest("hex")}\n`,
        );
    }
  };
  await walk(root, "");
  return h.digest("hex");
}

const STEPS = [
  "init",
  "first backup",
  "unchanged re-backup",
  "1% change re-backup",
  "restore (verified)",
  "check --read-data",
];

/** Where lifeboat's time goes, written under the table (keep it true when the pipeline changes). */
const HOW_IT_WORKS = [
  "## Where the time goes",
  "",
  "- **Backup.** The main thread walks the tree (`lstat`), takes unchanged files from the parent",
  "  snapshot's metadata without reading them, reuses the tree of every unchanged folder, and",
  "  encrypts and uploads packs (two uploads overlap the next packs). Worker threads, one per core,",
  "  read the files: small ones whole, large ones cut by FastCDC, each chunk hashed (HMAC-SHA-256)",
  "  and compressed (zstd 3); a large file's worker runs at most 8 chunks ahead of the packer.",
  "- **Restore.** The main thread walks the trees and reads packs (4 MiB windows for small blobs,",
  "  exact reads for large ones). Workers decrypt, decompress and verify every blob against its",
  "  keyed id, then write: small files whole (temporary file, owner, mode, times, rename), large",
  "  ones blob by blob at their offsets, runs of zeroes left as holes. The keyed-id check and the",
  "  rename into place cost CPU that restic does not spend; they are why a crash or a damaged",
  "  blob never leaves a wrong or half-written file.",
  "- **check --read-data.** Four packs in flight; workers verify every blob and each pack's SHA-256.",
  "- **Memory.** Three V8 isolates (main and two workers) take ~78 MiB before any data; the main",
  "  thread's live data stays under ~150 MiB (pack buffers, uploads in flight); the rest of the",
  "  peak RSS is buffers freed but not yet returned by the allocator.",
  "- **Index.** `npm run bench:index` measures the in-memory index: 63.8 bytes per blob at",
  "  10 million blobs.",
];

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const opt = (name: string, def: string) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 && args[i + 1] ? args[i + 1]! : def;
  };
  const profile = PROFILES[opt("profile", "default")];
  if (!profile) throw new Error(`unknown profile; use one of ${Object.keys(PROFILES).join(", ")}`);
  const names = opt("tools", "lifeboat,restic,borg").split(",");
  const work = opt("dir", path.join(os.tmpdir(), "lifeboat-bench"));
  const write = !args.includes("--no-write");
  ensureInstalled();
  await fs.rm(work, { recursive: true, force: true });
  const src = path.join(work, "data");
  console.error(`generating the "${profile.name}" dataset in ${src} ...`);
  await generate(src, profile);
  const logical = await dirSize(src);
  const srcDigest0 = await treeDigest(src);

  const results: Record<string, Record<string, Measure>> = {};
  const sizes: Record<string, number> = {};
  for (const n of names) results[n] = {};
  const run = (step: string, f: (t: Tool) => Measure) => {
    for (const n of names) {
      dropCaches();
      const m = f(tools[n]!);
      results[n]![step] = m;
      console.error(
        `${step.padEnd(22)} ${n.padEnd(9)} ${m.wall.toFixed(2)}s wall ${m.cpu.toFixed(2)}s cpu ${(m.maxRssKiB / 1024).toFixed(0)} MiB${m.ok ? "" : ` FAILED ${m.note}`}`,
      );
    }
  };
  const repo = (n: string) => path.join(work, `repo-${n}`);
  run("init", (t) => measure(t.init(repo(t.name))));
  run("first backup", (t) => measure(t.backup(repo(t.name), src, 1)));
  run("unchanged re-backup", (t) => measure(t.backup(repo(t.name), src, 2)));
  await mutate(src, profile);
  const srcDigest = await treeDigest(src);
  if (srcDigest === srcDigest0) throw new Error("mutate() changed nothing");
  run("1% change re-backup", (t) => measure(t.backup(repo(t.name), src, 3)));
  run("restore (verified)", (t) => {
    const target = path.join(work, `restore-${t.name}`);
    spawnSync("mkdir", ["-p", target]);
    const r = t.restore(repo(t.name), target, 3);
    const m = measure(r.argv, r.cwd);
    return m;
  });
  for (const n of names) {
    const restored = path.join(work, `restore-${n}`, src.replace(/^\//, ""));
    const same = (await treeDigest(restored).catch(() => "missing")) === srcDigest;
    const m = results[n]!["restore (verified)"]!;
    if (!same) {
      m.ok = false;
      m.note = "restored tree differs from the source";
    }
    console.error(`restore of ${n} ${same ? "matches" : "DOES NOT match"} the source`);
    await fs.rm(path.join(work, `restore-${n}`), { recursive: true, force: true });
  }
  run("check --read-data", (t) => measure(t.check(repo(t.name))));
  for (const n of names) sizes[n] = await dirSize(repo(n));

  const md = report(profile.name, logical, names, results, sizes);
  console.log(md);
  if (write) {
    await fs.writeFile(path.join(projectRoot, "docs", "benchmarks.md"), md);
    console.error("written to docs/benchmarks.md");
  }
  if (!args.includes("--keep")) await fs.rm(work, { recursive: true, force: true });
}

function report(
  profile: string,
  logical: number,
  names: string[],
  results: Record<string, Record<string, Measure>>,
  sizes: Record<string, number>,
): string {
  const cpu = os.cpus()[0]?.model ?? "unknown CPU";
  const versions = names.map((n) => tools[n]!.version()).join(", ");
  const mib = (b: number) => (b / 1048576).toFixed(1);
  const ratio = (a: number | undefined, b: number | undefined) => (a && b ? (a / b).toFixed(2) : "n/a");
  const others = names.filter((n) => n !== "lifeboat");
  const lines: string[] = [
    "# Benchmarks",
    "",
    `Measured by \`npm run bench -- --profile ${profile}\` on ${new Date().toISOString().slice(0, 10)}:`,
    `${os.cpus().length} × ${cpu}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM, ${os.type()} ${os.release()}, Node ${process.version}; ${versions}.`,
    `Dataset "${profile}": ${mib(logical)} MiB logical (mail-like small files, incompressible big files, JSON logs, a paged database file, an exact and a shifted copy). Page cache dropped before every step. borg uses zstd,3; restic its default (auto).`,
    "",
    "Wall and CPU time in seconds, peak memory (RSS) in MiB. Ratios are lifeboat / other, measured in the same run: below 1.00 means lifeboat is faster or smaller.",
    "",
  ];
  const head = [
    "step",
    ...names.flatMap((n) => [`${n} wall`, `${n} cpu`, `${n} MiB`]),
    ...others.map((o) => `wall ÷ ${o}`),
    ...others.map((o) => `mem ÷ ${o}`),
  ];
  lines.push(`| ${head.join(" | ")} |`, `|${head.map(() => "---").join("|")}|`);
  for (const step of STEPS) {
    const row = [step];
    for (const n of names) {
      const m = results[n]![step];
      row.push(
        m ? `${m.wall.toFixed(2)}${m.ok ? "" : " (failed)"}` : "-",
        m ? m.cpu.toFixed(2) : "-",
        m ? (m.maxRssKiB / 1024).toFixed(0) : "-",
      );
    }
    const l = results.lifeboat?.[step];
    for (const o of others) row.push(ratio(l?.wall, results[o]![step]?.wall));
    for (const o of others) row.push(ratio(l?.maxRssKiB, results[o]![step]?.maxRssKiB));
    lines.push(`| ${row.join(" | ")} |`);
  }
  const sizeRow = [
    "repository size (MiB)",
    ...names.flatMap((n) => [mib(sizes[n] ?? 0), "", ""]),
    ...others.map((o) => ratio(sizes.lifeboat, sizes[o])),
    ...others.map(() => ""),
  ];
  lines.push(`| ${sizeRow.join(" | ")} |`);
  const failures = names.flatMap((n) =>
    STEPS.filter((s) => results[n]![s] && !results[n]![s]!.ok).map(
      (s) => `- ${n}, ${s}: ${results[n]![s]!.note}`,
    ),
  );
  if (failures.length > 0) lines.push("", "Failures:", ...failures);
  lines.push("", ...HOW_IT_WORKS, "");
  return lines.join("\n");
}

await main();
