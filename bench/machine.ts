import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { log } from "./log.js";
import { measure } from "./measure.js";

/** restic, borg and GNU time from Debian packages when missing (we are root, as in the tests). */
export function ensureInstalled(): void {
  const missing: string[] = [];
  const has = (cmd: string) => spawnSync("sh", ["-c", `command -v ${cmd}`]).status === 0;
  if (!has("restic")) missing.push("restic");
  if (!has("borg")) missing.push("borgbackup");
  if (!fs.existsSync("/usr/bin/time")) missing.push("time");
  if (missing.length === 0) return;
  log(`installing ${missing.join(", ")} from Debian packages...`);
  spawnSync("apt-get", ["update", "-qq"], { stdio: "inherit" });
  const r = spawnSync("apt-get", ["install", "-y", "-qq", ...missing], {
    stdio: "inherit",
    env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
  });
  if (r.status !== 0) throw new Error(`could not install ${missing.join(", ")}`);
}

/** Flushes dirty pages, then (cold) drops the page cache, dentries and inodes. */
export function sync(): void {
  spawnSync("sync");
}

export function dropCaches(): void {
  const r = spawnSync("sh", ["-c", "sync; echo 3 > /proc/sys/vm/drop_caches"], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`could not drop the page cache: ${r.stderr.trim()}`);
}

/** Whether a cold cache can be had here, and if not, why (said in the output and the report). */
export function canDropCaches(): { ok: true } | { ok: false; why: string } {
  if (process.getuid?.() !== 0) return { ok: false, why: "not root" };
  const r = spawnSync("sh", ["-c", "sync; echo 3 > /proc/sys/vm/drop_caches"], { encoding: "utf8" });
  if (r.status !== 0)
    return { ok: false, why: `writing /proc/sys/vm/drop_caches failed: ${r.stderr.trim()}` };
  return { ok: true };
}

/**
 * Checks that the peak-RSS figure counts worker threads: a Node process whose worker thread
 * fills 256 MiB must report at least that much. Fails loudly if not (a `time` that reports
 * something else, or a kernel that does).
 */
export function checkRssCountsThreads(work: string): void {
  const script =
    "const{Worker}=require('node:worker_threads');new Worker(\"const b=Buffer.alloc(256*1048576,1);setTimeout(()=>{},50)\",{eval:true});";
  const m = measure({
    argv: [process.execPath, "-e", script],
    env: process.env,
    stdout: path.join(work, "rss-probe.out"),
  });
  if (!m.ok || m.rssKiB < 256 * 1024)
    throw new Error(`peak RSS does not count worker threads here (${m.rssKiB} KiB for a 256 MiB worker)`);
}

/** File system type of a folder (a cold cache means nothing on tmpfs). */
export function fsType(dir: string): string {
  const r = spawnSync("stat", ["-f", "-c", "%T", dir], { encoding: "utf8" });
  const t = r.stdout.trim();
  if (t !== "ext2/ext3") return t || "unknown";
  // ext4 reports the ext2/ext3 magic; the mount table says which.
  const mounts = fs
    .readFileSync("/proc/mounts", "utf8")
    .split("\n")
    .map((l) => l.split(" "));
  const real = fs.realpathSync(dir);
  let best: string[] | undefined;
  for (const m of mounts)
    if (
      m[1] &&
      (real === m[1] || real.startsWith(m[1] === "/" ? "/" : `${m[1]}/`)) &&
      (!best || m[1].length > best[1]!.length)
    )
      best = m;
  return best?.[2] ?? t;
}

export function machine(work: string): string {
  const cpu = os.cpus()[0]?.model ?? "unknown CPU";
  return `${os.cpus().length} × ${cpu}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM, ${os.type()} ${os.release()}, ${fsType(work)}, Node ${process.version}`;
}

export function loadAverage(): string {
  return os
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(" ");
}

export function gitDescribe(root: string): string {
  try {
    const head = execFileSync("git", ["-C", root, "rev-parse", "--short", "HEAD"], {
      encoding: "utf8",
    }).trim();
    const dirty = execFileSync("git", ["-C", root, "status", "--porcelain", "--", "src"], {
      encoding: "utf8",
    }).trim();
    return `${head}${dirty ? "+changes" : ""}`;
  } catch {
    return "unknown commit";
  }
}
