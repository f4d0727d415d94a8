/**
 * Real storage servers for backend tests, all bound to 127.0.0.1 in temporary folders:
 * s3rver (S3 API, with SigV4 signatures checked here because s3rver itself does not), OpenSSH's
 * sshd (SFTP), and a TCP proxy that can cut connections after some bytes.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { createHash, createHmac } from "node:crypto";
import { promises as fs } from "node:fs";
import type { IncomingMessage } from "node:http";
import { createRequire } from "node:module";
import net, { type AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ensurePackages } from "./apt.js";
import { tempDir } from "./cli.js";

const require = createRequire(import.meta.url);

interface KoaContext {
  req: IncomingMessage;
  method: string;
  status: number;
  type: string;
  body: unknown;
}
type KoaMiddleware = (ctx: KoaContext, next: () => Promise<void>) => Promise<void>;
interface S3rverInstance {
  middleware: KoaMiddleware[];
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
}
type S3rverClass = new (options: Record<string, unknown>) => S3rverInstance;

export interface S3Server {
  port: number;
  /** `http://127.0.0.1:PORT` */
  endpoint: string;
  dir: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** `s3:http://127.0.0.1:PORT/BUCKET[/PREFIX]` */
  url(bucket: string, prefix?: string): string;
  /** Credentials for the CLI (merge into baseEnv). */
  env(): Record<string, string>;
  stop(): Promise<void>;
}

const sha256 = (s: string | Buffer) => createHash("sha256").update(s).digest("hex");
const hmac = (key: string | Buffer, s: string) => createHmac("sha256", key).update(s).digest();
const rfc3986 = (s: string) =>
  encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

function decode(s: string): string {
  try {
    return decodeURIComponent(s.replace(/\+/g, "%20"));
  } catch {
    return s;
  }
}

/**
 * AWS Signature Version 4 check for header-signed requests, as S3 does it (the path is signed as
 * sent). Returns undefined when the signature is right, else the S3 error code to answer with.
 */
function checkSigV4(req: IncomingMessage, secrets: Map<string, string>): string | undefined {
  const auth = req.headers.authorization;
  if (typeof auth !== "string") return "AccessDenied";
  const m =
    /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request,\s*SignedHeaders=([^,]+),\s*Signature=([0-9a-f]+)$/.exec(
      auth,
    );
  if (!m) return "AccessDenied";
  const [, akid, day, region, service, signedHeaders, signature] = m as unknown as string[];
  const secret = secrets.get(akid!);
  if (secret === undefined) return "InvalidAccessKeyId";
  const url = req.url ?? "/";
  const q = url.indexOf("?");
  const rawPath = q < 0 ? url : url.slice(0, q);
  const rawQuery = q < 0 ? "" : url.slice(q + 1);
  const query = rawQuery
    .split("&")
    .filter((kv) => kv !== "")
    .map((kv) => {
      const i = kv.indexOf("=");
      return [
        rfc3986(decode(i < 0 ? kv : kv.slice(0, i))),
        rfc3986(decode(i < 0 ? "" : kv.slice(i + 1))),
      ] as const;
    })
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join("&");
  const headers = signedHeaders!
    .split(";")
    .map((h) => {
      const v = req.headers[h];
      const value = Array.isArray(v) ? v.join(",") : (v ?? "");
      return `${h}:${value.trim().replace(/\s+/g, " ")}\n`;
    })
    .join("");
  const payload = (req.headers["x-amz-content-sha256"] as string | undefined) ?? sha256("");
  const canonical = [req.method, rawPath, query, headers, signedHeaders, payload].join("\n");
  const amzDate = (req.headers["x-amz-date"] as string | undefined) ?? "";
  const toSign = [
    "AWS4-HMAC-SHA256",
    amzDate,
    `${day}/${region}/${service}/aws4_request`,
    sha256(canonical),
  ].join("\n");
  let key = hmac(`AWS4${secret}`, day!);
  key = hmac(key, region!);
  key = hmac(key, service!);
  key = hmac(key, "aws4_request");
  return hmac(key, toSign).toString("hex") === signature ? undefined : "SignatureDoesNotMatch";
}

/**
 * Runs s3rver in this process (child mode, see the end of this file): prints `{"port":N}` on
 * stdout once listening and stops when stdin closes.
 */
