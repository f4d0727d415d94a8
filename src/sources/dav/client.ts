import { LifeboatError, UNREACHABLE_CODES } from "../../core/errors.js";
import { SourceError } from "../child-stream.js";
import { child, childrenOf, NS, parseXml, type XmlElement, type XmlError } from "./xml.js";

const MIB = 1024 * 1024;
/** The largest DAV answer read (a multiget REPORT of 100 items, photos and attachments
 * included, stays far below it). */
const MAX_BODY = 256 * MIB;

/** Where to pull from or push to: `dav://USER@HOST[:PORT]/[PATH]` (HTTP) or `davs://` (HTTPS). */
export interface DavTarget {
  secure: boolean;
  user: string;
  host: string;
  port: number;
  /** Where discovery starts besides /.well-known (e.g. /remote.php/dav); always ends with `/`. */
  path: string;
}

const URL_HINT = "write dav://USER@HOST[:PORT]/[PATH] (HTTP) or davs://USER@HOST[:PORT]/[PATH] (HTTPS)";

export function parseDavUrl(url: string): DavTarget {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new LifeboatError("USAGE", `${JSON.stringify(url)} is not a DAV URL`, URL_HINT);
  }
  if (u.protocol !== "dav:" && u.protocol !== "davs:")
    throw new LifeboatError("USAGE", `unsupported URL ${JSON.stringify(url)}`, URL_HINT);
  if (!u.username || !u.hostname)
    throw new LifeboatError("USAGE", `${url}: a user and a host are needed`, URL_HINT);
  if (u.password)
    throw new LifeboatError(
      "USAGE",
      "do not put the password into the URL (it would be recorded and visible in the process list)",
      "use LIFEBOAT_SOURCE_PASSWORD, --source-password-file or --source-password-command",
    );
  if (u.search || u.hash) throw new LifeboatError("USAGE", `${url}: a query or fragment is not supported`);
  const secure = u.protocol === "davs:";
  let path = u.pathname || "/";
  if (!path.endsWith("/")) path += "/";
  return {
    secure,
    user: decodeURIComponent(u.username),
    host: u.hostname.replace(/^\[(.*)\]$/, "$1"),
    port: u.port ? Number(u.port) : secure ? 443 : 80,
    path,
  };
}

/** The stable name recorded as the snapshot's path; the next pull finds its parent by it. */
export function davSourceName(t: DavTarget): string {
  const host = t.host.includes(":") ? `[${t.host}]` : t.host;
  return `${t.secure ? "davs" : "dav"}://${encodeURIComponent(t.user)}@${host}:${t.port}${t.path}`;
}

export function davOrigin(t: DavTarget): string {
  const host = t.host.includes(":") ? `[${t.host}]` : t.host;
  return `${t.secure ? "https" : "http"}://${host}:${t.port}`;
}

/** One `<response>` of a multistatus: its href, overall status, and the properties found. */
export interface DavResponse {
  /** The href as the server wrote it. */
  href: string;
  /** Absolute URL of the href, resolved against the request URL. */
  url: string;
  /** `<status>` directly in the response (sync-collection uses 404 for removed members). */
  status?: number;
  /** Properties with status 2xx, keyed `namespace|local`. */
  props: Map<string, XmlElement>;
}

export const propKey = (ns: string, local: string) => `${ns}|${local}`;

export function prop(r: DavResponse, ns: string, local: string): XmlElement | undefined {
  return r.props.get(propKey(ns, local));
}

const statusCode = (s: string | undefined) => {
  const m = /^\s*HTTP\/[\d.]+\s+(\d{3})/i.exec(s ?? "");
  return m ? Number(m[1]) : undefined;
};

export interface Multistatus {
  responses: DavResponse[];
  /** `<sync-token>` of a sync-collection answer. */
  syncToken?: string;
}

export function parseMultistatus(body: string, base: string, what: string): Multistatus {
  let root: XmlElement;
  try {
    root = parseXml(body);
  } catch (e) {
    throw new SourceError(
      "SOURCE_UNREADABLE",
      `${what}: the server's answer is not well-formed XML (${(e as XmlError).message})`,
    );
  }
  if (root.ns !== NS.dav || root.local !== "multistatus")
    throw new SourceError("SOURCE_UNREADABLE", `${what}: expected a DAV:multistatus, got <${root.local}>`);
  const responses: DavResponse[] = [];
  for (const r of childrenOf(root, NS.dav, "response")) {
    const hrefEl = child(r, NS.dav, "href");
    if (!hrefEl) continue;
    const href = hrefEl.text.trim();
    let url: string;
    try {
      url = new URL(href, base).href;
    } catch {
      continue;
    }
    const props = new Map<string, XmlElement>();
    for (const ps of childrenOf(r, NS.dav, "propstat")) {
      const st = statusCode(child(ps, NS.dav, "status")?.text);
      if (st === undefined || st < 200 || st > 299) continue;
      for (const p of child(ps, NS.dav, "prop")?.children ?? []) props.set(propKey(p.ns, p.local), p);
    }
    const status = statusCode(child(r, NS.dav, "status")?.text);
    responses.push({ href, url, ...(status !== undefined ? { status } : {}), props });
  }
  const token = child(root, NS.dav, "sync-token")?.text.trim();
  return { responses, ...(token ? { syncToken: token } : {}) };
}

