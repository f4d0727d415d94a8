import { type SpawnOptions, spawn } from "node:child_process";
import { createCipheriv, createHash } from "node:crypto";
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** The built CLI (tests run from dist/test/...). */
export const CLI = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  "..",
  "..",
  "src",
  "cli",
  "main.js",
);

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Base environment: fast key derivation, no inherited repository or password settings. */
export function baseEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env))
    if (v !== undefined && !k.startsWith("LIFEBOAT_")) env[k] = v;
  return { ...env, LIFEBOAT_KDF_N: "1024", ...extra };
}

export function run(
  args: string[],
  opts: { env?: Record<string, string>; input?: Buffer | string; cwd?: string } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const o: SpawnOptions = { env: opts.env ?? baseEnv(), cwd: opts.cwd, stdio: ["pipe", "pipe", "pipe"] };
    const child = spawn(process.execPath, [CLI, ...args], o);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on("data", (d: Buffer) => out.push(d));
    child.stderr!.on("data", (d: Buffer) => err.push(d));
    child.on("error", reject);
    child.on("close", (code) =>
      resolve({
        code: code ?? -1,
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
      }),
    );
    child.stdin!.end(opts.input ?? "");
  });
}

export async function tempDir(prefix = "lifeboat-test-"): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), prefix));
}

/** Deterministic pseudo-random bytes (AES-128-CTR keystream). */
export function prng(n: number, seed = 1): Buffer {
  const key = Buffer.alloc(16);
  key.writeUInt32LE(seed, 0);
  return createCipheriv("aes-128-ctr", key, Buffer.alloc(16)).update(Buffer.alloc(n));
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

/** Everything a restore must reproduce, as one comparable listing (content by SHA-256). */
export async function describeTree(root: string): Promise<string[]> {
  const out: string[] = [];
  const inodes = new Map<string, string>();
  const walk = async (dir: string, rel: string) => {
    const names = (await fs.readdir(dir)).sort();
    for (const name of names) {
      const p = path.join(dir, name);
      const r = rel ? `${rel}/${name}` : name;
      const st = await fs.lstat(p);
      const mode = (st.mode & 0o7777).toString(8);
      if (st.isSymbolicLink()) out.push(`L ${JSON.stringify(r)} -> ${await fs.readlink(p)}`);
      else if (st.isDirectory()) {
        out.push(`D ${JSON.stringify(r)} ${mode} ${Math.floor(st.mtimeMs / 1000)}`);
        await walk(p, r);
      } else if (st.isFile()) {
        const h = createHash("sha256");
        const fh = await fs.open(p, "r");
        const buf = Buffer.allocUnsafe(1 << 20);
        for (;;) {
          const { bytesRead } = await fh.read(buf, 0, buf.length, null);
          if (bytesRead === 0) break;
          h.update(buf.subarray(0, bytesRead));
        }
        await fh.close();
        let link = "";
        if (st.nlink > 1) {
          const key = `${st.dev}:${st.ino}`;
          link = ` link-group=${inodes.get(key) ?? r}`;
          if (!inodes.has(key)) inodes.set(key, r);
        }
        out.push(
          `F ${JSON.stringify(r)} ${mode} ${st.size} ${Math.floor(st.mtimeMs / 1000)} ${h.digest("hex")}${link}`,
        );
      }
    }
  };
  await walk(root, "");
  return out;
}

/** Every path below `root`, for proving that nothing appeared or changed elsewhere. */
export async function listAll(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string) => {
    for (const e of await fs.readdir(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      out.push(p);
      if (e.isDirectory()) await walk(p);
    }
  };
  await walk(root);
  return out.sort();
}

export function jsonLines(text: string): Record<string, unknown>[] {
  return text
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

export async function dirBytes(root: string): Promise<number> {
  let n = 0;
  for (const p of await listAll(root)) {
    const st = await fs.lstat(p);
    if (st.isFile()) n += st.size;
  }
  return n;
}
