import { spawnSync } from "node:child_process";
import fs from "node:fs";

/** One timed command. */
export interface Measure {
  wall: number;
  /** User + system CPU seconds. */
  cpu: number;
  /** Peak resident set, KiB (see `measure`). */
  rssKiB: number;
  ok: boolean;
  note?: string;
}

export interface Command {
  argv: string[];
  cwd?: string;
  env: NodeJS.ProcessEnv;
  /** stdout goes to this file (listings are checked afterwards), stderr to `<stdout>.err`. */
  stdout: string;
}

/**
 * Runs a command under GNU time (`/usr/bin/time -f "%e %U %S %M"`), which forks the tool and
 * reads its rusage from wait4(): wall seconds, CPU seconds, and ru_maxrss. ru_maxrss is the
 * peak RSS of the tool's address space, so it includes every thread of the process (lifeboat's
 * worker threads, Go's threads), and wait4 folds in any child process the tool waited for. The
 * harness is not in it: the tool is a child of `time`, not a fork of this Node process.
 */
export function measure(c: Command): Measure {
  const timing = `${c.stdout}.time`;
  const out = fs.openSync(c.stdout, "w");
  const err = fs.openSync(`${c.stdout}.err`, "w");
  let status: number | null;
  try {
    status = spawnSync("/usr/bin/time", ["-f", "%e %U %S %M", "-o", timing, ...c.argv], {
      env: c.env,
      cwd: c.cwd,
      stdio: ["ignore", out, err],
    }).status;
  } finally {
    fs.closeSync(out);
    fs.closeSync(err);
  }
  const last = fs.readFileSync(timing, "utf8").trim().split("\n").at(-1) ?? "";
  const [e, u, s, m] = last.split(" ").map(Number);
  const ok = status === 0;
  const m0: Measure = { wall: e ?? Number.NaN, cpu: (u ?? 0) + (s ?? 0), rssKiB: m ?? 0, ok };
  if (!ok) m0.note = `exit ${status}: ${tail(`${c.stdout}.err`) || tail(c.stdout)}`;
  return m0;
}

/** The last two lines of a file, shortened: enough to say why a command failed. */
function tail(file: string): string {
  const text = fs.existsSync(file) ? fs.readFileSync(file, "utf8").trim() : "";
  return text.split("\n").slice(-2).join(" ").slice(0, 240);
}

/** Lines in a file, counted without loading it whole. */
export function lineCount(file: string): number {
  const fd = fs.openSync(file, "r");
  const buf = Buffer.alloc(1 << 20);
  let n = 0;
  try {
    for (;;) {
      const got = fs.readSync(fd, buf, 0, buf.length, null);
      if (got === 0) break;
      for (let i = 0; i < got; i++) if (buf[i] === 10) n++;
    }
  } finally {
    fs.closeSync(fd);
  }
  return n;
}
