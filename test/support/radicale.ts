import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { promises as fs } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { ensurePackages } from "./apt.js";

/** A private Radicale (CardDAV/CalDAV) on 127.0.0.1 for tests: its own config, users and storage. */
export interface Radicale {
  port: number;
  /** http://127.0.0.1:PORT */
  origin: string;
  /** Temporary folder holding config, users, storage and log (removed by stop()). */
  dir: string;
  /** The storage folder (`[storage] filesystem_folder`). */
  storage: string;
  users: Record<string, string>;
  /** `dav://USER@127.0.0.1:PORT/` */
  url(user: string): string;
  /** An HTTP request as `user` (Basic auth), straight to the server. */
  request(
    user: string,
    method: string,
    pathOrUrl: string,
    body?: string | Buffer,
    headers?: Record<string, string>,
  ): Promise<{ status: number; body: Buffer; text: string; headers: Headers }>;
  /** SHA-256 of every file in the storage, by relative path, Radicale's own caches left out. */
  storageHashes(): Promise<Map<string, string>>;
  stop(): Promise<void>;
}

export const RADICALE_BIN = "/usr/bin/radicale";

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

async function waitForHttp(port: number, proc: ChildProcess, log: () => Promise<string>): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`radicale exited with ${proc.exitCode}:\n${await log()}`);
    try {
      const r = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(1000) });
      await r.arrayBuffer();
      return;
    } catch {}
    if (Date.now() > deadline)
      throw new Error(`radicale did not answer on 127.0.0.1:${port}:\n${await log()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function startRadicale(o: { users?: Record<string, string> } = {}): Promise<Radicale> {
  ensurePackages({ [RADICALE_BIN]: "radicale" });
  const users = o.users ?? { ann: "dav-secret" };
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "lb-radicale-"));
  const storage = path.join(dir, "collections");
  const port = await freePort();
  await fs.writeFile(
    path.join(dir, "users"),
    Object.entries(users)
      .map(([u, p]) => `${u}:${p}\n`)
      .join(""),
  );
  const conf = path.join(dir, "config");
  await fs.writeFile(
    conf,
    `[server]
hosts = 127.0.0.1:${port}
[auth]
type = htpasswd
htpasswd_filename = ${dir}/users
htpasswd_encryption = plain
delay = 0
[rights]
type = owner_only
[storage]
filesystem_folder = ${storage}
[web]
type = none
[logging]
level = warning
`,
  );
  const logFile = path.join(dir, "radicale.log");
  const out = await fs.open(logFile, "w");
  // /usr/bin/radicale runs the system python3, where the Debian package installed the module.
  const proc = spawn(RADICALE_BIN, ["--config", conf], { stdio: ["ignore", out.fd, out.fd] });
  const log = () => fs.readFile(logFile, "utf8").catch(() => "");
  try {
    await waitForHttp(port, proc, log);
  } catch (e) {
    proc.kill("SIGKILL");
    await out.close();
    await fs.rm(dir, { recursive: true, force: true });
    throw e;
  }
  const origin = `http://127.0.0.1:${port}`;
  return {
    port,
    origin,
    dir,
    storage,
    users,
    url: (user) => `dav://${user}@127.0.0.1:${port}/`,
    async request(user, method, pathOrUrl, body, headers = {}) {
      const auth = Buffer.from(`${user}:${users[user] ?? ""}`).toString("base64");
      const r = await fetch(new URL(pathOrUrl, origin), {
        method,
        headers: { Authorization: `Basic ${auth}`, ...headers },
        ...(body !== undefined ? { body } : {}),
      });
      const buf = Buffer.from(await r.arrayBuffer());
      return { status: r.status, body: buf, text: buf.toString("utf8"), headers: r.headers };
    },
    async storageHashes() {
      const out = new Map<string, string>();
      const walk = async (d: string) => {
        for (const e of await fs.readdir(d, { withFileTypes: true })) {
          const p = path.join(d, e.name);
          // Radicale's caches (item, history, sync-token) and its lock file are written on reads too.
          if (
            e.name === ".Radicale.cache" ||
            e.name === ".Radicale.lock" ||
            e.name.startsWith(".Radicale.tmp")
          )
            continue;
          if (e.isDirectory()) {
            out.set(`${path.relative(storage, p)}/`, "dir");
            await walk(p);
          } else
            out.set(
              path.relative(storage, p),
              createHash("sha256")
                .update(await fs.readFile(p))
                .digest("hex"),
            );
        }
      };
      await walk(storage);
      return out;
    },
    async stop() {
      if (proc.exitCode === null) {
        const exited = new Promise((r) => proc.once("exit", r));
        proc.kill("SIGTERM");
        await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
        if (proc.exitCode === null) proc.kill("SIGKILL");
      }
      await out.close().catch(() => {});
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}
