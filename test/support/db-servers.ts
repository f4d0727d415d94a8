/**
 * Real database servers for tests: PostgreSQL and MariaDB, each in its own temporary folder,
 * listening on 127.0.0.1 on a free port, stopped (and the folder removed) by `stop()`.
 * The Debian packages are installed when missing (tests run as root on a bare machine).
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, promises as fs, readdirSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { ensurePackages } from "./apt.js";

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

function idOf(user: string): { uid: number; gid: number } {
  const uid = Number(execFileSync("id", ["-u", user]).toString().trim());
  const gid = Number(execFileSync("id", ["-g", user]).toString().trim());
  return { uid, gid };
}

async function waitPort(
  port: number,
  child: ChildProcess,
  log: () => Promise<string>,
  ms = 60_000,
): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(
        `server exited (${child.exitCode ?? child.signalCode}) before listening:\n${await log()}`,
      );
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, "127.0.0.1");
      s.on("connect", () => {
        s.destroy();
        resolve(true);
      });
      s.on("error", () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline)
      throw new Error(`server not listening on ${port} after ${ms} ms:\n${await log()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function stopChild(child: ChildProcess, signal: NodeJS.Signals, ms = 30_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise<void>((r) => child.once("exit", () => r()));
  child.kill(signal);
  const timer = setTimeout(() => child.kill("SIGKILL"), ms);
  await gone;
  clearTimeout(timer);
}

/** The bin folder of the newest installed PostgreSQL server, installing `postgresql` if none. */
export function postgresBinDir(): string {
  const find = () => {
    const root = "/usr/lib/postgresql";
    if (!existsSync(root)) return undefined;
    const versions = readdirSync(root)
      .filter((v) => existsSync(path.join(root, v, "bin", "postgres")))
      .sort((a, b) => Number(b) - Number(a));
    return versions[0] ? path.join(root, versions[0], "bin") : undefined;
  };
  let dir = find();
  if (!dir) {
    ensurePackages({ "/usr/lib/postgresql/*/bin/postgres": "postgresql" });
    dir = find();
  }
  if (!dir) throw new Error("postgresql is installed but no /usr/lib/postgresql/*/bin/postgres was found");
  return dir;
}

export interface PostgresServer {
  port: number;
  bin: string;
  /** Superuser `postgres`, password authentication over TCP. */
  password: string;
  url(database: string, user?: string, password?: string): string;
  stop(): Promise<void>;
}

/** A fresh data folder owned by postgres (initdb, password auth over TCP) in a temp folder. */
async function initCluster(
  bin: string,
  uid: number,
  gid: number,
  prefix: string,
): Promise<{ dir: string; data: string; password: string }> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), prefix));
  await fs.chown(dir, uid, gid);
  const data = path.join(dir, "data");
  const password = "pg-test-secret";
  const pwfile = path.join(dir, "pw");
  await fs.writeFile(pwfile, `${password}\n`);
  await fs.chown(pwfile, uid, gid);
  execFileSync(
    path.join(bin, "initdb"),
    [
      "-D",
      data,
      "-U",
      "postgres",
      "--auth-local=trust",
      "--auth-host=scram-sha-256",
      `--pwfile=${pwfile}`,
      "-E",
      "UTF8",
      "--no-sync",
    ],
    { uid, gid, cwd: dir, stdio: ["ignore", "ignore", "pipe"] },
  );
  return { dir, data, password };
}

/** A throwaway server for dumps: the cluster below with crash safety off (faster). */
export async function startPostgres(): Promise<PostgresServer> {
  const c = await startPostgresCluster({ synchronous_commit: "off", full_page_writes: "off" });
  return {
    port: c.port,
    bin: c.bin,
    password: c.password,
    url: c.url,
    async stop() {
      await c.stop();
      await c.remove();
    },
  };
}

export interface MariadbServer {
  port: number;
  /** root, password authentication over TCP. */
  password: string;
  url(database: string, user?: string, password?: string): string;
  /** Runs SQL through the `mariadb` client as root; returns tab-separated output. */
  sql(statements: string, database?: string): string;
  stop(): Promise<void>;
}

