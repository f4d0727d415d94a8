import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, promises as fs, readFileSync } from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { ensurePackages } from "../support/apt.js";
import { baseEnv, CLI, jsonLines, run, tempDir, writeRandomFile } from "../support/cli.js";

// FUSE needs the kernel's device; everything else (libfuse2, fusermount) is installed here.
const skip = existsSync("/dev/fuse")
  ? false
  : "no /dev/fuse on this machine (kernel or container without FUSE)";

const triplet = process.arch === "arm64" ? "aarch64-linux-gnu" : "x86_64-linux-gnu";

let dir: string;
let repo: string;
let src: string;
let env: Record<string, string>;
const children = new Set<ChildProcess>();

before(async () => {
  if (skip) return;
  ensurePackages({ [`/lib/${triplet}/libfuse.so.2`]: "libfuse2", "/usr/bin/fusermount": "fuse" });
  dir = await tempDir("lifeboat-mount-");
  repo = path.join(dir, "repo");
  src = path.join(dir, "src");
  env = baseEnv({ LIFEBOAT_PASSWORD: "mount password", LIFEBOAT_REPOSITORY: repo });
  assert.equal((await run(["init"], { env })).code, 0);
  await fs.mkdir(path.join(src, "sub", "deeper"), { recursive: true });
  await fs.writeFile(path.join(src, "hello.txt"), "hello through FUSE\n");
  await fs.writeFile(path.join(src, "empty"), "");
  await fs.writeFile(path.join(src, "sub", "deeper", "ümlaut.txt"), "unicode name\n");
  await writeRandomFile(path.join(src, "sub", "big.bin"), 9, 3);
  await fs.symlink("hello.txt", path.join(src, "link"));
  await fs.chmod(path.join(src, "hello.txt"), 0o640);
  await fs.utimes(
    path.join(src, "hello.txt"),
    new Date("2001-02-03T04:05:06Z"),
    new Date("2001-02-03T04:05:06Z"),
  );
  const b = await run(["backup", src, "--json"], { env });
  assert.equal(b.code, 0, b.stderr);
});

after(async () => {
  for (const c of children) {
    if (c.exitCode === null) c.kill("SIGKILL");
  }
  if (!dir) return;
  for (const m of mountedUnder(dir)) {
    try {
      execFileSync("fusermount", ["-uz", m], { stdio: "ignore" });
    } catch {}
  }
  await fs.rm(dir, { recursive: true, force: true });
});

function mountedUnder(root: string): string[] {
  return readFileSync("/proc/mounts", "utf8")
    .split("\n")
    .map((l) => l.split(" ")[1] ?? "")
    .map((m) => m.replace(/\\040/g, " "))
    .filter((m) => m.startsWith(root));
}