/** Path part of an absolute URL, percent-decoded where possible: the key to compare hrefs by. */
export function hrefKey(url: string): string {
  const p = new URL(url).pathname;
  try {
    return decodeURIComponent(p);
  } catch {
    return p;
  }
}

export interface DavResult {
  status: number;
  url: string;
  headers: Headers;
  /** The body exactly as received. */
  body: Buffer;
  /** The body decoded as UTF-8. */
  text: string;
}

const READ_METHODS = new Set(["GET", "HEAD", "OPTIONS", "PROPFIND", "REPORT"]);
const NETWORK_CODES = new Set([
  ...UNREACHABLE_CODES,
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_SOCKET",
  "UND_ERR_HEADERS_TIMEOUT",
  "UND_ERR_BODY_TIMEOUT",
]);

export interface DavClientOptions {
  /** Refuse every method that could change the server (pull). */
  readOnly: boolean;
  timeoutMs?: number;
}

/**
 * HTTP for CardDAV/CalDAV with Node's fetch: Basic auth, redirects followed by hand (only on
 * the same host, so the password never goes elsewhere), and every failure turned into one of
 * the documented errors. A read-only client refuses anything but GET/PROPFIND/REPORT/OPTIONS.
 */
export class DavClient {
  readonly target: DavTarget;
  readonly origin: string;
  /** Requests sent, by method (for the summary and the tests). */
  readonly methods = new Map<string, number>();
  private readonly auth: string;
  private readonly o: DavClientOptions;

  constructor(target: DavTarget, password: string, o: DavClientOptions) {
    this.target = target;
    this.origin = davOrigin(target);
    this.auth = `Basic ${Buffer.from(`${target.user}:${password}`, "utf8").toString("base64")}`;
    this.o = o;
  }

  get requests(): number {
    let n = 0;
    for (const v of this.methods.values()) n += v;
    return n;
  }

  /** Resolves a path or URL against the server. */
  url(pathOrUrl: string): string {
    return new URL(pathOrUrl, `${this.origin}/`).href;
  }

  private where(): string {
    return `${this.target.host}:${this.target.port}`;
  }

  async request(
    method: string,
    pathOrUrl: string,
    init: { headers?: Record<string, string>; body?: string | Buffer } = {},
  ): Promise<DavResult> {
    if (this.o.readOnly && !READ_METHODS.has(method))
      throw new Error(`internal error: ${method} refused by a read-only DAV client`);
    let url = this.url(pathOrUrl);
    for (let hop = 0; ; hop++) {
      this.methods.set(method, (this.methods.get(method) ?? 0) + 1);
      let res: Response;
      try {
        res = await fetch(url, {
          method,
          redirect: "manual",
          headers: { Authorization: this.auth, "User-Agent": "lifeboat", ...init.headers },
          ...(init.body !== undefined ? { body: init.body } : {}),
          signal: AbortSignal.timeout(this.o.timeoutMs ?? 120_000),
        });
      } catch (e) {
        throw this.networkError(e);
      }
      const location = res.headers.get("location");
      if ([301, 302, 303, 307, 308].includes(res.status) && location) {
        await res.arrayBuffer().catch(() => undefined);
        const next = new URL(location, url);
        const here = new URL(url);
        if (next.hostname !== here.hostname)
          throw new SourceError(
            "SOURCE_UNREADABLE",
            `${method} ${here.pathname} at ${this.where()} redirects to another host (${next.host}); not followed, so the password is not sent there`,
            "give that host in the URL instead",
          );
        if (hop >= 5) throw new SourceError("SOURCE_UNREADABLE", `too many redirects from ${url}`);
        if (here.protocol === "https:" && next.protocol !== "https:")
          throw new SourceError(
            "SOURCE_UNREADABLE",
            `${url} redirects from HTTPS to plain HTTP; not followed`,
          );
        url = next.href;
        continue;
      }
      let body: Buffer;
      try {
        body = await this.readBody(res, method, url);
      } catch (e) {
        throw this.networkError(e);
      }
      if (res.status === 401)
        throw new LifeboatError(
          "AUTH_FAILED",
          `DAV login as ${this.target.user} at ${this.where()} failed: wrong user name or password`,
          "check the password given by LIFEBOAT_SOURCE_PASSWORD, --source-password-file or --source-password-command",
        );
      return { status: res.status, url, headers: res.headers, body, text: body.toString("utf8") };
    }
  }

