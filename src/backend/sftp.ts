import { randomBytes } from "node:crypto";
import { promises as fs } from "node:fs";
import type { Socket } from "node:net";
import os from "node:os";
import path from "node:path";
import type { ConnectConfig, SFTPWrapper, Client as SshClient, Stats } from "ssh2";
import ssh2 from "ssh2";
import { errnoCode, LifeboatError } from "../core/errors.js";
import { type Backend, type GetOptions, type ObjectInfo, objectName } from "./backend.js";
import { checkHostKey, fingerprint, keyTypeOf, knownKeyTypes, parseKnownHosts } from "./known-hosts.js";

/** Temporary files carry this prefix (as in the local backend); `list` skips them. */
export const TEMP_PREFIX = ".tmp-";

export interface SftpLocation {
  user: string;
  host: string;
  port: number;
  /** Folder on the server; relative paths are relative to the login folder. */
  path: string;
}

export interface SftpBackendOptions extends SftpLocation {
  /** The URL as the user wrote it (for messages). */
  url: string;
  /** Private key file; default LIFEBOAT_SFTP_KEY, else ~/.ssh/id_ed25519, id_ecdsa, id_rsa. */
  keyFile?: string;
  /** known_hosts file; default LIFEBOAT_SFTP_KNOWN_HOSTS, else ~/.ssh/known_hosts. */
  knownHostsFile?: string;
  /** SSH agent socket; default SSH_AUTH_SOCK. */
  agent?: string;
  /** Seconds to wait for the connection and handshake (default 20). */
  readyTimeoutSeconds?: number;
}

/** SFTP status codes (draft-ietf-secsh-filexfer-02). */
const FX = { EOF: 1, NO_SUCH_FILE: 2, PERMISSION_DENIED: 3, FAILURE: 4, OP_UNSUPPORTED: 8 } as const;

/** Pieces of a transfer that are in flight at once (each up to `PIECE` bytes). */
const PIECE = 256 * 1024;
const IN_FLIGHT = 16;

function usage(url: string, why: string): LifeboatError {
  return new LifeboatError(
    "USAGE",
    `invalid SFTP repository URL ${JSON.stringify(url)}: ${why}`,
    "use sftp:USER@HOST:/PATH or sftp://USER@HOST[:PORT]/PATH",
  );
}

/**
 * Parses `sftp:USER@HOST:/PATH` (port 22; a PATH without a leading slash is relative to the
 * login folder) and `sftp://USER@HOST[:PORT]/PATH` (PATH is absolute). USER defaults to the
 * local user name; IPv6 addresses go in brackets.
 */
export function parseSftpUrl(url: string): SftpLocation {
  const defaultUser = () => process.env.USER || os.userInfo().username;
  if (url.startsWith("sftp://")) {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw usage(url, "cannot parse it");
    }
    if (!u.hostname) throw usage(url, "no host");
    if (u.password) throw usage(url, "passwords do not belong in the URL; use a key or an SSH agent");
    const p = decodeURIComponent(u.pathname);
    if (p === "" || p === "/") throw usage(url, "no path");
    return {
      user: u.username ? decodeURIComponent(u.username) : defaultUser(),
      host: u.hostname.replace(/^\[(.*)\]$/, "$1"),
      port: u.port ? Number(u.port) : 22,
      path: p,
    };
  }
  const m = /^sftp:(?:([^@/]+)@)?(\[[^\]]+\]|[^:/[\]]+):(.*)$/s.exec(url);
  if (!m) throw usage(url, "expected USER@HOST:PATH");
  const [, user, host, p] = m as unknown as [string, string | undefined, string, string];
  if (p === "") throw usage(url, "no path");
  return { user: user ?? defaultUser(), host: host.replace(/^\[(.*)\]$/, "$1"), port: 22, path: p };
}

interface Conn {
  client: SshClient;
  sftp: SFTPWrapper;
  closed: boolean;
  /** SFTP requests awaiting an answer. */
  inflight: number;
  /** When the server last sent anything (or a request started after a quiet spell). */
  lastHeard: number;
  sock: Socket | undefined;
}

/** With requests waiting and nothing heard from the server for this long, the link is dead. */
const SILENCE_MS = 60_000;

function sftpCode(e: unknown): number | undefined {
  const c = (e as { code?: unknown } | undefined)?.code;
  return typeof c === "number" ? c : undefined;
}

