import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, promises as fs } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { ImapFlow } from "imapflow";
import { ensurePackages } from "./apt.js";

/** A private dovecot on 127.0.0.1 for tests: its own config, users, maildirs, state and logs. */
export interface Dovecot {
  port: number;
  /** Temporary folder holding config, mail and state (removed by stop()). */
  dir: string;
  user: string;
  password: string;
  /** The user's Maildir++ root on disk. */
  maildir: string;
  url: string;
  /** With `tls`: the imaps port (the plain port then offers STARTTLS), and the CA/cert file. */
  tlsPort?: number;
  certFile?: string;
  /** An authenticated imapflow client (for seeding and for checking the server state). */
  client(password?: string): Promise<ImapFlow>;
  /** The same for another user of `DovecotOptions.users` (its password unless one is given). */
  clientAs(user: string, password?: string): Promise<ImapFlow>;
  /** `imap://USER@127.0.0.1:PORT` for another user. */
  urlFor(user: string): string;
  stop(): Promise<void>;
}

/** The Unix user dovecot stores mail as (nobody/nogroup). */
export const MAIL_UID = 65534;

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

async function waitForGreeting(port: number, proc: ChildProcess, logFile: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (proc.exitCode !== null) {
      const log = await fs.readFile(logFile, "utf8").catch(() => "");
      throw new Error(`dovecot exited with ${proc.exitCode}:\n${log}`);
    }
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, "127.0.0.1");
      s.once("data", (d) => {
        s.destroy();
        resolve(d.toString().startsWith("* OK"));
      });
      s.once("error", () => resolve(false));
      s.setTimeout(1000, () => {
        s.destroy();
        resolve(false);
      });
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`dovecot did not answer on 127.0.0.1:${port}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export interface DovecotOptions {
  user?: string;
  password?: string;
  /** Extra lines for dovecot.conf (e.g. to change the capabilities offered). */
  extraConfig?: string;
  /** Serve TLS with a fresh self-signed certificate: imaps on its own port, STARTTLS on the plain one. */
  tls?: boolean;
  /** More users besides `user`: name → password (each with its own empty Maildir). */
  users?: Record<string, string>;
}

export async function startDovecot(o: DovecotOptions = {}): Promise<Dovecot> {
  ensurePackages({ "/usr/sbin/dovecot": "dovecot-imapd" });
  const user = o.user ?? "ann";
  const password = o.password ?? "mail-secret";
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "lb-dovecot-"));
  // dovecot's unprivileged processes must be able to reach their sockets and the mail.
  await fs.chmod(dir, 0o755);
  const mailRoot = path.join(dir, "mail");
  await fs.mkdir(mailRoot);
  await fs.chown(mailRoot, MAIL_UID, MAIL_UID);
  const port = await freePort();
  const tlsPort = o.tls ? await freePort() : undefined;
  const certFile = path.join(dir, "cert.pem");
  const keyFile = path.join(dir, "key.pem");
  if (o.tls) {
    execFileSync(
      "openssl",
      ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost"].concat([
        "-keyout",
        keyFile,
        "-out",
        certFile,
      ]),
      { stdio: "ignore" },
    );
  }
  const sslConfig = o.tls
    ? `ssl = yes\nssl_cert = <${certFile}\nssl_key = <${keyFile}\n` +
      (existsSync("/usr/share/dovecot/dh.pem") ? "ssl_dh = </usr/share/dovecot/dh.pem\n" : "")
    : "ssl = no\n";
  const log = path.join(dir, "dovecot.log");
  const accounts: Record<string, string> = { ...o.users, [user]: password };
  await fs.writeFile(
    path.join(dir, "passwd"),
    Object.entries(accounts)
      .map(([u, pw]) => `${u}:{PLAIN}${pw}:${MAIL_UID}:${MAIL_UID}::${mailRoot}/${u}::\n`)
      .join(""),
  );
  const conf = path.join(dir, "dovecot.conf");
  await fs.writeFile(
    conf,
    `protocols = imap
listen = 127.0.0.1
base_dir = ${dir}/run
state_dir = ${dir}/state
log_path = ${log}
${sslConfig}disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
first_valid_uid = 1
first_valid_gid = 1
mail_location = maildir:${mailRoot}/%u
mail_uid = ${MAIL_UID}
mail_gid = ${MAIL_UID}
passdb {
  driver = passwd-file
  args = scheme=PLAIN ${dir}/passwd
}
userdb {
  driver = passwd-file
  args = ${dir}/passwd
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = ${port}
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = ${tlsPort ?? 0}
  }
}
service anvil {
  chroot =
}
namespace inbox {
  inbox = yes
  separator = /
}
${o.extraConfig ?? ""}
`,
  );
  await fs.mkdir(path.join(dir, "state"));
  const proc = spawn("/usr/sbin/dovecot", ["-F", "-c", conf], { stdio: ["ignore", "ignore", "pipe"] });
  const stderr: Buffer[] = [];
  proc.stderr!.on("data", (d: Buffer) => stderr.push(d));
  try {
    await waitForGreeting(port, proc, log);
  } catch (e) {
    proc.kill("SIGKILL");
    throw new Error(`${(e as Error).message}\n${Buffer.concat(stderr).toString()}`);
  }
  const d: Dovecot = {
    port,
    dir,
    user,
    password,
    maildir: path.join(mailRoot, user),
    url: `imap://${user}@127.0.0.1:${port}`,
    ...(tlsPort ? { tlsPort, certFile } : {}),
    client(pw = password) {
      return d.clientAs(user, pw);
    },
    urlFor: (u) => `imap://${u}@127.0.0.1:${port}`,
    async clientAs(u, pw) {
      const pass = pw ?? accounts[u];
      if (pass === undefined) throw new Error(`no dovecot user ${u}`);
      const c = new ImapFlow({
        host: "127.0.0.1",
        port,
        secure: false,
        auth: { user: u, pass },
        logger: false,
        disableAutoIdle: true,
        // The test's own server with its own throwaway certificate (STARTTLS when tls is on).
        tls: { rejectUnauthorized: false },
      });
      c.on("error", () => {});
      await c.connect();
      return c;
    },
    async stop() {
      if (proc.exitCode === null) {
        const exited = new Promise((r) => proc.once("exit", r));
        proc.kill("SIGTERM");
        await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
        if (proc.exitCode === null) proc.kill("SIGKILL");
      }
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
  return d;
}