export async function startMariadb(): Promise<MariadbServer> {
  ensurePackages({ "/usr/sbin/mariadbd": "mariadb-server", "/usr/bin/mariadb": "mariadb-client" });
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "lifeboat-maria-"));
  const data = path.join(dir, "data");
  const socket = path.join(dir, "mysqld.sock");
  execFileSync(
    "mariadb-install-db",
    [
      "--no-defaults",
      `--datadir=${data}`,
      "--user=root",
      "--auth-root-authentication-method=normal",
      "--skip-test-db",
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  const port = await freePort();
  const logFile = path.join(dir, "server.log");
  const child = spawn(
    "mariadbd",
    [
      "--no-defaults",
      `--datadir=${data}`,
      `--socket=${socket}`,
      `--port=${port}`,
      "--bind-address=127.0.0.1",
      "--user=root",
      `--log-error=${logFile}`,
      `--pid-file=${path.join(dir, "pid")}`,
      "--innodb-buffer-pool-size=64M",
      "--innodb-flush-log-at-trx-commit=2",
      "--skip-name-resolve",
      "--innodb-log-file-size=48M",
      "--max-connections=40",
    ],
    { stdio: ["ignore", "ignore", "ignore"] },
  );
  const log = () => fs.readFile(logFile, "utf8").catch(() => "");
  const password = "maria-test-secret";
  const client = (extra: string[]) => (statements: string, database?: string) =>
    execFileSync(
      "mariadb",
      [
        "--no-defaults",
        `--socket=${socket}`,
        "-uroot",
        ...extra,
        "--batch",
        "--skip-column-names",
        ...(database ? [database] : []),
      ],
      { input: statements, stdio: ["pipe", "pipe", "pipe"] },
    ).toString();
  try {
    await waitPort(port, child, log);
    client([])(
      `CREATE USER IF NOT EXISTS 'root'@'127.0.0.1';
       ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY '${password}';
       GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
       ALTER USER 'root'@'localhost' IDENTIFIED BY '${password}';`,
    );
  } catch (e) {
    await stopChild(child, "SIGKILL");
    await fs.rm(dir, { recursive: true, force: true });
    throw e;
  }
  const sqlAsRoot = client([`--password=${password}`]);
  return {
    port,
    password,
    url: (database, user = "root", pw = password) =>
      `mysql://${encodeURIComponent(user)}:${encodeURIComponent(pw)}@127.0.0.1:${port}/${encodeURIComponent(database)}`,
    sql: sqlAsRoot,
    async stop() {
      await stopChild(child, "SIGTERM");
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}

/** uid and gid of the `postgres` system user (servers and their tools run as it). */
export function postgresIds(): { uid: number; gid: number } {
  return idOf("postgres");
}

export interface PostgresCluster {
  port: number;
  bin: string;
  /** Folder owned by `postgres` holding `data/`, the socket and `server.log`. */
  dir: string;
  data: string;
  password: string;
  url(database: string, user?: string, password?: string): string;
  log(): Promise<string>;
  /** Fast shutdown; the folder stays (see `remove`). */
  stop(): Promise<void>;
  remove(): Promise<void>;
}

/**
 * A PostgreSQL server on 127.0.0.1 in a fresh temp folder, with extra server settings
 * (`-c name=value`, e.g. archiving). fsync is off, full_page_writes stays on (base backups need
 * it). The folder is kept after `stop()` until `remove()`.
 */
export async function startPostgresCluster(settings: Record<string, string> = {}): Promise<PostgresCluster> {
  const bin = postgresBinDir();
  const { uid, gid } = idOf("postgres");
  const { dir, data, password } = await initCluster(bin, uid, gid, "lifeboat-pgc-");
  const port = await freePort();
  const logFile = path.join(dir, "server.log");
  const logFd = await fs.open(logFile, "a");
  const args = ["-D", data, "-k", dir, "-h", "127.0.0.1", "-p", String(port)];
  const all = { fsync: "off", shared_buffers: "32MB", max_connections: "40", ...settings };
  for (const [k, v] of Object.entries(all)) args.push("-c", `${k}=${v}`);
  const child = spawn(path.join(bin, "postgres"), args, {
    uid,
    gid,
    cwd: dir,
    stdio: ["ignore", logFd.fd, logFd.fd],
  });
  await logFd.close();
  const log = () => fs.readFile(logFile, "utf8").catch(() => "");
  try {
    await waitPort(port, child, log);
  } catch (e) {
    await stopChild(child, "SIGKILL");
    await fs.rm(dir, { recursive: true, force: true });
    throw e;
  }
  return {
    port,
    bin,
    dir,
    data,
    password,
    url: (database, user = "postgres", pw = password) =>
      `postgres://${encodeURIComponent(user)}:${encodeURIComponent(pw)}@127.0.0.1:${port}/${encodeURIComponent(database)}`,
    log,
    stop: () => stopChild(child, "SIGINT"),
    remove: () => fs.rm(dir, { recursive: true, force: true }),
  };
}

/**
 * Starts a server on an existing data folder with `pg_ctl start -w` as `postgres` (as an
 * operator would after a restore), listening on 127.0.0.1 only; `stop()` runs `pg_ctl stop`.
 */
export async function pgCtlStart(
  data: string,
  opts: { socketDir: string; logFile: string; timeoutSeconds?: number },
): Promise<{ port: number; stop(): Promise<void> }> {
  const bin = postgresBinDir();
  const { uid, gid } = idOf("postgres");
  const port = await freePort();
  const pgCtl = path.join(bin, "pg_ctl");
  const run = (args: string[]) =>
    new Promise<void>((resolve, reject) => {
      const child = spawn(pgCtl, args, {
        uid,
        gid,
        cwd: opts.socketDir,
        stdio: ["ignore", "ignore", "pipe"],
      });
      let err = "";
      child.stderr!.on("data", (d: Buffer) => {
        err += d.toString();
      });
      child.on("error", reject);
      child.on("close", (code) =>
        code === 0 ? resolve() : reject(new Error(`pg_ctl ${args[0]} exited ${code}: ${err}`)),
      );
    });
  await run([
    "start",
    "-D",
    data,
    "-l",
    opts.logFile,
    "-w",
    "-t",
    String(opts.timeoutSeconds ?? 120),
    "-o",
    `-p ${port} -h 127.0.0.1 -k ${opts.socketDir} -c fsync=off -c shared_buffers=32MB -c max_connections=40`,
  ]);
  return { port, stop: () => run(["stop", "-D", data, "-m", "fast", "-w"]) };
}