/** Starts `lifeboat mount ... --json` and waits for its "mounted" line. */
async function startMount(args: string[]): Promise<{
  child: ChildProcess;
  stop: () => Promise<{ code: number | null; stdout: string; stderr: string }>;
}> {
  const child = spawn(process.execPath, [CLI, "mount", ...args, "--json"], {
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.add(child);
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d: Buffer) => {
    stdout += d.toString("utf8");
  });
  child.stderr!.on("data", (d: Buffer) => {
    stderr += d.toString("utf8");
  });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  const deadline = Date.now() + 30_000;
  while (!stdout.includes('"message_type":"mounted"')) {
    if (child.exitCode !== null) assert.fail(`mount exited with ${child.exitCode}: ${stderr}`);
    if (Date.now() > deadline) assert.fail(`mount did not come up: ${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    child,
    stop: async () => {
      child.kill("SIGTERM");
      const code = await exited;
      return { code, stdout, stderr };
    },
  };
}

async function listing(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string, rel: string) => {
    for (const name of (await fs.readdir(d)).sort()) {
      const p = path.join(d, name);
      const r = rel ? `${rel}/${name}` : name;
      const st = await fs.lstat(p);
      const kind = st.isDirectory() ? "d" : st.isSymbolicLink() ? "l" : "f";
      const extra = st.isSymbolicLink() ? `-> ${await fs.readlink(p)}` : st.isFile() ? String(st.size) : "";
      out.push(`${kind} ${(st.mode & 0o7777).toString(8)} ${r} ${extra}`);
      if (st.isDirectory()) await walk(p, r);
    }
  };
  await walk(root, "");
  return out;
}

test(
  "mount latest: the snapshot's files read back byte for byte, read-only, and unmount on SIGTERM",
  { skip },
  async () => {
    const mnt = path.join(dir, "mnt-one");
    await fs.mkdir(mnt);
    const m = await startMount(["latest", mnt]);
    try {
      // The snapshot keeps the absolute path of what was backed up.
      const inside = path.join(mnt, src);
      assert.deepEqual(await listing(inside), await listing(src));
      for (const f of ["hello.txt", "empty", "sub/big.bin", "sub/deeper/ümlaut.txt"]) {
        assert.ok((await fs.readFile(path.join(inside, f))).equals(await fs.readFile(path.join(src, f))), f);
      }
      assert.equal(await fs.readFile(path.join(inside, "link"), "utf8"), "hello through FUSE\n");
      // A read from the middle of the big file, across blob boundaries.
      const fh = await fs.open(path.join(inside, "sub", "big.bin"), "r");
      const part = Buffer.alloc(3_000_000);
      const { bytesRead } = await fh.read(part, 0, part.length, 4_321_000);
      await fh.close();
      assert.equal(bytesRead, part.length);
      const whole = await fs.readFile(path.join(src, "sub", "big.bin"));
      assert.ok(part.equals(whole.subarray(4_321_000, 4_321_000 + part.length)));
      const st = await fs.stat(path.join(inside, "hello.txt"));
      assert.equal(st.mtime.toISOString(), "2001-02-03T04:05:06.000Z");
      assert.equal(st.mode & 0o7777, 0o640);
      await assert.rejects(fs.writeFile(path.join(inside, "new.txt"), "x"), { code: "EROFS" });
      await assert.rejects(fs.appendFile(path.join(inside, "hello.txt"), "x"), { code: "EROFS" });
      await assert.rejects(fs.unlink(path.join(inside, "hello.txt")), { code: "EROFS" });
    } finally {
      const r = await m.stop();
      assert.equal(r.code, 0, r.stderr);
      assert.ok(
        jsonLines(r.stdout).some((l) => l.message_type === "unmounted"),
        r.stdout,
      );
    }
    assert.deepEqual(mountedUnder(mnt), []);
    assert.deepEqual(await fs.readdir(mnt), []);
  },
);

test("mount all: every snapshot under snapshots/, with a latest link", { skip }, async () => {
  await fs.writeFile(path.join(src, "second.txt"), "only in the second snapshot\n");
  const b = await run(["backup", src, "--json"], { env });
  assert.equal(b.code, 0, b.stderr);
  const mnt = path.join(dir, "mnt-all");
  await fs.mkdir(mnt);
  const m = await startMount(["all", mnt]);
  try {
    const names = (await fs.readdir(path.join(mnt, "snapshots"))).sort();
    assert.equal(names.length, 3, names.join(" "));
    assert.ok(names.includes("latest"));
    const dirs = names.filter((n) => n !== "latest");
    const latest = await fs.readlink(path.join(mnt, "snapshots", "latest"));
    // The newest snapshot is the backup just made. (Folder names carry whole seconds, so two
    // backups in one second do not sort by name: compare with its id, not the last name.)
    const newest = String(jsonLines(b.stdout).find((l) => l.message_type === "summary")?.snapshot_id);
    assert.equal(
      latest,
      dirs.find((d) => d.endsWith(`-${newest.slice(0, 8)}`)),
    );
    const older = path.join(mnt, "snapshots", dirs.find((d) => d !== latest)!, src);
    const newer = path.join(mnt, "snapshots", "latest", src);
    assert.equal(existsSync(path.join(older, "second.txt")), false);
    assert.equal(await fs.readFile(path.join(newer, "second.txt"), "utf8"), "only in the second snapshot\n");
    assert.deepEqual(await listing(newer), await listing(src));
    assert.ok(
      (await fs.readFile(path.join(older, "sub", "big.bin"))).equals(
        await fs.readFile(path.join(src, "sub", "big.bin")),
      ),
    );
  } finally {
    const r = await m.stop();
    assert.equal(r.code, 0, r.stderr);
  }
  assert.deepEqual(mountedUnder(mnt), []);
});

test("mount refuses a mount point that does not exist", { skip }, async () => {
  const r = await run(["mount", "latest", path.join(dir, "nope")], { env });
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /does not exist/);
});