  /**
   * The body of an answer, refused past MAX_BODY: a server that never stops sending (or sends
   * gigabytes) would otherwise fill memory until the request's timeout.
   */
  private async readBody(res: Response, method: string, url: string): Promise<Buffer> {
    const parts: Buffer[] = [];
    let n = 0;
    if (!res.body) return Buffer.alloc(0);
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      n += chunk.length;
      if (n > MAX_BODY) {
        await res.body.cancel().catch(() => {});
        throw new LifeboatError(
          "SOURCE_UNREADABLE",
          `${method} ${new URL(url).pathname} at ${this.where()} answered more than ${MAX_BODY / MIB} MiB; refused`,
          "check the server: no DAV answer lifeboat asks for is that large",
        );
      }
      parts.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length));
    }
    return Buffer.concat(parts, n);
  }

  private networkError(e: unknown): LifeboatError {
    if (e instanceof LifeboatError) return e;
    const err = e as { name?: string; message?: string; cause?: { code?: string; message?: string } };
    const code = err?.cause?.code ?? "";
    const where = this.where();
    if (err?.name === "TimeoutError" || err?.name === "AbortError")
      return new LifeboatError(
        "UNREACHABLE",
        `the DAV server ${where} did not answer in time`,
        "check the server; run the pull again",
        e,
      );
    if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ALTNAME/.test(code))
      return new LifeboatError(
        "UNREACHABLE",
        `the TLS certificate of ${where} is not trusted (${code})`,
        "for a server with its own CA or a self-signed certificate, start lifeboat with NODE_EXTRA_CA_CERTS=/path/to/ca.pem",
        e,
      );
    if (NETWORK_CODES.has(code) || err?.message === "fetch failed")
      return new LifeboatError(
        "UNREACHABLE",
        `cannot reach the DAV server ${where}: ${code || err?.cause?.message || err?.message || "connection failed"}`,
        "check the host, the port and the network; davs:// uses port 443, dav:// 80",
        e,
      );
    return new SourceError(
      "SOURCE_UNREADABLE",
      `DAV server ${where}: ${err?.message ?? String(e)}`,
      undefined,
      e,
    );
  }

  /** An error for an unexpected HTTP status. */
  statusError(method: string, r: DavResult, what?: string): LifeboatError {
    const path = new URL(r.url).pathname;
    const detail = r.text.replace(/\s+/g, " ").trim().slice(0, 160);
    if (r.status === 403)
      return new LifeboatError(
        "PERMISSION_DENIED",
        `${method} ${path} at ${this.where()}: access denied (403)${what ? ` ${what}` : ""}`,
      );
    if (r.status === 404)
      return new LifeboatError("NOT_FOUND", `${method} ${path} at ${this.where()}: not found (404)`);
    if (r.status === 507)
      return new SourceError("SOURCE_UNREADABLE", `${method} ${path}: the server's storage is full (507)`);
    return new SourceError(
      "SOURCE_UNREADABLE",
      `${method} ${path}${what ? ` ${what}` : ""} at ${this.where()} failed with HTTP ${r.status}${detail ? `: ${detail}` : ""}`,
    );
  }

  /** PROPFIND with the given `<prop>` children; returns the multistatus (207) or the failed result. */
  async propfind(
    pathOrUrl: string,
    depth: 0 | 1,
    props: string,
  ): Promise<{ ok: true; ms: Multistatus; url: string } | { ok: false; result: DavResult }> {
    const body =
      `<?xml version="1.0" encoding="utf-8"?>\n<d:propfind xmlns:d="DAV:" xmlns:c="${NS.caldav}" ` +
      `xmlns:a="${NS.carddav}" xmlns:cs="${NS.cs}" xmlns:ic="${NS.apple}"><d:prop>${props}</d:prop></d:propfind>`;
    const r = await this.request("PROPFIND", pathOrUrl, {
      headers: { Depth: String(depth), "Content-Type": "application/xml; charset=utf-8" },
      body,
    });
    if (r.status !== 207) return { ok: false, result: r };
    return {
      ok: true,
      ms: parseMultistatus(r.text, r.url, `PROPFIND ${new URL(r.url).pathname}`),
      url: r.url,
    };
  }

  /** REPORT with a complete XML body. */
  async report(
    pathOrUrl: string,
    depth: 0 | 1,
    body: string,
  ): Promise<{ ok: true; ms: Multistatus; url: string } | { ok: false; result: DavResult }> {
    const r = await this.request("REPORT", pathOrUrl, {
      headers: { Depth: String(depth), "Content-Type": "application/xml; charset=utf-8" },
      body: `<?xml version="1.0" encoding="utf-8"?>\n${body}`,
    });
    if (r.status !== 207) return { ok: false, result: r };
    return { ok: true, ms: parseMultistatus(r.text, r.url, `REPORT ${new URL(r.url).pathname}`), url: r.url };
  }
}
