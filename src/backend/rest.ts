import { LifeboatError } from "../core/errors.js";
import type { Backend, GetOptions, ObjectInfo } from "./backend.js";
import { objectName } from "./backend.js";

/**
 * A repository on a `lifeboat serve` server: `rest:http(s)://[USER[:PASSWORD]@]HOST:PORT/[REPO]`.
 * The password may also come from LIFEBOAT_REST_PASSWORD, a bearer token from
 * LIFEBOAT_REST_TOKEN. Extra CA certificates: NODE_EXTRA_CA_CERTS. See docs/backends.md.
 */
export interface RestTarget {
  base: string;
  authorization: string | undefined;
  display: string;
}

export function parseRestUrl(rest: string): RestTarget {
  let u: URL;
  try {
    u = new URL(rest);
  } catch {
    throw new LifeboatError(
      "USAGE",
      `not a rest: URL: rest:${rest}`,
      "write rest:http://HOST:PORT/ or rest:https://USER@HOST:PORT/REPO",
    );
  }
  if (u.protocol !== "http:" && u.protocol !== "https:")
    throw new LifeboatError(
      "USAGE",
      `rest: URLs use http or https, not ${u.protocol}`,
      "write rest:https://HOST:PORT/REPO",
    );
  const user = decodeURIComponent(u.username);
  const password = decodeURIComponent(u.password) || process.env.LIFEBOAT_REST_PASSWORD || "";
  const token = process.env.LIFEBOAT_REST_TOKEN;
  const authorization = token
    ? `Bearer ${token}`
    : user
      ? `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`
      : undefined;
  u.username = "";
  u.password = "";
  const base = u.toString().replace(/\/?$/, "/");
  return { base, authorization, display: `rest:${base}` };
}

export function restBackend(t: RestTarget): Backend {
  const call = async (method: string, pathAndQuery: string, init: { body?: Buffer; range?: string } = {}) => {
    const headers: Record<string, string> = {};
    if (t.authorization) headers.authorization = t.authorization;
    if (init.range) headers.range = init.range;
    let res: Response;
    try {
      res = await fetch(t.base + pathAndQuery, {
        method,
        headers,
        ...(init.body ? { body: init.body } : {}),
        signal: AbortSignal.timeout(10 * 60_000),
      });
    } catch (e) {
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      throw new LifeboatError(
        "UNREACHABLE",
        `cannot reach ${t.display}: ${cause?.code ?? cause?.message ?? (e as Error).message}`,
        "check the address and that `lifeboat serve` is running there",
        e,
      );
    }
    return res;
  };
  const fail = async (res: Response, what: string): Promise<never> => {
    const text = (await res.text().catch(() => "")).trim();
    if (res.status === 401)
      throw new LifeboatError(
        "AUTH_FAILED",
        `${t.display} refused the credentials`,
        "check the user and password in the URL, LIFEBOAT_REST_PASSWORD or LIFEBOAT_REST_TOKEN",
      );
    if (res.status === 403)
      throw new LifeboatError(
        "PERMISSION_DENIED",
        `${t.display}: ${what}: ${text || "forbidden"}`,
        text.includes("append-only")
          ? "this server is append-only: run forget and prune on the server itself"
          : "ask the server's owner for access",
      );
    if (res.status === 404) throw new LifeboatError("NOT_FOUND", `${t.display}${what} does not exist`);
    if (res.status === 507)
      throw new LifeboatError(
        "STORAGE_FULL",
        `${t.display}: the server's disk is full`,
        "free space on the server; nothing was damaged",
      );
    if (res.status >= 500)
      throw new LifeboatError(
        "UNREACHABLE",
        `${t.display}: server error ${res.status} on ${what}: ${text}`,
        "try again; if it persists, look at the server's log",
      );
    throw new LifeboatError("STORAGE_ERROR", `${t.display}: ${what}: HTTP ${res.status} ${text}`);
  };
  const obj = (name: string) => `objects/${objectName(name).split("/").map(encodeURIComponent).join("/")}`;
  return {
    location: t.display,
    capabilities: { retention: false, appendOnly: false },
    async exists() {
      const res = await call("GET", "exists");
      if (!res.ok) return fail(res, "exists");
      return ((await res.json()) as { exists: boolean }).exists;
    },
    async create() {
      const res = await call("POST", "create");
      if (!res.ok) await fail(res, "create");
    },
    async get(name: string, o?: GetOptions) {
      const range =
        o?.offset !== undefined || o?.length !== undefined
          ? `bytes=${o.offset ?? 0}-${o.length !== undefined ? (o.offset ?? 0) + o.length - 1 : ""}`
          : undefined;
      const res = await call("GET", obj(name), range ? { range } : {});
      if (!res.ok) return fail(res, name);
      return Buffer.from(await res.arrayBuffer());
    },
    async stat(name: string) {
      const res = await call("HEAD", obj(name));
      if (res.status === 404) return undefined;
      if (!res.ok) return fail(res, name);
      return { name, size: Number(res.headers.get("content-length") ?? 0) };
    },
    async put(name: string, data: Buffer) {
      const res = await call("PUT", obj(name), { body: data });
      if (!res.ok) await fail(res, name);
    },
    async *list(prefix: string): AsyncIterable<ObjectInfo> {
      const res = await call("GET", `list?prefix=${encodeURIComponent(prefix)}`);
      if (!res.ok) return fail(res, `list ${prefix}`);
      const text = await res.text();
      for (const line of text.split("\n")) if (line) yield JSON.parse(line) as ObjectInfo;
    },
    async delete(name: string) {
      const res = await call("DELETE", obj(name));
      if (res.status === 404) return;
      if (!res.ok) await fail(res, name);
    },
    async close() {},
  };
}