const lostMessages =
  /No response from server|Not connected|Channel not open|Connection lost|socket|write after end/i;

/**
 * A repository in a folder on an SSH server, over SFTP (OpenSSH's sftp-server or internal-sftp,
 * or any SFTP v3 server). One SSH connection is opened on first use and shared by all
 * operations (SFTP multiplexes requests); when it drops, the next operation opens a new one
 * and the failed one reports UNREACHABLE (open.ts wraps this backend in `withRetries`).
 *
 * Puts write `.tmp-<random>` in the target folder, fsync it (fsync@openssh.com) and rename it
 * over the final name (posix-rename@openssh.com; else unlink + rename), so an object is either
 * absent or whole. Folders such as `data/xx/` are made when a put first needs them.
 */
export function sftpBackend(options: SftpBackendOptions): Backend {
  const { user, host, port } = options;
  // "" stands for "/" so that `${root}/${name}` is right; relative roots stay relative.
  const root = options.path.replace(/\/+$/, "");
  const rootDir = root === "" ? "/" : root;
  const full = (name: string) => `${root}/${objectName(name)}`;
  const where = (name: string) => `${options.url}/${name}`;
  const hostLabel = port === 22 ? host : `${host}:${port}`;
  const madeDirs = new Set<string>();
  let live: Conn | undefined;
  let pending: Promise<Conn> | undefined;
  let closing = false;

  function unreachable(e: unknown, detail: string): LifeboatError {
    return new LifeboatError(
      "UNREACHABLE",
      `cannot reach the SFTP server ${hostLabel}: ${detail}`,
      "check the host name, port and network (and that sshd is running)",
      e,
    );
  }

  async function readKey(): Promise<{ file: string; key: Buffer } | undefined> {
    const explicit = options.keyFile ?? process.env.LIFEBOAT_SFTP_KEY;
    if (explicit) {
      try {
        return { file: explicit, key: await fs.readFile(explicit) };
      } catch (e) {
        throw new LifeboatError(
          "AUTH_FAILED",
          `cannot read the SSH key ${explicit}: ${errnoCode(e) ?? String(e)}`,
          "set LIFEBOAT_SFTP_KEY to a readable private key file",
          e,
        );
      }
    }
    for (const name of ["id_ed25519", "id_ecdsa", "id_rsa"]) {
      const file = path.join(os.homedir(), ".ssh", name);
      const key = await fs.readFile(file).catch(() => undefined);
      if (key) return { file, key };
    }
    return undefined;
  }

  async function open(): Promise<Conn> {
    const knownHostsFile =
      options.knownHostsFile ??
      (process.env.LIFEBOAT_SFTP_KNOWN_HOSTS || path.join(os.homedir(), ".ssh", "known_hosts"));
    const known = parseKnownHosts(await fs.readFile(knownHostsFile, "utf8").catch(() => ""));
    const keyTypes = knownKeyTypes(known, host, port).flatMap((t) =>
      t === "ssh-rsa" ? ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"] : [t],
    );
    const supported = new Set([
      "ssh-ed25519",
      "ecdsa-sha2-nistp256",
      "ecdsa-sha2-nistp384",
      "ecdsa-sha2-nistp521",
      "rsa-sha2-512",
      "rsa-sha2-256",
      "ssh-rsa",
    ]);
    const preferred = keyTypes.filter((t) => supported.has(t));
    const agent = options.agent ?? process.env.SSH_AUTH_SOCK;
    const key = await readKey();
    if (!key && !agent) {
      throw new LifeboatError(
        "AUTH_FAILED",
        `no SSH key or agent to log in to ${user}@${hostLabel}`,
        "set LIFEBOAT_SFTP_KEY to a private key file, put one in ~/.ssh/id_ed25519, or start ssh-agent",
      );
    }
    let hostKeyProblem: LifeboatError | undefined;
    const config: ConnectConfig = {
      host,
      port,
      username: user,
      readyTimeout: (options.readyTimeoutSeconds ?? 20) * 1000,
      // ssh2's keepalive timer would keep the process alive when idle; a watchdog below (and
      // TCP keepalive) finds dead links instead.
      keepaliveInterval: 0,
      hostVerifier: (blob: Buffer) => {
        const verdict = checkHostKey(known, host, port, blob);
        if (verdict === "trusted") return true;
        const fp = `${keyTypeOf(blob)} key ${fingerprint(blob)}`;
        const add = `ssh-keyscan ${port === 22 ? "" : `-p ${port} `}${host} >> ${knownHostsFile}`;
        hostKeyProblem =
          verdict === "unknown"
            ? new LifeboatError(
                "AUTH_FAILED",
                `the SSH host ${hostLabel} is not in ${knownHostsFile} (it offers ${fp})`,
                `if that fingerprint is right (ask the server's admin, or run ssh-keygen -l on its host key), add it: ${add}`,
              )
            : new LifeboatError(
                "AUTH_FAILED",
                verdict === "revoked"
                  ? `the SSH host key of ${hostLabel} (${fp}) is revoked in ${knownHostsFile}`
                  : `the SSH host key of ${hostLabel} does not match ${knownHostsFile}: it now offers ${fp} (someone may be intercepting the connection, or the server was reinstalled)`,
                `if the server's key really changed, remove the old line (ssh-keygen -R ${port === 22 ? host : `'[${host}]:${port}'`} -f ${knownHostsFile}) and add the new one: ${add}`,
              );
        return false;
      },
    };
    if (preferred.length > 0) {
      config.algorithms = { serverHostKey: { remove: preferred, prepend: preferred } as never };
    }
    if (key) {
      config.privateKey = key.key;
      if (process.env.LIFEBOAT_SFTP_KEY_PASSPHRASE)
        config.passphrase = process.env.LIFEBOAT_SFTP_KEY_PASSPHRASE;
    }
    if (agent) config.agent = agent;

    const client = new ssh2.Client();
    let sock: Socket | undefined;
    const conn = await new Promise<Conn>((resolve, reject) => {
      let settled = false;
      const fail = (e: LifeboatError) => {
        if (settled) return;
        settled = true;
        client.end();
        reject(e);
      };
      client.on("error", (e: Error & { level?: string }) => {
        if (settled) return;
        if (hostKeyProblem) return fail(hostKeyProblem);
        if (e.level === "client-authentication") {
          return fail(
            new LifeboatError(
              "AUTH_FAILED",
              `${user}@${hostLabel} refused the SSH login (tried ${[key ? `key ${key.file}` : "", agent ? "the SSH agent" : ""].filter(Boolean).join(" and ")})`,
              `add the public key to ~${user}/.ssh/authorized_keys on the server, or set LIFEBOAT_SFTP_KEY to the right private key`,
              e,
            ),
          );
        }
        if (e.level === "client-timeout") return fail(unreachable(e, "timed out during the SSH handshake"));
        if (/parse privateKey|passphrase/i.test(e.message)) {
          return fail(
            new LifeboatError(
              "AUTH_FAILED",
              `cannot use the SSH key ${key?.file}: ${e.message}`,
              "set LIFEBOAT_SFTP_KEY_PASSPHRASE for an encrypted key, or use ssh-agent",
              e,
            ),
          );
        }
        fail(unreachable(e, errnoCode(e) ?? e.message));
      });
      client.on("ready", () => {
        client.sftp((err, sftp) => {
          if (err) {
            return fail(
              new LifeboatError(
                "STORAGE_ERROR",
                `${hostLabel} offers no SFTP service: ${err.message}`,
                "enable the sftp subsystem in the server's sshd_config (Subsystem sftp internal-sftp)",
                err,
              ),
            );
          }
          settled = true;
          resolve({ client, sftp, closed: false, inflight: 0, lastHeard: Date.now(), sock });
        });
      });
      client.on("close", () => {
        if (!settled) fail(unreachable(undefined, "the connection was closed during the handshake"));
      });
      try {
        client.connect(config);
        // ssh2 keeps its socket in `_sock`; it is needed to let an idle connection not hold the
        // process open (requests in flight hold it; see `call`).
        sock = (client as unknown as { _sock?: Socket })._sock;
      } catch (e) {
        const msg = e instanceof Error ? e.message : String(e);
        fail(
          /privateKey|passphrase/i.test(msg)
            ? new LifeboatError(
                "AUTH_FAILED",
                `cannot use the SSH key ${key?.file}: ${msg}`,
                "set LIFEBOAT_SFTP_KEY_PASSPHRASE for an encrypted key, or use ssh-agent",
                e,
              )
            : new LifeboatError("USAGE", `cannot connect to ${hostLabel}: ${msg}`, undefined, e),
        );
      }
    });
    conns.set(conn.sftp, conn);
    if (sock) {
      sock.setKeepAlive(true, 30_000);
      sock.on("data", () => {
        conn.lastHeard = Date.now();
      });
      sock.unref();
    }
    const watchdog = setInterval(() => {
      if (conn.inflight > 0 && Date.now() - conn.lastHeard > SILENCE_MS) {
        conn.sock?.destroy(new Error(`no answer from the server for ${SILENCE_MS / 1000} s`));
      }
    }, 5000).unref();
    const markClosed = () => {
      clearInterval(watchdog);
      dead.add(conn.sftp);
      conn.closed = true;
      if (live === conn) live = undefined;
    };
    client.on("close", markClosed);
    client.on("end", markClosed);
    client.on("error", markClosed);
    conn.sftp.on("close", markClosed);
    conn.sftp.on("error", markClosed);
    return conn;
  }

  async function connection(): Promise<Conn> {
    if (live && !live.closed) return live;
    if (closing) throw new LifeboatError("STORAGE_ERROR", `the SFTP connection to ${hostLabel} was closed`);
    pending ??= open()
      .then((c) => {
        live = c;
        return c;
      })
      .finally(() => {
        pending = undefined;
      });
    return pending;
  }

  function mapError(e: unknown, conn: Conn, name: string): LifeboatError {
    if (e instanceof LifeboatError) return e;
    const code = sftpCode(e);
    const msg = e instanceof Error ? e.message : String(e);
    if (code === undefined && (conn.closed || lostMessages.test(msg) || errnoCode(e))) {
      dead.add(conn.sftp);
      conn.closed = true;
      if (live === conn) live = undefined;
      conn.client.end();
      return unreachable(e, `the connection was lost (${errnoCode(e) ?? msg})`);
    }
    switch (code) {
      case FX.NO_SUCH_FILE:
        return new LifeboatError("NOT_FOUND", `${where(name)} does not exist`, undefined, e);
      case FX.PERMISSION_DENIED:
        return new LifeboatError(
          "PERMISSION_DENIED",
          `permission denied for ${where(name)}`,
          `check the owner and mode of ${root} on ${hostLabel} (user ${user} must be able to write there)`,
          e,
        );
      default:
        return new LifeboatError("STORAGE_ERROR", `SFTP error at ${where(name)}: ${msg}`, undefined, e);
    }
  }

  /** Runs `fn` on the shared connection; maps failures (a lost connection is UNREACHABLE). */
  async function run<T>(name: string, fn: (sftp: SFTPWrapper) => Promise<T>): Promise<T> {
    const conn = await connection();
    try {
      return await fn(conn.sftp);
    } catch (e) {
      throw mapError(e, conn, name);
    }
  }

  /** Sessions whose connection is gone: ssh2 would queue a request there and never answer it. */
  const dead = new WeakSet<SFTPWrapper>();

  const conns = new WeakMap<SFTPWrapper, Conn>();

  /** One SFTP request. While any is waiting, the socket keeps the process alive. */
  const call = <T>(
    sftp: SFTPWrapper,
    f: (cb: (err: Error | undefined | null, v: T) => void) => void,
  ): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      if (dead.has(sftp)) {
        reject(new Error("Not connected"));
        return;
      }
      const conn = conns.get(sftp);
      if (conn) {
        if (conn.inflight++ === 0) {
          conn.lastHeard = Date.now();
          conn.sock?.ref();
        }
      }
      let done = false;
      const settle = () => {
        if (done) return;
        done = true;
        if (conn && --conn.inflight === 0) conn.sock?.unref();
      };
      try {
        f((err, v) => {
          settle();
          if (err) reject(err);
          else resolve(v);
        });
      } catch (e) {
        settle();
        reject(e);
      }
    });

  const statOf = (sftp: SFTPWrapper, p: string) => call<Stats>(sftp, (cb) => sftp.stat(p, cb));

  async function mkdirp(sftp: SFTPWrapper, dir: string): Promise<void> {
    if (madeDirs.has(dir) || dir === "/" || dir === "." || dir === "") return;
    try {
      await call<void>(sftp, (cb) => sftp.mkdir(dir, { mode: 0o700 }, (err) => cb(err, undefined)));
    } catch (e) {
      const code = sftpCode(e);
      if (code === FX.NO_SUCH_FILE) {
        await mkdirp(sftp, path.posix.dirname(dir));
        await mkdirp(sftp, dir);
        return;
      }
      // OpenSSH answers FAILURE for "exists"; anything else that is a folder is fine too.
      const st = await statOf(sftp, dir).catch(() => undefined);
      if (!st?.isDirectory()) throw e;
    }
    madeDirs.add(dir);
  }

  async function writeAll(sftp: SFTPWrapper, handle: Buffer, data: Buffer): Promise<void> {
    let next = 0;
    const worker = async () => {
      while (next < data.length) {
        const off = next;
        const len = Math.min(PIECE, data.length - off);
        next += len;
        await call<void>(sftp, (cb) => sftp.write(handle, data, off, len, off, (err) => cb(err, undefined)));
      }
    };
    await Promise.all(Array.from({ length: Math.min(IN_FLIGHT, Math.ceil(data.length / PIECE)) }, worker));
  }

  /** Reads `length` bytes at `offset`; stops early at the end of the file. */
  async function readAll(sftp: SFTPWrapper, handle: Buffer, offset: number, length: number): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(length);
    let end = length; // first byte not read because the file ended
    let next = 0;
    const worker = async () => {
      while (next < length && next < end) {
        const off = next;
        const len = Math.min(PIECE, length - off);
        next += len;
        let got = 0;
        while (got < len) {
          const n = await call<number>(sftp, (cb) =>
            sftp.read(handle, buf, off + got, len - got, offset + off + got, (err, bytes) => cb(err, bytes)),
          );
          if (n === 0) break;
          got += n;
        }
        if (got < len) end = Math.min(end, off + got);
      }
    };
    await Promise.all(
      Array.from({ length: Math.min(IN_FLIGHT, Math.max(1, Math.ceil(length / PIECE))) }, worker),
    );
    return end === length ? buf : buf.subarray(0, end);
  }

  async function closeHandle(sftp: SFTPWrapper, handle: Buffer): Promise<void> {
    await call<void>(sftp, (cb) => sftp.close(handle, (err) => cb(err, undefined)));
  }

  async function renameOver(sftp: SFTPWrapper, from: string, to: string): Promise<void> {
    try {
      await call<void>(sftp, (cb) => sftp.ext_openssh_rename(from, to, (err) => cb(err, undefined)));
      return;
    } catch (e) {
      if (!/does not support/i.test(e instanceof Error ? e.message : "")) throw e;
    }
    // Plain SFTP rename refuses an existing target. Names are content-addressed, so the object
    // there already holds the same bytes: removing it first loses nothing.
    try {
      await call<void>(sftp, (cb) => sftp.rename(from, to, (err) => cb(err, undefined)));
    } catch (e) {
      const st = await statOf(sftp, to).catch(() => undefined);
      if (!st) throw e;
      await call<void>(sftp, (cb) => sftp.unlink(to, (err) => cb(err, undefined)));
      await call<void>(sftp, (cb) => sftp.rename(from, to, (err) => cb(err, undefined)));
    }
  }

  /** After a FAILURE status on write: a full disk is reported as such. */
  async function fullDisk(sftp: SFTPWrapper, dir: string, need: number): Promise<boolean> {
    try {
      const v = await call<{ f_bavail: number; f_frsize: number }>(sftp, (cb) =>
        sftp.ext_openssh_statvfs(dir, cb),
      );
      return v.f_bavail * v.f_frsize < need + 64 * 1024;
    } catch {
      return false;
    }
  }

  return {
    location: options.url,
    capabilities: { retention: false, appendOnly: false },

    async exists() {
      return run("", async (sftp) => {
        try {
          return (await statOf(sftp, rootDir)).isDirectory();
        } catch (e) {
          if (sftpCode(e) === FX.NO_SUCH_FILE) return false;
          throw e;
        }
      });
    },

    async create() {
      await run("", (sftp) => mkdirp(sftp, rootDir));
    },

    async get(name: string, opts?: GetOptions) {
      const file = full(name);
      return run(name, async (sftp) => {
        const handle = await call<Buffer>(sftp, (cb) => sftp.open(file, "r", cb));
        try {
          const offset = opts?.offset ?? 0;
          let length = opts?.length;
          if (length === undefined) {
            const st = await call<Stats>(sftp, (cb) => sftp.fstat(handle, cb));
            length = Math.max(0, st.size - offset);
          }
          if (length === 0) return Buffer.alloc(0);
          return await readAll(sftp, handle, offset, length);
        } finally {
          await closeHandle(sftp, handle).catch(() => {});
        }
      });
    },

    async stat(name: string) {
      const file = full(name);
      return run(name, async (sftp) => {
        try {
          const st = await statOf(sftp, file);
          return { name, size: st.size };
        } catch (e) {
          if (sftpCode(e) === FX.NO_SUCH_FILE) return undefined;
          throw e;
        }
      });
    },

    async put(name: string, data: Buffer) {
      const file = full(name);
      const dir = path.posix.dirname(file);
      const tmp = `${dir}/${TEMP_PREFIX}${randomBytes(8).toString("hex")}`;
      await run(name, async (sftp) => {
        const openTmp = () => call<Buffer>(sftp, (cb) => sftp.open(tmp, "wx", { mode: 0o600 }, cb));
        let handle: Buffer;
        try {
          handle = await openTmp();
        } catch (e) {
          if (sftpCode(e) !== FX.NO_SUCH_FILE) throw e;
          madeDirs.delete(dir);
          await mkdirp(sftp, dir);
          handle = await openTmp();
        }
        try {
          try {
            await writeAll(sftp, handle, data);
            await call<void>(sftp, (cb) => sftp.ext_openssh_fsync(handle, (err) => cb(err, undefined))).catch(
              (e) => {
                if (!/does not support/i.test(e instanceof Error ? e.message : "")) throw e;
              },
            );
          } catch (e) {
            await closeHandle(sftp, handle).catch(() => {});
            throw e;
          }
          await closeHandle(sftp, handle);
          await renameOver(sftp, tmp, file);
        } catch (e) {
          if (sftpCode(e) !== undefined) {
            await call<void>(sftp, (cb) => sftp.unlink(tmp, (err) => cb(err, undefined))).catch(() => {});
            if (sftpCode(e) === FX.FAILURE && (await fullDisk(sftp, dir, data.length))) {
              throw new LifeboatError(
                "STORAGE_FULL",
                `no space left on the SFTP server while writing ${where(name)}`,
                "free space on the server (or run `lifeboat prune`), then run the command again; nothing was damaged",
                e,
              );
            }
          }
          throw e;
        }
      });
    },

    async *list(prefix: string): AsyncIterable<ObjectInfo> {
      // A folder prefix ("data/") is walked; a partial name ("data/ab") walks its folder and filters.
      const folder = prefix === "" || prefix.endsWith("/") ? prefix : path.posix.dirname(prefix);
      const start = folder === "" || folder === "." ? root : `${root}/${folder.replace(/\/+$/, "")}`;
      const conn = await connection();
      const stack = [start];
      while (stack.length > 0) {
        const dir = stack.pop()!;
        let entries: Awaited<ReturnType<typeof readdir>>;
        try {
          entries = await readdir(conn.sftp, dir);
        } catch (e) {
          if (sftpCode(e) === FX.NO_SUCH_FILE) continue;
          throw mapError(e, conn, dir.slice(root.length + 1));
        }
        entries.sort((a, b) => (a.filename < b.filename ? -1 : a.filename > b.filename ? 1 : 0));
        for (const ent of entries) {
          if (ent.filename === "." || ent.filename === ".." || ent.filename.startsWith(TEMP_PREFIX)) continue;
          const p = `${dir}/${ent.filename}`;
          if (ent.attrs.isDirectory()) {
            stack.push(p);
          } else if (ent.attrs.isFile()) {
            const name = p.slice(root.length + 1);
            if (name.startsWith(prefix)) yield { name, size: ent.attrs.size };
          }
        }
      }
    },

    async delete(name: string) {
      const file = full(name);
      await run(name, async (sftp) => {
        try {
          await call<void>(sftp, (cb) => sftp.unlink(file, (err) => cb(err, undefined)));
        } catch (e) {
          if (sftpCode(e) !== FX.NO_SUCH_FILE) throw e;
        }
      });
    },

    async close() {
      closing = true;
      const c = live ?? (await pending?.catch(() => undefined));
      if (c && !c.closed) {
        c.sock?.ref(); // until the goodbye is sent
        await new Promise<void>((resolve) => {
          c.client.once("close", () => resolve());
          c.client.end();
          setTimeout(resolve, 2000).unref();
        });
      }
      live = undefined;
    },
  };

  function readdir(sftp: SFTPWrapper, dir: string) {
    return call<Parameters<Parameters<SFTPWrapper["readdir"]>[1]>[1]>(sftp, (cb) => sftp.readdir(dir, cb));
  }
}