async function s3rverChild(dir: string, buckets: string[]): Promise<void> {
  const S3rver = require("s3rver") as S3rverClass;
  const secrets = new Map([[S3_KEY_ID, S3_SECRET]]);
  const server = new S3rver({
    address: "127.0.0.1",
    port: 0,
    silent: process.env.S3RVER_LOUD !== "1",
    directory: dir,
    configureBuckets: buckets.map((name) => ({ name })),
  });
  // Runs before s3rver's own middleware (Koa composes the array when the server starts).
  server.middleware.unshift(async (ctx, next) => {
    const code = checkSigV4(ctx.req, secrets);
    if (code) {
      ctx.status = 403;
      ctx.type = "application/xml";
      ctx.body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${code}</Message></Error>`;
      return;
    }
    await next();
  });
  const addr = await server.run();
  process.stdout.write(`${JSON.stringify({ port: addr.port })}\n`);
  process.stdin.resume();
  process.stdin.on("end", () => {
    void server.close().finally(() => process.exit(0));
  });
}

const S3_KEY_ID = "S3RVER";
const S3_SECRET = "S3RVER";

/**
 * Starts s3rver on 127.0.0.1 (a free port) with `buckets` created, storing into a temp folder.
 * It runs in a child process with OpenSSL's legacy provider: s3rver encrypts list continuation
 * tokens with DES, which Node 17+ refuses otherwise (every paginated list would fail).
 */
export async function startS3rver(buckets: string[] = []): Promise<S3Server> {
  const dir = await tempDir("lifeboat-s3rver-");
  const child = spawn(
    process.execPath,
    ["--openssl-legacy-provider", fileURLToPath(import.meta.url), "s3rver-child", dir, ...buckets],
    { stdio: ["pipe", "pipe", "inherit"] },
  );
  const port = await new Promise<number>((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf("\n");
      if (nl >= 0) resolve((JSON.parse(out.slice(0, nl)) as { port: number }).port);
    });
    child.once("exit", (code) => reject(new Error(`s3rver exited with ${code} before listening`)));
    child.once("error", reject);
  });
  const endpoint = `http://127.0.0.1:${port}`;
  return {
    port,
    endpoint,
    dir,
    accessKeyId: S3_KEY_ID,
    secretAccessKey: S3_SECRET,
    url: (bucket, prefix) => `s3:${endpoint}/${bucket}${prefix ? `/${prefix}` : ""}`,
    env: () => ({
      AWS_ACCESS_KEY_ID: S3_KEY_ID,
      AWS_SECRET_ACCESS_KEY: S3_SECRET,
      AWS_REGION: "us-east-1",
      AWS_EC2_METADATA_DISABLED: "true",
    }),
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const gone = new Promise((r) => child.once("exit", r));
        child.stdin!.end();
        const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
        await gone;
        clearTimeout(timer);
      }
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}

export interface Proxy {
  port: number;
  /** Connections accepted so far. */
  readonly connections: number;
  /** Connections cut so far. */
  readonly cut: number;
  /** How many more connections to cut once they have carried `afterBytes` towards the server. */
  setCuts(count: number, afterBytes: number): void;
  stop(): Promise<void>;
}

/**
 * A TCP proxy on 127.0.0.1 to `127.0.0.1:targetPort`. The first `cuts` connections that carry
 * more than `afterBytes` bytes from the client are destroyed at that point (both sides), as a
 * network drop mid-upload would.
 */
export async function startProxy(targetPort: number, cuts = 0, afterBytes = 0): Promise<Proxy> {
  let budget = cuts;
  let threshold = afterBytes;
  let connections = 0;
  let cut = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    connections++;
    let sent = 0;
    const upstream = net.connect(targetPort, "127.0.0.1");
    sockets.add(client);
    sockets.add(upstream);
    const kill = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("close", () => {
      sockets.delete(client);
      upstream.destroy();
    });
    upstream.on("close", () => {
      sockets.delete(upstream);
      client.destroy();
    });
    client.on("error", kill);
    upstream.on("error", kill);
    client.on("data", (d: Buffer) => {
      sent += d.length;
      if (budget > 0 && sent > threshold) {
        budget--;
        cut++;
        // Forward part of this piece so the server sees a truncated request, then cut.
        upstream.end(d.subarray(0, Math.max(0, d.length - (sent - threshold))));
        client.destroy();
        return;
      }
      if (!upstream.write(d)) client.pause();
    });
    upstream.on("drain", () => client.resume());
    upstream.on("data", (d: Buffer) => {
      if (!client.write(d)) upstream.pause();
    });
    client.on("drain", () => upstream.resume());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    get connections() {
      return connections;
    },
    get cut() {
      return cut;
    },
    setCuts(count: number, bytes: number) {
      budget = count;
      threshold = bytes;
    },
    stop: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A port that was free a moment ago (for servers that cannot be told to pick one). */
export async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(0, "127.0.0.1", resolve));
  const port = (srv.address() as AddressInfo).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, "127.0.0.1");
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

export interface SshServer {
  port: number;
  dir: string;
  user: string;
  /** Private key the server accepts (OpenSSH format, no passphrase). */
  clientKey: string;
  /** A known_hosts file that lists the server's host key. */
  knownHosts: string;
  /** The host key line's key part (`ssh-ed25519 AAAA...`). */
  hostKey: string;
  /** A folder on the server for repositories (the server is this machine). */
  root: string;
  /** `sftp://USER@127.0.0.1:PORT/ABS` for a folder below `root`. */
  url(sub: string, port?: number): string;
  /** Lists the host key in `knownHosts` for another port too (a proxy in front of sshd). */
  trustPort(port: number): Promise<void>;
  /** Environment for the CLI: key, known_hosts, no agent. */
  env(): Record<string, string>;
  stop(): Promise<void>;
}

/**
 * Starts OpenSSH's sshd on 127.0.0.1 with a generated host key, accepting one generated client
 * key for the current user, with the internal SFTP server (installs openssh-server if missing).
 */
export async function startSshd(): Promise<SshServer> {
  ensurePackages({ "/usr/sbin/sshd": "openssh-server", "/usr/bin/ssh-keygen": "openssh-client" });
  await fs.mkdir("/run/sshd", { recursive: true, mode: 0o755 });
  const dir = await tempDir("lifeboat-sshd-");
  const keygen = (file: string) =>
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "lifeboat-test", "-f", file], {
      stdio: "ignore",
    });
  const hostKeyFile = path.join(dir, "host_ed25519");
  const clientKey = path.join(dir, "client_ed25519");
  keygen(hostKeyFile);
  keygen(clientKey);
  await fs.copyFile(`${clientKey}.pub`, path.join(dir, "authorized_keys"));
  const hostKey = (await fs.readFile(`${hostKeyFile}.pub`, "utf8")).trim().split(/\s+/).slice(0, 2).join(" ");
  const root = path.join(dir, "srv");
  await fs.mkdir(root, { mode: 0o700 });
  const user = os.userInfo().username;
  let proc: ChildProcess | undefined;
  let port = 0;
  let stderr = "";
  for (let attempt = 0; attempt < 5 && !proc; attempt++) {
    port = await freePort();
    const config = path.join(dir, "sshd_config");
    await fs.writeFile(
      config,
      [
        "ListenAddress 127.0.0.1",
        `HostKey ${hostKeyFile}`,
        `PidFile ${path.join(dir, "sshd.pid")}`,
        `AuthorizedKeysFile ${path.join(dir, "authorized_keys")}`,
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "PermitRootLogin prohibit-password",
        "StrictModes no",
        "MaxStartups 50",
        "MaxSessions 50",
        "LogLevel ERROR",
        "Subsystem sftp internal-sftp",
        "",
      ].join("\n"),
    );
    const child = spawn("/usr/sbin/sshd", ["-D", "-e", "-f", config, "-p", String(port)], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    child.stderr!.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    let exited = false;
    child.once("exit", () => {
      exited = true;
    });
    for (let i = 0; i < 100 && !exited; i++) {
      if (await canConnect(port)) {
        proc = child;
        break;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    if (!proc && !exited) child.kill("SIGKILL");
  }
  if (!proc) throw new Error(`sshd did not start: ${stderr}`);
  const knownHosts = path.join(dir, "known_hosts");
  await fs.writeFile(knownHosts, `[127.0.0.1]:${port} ${hostKey}\n`);
  const running = proc;
  return {
    port,
    dir,
    user,
    clientKey,
    knownHosts,
    hostKey,
    root,
    url: (sub, p = port) => `sftp://${user}@127.0.0.1:${p}${path.join(root, sub)}`,
    trustPort: (p) => fs.appendFile(knownHosts, `[127.0.0.1]:${p} ${hostKey}\n`),
    env: () => ({ LIFEBOAT_SFTP_KEY: clientKey, LIFEBOAT_SFTP_KNOWN_HOSTS: knownHosts, SSH_AUTH_SOCK: "" }),
    stop: async () => {
      if (running.exitCode === null && running.signalCode === null) {
        const gone = new Promise((r) => running.once("exit", r));
        running.kill("SIGTERM");
        await gone;
      }
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}

// Child mode: `node --openssl-legacy-provider servers.js s3rver-child DIR [BUCKET...]`.
if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv[2] === "s3rver-child") {
  await s3rverChild(process.argv[3]!, process.argv.slice(4));
}
