import { promises as fs } from "node:fs";
import http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { type Backend, objectName } from "../../backend/backend.js";
import { localBackend } from "../../backend/local.js";
import { isLifeboatError, LifeboatError } from "../../core/errors.js";
import type { Users } from "./users.js";

/**
 * `lifeboat serve`: repositories over HTTP for `rest:` URLs. Layout (docs/backends.md):
 *   GET|HEAD|PUT|DELETE /[REPO/]objects/NAME   one object (GET takes a Range header)
 *   GET /[REPO/]list?prefix=P                  JSON lines {name,size}
 *   GET /[REPO/]exists, POST /[REPO/]create    the repository folder
 * REPO is one path segment (a folder under --path); with `privateRepos` a user may only use the
 * repository named like them. In append-only mode objects are never deleted or replaced —
 * except `sessions/`, the markers of running backups — so a thief holding a client's
 * credentials cannot destroy existing backups.
 */
export interface ServeOptions {
  root: string;
  host: string;
  port: number;
  appendOnly: boolean;
  /** Undefined means no authentication (refused unless the host is loopback). */
  users: Users | undefined;
  privateRepos: boolean;
  tls?: { cert: Buffer; key: Buffer };
  /** Largest object accepted (bytes). */
  maxObject?: number;
  log?: (line: string) => void;
}

const VERBS = new Set(["objects", "list", "exists", "create"]);
const SEGMENT = /^[A-Za-z0-9._-]+$/;
const DELETABLE_WHEN_APPEND_ONLY = "sessions/";

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

export async function startServer(o: ServeOptions): Promise<{ server: http.Server; url: string }> {
  if (!o.users && !isLoopback(o.host))
    throw new LifeboatError(
      "USAGE",
      `--no-auth on ${o.host} would let anyone on the network read and write the repositories`,
      "use --htpasswd or --tokens, or listen on 127.0.0.1",
    );
  await fs.mkdir(o.root, { recursive: true, mode: 0o700 });
  const backends = new Map<string, Backend>();
  const backendFor = (repo: string) => {
    let b = backends.get(repo);
    if (!b) {
      b = localBackend({ path: repo ? path.join(o.root, repo) : o.root });
      backends.set(repo, b);
    }
    return b;
  };
  const max = o.maxObject ?? 512 * 1024 * 1024;
  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    handle(req, res).catch((e: unknown) => {
      const status = e instanceof HttpError ? e.status : statusOf(e);
      const message = e instanceof Error ? e.message : String(e);
      if (!res.headersSent) {
        res.writeHead(status, { "content-type": "text/plain; charset=utf-8" });
        res.end(`${message}\n`);
      } else res.destroy();
      o.log?.(`${req.method} ${req.url} -> ${status} ${message}`);
    });
  };
  const handle = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    let user: string | undefined;
    if (o.users) {
      user = o.users.check(req.headers.authorization);
      if (!user) {
        res.writeHead(401, { "www-authenticate": 'Basic realm="lifeboat"', "content-type": "text/plain" });
        res.end("authentication required\n");
        return;
      }
    }
    const url = new URL(req.url ?? "/", "http://x");
    const parts = url.pathname.split("/").filter(Boolean).map(decodeURIComponent);
    let repo = "";
    if (parts.length > 0 && !VERBS.has(parts[0]!)) repo = parts.shift()!;
    if (repo && (!SEGMENT.test(repo) || repo === "." || repo === ".."))
      throw new HttpError(400, "bad repository name");
    if (o.privateRepos && repo !== user)
      throw new HttpError(403, `user ${user ?? "?"} may only use the repository /${user ?? "?"}/`);
    const verb = parts.shift();
    const backend = backendFor(repo);
    if (verb === "exists" && req.method === "GET") return sendJson(res, { exists: await backend.exists() });
    if (verb === "create" && req.method === "POST") {
      await backend.create();
      return sendJson(res, { ok: true });
    }
    if (verb === "list" && req.method === "GET") {
      const prefix = url.searchParams.get("prefix") ?? "";
      if (prefix && !/^[A-Za-z0-9._/-]*$/.test(prefix)) throw new HttpError(400, "bad prefix");
      res.writeHead(200, { "content-type": "application/x-ndjson" });
      for await (const obj of backend.list(prefix)) res.write(`${JSON.stringify(obj)}\n`);
      res.end();
      return;
    }
    if (verb !== "objects" || parts.length === 0) throw new HttpError(404, "no such endpoint");
    const name = parts.join("/");
    try {
      // Validates the name: no "..", no odd bytes.
      objectName(name);
    } catch {
      throw new HttpError(400, "bad object name");
    }
    switch (req.method) {
      case "HEAD": {
        const st = await backend.stat(name);
        res.writeHead(st ? 200 : 404, st ? { "content-length": st.size } : {});
        res.end();
        return;
      }
      case "GET": {
        const range = parseRange(req.headers.range);
        const data = await backend.get(name, range);
        res.writeHead(range ? 206 : 200, {
          "content-type": "application/octet-stream",
          "content-length": data.length,
        });
        res.end(data);
        return;
      }
      case "PUT": {
        const body = await readBody(req, max);
        if (o.appendOnly) {
          const existing = await backend.stat(name);
          if (existing) {
            // Retried uploads of the same content are fine; anything else would be an overwrite.
            const same = existing.size === body.length && (await backend.get(name)).equals(body);
            if (!same) throw new HttpError(403, "append-only: refusing to overwrite an existing object");
            return sendJson(res, { ok: true });
          }
        }
        await backend.put(name, body);
        return sendJson(res, { ok: true });
      }
      case "DELETE": {
        if (o.appendOnly && !name.startsWith(DELETABLE_WHEN_APPEND_ONLY))
          throw new HttpError(403, "append-only: refusing to delete; run forget/prune on the server itself");
        await backend.delete(name);
        return sendJson(res, { ok: true });
      }
      default:
        throw new HttpError(405, "method not allowed");
    }
  };
  const server = o.tls
    ? https.createServer({ cert: o.tls.cert, key: o.tls.key }, handler)
    : http.createServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once("error", (e) =>
      reject(
        new LifeboatError(
          "USAGE",
          `cannot listen on ${o.host}:${o.port}: ${e.message}`,
          "choose another --listen address or port",
        ),
      ),
    );
    server.listen(o.port, o.host, resolve);
  });
  const port = (server.address() as AddressInfo).port;
  const host = o.host.includes(":") ? `[${o.host}]` : o.host;
  return { server, url: `${o.tls ? "https" : "http"}://${host}:${port}/` };
}

function sendJson(res: http.ServerResponse, obj: unknown): void {
  const body = Buffer.from(`${JSON.stringify(obj)}\n`);
  res.writeHead(200, { "content-type": "application/json", "content-length": body.length });
  res.end(body);
}

function parseRange(h: string | undefined): { offset: number; length?: number } | undefined {
  if (!h) return undefined;
  const m = /^bytes=(\d+)-(\d*)$/.exec(h.trim());
  if (!m) throw new HttpError(416, "only single byte ranges are supported");
  const offset = Number(m[1]);
  return m[2] ? { offset, length: Number(m[2]) - offset + 1 } : { offset };
}

function readBody(req: http.IncomingMessage, max: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (d: Buffer) => {
      size += d.length;
      if (size > max) {
        reject(new HttpError(413, "object too large"));
        req.destroy();
      } else chunks.push(d);
    });
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

function statusOf(e: unknown): number {
  if (!isLifeboatError(e)) return 500;
  switch (e.code) {
    case "NOT_FOUND":
      return 404;
    case "STORAGE_FULL":
      return 507;
    case "PERMISSION_DENIED":
      return 403;
    default:
      return 500;
  }
}
